"""Burned-in text on sample radiographs: what a console or film digitiser prints into the pixels.

Two layouts (image extras, see synth/plan.py):

* ``burned_in_corners``: the patient's name, ID and birth date at the top-left corner, the
  study date and the hospital's code at the top-right, white on the dark film;
* ``burned_in_label``: a light label box at the bottom-left with name, ID, birth date,
  study date and accession in dark ink.

Both add markers a redactor must keep: the side letter (R / L, twice the size), the view
(PA / AP, twice the size) and the position (ERECT / SUPINE; not the Vietnamese ĐỨNG / NẰM,
whose folded forms DUNG / NAM are also given names).

Text is drawn with the 5x7 bitmap font of synth/font.py, which has no Vietnamese
diacritics: names print ASCII-folded and upper-cased, as many consoles do
(``HOANG THI MAI``). Integer arithmetic only (byte-identical regeneration). Every drawn
string is returned with its kind, box ``[x0, y0, x1, y1)`` in pixel coordinates and font
scale (``render_text(text, scale)`` is its exact glyph mask); the
generator records identifying ones in planted_phi.json ``burned_in_phi`` and markers in
``burned_in_markers``, apart from the header strings (pixels are not byte-searched).
"""
from __future__ import annotations

import numpy as np

from vindr_cli.synth.font import GLYPH_H, GLYPH_W, render_text
from vindr_cli.synth.modules import ImageContext
from vindr_cli.synth.phi import ascii_fold

LAYOUTS = ("burned_in_corners", "burned_in_label")
LINE = GLYPH_H + 3  # line pitch at scale 1


def _width(text: str, scale: int) -> int:
    return (len(ascii_fold(text)) * (GLYPH_W + 1) - 1) * scale


def _ink(max_value: int, photometric: str, bright: bool) -> int:
    """Stored value that displays white (bright) or near black, for the photometric."""
    white = max_value if photometric == "MONOCHROME2" else 0
    black = max_value // 16 if photometric == "MONOCHROME2" else max_value - max_value // 16
    return white if bright else black


def _draw(pixels: np.ndarray, text: str, top: int, left: int, scale: int, value: int) -> list[int]:
    bitmap = render_text(text, scale)
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

    def put(text: str, kind: str, top: int, left: int, scale: int, value: int) -> None:
        box = _draw(pixels, text, top, left, scale, value)
        drawn.append({"text": text, "kind": kind, "box": box, "scale": scale})

    lines = _lines(ctx)
    margin = 4
    if layout == "burned_in_corners":
        for i, (text, kind) in enumerate(lines[:3]):
            put(text, kind, margin + i * LINE, margin, 1, white)
        for i, (text, kind) in enumerate(lines[3:5]):
            put(text, kind, margin + i * LINE, cols - margin - _width(text, 1), 1, white)
    elif layout == "burned_in_label":
        label = [lines[0], lines[1], lines[2], lines[3], lines[5]]
        width = max(_width(t, 1) for t, _ in label) + 6
        height = len(label) * LINE + 3
        top, left = rows - margin - height, margin
        pixels[top:top + height, left:left + width] = max_value * 7 // 8 if spec.photometric == "MONOCHROME2" \
            else max_value - max_value * 7 // 8
        dark = _ink(max_value, spec.photometric, False)
        for i, (text, kind) in enumerate(label):
            put(text, kind, top + 3 + i * LINE, left + 3, 1, dark)
    else:
        raise ValueError(f"unknown burned-in layout {layout}")
    side = "R" if spec.view == "PA" else "L"
    put(side, "marker", rows // 3, cols - margin - _width(side, 2), 2, white)
    put(spec.view, "marker", rows - margin - 2 * GLYPH_H, cols - margin - _width(spec.view, 2), 2, white)
    position = "ERECT" if spec.view == "PA" else "SUPINE"
    put(position, "marker", rows - margin - 4 * GLYPH_H - 4, cols - margin - _width(position, 1), 1, white)
    return drawn
