"""vindr review's decisions obeyed by the pipeline (issue 12): ``vindr anonymize`` re-run masks
the boxes drawn for more redaction (hash chain in the manifest), ``vindr select`` drops excluded
images; and the page's window presets are rendered once per request."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from vindr_cli.review import server


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_window_presets_render_once(monkeypatch, name):
    """wider / narrower used to render the header window first only to learn its width (two
    renders per image); now one render, with the same picture as before."""
    from vindr_cli.pixels import window as win
    from vindr_cli.pixels.decode import decode
    from vindr_cli.pixels.voi import display_params

    path = get_testdata_file(name, download=False)
    real = win.render
    calls = []

    def counting(*a, **k):
        calls.append(k.get("mode", a[2] if len(a) > 2 else "header"))
        return real(*a, **k)

    monkeypatch.setattr(win, "render", counting)
    pngs = {}
    for w in server.WINDOWS:
        calls.clear()
        pngs[w] = server.render_png(path, size="large", window=w)
        assert len(calls) == 1, (w, calls)
    assert len(set(pngs.values())) == 3
    # the preset is the header window's width doubled / halved, as before
    ds = pydicom.dcmread(path)
    f = decode(ds).frames[0]
    p = display_params(ds)
    _, used = real(f, p, "header", out_bits=16, ds=ds)
    wide, narrow = server.preset_mode(f, p, "wider"), server.preset_mode(f, p, "narrower")
    assert (wide.center, wide.width) == (used.center, used.width * 2)
    assert (narrow.center, narrow.width) == (used.center, max(1.0, used.width / 2))
    assert np.isfinite(used.width) and used.width > 0


# ------------------------------------------------------------------ the pipeline obeys the review

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from conftest import SAMPLE
from helpers import key_file_in
from vindr_cli.curate.recipe import load_recipe
from vindr_cli.curate.select import REVIEW_EXCLUDED, select
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.review import decisions, gate


@pytest.fixture(scope="module")
def anon(tmp_path_factory):
    """The committed sample export anonymized (burned-in text redacted), and its key."""
    base = tmp_path_factory.mktemp("reviewapply")
    key = key_file_in(base)
    anonymize(SAMPLE / "export", base / "anon", key_path=key, profile=load_profile(), workers=1)
    return base / "anon", key


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_select_drops_images_excluded_in_review(anon, tmp_path):
    tree = tmp_path / "anon"
    shutil.copytree(anon[0], tree)
    sel = tmp_path / "selection"
    recipe = load_recipe("vindr-cxr")
    select(tree, sel, recipe, seed=0, n=None, workers=1)
    before = {r["image_id"]: r for r in _rows(sel / "selection.parquet")}
    chosen = sorted(i for i, r in before.items() if r["selected"])
    assert len(chosen) >= 3
    decisions.record(tree, chosen[0], "spot-check", "exclude", reviewer="custodian")     # a review of the tree
    decisions.record(tree, chosen[1], "spot-check", "accept")
    decisions.record(sel, chosen[2], "spot-check", "exclude")                            # a review of the selection
    decisions.record(tree, chosen[1], "spot-check", "exclude")
    decisions.undo(tree, image_id=chosen[1])                                             # undone: not excluded
    summary = select(tree, sel, recipe, seed=0, n=None, workers=1)
    after = {r["image_id"]: r for r in _rows(sel / "selection.parquet")}
    assert after[chosen[0]]["reasons"] == [REVIEW_EXCLUDED] and not after[chosen[0]]["selected"]
    assert after[chosen[2]]["reasons"] == [REVIEW_EXCLUDED] and not after[chosen[2]]["selected"]
    assert after[chosen[1]]["selected"]
    assert summary.reasons[REVIEW_EXCLUDED] == 2 and summary.selected == len(chosen) - 2
    assert json.loads((sel / "selection.json").read_text())["counts"][REVIEW_EXCLUDED] == 2
    linked = {p.stem for p in (sel / "dicom").iterdir()}
    assert chosen[0] not in linked and chosen[2] not in linked and chosen[1] in linked
    # the release gate drops the selection review's exclusion too
    g = gate.check(tree, set(chosen), selection=sel, allow_unreviewed=True)
    assert g.left_out == {chosen[2]: gate.EXCLUDED}


def _copy_base(anon, tmp_path) -> tuple[Path, Path]:
    """A private copy of the fixture's tree with its linkage table and key (all of anonymize's state)."""
    tree, key = anon
    base = tmp_path / "base"
    shutil.copytree(tree.parent, base)
    return base / tree.name, base / key.relative_to(tree.parent)


def _files(tree: Path) -> dict[str, tuple]:
    return {p.relative_to(tree).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
            for p in tree.rglob("*") if p.is_file() and ".vindr" not in p.parts and p.suffix in (".dcm", ".dicom")}


def _frames(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    return a[None] if int(ds.get("NumberOfFrames", 1) or 1) == 1 else a


def _reanonymize(tree: Path, key: Path, **kw):
    return anonymize(SAMPLE / "export", tree, key_path=key, profile=load_profile(), workers=1, **kw)


def test_anonymize_rerun_masks_the_review_boxes(anon, tmp_path):
    from vindr_cli.deid.audit import audit
    from vindr_cli.dicomio.pixelstream import file_pixel_hash
    from vindr_cli.review.queues import build_queues

    tree, key = _copy_base(anon, tmp_path)
    rows0 = {r["image_id"]: r for r in _rows(tree / "manifest.parquet") if r["status"] == "ok"}
    # an automatically redacted RLE image, an untouched native one, a 3-frame RLE one, an untouched J2K one
    red = next(i for i, r in sorted(rows0.items()) if r["pixels_modified"] and r["transfer_syntax"].endswith(".5")
               and r["rows"] >= 200)
    plain = next(i for i, r in sorted(rows0.items()) if not r["pixels_modified"] and r["transfer_syntax"].endswith(".2.1")
                 and r["frames"] == 1)
    multi = next(i for i, r in sorted(rows0.items()) if r["frames"] == 3)
    j2k = next(i for i, r in sorted(rows0.items()) if not r["pixels_modified"] and r["transfer_syntax"].endswith(".4.90"))
    d = decisions
    d.record(tree, red, "redacted", "accept", reviewer="ann")                      # before the box: about old pixels
    b_red = d.record(tree, red, "redacted", "more-redaction", box=[0, 100, 150, 180, 200], reviewer="ann")
    d.record(tree, plain, "spot-check", "more-redaction", box=[0, 0, 0, 30, 30])
    d.undo(tree, image_id=plain)                                                   # undone: never applied
    b_plain = d.record(tree, plain, "spot-check", "more-redaction", box=[0, 40, 50, 90, 80], reviewer="a b<c>")
    b_multi = d.record(tree, multi, "spot-check", "more-redaction", box=[1, 5, 6, 50, 40])
    b_j2k = d.record(tree, j2k, "spot-check", "more-redaction", box=[0, 200, 10, 256, 60])
    files0 = _files(tree)
    summary = _reanonymize(tree, key)
    assert summary.review_rewritten == 4 and summary.review_images == 4
    # only those four ran again (and the input that failed before: failed inputs are always retried)
    assert summary.resumed == summary.total - 4 - summary.counts["failed"]
    files1 = _files(tree)
    rows1 = {r["image_id"]: r for r in _rows(tree / "manifest.parquet") if r["status"] == "ok"}
    assert rows1.keys() == rows0.keys()
    changed = {rel for rel in files0 if files1[rel] != files0[rel]}
    assert changed == {rows0[i]["output"] for i in (red, plain, multi, j2k)}    # the others not even touched
    for iid, made in ((red, b_red), (plain, b_plain), (multi, b_multi), (j2k, b_j2k)):
        old, new = rows0[iid], rows1[iid]
        # the chain: input -> automatic output (what the reviewer saw) -> output with the review's boxes
        assert new["input_pixel_sha256"] == old["input_pixel_sha256"]
        assert new["auto_pixel_sha256"] == old["pixel_sha256"]
        assert new["pixel_sha256"] == file_pixel_hash(tree / new["output"]) != old["pixel_sha256"]
        assert new["pixels_modified"] and new["redactions"] == old["redactions"]
        assert new["transfer_syntax"] == old["transfer_syntax"]               # lossless stays in its syntax
        entries = json.loads(new["review_boxes"])
        assert [(e["seq"], e["time"], e["box"]) for e in entries] == [(made["seq"], made["time"], json.loads(made["box"]))]
        after = _frames(tree / new["output"])
        f, x0, y0, x1, y1 = entries[0]["box"]
        ds = pydicom.dcmread(tree / new["output"])
        assert ds.BurnedInAnnotation == "NO"
        fill = after.max() if ds.PhotometricInterpretation == "MONOCHROME1" else after.min()   # redact.py's rule
        assert (after[:, y0:y1, x0:x1] == fill).all()                          # masked in EVERY frame
    assert json.loads(rows1[red]["review_boxes"])[0]["reviewer"] is None        # free text: never carried
    assert json.loads(rows1[plain]["review_boxes"])[0]["reviewer"] is None
    # outside the drawn box nothing changed (old output decoded vs new, lossless both)
    import io

    for iid in (red, plain, multi, j2k):
        old = _frames(io.BytesIO(files0[rows0[iid]["output"]][0]))
        new = _frames(tree / rows1[iid]["output"])
        f, x0, y0, x1, y1 = json.loads(rows1[iid]["review_boxes"])[0]["box"]
        keep = np.ones(old.shape[:3], bool)
        keep[:, y0:y1, x0:x1] = False
        assert old.shape == new.shape and (old[keep] == new[keep]).all()    # (so the undone box of `plain` is not masked)
        if iid == plain:
            assert (old[:, y0:y1, x0:x1] != new[:, y0:y1, x0:x1]).any()       # there was something to mask
    # the review: the four are back in the redacted queue, undecided (the old accept was about old pixels)
    q = build_queues(tree, spot=0)
    assert {red, plain, multi, j2k} <= set(q.queues["redacted"])
    undecided = d.undecided(tree, q.queues, q.applied())
    assert {red, plain, multi, j2k} <= set(undecided["redacted"])
    assert d.current(tree, q.applied()).get(red) is None
    state = server.ReviewApp(q).state()                  # what the page is told
    assert all("redacted" not in state["decisions"].get(i, {}) for i in (red, plain, multi, j2k))
    assert state["progress"]["redacted"]["decided"] == 0 and red not in state["verdicts"]
    assert json.loads(rows1[plain]["review_boxes"])[0]["box"] in state["images"][plain]["redactions"]   # outlined
    with pytest.raises(gate.Unreviewed):
        gate.check(tree, set(rows1))
    for iid in q.queues["redacted"]:
        d.record(tree, iid, "redacted", "accept", reviewer="ann")
    g = gate.check(tree, set(rows1))
    assert g.left_out == {} and g.undecided == 0
    # the re-run after: nothing to do; an undo of an applied box (raw, as an old client would) never
    # brings the text back: once applied a box stays
    d.undo(tree, image_id=multi, applied=None)
    again = _reanonymize(tree, key)
    assert again.resumed == again.total - again.counts["failed"] and again.review_rewritten == 0
    assert again.review_images == 4
    assert _files(tree) == files1
    # vindr audit of the re-written tree: clean, pixels read too
    report = audit(tree)
    assert [f.kind for f in report.findings] == []
    # ... which checks a review box too: something drawn into one is a finding
    out = tree / rows1[plain]["output"]
    ds = pydicom.dcmread(out)
    a = ds.pixel_array.copy()
    f, x0, y0, x1, y1 = json.loads(rows1[plain]["review_boxes"])[0]["box"]
    a[y0 + 5:y0 + 10, x0 + 5:x0 + 30] = a.max()
    ds.PixelData = a.tobytes()
    ds.save_as(out)
    report = audit(tree)
    assert [(f.kind, f.where) for f in report.findings if f.kind == "pixel-mask"] == [("pixel-mask", rows1[plain]["output"])]


def _good_row(seq: int, iid: str, **kw) -> dict:
    row = {"seq": seq, "image_id": iid, "queue": "spot-check", "decision": "more-redaction", "box": "[0, 1, 1, 5, 5]",
           "time": "2026-11-30T01:00:00.000Z", "reviewer": None, "undoes": None}
    row.update(kw)
    return row


BAD_ROWS = {
    "box outside": ({"box": "[0, 0, 0, 100000, 5]"}, "seq 7: box lies outside"),
    "frame beyond": ({"box": "[3, 0, 0, 5, 5]"}, "seq 7: box lies outside"),
    "float box": ({"box": "[0, 1.5, 0, 5, 5]"}, "seq 7: box is not"),
    "not json": ({"box": "../../etc/passwd"}, "seq 7: box is not"),
    "empty box": ({"box": "[0, 5, 0, 5, 5]"}, "seq 7: box must have"),
    "negative": ({"box": "[0, -1, 0, 5, 5]"}, "seq 7: box must have"),
    "unknown image": ({"image_id": "0" * 32}, "seq 7: image_id is not an image of OUTPUT"),
    "path as id": ({"image_id": "../../x"}, "seq 7: image_id is not 32 hex"),
    "undo ahead": ({"decision": "undo", "box": None, "undoes": 99}, "seq 7: undo does not name"),
    "box on accept": ({"decision": "accept"}, "seq 7: only more-redaction"),
    "queue": ({"queue": "../x"}, "seq 7: unknown queue"),
    "time": ({"time": "yesterday"}, "seq 7: time is not"),
    "twice": ({"seq": 0}, "seq 0: seq appears twice"),
    "bad seq": ({"seq": -3}, "row 2: seq is not"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_bad_review_row_refuses_the_run_naming_its_seq(anon, tmp_path, case):
    """The review table is an input: a bad row is a one-line refusal naming the row, before anything is written."""
    from vindr_cli.deid.reviewboxes import ReviewBoxError
    from vindr_cli.errors import RequestError
    from vindr_cli.tables import write_table

    tree, key = anon
    rows = {r["image_id"]: r for r in _rows(tree / "manifest.parquet") if r["status"] == "ok" and r["frames"] == 1}
    iid = sorted(rows)[0]
    change, message = BAD_ROWS[case]
    table = [_good_row(0, iid), {**_good_row(7, iid), **change}]
    path = tmp_path / "review.parquet"
    write_table(table, "review", path)
    before = {p: p.stat().st_mtime_ns for p in tree.rglob("*") if p.is_file()}
    with pytest.raises(ReviewBoxError) as err:
        _reanonymize(tree, key, review=path)
    assert isinstance(err.value, RequestError)                       # exit 2
    text = str(err.value)
    assert message in text and "\n" not in text
    assert iid not in text                                          # names the row, not the image
    assert {p: p.stat().st_mtime_ns for p in tree.rglob("*") if p.is_file()} == before


def test_a_linked_or_missing_review_table_is_refused(anon, tmp_path):
    from vindr_cli.deid.reviewboxes import ReviewBoxError

    tree, key = _copy_base(anon, tmp_path)
    elsewhere = tmp_path / "elsewhere.parquet"
    elsewhere.write_bytes(b"PAR1")
    (tree / ".vindr" / "review.parquet").symlink_to(elsewhere)
    with pytest.raises(ReviewBoxError, match="link"):
        _reanonymize(tree, key)
    (tree / ".vindr" / "review.parquet").unlink()
    with pytest.raises(ReviewBoxError, match="--review"):
        _reanonymize(tree, key, review=tmp_path / "nothing-here")
    with pytest.raises(ReviewBoxError, match="not a Parquet"):
        _reanonymize(tree, key, review=elsewhere)


def test_cli_review_of_a_selection_applies_its_boxes_and_they_stay(anon, tmp_path):
    """`vindr anonymize --review SELECTION`: a box drawn in a review of a selection is masked in the
    tree; a later re-run without --review keeps it; the selection's review sees the image undecided."""
    from helpers import run_cli
    from vindr_cli.review.queues import build_queues

    tree, key = _copy_base(anon, tmp_path)
    sel = tmp_path / "base" / "selection"
    select(tree, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    srows = [r for r in _rows(sel / "selection.parquet") if r["selected"]]
    native = {r["image_id"] for r in _rows(tree / "manifest.parquet") if r["transfer_syntax"] == "1.2.840.10008.1.2.1"}
    iid = sorted(r["image_id"] for r in srows if r["image_id"] in native)[0]       # masked: the same size
    q = build_queues(sel, spot=100)
    queue = next(name for name, ids in q.queues.items() if iid in ids)
    made = decisions.record(sel, iid, queue, "more-redaction", box=[0, 10, 20, 70, 60], reviewer="custodian",
                            shape=(q.images[iid].rows, q.images[iid].cols, q.images[iid].frames))
    p = run_cli("anonymize", SAMPLE / "export", tree, "--key", key, "-j", "1", "--review", sel)
    assert "1 image(s) re-written" in p.stdout
    row = next(r for r in _rows(tree / "manifest.parquet") if r["image_id"] == iid)
    assert [(e["seq"], e["time"]) for e in json.loads(row["review_boxes"])] == [(made["seq"], made["time"])]
    out = _frames(tree / row["output"])
    assert len(np.unique(out[:, 20:60, 10:70])) == 1
    assert "run vindr select again" in p.stdout
    # the tree's manifest changed: the selection no longer finds it until select runs again, which
    # re-links the re-written file (an old hard link of the same size is not "the same file")
    stale = sel / "dicom" / f"{iid}.dcm"
    assert stale.stat().st_ino != (tree / row["output"]).stat().st_ino
    assert stale.stat().st_size == (tree / row["output"]).stat().st_size
    select(tree, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    assert stale.read_bytes() == (tree / row["output"]).read_bytes()
    # the selection's review: the image is in the redacted queue, undecided; its box no longer in force
    q = build_queues(sel, spot=0)
    assert iid in q.queues["redacted"] and iid in decisions.undecided(sel, q.queues, q.applied())["redacted"]
    assert decisions.current(sel, q.applied()).get(iid) is None
    # without --review the box stays (a box once applied is never taken back)
    again = _reanonymize(tree, key)
    assert again.review_rewritten == 0 and again.review_images == 1
    assert next(r for r in _rows(tree / "manifest.parquet") if r["image_id"] == iid) == row


def test_review_box_with_burned_in_off(tmp_path):
    """--burned-in off writes pixels as they are; a box drawn in review is still masked on the
    re-run (the automatic output is then the byte-for-byte copy: auto hash = input hash)."""
    from vindr_cli.dicomio.pixelstream import file_pixel_hash

    key = key_file_in(tmp_path)
    tree = tmp_path / "anon"
    _reanonymize(tree, key, burned_in="off")
    rows0 = {r["image_id"]: r for r in _rows(tree / "manifest.parquet") if r["status"] == "ok"}
    iid = next(i for i, r in sorted(rows0.items()) if r["frames"] == 1 and r["rows"] >= 100)
    made = decisions.record(tree, iid, "spot-check", "more-redaction", box=[0, 20, 30, 60, 50])
    summary = _reanonymize(tree, key, burned_in="off")
    assert summary.review_rewritten == 1
    row = next(r for r in _rows(tree / "manifest.parquet") if r["image_id"] == iid)
    old = rows0[iid]
    assert row["input_pixel_sha256"] == row["auto_pixel_sha256"] == old["pixel_sha256"] == old["input_pixel_sha256"]
    assert row["pixel_sha256"] == file_pixel_hash(tree / row["output"]) != old["pixel_sha256"]
    assert row["redactions"] is None and row["pixels_modified"]                  # never scanned
    assert json.loads(row["review_boxes"])[0]["seq"] == made["seq"]
    out = _frames(tree / row["output"])
    assert len(np.unique(out[:, 30:50, 20:60])) == 1


def test_recorded_boxes_keep_only_their_own_form():
    """A manifest's review_boxes are carried into every later run: an entry of another form (a
    hand-edited manifest: extra keys, text, floats) is dropped, the rest merged once each."""
    from vindr_cli.deid.reviewboxes import recorded, wanted

    good = {"seq": 3, "time": "2026-11-30T01:00:00.000Z", "box": [0, 1, 2, 3, 4], "reviewer": "ann"}
    bad = [{**good, "note": "NGUYEN VAN A"}, {**good, "box": [0, 1.5, 2, 3, 4]}, {**good, "reviewer": "x<y>"},
           {**good, "time": "today"}, {**good, "seq": "3"}, "text", [1, 2]]
    assert recorded({"review_boxes": json.dumps([good, *bad])}) == [{**good, "reviewer": None}]   # no name carried on
    assert recorded({"review_boxes": "not json"}) == [] and recorded({}) == []
    later = {**good, "seq": 9, "time": "2026-11-30T02:00:00.000Z"}
    assert wanted([good], [later, good]) == [good, later]


def test_applied_boxes_and_the_old_redacted_decisions_no_longer_count(tmp_path):
    d = tmp_path / "tree"
    d.mkdir()
    a, b = "a" * 32, "b" * 32
    decisions.record(d, a, "redacted", "accept")
    decisions.record(d, a, "qc", "accept")
    box = decisions.record(d, a, "redacted", "more-redaction", box=[0, 1, 1, 5, 5])
    decisions.record(d, b, "redacted", "exclude")
    bbox = decisions.record(d, b, "spot-check", "more-redaction", box=[0, 1, 1, 5, 5])
    applied = {a: {(box["seq"], box["time"])}, b: {(bbox["seq"], bbox["time"])}}
    assert decisions.current(d) == {a: "more-redaction", b: "exclude"}
    by_queue = decisions.current_by_queue(d, applied)
    assert set(by_queue[a]) == {"qc"}                      # the redacted queue's old accept and the box: gone
    assert decisions.current(d, applied) == {a: "accept", b: "exclude"}   # an exclusion still counts
    assert decisions.undecided(d, {"redacted": [a, b]}, applied) == {"redacted": [a]}
    assert decisions.undo(d, image_id=a, applied=applied)["undoes"] != box["seq"]   # an applied box cannot be undone
    decisions.record(d, a, "redacted", "accept")                                  # the person confirms the new output
    assert decisions.undecided(d, {"redacted": [a]}, applied) == {"redacted": []}
