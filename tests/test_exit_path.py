"""The process exit of a vindr run (vindr_cli/__main__.py): a finished command leaves through
``atexit`` hooks, a stdio flush and ``os._exit``, never through native teardown, where Arrow's
thread pools can abort a finished run (apache/arrow#34314). In-process calls of ``cli.main``
keep Python's normal ``SystemExit``.

The path taken is observed, not timed: a probe registers an ``atexit`` hook (which must run on
both paths) and keeps an object whose ``__del__`` runs only in interpreter teardown (which the
process entry must skip). Each probe runs the package the way ``python -m vindr_cli`` does
(runpy.run_module with run_name "__main__")."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydicom.data import get_testdata_file

from helpers import key_file_in, run_cli

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240

PROBE = """
import atexit, os, runpy, sys

class Teardown:
    def __del__(self):
        os.write(2, b"\\nPROBE-TEARDOWN\\n")

kept = Teardown()                      # freed only when the interpreter tears modules down
atexit.register(lambda: os.write(2, b"\\nPROBE-ATEXIT\\n"))
mode, sys.argv = sys.argv[1], ["vindr", *sys.argv[2:]]
if mode in ("internal", "interrupt"):
    import vindr_cli.cli as cli
    exc = RuntimeError("Nguyen^Van An") if mode == "internal" else KeyboardInterrupt()
    def boom(argv):
        raise exc
    cli.app_for = boom
if mode == "main":                     # the in-process call: cli.main() itself
    from vindr_cli.cli import main
    main()
else:                                  # exactly what `python -m vindr_cli` runs
    runpy.run_module("vindr_cli", run_name="__main__", alter_sys=True)
"""


def _env(**extra) -> dict:
    """The environment of a probe: stdout block-buffered into its pipe, as for most users
    (PYTHONUNBUFFERED would hide a missing flush)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    env.pop("PYTHONUNBUFFERED", None)
    return env


def _probe(mode: str, *args) -> subprocess.CompletedProcess:
    env = _env(COLUMNS="200")
    env.pop("VINDR_DEBUG", None)
    return subprocess.run([sys.executable, "-c", PROBE, mode, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=TIMEOUT_S, cwd=ROOT)


def _fast(p: subprocess.CompletedProcess) -> bool:
    """True when the run left by the os._exit path: atexit hooks ran, teardown did not."""
    assert "PROBE-ATEXIT" in p.stderr, p.stderr[-2000:]        # atexit hooks run on every path
    return "PROBE-TEARDOWN" not in p.stderr


@pytest.fixture(scope="module")
def anon(tmp_path_factory) -> Path:
    """Three small anonymized images (decode refuses identified input)."""
    import pydicom

    base = tmp_path_factory.mktemp("exit")
    src = base / "in"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (src / name).write_bytes(Path(get_testdata_file(name, download=False)).read_bytes())
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm", download=False))
    root = "1.2.826.0.1.3680043.8.498.4242"          # MR_small's instance under another identity
    ds.StudyInstanceUID, ds.SeriesInstanceUID = root, f"{root}.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{root}.1.1"
    ds.save_as(src / "MR_small_RLE.dcm")
    out = base / "anon"
    run_cli("anonymize", src, out, "--key", key_file_in(base), "--burned-in", "off")
    return out


def _complete_decode(out: Path, stdout: str) -> None:
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    assert len(list(out.rglob("*.png"))) == 3
    assert not [p for p in out.rglob("*") if p.name.endswith(".vindr-part")]     # nothing half-written
    # the printed summary is whole: its table and the last line, flushed through a pipe
    assert "ok (images)" in stdout and stdout.rstrip().splitlines()[-1].startswith("images table:")
    assert stdout.rstrip().endswith("images.parquet")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_python_m_decode_leaves_by_os_exit_with_every_output_complete(anon, tmp_path, jobs):
    out = tmp_path / "images"
    p = _probe("entry", "decode", anon, out, "-j", jobs)
    assert p.returncode == 0, p.stderr[-2000:]
    assert _fast(p)                                   # the atexit-only exit was taken
    _complete_decode(out, p.stdout)


def test_the_real_python_m_run_is_complete(anon, tmp_path):
    """`python -m vindr_cli` itself, no probe: same outputs, same summary."""
    out = tmp_path / "images"
    p = run_cli("decode", anon, out, "-j", "1", timeout=TIMEOUT_S)
    _complete_decode(out, p.stdout)


def test_cli_main_called_in_a_process_keeps_the_normal_exit(anon, tmp_path):
    """cli.main() (what in-process callers and tests use) ends with SystemExit and Python's
    normal finalization: the probe's teardown object is freed, so the probe can tell."""
    out = tmp_path / "images"
    p = _probe("main", "decode", anon, out, "-j", "1")
    assert p.returncode == 0, p.stderr[-2000:]
    assert not _fast(p)
    _complete_decode(out, p.stdout)


def test_cli_main_in_this_process_raises_systemexit(tmp_path, monkeypatch, capsys):
    from vindr_cli.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(sys, "argv", ["vindr", "info", str(empty), "--strict"])
    with pytest.raises(SystemExit) as got:
        main()
    assert got.value.code == 1                        # findings: no DICOM file, --strict
    capsys.readouterr()


@pytest.mark.parametrize("mode, args, code, line", [
    ("entry", ("info", "{tmp}/missing"), 2, "error: PATH does not exist"),
    ("entry", ("info", "{tmp}/empty", "--strict"), 1, None),
    ("internal", ("info", "{tmp}/empty"), 3, "internal error (RuntimeError)"),
    ("interrupt", ("info", "{tmp}/empty"), 130, "interrupted: finished work is kept"),
])
def test_exit_codes_and_one_line_reasons_on_the_os_exit_path(tmp_path, mode, args, code, line):
    (tmp_path / "empty").mkdir()
    p = _probe(mode, *(a.format(tmp=tmp_path) for a in args))
    assert p.returncode == code, p.stderr[-2000:]
    assert _fast(p)
    if line is not None:
        assert line in p.stderr
    assert "Traceback" not in p.stderr and "Nguyen" not in p.stderr + p.stdout


def test_help_is_whole_through_a_pipe():
    fast, normal = _probe("entry", "--help"), _probe("main", "--help")
    assert fast.returncode == normal.returncode == 0
    assert _fast(fast) and not _fast(normal)
    # the same text to the last byte (the prog name aside: "python -m vindr_cli" vs "vindr")
    assert "validate" in fast.stdout and fast.stdout.split("\n", 1)[1] == normal.stdout.split("\n", 1)[1]


def test_the_console_script_is_the_same_entry():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"vindr": "vindr_cli.__main__:entry"}
    import vindr_cli.__main__ as m               # importing it runs nothing

    assert callable(m.entry)


@pytest.mark.parametrize("code, status, printed", [(None, 0, ""), (0, 0, ""), (2, 2, ""), (130, 130, ""),
                                                   (True, 1, ""), ("no way", 1, "no way\n")])
def test_exit_status_follows_systemexit(capsys, code, status, printed):
    from vindr_cli.__main__ import exit_status

    assert exit_status(code) == status
    assert capsys.readouterr().err == printed


LEAVE = """
import atexit, os, sys, threading, time
from vindr_cli.__main__ import leave
done = []
def slow():
    time.sleep(0.3)
    done.append(1)
threading.Thread(target=slow).start()                  # a non-daemon thread still running
atexit.register(lambda: sys.stdout.write("buffered, not yet flushed"))      # runs last (LIFO)
atexit.register(lambda: os.write(1, f"joined={len(done)}\\n".encode()))
atexit.register(lambda: 1 / 0)                         # a failing hook: reported, exit goes on
leave(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", [0, 2])
def test_leave_joins_threads_runs_hooks_flushes_and_keeps_the_code(code):
    p = subprocess.run([sys.executable, "-c", LEAVE, str(code)], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert p.returncode == code
    # the thread was joined before the hooks; what the last hook left in stdout's buffer was flushed
    assert p.stdout == "joined=1\nbuffered, not yet flushed"
    assert "ZeroDivisionError" in p.stderr
