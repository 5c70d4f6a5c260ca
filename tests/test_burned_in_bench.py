"""The burned-in text bench's instrument (bench/burned_in_corpus.py + bench/burned_in_bench.py)
on a tiny corpus of real pydicom test images: the truth boxes hold exactly what was drawn,
the contrast judge reads the drawn text before redaction and not after the box is blacked
out, a half-blacked string still counts as readable, and the re-OCR matcher folds accents."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import burned_in_bench as bb  # noqa: E402
from burned_in_corpus import build, load_truth  # noqa: E402


def _px(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path).pixel_array


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    work = tmp_path_factory.mktemp("burned_in")
    build(work / "c", images=3, size=384, seed=3, use_wheel=False, text_share=2)
    build(work / "blank", images=3, size=384, seed=3, use_wheel=False, text_share=2, ink=False)
    truth, masks = load_truth(work / "c")
    return work, truth, masks


def _strings(truth):
    for im in truth["images"]:
        for s in im["strings"]:
            yield im, s


def test_corpus_classes_and_encodings(corpus):
    work, truth, _ = corpus
    classes = [im["class"] for im in truth["images"]]
    assert classes == ["with_text", "no_text", "with_text"]
    kinds = {s["kind"] for _, s in _strings(truth)}
    assert {"name", "marker"} <= kinds and kinds & {"id", "date", "hospital"}
    for im in truth["images"]:
        ds = pydicom.dcmread(work / "c" / im["file"], stop_before_pixels=True)
        assert ds.PhotometricInterpretation == im["photometric"] and ds.BitsStored == im["bits_stored"]
        assert str(ds.file_meta.TransferSyntaxUID) == im["transfer_syntax"]
        assert str(ds.PatientName) == im["hints"]["PatientName"]
        if im["class"] == "no_text":
            assert im["strings"] == []
    assert len({im["photometric"] for im in truth["images"]}) == 2


def test_truth_boxes_cover_drawn_pixels(corpus):
    """Drawing vs not drawing (same random draws): every changed pixel lies in a truth box
    (with its label padding), and the glyph masks are changed pixels."""
    work, truth, masks = corpus
    for im in truth["images"]:
        drawn, blank = _px(work / "c" / im["file"]), _px(work / "blank" / im["file"])
        changed = drawn != blank
        if im["class"] == "no_text":
            assert not changed.any()
            continue
        assert changed.any()
        covered = np.zeros_like(changed)
        for s in im["strings"]:
            x0, y0, x1, y1 = s["box"]
            m = masks[s["mask"]]
            assert m.shape == (y1 - y0, x1 - x0) and m.any()
            assert changed[y0:y1, x0:x1][m].mean() >= 0.9
            p = im["pad"][s["mask"]]
            covered[max(0, y0 - p):y1 + p, max(0, x0 - p):x1 + p] = True
        assert not (changed & ~covered).any()


def test_contrast_judge_readable_before_not_after_blacking(corpus):
    work, truth, masks = corpus
    before, n, halves = 0, 0, 0
    for im, s in _strings(truth):
        px = _px(work / "c" / im["file"])
        box, m = s["box"], masks[s["mask"]]
        readable, _ = bb.contrast_readable(px, box, m, im["bits_stored"])
        before += readable
        n += 1
        x0, y0, x1, y1 = box
        blacked = px.copy()
        blacked[y0:y1, x0:x1] = px.min()
        readable_after, share_after = bb.contrast_readable(blacked, box, m, im["bits_stored"])
        assert not readable_after and share_after < 0.05
        # a redaction that misses the right half leaves a readable string
        half = px.copy()
        half[y0:y1, x0:(x0 + x1) // 2] = px.min()
        if m[:, (x1 - x0) // 2 + 2:].sum() > 0.4 * m.sum():
            assert bb.contrast_readable(half, box, m, im["bits_stored"])[0]
            halves += 1
    assert n >= 6 and before == n and halves >= 3


def test_ocr_matcher_folds_and_finds_tokens():
    assert bb.text_matches("NGUYỄN VĂN AN", "NGUYEN VAN AN")
    assert bb.text_matches("ID: 48295809", "lD 48295809 ~")
    assert bb.text_matches("Bệnh viện Bạch Mai", "benh vien bach mai")
    assert not bb.text_matches("NGUYỄN VĂN AN", "")
    assert not bb.text_matches("NGUYỄN VĂN AN", "PA")
    assert not bb.text_matches("ID: 48295809", "ERECT 80 kV")


def test_judge_on_a_real_anonymize_run_then_on_blacked_outputs(corpus, tmp_path):
    """The bench's pipeline on `vindr anonymize --burned-in off` (no pixel redaction): every identifying
    string is released readable and the text-free image untouched; after the boxes are blacked
    out in the written files (decoded, re-encoded uncompressed), none reads and markers left
    alone still do."""
    work, truth, masks = corpus
    key = tmp_path / "keys" / "k"
    runs = {cls: bb.run_anonymize(work / "c" / cls, tmp_path / f"out_{cls}", key, "off", 1)
            for cls in ("with_text", "no_text")}
    assert all(r["rc"] == 0 for r in runs.values())
    f = bb.judge(truth, masks, work / "c", runs, use_ocr=False, tmp=tmp_path)
    assert f["identifying"] == f["released_identifying"] == f["readable_contrast"] == f["readable_either"] > 0
    assert (f["no_text_images"], f["no_text_modified"], f["no_text_held_back"]) == (1, 0, 0)
    assert f["markers_unchanged"] == f["markers"] > 0
    assert f["markers_kept_readable"] == f["markers_readable_before"] > 0

    from pydicom.uid import ExplicitVRLittleEndian
    by_uid = {row["original_sop_uid"]: row for row in bb._rows(runs["with_text"])}
    for im in truth["images"]:
        if im["class"] != "with_text":
            continue
        path = runs["with_text"]["out"] / by_uid[im["sop_uid"]]["output"]
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array.copy()
        for s in im["strings"]:
            if s["identifying"]:
                x0, y0, x1, y1 = s["box"]
                arr[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = arr.min()
        ds.PixelData = arr.tobytes()
        ds["PixelData"].is_undefined_length = False
        ds["PixelData"].VR = "OB" if arr.dtype.itemsize == 1 else "OW"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    g = bb.judge(truth, masks, work / "c", runs, use_ocr=False, tmp=tmp_path)
    assert g["identifying"] == f["identifying"] and g["readable_contrast"] == g["readable_either"] == 0
    assert g["markers_kept_readable"] == f["markers_kept_readable"]


@pytest.mark.skipif(not bb.have_tesseract(), reason="tesseract not installed (apt-get install tesseract-ocr tesseract-ocr-eng)")
def test_ocr_judge_reads_some_text_before_and_none_after_blacking(corpus, tmp_path):
    work, truth, _ = corpus
    before = after = 0
    for im, s in _strings(truth):
        if not s["identifying"]:
            continue
        px = _px(work / "c" / im["file"])
        before += bb.ocr_readable(px, s["box"], im["photometric"], s["text"], tmp_path)
        x0, y0, x1, y1 = s["box"]
        px[max(0, y0 - 3):y1 + 3, max(0, x0 - 3):x1 + 3] = px.min()
        after += bb.ocr_readable(px, s["box"], im["photometric"], s["text"], tmp_path)
    assert before >= 2 and after == 0
