"""Precision of the burned-in text finder (issue 10): text-free images with grain everywhere
(a real MR upsampled, as the bench corpus makes them) are not modified, while a label on the
same grain, sharp or blurred, is still redacted; a marker beside a faint label is kept."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pydicom.data import get_testdata_file

from vindr_cli.deid import pixeltext as pt

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
needs_ocr = pytest.mark.skipif(not pt.engine_available(),
                               reason="Tesseract 5 (tesserocr + tesseract-ocr-eng/vie) is not installed")
needs_font = pytest.mark.skipif(not __import__("os").path.isfile(FONT),
                                reason="fonts-dejavu-core is not installed")

HINTS = pt.Hints(names=["NGUYỄN", "VĂN AN"], ids=["0012345678", "XQ21000042"], dates=["19850312", "20211101"],
                 other=["BV Chợ Rẫy"])


def mr_crop(y0: float, x0: float, frac: float, flip: bool, size: int = 2048) -> np.ndarray:
    """A crop of pydicom-data's MR2 (1024 x 1024, 12 bit) resized to size x size (bilinear), as
    bench/burned_in_corpus.py builds its MR images: the interpolated grain is everywhere."""
    path = get_testdata_file("MR2_UNCR.dcm", download=False)
    if path is None:
        pytest.skip("pydicom-data's MR2_UNCR.dcm is not available locally")
    a = pydicom.dcmread(path).pixel_array.astype(np.float32)
    lo, hi = np.percentile(a, (0.5, 99.5))
    a = np.clip((a - lo) / max(hi - lo, 1.0), 0, 1)
    h, w = a.shape
    ch, cw = int(h * frac), int(w * frac)
    y, x = int((h - ch) * y0), int((w - cw) * x0)
    c = a[y:y + ch, x:x + cw]
    if flip:
        c = c[:, ::-1]
    img = Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F").resize((size, size), Image.BILINEAR)
    return np.clip(np.asarray(img) * 255, 0, 255).astype(np.uint8)


def draw(img: np.ndarray, text: str, xy, size: int, fg: int = 255):
    from helpers import draw_text

    return draw_text(img, text, xy, size, FONT, fg)


def covered(boxes, bb) -> float:
    m = np.zeros((bb[3] + 10, bb[2] + 10), bool)
    for b in boxes:
        if b.kind != "marker":
            m[b.y0:b.y1, b.x0:b.x1] = True
    return float(m[bb[1]:bb[3], bb[0]:bb[2]].mean())


def stroke_line(length: int = 120, width: int = 5, angle: float = 30.0) -> np.ndarray:
    """A stretched crop (dark on white) holding one straight soft streak."""
    im = Image.new("L", (length + 40, length + 40), 255)
    d = ImageDraw.Draw(im)
    r = np.radians(angle)
    cx = cy = (length + 40) / 2
    dx, dy = np.cos(r) * length / 2, np.sin(r) * length / 2
    d.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=0, width=width)
    return np.asarray(im.filter(ImageFilter.GaussianBlur(2)))


def text_crop(text: str, size: int = 28, blur: float = 0.0) -> np.ndarray:
    font = ImageFont.truetype(FONT, size)
    bb = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    im = Image.new("L", (bb[2] + 20, bb[3] + 20), 255)
    ImageDraw.Draw(im).text((10, 10), text, font=font, fill=0)
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(im)


@needs_font
def test_coherence_tells_a_streak_from_letters_blurred_or_not():
    for angle in (0, 30, 60, 100, 145):
        assert pt._coherence(stroke_line(angle=angle)) > pt._COHERENT, angle
    for text in ("0012345678", "NGUYEN VAN AN", "12/03/1985", "BV CHO RAY"):
        for blur in (0.0, 1.5):
            assert pt._coherence(text_crop(text, blur=blur)) < pt._COHERENT, (len(text), blur)


@needs_font
def test_line_glyphs_counts_a_row_of_letters_not_a_blob():
    assert pt._line_glyphs(text_crop("0012345678")) >= 8
    assert pt._line_glyphs(text_crop("XQ2100", blur=1.0)) >= pt._LINE_GLYPHS
    blob = np.full((40, 120), 255, np.uint8)
    blob[10:30, 20:100] = 0
    assert pt._line_glyphs(blob) < pt._LINE_GLYPHS
    assert pt._line_glyphs(np.full((20, 20), 255, np.uint8)) == 0


@needs_ocr
@pytest.mark.parametrize("view", [(0.1, 0.9, 0.85, False), (0.5, 0.5, 0.9, True), (0.9, 0.2, 0.8, False)])
def test_text_free_upsampled_mr_crop_keeps_its_central_field(view):
    # before the grain test every such crop got small boxes all over (grain read as unreadable
    # text); now nothing is found in the central field, with the header's hints (the faint
    # passes) too. The outer eighth of each side, where labels are printed, keeps the strict
    # rule (only a single oriented streak is grain there): a short soft candidate there is
    # redacted, since initials or a short grey ID look the same (tests/test_redteam3.py)
    img = mr_crop(*view)
    h, w = img.shape
    boxes = [b for b in pt.find_text(img, hints=HINTS) if b.kind != "marker"]
    inside = [b for b in boxes if b.x0 >= w // 8 and b.x1 <= w - w // 8 and b.y0 >= h // 8 and b.y1 <= h - h // 8]
    assert inside == []
    assert len(boxes) <= 3


@needs_ocr
@needs_font
@pytest.mark.parametrize("blur", [0.0, 1.5])
def test_label_on_the_same_grain_is_still_redacted(blur):
    # privacy first: the grain test is for unreadable, short, soft, glyph-less candidates of a
    # textured image; a label line on that same grain (blurred like a digitised film's, which
    # OCR cannot read) is still redacted, with and without hints
    img = mr_crop(0.5, 0.5, 0.9, True)
    bbs = []
    for t, xy in (("ID: 0012345678", (40, 40)), ("12/03/1985", (40, 90)), ("AN", (1900, 1900))):
        img, bb = draw(img, t, xy, 28)
        bbs.append(bb)
    if blur:
        img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(blur)))
    for hints in (None, HINTS):
        boxes = pt.find_text(img, hints=hints)
        for bb in bbs[:2]:
            assert covered(boxes, bb) >= 0.9, (blur, hints is None, bb)


def radiograph(name: str, size: int = 2048) -> np.ndarray:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not available locally")
    arr = pydicom.dcmread(path).pixel_array.astype(np.float64)
    lo, hi = np.percentile(arr, [1, 99])
    arr = np.clip((arr - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.asarray(Image.fromarray((arr * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))


@needs_ocr
@needs_font
def test_marker_beside_a_faint_label_is_kept():
    # a faint label (16 px, ~25 grey levels over a bright film corner: found with the header's
    # hints only) grows and is widened along its line; a laterality marker printed on that line
    # a little way off is not label text: it stays a marker and keeps its pixels, the label is
    # still redacted
    img = radiograph("CT_small.dcm").astype(np.int16)
    img[1400:1700, 1300:] = 215 + img[1400:1700, 1300:] // 16
    img = img.astype(np.uint8)
    font = ImageFont.truetype(FONT, 16)
    name = "NGUYỄN VĂN AN"
    w = ImageDraw.Draw(Image.new("L", (1, 1))).textlength(name, font=font)
    img, bb = draw(img, name, (2016 - int(w), 1500), 16, fg=250)
    img, mbb = draw(img, "R", (2016 - int(w) - 110, 1490), 32, fg=0)
    hints = pt.Hints(names=["NGUYỄN", "VĂN AN"], ids=["0012345678"], dates=["19850312"])
    boxes = pt.find_text(img, hints=hints)
    assert covered(boxes, bb) >= 0.9
    assert covered(boxes, mbb) == 0.0
    assert any(b.kind == "marker" and b.x0 <= mbb[0] and b.x1 >= mbb[2] for b in boxes)


def test_growth_keeps_to_the_label_text_size_and_line_pieces_do_not_seed():
    # an anchored faint line 24 px tall; what joins it must be text of that size: a chain of
    # stacked regions may not drift to ever taller (anatomy) bands, a region joined along the
    # line seeds nothing, and two anchored lines of one column fill the gap between them
    seed = [(1800, 1500, 1900, 1524), "name", True, True, "", True]
    other = [(1790, 1600, 1990, 1624), "id", True, True, "", True]            # anchored, 76 px below
    pending = [(1600, 1490, 1700, 1534, True),    # on the line, 44 px: same size (< 2x)
               (1400, 1480, 1560, 1540, True),    # on the line of that piece only: not seeded by it
               (1810, 1530, 1910, 1570, True),    # stacked below the seed, 40 px: joins
               (1805, 1575, 1915, 1650, False),   # line-level with the gap, not text-like
               (1820, 1380, 1900, 1480, True)]    # stacked above, 100 px: > 2x the label's lines
    found = [list(seed), list(other)]
    pt._grow_labels(found, pending)
    boxes = [f[0] for f in found]
    assert (1600, 1490, 1700, 1534) in boxes and (1810, 1530, 1910, 1570) in boxes
    assert (1400, 1480, 1560, 1540) not in boxes and (1820, 1380, 1900, 1480) not in boxes
    assert any(f[5] == "gap" and f[0][1] <= 1524 and f[0][3] >= 1600 for f in found)   # the block fill
    pt._widen_faint(found, 2048)
    fill = next(f for f in found if f[5] == "gap" and f[0][1] == 1524)
    assert fill[0][0] >= 1790 - 4 * 24 - 8 * 24      # widened by the lines' height, not the gap's (76)


# ----------------------------------------------------------------- outer band: the ring rule

def _outer_cands(img):
    work, s = pt._work(img)
    maps = pt._maps(work)
    cands = pt._join_lines(pt._candidates(maps, pt._STRONG, floor=5))
    hw, ww = work.shape
    outer = [c for c in cands if not (c[0] >= ww // 8 and c[2] <= ww - ww // 8 and c[1] >= hw // 8 and c[3] <= hw - hw // 8)]
    return maps, cands, outer, s


# grey, blurred, small, turned or vertical identifying text at the sides and corners of a
# textured image (the red team's families, tests/test_redteam3.py): each stands above the grain
# around it, so the outer band keeps the strict rule for it (only one oriented streak is grain)
RING_TEXT = [("AN", 14, 1.0, 0, 200, (1700, 1900)), ("BN 42", 20, 1.8, 90, 255, (1800, 30)),
             ("BN 42", 24, 1.8, 90, 180, (1800, 30)), ("NVA", 20, 0.8, 0, 220, (1800, 30)),
             ("12.03.85", 20, 1.2, 20, 180, (1800, 30)), ("1985", 10, 0.0, 0, 180, (20, 20)),
             ("0042", 16, 1.8, 20, 220, (1900, 900)), ("VAN AN", 24, 1.8, 0, 180, (1750, 1960))]


@needs_font
@pytest.mark.parametrize("case", RING_TEXT, ids=[f"{c[0]}-{c[1]}px-blur{c[2]}-turn{c[3]}-grey{c[4]}" for c in RING_TEXT])
def test_text_in_the_outer_band_stands_above_the_grain_around_it(case):
    from test_redteam3 import _place

    text, size, blur, angle, fg, xy = case
    img, bb = _place(mr_crop(0.5, 0.5, 0.9, True), text, xy, size, fg=fg, blur=blur, angle=angle)
    maps, cands, outer, s = _outer_cands(img)
    on_text = [c for c in outer if c[0] * s < bb[2] and c[2] * s > bb[0] and c[1] * s < bb[3] and c[3] * s > bb[1]]
    assert on_text, "the drawn text must be a candidate in the outer band"
    for c in on_text:
        assert pt._ring_ratio(maps, cands, c[:4], c[4]) > pt._RING_LIKE, c


def test_ring_leaves_the_other_candidates_out():
    # a column of strong glyph-like blobs (a vertical label) on a quiet field: each one's ring
    # holds its neighbours, which are candidates themselves, and the other polarity's echo in
    # the gaps between them: neither may count as texture
    maps_img = np.full((1024, 1024), 20, np.uint8)
    for k in range(6):
        maps_img[100 + 14 * k:108 + 14 * k, 40:44] = 200
        maps_img[100 + 14 * k:102 + 14 * k, 40:50] = 200
    work, _ = pt._work(maps_img)
    maps = pt._maps(work)
    cands = pt._join_lines(pt._candidates(maps, pt._STRONG, floor=5))
    assert len(cands) >= 4
    for c in cands:
        assert pt._ring_ratio(maps, cands, c[:4], c[4]) > pt._RING_LIKE
        alone = [c]                       # the same candidate, its neighbours counted as texture
        assert pt._ring_ratio(maps, alone, c[:4], c[4]) < pt._ring_ratio(maps, cands, c[:4], c[4])


def _boxes_with_and_without(monkeypatch, img, rule: str, off) -> tuple[set, set]:
    """The finder's non-marker boxes on ``img`` as it is, and with one rule switched off
    (``pt.<rule>`` replaced by ``off`` for the one call)."""
    new = {(b.x0, b.y0, b.x1, b.y1) for b in pt.find_text(img) if b.kind != "marker"}
    with monkeypatch.context() as m:
        m.setattr(pt, rule, off)
        old = {(b.x0, b.y0, b.x1, b.y1) for b in pt.find_text(img) if b.kind != "marker"}
    return new, old


@needs_ocr
def test_outer_band_grain_like_its_ring_is_dropped(monkeypatch):
    # a text-free MR2 crop (as the bench corpus makes them) with a grain box in the outer band
    # before the ring rule: the rule removes it, and every box it removes lies in the outer band
    img = mr_crop(0.087, 0.333, 0.937, False)
    h, w = img.shape
    new, old = _boxes_with_and_without(monkeypatch, img, "_ring_ratio", lambda *a, **k: float("inf"))
    assert new < old
    for x0, y0, x1, y1 in old - new:
        assert not (x0 >= w // 8 and x1 <= w - w // 8 and y0 >= h // 8 and y1 <= h - h // 8)


# ------------------------------------------------- one speck of grain, a column of straight bars

@needs_font
@pytest.mark.parametrize("blur", [0.0, 0.8, 1.2, 1.8])
def test_two_small_glyphs_are_no_speck_even_blurred_into_one_blob(blur):
    # the speck rule drops one glyph-sized dot of grain (strokes <= 8 px tall); the red team's
    # shortest strings at 10-12 px, sharp or blurred until their letters merge, are wider than
    # tall: never a speck
    for text in ("AN", "42", "03", "NV", "A42", "1985", "XQ21", "BN 42", "NVA"):
        for size in (10, 12):
            crop = text_crop(text, size, blur)
            crop = pt._stretch(crop, (0, 0, crop.shape[1], crop.shape[0]), False)    # as the finder reads it
            ys, xs = np.nonzero(crop < 128)
            assert not pt._speck(crop, (int(xs.max() - xs.min() + 1), min(8, int(ys.max() - ys.min() + 1)))), (text, size)


def test_a_dot_is_a_speck_and_a_hole_is_not():
    yy, xx = np.mgrid[0:14, 0:24]
    dot = np.clip(255 - 255 * np.exp(-((yy - 6) ** 2 / 8 + (xx - 12) ** 2 / 5)), 0, 255).astype(np.uint8)
    assert pt._speck(dot, (16, 6))
    assert not pt._speck(dot, (16, 12))          # strokes taller than _TINY: the whole grain test decides
    assert not pt._speck(255 - dot, (16, 6))     # ink all round a hole spans the crop: a rim, not a speck


@needs_ocr
@pytest.mark.parametrize("view", [(0.205, 0.941, 0.842, False), (0.488, 0.73, 0.768, True)])
def test_text_free_mr_crop_speck_is_dropped(monkeypatch, view):
    # text-free MR2 crops (as the bench corpus makes them) whose only box was one bright speck
    # of grain; every box the rule removes is small (a dot's padded box)
    new, old = _boxes_with_and_without(monkeypatch, mr_crop(*view), "_speck", lambda *a, **k: False)
    assert new < old
    for x0, y0, x1, y1 in old - new:
        assert x1 - x0 <= 48 and y1 - y0 <= 32


def _edge_film():
    """A smooth film with a bright straight line along its right edge, as a film digitiser's
    edge: the finder sees it in stacked pieces."""
    yy, xx = np.mgrid[0:2048, 0:2048]
    img = (60 + 40 * yy / 2048 + 20 * xx / 2048).astype(np.float64)
    img[:, 2030:2034] = 200
    return np.clip(img, 0, 255).astype(np.uint8)


def test_a_column_of_straight_bars_is_no_vertical_label():
    img = _edge_film()
    top, below = (1015, 900, 1017, 942, True), (1015, 946, 1017, 954, True)   # working px (s = 2)
    assert pt._bar_column(img, top, [below], 2) and pt._bar_column(img, below, [top], 2)
    assert not pt._bar_column(img, (1012, 900, 1020, 904, True), [below], 2)  # wider than tall: not one glyph
    img, _ = draw(img, "B", (2022, 1910), 24)           # a letter in the column: a label, stacked
    assert not pt._bar_column(img, top, [below, (1013, 955, 1020, 967, True)], 2)


@needs_ocr
@needs_font
def test_a_column_of_straight_glyphs_is_still_redacted():
    # a vertical label of letters and digits that are single strokes (1, I, l) printed upright
    # one under the other: each glyph shows its ends in its padded crop (coherence <= 0.90), so
    # the column stays "stacked" and is redacted, with and without hints
    img = np.full((2048, 2048), 30, np.uint8)
    bbs = []
    for k, ch in enumerate("1Il1I1"):
        img, bb = draw(img, ch, (1960, 600 + 40 * k), 32)
        bbs.append(bb)
    for hints in (None, HINTS):
        boxes = pt.find_text(img, hints=hints)
        for bb in bbs:
            assert covered(boxes, bb) >= 0.9, (hints is None, bb)
