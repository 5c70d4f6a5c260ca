"""Where decoded images go and how they are written (PNG 8/16-bit or .npy).

Two naming modes. A de-identified input (every image marked PatientIdentityRemoved YES)
names its outputs after the input's relative path, whose parts are keyed substitutes.
An input that is not de-identified (``--allow-identified``) must never put its paths,
which may hold names or IDs, into an output name or a table: each input is named by
``keyed_name`` (HMAC-SHA256 of its relative path under a random salt made for this OUTPUT
and kept in ``OUTPUT/.vindr/decode.salt``, mode 0600, so a re-run finds the same names).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
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


SALT_FILE = "decode.salt"


def keyed_name(salt: bytes, rel: str) -> str:
    """32 hex digits standing for an input path (the path itself is never written)."""
    return hmac.new(salt, rel.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:32]


def new_salt() -> bytes:
    return secrets.token_bytes(32)


def read_salt(path: Path) -> bytes:
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def write_salt(path: Path, salt: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(salt.hex() + "\n")
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
