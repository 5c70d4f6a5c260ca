"""What an image looks like, for selection: a perceptual hash and pixel QC flags.

A first, minimal version written by the ``select`` helper to the contract of issue 11
(``look_at(path, *, frame=0) -> Look``); the ``qchash`` helper's fuller module replaces it.
The frame is decoded with :mod:`vindr_cli.pixels`, shown min..max (MONOCHROME1 inverted,
colour as luminance), reduced to at most 256 px a side, then:

* ``phash``: the DCT hash of imagehash's ``phash`` (32x32 box average, 2-D DCT-II, the 8x8
  lowest frequencies against their median), 16 hex digits; None when undecodable or blank
  (a blank image has no picture to match: every blank image would be one "duplicate");
* flags: ``blank`` (stored values constant, or display spread < 2 grey levels), ``saturated``
  (half the pixels or more at the extreme display values), ``near-constant`` (1st..99th
  percentile of the display within 10 grey levels); ``clipped``, ``inverted`` and
  ``burned-in-large`` are names only here (qchash's module raises them), ``aspect`` (long side > 2.5 x short),
  ``small`` (a side under 64 px).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

QC_FLAGS = ("blank", "near-constant", "saturated", "clipped", "inverted", "aspect", "small", "burned-in-large")   # qchash's names
UNDECODABLE = "pixel data could not be decoded"


@dataclass(frozen=True)
class Look:
    phash: str | None
    qc_flags: tuple[str, ...]
    reason: str | None = None


@cache
def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return np.cos(np.pi * k * (2 * i + 1) / (2 * n))


def _box(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Area average to (rows, cols) (image at least that large; edges folded into the last cell)."""
    r_idx = (np.arange(image.shape[0]) * rows) // image.shape[0]
    c_idx = (np.arange(image.shape[1]) * cols) // image.shape[1]
    sums = np.zeros((rows, cols))
    np.add.at(sums, (r_idx[:, None], c_idx[None, :]), image)
    counts = np.zeros((rows, cols))
    np.add.at(counts, (r_idx[:, None], c_idx[None, :]), 1)
    return sums / np.maximum(counts, 1)


def phash_of(display: np.ndarray) -> str:
    small = display.astype(np.float64)
    if small.shape[0] < 32 or small.shape[1] < 32:
        small = np.kron(small, np.ones((-(-32 // small.shape[0]), -(-32 // small.shape[1]))))
    small = _box(small, 32, 32)
    d = _dct_matrix()
    coef = (d @ small @ d.T)[:8, :8]
    bits = (coef > np.median(coef)).flatten()
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return f"{value:016x}"


def _display(path: Path, frame: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    import pydicom

    from vindr_cli.pixels.decode import decode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        dec = decode(ds, target=(256, 256))
    if not 0 <= frame < len(dec.frames):
        raise IndexError("frame")
    stored = dec.frames[frame].astype(np.float64)
    if stored.ndim == 3:
        stored = stored[..., 0] * 0.299 + stored[..., 1] * 0.587 + stored[..., 2] * 0.114
    lo, hi = float(stored.min()), float(stored.max())
    display = (stored - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(stored)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        display = 255.0 - display
    step = max(1, -(-max(display.shape) // 256))
    return stored[::step, ::step], display[::step, ::step], (int(ds.Rows), int(ds.Columns))


def look_at(path: Path, *, frame: int = 0) -> Look:
    """Hash and QC flags of one frame of a DICOM image; an undecodable one gets ``reason``."""
    try:
        stored, display, (rows, cols) = _display(Path(path), frame)
    except Exception:          # never the library's text: it may quote the file
        return Look(None, (), UNDECODABLE)
    flags = []
    if float(stored.max()) == float(stored.min()) or float(display.std()) < 2.0:
        flags.append("blank")
    else:
        if float(np.mean((display <= 0.5) | (display >= 254.5))) >= 0.5:
            flags.append("saturated")
        p1, p99 = np.percentile(display, [1, 99])
        if p99 - p1 < 10:
            flags.append("near-constant")
    if max(rows, cols) > 2.5 * min(rows, cols):
        flags.append("aspect")
    if min(rows, cols) < 64:
        flags.append("small")
    return Look(None if "blank" in flags else phash_of(display), tuple(flags), None)


__all__ = ["Look", "QC_FLAGS", "UNDECODABLE", "look_at", "phash_of"]
