"""Load pydicom's optional back ends when they are first used, not when pydicom is imported
(issue 13: start-up of a one-file run).

pydicom 3.0's import registers every pixel plugin at once: ``pydicom.pixels.decoders.base``
and ``encoders.base`` call ``add_plugin`` for each (transfer syntax, back end), which imports
the plugin module to ask ``is_available(uid)``, which imports GDCM (its SWIG module, the
largest single import), Pillow, pylibjpeg and its codecs, pyjpegls; ``pydicom.config``
imports the legacy ``pixel_data_handlers`` (GDCM and Pillow again); ``pydicom.pixels.processing``
imports ``PIL.ImageCms`` and ``pydicom.data``, whose ``download`` module brings urllib, http,
email, ssl and tqdm (with importlib.metadata). A run that never decodes a compressed frame
needs none of them.

:func:`defer_pydicom_backends`, called by the CLI's entry point before pydicom is imported,
installs one import hook that

* records each ``add_plugin`` call made while those two module bodies run and makes it, in
  the same order, with pydicom's own ``add_plugin``, the first time anything reads that
  coder's plugins (``available_plugins``, ``is_available``, decoding, encoding, ...): the
  registry it builds is the one an eager import builds (same plugins, same order, same
  unavailable ones with their dependencies), only later. While the bodies run, the
  docstrings pydicom builds from the plugin names see every recorded name, so they too
  are the same;
* defers the module bodies of ``PIL.ImageCms``, the legacy GDCM / Pillow / pylibjpeg /
  JPEG-LS handlers, ``pydicom.data.download`` and ``pydicom.examples`` (which looks up its 13
  example files with ``get_testdata_file`` when imported): the module object exists at once, its
  code runs on the first attribute read (``download``'s five functions that
  ``pydicom.data.data_manager`` imports by name are forwarders that load it when called).

It also makes ``pydicom.datadict``'s reverse dictionary cheaper to build (issue 13): the
module body builds ``keyword_dict = {dictionary_keyword(tag): tag for tag in DicomDictionary}``,
a Python call (``Tag()``, ``get_entry``) for each of its ~5,000 tags; for a tag of
``DicomDictionary`` ``dictionary_keyword(tag)`` is ``DicomDictionary[tag][4]`` (``get_entry``
finds every such tag in ``DicomDictionary`` itself, never in the repeaters), so the hook swaps
that one comprehension's code for ``{DicomDictionary[tag][4]: tag for tag in .0}``: same keys,
same values, same order. Only when ``datadict.py`` is byte for byte the file this was checked
against (its SHA-256) and its compiled code has exactly that one comprehension; otherwise the
module runs unchanged. ``tests/test_startup_imports.py`` compares the two dictionaries.

And ``pydicom.valuerep``'s two tables of compiled value-representation patterns
(``STR_VR_REGEXES``, ``BYTE_VR_REGEXES``: 20 ``re.compile`` calls at import, ≈ 9–17 ms, the
largest single piece of pydicom's import; startup3) become :class:`LazyPatterns`: the same
keys in the same order, each pattern compiled by ``re.compile`` from the same source the first
time it is read (``pydicom.uid`` reads ``"UI"`` at import; validation, off in vindr, reads the
others), every pattern at once on any other use of the table (iteration, ``len``, ``items``,
comparison, copy, change). Only when ``valuerep.py`` is byte for byte the file checked
(its SHA-256) and its two comprehensions are exactly the ones expected; otherwise the module
runs unchanged. ``tests/test_startup_imports.py`` compares both tables with an eager build.

And ``pydicom._private_dict`` (GDCM's private dictionary, ≈ 600 KB of source, 3 ms to load)
is loaded the first time its one table, ``private_dictionaries``, is used (a :class:`LazyTable`,
the same object in ``pydicom._private_dict`` and ``pydicom.datadict``: the module's code runs
then, and the table holds what it built): a run that never looks up a private tag's name never
loads it (startup3). Only for the file of pydicom 3.0.2 (datadict.py checked as above, and this
file's size); otherwise the module runs at import, unchanged.

And ``pydicom._version`` (``__version__ = importlib.metadata.version("pydicom")``) gets its
answer without importing ``importlib.metadata`` (with email, csv, zipfile...: ≈ 10–20 ms)
when :func:`dist_version` can read it the way ``importlib.metadata`` would (only the
standard path finder answers for distributions; the first ``sys.path`` folder holding a
``pydicom`` ``.dist-info`` or ``.egg-info`` has it as a plain folder with a plain ``Version``
header); in any other case, or if ``_version.py`` is not the file checked (its SHA-256),
``importlib.metadata`` is imported and asked as before.

Nothing is skipped, only postponed: anything pydicom would have raised at import is raised
at first use instead (none of these does raise here; each catches its own ImportError).
Forked workers inherit the hook's state and load what they use. If pydicom's shape is not
the one this was written against (``CoderBase`` without ``add_plugin`` or its two
registries), the patch is not applied and pydicom loads eagerly, as without the hook.
``tests/test_startup_imports.py`` checks both halves: what a one-file run loads, and that
every decoder's and encoder's registry and the decoded pixels equal an eager import's.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading

# module -> names other modules import from it with ``from M import name`` at import time
DEFERRED_MODULES: dict[str, tuple[str, ...]] = {
    "PIL.ImageCms": (),
    "pydicom.pixel_data_handlers.gdcm_handler": (),
    "pydicom.pixel_data_handlers.pillow_handler": (),
    "pydicom.pixel_data_handlers.pylibjpeg_handler": (),
    "pydicom.pixel_data_handlers.jpeg_ls_handler": (),
    "pydicom.data.download": ("data_path_with_download", "calculate_file_hash",
                              "get_cached_filehash", "get_url_map", "get_data_dir"),
    # the documentation's example data sets: 13 get_testdata_file searches at import
    "pydicom.examples": (),
}
_COMMON = "pydicom.pixels.common"
_DATADICT = "pydicom.datadict"
_VERSION = "pydicom._version"
# pydicom 3.0.2's _version.py, the file whose `from importlib.metadata import version` is answered
VERSION_SHA256 = "634f5346c814bbce07762291be3f768987e70be0e2dd1201e7d20b5e2ed2b7d5"
# pydicom 3.0.2's datadict.py, the file the keyword_dict rewrite was checked against
DATADICT_SHA256 = "c722d4ac075a0df5016aaef828dd058e253f21162e3722ee95e1dacf5d0e3e01"
_VALUEREP = "pydicom.valuerep"
_PRIVATE = "pydicom._private_dict"
PRIVATE_DICT_SIZE = 597_500     # pydicom 3.0.2's _private_dict.py, in bytes
_datadict_checked = False       # datadict.py is pydicom 3.0.2's (set before its body runs)
# pydicom 3.0.2's valuerep.py, the file whose two pattern tables are built lazily
VALUEREP_SHA256 = "799d0fe29e3c518b8f2223fbb5cc0884717715b3bcdfa804276fe972ea4dd3e3"
_PLUGIN_HOSTS = ("pydicom.pixels.decoders.base", "pydicom.pixels.encoders.base")
# names the import system itself probes on a module: never a reason to run its code
_IMPORT_NAMES = frozenset({"__path__", "__file__", "__cached__", "__spec__", "__loader__",
                           "__package__", "__builtins__", "__wrapped__"})

_LOCK = threading.RLock()


def _new_lock() -> None:
    """A fresh lock in a forked child: a fork while another thread held it would leave it held."""
    global _LOCK
    _LOCK = threading.RLock()


os.register_at_fork(after_in_child=_new_lock)
_recording = 0                  # > 0 while a plugin host's module body runs
_pending_modules: list = []     # loaders of deferred modules not yet run (for load_all)
_pending_coders: list = []      # coders with recorded add_plugin calls (for load_all)
datadict_rewritten = False      # True once datadict ran with the cheaper keyword_dict
valuerep_rewritten = False      # True once valuerep ran with LazyPatterns tables
_pending_patterns: list = []    # LazyPatterns tables not yet compiled whole (for load_all)


class _DeferredModule(importlib.abc.Loader):
    """Creates the module as its own loader would, and runs its code on first attribute read."""

    def __init__(self, loader, forwarded: tuple[str, ...]):
        self._loader = loader
        self._forwarded = forwarded

    def __getattr__(self, name):                        # get_source, is_package, get_filename...
        return getattr(self._loader, name)

    def create_module(self, spec):
        return None                                     # the default module object

    def exec_module(self, module) -> None:
        real, forwarded, done = self._loader, self._forwarded, []

        def load() -> None:
            with _LOCK:
                if done:
                    return
                done.append(True)
                module.__dict__.pop("__getattr__", None)
                real.exec_module(module)

        def forwarder(name):
            def call(*args, **kwargs):
                load()
                return module.__dict__[name](*args, **kwargs)
            call.__name__ = call.__qualname__ = name
            call.__module__ = module.__name__
            return call

        def __getattr__(name):
            if name in _IMPORT_NAMES:
                raise AttributeError(name)
            if name in forwarded and not done:
                return forwarder(name)
            load()
            try:
                return module.__dict__[name]
            except KeyError:
                pass
            own = module.__dict__.get("__getattr__")       # the module's own (PEP 562), if any
            if own is not None:
                return own(name)
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}") from None

        module.__getattr__ = __getattr__
        _pending_modules.append(load)


def _patch_coders(common) -> None:
    """Make ``CoderBase`` record ``add_plugin`` while a plugin host runs and replay it on
    first read of the coder's registries; leave pydicom as it is if its shape differs."""
    base = getattr(common, "CoderBase", None)
    original = getattr(base, "add_plugin", None)
    if base is None or original is None or "_available" in vars(base) or "_unavailable" in vars(base):
        return

    def resolve(self) -> None:
        d = self.__dict__
        if not d.get("_vindr_pending") or d.get("_vindr_owner") == threading.get_ident():
            return
        with _LOCK:
            pending = d.get("_vindr_pending")
            if not pending:
                return
            d["_vindr_owner"] = threading.get_ident()
            try:
                while pending:                           # in recorded order; an error leaves
                    label, import_path = pending[0]      # the rest for the next read
                    original(self, label, import_path)
                    pending.pop(0)
            finally:
                d["_vindr_owner"] = None

    def registry(key: str, recorded_names: bool):
        def get(self):
            d = self.__dict__
            if _recording and d.get("_vindr_pending"):
                # pydicom's docstring builder, in the host's own body: it reads the names only
                if recorded_names:
                    return {**d[key], **{label: None for label, _ in d["_vindr_pending"]}}
                return d[key]
            resolve(self)
            return d[key]

        def set_(self, value) -> None:
            self.__dict__[key] = value
        return property(get, set_)

    def add_plugin(self, label, import_path):
        if not _recording:
            return original(self, label, import_path)
        d = self.__dict__
        pending = d.setdefault("_vindr_pending", [])
        if label in d["_vindr_available"] or label in d["_vindr_unavailable"] \
                or any(label == name for name, _ in pending):
            raise ValueError(f"'{type(self).__name__}' already has a plugin named '{label}'")
        if not pending:
            _pending_coders.append(self)
        pending.append((label, tuple(import_path)))

    add_plugin.__doc__ = original.__doc__
    base._available = registry("_vindr_available", True)
    base._unavailable = registry("_vindr_unavailable", False)
    base.add_plugin = add_plugin
    base._vindr_resolve = resolve
    try:                                 # the registries must now live where the properties look
        probe = base.__new__(base)
        base.__init__(probe, common.UID("1.2.840.10008.1.2"), True)
        shaped = "_vindr_available" in probe.__dict__ and "_vindr_unavailable" in probe.__dict__
    except Exception:
        shaped = False
    if not shaped:
        del base._available, base._unavailable, base._vindr_resolve
        base.add_plugin = original


def _fast_keyword_dict(code, source: bytes):
    """``datadict``'s module code with its keyword_dict comprehension rebuilt without a call
    per tag, or None when the file or its code is not exactly the one this was checked on."""
    import hashlib

    if hashlib.sha256(source).hexdigest() != DATADICT_SHA256:
        return None
    old = [i for i, c in enumerate(code.co_consts) if isinstance(c, type(code)) and c.co_name == "<dictcomp>"]
    if len(old) != 1:
        return None
    comp = code.co_consts[old[0]]
    if comp.co_names != ("dictionary_keyword",) or comp.co_varnames != (".0", "tag"):
        return None
    new = compile("{DicomDictionary[tag][4]: tag for tag in DicomDictionary}", code.co_filename, "exec")
    fast = [c for c in new.co_consts if isinstance(c, type(code)) and c.co_name == "<dictcomp>"]
    if len(fast) != 1 or fast[0].co_varnames != (".0", "tag"):
        return None
    fast = fast[0].replace(co_firstlineno=comp.co_firstlineno, co_qualname=comp.co_qualname)
    consts = list(code.co_consts)
    consts[old[0]] = fast
    return code.replace(co_consts=tuple(consts))


class LazyPatterns(dict):
    """A ``{key: re.compile(source)}`` table whose patterns are compiled when first read: one
    key's on ``table[key]`` / ``get``, all of them (in the sources' order) on any other use.
    Until then the dict itself holds only the patterns already read; every method that could
    show the rest compiles the rest first."""

    def __init__(self, sources, encode: bool = False):
        super().__init__()
        self._sources = dict(sources)                   # key -> pattern text, in order
        self._encode = encode
        _pending_patterns.append(self)

    def _one(self, key):
        import re

        text = self._sources[key]
        return re.compile(text.encode() if self._encode else text)

    def _fill(self) -> None:
        sources = self.__dict__.get("_sources")
        if sources is None:
            return
        with _LOCK:
            if self.__dict__.get("_sources") is None:
                return
            done = {k: dict.get(self, k) if dict.__contains__(self, k) else self._one(k) for k in sources}
            dict.clear(self)
            dict.update(self, done)
            self._sources = None

    def __getitem__(self, key):
        sources = self._sources
        if sources is not None and key in sources and not dict.__contains__(self, key):
            with _LOCK:
                if self._sources is not None and not dict.__contains__(self, key):
                    dict.__setitem__(self, key, self._one(key))
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        if self._sources is not None and key in self._sources:
            return self[key]
        return dict.get(self, key, default)

    def __contains__(self, key):
        if self._sources is not None:
            return key in self._sources
        return dict.__contains__(self, key)


def _filled(name: str):
    method = getattr(dict, name)

    def call(self, *args, **kwargs):
        self._fill()
        return method(self, *args, **kwargs)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


for _name in ("__iter__", "__len__", "__reversed__", "__repr__", "__eq__", "__ne__", "__or__", "__ror__", "__ior__",
              "__setitem__", "__delitem__", "__sizeof__", "keys", "values", "items", "copy", "pop", "popitem",
              "setdefault", "update", "clear"):
    setattr(LazyPatterns, _name, _filled(_name))


def _lazy_reduce(self, protocol=None):
    self._fill()
    return (dict, (dict(dict.items(self)),))          # a plain dict once pickled or copied


LazyPatterns.__reduce_ex__ = _lazy_reduce
del _name


class LazyTable(LazyPatterns):
    """A table that a module's code builds, built the first time it is used in any way (``in``,
    ``[]``, ``get``, iteration, change...): ``build()`` returns the dict whose items it takes."""

    def __init__(self, build):
        dict.__init__(self)
        self._build = build
        self._sources = ()                               # not built yet
        self._encode = False
        _pending_patterns.append(self)

    def _fill(self) -> None:
        if self.__dict__.get("_sources") is None:
            return
        with _LOCK:
            if self.__dict__.get("_sources") is None:
                return
            dict.update(self, self._build())
            self._sources = None
            self._build = None

    def __getitem__(self, key):
        self._fill()
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self._fill()
        return dict.get(self, key, default)

    def __contains__(self, key):
        self._fill()
        return dict.__contains__(self, key)


def _exec_private(loader, name, plain):
    """Run ``pydicom._private_dict`` as a :class:`LazyTable` (see the module doc), or as it is."""
    def exec_module(module):
        try:
            same = _datadict_checked and os.stat(loader.get_filename(name)).st_size == PRIVATE_DICT_SIZE
        except OSError:
            same = False
        if not same:
            return plain(module)

        def build():
            ns = {"__name__": name, "__builtins__": __builtins__}
            exec(loader.get_code(name), ns)
            module.__doc__ = ns.get("__doc__")
            module.__annotations__.update(ns.get("__annotations__", {}))
            return ns["private_dictionaries"]

        module.__annotations__ = {}
        module.private_dictionaries = LazyTable(build)
    return exec_module


def _lazy_vr_tables(code, source: bytes):
    """``valuerep``'s module code with its two pattern tables built as :class:`LazyPatterns`,
    or None when the file or its code is not exactly the one this was checked on."""
    import hashlib

    if hashlib.sha256(source).hexdigest() != VALUEREP_SHA256:
        return None
    comps = [(i, c) for i, c in enumerate(code.co_consts) if isinstance(c, type(code)) and c.co_name == "<dictcomp>"]
    want = [("re", "compile"), ("re", "compile", "encode")]
    if len(comps) != 2 or [c.co_names for _, c in comps] != want \
            or any(c.co_varnames != (".0", "vr", "regex") or c.co_argcount != 1 for _, c in comps):
        return None
    consts = list(code.co_consts)
    for (i, comp), encode in zip(comps, (False, True)):
        new = compile(f"def _(it):\n    return _vindr_lazy_patterns(it, {encode})\n", code.co_filename, "exec")
        fn = [c for c in new.co_consts if isinstance(c, type(code))]
        if len(fn) != 1 or fn[0].co_argcount != 1:
            return None
        consts[i] = fn[0].replace(co_name=comp.co_name, co_qualname=comp.co_qualname,
                                  co_firstlineno=comp.co_firstlineno)
    return code.replace(co_consts=tuple(consts))


def _normalize(name: str) -> str:
    """importlib.metadata's ``Prepared.normalize`` (PEP 503, dashes as underscores)."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def dist_version(name: str) -> str | None:
    """``importlib.metadata.version(name)`` read the way importlib.metadata reads it (Python
    3.11: ``PathFinder`` searches each ``sys.path`` entry's listing, in order, for
    ``<name>-*.dist-info`` / ``.egg-info``, and the first one's ``METADATA`` gives the first
    ``Version`` header), or None whenever anything is not that plain case (another finder
    that lists distributions, a zip or egg on the path, a missing or unusual ``METADATA``)."""
    import importlib.machinery
    import re

    if sys.version_info[:2] != (3, 11):
        return None
    finders = [f for f in sys.meta_path if getattr(f, "find_distributions", None) is not None]
    if finders != [importlib.machinery.PathFinder]:
        return None
    want = _normalize(name)
    for entry in sys.path:
        if not isinstance(entry, str):
            return None
        root = entry or "."
        if os.path.basename(entry).lower().endswith(".egg"):
            return None
        try:
            children = os.listdir(root)
        except OSError:
            if os.path.exists(root):
                return None                              # a zip: importlib.metadata reads it
            continue
        found = [c for c in children if c.lower().endswith((".dist-info", ".egg-info"))
                 and _normalize(c.lower().rpartition(".")[0].partition("-")[0]) == want]
        if not found:
            continue
        meta = os.path.join(root, found[0], "METADATA")
        try:
            with open(meta, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return None
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if line == "":
                return None                              # end of the headers, no Version
            m = re.fullmatch(r"([A-Za-z0-9-]+): (.*)", line)
            if m is None:
                return None                              # a folded or odd header: not plain
            if m.group(1).lower() == "version":
                value = m.group(2)
                if not re.fullmatch(r"[0-9A-Za-z.+!_-]+", value) or i + 1 >= len(lines) \
                        or lines[i + 1][:1] in (" ", "\t"):
                    return None
                return value
        return None
    return None


def _exec_version(loader, plain):
    """Run ``pydicom._version`` with ``importlib.metadata.version`` answered by
    :func:`dist_version` (the real module imported only to answer another name)."""
    import hashlib
    import types

    def exec_module(module):
        try:
            same = hashlib.sha256(loader.get_data(loader.get_filename(_VERSION))).hexdigest() == VERSION_SHA256
            value = dist_version("pydicom") if same else None
        except Exception:
            value = None
        with _LOCK:
            if value is None or "importlib.metadata" in sys.modules:
                return plain(module)

            def version(distribution_name):
                if distribution_name == "pydicom":
                    return value
                import importlib.metadata as real
                return real.version(distribution_name)

            stub = types.ModuleType("importlib.metadata")
            stub.version = version
            sys.modules["importlib.metadata"] = stub
            try:
                plain(module)
            finally:
                if sys.modules.get("importlib.metadata") is stub:
                    del sys.modules["importlib.metadata"]
    return exec_module


def _exec_rewritten(loader, name, rewrite, run_fast):
    """An exec_module for pydicom's module ``name`` that runs ``rewrite(code, source)``'s code
    object through ``run_fast(fast, module)``; when it gives None or raises, the module runs as
    pydicom wrote it."""
    plain = loader.exec_module

    def exec_module(module):
        code = loader.get_code(name)
        try:
            fast = rewrite(code, loader.get_data(loader.get_filename(name)))
        except Exception:                # anything unexpected: pydicom as it is
            fast = None
        if fast is None:
            return plain(module)
        run_fast(fast, module)

    return exec_module


def _run_valuerep(fast, module) -> None:
    module.__dict__["_vindr_lazy_patterns"] = LazyPatterns
    try:
        exec(fast, module.__dict__)
    finally:
        module.__dict__.pop("_vindr_lazy_patterns", None)
    global valuerep_rewritten
    valuerep_rewritten = True


def _run_datadict(fast, module) -> None:
    global _datadict_checked, datadict_rewritten
    _datadict_checked = True
    exec(fast, module.__dict__)
    datadict_rewritten = True


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name not in DEFERRED_MODULES and name != _COMMON and name not in _PLUGIN_HOSTS \
                and name != _DATADICT and name != _VERSION and name != _VALUEREP and name != _PRIVATE:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if not isinstance(loader, importlib.machinery.SourceFileLoader) \
                and not isinstance(loader, importlib.machinery.SourcelessFileLoader):
            return spec                              # not plain Python code: leave it alone
        if name in DEFERRED_MODULES:
            spec.loader = _DeferredModule(loader, DEFERRED_MODULES[name])
            return spec
        if name == _VERSION:
            if isinstance(loader, importlib.machinery.SourceFileLoader):
                loader.exec_module = _exec_version(loader, loader.exec_module)
            return spec
        if name == _PRIVATE:
            if isinstance(loader, importlib.machinery.SourceFileLoader):
                loader.exec_module = _exec_private(loader, name, loader.exec_module)
            return spec
        if name in (_VALUEREP, _DATADICT):
            if isinstance(loader, importlib.machinery.SourceFileLoader):
                loader.exec_module = (_exec_rewritten(loader, name, _lazy_vr_tables, _run_valuerep) if name == _VALUEREP
                                      else _exec_rewritten(loader, name, _fast_keyword_dict, _run_datadict))
            return spec
        run = loader.exec_module

        def exec_module(module):
            global _recording
            if name == _COMMON:
                run(module)
                _patch_coders(module)
                return
            with _LOCK:
                _recording += 1
                try:
                    run(module)
                finally:
                    _recording -= 1

        loader.exec_module = exec_module
        return spec


def defer_pydicom_backends() -> None:
    """Install the hook (once) if pydicom is not imported yet; otherwise do nothing."""
    if "pydicom" in sys.modules or any(isinstance(f, _Hook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Hook())


def load_all() -> None:
    """Run now everything the hook postponed (every deferred module, every recorded plugin)."""
    while _pending_modules:
        _pending_modules.pop(0)()
    while _pending_coders:
        coder = _pending_coders.pop(0)
        coder._vindr_resolve()
    while _pending_patterns:
        _pending_patterns.pop(0)._fill()
