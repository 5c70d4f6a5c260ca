"""Red team 6, runs (see tests/test_redteam6.py): what a run leaves or says on the way, not its
results — the state of a run killed mid-batch, and a run on a real Dask cluster (a `dask
scheduler` and two `dask worker` processes on 127.0.0.1, started here and stopped after: the
scheduler's and workers' logs, what the CLI prints). The inputs are the sample's files with
the patient's name and ID in every path; nothing planted may appear in any form. All held."""
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


# ------------------------------------------------------------------ the cluster

def shouting_task(ctx, item):
    """A task whose faults quote its item, as a careless one would: a hung item, and an
    exception whose text is the input's path."""
    if "hung" in item:
        time.sleep(ctx)
    if "raise" in item:
        raise RuntimeError(f"cannot read {item}")
    return item.upper()


def shouting_setup(config):
    return config


def test_the_cluster_logs_no_input_path_or_value(export, tmp_path):
    """What held: anonymize of an export with names and IDs in its paths, on a real cluster, and a task that hangs on such a path (timed out, its worker
    restarted) or raises an exception quoting it: the scheduler's and workers' logs and what the
    CLI prints hold no planted value (Dask's own log of a failed task, with its arguments, is
    never reached: cluster.Raised), and the driver still gets the exception's type."""
    pytest.importorskip("distributed")
    from test_dask_cluster import Cluster

    from vindr_cli.runner import cluster
    from vindr_cli.runner.executor import ItemFailed

    src, key = export
    c = Cluster(tmp_path / "dask")
    try:
        c.start()
        env = {"VINDR_SCHEDULER": c.address}
        p = run_cli("anonymize", src, tmp_path / "anon", "--key", key, "--linkage", tmp_path / "l.parquet",
                    "--burned-in", "off", "--executor", "dask", env=env)      # the paths are the point, not the pixels
        printed = p.stdout + p.stderr
        assert len(list((tmp_path / "anon").rglob("*.dcm"))) == 8
        hung, loud = "NGUYEN VAN AN_20012345/hung.dcm", "TRAN THI BICH_20023456/raise.dcm"
        ex = cluster.DaskExecutor(c.client, task_timeout=2.0, batch=2)
        got = dict(ex.run(shouting_task, [hung, "PHAM MINH DUC_20045678/a.dcm"], setup=shouting_setup, config=60.0))
        assert got[hung] == ItemFailed(cluster.TIMED_OUT)
        with pytest.raises(RuntimeError):
            list(cluster.DaskExecutor(c.client).run(shouting_task, [loud], setup=shouting_setup, config=0.0))
        c.client.wait_for_workers(2, timeout=90)
        time.sleep(1)        # let the processes flush their logs
    finally:
        c.stop()
    logs = sorted(p for p in (tmp_path / "dask").glob("*.log"))
    assert len(logs) == 3 and all(p.stat().st_size > 0 for p in logs)
    assert _leaks(tmp_path / "dask", PLANTED, printed) == []
