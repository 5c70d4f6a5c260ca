"""Burned-in text on small images (issue: the finder masked large areas of pydicom's MR_small,
64 x 64, and CT_small, 128 x 128, both text-free real scans). Below deid.pixeltext._SMALL
(256 px a side) the 9-px top-hat sees anatomy as strokes; an unmatched candidate there counts
only when read confidently as 2+ letters or digits or when it holds a glyph-shaped stroke
component at an extreme of the display (pixeltext._small_glyphs). The real scans come out
unmodified; a name, initials or an ID burned into them (and into 256 and 512 px frames made
of CT_small) is still masked. Real files (pydicom's, never downloaded), real Tesseract."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file

from helpers import box_mask, draw_text, finder_scan
from vindr_cli.deid import pixeltext, redact
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.runner.executor import InProcessExecutor

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

pytestmark = pytest.mark.skipif(not pixeltext.engine_available() or not FONT.is_file(),
                                reason="Tesseract models or fonts-dejavu-core not installed")


def _real(name: str) -> Path:
    p = get_testdata_file(name, download=False)
    if p is None:
        pytest.skip(f"{name} not shipped with this pydicom")
    return Path(p)


_scan = finder_scan


# MR_small in each of pydicom's encodings (the same pixels), CT_small
REAL_SMALL = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
              "MR_small_bigendian.dcm", "CT_small.dcm"]


@pytest.mark.parametrize("name", REAL_SMALL)
def test_real_small_text_free_scans_get_no_box(name):
    """Before the fix: MR_small got two boxes (0..64 x 24..64 and 27..64 x 0..25, 'other',
    unreadable candidates of the anatomy), CT_small one (0..25 x 15..36)."""
    out = _scan(pydicom.dcmread(_real(name)))
    assert out.boxes == [] and not out.kinds and out.arr is None


def _export_small() -> list[Path]:
    """The images under 256 px of sample_dicoms/export (text-free 64-px knee MRs, 128-px CTs)."""
    out = []
    for p in sorted((Path(__file__).resolve().parent.parent / "sample_dicoms" / "export").rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:      # the export's planted non-DICOM files
            continue
        if "Rows" in ds and max(int(ds.Rows), int(ds.Columns)) < 256:
            out.append(p)
    return out


def test_the_sample_exports_small_images_get_no_box():
    """smallimg2's enlarged scan (pixeltext._SMALL_UP) read 2 characters in a knee MR's anatomy
    at 3x, and a text-free CT held a faint candidate with a row of glyph-shaped cuts over 30-231:
    neither counts (the glyph check at the image's own size, the faint range cap), so every small
    image of the export still gets no box. (File names are not reported: they hold the
    export's synthetic patients' names.)"""
    paths = _export_small()
    assert len(paths) >= 6
    boxed = [i for i, p in enumerate(paths) if _scan(pydicom.dcmread(p)).boxes]
    assert boxed == []


def test_anonymize_default_redact_leaves_small_real_scans_unmodified(tmp_path, key_file):
    """`vindr anonymize` with the default --burned-in redact and the real finder: the two real
    scans are written with the pixels they came with and no redaction in the manifest."""
    src = tmp_path / "in"
    src.mkdir()
    for name in ("MR_small.dcm", "CT_small.dcm"):
        shutil.copy(_real(name), src / name)
    out = tmp_path / "out"
    anonymize(src, out, key_path=key_file, profile=load_profile(), workers=1, executor=InProcessExecutor(),
              burned_in="redact")
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(rows) == 2
    for r in rows:
        assert r["status"] == "ok" and r["pixels_modified"] is False and json.loads(r["redactions"]) == []
        src_name = next(n for n in ("MR_small.dcm", "CT_small.dcm")
                        if pydicom.dcmread(src / n).Rows == pydicom.dcmread(out / r["output"]).Rows)
        assert np.array_equal(pydicom.dcmread(out / r["output"]).pixel_array, pydicom.dcmread(src / src_name).pixel_array)


def _with_text(name: str, scale: int, text: str, size: int, where: str, white: bool):
    """The real scan (stored values), scaled up ``scale`` times by pixel repetition, with
    ``text`` burned in at the stored maximum (white) or minimum, and the text's mask."""
    ds = pydicom.dcmread(_real(name))
    arr = ds.pixel_array
    if scale > 1:
        arr = np.kron(arr, np.ones((scale, scale), arr.dtype))
        ds.Rows, ds.Columns = arr.shape
    h = arr.shape[0]
    y = {"top": 2, "middle": h // 2 - size // 2, "bottom": h - size - 4}[where]
    canvas, _ = draw_text(np.zeros(arr.shape, np.uint8), text, (2, y), size, str(FONT))
    ink = canvas >= 96
    assert ink.any()
    arr = arr.copy()
    value = arr.max() if white else arr.min()
    # drawn where it shows: most of its strokes differ from what was there by a quarter of the range
    assert np.mean(np.abs(arr[ink].astype(np.int64) - int(value)) * 4 >= int(arr.max()) - int(arr.min())) > 0.5
    arr[ink] = value
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.PixelData = arr.tobytes()
    return ds, ink


def _covered(boxes, ink) -> bool:
    return bool(box_mask(boxes, ink.shape)[ink].all())


CASES = [  # (file, scale, text, font px, where, white)
    ("MR_small.dcm", 1, "TRAN B", 8, "bottom", True),
    ("MR_small.dcm", 1, "TRAN B", 10, "middle", True),
    ("MR_small.dcm", 1, "NGUYEN V", 8, "middle", True),
    ("MR_small.dcm", 1, "LE", 8, "bottom", True),
    # the next three were missed before smallimg2 (strict xfails): found now by the scan at
    # pixeltext._SMALL_UP times the size (initials over MR_small's bright top-left anatomy;
    # 10-px initials merged with its anatomy) and by an identifying box reaching the image's
    # side (a dark 16-px name over CT_small's top edge: its first glyphs, dark on dark air,
    # make no stroke)
    ("MR_small.dcm", 1, "LE", 8, "top", True),
    ("MR_small.dcm", 1, "LE", 10, "bottom", True),
    ("CT_small.dcm", 1, "NGUYEN VAN A", 16, "top", False),
    ("CT_small.dcm", 1, "NGUYEN VAN A", 8, "bottom", True),
    ("CT_small.dcm", 1, "NGUYEN VAN A", 10, "middle", False),
    ("CT_small.dcm", 1, "TRAN B", 16, "top", True),
    ("CT_small.dcm", 1, "LE", 10, "middle", True),
    ("CT_small.dcm", 1, "48213907", 10, "bottom", True),
    ("CT_small.dcm", 2, "NGUYEN VAN A", 16, "bottom", True),     # 256 px
    ("CT_small.dcm", 2, "TRAN B", 21, "middle", False),
    ("MR_small.dcm", 4, "NGUYEN VAN A", 16, "top", True),        # 256 px
    ("CT_small.dcm", 4, "NGUYEN VAN A", 32, "bottom", True),     # 512 px
    ("CT_small.dcm", 4, "TRAN B", 24, "middle", False),
]


@pytest.mark.parametrize("name,scale,text,size,where,white", CASES)
def test_text_burned_into_small_frames_is_masked(name, scale, text, size, where, white):
    ds, ink = _with_text(name, scale, text, size, where, white)
    out = _scan(ds)
    assert _covered(out.boxes, ink)
    assert out.arr is not None


def test_small_glyphs_on_the_real_candidates_and_on_drawn_text():
    """pixeltext._small_glyphs: none in the crops the old rule masked on MR_small and CT_small
    (the boxes reported before the fix, in display pixels), one in a name drawn there."""
    for name, box in (("MR_small.dcm", (1, 24, 64, 64)), ("MR_small.dcm", (27, 0, 64, 25)),
                      ("CT_small.dcm", (0, 15, 25, 36))):
        ds = pydicom.dcmread(_real(name))
        arr, ph = redact._frames(ds)
        img = redact.display(arr[0], ph)
        x0, y0, x1, y1 = box
        assert not pixeltext._small_glyphs(img[y0:y1, x0:x1])
        drawn, bb = draw_text(img.copy(), "TRAN B", (x0 + 3, y0 + 4), 8, str(FONT))
        assert pixeltext._small_glyphs(drawn[y0:y1, x0:x1])


def test_without_the_engine_small_images_keep_every_candidate(monkeypatch):
    """Safe by default: with no OCR engine nothing is read, so the small-image rule (which
    drops unread candidates without glyph evidence) does not apply; MR_small's candidates are
    all masked, as every candidate of any image is without the engine."""
    monkeypatch.setattr(pixeltext, "_engine", lambda: None)
    monkeypatch.setattr(pixeltext, "engine_available", lambda: False)
    out = _scan(pydicom.dcmread(_real("MR_small.dcm")))
    assert out.boxes and out.arr is not None
