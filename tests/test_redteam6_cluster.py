"""Red team 6 (see tests/test_redteam6.py), the Dask cluster: a `dask scheduler` and two
`dask worker` processes on 127.0.0.1, started here and stopped after. What a run on it leaves
in the scheduler's and workers' logs (and their scratch folders), and what the CLI prints, on
the sample's files with the patient's name and ID in every path: nothing planted, in any form.
Held but one: a worker logged an exception it could not pickle, with its text (fixed in
runner/cluster.py)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from helpers import key_file_in, run_cli
from test_redteam6 import PLANTED, _leaks, pick_export


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("redteam6runs")
    return pick_export(base / "export"), key_file_in(base)


class Sticky(Exception):
    """An exception that cannot be pickled (it holds a lock), as a library's may."""

    def __init__(self, msg):
        super().__init__(msg)
        self.lock = threading.Lock()


def shouting_task(ctx, item):
    """A task whose faults quote its item, as a careless one would: a hung item, and an
    exception whose text is the input's path (one that pickles, one that does not)."""
    if "hung" in item:
        time.sleep(ctx)
    if "raise" in item:
        raise RuntimeError(f"cannot read {item}")
    if "sticky" in item:
        raise Sticky(f"cannot read {item}")
    return item.upper()


def shouting_setup(config):
    return config


def test_the_cluster_logs_no_input_path_or_value(export, tmp_path):
    """What held: anonymize of an export with names and IDs in its paths, on a real cluster, and a task that hangs on such a path (timed out, its worker
    restarted) or raises an exception quoting it: the scheduler's and workers' logs and what the
    CLI prints hold no planted value (Dask's own log of a failed task, with its arguments, is
    never reached: cluster.Raised), and the driver still gets the exception's type. Leaked, fixed
    (runner/cluster.py _portable): an exception that cannot be pickled was logged by the worker
    that failed to send it back, with its text."""
    pytest.importorskip("distributed")
    from test_dask_cluster import Cluster

    from vindr_cli.errors import InternalError
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
        sticky = "PHAM MINH DUC_20045678/sticky.dcm"
        ex = cluster.DaskExecutor(c.client, task_timeout=2.0, batch=2)
        got = dict(ex.run(shouting_task, [hung, "PHAM MINH DUC_20045678/a.dcm"], setup=shouting_setup, config=60.0))
        assert got[hung] == ItemFailed(cluster.TIMED_OUT)
        with pytest.raises(RuntimeError):
            list(cluster.DaskExecutor(c.client).run(shouting_task, [loud], setup=shouting_setup, config=0.0))
        # leaked: the worker logged "Failed to serialize Raised(exc=Sticky('cannot read <path>'))"
        with pytest.raises(InternalError, match="^Sticky raised on a Dask worker") as e:
            list(cluster.DaskExecutor(c.client).run(shouting_task, [sticky], setup=shouting_setup, config=0.0))
        printed += str(e.value)
        c.client.wait_for_workers(2, timeout=90)
        time.sleep(1)        # let the processes flush their logs
    finally:
        c.stop()
    logs = sorted(p for p in (tmp_path / "dask").glob("*.log"))
    assert len(logs) == 3 and all(p.stat().st_size > 0 for p in logs)
    assert _leaks(tmp_path / "dask", PLANTED, printed) == []
