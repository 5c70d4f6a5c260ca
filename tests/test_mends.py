"""mends (issue 13): the first pass's reads in the driver are bounded by --task-timeout, and a
resume with nothing new does not re-read the headers of done inputs that did not change."""
from __future__ import annotations

import os
from pathlib import Path

from conftest import make_cr

STUDY = "1.2.826.0.1.3680043.10.543.1"


def _first_bytes(ctx, src):
    """A survey task: a plain blocking open and read (a FIFO with no writer blocks in open(2),
    as a file on a dead mount blocks in read(2))."""
    with open(src.path, "rb") as f:
        return f.read(4)


def _none(cfg):
    return cfg


def test_survey_in_the_driver_is_bounded_by_the_pool_time_limit(tmp_path):
    """`_survey` reads up to SURVEY_HERE inputs in the driver, where the pool's time limit did
    not reach: an input whose read hangs stalled the run for ever. Now it is ItemFailed(TIMED_OUT)
    after the limit, and the inputs after it are read in the pool."""
    from vindr_cli.runner.executor import TIMED_OUT, ItemFailed, ProcessExecutor
    from vindr_cli.runner.sources import Source
    from vindr_cli.runner.stage import Survey, _survey

    a, c = tmp_path / "a", tmp_path / "c"
    a.write_bytes(b"AAAA1")
    c.write_bytes(b"CCCC2")
    fifo = tmp_path / "b"
    os.mkfifo(fifo)
    sources = [Source(str(p), p.name, 5) for p in (a, fifo, c)]
    got: dict[str, object] = {}
    survey = Survey(_first_bytes, _none, None, sources, lambda s, r: got.__setitem__(s.rel, r))
    try:
        _survey(ProcessExecutor(2, task_timeout=1.0), survey, None)
    finally:        # let the thread left blocked in open(2) go
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    assert got["a"] == b"AAAA" and got["c"] == b"CCCC"
    assert isinstance(got["b"], ItemFailed) and got["b"].reason == TIMED_OUT


def test_survey_in_the_driver_without_a_limit_reads_all(tmp_path):
    """No time limit: the driver reads every input itself, in order, as before."""
    from vindr_cli.runner.executor import ProcessExecutor
    from vindr_cli.runner.sources import Source
    from vindr_cli.runner.stage import Survey, _survey

    files = []
    for i in range(5):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"%04d" % i)
        files.append(p)
    got: list[tuple[str, object]] = []
    survey = Survey(_first_bytes, _none, None, [Source(str(p), p.name, 4) for p in files],
                    lambda s, r: got.append((s.rel, r)))
    _survey(ProcessExecutor(2), survey, None)
    assert got == [(f"f{i}", b"%04d" % i) for i in range(5)]


def test_anonymize_with_a_fifo_in_input_finishes(tmp_path: Path, key_file):
    """A FIFO in INPUT (-j 2, first pass in the driver): never opened, one failed row with
    discovery's reason, the study's files written."""
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.runner.discover import NOT_REGULAR
    from vindr_cli.runner.executor import LocalExecutor
    from vindr_cli.tables import read_rows

    src = tmp_path / "in"
    make_cr(src / "a.dcm")
    make_cr(src / "b.dcm", sop=STUDY + ".1.1.9")
    os.mkfifo(src / "pipe.dcm")
    out = tmp_path / "out"
    anonymize(src, out, key_path=key_file, profile=load_profile(), workers=2, write_linkage=False,
              burned_in="off", executor=LocalExecutor(task_timeout=30.0))
    rows = read_rows(out / "manifest.parquet")
    assert sorted((r["status"], r["reason"]) for r in rows) == [("failed", NOT_REGULAR), ("ok", None), ("ok", None)]
