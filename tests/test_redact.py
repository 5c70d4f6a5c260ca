"""Burned-in text redaction (deid.redact, ``vindr anonymize --burned-in``) on real pydicom test
images with text drawn into their stored values.

The text finder is the OCR branch's (deid.pixeltext); here it is replaced, through the
``finder`` seam only, by a real small finder that reports where the drawn glyphs are: the
pixels at the display image's brightest value (255), one box per image half, the left half
"name", the right half "marker". It sees exactly what OCR would see (the display image), so
it also checks the window and the MONOCHROME1 inversion."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file
from hypothesis import HealthCheck, given, settings, strategies as st
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from helpers import split_file
from vindr_cli.deid.audit import audit
from vindr_cli.deid.batch import RequestError, anonymize
from vindr_cli.deid.pixeltext import TextBox
from vindr_cli.deid.profile import load_profile
from vindr_cli.deid.redact import (DECODE_FAILED, FINDER_FAILED, TEXT_FOUND, UNSUPPORTED, PixelError, apply,
                                   clear_high_bits, display, scan)
from vindr_cli.dicomio.pixelstream import file_pixel_hash
from vindr_cli.runner.executor import InProcessExecutor
from vindr_cli.runner.state import SettingsChanged
from vindr_cli.synth.font import stamp


def _real(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return Path(path)


def finder(image, frame=0, hints=None):
    assert image.ndim == 2 and image.dtype == np.uint8
    boxes = []
    half = image.shape[1] // 2
    for kind, x_off, part in (("name", 0, image[:, :half]), ("marker", half, image[:, half:])):
        ys, xs = np.nonzero(part == 255)
        if len(ys) >= 12:                      # a glyph run, not the image's single brightest pixel
            boxes.append(TextBox(frame, int(xs.min()) + x_off, int(ys.min()), int(xs.max()) + 1 + x_off,
                                 int(ys.max()) + 1, kind))
    return boxes


def no_text(image, frame=0, hints=None):
    return []


def broken_finder(image, frame=0, hints=None):
    raise RuntimeError("engine crashed on NGUYEN VAN A")


def _brightest(ds) -> int:
    """The stored value that displays brightest: the top of the stored range (bottom for MONOCHROME1)."""
    bs, signed = int(ds.BitsStored), int(ds.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(1 << (bs - 1)), (1 << (bs - 1)) - 1) if signed else (0, (1 << bs) - 1)
    return lo if str(ds.PhotometricInterpretation) == "MONOCHROME1" else hi


def _glyphs(shape, left: bool) -> np.ndarray:
    rows, cols = shape
    mask = np.zeros((rows, cols), bool)
    scale = 1 if cols < 100 else 2
    stamp(mask, "NGUYEN VAN" if left else "PA", 3, 2 if left else cols - 13 * scale, scale=scale)
    if left:
        mask[:, cols // 2:] = False
    return mask


def _draw(ds, left=True, right=False) -> np.ndarray:
    """Draw text into frame 0 of ``ds`` (in place, written native); returns the text mask."""
    arr = ds.pixel_array.copy()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    f0 = arr[0] if frames > 1 else arr
    shape = f0.shape[:2]
    mask = np.zeros(shape, bool)
    if left:
        mask |= _glyphs(shape, True)
    if right:
        mask |= _glyphs(shape, False)
    f0[mask] = _brightest(ds) if f0.ndim == 2 else np.iinfo(f0.dtype).max
    return mask, arr


def _set(ds, arr) -> None:
    """Put drawn values back as the data set's native pixel data (keeping its syntax when lossless)."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts.is_compressed:
        ds.compress(ts, arr, generate_instance_uid=False)
    else:
        ds.PixelData = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<" if ts.is_little_endian else ">")).tobytes()


def _write(ds) -> pydicom.Dataset:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    buf.seek(0)
    return pydicom.dcmread(buf)


def _outside(boxes, shape) -> np.ndarray:
    keep = np.ones(shape, bool)
    for _, x0, y0, x1, y1 in boxes:
        keep[y0:y1, x0:x1] = False
    return keep


LOSSLESS = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
            "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "examples_jpeg2k.dcm",
            "SC_rgb_rle_2frame.dcm", "SC_rgb_rle_16bit.dcm", "examples_overlay.dcm"]


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_round_trip_masks_text_and_keeps_the_rest(name):
    src = _real(name)
    ds = pydicom.dcmread(src)
    ts = ds.file_meta.TransferSyntaxUID
    mask, drawn = _draw(ds)
    _set(ds, drawn)
    ds = _write(ds)                            # the drawn file as a hospital would send it
    before = ds.pixel_array.copy()
    out = scan(ds, finder)
    assert out.boxes and out.kinds["name"] >= 1 and out.arr is not None
    res = pydicom.dcmread(src)
    apply(res, out, ts)
    res = _write(res)
    assert res.file_meta.TransferSyntaxUID == ts   # re-encoded in kind
    assert res.BurnedInAnnotation == "NO"
    after = res.pixel_array
    assert after.shape == before.shape and after.dtype.kind == before.dtype.kind
    frames = int(res.get("NumberOfFrames", 1) or 1)
    shape = (int(res.Rows), int(res.Columns))
    keep = _outside(out.boxes, shape)
    a = after if frames > 1 else after[None]
    b = before if frames > 1 else before[None]
    assert np.array_equal(a[:, keep], b[:, keep])          # every frame, outside the boxes: unchanged
    masked = a[:, ~keep]
    assert (masked == masked.reshape(-1)[0]).all()         # inside: one fill value, every frame
    assert not keep[mask].any()                            # every drawn glyph pixel was in a box
    if res.SamplesPerPixel == 3:
        assert (masked == 0).all()
    else:
        assert masked.reshape(-1)[0] == b.min()            # MONOCHROME2: the darkest stored value


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm", "693_J2KI.dcm",
                                  "JPEGLSNearLossless_16.dcm"])
def test_lossy_input_written_uncompressed_never_recompressed(name):
    src = _real(name)
    ds = pydicom.dcmread(src)
    before = ds.pixel_array.copy()
    out = scan(ds, lambda img, frame=0, hints=None: [TextBox(frame, 2, 2, 12, 8, "id")])
    res = pydicom.dcmread(src)
    apply(res, out, ds.file_meta.TransferSyntaxUID)
    res = _write(res)
    assert res.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert res.LossyImageCompression == "01"
    after = res.pixel_array
    keep = _outside(out.boxes, after.shape[:2])
    assert np.array_equal(after[keep], before[keep])
    assert out.boxes == [(0, 0, 0, min(16, int(res.Columns)), 12)]   # padded by 4, clipped at the edges


def test_monochrome1_is_inverted_for_the_finder_and_filled_with_the_maximum():
    ds = pydicom.dcmread(_real("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    mask, drawn = _draw(ds)
    assert drawn[mask].max() == drawn.min()                # drawn at the bottom: brightest in MONOCHROME1
    _set(ds, drawn)
    ds = _write(ds)
    seen = display(ds.pixel_array[..., None], "MONOCHROME1")
    assert (seen[mask] == 255).all() and seen[~mask].max() < 255
    out = scan(ds, finder)
    assert out.boxes
    _, x0, y0, x1, y1 = out.boxes[0]
    assert (out.arr[y0:y1, x0:x1] == drawn.max()).all()     # darkest display value = largest stored


def test_signed_and_eight_bit_extremes_in_the_display():
    for name in ("CT_small.dcm", "liver_1frame.dcm"):
        ds = pydicom.dcmread(_real(name))
        img = display(ds.pixel_array[..., None], str(ds.PhotometricInterpretation))
        assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255


def test_box_found_in_one_frame_is_masked_in_every_frame():
    ds = pydicom.dcmread(_real("rtdose.dcm"))                 # 32-bit, multi-frame
    frames = int(ds.NumberOfFrames)
    assert frames > 1
    seen = []

    def second_frame_only(image, frame=0, hints=None):
        seen.append(frame)
        return [TextBox(frame, 1, 1, 3, 3, "date")] if frame == 1 else []

    out = scan(ds, second_frame_only)
    assert seen == list(range(frames))                     # every frame shown to the finder
    assert out.boxes == [(1, 0, 0, 7, 7)] and out.kinds == {"date": 1}
    assert (out.arr[:, 0:7, 0:7] == ds.pixel_array.min()).all()


def test_markers_are_kept_and_text_free_images_untouched():
    ds = pydicom.dcmread(_real("MR_small.dcm"))
    mask, drawn = _draw(ds, left=False, right=True)
    _set(ds, drawn)
    ds = _write(ds)
    out = scan(ds, finder)
    assert out.markers == 1 and out.boxes == [] and out.arr is None
    assert scan(pydicom.dcmread(_real("CT_small.dcm")), no_text).arr is None


def test_high_bit_overlay_cleared_and_counted():
    ds = pydicom.dcmread(_real("examples_overlay.dcm"))
    assert int(ds.BitsStored) == 12 and int(ds.BitsAllocated) == 16
    clean = ds.pixel_array.copy()
    graphics = np.zeros(clean.shape, bool)
    graphics[10:14, 20:120] = True                         # a line of overlay graphics in bit 12
    raw = clean.copy()
    raw[graphics] |= 1 << 12
    ds.PixelData = raw.astype("<u2").tobytes()
    ds[0x60000102].value = 12                              # OverlayBitPosition: in the pixel data
    del ds[0x60003000]                                     # no separate OverlayData
    out = scan(ds, no_text)
    assert out.overlay_pixels == int(graphics.sum()) and out.boxes == []
    assert np.array_equal(out.arr, clean)
    res = pydicom.dcmread(_real("examples_overlay.dcm"))
    apply(res, out, res.file_meta.TransferSyntaxUID)
    assert np.frombuffer(res.PixelData, "<u2").max() < (1 << 12)
    assert res.get("BurnedInAnnotation") == pydicom.dcmread(_real("examples_overlay.dcm")).get("BurnedInAnnotation")


def test_signed_high_bits_are_sign_extended():
    ds = pydicom.dcmread(_real("CT_small.dcm"))
    ds.BitsStored, ds.HighBit = 12, 11
    vals = np.array([5, -3, 100, -2048], "<i2")
    raw = vals.view("<u2") & 0x0FFF
    raw[0] |= 0x2000                                       # overlay bit on a positive value
    # -3 and -2048 are stored without their sign extension
    ds.PixelData = raw.tobytes()
    ds.Rows, ds.Columns = 2, 2
    assert clear_high_bits(ds) == 3                        # all but 100: overlay bit, two lost sign extensions
    assert np.array_equal(np.frombuffer(ds.PixelData, "<i2"), [5, -3, 100, -2048])


def test_decoder_failure_and_unsupported_layouts_raise_fixed_reasons():
    with pytest.raises(PixelError) as e:
        scan(pydicom.dcmread(_real("JPEG-lossy.dcm")), no_text)      # no decoder here for it
    assert e.value.reason == DECODE_FAILED
    ds = pydicom.dcmread(_real("MR_small_RLE.dcm"))
    ds.PixelData = ds.PixelData[:40]                                  # cut inside the RLE segments
    with pytest.raises(PixelError) as e:
        scan(ds, no_text)
    assert e.value.reason == DECODE_FAILED
    ds = pydicom.dcmread(_real("CT_small.dcm"))
    ds.PhotometricInterpretation = "YBR_FULL"                         # a 1-sample layout no finder view exists for
    with pytest.raises(PixelError) as e:
        scan(ds, no_text)
    assert e.value.reason in (UNSUPPORTED, DECODE_FAILED)
    with pytest.raises(PixelError) as e:
        scan(pydicom.dcmread(_real("CT_small.dcm")), broken_finder)
    assert e.value.reason == FINDER_FAILED and "NGUYEN" not in str(e.value)


# ---- through `vindr anonymize` ----------------------------------------------------------

def _export(tmp_path: Path) -> Path:
    """Real files: MR with a drawn name (RLE), a text-free CT, a cut RLE stream, an SC."""
    src = tmp_path / "export"
    src.mkdir()
    ds = pydicom.dcmread(_real("MR_small_RLE.dcm"))
    ds.PatientName = "Nguyen^Van An"
    _, drawn = _draw(ds)
    _set(ds, drawn)
    ds.SOPInstanceUID = generate_uid()
    ds.BurnedInAnnotation = "NO"                            # the header lies, as consoles do
    pydicom.dcmwrite(src / "text.dcm", ds, enforce_file_format=True)
    shutil.copy(_real("CT_small.dcm"), src / "clean.dcm")
    bad = pydicom.dcmread(_real("MR_small_RLE.dcm"))
    bad.SOPInstanceUID = generate_uid()
    bad.PixelData = pydicom.encaps.encapsulate([pydicom.encaps.generate_fragmented_frames(bad.PixelData).__next__()[0][:40]])
    pydicom.dcmwrite(src / "undecodable.dcm", bad, enforce_file_format=True)
    shutil.copy(_real("SC_rgb_rle.dcm"), src / "sc.dcm")
    return src


def _rows(out: Path) -> dict[str, dict]:
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    link = pq.read_table(out.parent / (out.name + ".linkage.parquet")).to_pylist()
    names = {r["input_key"]: Path(r["input_path"]).name for r in link}
    return {names[r["input_key"]]: r for r in rows}


def _anon(src, out, key, mode, finder_fn=finder, **kw):
    return anonymize(src, out, key_path=key, profile=load_profile(), workers=1, executor=InProcessExecutor(),
                     burned_in=mode, finder=finder_fn, **kw)


def test_anonymize_redact(tmp_path, key_file):
    src = _export(tmp_path)
    out = tmp_path / "anon"
    summary = _anon(src, out, key_file, "redact")
    rows = _rows(out)
    text, clean = rows["text.dcm"], rows["clean.dcm"]
    assert text["status"] == "ok" and text["pixels_modified"] is True
    boxes = json.loads(text["redactions"])
    assert boxes and all(len(b) == 5 and b[0] == 0 for b in boxes)
    assert json.loads(text["text_kinds"])["name"] >= 1
    assert text["input_pixel_sha256"] == split_file(src / "text.dcm")[1] != text["pixel_sha256"]
    written = pydicom.dcmread(out / text["output"])
    assert text["pixel_sha256"] == file_pixel_hash(out / text["output"])
    assert written.BurnedInAnnotation == "NO"
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert (written.pixel_array < _brightest(written)).all()         # no drawn glyph pixel left
    # the text-free image: the byte-for-byte copy and its hash
    assert clean["status"] == "ok" and clean["pixels_modified"] is False and json.loads(clean["redactions"]) == []
    assert clean["input_pixel_sha256"] == clean["pixel_sha256"] == split_file(src / "clean.dcm")[1]
    assert split_file(out / clean["output"])[1] == clean["pixel_sha256"]
    # a decoder failure fails that file only; the SC stays quarantined by its SOP class
    assert rows["undecodable.dcm"]["status"] == "failed" and rows["undecodable.dcm"]["reason"] == DECODE_FAILED
    assert rows["sc.dcm"]["status"] == "quarantined"
    assert summary.counts["ok"] == 2
    manifest_text = (out / "manifest.parquet").read_bytes()
    assert b"Nguyen" not in manifest_text and b"NGUYEN" not in manifest_text
    settings = json.loads((out / ".vindr" / "anonymize.json").read_text())
    assert settings["settings"]["burned_in"] == "redact"


def test_allow_burned_in_scans_sop_class_risky_images(tmp_path, key_file):
    src = _export(tmp_path)
    out = tmp_path / "anon"
    shutil.copy(_real("image_dfl.dcm"), src / "deflated.dcm")          # a deflated secondary capture
    shutil.copy(_real("SC_rgb_jpeg_dcmtk.dcm"), src / "ybr.dcm")         # lossy YBR_FULL_422 JPEG
    _anon(src, out, key_file, "redact", allow_burned_in=True)
    rows = _rows(out)
    sc = rows["sc.dcm"]
    assert sc["status"] == "ok" and sc["redactions"] is not None       # scanned, not passed through
    dfl = rows["deflated.dcm"]
    assert dfl["status"] == "ok" and dfl["pixels_modified"] is True and json.loads(dfl["redactions"])
    written = pydicom.dcmread(out / dfl["output"])
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    assert hashlib.sha256(written.PixelData).hexdigest() == dfl["pixel_sha256"] != dfl["input_pixel_sha256"]
    ybr = rows["ybr.dcm"]
    assert ybr["transfer_syntax"] == ExplicitVRLittleEndian and ybr["photometric"] == "RGB"   # the output's
    assert pydicom.dcmread(out / ybr["output"]).LossyImageCompression == "01"
    report = audit(out, out.parent / (out.name + ".linkage.parquet"))
    assert report.dicom_files == 5 and report.findings == []            # re-encoded outputs pass the audit


def test_anonymize_quarantine_and_off(tmp_path, key_file):
    src = _export(tmp_path)
    q = tmp_path / "q"
    _anon(src, q, key_file, "quarantine")
    rows = _rows(q)
    assert rows["text.dcm"]["status"] == "quarantined" and rows["text.dcm"]["reason"] == TEXT_FOUND
    assert rows["clean.dcm"]["status"] == "ok"
    off = tmp_path / "off"
    _anon(src, off, key_file, "off", finder_fn=broken_finder)          # off never calls the finder
    rows = _rows(off)
    assert rows["text.dcm"]["status"] == "ok" and rows["text.dcm"]["pixels_modified"] is False
    assert rows["text.dcm"]["redactions"] is None
    assert rows["text.dcm"]["pixel_sha256"] == split_file(src / "text.dcm")[1]
    # off does not decode, but an RLE frame is walked (red team 11: its header and the bytes after its
    # segments held a name); 40 bytes are no RLE header, so it is decoded, and that fails
    assert rows["undecodable.dcm"]["status"] == "failed" and rows["undecodable.dcm"]["reason"] == DECODE_FAILED


def test_finder_failure_never_writes_the_image(tmp_path, key_file):
    src = _export(tmp_path)
    out = tmp_path / "anon"
    _anon(src, out, key_file, "redact", finder_fn=broken_finder)
    rows = _rows(out)
    assert {r["status"] for r in rows.values()} == {"failed", "quarantined"}
    assert rows["clean.dcm"]["reason"] == FINDER_FAILED
    assert not list(out.rglob("*.dcm"))


def test_high_bit_overlay_through_anonymize(tmp_path, key_file):
    src = tmp_path / "export"
    src.mkdir()
    ds = pydicom.dcmread(_real("examples_overlay.dcm"))
    raw = ds.pixel_array.copy()
    raw[5:9, 5:60] |= 1 << 13
    ds.PixelData = raw.astype("<u2").tobytes()
    ds[0x60000102].value = 13
    del ds[0x60003000]
    pydicom.dcmwrite(src / "ov.dcm", ds, enforce_file_format=True)
    out = tmp_path / "anon"
    _anon(src, out, key_file, "redact", finder_fn=no_text)
    row = _rows(out)["ov.dcm"]
    assert row["status"] == "ok" and row["overlay_pixels_zeroed"] == 4 * 55 and row["pixels_modified"] is True
    written = pydicom.dcmread(out / row["output"])
    assert np.frombuffer(written.PixelData, "<u2").max() < (1 << 12)


def test_resume_refused_when_burned_in_changes(tmp_path, key_file):
    src = _export(tmp_path)
    out = tmp_path / "anon"
    _anon(src, out, key_file, "redact")
    with pytest.raises(SettingsChanged, match="--burned-in"):
        _anon(src, out, key_file, "off")
    _anon(src, out, key_file, "redact")                                  # the same value resumes
    with pytest.raises(RequestError, match="--burned-in must be one of"):
        _anon(src, tmp_path / "other", key_file, "blur")


def test_finder_gets_hints_from_the_original_header(tmp_path, key_file, monkeypatch):
    from vindr_cli.deid import pixeltext

    monkeypatch.setattr(pixeltext, "hints_from",
                        lambda ds: pixeltext.Hints(names=[str(ds.PatientName)], ids=[str(ds.PatientID)]))
    got = []

    def recording(image, frame=0, hints=None):
        got.append(hints)
        return []

    src = _export(tmp_path)
    _anon(src, tmp_path / "anon", key_file, "redact", finder_fn=recording)
    assert pixeltext.Hints(names=["Nguyen^Van An"], ids=[pydicom.dcmread(src / "text.dcm").PatientID]) in got


def test_cli_refuses_an_unknown_burned_in_mode(tmp_path, key_file):
    from helpers import run_cli

    src = _export(tmp_path)
    p = run_cli("anonymize", src, tmp_path / "anon", "--key", key_file, "--burned-in", "blur", check=False)
    assert p.returncode == 2 and "--burned-in must be one of redact, quarantine, off" in p.stderr
    assert not (tmp_path / "anon").exists()


def test_swapped_or_overhanging_boxes_are_still_masked():
    ds = pydicom.dcmread(_real("MR_small.dcm"))
    out = scan(ds, lambda img, frame=0, hints=None: [TextBox(frame, 30, 20, 10, 5, "other"),
                                                    TextBox(frame, 60, 60, 90, 90, "mystery")])
    assert out.boxes == [(0, 6, 1, 34, 24), (0, 56, 56, 64, 64)]
    assert out.kinds == {"other": 2}                       # an unknown kind is identifying
    assert (out.arr[1:24, 6:34] == ds.pixel_array.min()).all()


_boxes = st.lists(st.tuples(st.integers(-10, 80), st.integers(-10, 80), st.integers(-10, 80), st.integers(-10, 80),
                            st.sampled_from(["name", "id", "date", "other", "marker"])), max_size=4)


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(boxes=_boxes)
def test_property_rle_round_trip_changes_exactly_the_masked_boxes(boxes):
    src = _real("MR_small_RLE.dcm")
    ds = pydicom.dcmread(src)
    before = ds.pixel_array.copy()
    out = scan(ds, lambda img, frame=0, hints=None: [TextBox(frame, *b) for b in boxes])
    assert len(out.boxes) <= sum(k != "marker" for *_, k in boxes)
    if out.arr is None:
        assert not out.boxes
        return
    res = pydicom.dcmread(src)
    apply(res, out, ds.file_meta.TransferSyntaxUID)
    res = _write(res)
    assert res.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    after = res.pixel_array
    keep = _outside(out.boxes, after.shape)
    assert np.array_equal(after[keep], before[keep]) and (after[~keep] == before.min()).all()


def test_palette_colour_is_seen_in_its_colours_and_filled_with_its_darkest_entry():
    """PALETTE COLOR (a real US file): the finder sees the palette's luminance; a box is filled
    with the index of the palette's darkest colour, so the text is gone in the displayed colours."""
    from pydicom.pixels import apply_color_lut

    ds = pydicom.dcmread(_real("examples_palette.dcm"))
    arr = ds.pixel_array
    seen = []

    def box_finder(image, frame=0, hints=None):
        seen.append(image)
        return [TextBox(frame, 10, 10, 60, 30, "name")]

    out = scan(ds, box_finder)
    assert seen and seen[0].ndim == 2 and seen[0].dtype == np.uint8 and seen[0].shape == arr.shape
    masked = out.arr.reshape(arr.shape)
    rgb = apply_color_lut(np.arange(256, dtype=np.uint8), ds).astype(float) @ np.array([0.299, 0.587, 0.114])
    assert len(np.unique(masked[10 - 4:30 + 4, 10 - 4:60 + 4])) == 1
    assert rgb[masked[12, 12]] == rgb.min()
    assert np.array_equal(masked[100:, 100:], arr[100:, 100:])             # outside the box: untouched


def test_audit_pixels_reports_text_planted_into_an_output(tmp_path, key_file):
    """`vindr audit` (pixels on by default) reads every written image with the real text
    finder: a readable name drawn into an output after the fact (10 px high on a 128 px CT;
    6 px glyphs are below what OCR reads, and the audit reports readable text) is reported
    with its frame and box, never its text."""
    from PIL import Image, ImageDraw, ImageFont

    from vindr_cli.deid import pixeltext
    from vindr_cli.deid.audit import audit

    if not pixeltext.engine_available():
        pytest.skip("Tesseract models not installed (apt-get install tesseract-ocr-eng tesseract-ocr-vie)")
    font_path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font_path.is_file():
        pytest.skip("fonts-dejavu-core not installed")
    src = tmp_path / "in"
    src.mkdir()
    ds = pydicom.dcmread(_real("CT_small.dcm"))
    ds.save_as(src / "a.dcm")
    out = tmp_path / "out"
    anonymize(src, out, key_path=key_file, profile=load_profile(), workers=1)
    row = pq.read_table(out / "manifest.parquet").to_pylist()[0]
    path = out / row["output"]
    o = pydicom.dcmread(path)
    arr = o.pixel_array.astype(np.int32)
    canvas = Image.new("L", (arr.shape[1] * 4, arr.shape[0] * 4), 0)
    ImageDraw.Draw(canvas).text((8, 8), "NGUYEN VAN AN", fill=255, font=ImageFont.truetype(str(font_path), 40))
    mask = np.asarray(canvas.resize((arr.shape[1], arr.shape[0]))) > 100
    arr[mask] = arr.max() + 400
    o.PixelData = arr.astype(o.pixel_array.dtype).tobytes()
    o.save_as(path)
    report = audit(out)
    hits = [f for f in report.findings if f.kind == "pixel-text"]
    assert hits and all("frame 0" in f.detail for f in hits)
    assert "NGUYEN" not in report.to_json()
    assert not [f for f in audit(out, pixels=False).findings if f.kind.startswith("pixel-") and f.kind != "pixel-hash"]


# ---- multi-frame: every frame is scanned; text in frame k only -----------------------------

def _frames_of(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    return arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[None]


def test_multi_frame_text_in_frame_k_only_through_anonymize(tmp_path, key_file):
    """A real 15-frame RT dose (32-bit, Implicit VR) with text found in frame k only (the seam
    finder reports it there): the manifest's box carries frame k, the box is masked in every
    frame (deid.redact's rule) and every frame is unchanged in value outside it; every frame
    was shown to the finder."""
    src = tmp_path / "export"
    src.mkdir()
    shutil.copy(_real("rtdose.dcm"), src / "dose.dcm")
    before = _frames_of(src / "dose.dcm")
    frames, k = before.shape[0], 9
    seen = []

    def frame_k(image, frame=0, hints=None):
        seen.append(frame)
        return [TextBox(frame, 2, 3, 6, 5, "id")] if frame == k else []

    out = tmp_path / "anon"
    _anon(src, out, key_file, "redact", finder_fn=frame_k, allow_burned_in=True)
    row = _rows(out)["dose.dcm"]
    assert sorted(seen) == list(range(frames))
    assert row["status"] == "ok" and row["pixels_modified"] is True and row["frames"] == frames
    assert json.loads(row["redactions"]) == [[k, 0, 0, 10, 9]]          # padded by 4, clipped to 10 x 10
    after = _frames_of(out / row["output"])
    keep = _outside([(k, 0, 0, 10, 9)], before.shape[1:3])
    assert after.shape == before.shape
    assert np.array_equal(after[:, keep], before[:, keep])               # every frame, outside the box
    assert (after[:, ~keep] == before.min()).all()                      # inside: the darkest value, every frame


def test_multi_frame_real_text_drawn_into_frame_k_is_redacted_by_ocr(tmp_path, key_file):
    """A real 2-frame RGB RLE image with a name drawn into frame 1 only, through the real text
    finder (Tesseract): the boxes carry frame 1, no drawn pixel is left in any frame, both
    frames are unchanged outside the boxes, the output stays RLE."""
    from PIL import Image, ImageDraw, ImageFont

    from vindr_cli.deid import pixeltext

    if not pixeltext.engine_available():
        pytest.skip("Tesseract models not installed (apt-get install tesseract-ocr-eng tesseract-ocr-vie)")
    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
    if not font.is_file():
        pytest.skip("fonts-dejavu-core not installed")
    ds = pydicom.dcmread(_real("SC_rgb_rle_2frame.dcm"))
    arr = ds.pixel_array.copy()
    assert arr.shape[0] == 2
    canvas = Image.new("L", (arr.shape[2] * 4, arr.shape[1] * 4), 0)
    ImageDraw.Draw(canvas).text((16, 89 * 4), "NGUYEN", fill=255, font=ImageFont.truetype(str(font), 40))
    mask = np.asarray(canvas.resize((arr.shape[2], arr.shape[1]), Image.BILINEAR)) > 110
    arr[1][mask] = 255                                                   # white, on the bottom (black) band
    _set(ds, arr)
    src = tmp_path / "export"
    src.mkdir()
    pydicom.dcmwrite(src / "mf.dcm", ds, enforce_file_format=True)
    before = _frames_of(src / "mf.dcm")
    out = tmp_path / "anon"
    _anon(src, out, key_file, "redact", finder_fn=pixeltext.find_text, allow_burned_in=True)
    row = _rows(out)["mf.dcm"]
    boxes = json.loads(row["redactions"])
    assert row["status"] == "ok" and boxes and {b[0] for b in boxes} == {1}
    written = pydicom.dcmread(out / row["output"])
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    after = _frames_of(out / row["output"])
    keep = _outside(boxes, after.shape[1:3])
    assert not keep[mask].any()                                          # every drawn pixel was in a box
    assert np.array_equal(after[:, keep], before[:, keep])
    assert (after[:, ~keep] == 0).all()                                  # RGB: black, in both frames
