"""vindr_cli.cliparams: typer's option values coerced without pydantic give typer's own answers.

Every parameter of every command is one of the plain kinds the fast path knows (so none
silently keeps the pydantic path); for those kinds, the fast answer equals typer's pydantic
answer (value and type, or the same error message) on generated values; a command line run
with and without the patch prints the same thing and exits the same way; and a command
run with it never imports pydantic."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import typer
from typer import _coercion

from vindr_cli import cliparams
from vindr_cli.cli import app

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
NUMBERS = st.from_regex(r"\A[ +-]?[0-9_]{0,20}(\.[0-9]{0,18})?([eE][+-]?[0-9]{1,3})? ?\Z")
PATHS = st.lists(st.sampled_from(["a", "b.dcm", "..", ".", "", " x", "é", "/", "//", "tmp", "~"]),
                 max_size=5).map("/".join)


def _params() -> dict:
    group = typer.main.get_group(app)
    every = [p for cmd in [group, *group.commands.values()] for p in cmd.params]
    return {"all": every} | {kind: next(p for p in every if p.type_descriptor.annotation is kind)
                             for kind in (str, int, float, bool, Path)}


PARAMS = _params()


def _answer(runtime, value, param):
    try:
        out = runtime._coerce_value(value, param=param, ctx=None)
    except Exception as exc:          # typer's BadParameter (or pydantic's own)
        return ("error", type(exc).__name__, getattr(exc, "message", str(exc)))
    return ("value", type(out).__name__, repr(out))


def _both(kind, value):
    if not cliparams.installed:
        pytest.skip("vindr_cli.cliparams is not installed for this typer")
    param = PARAMS[kind]
    desc = param.type_descriptor
    slow = _coercion.build_runtime_param(desc)
    assert type(slow).__name__ == "AdapterRuntimeParam"       # really typer's pydantic path
    param._runtime_param = None
    fast = param.get_runtime_param()
    assert type(fast).__name__ == "FastRuntimeParam"
    return _answer(fast, value, param), _answer(slow, value, param)


def test_every_vindr_parameter_takes_the_fast_path():
    if typer.__version__ != cliparams.TYPER_VERSION:     # another typer: left as it is
        assert not cliparams.installed
        pytest.skip(f"typer {typer.__version__}: vindr_cli.cliparams applies to {cliparams.TYPER_VERSION} only")
    assert cliparams.installed
    assert len(PARAMS["all"]) > 100
    odd = [(p.name, p.type_descriptor.annotation) for p in PARAMS["all"] if not cliparams._simple(p.type_descriptor)]
    assert odd == []


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from([str, int, float, bool, Path]),
       value=st.one_of(ANY_TEXT, NUMBERS, PATHS, st.integers(-10**20, 10**20),
                       st.floats(allow_nan=False), st.booleans(), PATHS.map(Path)))
def test_fast_answers_equal_typers_pydantic_answers(kind, value):
    fast, slow = _both(kind, value)
    assert fast == slow


@pytest.mark.parametrize("kind,value", [(int, "12"), (int, "-0"), (int, "007"), (int, 5), (float, "1.5"),
                                        (float, "-0.0"), (float, "10"), (float, 1800.0), (str, "basic"),
                                        (str, "é x"), (bool, True), (Path, "a/b.dcm"), (Path, "/tmp"),
                                        (Path, Path("x"))])
def test_the_fast_path_is_taken_for_ordinary_values(kind, value):
    done, _ = cliparams.fast_value(kind, value)
    assert done
    fast, slow = _both(kind, value)
    assert fast == slow and fast[0] == "value"


@pytest.mark.parametrize("kind,value", [(int, "1_000"), (int, " 5"), (int, "5.0"), (int, "x"), (float, "1e3"),
                                        (float, "nan"), (str, "\udcff"), (Path, "a//b"), (Path, ""),
                                        (Path, "a/"), (Path, "\x00"), (Path, "a\x00b"), (bool, "yes"), (int, 2.0)])
def test_other_values_go_to_typers_own_path(kind, value):
    done, _ = cliparams.fast_value(kind, value)
    assert not done
    fast, slow = _both(kind, value)
    assert fast == slow


RUN = """
import json, sys
if sys.argv[1] == "plain":
    import vindr_cli.cliparams as c
    c.installed = True                      # as if already installed: typer left as it is
sys.argv = ["vindr", *sys.argv[2:]]
code = 0
try:
    from vindr_cli.cli import main
    main()
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\nRESULT " + json.dumps({"code": code, "pydantic": "pydantic" in sys.modules}) + "\\n")
"""


def _cli(mode, *args):
    p = subprocess.run([sys.executable, "-c", RUN, mode, *map(str, args)], capture_output=True, text=True)
    lines = p.stderr.splitlines()
    result = json.loads(lines[-1][len("RESULT "):])
    return p.stdout, "\n".join(lines[:-1]), result


@pytest.mark.parametrize("args", [("info", "{tmp}/nothing", "-j", "abc"), ("info", "{tmp}/nothing", "-j", "1_0"),
                                  ("decode", "{tmp}/a", "{tmp}/b", "--max-pixels", "9" * 30),
                                  ("anonymize", "{tmp}/a", "{tmp}/b", "--task-timeout", "soon"),
                                  ("info", "{tmp}/nothing", "-j", "1")])
def test_command_lines_behave_the_same_with_and_without_the_patch(tmp_path, args):
    if not cliparams.installed:
        pytest.skip("vindr_cli.cliparams is not installed for this typer")
    args = [a.format(tmp=tmp_path) for a in args]
    fast = _cli("fast", *args)
    plain = _cli("plain", *args)
    assert fast[0] == plain[0] and fast[1] == plain[1]
    assert fast[2]["code"] == plain[2]["code"] != 0
    assert plain[2]["pydantic"]                     # the plain run did go through pydantic
    if args[-1] == "1":
        assert not fast[2]["pydantic"]              # a valid command line never imports it


def test_every_usage_line_names_its_arguments_upper_case_without_braces():
    """`vindr CMD --help` (and a missing argument) name arguments as click does (INPUT OUTPUT),
    not typer 0.29's `{input} {output}` (vindr_cli.cliparams.usage_names_upper)."""
    from typer.testing import CliRunner

    group = typer.main.get_group(app)
    runner = CliRunner()
    seen = 0
    for name, cmd in group.commands.items():
        out = runner.invoke(app, [name, "--help"], prog_name="vindr")
        assert out.exit_code == 0, (name, out.output[-500:])
        usage = out.output.splitlines()[0]
        assert usage.startswith(f"Usage: vindr {name} [OPTIONS]"), usage
        assert "{" not in usage and "}" not in usage, usage
        args = [p for p in cmd.params if p.param_type_name == "argument"]
        want = " ".join((p.name.upper() if p.required else f"[{p.name.upper()}]") + ("..." if p.nargs != 1 else "")
                        for p in args)
        assert usage.endswith(f"[OPTIONS] {want}".rstrip()), (usage, want)
        help_text = out.output.split("Arguments:", 1)[1] if args else ""
        for p in args:                                   # the Arguments list says the same name
            assert p.name.upper() in help_text and f"  {p.name} " not in help_text, (name, p.name)
        seen += len(args)
    assert seen >= 10
    missing = runner.invoke(app, ["anonymize"], prog_name="vindr")
    assert missing.exit_code == 2 and "Missing argument 'INPUT'" in missing.output, missing.output
