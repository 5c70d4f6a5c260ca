"""Red team 4 (issue 10 and the product): pixel data beyond the main image, burned-in text in
layouts the earlier red teams and the bench corpus do not have, and the side channels.

Each attack is a real file built in tmp_path from pydicom's test files (RG1_UNCR, a real CR;
CT_small), run through ``vindr anonymize`` (default ``--burned-in redact``), and the OUTPUT
is checked with independent eyes: re-read by Tesseract (both polarities, several scales and
page modes) as a viewer shows it, headers with dcmdump. Found and fixed here:

1. Float / Double Float Pixel Data (7FE0,0008/0009) were written byte for byte, unscanned,
   with ``redactions = []`` ("scanned and clean"): now refused (failed, UNSUPPORTED).
2. A name at the top of a 12-bit window with one hot pixel at 65535: the finder's min..max
   view flattened the name into 1-2 grey levels; a viewer's window shows it white. The scan
   adds a view clipped to the values between the extremes when they are outliers.
3. Text in a colour of its background's luminance (red on grey) in RGB or PALETTE COLOR: the
   finder saw luminance only. It now also sees R, G and B when the image is not grey.
4. Text taller than ~8 % of the long side (120 px on a 1024 px film): the finder's stroke
   filter has an upper size limit. vindr anonymize also shows a view 2x coarser than its own.

Held (tests below keep them so): Icon Image Sequence thumbnails and Overlay Data planes that
draw the name (removed, dcmdump), waveform channel labels and annotations, the manifest,
journal and audit report of a redacted name (no text, no reading).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pyarrow.parquet as pq
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from test_pixeltext_precision import FONT, needs_font, needs_ocr
from vindr_cli.deid import pixeltext as pt
from vindr_cli.deid import redact
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile

NAME = "NGUYEN VAN AN"
SC = "1.2.840.10008.5.1.4.1.1.7"


def _real(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not available locally")
    return path


def _film(size: int) -> np.ndarray:
    """RG1_UNCR (a real CR chest film) as 0..1 floats, size x size."""
    from PIL import Image

    a = pydicom.dcmread(_real("RG1_UNCR.dcm")).pixel_array.astype(np.float32)
    lo, hi = np.percentile(a, (1, 99))
    a = np.clip((a - lo) / (hi - lo), 0, 1).astype(np.float32)
    return np.asarray(Image.fromarray(a, mode="F").resize((size, size), Image.BILINEAR))


def _ink(shape, text: str, xy, size: int) -> np.ndarray:
    """Where ``text`` is drawn (0..1 coverage), and its box (x0, y0, x1, y1)."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("L", (shape[1], shape[0]), 0)
    d = ImageDraw.Draw(im)
    font = ImageFont.truetype(FONT, size)
    d.text(xy, text, font=font, fill=255)
    return np.asarray(im).astype(np.float32) / 255, d.textbbox(xy, text, font=font)


_API = None


def _reread(img: np.ndarray, bb, scales=(1, 2, 3)) -> list[str]:
    """Everything Tesseract reads around ``bb`` of a uint8 image: both polarities, the given
    scales (< 1 for large text), page modes block/line/word/sparse."""
    global _API
    import tesserocr
    from PIL import Image

    if _API is None:
        _API = tesserocr.PyTessBaseAPI(path="/usr/share/tesseract-ocr/5/tessdata/", lang="eng")
    x0, y0, x1, y1 = bb
    m = max(10, (y1 - y0) // 4)
    crop = Image.fromarray(np.ascontiguousarray(img[max(0, y0 - m):y1 + m, max(0, x0 - m):x1 + m]))
    out = []
    for c in (crop, Image.fromarray(255 - np.asarray(crop))):
        for sc in scales:
            cc = c.resize((max(1, round(c.width * sc)), max(1, round(c.height * sc))), Image.LANCZOS)
            for psm in (6, 7, 8, 11):
                _API.SetPageSegMode(psm)
                _API.SetImage(cc)
                out.append(_API.GetUTF8Text())
    return out


def _leaks(texts, secret: str) -> bool:
    """A 4-character run of the secret (letters and digits) read back anywhere."""
    s = re.sub(r"\W", "", secret).upper()
    runs = [s[i:i + 4] for i in range(len(s) - 3)] or [s]
    return any(r in re.sub(r"\W", "", t).upper() for t in texts for r in runs)


def _dataset(arr: np.ndarray, *, sop_class: str = "1.2.840.10008.5.1.4.1.1.1", photometric="MONOCHROME2",
             bits: int = 12) -> Dataset:
    """A CR (or SC) data set around ``arr`` with the patient named in the header."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "NGUYEN^VAN AN", "0012345678", "19850312"
    ds.Modality = "CR" if sop_class.endswith(".1.1") else "OT"
    ds.StudyDate = "20240115"
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.PhotometricInterpretation = photometric
    if arr.ndim == 3:
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    else:
        ds.SamplesPerPixel = 1
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _save(ds: Dataset, tmp_path: Path, name="a.dcm") -> Path:
    src = tmp_path / "export"
    src.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(src / name, enforce_file_format=True)
    return src


def _anonymize(src: Path, tmp_path: Path, key_file: Path, **kw) -> tuple[Path, list[dict]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "anon"
    anonymize(src, out, key_path=key_file, profile=load_profile("basic"), workers=1, **kw)
    return out, pq.read_table(out / "manifest.parquet").to_pylist()


def _over(boxes, bb) -> bool:
    """Does any non-marker box touch bb?"""
    return any(b.kind != "marker" and b.x0 < bb[2] and bb[0] < b.x1 and b.y0 < bb[3] and bb[1] < b.y1 for b in boxes)


def _output(out: Path, rows: list[dict]):
    row = next(r for r in rows if r["status"] == "ok")
    return row, pydicom.dcmread(out / row["output"])


# ------------------------------------------------------------------ 1. pixel data beyond PixelData


@needs_font
@pytest.mark.parametrize("kw", ["FloatPixelData", "DoubleFloatPixelData"])
def test_float_pixel_data_is_never_written_unscanned(tmp_path, key_file, kw):
    """Leaked: a file whose pixels are Float (or Double Float) Pixel Data was copied byte for
    byte with ``redactions = []``, the name drawn in it intact. Now it fails, unwritten."""
    film = _film(256)
    ink, _ = _ink(film.shape, NAME, (10, 10), 20)
    arr = np.maximum(film * 0.8, ink)
    ds = _dataset(np.zeros((256, 256), np.uint16))
    del ds.PixelData
    for k in ("BitsStored", "HighBit", "PixelRepresentation"):
        delattr(ds, k)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.30"            # Parametric Map (float pixels)
    ds.BitsAllocated = 32 if kw == "FloatPixelData" else 64
    setattr(ds, kw, arr.astype(np.float32 if ds.BitsAllocated == 32 else np.float64).tobytes())
    out, rows = _anonymize(_save(ds, tmp_path), tmp_path, key_file)
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", redact.UNSUPPORTED)]
    assert not [p for p in out.rglob("*.dcm")]
    # --burned-in off writes pixels untouched, as documented (no scan, no claim)
    out2, rows2 = _anonymize(_save(ds, tmp_path / "b"), tmp_path / "b", key_file, burned_in="off")
    assert rows2[0]["status"] == "ok" and rows2[0]["redactions"] is None


def _ct(size: int) -> np.ndarray:
    """CT_small (no text in it) as 0..1 floats, size x size."""
    from PIL import Image

    a = pydicom.dcmread(_real("CT_small.dcm")).pixel_array.astype(np.float32)
    a = (a - a.min()) / (a.max() - a.min())
    return np.asarray(Image.fromarray(a, mode="F").resize((size, size), Image.BILINEAR))


@needs_font
def test_a_name_in_the_bits_above_bits_stored_is_cleared_without_an_overlay_group(tmp_path, key_file):
    """Leaked: 12 bits stored in 16, the name drawn in bit 15 and no 60xx group declaring it:
    the decoder masks those bits (the finder saw a text-free CT), and the file was copied byte
    for byte, the name there for any reader of the raw words. Now cleared and counted."""
    ct = _ct(256)
    ink, _ = _ink(ct.shape, NAME, (10, 10), 20)
    stored = np.round(ct * 4000).astype(np.uint16) | ((ink > 0.5).astype(np.uint16) << 15)
    out, rows = _anonymize(_save(_dataset(stored), tmp_path), tmp_path, key_file)
    row, res = _output(out, rows)
    raw = np.frombuffer(res.PixelData, "<u2")
    assert int((raw >> 12).max()) == 0
    assert row["overlay_pixels_zeroed"] == int((ink > 0.5).sum()) and row["pixels_modified"]
    assert np.array_equal(raw.reshape(stored.shape), stored & 0x0FFF)          # nothing else changed


@needs_font
@pytest.mark.parametrize("where", ["COM and APP1", "after the end", "a second image after the end",
                                   "offset table", "JPEG 2000 COM"])
def test_a_name_inside_a_compressed_frame_but_outside_its_pixels_is_not_copied(tmp_path, key_file, where):
    """Leaked: a JPEG baseline (or JPEG 2000) text-free CT whose Pixel Data holds the name where
    no decoder shows it: a COM and an APP1 segment, bytes after the end-of-image marker, a
    second JPEG after it (burned-in name: the decoder stops at the first), the Basic Offset
    Table, a JPEG 2000 COM marker segment. The scan found nothing, so the Pixel Data was copied
    byte for byte. Now those frames are written without it (the same decoded values)."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

    grey = np.round(_ct(256) * 200).astype(np.uint8)

    def jpeg(a, **kw):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=90, **kw)
        return buf.getvalue()

    ds = _dataset(grey, bits=8)
    if where == "JPEG 2000 COM":
        ds.compress(JPEG2000Lossless, grey, generate_instance_uid=False)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        siz_end = 4 + int.from_bytes(frame[4:6], "big") + 2 - 2
        text = b"\x00\x01NGUYEN VAN AN 0012345678"
        frame = frame[:siz_end] + b"\xff\x64" + (len(text) + 2).to_bytes(2, "big") + text + frame[siz_end:]
        ds.PixelData = encapsulate([frame])
    else:
        data = jpeg(grey)
        bot = False
        if where == "COM and APP1":
            data = jpeg(grey, comment=b"NGUYEN VAN AN 0012345678")
            app1 = b"Exif\0\0" + b"NGUYEN^VAN AN" + b"\0" * 8
            data = data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:]
        elif where == "after the end":
            data += b"NGUYEN VAN AN 0012345678"
        elif where == "a second image after the end":
            named = grey.copy()
            ink, _ = _ink(grey.shape, NAME, (10, 10), 20)
            named[ink > 0.5] = 255
            data += jpeg(named, comment=b"NGUYEN VAN AN")
        ds.PixelData = encapsulate([data], has_bot=bot)
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
        if where == "offset table":                       # the (empty) table's item made to hold text
            pd = bytes(ds.PixelData)
            ds.PixelData = pd[:4] + (8).to_bytes(4, "little") + b"NGUYEN  " + pd[8:]
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    before = ds.pixel_array.copy()
    out, rows = _anonymize(_save(ds, tmp_path), tmp_path, key_file)
    row, res = _output(out, rows)
    raw = (out / row["output"]).read_bytes()
    assert b"NGUYEN" not in raw.upper() and b"0012345678" not in raw
    assert raw.count(b"\xff\xd8\xff") <= 1                         # one image, not two
    assert row["pixels_modified"] and np.array_equal(res.pixel_array, before)   # the same pixels
    assert res.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID    # and syntax


def test_frames_of_common_encoders_are_still_copied_byte_for_byte(tmp_path, key_file):
    """The other side: pydicom's JPEG2000.dcm (a Kakadu banner in its COM, no text) and a JPEG
    with JFIF and no comment keep the byte-for-byte copy (and their hash)."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = pydicom.dcmread(_real("JPEG2000.dcm"))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"          # as a CR: scanned, not quarantined
    src = _save(ds, tmp_path, "j2k.dcm")
    grey = np.round(_ct(256) * 200).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=90)
    jp = _dataset(grey, bits=8)
    jp.PixelData = encapsulate([buf.getvalue()])
    jp["PixelData"].VR = "OB"
    jp["PixelData"].is_undefined_length = True
    jp.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    _save(jp, tmp_path, "jpeg.dcm")
    out, rows = _anonymize(src, tmp_path, key_file)
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "ok" and not row["pixels_modified"], row["reason"]
        assert row["input_pixel_sha256"] == row["pixel_sha256"]


def test_icon_and_overlay_planes_drawing_the_name_are_removed(tmp_path, key_file):
    """Held: an Icon Image Sequence thumbnail and an Overlay Data plane (60xx,3000, one bit per
    pixel) each draw the name; neither reaches the output (dcmdump, independent of pydicom)."""
    if shutil.which("dcmdump") is None:
        pytest.skip("dcmdump (dcmtk) is not installed")
    film = (_film(128) * 4000).astype(np.uint16)
    ds = _dataset(film)
    icon = Dataset()
    icon.Rows, icon.Columns, icon.SamplesPerPixel, icon.PhotometricInterpretation = 64, 64, 1, "MONOCHROME2"
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.PixelData = (np.arange(64 * 64) % 251).astype(np.uint8).tobytes()
    ds.IconImageSequence = Sequence([icon])
    bits = np.zeros((128, 128), np.uint8)
    bits[10:20, 10:100] = 1
    ds.add_new(0x60000010, "US", 128)
    ds.add_new(0x60000011, "US", 128)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60003000, "OW", np.packbits(bits.ravel(), bitorder="little").tobytes())
    ds.add_new(0x60000022, "LO", NAME)                       # Overlay Description
    out, rows = _anonymize(_save(ds, tmp_path), tmp_path, key_file)
    row, _ = _output(out, rows)
    dump = subprocess.run(["dcmdump", "+P", "0088,0200", "+P", "6000,3000", "+P", "6000,0022",
                           str(out / row["output"])], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and dump.stdout.strip() == ""
    full = subprocess.run(["dcmdump", str(out / row["output"])], capture_output=True, text=True, timeout=60).stdout
    assert "(6000," not in full and "NGUYEN" not in full.upper()


def test_waveform_channel_labels_and_annotations_carry_no_name(tmp_path, key_file):
    """Held: a real 12-lead ECG (pydicom's waveform_ecg.dcm) with the name as a channel label
    and in a waveform annotation's text: the output (dcmdump) holds neither."""
    if shutil.which("dcmdump") is None:
        pytest.skip("dcmdump (dcmtk) is not installed")
    ds = pydicom.dcmread(_real("waveform_ecg.dcm"))
    ann = Dataset()
    ann.UnformattedTextValue = "NGUYEN VAN AN 0012345678"
    ann.ReferencedWaveformChannels = [1, 1]
    ds.WaveformAnnotationSequence = Sequence([ann])
    ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelLabel = "NGUYEN AN"
    ds.PatientName = "NGUYEN^VAN AN"
    out, rows = _anonymize(_save(ds, tmp_path), tmp_path, key_file)
    row, _ = _output(out, rows)
    dump = subprocess.run(["dcmdump", str(out / row["output"])], capture_output=True, text=True, timeout=60).stdout
    assert "NGUYEN" not in dump.upper() and "0012345678" not in dump


@pytest.mark.parametrize("sop", ["1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.104.2"])
def test_an_encapsulated_pdf_or_cda_is_quarantined_and_even_allowed_never_carries_its_document(
        tmp_path, key_file, sop):
    """Held: an Encapsulated PDF (or CDA) whose document names the patient is quarantined by its
    SOP class; with --allow-burned-in it is written with a dummy in place of the document."""
    ds = _dataset(np.zeros((1, 1), np.uint8), sop_class=sop)
    for kw in ("Rows", "Columns", "PhotometricInterpretation", "SamplesPerPixel", "BitsAllocated",
               "BitsStored", "HighBit", "PixelRepresentation", "PixelData"):
        delattr(ds, kw)
    ds.Modality = "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf" if sop.endswith(".1") else "text/XML"
    ds.EncapsulatedDocument = b"%PDF-1.4\n1 0 obj << /Title (NGUYEN VAN AN 0012345678) >> endobj\n%%EOF\n"
    src = _save(ds, tmp_path)
    _, rows = _anonymize(src, tmp_path / "q", key_file)
    assert rows[0]["status"] == "quarantined" and "SOP Class" in rows[0]["reason"]
    out, rows = _anonymize(src, tmp_path / "a", key_file, allow_burned_in=True)
    row, res = _output(out, rows)
    assert bytes(res.get("EncapsulatedDocument", b"")).strip(b"\0") == b""      # gone, or a Type 1 dummy
    assert b"NGUYEN" not in (out / row["output"]).read_bytes().upper()


# ------------------------------------------------------------------ 2. layouts the finder had not seen


@needs_ocr
@needs_font
@pytest.mark.parametrize("named, outlier", [(True, "pixel"), (False, "pixel"), (False, "two columns")])
def test_a_hot_pixel_does_not_hide_a_name_from_the_finder(tmp_path, key_file, named, outlier):
    """Leaked: a 12-bit film, the name burned in at 4095 (white in the header's window), and
    one hot pixel at 65535 (16 bits stored): the finder's min..max view put the name 1-2 grey
    levels above the anatomy; the output still showed it white in the header's window. (Held
    when the header names the patient so, through the faint hinted pass; leaked when not.) Also
    two bad detector columns of varying high values instead of the pixel."""
    film = _film(768)
    ink, bb = _ink(film.shape, NAME, (40, 40), 28)
    stored = np.round(film * 3800).astype(np.uint16)
    stored[ink > 0.5] = 4095
    if outlier == "pixel":
        stored[500, 500] = 65535
    else:                         # two bad detector columns, varying high values (0.26 % of the pixels)
        stored[:, 600:602] = np.random.default_rng(5).integers(60000, 65536, size=(768, 2))
    ds = _dataset(stored, bits=16)
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    if not named:
        ds.PatientName, ds.PatientID = "LE^THI BINH", "0099887766"

    def shown(values):            # the header's window, as a viewer shows it
        return np.clip(values.astype(np.float64) / 4096 * 255, 0, 255).astype(np.uint8)

    assert _leaks(_reread(shown(stored), bb), NAME)
    assert not _over(pt.find_text(redact.display(stored[..., None], "MONOCHROME2")), bb)   # the attack
    out, rows = _anonymize(_save(ds, tmp_path), tmp_path, key_file)
    row, res = _output(out, rows)
    assert row["pixels_modified"]
    assert not _leaks(_reread(shown(res.pixel_array), bb), NAME)


def _isoluminant(grey: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """RGB: grey anatomy, the ink red with the luminance (BT.601) of the pixel under it."""
    rgb = np.repeat(grey[..., None], 3, axis=-1).astype(np.float64)
    on = ink > 0.5
    lum = rgb[on, 0]
    r = np.minimum(lum + 60, 255)
    b = lum
    g = np.clip((lum - 0.299 * r - 0.114 * b) / 0.587, 0, 255)
    rgb[on] = np.stack([r, g, b], -1)
    return np.rint(rgb).astype(np.uint8)


@needs_ocr
@needs_font
@pytest.mark.parametrize("layout", ["RGB", "PALETTE COLOR", "JPEG YBR_FULL_422"])
def test_red_text_on_grey_of_the_same_luminance_is_redacted(tmp_path, key_file, layout):
    """Leaked: a secondary capture (written with --allow-burned-in, so scanned) with the name in
    red of the luminance of the anatomy under it: invisible in the luminance the finder saw,
    plain to a reader. RGB, PALETTE COLOR with such a palette, and a lossy JPEG baseline in
    YBR_FULL_422 (chroma halved across: the red is blurred, still read; written uncompressed)."""
    film = _film(384)
    grey = np.rint(40 + film * 150).astype(np.uint8)            # room above for the red
    ink, bb = _ink(grey.shape, NAME, (20, 20), 26)
    rgb = _isoluminant(grey, ink)
    assert _leaks(_reread(rgb[..., 0], bb), NAME)                 # plain in the red channel
    lum = redact.display(rgb, "RGB")                             # what the finder saw: no text
    assert np.abs(lum.astype(int) - redact.display(np.repeat(grey[..., None], 3, -1), "RGB").astype(int)).max() <= 3
    assert not _over(pt.find_text(lum), bb)
    if layout == "RGB":
        ds = _dataset(rgb, sop_class=SC, photometric="RGB", bits=8)
    elif layout.startswith("JPEG"):
        import io

        from PIL import Image
        from pydicom.encaps import encapsulate
        from pydicom.uid import JPEGBaseline8Bit

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=95, subsampling=1)     # 4:2:2
        ds = _dataset(rgb, sop_class=SC, photometric="YBR_FULL_422", bits=8)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
        rgb = ds.pixel_array                                           # as decoded (RGB)
        assert _leaks(_reread(rgb[..., 0], bb), NAME)
    else:
        # indices 0..127: grey 2i; 128..255: the isoluminant red of grey 2(i - 128)
        g2 = np.arange(128) * 2
        lut = np.concatenate([np.repeat(g2[:, None], 3, -1),
                              _isoluminant(g2[None, :].astype(np.uint8), np.ones((1, 128)))[0]])
        idx = (grey // 2).astype(np.uint8)
        idx[ink > 0.5] += 128
        ds = _dataset(idx, sop_class=SC, photometric="PALETTE COLOR", bits=8)
        for c, kw in enumerate(("Red", "Green", "Blue")):
            setattr(ds, f"{kw}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{kw}PaletteColorLookupTableData", (lut[:, c].astype(np.uint16) * 257).tobytes())
    out, rows = _anonymize(_save(ds, tmp_path), tmp_path, key_file, allow_burned_in=True)
    row, res = _output(out, rows)
    assert row["pixels_modified"]
    if layout != "PALETTE COLOR":
        after = res.pixel_array
        assert res.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian   # never re-compressed lossy
    else:
        from pydicom.pixels import apply_color_lut
        after = (apply_color_lut(res.pixel_array, res) // 257).astype(np.uint8)
    for c in range(3):
        assert not _leaks(_reread(after[..., c], bb), NAME), c


@needs_ocr
@needs_font
def test_text_taller_than_the_finder_s_strokes_is_redacted(tmp_path, key_file):
    """Leaked: a name 120 px tall on a 1024 px film (12 % of its side, a digitiser's label
    printed large): the finder's stroke filter keeps strokes thinner than a few working
    pixels, so no candidate held it. vindr anonymize now also shows it 2x coarser than its own view."""
    film = _film(1024)
    text = "TRAN THI HOA"
    ink, bb = _ink(film.shape, text, (20, 700), 120)
    stored = np.round(np.maximum(film * 0.85, ink) * 4095).astype(np.uint16)
    ds = _dataset(stored)
    ds.PatientName = "TRAN^THI HOA"
    shown = (stored >> 4).astype(np.uint8)
    assert _leaks(_reread(shown, bb, scales=(0.25, 0.5, 1)), text)
    out, rows = _anonymize(_save(ds, tmp_path), tmp_path, key_file)
    row, res = _output(out, rows)
    assert row["pixels_modified"]
    assert not _leaks(_reread((res.pixel_array >> 4).astype(np.uint8), bb, scales=(0.25, 0.5, 1)), text)


# ------------------------------------------------------------------ 3. side channels


@needs_ocr
@needs_font
@pytest.mark.parametrize("mode", ["redact", "quarantine"])
def test_no_table_journal_message_or_header_quotes_what_was_read(tmp_path, key_file, mode):
    """Held: a hospital and a phone number the header does not hold (so only OCR could know
    them) and the hinted name, burned into a film, through the CLI: no byte of OUTPUT (tables,
    journal, anonymize.json, the DICOM headers), of the linkage table or of what the command
    printed holds any of them or a 6-character run of them (shorter runs, 1234, are in any
    binary table); a quarantine reason is the fixed one."""
    from helpers import run_cli

    film = _film(512)
    secrets = ["CHO RAY", "0976543210", NAME]
    stored = film * 0.85
    for text, xy in zip(secrets, [(20, 20), (20, 460), (250, 20)]):
        ink, _ = _ink(film.shape, text, xy, 22)
        stored = np.maximum(stored, ink)
    ds = _dataset(np.round(stored * 4095).astype(np.uint16))
    src = _save(ds, tmp_path)
    out = tmp_path / "anon"
    p = run_cli("anonymize", src, out, "--key", key_file, "-j", "1", "--burned-in", mode)
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    if mode == "redact":
        assert rows[0]["status"] == "ok" and rows[0]["pixels_modified"]
        assert json.loads(rows[0]["text_kinds"]) and json.loads(rows[0]["redactions"])
    else:
        assert (rows[0]["status"], rows[0]["reason"]) == ("quarantined", redact.TEXT_FOUND)
    blobs = [p.stdout.encode(), p.stderr.encode(), (tmp_path / "anon.linkage.parquet").read_bytes()]
    for f in out.rglob("*"):
        if f.is_file() and f.suffix != ".dcm":
            blobs.append(f.read_bytes())
        elif f.is_file():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                head = pydicom.dcmread(f, stop_before_pixels=True)
            blobs.append(str(head).encode())
    ocr_only = ["CHO RAY", "0976543210"]
    for blob in blobs:
        flat = re.sub(rb"[^A-Z0-9]", b"", blob.upper())
        for s in ocr_only:
            t = re.sub(r"\W", "", s).upper().encode()
            assert not any(t[i:i + 6] in flat for i in range(max(1, len(t) - 5))), s
    # the header's name is in the linkage table (the custodian's PHI), nowhere else
    for blob in blobs[:2] + blobs[3:]:
        assert b"NGUYEN" not in blob.upper()


# ------------------------------------------------------------------ 2b. layouts that held


HELD = [  # (text, xy, size, angle, letter spacing, polarity): on one MONOCHROME1 film
    ("NGUYEN VAN AN 0012345678", (4, 180), 20, 90, 0, "light"),       # along the film's edge, turned
    ("NGUYEN VAN AN", (330, -13), 30, 0, 0, "light"),                  # cut in half by the top border
    ("NGUYEN VAN AN", (600, 912), 28, 0, 0, "dark"),                   # black on a white label box
    ("NGUYEN VAN AN 0012345678", (40, 1000), 8, 0, 0, "light"),       # a console's 8 px font
    ("NGUYEN", (600, 60), 26, 0, 2, "light"),                          # letter-spaced
    ("L NGUYEN VAN AN PA", (560, 800), 26, 0, 0, "light"),             # between marker words
]


@needs_ocr
@needs_font
def test_labels_turned_cut_inverted_tiny_spaced_or_between_markers_come_out_unreadable(tmp_path, key_file):
    """Held (kept so): on a MONOCHROME1 film (RG1_UNCR at 1024) with the name in its header, six
    layouts the bench corpus does not have, all readable as burned in, none after."""
    from PIL import Image, ImageDraw, ImageFont

    film = _film(1024)
    shown = np.round(film * 200).astype(np.uint8)                       # the display (dark = low)
    shown[900:955, 585:1010] = 250                                       # the white label box
    boxes = []
    for text, (x, y), size, angle, spacing, polarity in HELD:
        font = ImageFont.truetype(FONT, size)
        t = (" " * spacing).join(text) if spacing else text
        bb = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), t, font=font)
        layer = Image.new("L", (bb[2] + 8, bb[3] + 8), 0)
        ImageDraw.Draw(layer).text((4, 4), t, font=font, fill=255)
        if angle:
            layer = layer.rotate(angle, expand=True, resample=Image.BICUBIC)
        m = np.asarray(layer).astype(np.float32) / 255
        if y < 0:
            m, y = m[-y:], 0
        m = m[:1024 - y, :1024 - x]
        h, w = m.shape
        fg = 255 if polarity == "light" else 5
        region = shown[y:y + h, x:x + w].astype(np.float32)
        shown[y:y + h, x:x + w] = np.clip(region * (1 - m) + fg * m, 0, 255).astype(np.uint8)
        boxes.append((x, y, x + w, y + h))
    for (text, _, _, angle, _, _), bb in zip(HELD, boxes):
        crop = shown if not angle else np.rot90(shown, -1)
        cb = bb if not angle else (1024 - bb[3], bb[0], 1024 - bb[1], bb[2])
        assert _leaks(_reread(crop, cb), text), text                    # readable as burned in
    stored = (4095 - np.round(shown.astype(np.float32) / 255 * 4095)).astype(np.uint16)   # MONOCHROME1
    ds = _dataset(stored, photometric="MONOCHROME1")
    out, rows = _anonymize(_save(ds, tmp_path), tmp_path, key_file)
    row, res = _output(out, rows)
    after = (255 - np.round(res.pixel_array.astype(np.float32) / 4095 * 255)).astype(np.uint8)
    for (text, _, _, angle, _, _), bb in zip(HELD, boxes):
        crop = after if not angle else np.rot90(after, -1)
        cb = bb if not angle else (1024 - bb[3], bb[0], 1024 - bb[1], bb[2])
        assert not _leaks(_reread(crop, cb), text), text
