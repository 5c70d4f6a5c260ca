"""Red team of what landed on 2026-11-30 (issues 10, 12, 13).

1. The burned-in finder's grain test and faint-label growth: identifying text (names, IDs,
   dates; small, blurred, faint, rotated, vertical, sparse, digits only, beside a marker)
   drawn on a textured image (pydicom-data's MR2, upsampled as the bench corpus does: grain
   everywhere, so the grain test is on) must come out unreadable: the redacted image is
   re-read by Tesseract (both polarities, 3 scales, 4 page modes) and no 4-character run of
   the text may be read back where it was readable before.
2. Review boxes applied by vindr anonymize: the ``reviewer`` typed into vindr review is free
   text (a patient's name is a "plain short name"), so the anonymize manifest carries none.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from test_pixeltext_precision import FONT, HINTS, mr_crop, needs_font, needs_ocr
from vindr_cli.deid import pixeltext as pt
from vindr_cli.deid import reviewboxes

# ------------------------------------------------------------------ 1. grain test, growth, markers


def _place(img, text, xy, size, fg=255, blur=0.0, angle=0, spacing=0):
    """``text`` alpha-blended onto ``img`` at xy (rotated by ``angle`` degrees, blurred,
    letters ``spacing`` blanks apart); (new image, box of the drawn layer)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font = ImageFont.truetype(FONT, size)
    if spacing:
        text = (" " * spacing).join(text)
    bb = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    layer = Image.new("L", (bb[2] + 8, bb[3] + 8), 0)
    ImageDraw.Draw(layer).text((4, 4), text, font=font, fill=255)
    if angle:
        layer = layer.rotate(angle, expand=True, resample=Image.BICUBIC)
    if blur:
        layer = layer.filter(ImageFilter.GaussianBlur(blur))
    x, y = xy
    m = np.asarray(layer).astype(np.float32)[:img.shape[0] - y, :img.shape[1] - x] / 255   # kept inside the image
    h, w = m.shape
    out = img.astype(np.float32)
    out[y:y + h, x:x + w] = out[y:y + h, x:x + w] * (1 - m) + fg * m
    return np.clip(out, 0, 255).astype(np.uint8), (x, y, x + w, y + h)


_API = None


def _reread(img, bb, angle=0) -> list[str]:
    """Everything Tesseract reads in the region (turned back upright), dark-on-light and
    light-on-dark, at 1x/2x/3x, page modes block/line/word/sparse."""
    global _API
    import tesserocr
    from PIL import Image

    if _API is None:
        _API = tesserocr.PyTessBaseAPI(path="/usr/share/tesseract-ocr/5/tessdata/", lang="eng")
    x0, y0, x1, y1 = bb
    crop = Image.fromarray(img[max(0, y0 - 10):y1 + 10, max(0, x0 - 10):x1 + 10])
    if angle:
        crop = crop.rotate(-angle, expand=True, fillcolor=0)
    out = []
    for c in (crop, Image.fromarray(255 - np.asarray(crop))):
        for sc in (1, 2, 3):
            cc = c.resize((c.width * sc, c.height * sc), Image.BICUBIC)
            for psm in (6, 7, 8, 11):
                _API.SetPageSegMode(psm)
                _API.SetImage(cc)
                out.append(_API.GetUTF8Text())
    return out


def _leaks(texts, secret) -> bool:
    s = re.sub(r"\W", "", secret).upper()
    runs = [s[i:i + 4] for i in range(len(s) - 3)] or [s]
    return any(r in re.sub(r"\W", "", t).upper() for t in texts for r in runs)


def _redacted(img, hints):
    boxes = pt.find_text(img, hints=hints)
    out = img.copy()
    for b in boxes:
        if b.kind != "marker":
            out[b.y0:b.y1, b.x0:b.x1] = 0
    return out, boxes


# (text, size px, blur, angle, letter spacing, grey, where): each readable by Tesseract as drawn
ATTACKS = {
    "vertical name": ("NGUYEN VAN AN", 28, 0.0, 90, 0, 255, (60, 60)),
    "vertical name blurred": ("NGUYEN VAN AN", 28, 1.5, 90, 0, 255, (60, 60)),
    "id turned 30": ("0012345678", 28, 0.0, 30, 0, 255, (60, 60)),
    "id turned 15 blurred": ("0012345678", 28, 1.2, 15, 0, 255, (60, 60)),
    "tiny short id": ("A42", 10, 0.0, 0, 0, 255, (60, 60)),
    "short date blurred": ("1985", 24, 2.0, 0, 0, 255, (60, 60)),
    "small digits": ("0012345678", 12, 0.0, 0, 0, 255, (60, 60)),
    "sparse letters": ("NGUYEN", 26, 0.0, 0, 6, 255, (60, 60)),
    "sparse digits": ("00123", 26, 0.0, 0, 5, 255, (60, 60)),
    "faint name": ("NGUYEN VAN AN", 22, 0.8, 0, 0, 150, (60, 60)),
    "marker then name": ("L NGUYEN VAN AN", 30, 0.0, 0, 0, 255, (60, 60)),
    "name then marker": ("NGUYEN VAN AN R", 30, 0.0, 0, 0, 255, (60, 60)),
    "short id blurred": ("XQ21", 22, 1.8, 0, 0, 255, (60, 60)),
    "grey date low corner": ("12/03", 14, 1.0, 0, 0, 200, (1700, 1900)),
    "grey name low corner": ("NGUYEN VAN AN", 14, 1.0, 0, 0, 200, (1700, 1900)),
}


@pytest.fixture(scope="module")
def grain():
    img = mr_crop(0.5, 0.5, 0.9, True)
    # the precondition of the attack: the grain test is on for this image
    work, _ = pt._work(img)
    cands = pt._join_lines(pt._candidates(pt._maps(work), pt._STRONG, floor=5))
    hw, ww = work.shape
    assert sum(1 for c in cands if c[0] >= ww // 8 and c[2] <= ww - ww // 8
               and c[1] >= hw // 8 and c[3] <= hw - hw // 8) >= pt._TEXTURED
    return img


@needs_ocr
@needs_font
@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_identifying_text_on_grain_is_not_readable_after_redaction(grain, case):
    text, size, blur, angle, spacing, fg, xy = ATTACKS[case]
    img, bb = _place(grain, text, xy, size, fg=fg, blur=blur, angle=angle, spacing=spacing)
    assert _leaks(_reread(img, bb, angle), text), "the attack must be readable before redaction"
    for hints in (None, HINTS):
        out, _ = _redacted(img, hints)
        assert not _leaks(_reread(out, bb, angle), text), (case, hints is None)


@needs_ocr
@needs_font
def test_initials_in_a_corner_of_a_textured_image(grain):
    img, bb = _place(grain, "AN", (1700, 1900), 14, fg=200, blur=1.0)
    assert _leaks(_reread(img, bb), "AN")
    out, _ = _redacted(img, None)
    assert not _leaks(_reread(out, bb), "AN")


@needs_ocr
@needs_font
def test_sharp_id_over_the_anatomy_in_the_middle():
    img, bb = _place(mr_crop(0.5, 0.5, 0.9, True), "0012345678", (900, 1000), 18, fg=255, blur=1.0)
    assert _leaks(_reread(img, bb), "0012345678")
    out, _ = _redacted(img, HINTS)
    assert not _leaks(_reread(out, bb), "0012345678")


TURNED_SHORT = {
    # before the turned glyph-row test (pixeltext._turned_glyphs) dropped as grain, readable after
    "short id vertical, blurred": ("BN 42", 20, 1.8, 90, 255, (0.5, 0.5, 0.9, True), (1800, 30)),
    "date turned 20, grey, blurred": ("12.03.85", 20, 1.2, 20, 180, (0.9, 0.2, 0.8, False), (1800, 30)),
    # found by a 150-case random sweep (bench/README, redteam3): the same gap, vertical and level;
    # these three were dropped as short soft grain until the grain test kept to the central
    # field (in the outer band only a single oriented streak is grain)
    "short id vertical, grey, blurred": ("BN 42", 24, 1.8, 90, 180, (0.1, 0.9, 0.85, False), (1800, 30)),
    "initials level, grey": ("NVA", 20, 0.8, 0, 220, (0.9, 0.2, 0.8, False), (1800, 30)),
}


# short vertical text at a side, not found before red team 3's xfails were fixed (turned candidates)
NEVER_FOUND = {
    "date vertical, dark, right side": ("1985", 20, 0.0, 90, 0, (0.1, 0.9, 0.85, False), (1900, 900)),
    "name vertical, grey, top right": ("VAN AN", 14, 0.8, 90, 180, (0.9, 0.2, 0.8, False), (1800, 30)),
}


@needs_ocr
@needs_font
@pytest.mark.parametrize("case", [*TURNED_SHORT.values(), *NEVER_FOUND.values()], ids=[*TURNED_SHORT, *NEVER_FOUND])
def test_short_turned_text_on_grain_is_not_readable_after_redaction(case):
    text, size, blur, angle, fg, view, xy = case
    img, bb = _place(mr_crop(*view), text, xy, size, fg=fg, blur=blur, angle=angle)
    assert _leaks(_reread(img, bb, angle), text)
    for hints in (None, HINTS):
        out, _ = _redacted(img, hints)
        assert not _leaks(_reread(out, bb, angle), text), hints is None


# ------------------------------------------------------------------ 4. the reason vocabulary


@pytest.mark.parametrize("planted", ["NguyenVanAnError", "Bn0012345678Error", "NguyenVanAnException", "QxnameWarning",
                                     "NguyenVanAnFile"])
def test_a_name_shaped_like_an_exception_is_not_a_known_reason(planted):
    """A hand-edited manifest reason "unexpected error (NguyenVanAnError)" was in the vocabulary
    (the exception variable was a pattern), so a release's datasheet quoted it."""
    from vindr_cli import reasons

    for template in ("unexpected error ({})", "unreadable header ({})"):
        assert reasons.shown("anonymize_manifest", template.format(planted)) == reasons.OTHER
    assert reasons.shown("anonymize_manifest", "unexpected error (ValueError)") == "unexpected error (ValueError)"


# ------------------------------------------------------------------ 2. review boxes: the reviewer


def _row(seq, reviewer, **kw):
    r = {"seq": seq, "image_id": "a" * 32, "queue": "spot-check", "decision": "more-redaction",
         "box": [0, 1, 1, 5, 5], "time": "2026-11-30T01:00:00.000Z", "reviewer": reviewer, "undoes": None}
    r.update(kw)
    return r


@pytest.mark.parametrize("who", ["NGUYEN VAN AN", "0012345678", "ann", "a b<c>", "Nguyễn Văn An"])
def test_the_anonymize_manifest_carries_no_reviewer_text(who):
    """The reviewer typed into vindr review is free text: a patient's name or ID typed there is
    a "plain short name". The anonymize manifest (kept with the anonymized tree, which is
    handed to reviewers and curators) names the decision by seq + time only."""
    entries = reviewboxes.live([_row(3, who)])["a" * 32]
    assert [e["reviewer"] for e in entries] == [None]
    # a manifest written before this change, carrying a name, does not carry it on
    old = {"review_boxes": json.dumps([{"seq": 3, "time": "2026-11-30T01:00:00.000Z", "box": [0, 1, 1, 5, 5],
                                        "reviewer": "NGUYEN VAN AN"}])}
    kept = reviewboxes.recorded(old)
    assert [(e["seq"], e["box"], e["reviewer"]) for e in kept] == [(3, [0, 1, 1, 5, 5], None)]
    assert "NGUYEN" not in json.dumps(reviewboxes.wanted(kept, entries))


# ------------------------------------------------------------------ 3. vindr audit: stray names, --locate


def test_audit_shows_no_planted_name_in_any_report(tmp_path, key_file):
    """Names an intruder plants in an anonymized tree (a stray DICOM copy named after the
    patient, a folder of such names, a file in the state folder, a FIFO, a link, a name with a
    newline) are findings shown as placeholders in --json, --report and the terminal table,
    with the local pool (-j 2); only --locate prints the real paths, to stderr."""
    import os
    import shutil

    import pyarrow.parquet as pq
    from conftest import make_cr
    from helpers import run_cli

    src = tmp_path / "export"
    src.mkdir()
    make_cr(src / "a.dcm", rows=32, cols=24)
    out = tmp_path / "anon"
    run_cli("anonymize", src, out, "--key", key_file, "-j", "1")
    ok = next(r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["status"] == "ok")
    real = out / ok["output"]
    shutil.copy(real, real.parent / "QXNAME SECRET.dcm")
    (out / "QXFOLDER").mkdir()
    (out / "QXFOLDER" / "QXID0012345678.txt").write_text("x")
    (out / ".vindr" / "QXSTATE.json").write_text("{}")
    os.mkfifo(out / "QXFIFO")
    os.symlink("/etc/hostname", out / "QXLINK")
    (out / "QX\nNEWLINE.dcm").write_bytes(real.read_bytes())
    report = tmp_path / "audit.txt"
    jreport = tmp_path / "audit.json"
    p = run_cli("audit", out, "-j", "2", "--json", check=False)
    q = run_cli("audit", out, "-j", "2", "--report", report, "--locate", check=False)
    r = run_cli("audit", out, "-j", "1", "--report", jreport, check=False)
    assert p.returncode == q.returncode == r.returncode == 1, (p.stderr, q.stderr)
    findings = json.loads(p.stdout)["findings"]
    kinds = {f["kind"] for f in findings}
    assert {"stray-file", "link"} <= kinds, kinds
    assert len([f for f in findings if f["where"].startswith("<name")]) >= 3
    for text in (p.stdout, p.stderr, q.stdout, report.read_text(), jreport.read_text(), r.stdout, r.stderr):
        assert "QX" not in text
    assert "QXNAME SECRET" in q.stderr          # --locate: the real path, to this terminal only


# ------------------------------------------------------------------ 5. decode: header completion, PNG


def _deidentified(path, **values):
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.PatientIdentityRemoved = "YES"
    with pydicom.config.disable_value_validation():      # a UI holding a name: never echoed in a warning
        for k, v in values.items():
            setattr(ds, k, v)
        ds.save_as(path, enforce_file_format=True)
    return path


def _trailing(path, group: int, elem: int, vr: bytes, value: bytes):
    """An explicit-VR little-endian element appended after the Pixel Data (out of order)."""
    import struct

    if len(value) % 2:
        value += b" "
    with open(path, "ab") as f:
        f.write(struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value)


def test_decode_table_quotes_no_planted_uid_or_trailing_value(tmp_path):
    """decode copies the SOP Instance UID into images.parquet: a "de-identified" input whose UID
    is a name (in the header, or planted after the Pixel Data where the fast header completion
    reads it) must not carry it into the table; the PNG holds no text chunk."""
    import pyarrow.parquet as pq
    from helpers import run_cli

    src = tmp_path / "in"
    src.mkdir()
    _deidentified(src / "a.dcm", SOPInstanceUID="QXNAME SECRET")
    b = _deidentified(src / "b.dcm")
    _trailing(b, 0x0008, 0x0018, b"UI", b"QXTRAIL SECRET")            # SOP Instance UID again, after the pixels
    c = _deidentified(src / "c.dcm")
    _trailing(c, 0x7FE0, 0x0010, b"OB", b"QXPIX")                      # a second, short Pixel Data
    out = tmp_path / "png"
    p = run_cli("decode", src, out, "-j", "1", check=False)
    assert p.returncode in (0, 1), p.stderr
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert len(rows) == 3
    assert "QX" not in json.dumps(rows, default=str) + p.stdout + p.stderr
    pngs = list(out.rglob("*.png"))
    assert len(pngs) == 2
    for png in pngs:                     # chunk by chunk: image header, pixels, end; no text or metadata
        data, pos, kinds = png.read_bytes(), 8, []
        while pos < len(data):
            n = int.from_bytes(data[pos:pos + 4], "big")
            kinds.append(data[pos + 4:pos + 8])
            pos += 12 + n
        assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}, kinds


# ------------------------------------------------------------------ 1b. the same through vindr anonymize


@needs_ocr
@needs_font
def test_vindr_anonymize_leaves_no_readable_text_on_a_textured_mr(tmp_path, key_file):
    """End to end: pydicom-data's MR2 upsampled to 2048 x 2048 (grain everywhere) with a name
    (vertical), an ID (small) and a short vertical ID (blurred) burned into its 12-bit pixels,
    the header naming the same patient; the output of vindr anonymize (--burned-in redact, the
    default) is windowed as the input was and re-read: nothing identifying comes back. (The
    vertical "BN 42" came back before the turned glyph-row test: dropped as grain.)"""
    import pydicom
    import pyarrow.parquet as pq
    from PIL import Image
    from pydicom.data import get_testdata_file
    from helpers import run_cli

    path = get_testdata_file("MR2_UNCR.dcm", download=False)
    if path is None:
        pytest.skip("pydicom-data's MR2_UNCR.dcm is not available locally")
    ds = pydicom.dcmread(path)
    a = ds.pixel_array.astype(np.float32)
    lo, hi = np.percentile(a, (0.5, 99.5))
    a = np.clip((a - lo) / (hi - lo), 0, 1).astype(np.float32)
    big = np.asarray(Image.fromarray(a, mode="F").resize((2048, 2048), Image.BILINEAR))
    disp = np.clip(big * 255, 0, 255).astype(np.uint8)
    texts = [("NGUYEN VAN AN", (60, 300), 28, 0.0, 90), ("0012345678", (1500, 1950), 22, 0.0, 0),
             ("BN 42", (1900, 40), 20, 1.8, 90)]
    boxes = []
    for text, xy, size, blur, angle in texts:
        disp, bb = _place(disp, text, xy, size, blur=blur, angle=angle)
        boxes.append(bb)
    for (text, _, _, _, angle), bb in zip(texts, boxes):
        assert _leaks(_reread(disp, bb, angle), text), text          # readable as burned in
    stored = np.round(disp.astype(np.float32) / 255 * 4095).astype(np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = stored.tobytes()
    for kw in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if kw in ds:
            delattr(ds, kw)
    ds.WindowCenter, ds.WindowWidth = 2047.5, 4096
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "NGUYEN^VAN AN", "0012345678", "19850312"
    src = tmp_path / "export"
    src.mkdir()
    ds.save_as(src / "mr.dcm", enforce_file_format=True)
    out = tmp_path / "anon"
    run_cli("anonymize", src, out, "--key", key_file, "-j", "1")
    row = next(r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["status"] == "ok")
    assert row["pixels_modified"]
    got = pydicom.dcmread(out / row["output"]).pixel_array.astype(np.float32)
    after = np.clip(got / 4095 * 255, 0, 255).astype(np.uint8)
    for (text, _, _, _, angle), bb in zip(texts, boxes):
        assert not _leaks(_reread(after, bb, angle), text), text


@needs_ocr
@needs_font
@pytest.mark.parametrize("size", [16, 34, 56])
def test_a_faint_line_under_a_faint_label_is_not_readable_whatever_its_size(size):
    """The faint-label growth joins only text of the anchored label's size (within 2x): a faint
    phone number right below a faint hinted name, at 1x, 2x and 3.5x its size, matching no
    hint, must still come out unreadable (grown, or found by another pass)."""
    from test_pixeltext_precision import draw, radiograph

    img = radiograph("CT_small.dcm").astype(np.int16)
    img[1400:1800, 1300:] = 215 + img[1400:1800, 1300:] // 16
    img, bb = draw(img.astype(np.uint8), "NGUYỄN VĂN AN", (1700, 1500), 16, fg=250)
    img, bb2 = draw(img, "0903123456", (1700, bb[3] + 8), size, fg=250)
    assert _leaks(_reread(img, bb2), "0903123456")
    out, _ = _redacted(img, pt.Hints(names=["NGUYỄN", "VĂN AN"], ids=["0012345678"], dates=["19850312"]))
    assert not _leaks(_reread(out, bb2), "0903123456") and not _leaks(_reread(out, bb), "NGUYEN VAN AN")


def test_a_review_table_swapped_for_a_fifo_or_made_huge_is_refused_not_waited_on(tmp_path):
    """locate() refuses a FIFO by lstat, but the table is opened later: one swapped for a FIFO
    in between hung vindr anonymize on open(). read_table opens without blocking and refuses
    anything but a regular file; a huge (sparse) non-Parquet file is refused from its footer."""
    import os
    import threading

    fifo = tmp_path / "review.parquet"
    os.mkfifo(fifo)
    got = []

    def read():
        try:
            reviewboxes.read_table(fifo)
        except Exception as exc:         # noqa: BLE001 -- what was raised is the assertion
            got.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    blocked = t.is_alive()
    if blocked:                          # waiting in open() for a writer: let it go, then fail
        with open(fifo, "wb"):
            pass
        t.join(5)
    assert not blocked
    assert len(got) == 1 and isinstance(got[0], reviewboxes.ReviewBoxError), got
    assert "\n" not in str(got[0]) and str(tmp_path) not in str(got[0])
    huge = tmp_path / "huge.parquet"
    with open(huge, "wb") as f:
        f.truncate(8 << 30)
    with pytest.raises(reviewboxes.ReviewBoxError, match="not a Parquet file"):
        reviewboxes.read_table(huge)


@pytest.mark.parametrize("dup_pixels", [False, True])
def test_anonymize_carries_nothing_planted_after_the_pixel_data(tmp_path, key_file, dup_pixels):
    """A name planted after the Pixel Data (an out-of-order Patient's Name, raw trailing bytes,
    optionally a second Pixel Data) never reaches an output file, the manifest or the terminal
    (issue 13's fast copy paths)."""
    import struct

    import pydicom
    import pyarrow.parquet as pq
    from pydicom.data import get_testdata_file
    from helpers import run_cli

    src = tmp_path / "in"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "emri_small_RLE.dcm"):
        p = get_testdata_file(name, download=False)
        if p is None:
            continue
        ds = pydicom.dcmread(p)
        ds.PatientName = "QXNAME^SECRET"
        out = src / f"t_{name}"
        ds.save_as(out, enforce_file_format=True)
        ts = ds.file_meta.TransferSyntaxUID

        def el(g, e, vr, v):
            v += b" " * (len(v) % 2)
            head = struct.pack("<HHI", g, e, len(v)) if ts.is_implicit_VR else \
                struct.pack("<HH", g, e) + vr + struct.pack("<H", len(v))
            return head + v

        with open(out, "ab") as f:
            f.write(el(0x0010, 0x0010, b"PN", b"QXTRAIL^NAME"))
            if dup_pixels:
                f.write(el(0x7FE0, 0x0010, b"OB", b"QXPIXDUP"))
            f.write(b"QXRAWTAIL" * 3)
    anon = tmp_path / "anon"
    p = run_cli("anonymize", src, anon, "--key", key_file, "-j", "1", check=False)
    assert p.returncode in (0, 1) and "QX" not in p.stdout + p.stderr
    rows = pq.read_table(anon / "manifest.parquet").to_pylist()
    assert len(rows) >= 2 and "QX" not in json.dumps(rows, default=str)
    assert any(r["status"] == "ok" for r in rows) != dup_pixels      # the second Pixel Data: none written
    for f in anon.rglob("*.dcm"):
        assert b"QX" not in f.read_bytes()


@needs_ocr
@needs_font
@pytest.mark.parametrize("text,msize,nsize,gap", [("NGUYEN VAN AN", 40, 20, 10), ("PA NGUYEN", 40, 24, 10),
                                                  ("R 0012345678", 32, 32, 16), ("AP 12/03/1985", 32, 32, 16)])
def test_a_marker_does_not_shelter_the_name_beside_it(text, msize, nsize, gap):
    """The marker-merge rule keeps a laterality marker's pixels: a name, ID or date on the
    marker's line (itself starting with marker words) must not be kept with it."""
    from test_pixeltext_precision import draw, radiograph

    img, mbb = draw(radiograph("CT_small.dcm"), "L", (100, 100), msize)
    img, bb = draw(img, text, (mbb[2] + gap, 100 + msize - nsize), nsize)
    assert _leaks(_reread(img, bb), text)
    for hints in (None, HINTS):
        out, _ = _redacted(img, hints)
        assert not _leaks(_reread(out, bb), text), hints is None
