"""Start-up structure (issue 13): what a command imports and starts before it needs it.

Asserts structure, never time: importing the CLI loads none of the heavy libraries, and a
one-file `vindr anonymize --burned-in off` runs in process (no worker pool) without pandas,
torch, scipy, matplotlib or Dask (the tables are written through pyarrow alone)."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

from pydicom.data import get_testdata_file

from helpers import key_file_in

BACKENDS = ("gdcm", "_gdcm", "pylibjpeg", "openjpeg", "libjpeg", "rle", "jpeg_ls", "tqdm", "http")
BACKEND_MODULES = ("PIL.Image", "urllib.request", "pydicom.pixels.decoders.gdcm",
                   "pydicom.pixels.decoders.pillow", "pydicom.pixels.decoders.pylibjpeg")
HEAVY = ("pandas", "torch", "scipy", "matplotlib", "dask", "distributed", "sklearn", "tesserocr", "cv2")

PROBE = """
import atexit, json, os, sys
import concurrent.futures.process as cfp
pools = []
_init = cfp.ProcessPoolExecutor.__init__
def _spy(self, *a, **k):
    pools.append(1)
    return _init(self, *a, **k)
cfp.ProcessPoolExecutor.__init__ = _spy
def _report():
    sys.stderr.write("\\nPROBE " + json.dumps({"modules": sorted(m for m in sys.modules if "." not in m),
                                                  "all": sorted(sys.modules),
                                                  "collections": sum(s["collections"] for s in __import__("gc").get_stats()),
                                                  "pools": len(pools),
                                                  "blas": os.environ.get("OPENBLAS_NUM_THREADS"),
                                                  "private_dict_built": dict.__len__(getattr(sys.modules.get("pydicom._private_dict"), "private_dictionaries", {0: 0})) > 0}) + "\\n")
atexit.register(_report)
if sys.argv[1] == "--gc-as-before":          # vindr_cli.startup's deferral left out
    import gc
    def _held(phase, info):
        pass
    _held._vindr_restore = True
    gc.callbacks.append(_held)
    del sys.argv[1]
sys.argv = ["vindr", *sys.argv[1:]]
from vindr_cli.cli import main
main()
"""


def _probe(*args, env=None) -> tuple[dict, subprocess.CompletedProcess]:
    p = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, env=env)
    line = [x for x in p.stderr.splitlines() if x.startswith("PROBE ")]
    assert line, f"exit {p.returncode}: no report"
    return json.loads(line[-1][len("PROBE "):]), p


def test_cli_import_loads_no_heavy_library():
    code = ("import sys, json; import vindr_cli.cli; "
            "print(json.dumps(sorted(m for m in sys.modules if '.' not in m)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "vindr_cli" in loaded and "typer" in loaded
    assert not loaded & {*HEAVY, "numpy", "pyarrow", "pydicom", "PIL", "gdcm"}


def test_one_file_anonymize_runs_in_process_without_heavy_libraries(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / "a.dcm")
    key = key_file_in(tmp_path)
    report, p = _probe("anonymize", src, tmp_path / "out", "--key", key, "--burned-in", "off")
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "out" / "manifest.parquet").is_file()
    assert report["pools"] == 0                  # one input: no process pool is started
    loaded = set(report["modules"])
    assert {"pydicom", "pyarrow"} <= loaded      # the probe saw the run's imports
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    # typer's values are coerced without pydantic (vindr_cli.cliparams, for its typer version)
    import typer

    from vindr_cli.cliparams import TYPER_VERSION

    if typer.__version__ == TYPER_VERSION:
        assert "pydantic" not in loaded and "pydantic_core" not in loaded
    # pydicom's codecs, GDCM, Pillow and its data downloader are left for first use
    # (vindr_cli.dicomio.lazy): a run that decodes nothing loads none of them
    assert not loaded & set(BACKENDS), sorted(loaded & set(BACKENDS))
    every = set(report["all"])
    assert not every & set(BACKEND_MODULES), sorted(every & set(BACKEND_MODULES))
    assert "pydicom.pixels.decoders.base" in every      # pydicom's registry itself was built
    import pydicom

    if pydicom.__version__ == "3.0.2":                  # vindr_cli.dicomio.lazy.LazyTable
        assert report["private_dict_built"] is False    # no private tag's name was looked up



def test_one_file_rerun_reads_its_tables_without_pandas(tmp_path):
    """A re-run reads the previous manifest and linkage tables: through pyarrow's file reader,
    not `pq.read_table`, which imports pyarrow.dataset and pandas (about 0.25 s)."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / "a.dcm")
    key = key_file_in(tmp_path)
    args = ("anonymize", src, tmp_path / "out", "--key", key, "--burned-in", "off")
    first, p = _probe(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "out.linkage.parquet").is_file()
    again, p = _probe(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "pyarrow" in again["modules"]
    assert not set(again["modules"]) & set(HEAVY), sorted(set(again["modules"]) & set(HEAVY))

def test_one_blas_thread_unless_the_user_chose(tmp_path):
    """A run sets OPENBLAS_NUM_THREADS=1 before numpy loads (no BLAS pool spinning through
    start-up, vindr_cli.startup.one_blas_thread), but never over a count the user set."""
    import os

    from vindr_cli.startup import BLAS_THREAD_VARS, one_blas_thread

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / "a.dcm")
    key = key_file_in(tmp_path)
    bare = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARS}
    for i, (extra, want) in enumerate([({}, "1"), ({"OPENBLAS_NUM_THREADS": "2"}, "2"), ({"OMP_NUM_THREADS": "3"}, None)]):
        report, p = _probe("anonymize", src, tmp_path / f"out{i}", "--key", key, "--burned-in", "off",
                           env=bare | extra)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "numpy" in report["modules"] and report["blas"] == want, (extra, report["blas"])
    env = {"PATH": "x"}
    assert one_blas_thread(env) is ("numpy" not in sys.modules)   # numpy loaded here: too late, left
    for var in BLAS_THREAD_VARS:
        chosen = {var: "4"}
        assert one_blas_thread(chosen) is False and chosen == {var: "4"}
    report, p = _probe("baseline", "--help", env=bare)      # torch's command: left as it is
    assert p.returncode == 0, p.stderr[-2000:]
    assert report["blas"] is None


def test_two_files_start_a_pool(tmp_path):
    """The probe can fail: two inputs with -j 2 do start the pool (one: anonymize's first pass,
    deid.studyterms, reads a few headers in the driver, runner.stage.SURVEY_HERE)."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / f"{i}.dcm")
    key = key_file_in(tmp_path)
    report, p = _probe("anonymize", src, tmp_path / "out", "--key", key, "--burned-in", "off", "-j", "2")
    assert p.returncode == 0, p.stderr[-2000:]
    assert report["pools"] == 1


def test_help_and_version_do_not_import_pydicom():
    for args in (["--help"], ["--version"], ["split", "--help"]):
        report, p = _probe(*args)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "pydicom" not in report["modules"] and "numpy" not in report["modules"], args


def test_pydicom_is_quiet_whenever_it_is_imported():
    """main() no longer imports pydicom up front: the quieting (validation off, no warnings,
    logger at CRITICAL, which pydicom.config resets to WARNING when it runs) is applied the
    moment pydicom.config is imported, by whatever imports it."""
    code = ("import logging, sys, warnings\n"
            "from vindr_cli.dicomio.quiet import quiet_pydicom_when_imported\n"
            "quiet_pydicom_when_imported()\n"
            "assert 'pydicom' not in sys.modules\n"
            "from pydicom.dataset import Dataset\n"
            "import pydicom.config as c\n"
            "print(logging.getLogger('pydicom').level, c.settings.reading_validation_mode == c.IGNORE,\n"
            "      c.settings.writing_validation_mode == c.IGNORE)\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('default')\n"
            "    quiet_pydicom_when_imported()\n"   # again, pydicom loaded: applied at once
            "    ds = Dataset(); ds.PatientName = 'X' * 100; ds.SOPInstanceUID = 'not a uid!'\n"
            "print(len(w))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    level, read_ignored, write_ignored, *_ = out.stdout.split()
    assert (int(level), read_ignored, write_ignored) == (logging.CRITICAL, "True", "True")
    assert out.stdout.split()[-1] == "0" and not out.stderr


# Run in a fresh interpreter, with or without vindr's hook: pydicom's whole plugin registry
# (every decoder's and encoder's available and unavailable plugins, in order, their dependency
# strings and the docstrings built from them, the legacy handlers' answers) and the pixels of
# one file per compressed syntax, as a digest.
REGISTRY = """
import hashlib, json, sys
if sys.argv[1] == "deferred":
    from vindr_cli.dicomio.lazy import defer_pydicom_backends
    defer_pydicom_backends()
import pydicom
from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS
from pydicom.pixels.encoders.base import _PIXEL_DATA_ENCODERS
loaded_at_import = sorted(m for m in ("gdcm", "PIL.Image", "pylibjpeg", "jpeg_ls", "urllib.request")
                          if m in sys.modules)
examples_at_import = "_DATASETS" in vars(sys.modules["pydicom.examples"])
out = {"loaded_at_import": loaded_at_import, "pixels": {}, "coders": {}}
for path in sys.argv[2:]:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    out["pixels"][path.rsplit("/", 1)[-1]] = [str(arr.dtype), list(arr.shape),
                                              hashlib.sha256(arr.tobytes()).hexdigest()]
for kind, table in (("decoder", _PIXEL_DATA_DECODERS), ("encoder", _PIXEL_DATA_ENCODERS)):
    for uid, (coder, _) in table.items():
        out["coders"][kind + " " + str(uid)] = [
            list(coder._available), [f.__module__ + "." + f.__name__ for f in coder._available.values()],
            {k: list(v) for k, v in coder._unavailable.items()}, coder.missing_dependencies,
            coder.is_available, coder.__doc__]
import pydicom.pixel_data_handlers.gdcm_handler as g, pydicom.pixel_data_handlers.pillow_handler as p
import pydicom.pixel_data_handlers.pylibjpeg_handler as l, pydicom.pixel_data_handlers.jpeg_ls_handler as j
import inspect
out["handlers"] = [[len(inspect.getsource(h)), h.HANDLER_NAME, h.is_available(), sorted(h.DEPENDENCIES)]
                   for h in (g, p, l, j)]
from pydicom.data import get_testdata_file
out["testdata"] = get_testdata_file("CT_small.dcm", download=False)
import pydicom.examples as ex
out["examples"] = [examples_at_import, ex.ct.SOPInstanceUID, str(ex.mr.filename), sorted(ex._DATASETS.items())]
print(json.dumps(out))
"""
COMPRESSED = ("JPEG-LL.dcm",                        # JPEG lossless (GDCM first)
              "emri_small_jpeg_2k_lossless.dcm",    # JPEG 2000 lossless
              "JPEG2000.dcm",                       # JPEG 2000
              "MR_small_RLE.dcm", "SC_rgb_rle.dcm",  # RLE lossless
              "SC_rgb_jpeg_gdcm.dcm",               # JPEG baseline
              "MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_16.dcm")  # JPEG-LS


def _registry(mode: str) -> dict:
    files = [get_testdata_file(n, download=False) for n in COMPRESSED]
    assert all(files)
    p = subprocess.run([sys.executable, "-c", REGISTRY, mode, *files], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def test_deferred_backends_decode_and_register_exactly_as_eager_ones():
    eager, deferred = _registry("eager"), _registry("deferred")
    assert eager["loaded_at_import"] == ["PIL.Image", "gdcm", "jpeg_ls", "pylibjpeg", "urllib.request"]
    assert deferred["loaded_at_import"] == []           # the hook did defer them ...
    assert len(deferred["pixels"]) == len(COMPRESSED)   # ... and each syntax still decodes,
    assert deferred["pixels"] == eager["pixels"]        # to the same pixels
    assert deferred["coders"] == eager["coders"]        # same registry, same plugin order
    assert any(av and "gdcm" in av for av, *_ in eager["coders"].values())
    assert deferred["handlers"] == eager["handlers"]
    assert deferred["testdata"] == eager["testdata"]
    assert eager["examples"][0] is True and deferred["examples"][0] is False   # examples deferred ...
    assert deferred["examples"][1:] == eager["examples"][1:]                   # ... and the same


KEYWORDS = """
import hashlib, json, sys
if sys.argv[1] == "deferred":
    from vindr_cli.dicomio.lazy import defer_pydicom_backends
    defer_pydicom_backends()
import pydicom.datadict as d
items = list(d.keyword_dict.items())
print(json.dumps({"n": len(items), "sha": hashlib.sha256(repr(items).encode()).hexdigest(),
                  "types": sorted({type(t).__name__ for _, t in items}),
                  "lookups": all(d.tag_for_keyword(k) == t for k, t in items)}))
if sys.argv[1] == "deferred":
    import vindr_cli.dicomio.lazy as lazy
    print(lazy.datadict_rewritten)
"""


def test_datadict_keyword_dict_is_the_same_with_the_hook():
    """The hook rebuilds pydicom.datadict.keyword_dict without a call per tag: the same
    keys, values (plain ints), and insertion order as pydicom's own comprehension."""
    runs = {}
    for mode in ("eager", "deferred"):
        p = subprocess.run([sys.executable, "-c", KEYWORDS, mode], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        runs[mode] = json.loads(p.stdout.splitlines()[0])
        rewritten = p.stdout.splitlines()[1:]
    import pydicom

    if pydicom.__version__ == "3.0.2":
        assert rewritten == ["True"]                   # the deferred run did use the rewrite
    assert runs["eager"]["n"] > 4000 and runs["eager"]["lookups"]
    assert runs["deferred"] == runs["eager"]


def test_datadict_rewrite_is_exact_and_guarded():
    """For every tag of DicomDictionary, what pydicom's comprehension calls equals the
    entry's keyword (so the rewrite is the same mapping), the rewrite applies to pydicom
    3.0.2's file, and not to a file that differs by one byte."""
    import importlib.util

    import pydicom
    from pydicom.datadict import DicomDictionary, dictionary_keyword, keyword_dict

    from vindr_cli.dicomio import lazy

    assert all(dictionary_keyword(tag) == entry[4] for tag, entry in DicomDictionary.items())
    assert keyword_dict == {entry[4]: tag for tag, entry in DicomDictionary.items()}
    spec = importlib.util.find_spec("pydicom.datadict")
    code = spec.loader.get_code("pydicom.datadict")
    source = spec.loader.get_data(spec.origin)
    fast = lazy._fast_keyword_dict(code, source)
    if pydicom.__version__ == "3.0.2":
        assert fast is not None
        ns = {}
        exec(fast, ns)
        assert list(ns["keyword_dict"].items()) == list(keyword_dict.items())
    assert lazy._fast_keyword_dict(code, source + b"\n") is None


VR_TABLES = """
import json, pickle, re, sys
if sys.argv[1] == "deferred":
    from vindr_cli.dicomio.lazy import defer_pydicom_backends
    defer_pydicom_backends()
import pydicom.valuerep as v
import pydicom.uid as u
compiled_at_import = [dict.__len__(v.STR_VR_REGEXES), dict.__len__(v.BYTE_VR_REGEXES)]
def show(table):
    return [[k, type(p.pattern).__name__, repr(p.pattern), p.flags] for k, p in table.items()]
checks = [v.validate_regex(vr, value)[0] for vr in v.VR_REGEXES
          for value in ("20200101", b"20200101", "1.2.3", b"1.02", "ABC_1", " 12 ", "x\\n", b"-0.5e3")]
out = {"str": show(v.STR_VR_REGEXES), "bytes": show(v.BYTE_VR_REGEXES), "uid": [u.RE_VALID_UID.pattern,
       u.UID("1.2.840.10008.1.2").is_valid, u.UID("1.02").is_valid], "checks": checks,
       "eq": v.STR_VR_REGEXES == {k: re.compile(p) for k, p in v.VR_REGEXES.items()},
       "len": [len(v.STR_VR_REGEXES), len(v.BYTE_VR_REGEXES)], "keys": list(v.BYTE_VR_REGEXES),
       "pickled": show(pickle.loads(pickle.dumps(v.BYTE_VR_REGEXES))),
       "compiled_at_import": compiled_at_import}
if sys.argv[1] == "deferred":
    import vindr_cli.dicomio.lazy as lazy
    out["rewritten"] = lazy.valuerep_rewritten
print(json.dumps(out))
"""


def test_valuerep_pattern_tables_are_the_same_with_the_hook():
    """pydicom.valuerep's STR_VR_REGEXES / BYTE_VR_REGEXES, compiled when first read with the
    hook: the same keys, order, patterns and flags, the same validation answers and UID checks
    as pydicom's own eager comprehensions, and only "UI" (read by pydicom.uid) compiled at import."""
    import pydicom

    runs = {}
    for mode in ("eager", "deferred"):
        p = subprocess.run([sys.executable, "-c", VR_TABLES, mode], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        runs[mode] = json.loads(p.stdout)
    eager, deferred = runs["eager"], runs["deferred"]
    assert len(eager["str"]) == 10 and eager["eq"] and eager["compiled_at_import"] == [10, 10]
    if pydicom.__version__ == "3.0.2":
        assert deferred.pop("rewritten") is True
        assert deferred.pop("compiled_at_import") == [1, 0]      # only pydicom.uid's "UI"
        eager.pop("compiled_at_import")
    assert deferred == eager


def test_valuerep_rewrite_is_guarded_and_lazy_patterns_behave_as_a_dict():
    import importlib.util
    import re

    import pydicom

    from vindr_cli.dicomio import lazy

    spec = importlib.util.find_spec("pydicom.valuerep")
    code = spec.loader.get_code("pydicom.valuerep")
    source = spec.loader.get_data(spec.origin)
    assert lazy._lazy_vr_tables(code, source + b"\n") is None     # another file: left as it is
    if pydicom.__version__ == "3.0.2":
        assert lazy._lazy_vr_tables(code, source) is not None
    sources = {"A": r"^a+$", "B": r"^b$", "C": r"c"}
    t = lazy.LazyPatterns(sources.items())
    assert dict.__len__(t) == 0 and "B" in t and "Z" not in t and t.get("Z", 5) == 5
    assert t["B"] == re.compile(r"^b$") and dict.__len__(t) == 1      # one key compiled on read
    assert list(t) == ["A", "B", "C"] and dict.__len__(t) == 3         # all, in order, on iteration
    assert t == {k: re.compile(v) for k, v in sources.items()}
    b = lazy.LazyPatterns(sources.items(), encode=True)
    assert list(b.values()) == [re.compile(v.encode()) for v in sources.values()]
    c = lazy.LazyPatterns(sources.items())
    c["D"] = re.compile("d")
    assert list(c) == ["A", "B", "C", "D"]
    try:
        lazy.LazyPatterns({}.items())["X"]
    except KeyError:
        pass
    else:
        raise AssertionError("a missing key must raise KeyError")


PRIVATE = """
import hashlib, json, sys
if sys.argv[1] == "deferred":
    from vindr_cli.dicomio.lazy import defer_pydicom_backends
    defer_pydicom_backends()
import pydicom
import pydicom._private_dict as pd
import pydicom.datadict as dd
built_at_import = dict.__len__(pd.private_dictionaries) > 0
same_object = pd.private_dictionaries is dd.private_dictionaries
desc = dd.private_dictionary_description(0x00091001, "GEMS_IDEN_01")
items = sorted((k, sorted(v.items())) for k, v in pd.private_dictionaries.items())
dd.add_private_dict_entries("VINDR TEST 1", {0x00410001: ("US", "1", "Test One")})
out = {"n": len(items), "sha": hashlib.sha256(repr(items).encode()).hexdigest(), "desc": desc,
       "same": same_object, "added": dd.get_private_entry(0x00410001, "VINDR TEST 1")[:3],
       "added_in_module": "VINDR TEST 1" in pd.private_dictionaries, "annotations": list(pd.__annotations__),
       "doc": (pd.__doc__ or "")[:40], "built_at_import": built_at_import}
if sys.argv[1] == "deferred":
    import vindr_cli.dicomio.lazy as lazy
    out["lazy"] = type(pd.private_dictionaries).__name__
print(json.dumps(out))
"""


def test_private_dictionary_is_loaded_on_first_use_and_the_same():
    """pydicom._private_dict runs when its table is first used (vindr_cli.dicomio.lazy.LazyTable):
    the same creators and entries, the same object in _private_dict and datadict, additions seen
    by both, lookups as with an eager import."""
    import pydicom

    runs = {}
    for mode in ("eager", "deferred"):
        p = subprocess.run([sys.executable, "-c", PRIVATE, mode], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        runs[mode] = json.loads(p.stdout)
    eager, deferred = runs["eager"], runs["deferred"]
    assert eager["n"] > 400 and eager["built_at_import"] and eager["added_in_module"] and eager["same"]
    if pydicom.__version__ == "3.0.2":
        assert deferred.pop("lazy") == "LazyTable"
        assert deferred.pop("built_at_import") is False          # not run at import ...
        eager.pop("built_at_import")
    assert deferred == eager                                      # ... and the same once used


def test_a_named_command_is_built_alone_and_behaves_the_same():
    """cli.app_for: `vindr CMD ...` builds only CMD; its help, its usage errors and its exit
    codes are those of the whole app; anything else runs the whole app, left unchanged."""
    from typer.testing import CliRunner

    from vindr_cli.cli import app, app_for

    names = sorted(typer_commands())
    assert len(names) >= 12
    assert app_for([]) is app and app_for(["--help"]) is app and app_for(["--version"]) is app
    assert app_for(["anonymiz"]) is app                  # a misspelt command keeps its suggestions
    runner = CliRunner()
    for name in names:
        one = app_for([name, "--help"])
        assert one is not app and len(one.registered_commands) == 1
        for args in ([name, "--help"], [name, "--no-such-option"], [name]):
            whole, alone = runner.invoke(app, args), runner.invoke(one, args)
            assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output), args
    assert len(app.registered_commands) == len(names)    # the app itself is untouched


def typer_commands():
    import typer

    from vindr_cli.cli import app

    return typer.main.get_command(app).commands


VERSION = """
import json, sys
if sys.argv[1] == "deferred":
    from vindr_cli.dicomio.lazy import defer_pydicom_backends
    defer_pydicom_backends()
import pydicom, pydicom._version as v, pydicom.uid as u
metadata_at_import = "importlib.metadata" in sys.modules
print(json.dumps([metadata_at_import, pydicom.__version__, list(pydicom.__version_info__), v.__version__,
                  str(u.PYDICOM_IMPLEMENTATION_UID), v.version("numpy")]))
"""


def test_pydicom_version_is_read_without_importlib_metadata_and_the_same():
    runs = {}
    for mode in ("eager", "deferred"):
        p = subprocess.run([sys.executable, "-c", VERSION, mode], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        runs[mode] = json.loads(p.stdout)
    assert runs["eager"][0] is True and runs["deferred"][0] is False
    assert runs["deferred"][1:] == runs["eager"][1:]


ALL_DISTS = """
import importlib.metadata, json
from vindr_cli.dicomio.lazy import dist_version
names = sorted({d.metadata["Name"] for d in importlib.metadata.distributions()})
print(json.dumps([[n, dist_version(n), importlib.metadata.version(n)] for n in names]))
"""


def test_dist_version_equals_importlib_metadata_for_every_installed_distribution():
    """In a fresh interpreter (only the standard finders) every installed distribution's
    version is read, the same as importlib.metadata's; here, where the test session may have
    put another distribution finder on sys.meta_path (importlib_metadata's, brought by Dask),
    any answer given is the same, and a finder that lists distributions makes it give none."""
    import importlib.metadata

    from vindr_cli.dicomio.lazy import dist_version

    p = subprocess.run([sys.executable, "-c", ALL_DISTS], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(p.stdout)
    assert len(rows) > 20
    assert all(fast is None or fast == real for _, fast, real in rows), [r for r in rows if r[1] != r[2]]
    assert sum(fast is not None for _, fast, _ in rows) >= 0.9 * len(rows)   # the plain case is the usual one
    for name, _, _ in rows:
        fast = dist_version(name)
        assert fast is None or fast == importlib.metadata.version(name), name

    class Lister:                       # another finder that lists distributions
        @staticmethod
        def find_spec(*args, **kwargs):
            return None

        @staticmethod
        def find_distributions(*args, **kwargs):
            return iter(())

    sys.meta_path.append(Lister)
    try:
        assert dist_version("pydicom") is None
    finally:
        sys.meta_path.remove(Lister)
    assert dist_version("no-such-distribution-here") is None


DISTS = """
import json, sys
sys.path[:] = sys.argv[1:] + sys.path
import importlib.metadata
from vindr_cli.dicomio.lazy import dist_version
out = {}
for name in ("fake-pkg", "Fake.Pkg", "folded", "nometa", "zipped", "egged"):
    try:
        real = importlib.metadata.version(name)
    except Exception as exc:
        real = type(exc).__name__
    out[name] = [dist_version(name), real]
print(json.dumps(out))
"""


def test_dist_version_reads_the_first_folder_or_gives_up(tmp_path):
    """The first sys.path folder with the distribution wins (as in importlib.metadata); a
    folded Version header, a dist without METADATA, a zip or an egg on the path: None."""
    import zipfile

    def dist(folder, dirname, text):
        d = tmp_path / folder / dirname
        d.mkdir(parents=True)
        if text is not None:
            (d / "METADATA").write_text(text, encoding="utf-8")

    dist("a", "Fake_Pkg-2.0.dist-info", "Metadata-Version: 2.1\nName: Fake_Pkg\nVersion: 2.0\n\nbody\n")
    dist("b", "fake.pkg-1.0.dist-info", "Metadata-Version: 2.1\nName: fake.pkg\nVersion: 1.0\n")
    dist("b", "folded-1.0.dist-info", "Name: folded\nVersion: 1.0\n  .1\n")
    dist("b", "nometa-1.0.dist-info", None)
    (tmp_path / "b" / "nometa-1.0.dist-info" / "PKG-INFO").write_text("Name: nometa\nVersion: 3\n")
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.writestr("zipped-4.0.dist-info/METADATA", "Name: zipped\nVersion: 4.0\n")
    (tmp_path / "x.egg" / "EGG-INFO").mkdir(parents=True)
    p = subprocess.run([sys.executable, "-c", DISTS, str(tmp_path / "a"), str(tmp_path / "b")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["fake-pkg"] == ["2.0", "2.0"] and out["Fake.Pkg"] == ["2.0", "2.0"]
    assert out["folded"][0] is None and out["nometa"] == [None, "3"]
    p = subprocess.run([sys.executable, "-c", DISTS, str(tmp_path / "z.zip"), str(tmp_path / "a")],
                       capture_output=True, text=True)
    out = json.loads(p.stdout)
    assert out["zipped"] == [None, "4.0"] and out["fake-pkg"] == [None, "2.0"]   # the zip comes first
    p = subprocess.run([sys.executable, "-c", DISTS, str(tmp_path / "x.egg"), str(tmp_path / "a")],
                       capture_output=True, text=True)
    assert json.loads(p.stdout)["fake-pkg"] == [None, "2.0"]


GC = """
import gc, json, sys
default = gc.get_threshold()
import vindr_cli.cli
from vindr_cli.startup import BUDGET
raised = gc.get_threshold()
before = gc.get_stats()[0]["collections"]
class Node:
    pass
for _ in range(BUDGET * 2):              # cyclic garbage, more than the budget
    a, b = Node(), Node()
    a.b, b.a = b, a
after = gc.get_threshold()
restored_by = [cb for cb in gc.callbacks if getattr(cb, "_vindr_restore", False)]
print(json.dumps([default, raised, after, gc.get_stats()[0]["collections"] - before, len(restored_by),
                  sum(1 for o in gc.get_objects() if type(o) is Node)]))
"""


def test_first_collection_is_deferred_then_thresholds_come_back():
    """Importing the CLI raises the first threshold to the budget; the first collection
    (after the budget) frees the cyclic garbage and puts the process's thresholds back."""
    p = subprocess.run([sys.executable, "-c", GC], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    default, raised, after, collections, callbacks, alive = json.loads(p.stdout)
    from vindr_cli.startup import BUDGET

    assert raised == [BUDGET, *default[1:]] and after == default
    assert collections > 1 and callbacks == 0
    assert alive < BUDGET // 2                   # the cycles were collected, not kept


def test_one_file_start_up_runs_far_fewer_collections(tmp_path):
    """The same one-file run with the default thresholds collects many times more often."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / "a.dcm")
    key = key_file_in(tmp_path)
    runs = {}
    for mode in ((), ("--gc-as-before",)):
        report, p = _probe(*mode, "anonymize", src, tmp_path / f"out{len(mode)}", "--key", key, "--burned-in", "off")
        assert p.returncode == 0, p.stderr[-2000:]
        runs[mode] = report["collections"]
    assert runs[()] * 3 < runs[("--gc-as-before",)], runs
