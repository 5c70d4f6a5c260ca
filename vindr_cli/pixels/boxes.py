"""Map VinDr boxes between original DICOM pixel coordinates and decoded-image coordinates.

The scale factors come from ``images.parquet`` (scale_x = out_cols / columns,
scale_y = out_rows / rows). Coordinates are continuous pixel-edge coordinates, so a box
[x_min, x_max] maps to [x_min * sx, x_max * sx] — the same convention as the VinDr and
Kaggle CSVs, whose boxes are in original pixel units.
"""
from __future__ import annotations

import pandas as pd

BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
SPINE_COLUMNS = ("xmin", "ymin", "xmax", "ymax")


def _columns(df: pd.DataFrame) -> tuple[str, str, str, str]:
    for cols in (BOX_COLUMNS, SPINE_COLUMNS):
        if all(c in df.columns for c in cols):
            return cols
    raise ValueError("annotations need x_min,y_min,x_max,y_max (VinDr-CXR) or xmin,ymin,xmax,ymax (SpineXR)")


def scale_boxes(df: pd.DataFrame, scales: pd.DataFrame, *, inverse: bool = False, key: str = "image_id") -> pd.DataFrame:
    """Return a copy of df with boxes scaled by per-image factors.

    ``scales`` has columns ``key``, ``scale_x``, ``scale_y``. ``inverse=True`` maps decoded
    coordinates back to the original image. Rows without a box ("No finding") stay empty;
    an image missing from ``scales`` is an error (boxes would silently be wrong).
    """
    x0, y0, x1, y1 = _columns(df)
    s = scales.set_index(key)[["scale_x", "scale_y"]]
    missing = set(df[key]) - set(s.index)
    if missing:
        raise KeyError(f"{len(missing)} annotated image(s) have no scale factors in the images table")
    sx = df[key].map(s["scale_x"]).astype(float)
    sy = df[key].map(s["scale_y"]).astype(float)
    if inverse:
        sx, sy = 1.0 / sx, 1.0 / sy
    out = df.copy()
    for c in (x0, x1):
        out[c] = df[c].astype(float) * sx
    for c in (y0, y1):
        out[c] = df[c].astype(float) * sy
    return out
