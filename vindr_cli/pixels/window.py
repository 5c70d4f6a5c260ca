"""``--window MODE`` of ``vindr decode``: parse it, and pick the VOI transform for one image.

header          VOI LUT Sequence if present, else Window Center/Width (with VOI LUT Function);
                neither (or a width the standard does not allow) -> percentile:0.5,99.5
minmax          min..max of the non-padding modality values, mapped linearly (LINEAR_EXACT)
percentile:L,H  the L-th..H-th percentiles of the non-padding modality values, same map
C,W             an explicit LINEAR window (floats, W >= 1)
kaggle          the community ``read_xray`` (pydicom apply_voi_lut on the stored values, then
                MONOCHROME1 ``max - x``, min-max stretch, truncation) for comparison with
                published Kaggle work
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from vindr_cli.errors import RequestError
from vindr_cli.pixels.voi import (LINEAR, LINEAR_EXACT, MONOCHROME, DisplayParams, WindowUsed, apply_voi_lut,
                                  apply_window, modality_lut, padding_mask, stored_values, to_output)

DEFAULT_PERCENTILES = (0.5, 99.5)
VALID_FORMS = ("header, minmax, kaggle, percentile:LO,HI (0 <= LO < HI <= 100) "
               "or C,W (window center and width, W >= 1)")


@dataclass(frozen=True)
class WindowMode:
    kind: str                      # header | minmax | percentile | explicit | kaggle
    lo: float | None = None        # percentile
    hi: float | None = None
    center: float | None = None    # explicit
    width: float | None = None

    def __str__(self) -> str:
        if self.kind == "percentile":
            return f"percentile:{self.lo:g},{self.hi:g}"
        if self.kind == "explicit":
            return f"{self.center:g},{self.width:g}"
        return self.kind


def _pair(text: str) -> tuple[float, float] | None:
    parts = text.split(",")
    if len(parts) != 2:
        return None
    try:
        a, b = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return (a, b) if math.isfinite(a) and math.isfinite(b) else None


def parse_window_mode(text: str) -> WindowMode:
    """Parse ``--window``; a bad form raises RequestError (exit 2) with a one-line message."""
    t = str(text).strip().lower().replace(" ", "")
    if t in ("header", "minmax", "kaggle"):
        return WindowMode(t)
    if t.startswith("percentile:"):
        pair = _pair(t[len("percentile:"):])
        if pair and 0 <= pair[0] < pair[1] <= 100:
            return WindowMode("percentile", lo=pair[0], hi=pair[1])
    else:
        pair = _pair(t)
        if pair and pair[1] >= 1:
            return WindowMode("explicit", center=pair[0], width=pair[1])
    raise RequestError(f"invalid --window {str(text)[:40]!r}: use {VALID_FORMS}")


def _stat_window(kind: str, lo: float, hi: float, percentiles=None, note=None) -> WindowUsed:
    """lo..hi -> 0..out_max linearly: LINEAR_EXACT with c = (lo+hi)/2, w = hi-lo (x <= lo -> 0,
    x > hi -> max). A constant image gets w = 1 at c = lo + 0.5, so it renders black."""
    if hi > lo:
        return WindowUsed(kind, (lo + hi) / 2, hi - lo, LINEAR_EXACT, percentiles=percentiles, note=note)
    return WindowUsed(kind, lo + 0.5, 1.0, LINEAR_EXACT, percentiles=percentiles,
                      note=((note + "; ") if note else "") + "constant image")


def _statistics(kind: str, values: np.ndarray, valid: np.ndarray, q=None, note=None) -> WindowUsed:
    v = np.asarray(values, dtype=np.float64)[np.asarray(valid, dtype=bool)]
    if v.size == 0:
        return _stat_window(kind, 0.0, 0.0, q, ((note + "; ") if note else "") + "no non-padding pixels")
    if q is None:
        return _stat_window(kind, float(v.min()), float(v.max()), None, note)
    lo, hi = np.percentile(v, q)
    return _stat_window(kind, float(lo), float(hi), tuple(q), note)


def _header_window_valid(p: DisplayParams) -> bool:
    if p.window_center is None or p.window_width is None:
        return False
    if not (math.isfinite(p.window_center) and math.isfinite(p.window_width)):
        return False
    return p.window_width >= 1 if p.voi_lut_function == LINEAR else p.window_width > 0


def lut_description(index: int | None) -> str:
    """What the table says of a VOI LUT used: which item, never its LUTExplanation (free text
    of the header, which may name the patient in an identified input: red team 6)."""
    return f"VOI LUT Sequence item {(index or 0) + 1}"


def choose_window(mode: WindowMode, p: DisplayParams, values: np.ndarray, valid: np.ndarray) -> WindowUsed:
    """The VOI to apply to modality ``values``; statistics use only pixels where ``valid``
    (not padding). Not for the kaggle mode (see ``kaggle_render``)."""
    if mode.kind == "header":
        if p.voi_lut_data is not None:
            return WindowUsed("voi_lut", lut=lut_description(p.voi_lut_index), index=p.voi_lut_index)
        if _header_window_valid(p):
            return WindowUsed("window", p.window_center, p.window_width, p.voi_lut_function, index=p.window_index)
        note = ("header window width not allowed by the standard" if p.window_center is not None
                else "no VOI LUT or window in header")
        return _statistics("percentile", values, valid, DEFAULT_PERCENTILES, note + "; percentile:0.5,99.5")
    if mode.kind == "minmax":
        return _statistics("minmax", values, valid)
    if mode.kind == "percentile":
        return _statistics("percentile", values, valid, (mode.lo, mode.hi))
    if mode.kind == "explicit":
        return WindowUsed("explicit", mode.center, mode.width, LINEAR)
    raise ValueError(f"window mode {mode.kind!r} has no VOI choice here")


def kaggle_render(stored: np.ndarray, ds, out_max: int = 255) -> tuple[np.ndarray, WindowUsed]:
    """The community ``read_xray`` on stored values, to match published work:

        data = apply_voi_lut(pixel_array, ds)           # pydicom; index 0; no modality LUT
        if MONOCHROME1: data = np.amax(data) - data
        data = data - np.min(data); data = data / np.max(data)
        (data * 255).astype(np.uint8)                    # truncation

    Pixel padding is not handled (as in read_xray). A constant image (max 0 after the shift,
    where read_xray divides by zero) renders 0.
    """
    from pydicom.pixels import apply_voi_lut

    if ds is None:
        raise ValueError("the kaggle window mode needs the pydicom Dataset of the image")
    data = apply_voi_lut(np.asarray(stored), copy.copy(ds))   # pydicom rewrites some header values
    if ds.PhotometricInterpretation == "MONOCHROME1":
        data = np.amax(data) - data
    data = data - np.min(data)
    top = np.max(data)
    data = data / top if top else np.zeros(data.shape)
    image = (data * out_max).astype(np.uint8 if out_max <= 0xFF else np.uint16)

    if ds.get("VOILUTSequence"):
        item = ds.VOILUTSequence[0]
        used = WindowUsed("kaggle", lut=lut_description(0), index=0)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        c, w = ds["WindowCenter"], ds["WindowWidth"]
        used = WindowUsed("kaggle", float(c.value[0] if c.VM > 1 else c.value),
                          float(w.value[0] if w.VM > 1 else w.value),
                          str(ds.get("VOILUTFunction", "") or LINEAR).upper(), index=0)
    else:
        used = WindowUsed("kaggle", note="no VOI in header: min-max stretch of stored values")
    return image, WindowUsed(**{**used.__dict__, "inverted": ds.PhotometricInterpretation == "MONOCHROME1"})


LUT_MIN_SAMPLES = 1 << 18     # below this a frame is rendered directly (a table costs ~65,536 values)


def _fixed_window(m: WindowMode, p: DisplayParams) -> WindowUsed | None:
    """The VOI of a mode that needs no statistics of the image (None: it needs them)."""
    if m.kind == "explicit" or (m.kind == "header" and (p.voi_lut_data is not None or _header_window_valid(p))):
        return choose_window(m, p, np.zeros(0), np.zeros(0, dtype=bool))
    return None


def display_lut(p: DisplayParams, mode, dtype, out_bits: int = 8) -> tuple[np.ndarray, WindowUsed] | None:
    """The whole display transform (stored values, Modality LUT, VOI, polarity, padding,
    rounding) as a table over every raw word of an 8- or 16-bit ``dtype``: ``table[raw.view(
    unsigned)]`` equals ``render(raw, p, mode, out_bits)[0]`` element for element, because
    every step maps one value to one value and the table is made by those same steps. None
    when the mode needs the image's statistics (minmax, percentile, kaggle, a header without
    a usable window) or the words are wider than 16 bits."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui" or dtype.itemsize > 2 or p.photometric not in MONOCHROME:
        return None
    m = mode if isinstance(mode, WindowMode) else parse_window_mode(mode)
    if m.kind == "kaggle" or (used := _fixed_window(m, p)) is None:
        return None
    words = np.arange(1 << (8 * dtype.itemsize), dtype=f"u{dtype.itemsize}").view(dtype)
    return _render(stored_values(words, p), p, used, out_bits)


def lut_index(raw: np.ndarray) -> np.ndarray:
    """Raw words as indices into a :func:`display_lut` table (signed words viewed unsigned);
    looked up with ``np.take(table, index)``, the same values as ``table[index]`` and ~14 %
    less CPU on a 2k frame."""
    return raw.view(f"u{raw.dtype.itemsize}") if raw.dtype.kind == "i" else raw


def render(stored_or_raw: np.ndarray, p: DisplayParams, mode="header", out_bits: int = 8, *,
           ds=None) -> tuple[np.ndarray, WindowUsed]:
    """One frame (or a stack) of stored values or raw words -> display image and what was applied.

    mode is a ``WindowMode`` or its text (see ``window.parse_window_mode``). ``ds`` (default
    ``p.dataset``) is only needed by the kaggle mode. A large 8/16-bit frame with a window
    that needs no statistics goes through :func:`display_lut` (the same values, ~10x less work).
    """
    if not 1 <= out_bits <= 16:
        raise ValueError(f"out_bits must be 1..16 (got {out_bits})")
    if p.photometric not in MONOCHROME:
        raise ValueError(f"only MONOCHROME1/MONOCHROME2 can be windowed (got {p.photometric})")
    m = mode if isinstance(mode, WindowMode) else parse_window_mode(mode)
    raw = np.asarray(stored_or_raw)
    if raw.size >= LUT_MIN_SAMPLES and (table := display_lut(p, m, raw.dtype, out_bits)) is not None:
        lut, used = table
        return np.take(lut, lut_index(raw)), used
    out_max = (1 << out_bits) - 1
    stored = stored_values(raw, p)
    if m.kind == "kaggle":
        return kaggle_render(stored, ds if ds is not None else p.dataset, out_max)
    pad = padding_mask(stored, p)
    x = modality_lut(stored, p)
    used = choose_window(m, p, x, ~pad)
    return _render(stored, p, used, out_bits, x, pad)


def _render(stored: np.ndarray, p: DisplayParams, used: WindowUsed, out_bits: int,
            x: np.ndarray | None = None, pad: np.ndarray | None = None) -> tuple[np.ndarray, WindowUsed]:
    """Apply a chosen VOI to stored values: Modality LUT (unless ``x`` holds it), window or
    VOI LUT, polarity, rounding, padding black (where ``pad``, default the padding mask)."""
    out_max = (1 << out_bits) - 1
    if pad is None:
        pad = padding_mask(stored, p)
    if x is None:
        x = modality_lut(stored, p)
    if used.kind == "voi_lut":
        y = apply_voi_lut(x, p.voi_lut_descriptor, p.voi_lut_data, out_max)
    else:
        y = apply_window(x, used.center, used.width, used.function, out_max)
    if p.inverted:
        y = out_max - y
    image = to_output(y, out_max)
    image[pad] = 0
    return image, WindowUsed(**{**used.__dict__, "inverted": p.inverted})
