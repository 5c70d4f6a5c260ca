"""Colour images for display: RGB, YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT, PALETTE COLOR.

Windowing (VOI LUT, Window Center/Width, ``--window``) is defined for grayscale only
(PS3.3 C.11.2: a VOI transform applies to MONOCHROME1/2), so a colour image is shown as it
is stored:

* YBR_* are converted to RGB by the decoder (pydicom's ``as_rgb``: YBR_FULL and
  YBR_FULL_422 by the ITU-R BT.601 full-range matrix, YBR_ICT/RCT by the JPEG 2000
  codec's inverse component transform), so every decoded colour frame arrives as RGB;
* PALETTE COLOR: the stored indices go through the Red/Green/Blue Palette Color Lookup
  Tables (segmented ones too), ``pydicom.pixels.apply_color_lut``;
* the samples (Bits Stored, or the palette's entry depth) are scaled to the output depth
  (``--bits``): value x out_max / (2**bits - 1), rounded half up. An 8-bit source written at
  ``--bits 16`` is exact (x 257) but holds no more information.
"""
from __future__ import annotations

import numpy as np
from pydicom.multival import MultiValue

from vindr_cli.pixels.decode import DecodeError
from vindr_cli.pixels.voi import WindowUsed

COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
PALETTE = "PALETTE COLOR"


def photometric(ds) -> str:
    return str(ds.get("PhotometricInterpretation", "") or "").strip().upper()


def is_colour(ds) -> bool:
    """A colour image vindr renders (three samples, or a palette)."""
    return photometric(ds) in COLOUR


PALETTE_REASON = ("damaged PALETTE COLOR lookup tables (a descriptor or LUT data missing, malformed, "
                  "or fewer entries than declared)")
_COLOURS = ("Red", "Green", "Blue")


def _palette(frame: np.ndarray, ds) -> tuple[np.ndarray, int]:
    """The frame's indices through the Red/Green/Blue Palette Color LUTs (pydicom's
    ``apply_color_lut``, segmented tables too) and the entries' depth; a palette that is not
    three descriptors of three numbers with their data, or whose data
    pydicom cannot apply, is :data:`PALETTE_REASON` (hostile11: pydicom raised TypeError,
    AttributeError or IndexError, which became "unexpected error")."""
    from pydicom.pixels import apply_color_lut

    descs = [ds.get(f"{c}PaletteColorLookupTableDescriptor") for c in _COLOURS]
    for d in descs:
        values = list(d) if isinstance(d, (list, tuple, MultiValue)) else None
        if values is None or len(values) != 3 or not all(isinstance(v, int) for v in values):
            raise DecodeError(PALETTE_REASON)
    segmented = all(f"Segmented{c}PaletteColorLookupTableData" in ds for c in _COLOURS)
    if not segmented:
        for c, d in zip(_COLOURS, descs):
            data = ds.get(f"{c}PaletteColorLookupTableData")
            n = int(d[0]) or 65536
            if not isinstance(data, (bytes, bytearray)) or len(data) < (n if d[2] <= 8 else 2 * n):
                raise DecodeError(PALETTE_REASON)
    try:
        rgb = apply_color_lut(frame, ds)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError, OverflowError):
        raise DecodeError(PALETTE_REASON) from None
    depth = int(descs[0][2])
    if depth not in (8, 16):      # not a depth the standard allows: the one the table's type holds
        depth = 16 if rgb.dtype.itemsize > 1 else 8
    return rgb, depth


def render_colour(frame: np.ndarray, ds, out_bits: int = 8) -> tuple[np.ndarray, WindowUsed]:
    """One decoded colour frame -> (rows, cols, 3) RGB at ``out_bits`` (uint8 / uint16)."""
    if not 1 <= out_bits <= 16:
        raise ValueError(f"out_bits must be 1..16 (got {out_bits})")
    out_max = (1 << out_bits) - 1
    term = photometric(ds)
    if term == PALETTE:
        if frame.ndim != 2:
            raise DecodeError("PALETTE COLOR image with more than one sample per pixel")
        rgb, depth = _palette(frame, ds)
        used = WindowUsed("colour", lut="palette", note="colour: palette applied, no windowing")
    else:
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise DecodeError(f"{term} image without three samples per pixel")
        depth = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
        rgb = np.asarray(frame).astype(np.int64) & ((1 << depth) - 1)
        used = WindowUsed("colour", note="colour: shown as stored, no windowing")
    top = (1 << depth) - 1
    y = np.asarray(rgb, dtype=np.float64) * (out_max / top)
    image = np.clip(np.floor(y + 0.5), 0, out_max).astype(np.uint8 if out_bits <= 8 else np.uint16)
    return image, used
