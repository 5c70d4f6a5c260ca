"""Output geometry and anti-aliased resizing.

Resampling is area averaging (Pillow's BOX filter on float32: each output pixel is the
mean of the input area it covers — no ringing, the right filter for shrinking
radiographs) or Lanczos-3 (``--resample lanczos``, sharper, may ring at edges).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vindr_cli.errors import RequestError

FILTERS = {"area": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS}


@dataclass(frozen=True)
class SizeSpec:
    long_side: int | None = None
    width: int | None = None
    height: int | None = None

    def target(self, rows: int, cols: int) -> tuple[int, int]:
        """(out_rows, out_cols) for an image of rows x cols."""
        if self.width and self.height:
            return self.height, self.width
        if self.long_side:
            n = self.long_side
            if cols >= rows:
                return max(1, round(rows * n / cols)), n
            return n, max(1, round(cols * n / rows))
        return rows, cols


def parse_size(text: str | None) -> SizeSpec:
    """'1024' (long side, aspect kept) or '1024x768' (exact WxH); None = full size."""
    if text is None or text == "":
        return SizeSpec()
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) and int(m.group(2)) < 1):
        raise RequestError("--size must be N (long side) or WxH, e.g. 1024 or 1024x1024")
    if m.group(2):
        return SizeSpec(width=int(m.group(1)), height=int(m.group(2)))
    return SizeSpec(long_side=int(m.group(1)))


def resize(image: np.ndarray, out_rows: int, out_cols: int, method: str = "area") -> np.ndarray:
    """Resize a 2-D image, or each channel of a (rows, cols, C) one, to (out_rows, out_cols);
    returns float32 (callers round)."""
    if image.shape[:2] == (out_rows, out_cols):
        return image.astype(np.float32, copy=False)
    if method not in FILTERS:
        raise ValueError(f"--resample must be one of {', '.join(FILTERS)}")
    if image.ndim == 3:
        return np.stack([resize(image[..., c], out_rows, out_cols, method) for c in range(image.shape[2])], axis=-1)
    im = _float_image(np.ascontiguousarray(image, dtype=np.float32))
    return np.asarray(im.resize((out_cols, out_rows), FILTERS[method]), dtype=np.float32)


def _float_image(a: np.ndarray) -> Image.Image:
    """A Pillow "F" image over a C-contiguous float32 array: through Arrow without a copy
    (Pillow >= 11.2; a 2k radiograph is 14 MB that ``fromarray`` allocates, zeroes and
    copies), else ``fromarray``. The pixels are the same either way. The Arrow array is
    made from the array's buffer (``Array.from_buffers``), not ``pa.array``, which imports
    pandas (0.3 s of CPU in every worker) to look for pandas objects."""
    if hasattr(Image, "fromarrow") and a.size:
        try:
            import pyarrow as pa

            arr = pa.Array.from_buffers(pa.float32(), a.size, [None, pa.py_buffer(a)])
            return Image.fromarrow(arr, "F", (a.shape[1], a.shape[0]))
        except Exception:      # an older Pillow or pyarrow that cannot: the copy below
            pass
    return Image.fromarray(a, mode="F")


def to_uint(image: np.ndarray, bits: int) -> np.ndarray:
    """Round half up and clip to the output range."""
    top = (1 << bits) - 1
    out = np.clip(np.floor(image + 0.5), 0, top)
    return out.astype(np.uint8 if bits == 8 else np.uint16)
