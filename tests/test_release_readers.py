"""Reader pseudonyms in a release (release/build.py ``pseudonymous_readers``): a hospital's
free-text rad_id (a name, a login, an e-mail) is published as R<n>, and the numbers say nothing
about the real values: not their alphabetical order, not the order of the hospital's rows."""
from __future__ import annotations

import csv
import shutil

import pandas as pd

from vindr_cli.release.build import build_release, pseudonymous_readers


def _split_with_readers(base, dst, names: dict[str, str], *, reverse=False):
    """A copy of the session pipeline's split whose rad_id R1..R3 are replaced by ``names``."""
    shutil.copytree(base / "split", dst)
    path = dst / "annotations.csv"
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["rad_id"] = names[r["rad_id"]]
    if reverse:
        rows.reverse()
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dst


def _published(release):
    """{side: the annotations file's bytes}, and every published row as a sorted list."""
    raw, rows = {}, []
    for side in ("train", "test"):
        p = release / "annotations" / f"annotations_{side}.csv"
        raw[side] = p.read_bytes()
        with open(p, encoding="utf-8", newline="") as f:
            rows += [tuple(sorted(r.items())) for r in csv.DictReader(f)]
    return raw, sorted(rows)


def test_reader_numbers_do_not_follow_the_names_order(pipeline, tmp_path):
    base, _ = pipeline
    a_names = {"R1": "Anh Nguyen", "R2": "bao.tran@bvbm.vn", "R3": "Cuong Le"}
    b_names = {"R1": "Cuong Le", "R2": "bao.tran@bvbm.vn", "R3": "Anh Nguyen"}   # alphabetical order swapped
    a = build_release(base / "anon", _split_with_readers(base, tmp_path / "sa", a_names), tmp_path / "ra")
    b = build_release(base / "anon", _split_with_readers(base, tmp_path / "sb", b_names), tmp_path / "rb")
    a2 = build_release(base / "anon", tmp_path / "sa", tmp_path / "ra2")                 # the same inputs again
    c = build_release(base / "anon", _split_with_readers(base, tmp_path / "sc", a_names, reverse=True),
                      tmp_path / "rc")                                                   # the rows in another order
    assert all(any("3 reader id(s)" in w for w in s.warnings) for s in (a, b, a2, c))
    raw_a, rows_a = _published(tmp_path / "ra")
    raw_b, rows_b = _published(tmp_path / "rb")
    raw_a2, _ = _published(tmp_path / "ra2")
    _, rows_c = _published(tmp_path / "rc")
    assert {dict(r)["rad_id"] for r in rows_a} == {"R1", "R2", "R3"}
    assert raw_a == raw_b, "the same annotations got other numbers when only the names' order changed"
    assert raw_a == raw_a2
    assert rows_a == rows_c, "the numbers followed the order of the hospital's rows"
    for name in ("Anh", "Nguyen", "bao.tran", "Cuong"):
        assert not any(name.encode() in v for v in raw_a.values())


def test_pseudonyms_rank_readers_by_their_marks():
    """The library function alone: numbers follow each reader's marks, not its value; an id of
    the form R<n> is kept and the new ones count on after it; null stays null."""
    marks = pd.DataFrame({"line": [2, 3, 4, 5, 6], "image_id": ["b", "a", "a", "c", "c"],
                          "label": ["x", "y", "z", None, "y"], "x_min": [1.0, 2.0, None, None, 3.0]})
    for names in (["zed", "amy", "R4", None, "amy"], ["amy", "zed", "R4", None, "zed"]):
        marks["reader"] = pd.array(names, dtype="string")
        out, n = pseudonymous_readers(marks["reader"], marks)
        assert n == 2
        # the reader of rows 2 and 6 (first mark: image a, label y) ranks before the reader of row 1 (image b)
        assert out.tolist()[1] == out.tolist()[4] == "R5" and out.tolist()[0] == "R6"
        assert out.tolist()[2] == "R4" and pd.isna(out.tolist()[3])
