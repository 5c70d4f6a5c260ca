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

from vindr_cli.pixels.decode import DecodeError
from vindr_cli.pixels.voi import WindowUsed

COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
PALETTE = "PALETTE COLOR"


def photometric(ds) -> str:
    return str(ds.get("PhotometricInterpretation", "") or "").strip().upper()


def is_colour(ds) -> bool:
    """A colour image vindr renders (three samples, or a palette)."""
    return photometric(ds) in COLOUR


def render_colour(frame: np.ndarray, ds, out_bits: int = 8) -> tuple[np.ndarray, WindowUsed]:
    """One decoded colour frame -> (rows, cols, 3) RGB at ``out_bits`` (uint8 / uint16)."""
    if not 1 <= out_bits <= 16:
        raise ValueError(f"out_bits must be 1..16 (got {out_bits})")
    out_max = (1 << out_bits) - 1
    term = photometric(ds)
    if term == PALETTE:
        from pydicom.pixels import apply_color_lut

        if frame.ndim != 2:
            raise DecodeError("PALETTE COLOR image with more than one sample per pixel")
        rgb = apply_color_lut(frame, ds)
        depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        if depth not in (8, 16):
            depth = 16 if rgb.dtype.itemsize > 1 else 8
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
