"""Red team 6 (see tests/test_redteam6.py), resume state: a run of anonymize or decode
(--allow-identified) killed with SIGKILL mid-batch, on the sample's files with the patient's
name and ID in every path. Its journal, temporary files and settings, and the resumed run's
OUTPUT and output, hold no planted value in any form. Held."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import VINDR, key_file_in, run_cli
from test_redteam6 import PLANTED, _leaks, pick_export


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("redteam6runs")
    return pick_export(base / "export"), key_file_in(base)


# ------------------------------------------------------------------ resume state of a killed run

def _killed_after(cmd: list, out: Path, pattern: str, n: int, timeout: float = 120) -> None:
    """Start ``cmd`` in its own process group, SIGKILL the group once ``n`` files matching
    ``pattern`` are under ``out`` (or the command ended)."""
    e = dict(os.environ, COLUMNS="200")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if out.exists() and len(list(out.rglob(pattern))) >= n:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.parametrize("stage", ["anonymize", "decode --allow-identified"])
def test_a_killed_run_leaves_no_planted_value_in_output(export, tmp_path, stage):
    """What held: the journal, the temporary files and the settings of a run killed with
    SIGKILL mid-batch name inputs by keyed values only; the re-run resumes and its OUTPUT
    is clean too."""
    src, key = export
    out = tmp_path / "out"
    if stage == "anonymize":
        args = ["anonymize", src, out, "--key", key, "--linkage", tmp_path / "l.parquet"]
        pattern = "*.dcm"
    else:
        args = ["decode", src, out, "--allow-identified", "--size", "64"]
        pattern = "*.png"
    args = [*args, "-j", "2"]
    _killed_after([*VINDR, *map(str, args)], out, pattern, 3)
    assert (out / ".vindr").is_dir()
    assert _leaks(out, PLANTED) == []
    p = run_cli(*args)
    assert "resumed" in p.stdout + p.stderr or len(list(out.rglob(pattern))) >= 8
    assert _leaks(out, PLANTED, p.stdout + p.stderr) == []
