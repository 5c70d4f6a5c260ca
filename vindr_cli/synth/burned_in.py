"""Burned-in text on sample radiographs: what a console or film digitiser prints into the pixels.

Two layouts (image extras, see synth/plan.py):

* ``burned_in_corners``: the patient's name, ID and birth date at the top-left corner, the
  study date and the hospital's code at the top-right, white on the dark film;
* ``burned_in_label``: a light label box at the bottom-left with name, ID, birth date,
  study date and accession in dark ink.

Both add markers a redactor must keep: the side letter (R / L, twice the size), the view
(PA / AP, twice the size) and the position (ERECT / SUPINE; not the Vietnamese ĐỨNG / NẰM,
whose folded forms DUNG / NAM are also given names).

Text is drawn with the 5x7 bitmap font of synth/font.py. It has no Vietnamese diacritics, so
the corner layout prints the name ASCII-folded and upper-cased, as many consoles do
(``HOANG THI MAI``); the label layout prints it with its diacritics (``HOÀNG THỊ MAI``) through
`render_vi`, which adds integer marks to the same glyphs: a tone mark (acute, grave, hook,
tilde) and a vowel mark (circumflex, breve) in two rows above, the dot below in a row under,
the horn as a stroke at the top right, the bar of Đ across the stem. Integer arithmetic only (byte-identical regeneration). Every drawn
string is returned with its kind, box ``[x0, y0, x1, y1)`` in pixel coordinates and font
scale and font (``render_text(text, scale)``, or ``render_vi`` for font "5x7+vi", is its
exact glyph mask); the
generator records identifying ones in planted_phi.json ``burned_in_phi`` and markers in
``burned_in_markers``, apart from the header strings (pixels are not byte-searched).
"""
from __future__ import annotations

import unicodedata

import numpy as np

from vindr_cli.synth.font import GLYPH_H, GLYPH_W, render_text
from vindr_cli.synth.modules import ImageContext
from vindr_cli.synth.phi import ascii_fold

LAYOUTS = ("burned_in_corners", "burned_in_label")
LINE = GLYPH_H + 3  # line pitch at scale 1
VI_H = GLYPH_H + 3  # two mark rows above the glyph, one below

_TONES = {"\u0301": "00110", "\u0300": "01100", "\u0309": "01110", "\u0303": "01011"}
_VOWEL_MARKS = {"\u0302": "01010", "\u0306": "10001"}
_DOT_BELOW, _HORN = "\u0323", "\u031b"


def _row(bits: str) -> np.ndarray:
    return np.array([c == "1" for c in bits], dtype=bool)


def render_vi(text: str, scale: int = 1) -> np.ndarray:
    """Boolean bitmap of upper-cased `text` with Vietnamese diacritics, VI_H rows high."""
    clusters: list[list[str]] = []
    for ch in unicodedata.normalize("NFD", text.upper()):
        if unicodedata.combining(ch) and clusters:
            clusters[-1].append(ch)
        else:
            clusters.append([ch])
    width = max(len(clusters) * (GLYPH_W + 1) - 1, 1)
    bitmap = np.zeros((VI_H, width), dtype=bool)
    for i, (base, *marks) in enumerate(clusters):
        x = i * (GLYPH_W + 1)
        cell = bitmap[:, x:x + GLYPH_W]
        cell[2:2 + GLYPH_H] = render_text(base)[:, :GLYPH_W]
        if base == "Đ":
            cell[2 + 3, 0:3] = True
        vowel = [m for m in marks if m in _VOWEL_MARKS]
        tone = [m for m in marks if m in _TONES]
        if vowel:
            cell[1] |= _row(_VOWEL_MARKS[vowel[0]])
        if tone:
            cell[0 if vowel else 1] |= _row(_TONES[tone[0]])
        if _DOT_BELOW in marks:
            cell[VI_H - 1] |= _row("00100")
        if _HORN in marks:
            cell[1:3, GLYPH_W - 1] = True
    return np.kron(bitmap, np.ones((scale, scale), dtype=bool))


def _width(text: str, scale: int) -> int:
    return (len(ascii_fold(text)) * (GLYPH_W + 1) - 1) * scale


def _ink(max_value: int, photometric: str, bright: bool) -> int:
    """Stored value that displays white (bright) or near black, for the photometric."""
    white = max_value if photometric == "MONOCHROME2" else 0
    black = max_value // 16 if photometric == "MONOCHROME2" else max_value - max_value // 16
    return white if bright else black


def _draw(pixels: np.ndarray, text: str, top: int, left: int, scale: int, value: int,
          font: str = "5x7") -> list[int]:
    bitmap = render_vi(text, scale) if font == "5x7+vi" else render_text(text, scale)
    h, w = bitmap.shape
    region = pixels[top:top + h, left:left + w]
    region[bitmap[:region.shape[0], :region.shape[1]]] = value
    return [left, top, left + w, top + h]


def _lines(ctx: ImageContext) -> list[tuple[str, str]]:
    p = ctx.patient
    d = ctx.study.date
    return [
        (ascii_fold(p.person.display).upper(), "name"),
        (f"ID {p.patient_id}", "id"),
        (f"NS {p.birth_date:%d/%m/%Y}", "date"),
        (f"{d[6:]}/{d[4:6]}/{d[:4]}", "date"),
        (p.institution.code, "other"),
        (f"ACC {ctx.accession}", "id"),
    ]


def burn(pixels: np.ndarray, ctx: ImageContext, layout: str) -> list[dict]:
    """Draw the layout's text into `pixels` (stored values, in place); return what was drawn."""
    spec = ctx.image
    max_value = (1 << spec.bits_stored) - 1
    rows, cols = pixels.shape
    white = _ink(max_value, spec.photometric, True)
    drawn: list[dict] = []

    def put(text: str, kind: str, top: int, left: int, scale: int, value: int, font: str = "5x7") -> None:
        box = _draw(pixels, text, top, left, scale, value, font)
        drawn.append({"text": text, "kind": kind, "box": box, "scale": scale, "font": font})

    lines = _lines(ctx)
    margin = 4
    if layout == "burned_in_corners":
        for i, (text, kind) in enumerate(lines[:3]):
            put(text, kind, margin + i * LINE, margin, 1, white)
        for i, (text, kind) in enumerate(lines[3:5]):
            put(text, kind, margin + i * LINE, cols - margin - _width(text, 1), 1, white)
    elif layout == "burned_in_label":
        name = (ctx.patient.person.display.upper(), "name")       # with its diacritics
        label = [lines[1], lines[2], lines[3], lines[5]]
        width = max(_width(t, 1) for t, _ in [name, *label]) + 6
        height = VI_H + 2 + len(label) * LINE + 3
        top, left = rows - margin - height, margin
        pixels[top:top + height, left:left + width] = max_value * 7 // 8 if spec.photometric == "MONOCHROME2" \
            else max_value - max_value * 7 // 8
        dark = _ink(max_value, spec.photometric, False)
        put(*name, top + 2, left + 3, 1, dark, "5x7+vi")
        for i, (text, kind) in enumerate(label):
            put(text, kind, top + 2 + VI_H + 2 + i * LINE, left + 3, 1, dark)
    else:
        raise ValueError(f"unknown burned-in layout {layout}")
    side = "R" if spec.view == "PA" else "L"
    put(side, "marker", rows // 3, cols - margin - _width(side, 2), 2, white)
    put(spec.view, "marker", rows - margin - 2 * GLYPH_H, cols - margin - _width(spec.view, 2), 2, white)
    position = "ERECT" if spec.view == "PA" else "SUPINE"
    put(position, "marker", rows - margin - 4 * GLYPH_H - 4, cols - margin - _width(position, 1), 1, white)
    return drawn
