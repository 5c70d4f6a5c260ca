"""Real radiographs from pydicom's test files with text drawn in (shared by the OCR bench and tests).

The base images are real DICOM pixel data (CT, MR, NM, OT), windowed to 8 bits with a plain
percentile stretch and resized to the requested size; text is drawn with PIL and a Debian
TrueType font (fonts-dejavu-core). Every drawn item is returned with its box and kind.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.data import get_testdata_file

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
BASES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "693_J2KI.dcm", "examples_overlay.dcm",
         "JPGExtended.dcm"]  # image_dfl.dcm (OT test pattern, light) is not a radiograph
NAMES = ["NGUYỄN VĂN AN", "TRẦN THỊ HƯƠNG", "LÊ HOÀNG PHÚC", "PHẠM ĐỨC MINH", "VÕ THỊ NGỌC ÁNH"]
IDS = ["0012345678", "BN2023-004512", "VN884213", "PID 7730192"]
DATES = ["12/03/1985", "2023-07-14", "05.11.1962", "20190228"]
PLACES = ["BV BẠCH MAI", "BỆNH VIỆN CHỢ RẪY", "HOSPITAL 108", "BV ĐẠI HỌC Y DƯỢC"]
MARKERS = ["L", "R", "PA", "AP", "TRÁI", "PHẢI", "ĐỨNG", "80kV", "2.5mAs", "PORTABLE", "ERECT"]


@dataclass(frozen=True)
class Drawn:
    text: str
    kind: str  # name | id | date | other | marker
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    size: int


def base_names() -> list[str]:
    return [n for n in BASES if get_testdata_file(n, download=False)]


def radiograph(name: str, size: int = 2048, bits16: bool = False) -> np.ndarray:
    """A real image, windowed (1st-99th percentile) to uint8 (or uint16 when bits16), size x size."""
    ds = pydicom.dcmread(get_testdata_file(name, download=False))
    arr = ds.pixel_array
    if arr.ndim == 3:
        arr = arr[0]
    arr = arr.astype(np.float64)
    lo, hi = np.percentile(arr, [1, 99])
    arr = np.clip((arr - lo) / max(hi - lo, 1e-6), 0, 1)
    img = Image.fromarray((arr * 65535).astype(np.uint16) if bits16 else (arr * 255).astype(np.uint8))
    img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img)


def draw(image: np.ndarray, text: str, xy: tuple[int, int], size: int, *, fg: int = 255,
         box_bg: int | None = None, bold: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    img = Image.fromarray(image)
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT_BOLD if bold else FONT, size)
    x0, y0, x1, y1 = d.textbbox(xy, text, font=font)
    if box_bg is not None:
        pad = max(2, size // 4)
        d.rectangle([x0 - pad, y0 - pad, x1 + pad, y1 + pad], fill=box_bg)
    d.text(xy, text, font=font, fill=fg)
    return np.asarray(img), (x0, y0, x1, y1)


def with_text(name: str, seed: int, size: int = 2048) -> tuple[np.ndarray, list[Drawn]]:
    """A radiograph with a patient label in one corner, a marker and exposure in others."""
    rng = random.Random(seed)
    img = radiograph(name, size)
    drawn: list[Drawn] = []
    s = rng.choice([14, 18, 22, 28, 34, 40])
    light = rng.random() < 0.5
    fg, bg = (10, 235) if light else (255, None)
    x, y = rng.randint(20, 80), rng.randint(20, 80)
    items = [(rng.choice(NAMES), "name"), (rng.choice(IDS), "id"), (rng.choice(DATES), "date"),
             (rng.choice(PLACES), "other")]
    for text, kind in items:
        img, box = draw(img, text, (x, y), s, fg=fg, box_bg=bg)
        drawn.append(Drawn(text, kind, box, s))
        y = box[3] + s // 2 + (s // 4 if bg is not None else 0) + 4
    m = rng.choice(MARKERS[:7])
    ms = rng.choice([30, 40, 48])
    img, box = draw(img, m, (size - 40 - ms * len(m), rng.randint(40, 200)), ms, bold=True)
    drawn.append(Drawn(m, "marker", box, ms))
    e = rng.choice(MARKERS[7:])
    es = rng.choice([12, 16, 20, 24])
    img, box = draw(img, e, (size - 60 - es * len(e), size - 80), es)
    drawn.append(Drawn(e, "marker", box, es))
    return img, drawn
