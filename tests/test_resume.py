"""A killed run leaves no partial output under a final name, and a re-run finishes only what is missing."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from conftest import make_cr
from helpers import VINDR, split_file, tree_hashes

KILL_AFTER = 10      # final outputs to wait for before the kill
HANG_GUARD_S = 600   # only a hang guard: an idle 2-core machine needs a few seconds


def _final_outputs(out):
    return [p for p in out.rglob("*.dcm") if ".vindr" not in p.parts]


def _wait_for_outputs(out, proc, n):
    """Poll until `n` outputs are under their final names, however slow the machine is.
    Fails clearly if the run ends first or nothing happens for HANG_GUARD_S (a hang)."""
    start = time.monotonic()
    while len(_final_outputs(out)) < n:
        if proc.poll() is not None:
            pytest.fail(f"anonymize exited ({proc.returncode}) before {n} outputs were written: "
                        "nothing left to kill mid-run")
        if time.monotonic() - start > HANG_GUARD_S:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"hang guard: fewer than {n} outputs after {HANG_GUARD_S} s")
        time.sleep(0.02)


def test_kill_and_resume(tmp_path, key_file):
    src = tmp_path / "in"
    for i in range(120):
        make_cr(src / f"p{i % 7}" / f"{i}.dcm", pid=f"PID{i % 7:04d}", study=f"1.2.826.0.1.3680043.10.543.{i % 7}",
                sop=f"1.2.826.0.1.3680043.10.543.{i % 7}.1.{i}", rows=512, cols=512, seed=i)
    ref = tmp_path / "ref"
    subprocess.run([*VINDR, "anonymize", src, ref, "--key", key_file, "-j", "2", "--no-linkage"], check=True,
                   capture_output=True)
    out = tmp_path / "out"
    proc = subprocess.Popen([*VINDR, "anonymize", src, out, "--key", key_file, "-j", "2", "--no-linkage"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_outputs(out, proc, KILL_AFTER)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = _final_outputs(out)
    assert KILL_AFTER <= len(written) < 120, "the kill should land mid-run"
    assert not (out / "manifest.parquet").exists()
    for p in written:                       # every file under a final name is whole
        assert split_file(p)[1] is not None
    done_before = {p.relative_to(out) for p in written}
    mtimes = {p: p.stat().st_mtime_ns for p in written}
    r = subprocess.run([*VINDR, "anonymize", src, out, "--key", key_file, "-j", "2", "--no-linkage"],
                       capture_output=True, text=True, check=True)
    assert "already done" in r.stdout
    assert tree_hashes(out, skip=(".vindr",)) == tree_hashes(ref, skip=(".vindr",))
    assert not list(out.rglob("*.vindr-part"))
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(rows) == 120 and {r["status"] for r in rows} == {"ok"}
    # files finished before the kill were not written again (journal-based resume)
    journaled = [p for p in written if (out / p.relative_to(out)).stat().st_mtime_ns == mtimes[p]]
    assert len(journaled) >= len(done_before) - 4   # at most the in-flight window is redone
