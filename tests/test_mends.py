"""mends (issue 13): the first pass's reads in the driver are bounded by --task-timeout, and a
resume with nothing new does not re-read the headers of done inputs that did not change."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

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


# ------------------------------------------------------------------ the first pass skipped on a resume with nothing new

def _study(src: Path, referring: str = "HOAN^VAN^MINH") -> None:
    """One study: ``lut`` spells TRANVANBINH (UTF-16) in a LUTData and names no one; ``plain``
    names its referring physician (``referring``, 13 characters)."""
    from test_redteam8 import _study_file, _voi_lut

    _study_file(src, "lut", 2, VOILUTSequence=_voi_lut("OW", "TRANVANBINH".encode("utf-16-le")))
    _study_file(src, "plain", 3, ReferringPhysicianName=referring)


def _run(src, out, key, **kw):
    import warnings

    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anonymize(src, out, key_path=key, profile=load_profile(), workers=1,
                         linkage=out.parent / "anon.linkage.parquet", **kw)


def test_a_resume_with_nothing_new_skips_the_first_pass(tmp_path):
    """Nothing changed since a completed run: no header is read again, nothing is written
    again; a new file is read with its study's files only; --no-study-terms leaves no record."""
    from helpers import key_file_in, tree_hashes
    from test_redteam8 import _study_file
    from test_studyterms import _file
    from vindr_cli.deid import unchanged

    src, out = tmp_path / "export", tmp_path / "anon"
    key = key_file_in(tmp_path)
    _study(src)
    _file(src, "other", "1.2.826.0.1.3680043.10.543.99", 7, pid="BN7654321")   # another study and patient
    got = _run(src, out, key)
    assert (got.first_pass, got.headers_read) == ("read", 3)
    record = out / ".vindr" / unchanged.FILE
    text = record.read_text()
    assert not any(w in text for w in ("HOAN", "lut", "plain", "other", "BN", "1.2.826"))
    before = tree_hashes(out, skip=(".vindr",))
    again = _run(src, out, key)
    assert (again.first_pass, again.headers_read, again.resumed) == ("skipped", 0, 3)
    assert tree_hashes(out, skip=(".vindr",)) == before
    _study_file(src, "third", 4)                   # lut's and plain's study and patient
    got = _run(src, out, key)
    assert (got.first_pass, got.headers_read, got.resumed) == ("partial", 3, 3)
    assert _run(src, out, key).first_pass == "skipped"
    _run(src, out, key, study_terms=False)
    assert not record.exists()
    assert _run(src, out, key).first_pass == "read"


def test_a_partial_pass_reads_the_groups_of_the_groups_it_reads(tmp_path):
    """``f`` (study S1) and ``m`` (S2) are one patient's; ``n`` (S2, another patient) names the
    operator that ``m`` spells in its LUT. ``f`` is rewritten (same size, mtime set back) to name
    someone new: its patient's files are redone, ``m`` among them, and ``m``'s study is read whole
    (``n`` too, though of another patient): the operator stays out of ``m``'s new output."""
    from helpers import key_file_in
    from test_redteam8 import _voi_lut
    from test_studyterms import _file

    s1, s2 = "1.2.826.0.1.3680043.10.543.81", "1.2.826.0.1.3680043.10.543.82"
    src, out = tmp_path / "export", tmp_path / "anon"
    key = key_file_in(tmp_path)
    _file(src, "f", s1, 1, ReferringPhysicianName="HOAN^VAN^MINH")
    _file(src, "m", s2, 2, VOILUTSequence=_voi_lut("OW", "PHAMTHIDUNG".encode("utf-16-le")))
    _file(src, "n", s2, 3, pid="BN7654321", OperatorsName="PHAM^THI^DUNG")
    _run(src, out, key)
    rows = {Path(r["input_path"]).name: r for r in pq.read_table(out.parent / "anon.linkage.parquet").to_pylist()}
    m_out = out / rows["m.dcm"]["output"]
    assert "PHAMTHIDUNG".encode("utf-16-le") not in m_out.read_bytes()
    first = m_out.read_bytes()
    f = src / "f.dcm"
    st, data = os.stat(f), f.read_bytes()
    with open(f, "r+b") as fh:
        fh.write(data.replace(b"HOAN^VAN^MINH", b"TRAN^VAN^BINH"))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    got = _run(src, out, key)
    assert (got.first_pass, got.headers_read) == ("partial", 3)
    assert got.resumed == 1                          # n: its groups gained no one
    again = m_out.read_bytes()
    assert again == first                            # sought for n's operator as before


def test_a_file_rewritten_with_its_size_and_mtime_kept_is_read_again(tmp_path):
    """``plain`` rewritten in place (same inode, same size, its mtime set back) to name the
    referring physician that ``lut`` spells in its LUT: the change of its ctime makes the re-run
    read it and its study, and ``lut``'s output is written again without his name."""
    from helpers import key_file_in

    src, out = tmp_path / "export", tmp_path / "anon"
    key = key_file_in(tmp_path)
    _study(src)
    _run(src, out, key)
    rows = {Path(r["input_path"]).name: r for r in pq.read_table(out.parent / "anon.linkage.parquet").to_pylist()}
    lut_out = out / rows["lut.dcm"]["output"]
    assert "TRANVANBINH".encode("utf-16-le") in lut_out.read_bytes()     # no one named him yet
    plain = src / "plain.dcm"
    st = os.stat(plain)
    data = plain.read_bytes()
    assert data.count(b"HOAN^VAN^MINH") == 1
    with open(plain, "r+b") as f:
        f.write(data.replace(b"HOAN^VAN^MINH", b"TRAN^VAN^BINH"))
    os.utime(plain, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(plain)
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    got = _run(src, out, key)
    assert (got.first_pass, got.headers_read, got.resumed) == ("partial", 2, 0)
    assert "TRANVANBINH".encode("utf-16-le") not in lut_out.read_bytes()


def test_a_done_output_lost_brings_the_first_pass_back(tmp_path):
    """An output deleted (to be written again) is not done: the pass reads it and its study's
    files, so the output written again is sought for its study's people as the first one was."""
    from helpers import key_file_in

    src, out = tmp_path / "export", tmp_path / "anon"
    key = key_file_in(tmp_path)
    _study(src, referring="TRAN^VAN^BINH")
    _run(src, out, key)
    rows = {Path(r["input_path"]).name: r for r in pq.read_table(out.parent / "anon.linkage.parquet").to_pylist()}
    lut_out = out / rows["lut.dcm"]["output"]
    first = lut_out.read_bytes()
    assert "TRANVANBINH".encode("utf-16-le") not in first
    lut_out.unlink()
    got = _run(src, out, key)
    assert (got.first_pass, got.headers_read, got.resumed) == ("partial", 2, 1)
    assert lut_out.read_bytes() == first


def test_an_input_the_pass_could_not_read_is_read_again(tmp_path):
    """An input whose header the first pass could not read (here not DICOM; alike a read error
    or a time-out, which may not recur) is not recorded: every resume reads it again, alone."""
    from helpers import key_file_in
    from vindr_cli.deid import unchanged

    src, out = tmp_path / "export", tmp_path / "anon"
    key = key_file_in(tmp_path)
    _study(src)
    (src / "notes.txt").write_bytes(b"not a DICOM file\n")
    assert _run(src, out, key).headers_read == 3
    assert len(json.loads((out / ".vindr" / unchanged.FILE).read_text())["inputs"]) == 2
    got = _run(src, out, key)
    assert (got.first_pass, got.headers_read, got.resumed) == ("partial", 1, 3)
