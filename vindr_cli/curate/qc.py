"""Pixel QC flags of one image: each flag a small rule, each threshold data
(``schemas/curate/qc.toml``, with the measurement it comes from).

The pixel rules look at the header-windowed display thumbnail (``pixels.phash.thumbnail``:
what ``vindr decode`` shows, MONOCHROME1 inverted, long side 256); the size rules at the
stored Rows/Columns; ``burned-in-large`` at anonymize's ``redactions`` boxes. Flag names
are fixed (``FLAGS``); a flag is a fact about the image, the recipe decides what excludes.
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from functools import cache

import numpy as np

from vindr_cli.resources import schema_path

FLAGS = ("blank", "near-constant", "saturated", "clipped", "inverted", "aspect", "small", "burned-in-large")


@dataclass(frozen=True)
class Header:
    """What the rules need from a header (strings normalised upper-case, stripped)."""
    rows: int
    columns: int
    modality: str = ""
    body_part: str = ""
    view: str = ""


@cache
def thresholds() -> dict:
    doc = tomllib.loads(schema_path("curate", "qc.toml").read_text(encoding="utf-8"))
    missing = set(FLAGS) - set(doc)
    if missing or set(doc) - set(FLAGS):
        raise ValueError(f"schemas/curate/qc.toml: sections must be exactly {', '.join(FLAGS)}")
    return doc


def pixel_flags(thumb: np.ndarray, header: Header) -> list[str]:
    """The flags read from the display thumbnail (uint8, 2-D)."""
    t = thresholds()
    img = np.asarray(thumb)
    std = float(img.std())
    out = []
    if std < t["blank"]["max_std"]:
        return ["blank"]                   # nothing else can be judged on a flat image
    if std < t["near-constant"]["max_std"]:
        out.append("near-constant")
    if float((img >= 254).mean()) > t["saturated"]["max_fraction"]:
        out.append("saturated")
    if clipped_fraction(img, t["clipped"]["levels"]) > t["clipped"]["min_fraction"]:
        out.append("clipped")
    if is_inverted(img, header):
        out.append("inverted")
    return out


def clipped_fraction(img: np.ndarray, levels: int) -> float:
    """Fraction of the pixels in the ``levels`` most populated grey levels (uint8 image)."""
    counts = np.bincount(np.asarray(img, dtype=np.uint8).ravel(), minlength=256)
    return float(np.sort(counts)[::-1][:levels].sum() / max(1, counts.sum()))


def inverted_score(img: np.ndarray) -> float:
    """(mean of the central column - mean of the two lung fields) / 255 (qc.toml [inverted])."""
    x = np.asarray(img, dtype=np.float64)
    h, w = x.shape
    r = slice(int(0.25 * h), int(0.65 * h))
    lungs = (x[r, int(0.15 * w):int(0.38 * w)].mean() + x[r, int(0.62 * w):int(0.85 * w)].mean()) / 2
    centre = x[r, int(0.45 * w):int(0.55 * w)].mean()
    return float((centre - lungs) / 255.0)


def judges_inversion(header: Header) -> bool:
    """The inversion rule applies: a frontal chest or spine projection radiograph."""
    t = thresholds()["inverted"]
    return (header.modality in t["modalities"] and header.body_part in t["body_parts"]
            and header.view not in t["lateral_views"])


def is_inverted(img: np.ndarray, header: Header) -> bool:
    if not judges_inversion(header) or min(np.asarray(img).shape) < 8:
        return False
    return inverted_score(img) < thresholds()["inverted"]["min_contrast"]


def size_flags(header: Header) -> list[str]:
    t = thresholds()
    out = []
    lo, hi = sorted((header.rows, header.columns))
    if lo > 0 and hi / lo > t["aspect"]["max_ratio"]:
        out.append("aspect")
    if lo < t["small"]["min_side"]:
        out.append("small")
    return out


def redacted_fraction(redactions, rows: int, columns: int, grid: int = 1024,
                      region: tuple[int, int, int, int] | None = None) -> float:
    """Fraction of the image area inside the union of the redaction boxes. ``redactions`` is
    anonymize's JSON text (or its parsed list) of [frame, x0, y0, x1, y1], x1/y1 exclusive;
    None or [] is 0. A value that cannot be read counts as fully redacted (safe side).
    Counted on a mask of at most ``grid`` px a side (boxes scaled outwards), so a header's
    size cannot make it large. ``region`` (x0, y0, x1, y1 in thousandths of the width and
    height): the fraction of that part of the image only (default: the whole image)."""
    if redactions is None or rows < 1 or columns < 1:
        return 0.0
    s = min(1.0, grid / max(rows, columns))
    h, w = max(1, math.ceil(rows * s)), max(1, math.ceil(columns * s))
    try:
        boxes = json.loads(redactions) if isinstance(redactions, (str, bytes)) else list(redactions)
        mask = np.zeros((h, w), dtype=bool)
        for box in boxes:
            _, x0, y0, x1, y1 = (int(v) for v in box)
            x0, y0 = max(0, math.floor(x0 * s)), max(0, math.floor(y0 * s))
            x1, y1 = max(0, math.ceil(x1 * s)), max(0, math.ceil(y1 * s))
            mask[y0:y1, x0:x1] = True
    except (TypeError, ValueError):
        return 1.0
    if region is not None:
        x0, y0, x1, y1 = region
        mask = mask[y0 * h // 1000:max(y1 * h // 1000, y0 * h // 1000 + 1),
                    x0 * w // 1000:max(x1 * w // 1000, x0 * w // 1000 + 1)]
    return float(mask.mean())


def burned_in_flags(redactions, header: Header) -> list[str]:
    t = thresholds()["burned-in-large"]
    frac = redacted_fraction(redactions, header.rows, header.columns, region=tuple(t["field"]))
    return ["burned-in-large"] if frac > t["max_fraction"] else []


def ordered(flags) -> tuple[str, ...]:
    """Flags in the fixed order of FLAGS, each once."""
    s = set(flags)
    return tuple(f for f in FLAGS if f in s)
