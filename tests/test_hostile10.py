"""Hostile input through the newest paths (issue 13, hostile10): anonymize's first pass (the
people of each study, ``deid/studyterms.py``), the header read, ICC profiles in an audited tree.

Files are built in tmp_path from a real, PHI-planted CR (``conftest.make_cr``) by
``tests/hostile_inputs.py``; the heavy cases (10,000 files of one study, a million elements,
10,000 levels) are ``bench/hostile10_bench.py``'s. What the bench found, one test each:

* a reason that depended on the machine: sequences nested 100 deep were the structure walk's
  REASON_DEEP, 200 deep pydicom's RecursionError ("unreadable header (RecursionError)"); a
  declared length of 4 GB was "unreadable header (MemoryError)" under an address-space limit
  and "damaged header: it ends in the middle of an element" without one;
* ``icc.numbers`` (audit's and the anonymizer's person search of an ICC profile) read every
  table entry's block again: a 200 KB profile whose 2,000 entries all cover it asked for 10^8
  numbers (a planted profile in an audited tree: gigabytes).
"""
from __future__ import annotations

import io
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.uid import ImplicitVRLittleEndian

from conftest import PHI, make_cr
from hostile_inputs import UNDEFINED, at, elem, icc_profile, insert, nested
from vindr_cli import reasons
from vindr_cli.dicomio.header import BadInput, read_header
from vindr_cli.dicomio.structure import REASON_DEEP, REASON_TRUNCATED

STUDY = "1.2.826.0.1.3680043.10.543.1"
REPO = Path(__file__).resolve().parent.parent


def _reason(data: bytes) -> str:
    with pytest.raises(BadInput) as got:
        read_header(io.BytesIO(data), len(data))
    return got.value.reason


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> bytes:
    return make_cr(tmp_path_factory.mktemp("base") / "cr.dcm", sop=STUDY + ".1.1.2", seed=1).read_bytes()


@pytest.mark.parametrize("depth", [70, 200, 1000])
def test_deep_nesting_is_the_walks_reason_at_any_depth(base, depth):
    """pydicom's recursion gave out at ~150 levels: the reason then was its exception's name."""
    assert _reason(insert(base, 0x00081140, nested(depth))) == REASON_DEEP


def _huge_length(base: bytes) -> bytes:
    return base[:at(base, 0x00080119)] + elem(0x0008, 0x0119, b"UC", b"x" * 10, 0xFFFFFFF0)


def test_huge_declared_length_same_reason_under_a_memory_limit(base, tmp_path):
    """A value declaring 4 GB in a file of a few KB: pydicom asks for the 4 GB; under an
    address-space limit (RLIMIT_AS, as bench/fuzz_bench.py and some clusters run workers)
    that is a MemoryError, without one a short read. The reason is the walk's either way."""
    data = _huge_length(base)
    assert _reason(data) == REASON_TRUNCATED
    f = tmp_path / "huge.dcm"
    f.write_bytes(data)
    code = ("import sys; from vindr_cli.dicomio.header import BadInput, read_header\n"
            "try:\n    read_header(open(sys.argv[1], 'rb'), int(sys.argv[2]))\n"
            "except BadInput as e:\n    print(e.reason)\n")
    cap = 3 << 30            # under the 4 GB asked for, above what Python + pydicom map

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    p = subprocess.run([sys.executable, "-c", code, str(f), str(len(data))], capture_output=True, text=True,
                       preexec_fn=limit, timeout=120, cwd=REPO)
    assert p.stdout.strip() == REASON_TRUNCATED, p.stderr[-2000:]


def test_undefined_length_sequence_that_never_ends(base):
    data = (base[:at(base, 0x00081140)] + elem(0x0008, 0x1140, b"SQ", b"", UNDEFINED)
            + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + elem(0x0008, 0x1150, b"UI", b"1.2.3\0"))
    assert _reason(data) == REASON_TRUNCATED


def test_icc_numbers_read_each_byte_once():
    """2,000 table entries over one 200 KB block: numbers() reads the block once (before: 10^8
    numbers, ~1 s and ~1 GB; a 1 MB profile of 80,000 entries did not end), and a value planted
    in the block is still among them."""
    import struct

    from vindr_cli.deid import icc

    prof = bytearray(icc_profile(2000, 0xFFFFFFF0, 200_000))
    at_block = 128 + 4 + 12 * 2000
    struct.pack_into(">i", prof, at_block + 8 + 4 * 777, 77123)
    got = icc.numbers(bytes(prof))
    assert len(got) <= len(prof) // 4 + 3
    assert 77123 in got
    # an ordinary profile: its numbers as before (each block once, table order of distinct blocks)
    one = icc_profile(1, 20, 12)
    assert icc.numbers(one)[3:] == list(struct.unpack_from(">3i", one, 128 + 16 + 8))


def test_batch_of_hostile_files_with_a_study_peer(tmp_path, key_file):
    """Hostile files beside a good file of the same study and patient (so the first pass reads
    them and hands their people on): one row each, fixed known reasons, the good file ok, no
    planted value in a reason, and the first pass in this process (-j 1, under SURVEY_HERE)."""
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.tables import read_rows

    base = make_cr(tmp_path / "b" / "base.dcm", sop=STUDY + ".1.1.2", seed=1).read_bytes()
    src = tmp_path / "in"
    src.mkdir()
    make_cr(src / "good.dcm")
    big = make_cr(tmp_path / "b" / "big.dcm", sop=STUDY + ".1.1.3", name="Nguyen^" + "A" * (1 << 20),
                  ts=ImplicitVRLittleEndian).read_bytes()
    hostile = {
        "nested.dcm": insert(base, 0x00081140, nested(1000)),
        "huge.dcm": _huge_length(base),
        "name1mb.dcm": big,
        "unknown-charset.dcm": base.replace(b"ISO_IR 192", b"ISO_IR 999"),
        "cut-mid-seq.dcm": base[:base.find(b"\x40\x00\x75\x02") + 20],
    }
    for name, data in hostile.items():
        (src / name).write_bytes(data)
    out = tmp_path / "out"
    anonymize(src, out, key_path=key_file, profile=load_profile(), workers=1, write_linkage=False, burned_in="off")
    rows = read_rows(out / "manifest.parquet")
    assert len(rows) == len(hostile) + 1
    statuses = sorted(r["status"] for r in rows)
    assert statuses.count("ok") == 1 and statuses.count("failed") == len(hostile), statuses
    for r in rows:
        if r["status"] != "ok":
            assert reasons.known("anonymize_manifest", r["reason"]), r["reason"]
            assert not any(v in r["reason"] for v in PHI + ["Nguyen", "Tran"])


@pytest.mark.parametrize("workers", [1, 2])
def test_first_pass_does_not_block_on_a_fifo_swapped_in(tmp_path, key_file, monkeypatch, workers):
    """A FIFO put in the place of a file after discovery: anonymize's first pass reads headers in
    the driver (up to SURVEY_HERE inputs), out of reach of --task-timeout, and blocked in
    open(2) for ever (the pool's time limit only covered the second pass). Now ``Source.open``
    refuses it: one failed row with discovery's reason, the other files ok, with -j 1 and -j 2."""
    import os

    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.runner import stage as runner_stage
    from vindr_cli.runner.discover import NOT_REGULAR
    from vindr_cli.runner.executor import LocalExecutor
    from vindr_cli.runner.sources import Source
    from vindr_cli.tables import read_rows

    src = tmp_path / "in"
    make_cr(src / "a.dcm")
    make_cr(src / "b.dcm", sop=STUDY + ".1.1.9")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    seen = runner_stage.discover
    monkeypatch.setattr(runner_stage, "discover",
                        lambda p: seen(p) + [Source(path=str(fifo), rel="swapped.dcm", size=1234)])
    out = tmp_path / "out"
    anonymize(src, out, key_path=key_file, profile=load_profile(), workers=workers, write_linkage=False,
              burned_in="off", executor=LocalExecutor(task_timeout=60.0))
    rows = read_rows(out / "manifest.parquet")
    assert sorted((r["status"], r["reason"]) for r in rows) == [("failed", NOT_REGULAR), ("ok", None), ("ok", None)]


def test_digit_terms_follow_the_set():
    """policy.found_in_digits reads TermSet.digit_terms (listed once per size of the set, not
    once per value searched): a term added after a search is sought by the next one."""
    from vindr_cli.deid import policy
    from vindr_cli.deid.terms import TermSet

    ts = TermSet()
    ts.add("Hoang^Phuc")
    assert not policy.found_in_digits(ts, "MRN 3006-7891 x", "LO")
    ts.add("30067891")
    assert policy.found_in_digits(ts, "MRN 3006-7891 x", "LO")
    assert ts.digit_terms(7) == ["30067891"]
    ts.add("1234567")                   # a ramp's run: never sought inside
    assert ts.digit_terms(7) == ["30067891"]


def test_a_person_name_of_megabytes_is_too_long_at_any_size(tmp_path):
    """Text values over 4 MB were not read by the structure walk (MAX_TEXT_READ, meant for UT):
    a 1 MB PatientName failed as too long, a 5 MB one passed. A VR with a most length is now
    read at any size."""
    from vindr_cli.dicomio.structure import REASON_TOO_LONG

    for size in (1 << 20, 5 << 20):
        data = make_cr(tmp_path / f"n{size}.dcm", name="Nguyen^" + "A" * size, ts=ImplicitVRLittleEndian).read_bytes()
        assert _reason(data) == REASON_TOO_LONG


def test_first_pass_hands_on_no_value_longer_than_anyones(tmp_path):
    """The first pass (structure not checked) read a 5 MB name and handed it, pickled, to the
    task of every other file of the study: values over MAX_VALUE are left out, the file's other
    people kept."""
    from vindr_cli.deid import studyterms
    from vindr_cli.runner.discover import discover

    make_cr(tmp_path / "in" / "big.dcm", name="Nguyen^" + "A" * (5 << 20), ts=ImplicitVRLittleEndian)
    (src,) = discover(tmp_path / "in")
    study, _patient, values, places = studyterms.people_of(studyterms.PeopleConfig(), src)
    assert study == STUDY
    assert values and max(map(len, values)) <= studyterms.MAX_VALUE
    assert "PID0001" in values and any("Bích" in v for v in values)
    assert places


def test_review_of_a_hostile_selection_is_one_line(tmp_path, key_file):
    """`vindr review SELECTION` over a hand-edited or damaged selection.parquet / selection.json:
    a damaged table (pyarrow's error, which names the path), a row without an image_id or with a
    list in a string column, and a selection.json that is a JSON list crashed (exit 3); a QC flag
    or a group id of any text went to the page. Each is now one fixed line (ReviewDirError,
    exit 2); a table as vindr select writes it still builds its queues."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.review.queues import HOSTILE_SELECTION, ReviewDirError, build_queues
    from vindr_cli.tables import read_rows

    src = tmp_path / "in"
    make_cr(src / "a.dcm")
    make_cr(src / "b.dcm", sop=STUDY + ".1.1.9", pid="PID0002")
    anon = tmp_path / "anon"
    anonymize(src, anon, key_path=key_file, profile=load_profile(), workers=1, write_linkage=False, burned_in="off")
    ids = [r["image_id"] for r in read_rows(anon / "manifest.parquet")]

    def selection(name, table=None, raw=None, info=None):
        d = tmp_path / name
        d.mkdir()
        if raw is not None:
            (d / "selection.parquet").write_bytes(raw)
        else:
            pq.write_table(table, d / "selection.parquet")
        if info is not None:
            (d / "selection.json").write_text(info)
        return d

    good = {"image_id": ids, "selected": [True, True], "reasons": [[], []],
            "qc_flags": [["blank"], []], "dup_group": ["dup-0123456789ab", None]}
    q = build_queues(selection("good", pa.table(good)), tree=anon)
    assert q.queues["qc"] == [ids[0]]
    hostile = {
        "damaged": dict(raw=b"PAR1 not a table"),
        "no-image-id": dict(table=pa.table({"x": [1]})),
        "list-image-id": dict(table=pa.table({"image_id": [["a"]]})),
        "name-as-qc-flag": dict(table=pa.table({**good, "qc_flags": [["Nguyen Van An"], []]})),
        "name-as-group": dict(table=pa.table({**good, "dup_group": ["Nguyen Van An", None]})),
        "list-as-group": dict(table=pa.table({**good, "dup_group": [["g"], ["g"]]})),
    }
    for name, kw in hostile.items():
        with pytest.raises(ReviewDirError) as got:
            build_queues(selection(name, **kw), tree=anon)
        msg = str(got.value)
        assert "\n" not in msg and "Nguyen" not in msg and str(tmp_path) not in msg, name
        assert msg == HOSTILE_SELECTION or msg.startswith("selection.parquet cannot be read"), (name, msg)
    for info in ("[]", "null", "5"):             # no tree given: looked for beside SELECTION
        with pytest.raises(ReviewDirError, match="cannot find the de-identified tree"):
            build_queues(selection(f"json-{info}", pa.table(good), info=info))
