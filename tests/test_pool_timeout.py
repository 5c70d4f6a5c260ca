"""The local pool's per-item time limit (``--task-timeout`` with ``--executor local``).

A real hang, not a stub: the hung item opens a FIFO that no process ever writes, so its
worker blocks inside ``open(2)`` in C, where no Python-level timeout reaches it. The pool
must kill that worker, give the item ``ItemFailed(TIMED_OUT)``, run every other item, and
leave no worker behind. Then through a real stage (``vindr info``'s) where a file became a
FIFO after discovery: a ``failed`` row with the fixed reason, the other files read; and
through ``vindr audit``: a ``not-audited`` finding.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from vindr_cli.info.scan import InfoStage
from vindr_cli.runner.discover import NOT_REGULAR, discover
from vindr_cli.runner.executor import (TIMED_OUT, WORKER_DIED, InProcessExecutor, ItemFailed, LocalExecutor,
                                       ProcessExecutor, make_executor)
from vindr_cli.runner.sources import Source
from vindr_cli.runner.stage import run_stage

REPO = Path(__file__).resolve().parent.parent


def _setup(config):
    return config


def _read_or_double(fifo: str, item):
    """Items are ints (doubled) or "hang" (opens the FIFO: blocks until a writer comes,
    which never happens) or "die" (kills its own worker). Each answer carries its pid."""
    if item == "hang":
        with open(fifo, "rb") as f:
            return f.read()
    if item == "die":
        os.kill(os.getpid(), 9)
    return item * 2, os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                              # a zombie child of this process is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture
def fifo(tmp_path) -> str:
    p = tmp_path / "never-written"
    os.mkfifo(p)
    return str(p)


def _worker_pids(ex, fifo) -> set[int]:
    return {r[1] for _, r in ex.run(_read_or_double, range(8), setup=_setup, config=fifo) if isinstance(r, tuple)}


def test_hung_item_is_timed_out_and_its_worker_killed(fifo):
    ex = ProcessExecutor(2, in_flight=4, task_timeout=1.5)
    items = [1, 2, "hang", 3, 4, 5, 6, 7, 8, 9]
    got = dict(ex.run(_read_or_double, items, setup=_setup, config=fifo))
    assert set(got) == set(items)                      # every item accounted for
    assert got["hang"] == ItemFailed(TIMED_OUT)
    assert {k: v[0] for k, v in got.items() if k != "hang"} == {i: 2 * i for i in items if i != "hang"}
    pids = {v[1] for k, v in got.items() if k != "hang"}
    assert os.getpid() not in pids                     # they ran in workers, not here
    time.sleep(0.2)
    assert not any(_alive(p) for p in pids)            # the pools were shut down; the hung worker was killed


def test_hang_and_worker_death_together(fifo):
    """A hung item and one that kills its worker in the same batch: the first is TIMED_OUT, the
    second WORKER_DIED (found alone), every other item done."""
    ex = ProcessExecutor(2, in_flight=3, task_timeout=1.5)
    items = [1, "die", 2, "hang", 3, 4]
    got = dict(ex.run(_read_or_double, items, setup=_setup, config=fifo))
    assert got["hang"] == ItemFailed(TIMED_OUT) and got["die"] == ItemFailed(WORKER_DIED)
    assert {k: v[0] for k, v in got.items() if k not in ("hang", "die")} == {1: 2, 2: 4, 3: 6, 4: 8}


def test_no_limit_means_no_kill():
    """Without a time limit the pool never looks (task_timeout None), and a slow item is just slow."""
    ex = ProcessExecutor(2, task_timeout=None)
    got = dict(ex.run(_read_or_double, [1, 2, 3], setup=_setup, config="unused"))
    assert {k: v[0] for k, v in got.items()} == {1: 2, 2: 4, 3: 6}


def test_local_executor_sizes_itself():
    ex = LocalExecutor(task_timeout=5.0)
    assert isinstance(ex.sized(1, 100), InProcessExecutor)
    assert isinstance(ex.sized(4, 1), InProcessExecutor)
    pool = ex.sized(4, 100)
    assert isinstance(pool, ProcessExecutor) and pool.task_timeout == 5.0 and pool.workers == 4
    assert make_executor(4, 100).task_timeout is None      # a pool built without the CLI: no limit


def test_stage_row_for_a_file_that_became_a_fifo(tmp_path, fifo):
    """`vindr info`'s stage over real DICOM files, one of which was replaced by a FIFO after
    discovery (the source says regular; opening it would block): a failed row with the fixed
    reason, every other file read, and the run ends. Since hostile10 the open itself refuses
    it (``Source.open``: non-blocking, checked on the descriptor) with discovery's reason for a
    FIFO, so no worker waits for ``--task-timeout``; the executor's timeout is tested above."""
    from pydicom.data import get_testdata_file

    src = tmp_path / "in"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"):
        p = get_testdata_file(name, download=False)
        if p is None:
            pytest.skip(f"pydicom test file {name} not here")
        (src / name).write_bytes(Path(p).read_bytes())
    sources = discover(src)
    sources.append(Source(path=fifo, rel="swapped.dcm", size=1234))      # what discovery saw: a file
    stage = InfoStage()
    s = run_stage(stage, src, executor=LocalExecutor(task_timeout=2.0), workers=2, sources=sources)
    rows = s.rows["probe"]
    assert len(rows) == 4
    assert [r["status"] for r in rows].count("failed") == 1
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["reason"] == NOT_REGULAR
    assert stage.tally.counts["dicom"] == 3


def test_audit_file_swapped_for_a_fifo_is_not_audited(tmp_path, small_export, key_file):
    """`vindr audit`'s per-file checks in the local pool: an output replaced by a FIFO after
    the walk (the progress callback runs between the walk and the workers) blocks its worker;
    it becomes a `not-audited` finding, and every other file is audited as in one process."""
    from vindr_cli.deid.audit import audit
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    out, link = tmp_path / "anon", tmp_path / "anon.linkage.parquet"
    anonymize(small_export, out, key_path=key_file, profile=load_profile(), workers=1, linkage=link,
              burned_in="off")
    outputs = sorted(p for p in out.rglob("*.dcm"))
    assert len(outputs) >= 2
    reference = audit(out, link, pixels=False)
    swapped = outputs[0]

    def swap(done, total):
        if done == 0:
            swapped.unlink()
            os.mkfifo(swapped)

    report = audit(out, link, pixels=False, executor=LocalExecutor(task_timeout=2.0), workers=2, progress=swap)
    rel = swapped.relative_to(out).as_posix()
    got = [(f.kind, f.where, f.detail) for f in report.findings]
    assert ("not-audited", rel, f"not audited: {TIMED_OUT}") in got
    expected = [(f.kind, f.where, f.detail) for f in reference.findings if f.where != rel]
    assert [g for g in got if g[1] != rel] == expected
    assert report.dicom_files == reference.dicom_files - 1

