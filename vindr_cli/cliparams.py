"""Typer's option values coerced without pydantic where the answer is certain (issue 13).

typer 0.29 coerces every option and argument value through a pydantic ``TypeAdapter``:
the first command run imports pydantic and pydantic-core (≈ 0.06–0.09 s CPU, a fifth of a
one-file ``vindr anonymize``) and builds one adapter per parameter. vindr's parameters are
all plain ``str``, ``int``, ``float``, ``bool`` and ``Path`` (no choices, ranges, parsers or
files; ``tests/test_cli_params.py`` checks that), and for the values the command line gives
them the adapter's answer is known:

* ``str``: a ``str`` is returned as it is (typer's before-validator calls ``str(value)``);
* ``int`` / ``float``: a value of that exact type is returned as it is; a string of ASCII
  digits (``-?[0-9]{1,18}``, for ``float`` with ``.[0-9]{1,15}``) is ``int(value)`` /
  ``float(value)``;
* ``bool``: a ``bool`` is returned as it is (typer already skips flags);
* ``Path``: a ``Path``, or a string without NUL that ``Path`` leaves unchanged (``str(Path(v)) == v``),
  goes to typer's own ``coerce_cli_path`` as the ``Path`` pydantic would have made, so its
  checks and messages see the same value.

Anything else (another string, another type, a surrogate-escaped argument) goes to typer's
own pydantic path, built on first use, so its result or its error message is typer's. The
patch applies only to typer 0.29.2 with the names it relies on; otherwise typer runs as it
is. ``tests/test_cli_params.py`` compares the fast answers with pydantic's (Hypothesis).
"""
from __future__ import annotations

import re
from pathlib import Path

_INT = re.compile(r"-?[0-9]{1,18}", re.ASCII)
_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?", re.ASCII)
TYPER_VERSION = "0.29.2"
installed = False


def _text(value) -> bool:
    """A plain ``str`` that is valid Unicode (no lone surrogate from an undecodable byte)."""
    if type(value) is not str:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def fast_value(annotation, value):
    """``(True, coerced)`` when the answer for ``value`` is certain (see the module doc),
    ``(False, None)`` otherwise. ``Path`` values come back as the ``Path`` to check."""
    if annotation is str:
        if _text(value):
            return True, value
    elif annotation is int:
        if type(value) is int:
            return True, value
        if _text(value) and _INT.fullmatch(value):
            return True, int(value)
    elif annotation is float:
        if type(value) is float:
            return True, value
        if _text(value) and _FLOAT.fullmatch(value):
            return True, float(value)
    elif annotation is bool:
        if type(value) is bool:
            return True, value
    elif annotation is Path:
        if isinstance(value, Path) and "\x00" not in str(value):
            return True, value
        if _text(value) and "\x00" not in value:    # a NUL: typer's own path words its error
            p = Path(value)
            if str(p) == value:
                return True, p
    return False, None


def _simple(descriptor) -> bool:
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or info.parser is not None or descriptor.is_choice \
            or descriptor.is_ranged:
        return False
    if descriptor.annotation is Path:
        return descriptor.is_path and info.path_type is None
    return descriptor.annotation in (str, int, float, bool) and not descriptor.is_path


def coerce_without_pydantic() -> None:
    """Install the fast coercion on typer's parameters (once; only for typer 0.29.2)."""
    global installed
    if installed:
        return
    try:
        import typer
        from typer import _coercion, core
        from typer._param_types import coerce_cli_path
    except ImportError:
        return
    base = getattr(_coercion, "RuntimeParam", None)
    slow_builder = getattr(_coercion, "build_runtime_param", None)
    original = getattr(getattr(core, "_TyperParameter", None), "get_runtime_param", None)
    if getattr(typer, "__version__", None) != TYPER_VERSION or base is None or slow_builder is None \
            or original is None or not hasattr(base, "_coerce_value"):
        return
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class FastRuntimeParam(base):
        """The certain cases here; the rest through typer's own (pydantic) runtime param."""

        descriptor: object = None
        slow: list = field(default_factory=list, compare=False)

        def _coerce_value(self, value, param, ctx):
            done, coerced = fast_value(self.annotation, value)
            if done:
                if self.annotation is Path:
                    return coerce_cli_path(coerced, self.parameter_info, path_type=Path, param=param, ctx=ctx)
                return coerced
            if not self.slow:
                self.slow.append(slow_builder(self.descriptor))
            return self.slow[0]._coerce_value(value, param=param, ctx=ctx)

    def get_runtime_param(self):
        if self._runtime_param is None and _simple(self.type_descriptor):
            d = self.type_descriptor
            self._runtime_param = FastRuntimeParam(parameter_info=d.parameter_info, annotation=d.annotation,
                                                   descriptor=d)
        return original(self)

    get_runtime_param.__doc__ = original.__doc__
    core._TyperParameter.get_runtime_param = get_runtime_param
    installed = True


usage_fixed = False


def usage_names_upper() -> None:
    """Arguments named as click names them (``INPUT``, ``[PATH]``, ``FILES...``) on the usage
    line, in the Arguments list and in "Missing argument" errors, instead of typer 0.29's
    ``{input}`` (once; only for typer 0.29.2, whose ``TyperArgument`` these two properties are
    copied from; an argument's own ``metavar`` is kept as given)."""
    global usage_fixed
    if usage_fixed:
        return
    try:
        import typer
        from typer.core import TyperArgument
    except ImportError:
        return
    import inspect

    if getattr(typer, "__version__", None) != TYPER_VERSION \
            or not isinstance(inspect.getattr_static(TyperArgument, "display_name_raw", None), property) \
            or not callable(vars(TyperArgument).get("_usage_display_name")):
        return

    def display_name_raw(self) -> str:
        if self.metavar is not None:
            return self.metavar
        return (self.name or "").upper()

    def _usage_display_name(self) -> str:
        """click's ``Argument.make_metavar``: ``NAME``, ``[NAME]`` when optional, ``...`` when many."""
        name = self.display_name_raw
        if not self.required:
            name = f"[{name}]"
        if self.nargs != 1:
            name += "..."
        return name

    TyperArgument.display_name_raw = property(display_name_raw)     # arguments only, not options
    TyperArgument._usage_display_name = _usage_display_name
    usage_fixed = True
