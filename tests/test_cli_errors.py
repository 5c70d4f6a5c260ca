"""One error design: every exit code comes from ``cli.main``'s mapping of vindr_cli.errors.

A library bug (any exception vindr did not raise on purpose) exits 3 with no traceback and
no exception text, whatever the exception type; a bad request exits 2 with one line; the
findings of a checking command exit 1.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vindr_cli import errors
from vindr_cli.baseline.release_data import ReleaseDataError
from vindr_cli.deid.engine import EngineError
from vindr_cli.deid.keyfile import KeyError_
from vindr_cli.deid.profile import ProfileError
from vindr_cli.dicomio.header import BadInput
from vindr_cli.pixels.decode import DecodeError

from helpers import key_hex, run_cli

SECRET = "Nguyen^Van An 19650312"        # stands for file content a bug's message could quote

PATCHED = """
import sys
import importlib
mod = importlib.import_module(sys.argv[1])
exc = eval(sys.argv[2])
def boom(*args, **kwargs):
    raise exc
setattr(mod, sys.argv[3], boom)
sys.argv = ["vindr", *sys.argv[4:]]
from vindr_cli.cli import main
main()
"""


def _patched(module: str, attr: str, exc: str, *args, env=None) -> subprocess.CompletedProcess:
    e = dict(os.environ, COLUMNS="200")
    e.pop("VINDR_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", PATCHED, module, exc, attr, *map(str, args)],
                          capture_output=True, text=True, env=e)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    out = tmp_path / "anon"
    out.mkdir()
    (out / "stray.txt").write_text("x")
    return out


@pytest.mark.parametrize("exc", [f"ValueError({SECRET!r})", f"ZeroDivisionError({SECRET!r})",
                                 f"OSError(2, {SECRET!r})", f"KeyError({SECRET!r})"])
def test_a_library_bug_in_audit_exits_3_without_traceback_or_text(tree, exc):
    p = _patched("vindr_cli.deid.audit", "audit", exc, "audit", tree)
    assert p.returncode == 3, p.stderr
    name = type(eval(exc)).__name__       # OSError(2, ...) is a FileNotFoundError
    assert f"internal error ({name})" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert "Nguyen" not in p.stderr + p.stdout and "19650312" not in p.stderr + p.stdout


def test_a_library_bug_in_anonymize_exits_3(tmp_path, key_file):
    (tmp_path / "in").mkdir()
    p = _patched("vindr_cli.deid.profile", "load_profile", f"ValueError({SECRET!r})",
                 "anonymize", tmp_path / "in", tmp_path / "out", "--key", key_file)
    assert p.returncode == 3, p.stderr
    assert "internal error (ValueError)" in p.stderr
    assert "Traceback" not in p.stderr and "Nguyen" not in p.stderr + p.stdout


def test_vindr_debug_shows_the_traceback(tree):
    p = _patched("vindr_cli.deid.audit", "audit", "ZeroDivisionError('boom')", "audit", tree,
                 env={"VINDR_DEBUG": "1"})
    assert p.returncode != 0 and "Traceback" in p.stderr and "ZeroDivisionError" in p.stderr


def test_a_vindr_error_raised_inside_a_command_uses_its_own_code(tree):
    p = _patched("vindr_cli.deid.audit", "audit", "__import__('vindr_cli.errors').errors.RequestError('no can do')",
                 "audit", tree)
    assert p.returncode == 2 and "error: no can do" in p.stderr and "Traceback" not in p.stderr
    p = _patched("vindr_cli.deid.audit", "audit", "__import__('vindr_cli.errors').errors.InternalError('a state')",
                 "audit", tree)
    assert p.returncode == 3 and "error: a state" in p.stderr


def test_a_bad_profile_exits_2_naming_the_line(tmp_path, key_file):
    (tmp_path / "in").mkdir()
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('base = "basic"\n[actions]\nStudyDescription = "XX"\n')
    p = run_cli("anonymize", tmp_path / "in", tmp_path / "out", "--key", key_file, "--profile", recipe, check=False)
    assert p.returncode == 2, p.stderr
    assert "recipe.toml line 3: unknown action 'XX' for StudyDescription" in " ".join(p.stderr.split())
    assert not (tmp_path / "out").exists()


def test_audit_findings_exit_1_and_a_bad_request_2(tree, tmp_path):
    p = run_cli("audit", tree, check=False)
    assert p.returncode == 1 and "stray-file" in p.stdout and "findings" in p.stderr
    p = run_cli("audit", tmp_path / "nope", check=False)
    assert p.returncode == 2 and "OUTPUT is not a folder" in p.stderr
    p = run_cli("audit", tree, "--linkage", tmp_path / "nope.parquet", check=False)
    assert p.returncode == 2 and "--linkage" in p.stderr


def test_exception_classes_are_in_the_hierarchy():
    for cls in (ProfileError, KeyError_, ReleaseDataError):
        assert issubclass(cls, errors.RequestError) and cls("x").exit_code == 2
        assert not issubclass(cls, ValueError)     # no bare `except ValueError` may catch them as "bad request"
    from vindr_cli.baseline import train  # noqa: F401  (torch is in the test extra)
    assert issubclass(train.CheckpointMismatch, errors.RequestError)
    for cls in (EngineError, DecodeError):
        assert issubclass(cls, errors.InternalError) and cls("x").exit_code == 3
    assert issubclass(BadInput, errors.InternalError) and BadInput("failed", "r").exit_code == 3
    assert errors.exit_code_for(ZeroDivisionError()) == 3
    assert errors.exit_code_for(KeyboardInterrupt()) == 130
    assert errors.exit_code_for(errors.FindingsError("n")) == 1


@pytest.mark.parametrize("args,message", [
    (["--size", "big"], "--size must be N (long side) or WxH"),
    (["--window", "bogus"], "invalid --window 'bogus'"),
])
def test_bad_decode_options_exit_2_with_one_line(tmp_path, args, message):
    (tmp_path / "in").mkdir()
    p = run_cli("decode", tmp_path / "in", tmp_path / "out", *args, check=False)
    assert p.returncode == 2, p.stderr
    assert message in " ".join(p.stderr.split()) and "Traceback" not in p.stderr


def test_a_key_readable_by_others_exits_2(tmp_path, key_file):
    (tmp_path / "in").mkdir()
    key_file.chmod(0o644)
    p = run_cli("anonymize", tmp_path / "in", tmp_path / "out", "--key", key_file, check=False)
    assert p.returncode == 2 and "group or others" in " ".join(p.stderr.split())
    assert "Traceback" not in p.stderr and key_hex() not in p.stderr + p.stdout


@pytest.mark.parametrize("module,attr,args", [
    ("vindr_cli.pixels.batch", "decode_tree", ["decode", "{in}", "{out}"]),
    ("vindr_cli.info.scan", "scan", ["info", "{in}"]),
    ("vindr_cli.deid.linkage", "default_linkage_path", ["audit", "{in}"]),
])
def test_a_bug_in_any_command_exits_3(tmp_path, module, attr, args):
    (tmp_path / "in").mkdir()
    argv = [a.replace("{in}", str(tmp_path / "in")).replace("{out}", str(tmp_path / "out")) for a in args]
    p = _patched(module, attr, f"ZeroDivisionError({SECRET!r})", *argv)
    assert p.returncode == 3, p.stderr
    assert "internal error (ZeroDivisionError)" in p.stderr
    assert "Traceback" not in p.stderr and "Nguyen" not in p.stderr + p.stdout
