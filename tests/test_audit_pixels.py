"""`vindr audit` reads the pixels by default (issue 10): real Tesseract, real pydicom files and
the committed sample export, anonymized with `--burned-in redact` and then audited.

Stable: a redacted tree audits with no pixel finding (the masks' edges and the re-windowed
anatomy are not text). Sound: text drawn into an output AFTER anonymize (PIL, written back
into the stored values) is found, with its frame, in a multi-frame image too; an original
name from the linkage table is named as such; anything drawn into one of the anonymizer's
masks is found; markers are not findings; `--no-pixels` skips the pixel data. No finding,
report or message ever holds the drawn text."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file

from conftest import SAMPLE
from helpers import key_file_in, run_cli
from vindr_cli.deid import pixeltext
from vindr_cli.deid.audit import audit
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
PIXEL_KINDS = ("pixel-text", "pixel-mask", "pixel-scan")

pytestmark = [
    pytest.mark.skipif(not pixeltext.engine_available(),
                       reason="Tesseract models not installed (apt-get install tesseract-ocr-eng tesseract-ocr-vie)"),
    pytest.mark.skipif(not FONT.is_file(), reason="fonts-dejavu-core not installed"),
]

# real pydicom files that resolve locally (never downloaded): CT, MR, NM, 1 to 2 frames, native,
# RLE, JPEG 2000 (lossless and lossy), 8 to 16 bits, RGB
REAL = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm",
        "examples_overlay.dcm", "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm"]


def _real(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return Path(path)


def _pixel_findings(report) -> list:
    return [f for f in report.findings if f.kind in PIXEL_KINDS]


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    """Real CT/MR/NM/RGB files, PatientName set to a Vietnamese name, anonymized (redact)."""
    base = tmp_path_factory.mktemp("real")
    src = base / "in"
    src.mkdir()
    for name in REAL:
        ds = pydicom.dcmread(_real(name))
        ds.PatientName = "Nguyen^Van An"
        ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[name])   # MR_small and its RLE: two images
        ds.save_as(src / name)
    out = base / "out"
    anonymize(src, out, key_path=key_file_in(base), profile=load_profile(), workers=1, allow_burned_in=True)
    rows = {Path(r["input_path"]).name: r for r in pq.read_table(base / "out.linkage.parquet").to_pylist()}
    manifest = {r["input_key"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    return out, base / "out.linkage.parquet", {n: manifest[r["input_key"]] for n, r in rows.items()}


@pytest.fixture(scope="module")
def sample_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("sample")
    out = base / "anon"
    anonymize(SAMPLE / "export", out, key_path=key_file_in(base), profile=load_profile(), workers=1)
    return out, base / "anon.linkage.parquet"


def _copy(tree, tmp_path: Path) -> tuple[Path, Path]:
    out, link = tree
    work = tmp_path / "out"
    shutil.copytree(out, work)
    shutil.copy(link, tmp_path / "out.linkage.parquet")
    return work, tmp_path / "out.linkage.parquet"


def draw(path: Path, text: str, *, frame: int = 0, at: tuple[int, int] = (4, 4), size: int = 12,
         value=None) -> np.ndarray:
    """Draw ``text`` (DejaVu Sans Bold, ``size`` px) into one frame of a written image, at the
    frame's brightest stored value (white in RGB), and save it back as native pixel data.
    Returns the mask of changed pixels."""
    from PIL import Image, ImageDraw, ImageFont

    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.copy()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    f = arr[frame] if frames > 1 else arr
    h, w = f.shape[:2]
    canvas = Image.new("L", (w * 4, h * 4), 0)
    ImageDraw.Draw(canvas).text((at[0] * 4, at[1] * 4), text, fill=255, font=ImageFont.truetype(str(FONT), size * 4))
    mask = np.asarray(canvas.resize((w, h), Image.BILINEAR)) > 110
    if value is None:
        value = (f.min() if str(ds.PhotometricInterpretation) == "MONOCHROME1" else f.max()) if f.ndim == 2 else 255
    f[mask] = value
    if ds.file_meta.TransferSyntaxUID.is_compressed:              # written back native
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        if int(ds.SamplesPerPixel) == 3:
            ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    order = "<" if ds.file_meta.TransferSyntaxUID.is_little_endian else ">"
    ds.PixelData = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder(order)).tobytes()
    ds["PixelData"].is_undefined_length = False
    ds.save_as(path)
    return mask


def _box(detail: str) -> tuple[int, int, int, int, int]:
    m = re.search(r"frame (\d+), box x (\d+)-(\d+), y (\d+)-(\d+)", detail)
    assert m, detail
    fr, x0, x1, y0, y1 = map(int, m.groups())
    return fr, x0, y0, x1, y1


# ---- stable: a redacted tree has no pixel finding ---------------------------------------

def test_sample_export_redacted_then_audited_has_no_pixel_finding(sample_tree):
    out, link = sample_tree
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert any(json.loads(r["redactions"] or "[]") for r in rows)        # masks to re-read
    report = audit(out, link)
    assert report.dicom_files >= 20 and report.findings == []


def test_real_ct_mr_nm_redacted_then_audited_has_no_pixel_finding(real_tree):
    out, link, rows = real_tree
    assert all(rows[n]["status"] == "ok" for n in REAL)
    # masks to re-read (J2K_pixelrep_mismatch, examples_overlay); MR_small, its RLE and CT_small,
    # text-free small scans, are no longer masked (tests/test_small_images.py)
    assert sum(bool(json.loads(rows[n]["redactions"] or "[]")) for n in REAL) >= 2
    assert not any(json.loads(rows[n]["redactions"] or "[]") for n in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm"))
    report = audit(out, link)
    assert _pixel_findings(report) == [] and report.findings == []


# ---- sound: text put in afterwards is found ----------------------------------------------

def test_text_drawn_into_an_output_is_found_with_frame_and_box(real_tree, tmp_path):
    out, link = _copy(real_tree[:2], tmp_path)
    rows = real_tree[2]
    path = out / rows["CT_small.dcm"]["output"]
    mask = draw(path, "NGUYEN VAN AN", at=(4, 100), size=12)
    report = audit(out, link)
    hits = [f for f in report.findings if f.kind == "pixel-text"]
    assert hits and all(f.where == rows["CT_small.dcm"]["output"] for f in hits)
    ys, xs = np.nonzero(mask)
    fr, x0, y0, x1, y1 = _box(hits[0].detail)
    assert fr == 0 and x0 <= xs.min() + 2 and x1 >= xs.max() - 2 and y0 <= ys.min() + 2 and y1 >= ys.max() - 2
    text = report.to_json() + report.to_tsv()
    assert "NGUYEN" not in text.upper() and "VAN AN" not in text.upper()


def test_an_original_name_from_the_linkage_table_is_named_as_such(real_tree, tmp_path):
    out, link = _copy(real_tree[:2], tmp_path)
    rows = real_tree[2]
    draw(out / rows["examples_overlay.dcm"]["output"], "NGUYEN", at=(4, 40), size=11)
    hits = [f for f in audit(out, link).findings if f.kind == "pixel-text"]
    assert hits and any("matching an original name" in f.detail for f in hits)
    # without the linkage table the same text is still found, as readable text
    hits = [f for f in audit(out).findings if f.kind == "pixel-text"]
    assert hits and all("original" not in f.detail for f in hits)


def test_text_drawn_into_frame_j_of_a_multi_frame_output_is_found_in_that_frame(real_tree, tmp_path):
    out, link = _copy(real_tree[:2], tmp_path)
    row = real_tree[2]["SC_rgb_rle_2frame.dcm"]
    assert row["frames"] == 2
    draw(out / row["output"], "NGUYEN", frame=1, at=(4, 89), size=10)     # on the bottom (black) band
    hits = [f for f in audit(out, link).findings if f.kind == "pixel-text"]
    assert hits and {_box(f.detail)[0] for f in hits} == {1}
    assert all(f.where == row["output"] for f in hits)


def test_anything_drawn_into_a_mask_is_found(real_tree, tmp_path):
    out, link = _copy(real_tree[:2], tmp_path)
    row = real_tree[2]["examples_overlay.dcm"]     # a real file that keeps a mask (CT_small, text-free, has none)
    boxes = json.loads(row["redactions"])
    assert boxes
    _, x0, y0, x1, y1 = boxes[0]
    path = out / row["output"]
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.copy()
    arr[y0 + (y1 - y0) // 2, x0:x1] += 50                  # one faint line across the mask
    ds.PixelData = arr.astype("<i2" if arr.dtype.kind == "i" else "<u2").tobytes()
    ds.save_as(path)
    report = audit(out, link)
    assert [f.kind for f in _pixel_findings(report)] == ["pixel-mask"]
    assert "frame 0" in _pixel_findings(report)[0].detail


MARKERS = [("CT_small.dcm", "PA", (4, 4), 12), ("CT_small.dcm", "L", (110, 4), 14),
           ("CT_small.dcm", "R", (4, 100), 14), ("CT_small.dcm", "PHẢI", (80, 100), 12),
           ("examples_overlay.dcm", "TRÁI", (4, 40), 12), ("examples_overlay.dcm", "ĐỨNG", (400, 40), 12),
           ("examples_overlay.dcm", "SUPINE", (380, 260), 12)]


def test_markers_drawn_into_outputs_are_not_findings(real_tree, tmp_path):
    out, link = _copy(real_tree[:2], tmp_path)
    for name, marker, at, size in MARKERS:
        assert draw(out / real_tree[2][name]["output"], marker, at=at, size=size).sum() > 10
    report = audit(out, link)
    assert _pixel_findings(report) == []
    assert [f.kind for f in report.findings] == ["pixel-hash"] * 2     # the change itself is still seen


def test_no_pixels_skips_the_pixel_data(real_tree, tmp_path):
    out, link = _copy(real_tree[:2], tmp_path)
    row = real_tree[2]["CT_small.dcm"]
    draw(out / row["output"], "NGUYEN VAN AN", at=(4, 100), size=12)
    assert _pixel_findings(audit(out, link, pixels=False)) == []
    on = run_cli("audit", out, "--json", check=False)
    off = run_cli("audit", out, "--json", "--no-pixels", check=False)
    assert on.returncode == off.returncode == 1                    # the pixel hash differs in both
    kinds_on = json.loads(on.stdout)["findings_by_kind"]
    kinds_off = json.loads(off.stdout)["findings_by_kind"]
    assert kinds_on.get("pixel-text", 0) >= 1 and "pixel-text" not in kinds_off
    assert "NGUYEN" not in on.stdout + on.stderr


def test_a_mask_is_painted_over_from_its_surroundings():
    """What the finder sees where the anonymizer masked: values between those around the box,
    no step at its edges; everything outside the boxes as it was."""
    from vindr_cli.deid.audit import _paint_over
    from vindr_cli.deid.redact import display

    ds = pydicom.dcmread(_real("CT_small.dcm"))
    img = display(ds.pixel_array[..., None], "MONOCHROME2")
    boxes = [(20, 30, 60, 50), (50, 45, 80, 70), (0, 0, 10, 128)]          # overlapping, and a full-height one
    masked = img.copy()
    inside = np.zeros(img.shape, bool)
    for x0, y0, x1, y1 in boxes:
        masked[y0:y1, x0:x1] = 0
        inside[y0:y1, x0:x1] = True
    seen = _paint_over(masked, boxes)
    assert seen.dtype == np.uint8 and np.array_equal(seen[~inside], img[~inside])
    ring = np.zeros(img.shape, bool)
    ring[25:75, 15:85] = True
    ring &= ~inside
    assert seen[inside].min() >= min(img[ring].min(), img[:, 10].min()) - 1
    assert seen[inside].max() <= max(img[ring].max(), img[:, 10].max()) + 1
    # no edge: across a box's side the step is no larger than the image's own steps nearby
    for cols in ((slice(30, 50), 20, 19), (slice(30, 50), 59, 60)):        # left side, right side
        rows, a, b = cols
        step = np.abs(seen[rows, a].astype(int) - seen[rows, b].astype(int)).max()
        assert step <= np.abs(np.diff(img[rows, b - 5:b + 5].astype(int), axis=1)).max() + 2
    step = np.abs(seen[30, 20:60].astype(int) - seen[29, 20:60].astype(int)).max()       # top side
    assert step <= np.abs(np.diff(img[25:35, 20:60].astype(int), axis=0)).max() + 2
    assert _paint_over(masked, []) is masked


def test_text_across_the_spine_of_a_radiograph_is_found_without_hints(sample_tree, tmp_path):
    """Red team: a name drawn mid-image across a chest film's lungs and spine (a mixed ground,
    bright under some letters and dark under others) was boxed by the finder but OCR read it in
    neither polarity, so the audit said nothing. The audit also reads the box's top-hats."""
    out, _ = _copy(sample_tree, tmp_path)
    rows = [r for r in pq.read_table(out / "manifest.parquet").to_pylist()
            if r["status"] == "ok" and r["modality"] in ("CR", "DX") and int(r["frames"] or 1) == 1
            and not json.loads(r["redactions"] or "[]")]
    assert rows
    for r in rows[:3]:
        h = int(r["rows"])
        draw(out / r["output"], "QXNAME SECRET", at=(4, h // 2), size=max(12, h // 14))
    report = audit(out, None)
    found = {f.where for f in report.findings if f.kind == "pixel-text"}
    hit = sum(r["output"] in found for r in rows[:3])
    assert hit == len(rows[:3])
    assert "QXNAME" not in (report.to_json() + report.to_tsv()).upper()


def test_the_audit_reads_with_the_finder_s_engine_and_allowlist():
    """One Tesseract per process (the finder's, single-line page segmentation) and one reading
    of burned_in_allowlist.toml serve both the finder and the audit's reading of its boxes."""
    import tomllib
    import unicodedata

    import tesserocr

    from vindr_cli.deid import audit as audit_mod
    from vindr_cli.resources import schema_path

    api, lock = audit_mod._reader()
    assert api is pixeltext._engine() and api is not None
    assert api.GetPageSegMode() == tesserocr.PSM.SINGLE_LINE
    with lock:                                 # the finder's lock: held here, so not free for a second holder
        assert not lock.acquire(blocking=False)
    data = tomllib.loads(schema_path("deid", "burned_in_allowlist.toml").read_text(encoding="utf-8"))
    words, patterns, units, number = audit_mod._marker_rules()
    assert words == {unicodedata.normalize("NFC", w).upper() for w in data["words"]} and "TRÁI" in words
    assert [p.pattern for p in patterns] == data.get("patterns", []) and number.pattern == data["number"]
    assert {audit_mod._fold(u) for u in units} == {audit_mod._fold(u) for u in data["units"]}
    assert audit_mod._marker_word(["TRÁI"], 0) and not audit_mod._marker_word(["DŨNG"], 0)
