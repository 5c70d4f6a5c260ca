"""Where decoded images go and how they are written (PNG 8/16-bit or .npy)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
FORMATS = ("png", "npy")


def image_name(rel: str, frame: int | None, fmt: str) -> str:
    """Output path named after the input's relative path: 'a/b.dcm' -> 'a/b.png';
    archive members 'x.zip!c/d.dcm' -> 'x.zip/c/d.png'; frames get '_f0001'."""
    rel = rel.replace("!", "/")
    p = Path(rel)
    stem = p.with_suffix("") if p.suffix.lower() in DICOM_SUFFIXES else p
    tail = f"_f{frame + 1:04d}" if frame is not None else ""
    return f"{stem.as_posix()}{tail}.{fmt}"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _png_rgb16(path: Path, image: np.ndarray) -> None:
    """A 16-bit RGB PNG (colour type 2, bit depth 16, no interlace, filter 0 on every row)."""
    h, w, _ = image.shape
    rows = np.zeros((h, 1 + w * 6), dtype=np.uint8)
    rows[:, 1:] = np.ascontiguousarray(image, dtype=">u2").view(np.uint8).reshape(h, w * 6)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) + _chunk(b"IEND", b""))
    path.write_bytes(data)


def write_image(path: Path, image: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        with open(path, "wb") as f:
            np.save(f, image)
    elif fmt == "png":
        if image.ndim == 3 and image.dtype == np.uint16:
            _png_rgb16(path, image)       # Pillow has no 16-bit RGB mode
        else:
            Image.fromarray(image).save(path, format="PNG", compress_level=1)
    else:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}")
