"""A small display image of a DICOM frame and its 64-bit perceptual (DCT) hash.

One leaf both ``vindr select`` (``curate.look``, ``curate.dedup``) and ``vindr validate``
(``release.validate``) import, so "the same picture" means the same thing at selection and
at release. Settings are data: ``schemas/curate/phash.toml`` (thumbnail size, DCT size,
Hamming threshold, and the measurement they come from).

thumbnail: decode (``pixels.decode``) -> the display pipeline of ``vindr decode`` (PS3.3
C.11: Modality LUT, the header's VOI window or LUT, else percentiles, MONOCHROME1
inverted, padding black; colour as luminance) at 16 bits -> area-resize to the long side ->
uint8. dct_hash: area-resize to 32 x 32 -> orthonormal 2-D DCT-II -> 8 x 8 lowest
frequencies -> one bit each, set when above the median of the 63 AC coefficients.
"""
from __future__ import annotations

import math
import tomllib
from functools import cache

import numpy as np

from vindr_cli.resources import schema_path
from vindr_cli.pixels.backends import quiet_stderr
from vindr_cli.pixels.colour import is_colour, render_colour
from vindr_cli.pixels.decode import DecodeError, _dataset, check_grayscale, decode
from vindr_cli.pixels.resize import resize, to_uint
from vindr_cli.pixels.voi import display_params
from vindr_cli.pixels.window import render


@cache
def settings() -> dict:
    """schemas/curate/phash.toml, checked."""
    doc = tomllib.loads(schema_path("curate", "phash.toml").read_text(encoding="utf-8"))
    for key in ("thumbnail_long_side", "dct_size", "hash_size", "max_distance"):
        if not isinstance(doc.get(key), int) or doc[key] < 0:
            raise ValueError(f"schemas/curate/phash.toml: {key} must be a non-negative integer")
    if doc["hash_size"] ** 2 != 64 or doc["dct_size"] < doc["hash_size"]:
        raise ValueError("schemas/curate/phash.toml: the hash must have 64 bits (hash_size 8)")
    return doc


def thumbnails(path_or_ds, *, frame: int = 0, windows: tuple[str, ...] = ("header",),
               long_side: int | None = None) -> list[np.ndarray]:
    """The display image of one frame under each ``--window`` mode of ``windows`` (decoded
    once), uint8, long side ``long_side`` (default from the settings; a smaller image is not
    enlarged). Colour images are shown as luminance (no window). Raises DecodeError with a
    fixed reason when the file or the frame cannot be decoded."""
    n = long_side or settings()["thumbnail_long_side"]
    ds = _dataset(path_or_ds)
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows < 1 or cols < 1:
        raise DecodeError("missing or zero Rows or Columns")
    colour = is_colour(ds)
    if not colour:
        check_grayscale(ds)
    scale = min(1.0, n / max(rows, cols))
    target = (max(1, round(rows * scale)), max(1, round(cols * scale)))
    with quiet_stderr():
        dec = decode(ds, target=target)
    if not 0 <= frame < len(dec.frames):
        raise DecodeError("frame number past the last frame")
    stored = dec.frames[frame]
    out = []
    if colour:
        rgb, _ = render_colour(stored, ds, out_bits=16)
        lum = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        shown = [lum] * len(windows)
    else:
        params = display_params(ds)
        shown = [render(stored, params, w, out_bits=16)[0] for w in windows]
    for im in shown:
        out.append(to_uint(resize(np.asarray(im, dtype=np.float32) / 65535.0 * 255.0, *target), 8))
    return out


def thumbnail(path_or_ds, *, frame: int = 0, window: str = "header", long_side: int | None = None) -> np.ndarray:
    """One display image (see :func:`thumbnails`)."""
    return thumbnails(path_or_ds, frame=frame, windows=(window,), long_side=long_side)[0]


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: (C @ x) is the DCT of the column vector x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


def dct_hash(image: np.ndarray) -> str:
    """64-bit DCT hash of a 2-D image as 16 hex digits (module doc)."""
    s = settings()
    n, h = s["dct_size"], s["hash_size"]
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or img.size == 0:
        raise ValueError("dct_hash needs a non-empty 2-D image")
    small = resize(img, n, n).astype(np.float64)
    c = _dct_matrix(n)
    low = (c @ small @ c.T)[:h, :h].ravel()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def phash_file(path_or_ds, *, frame: int = 0) -> str:
    """dct_hash(thumbnail(...)): the hash of one frame of a DICOM file."""
    return dct_hash(thumbnail(path_or_ds, frame=frame))


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def near_pairs(hashes: list[str | None], max_distance: int | None = None,
               block: int | None = None) -> list[tuple[int, int, int]]:
    """Every (i, j, distance) with i < j and hashes i and j at most ``max_distance`` bits apart
    (default from the settings); None hashes take no part. All pairs, compared in numpy blocks
    of ``block`` rows (default: about 4 M comparisons, 32 MiB, a block): N = 18,000 is 1.6e8
    comparisons, a few seconds."""
    d = settings()["max_distance"] if max_distance is None else max_distance
    idx = np.array([i for i, x in enumerate(hashes) if x is not None], dtype=np.int64)
    if idx.size < 2:
        return []
    vals = np.array([int(hashes[i], 16) for i in idx], dtype=np.uint64)
    block = block or max(16, (1 << 22) // len(vals))
    out = []
    for start in range(0, len(vals), block):
        a = vals[start:start + block]
        dist = np.bitwise_count(a[:, None] ^ vals[None, :])
        ii, jj = np.nonzero(dist <= d)
        keep = (jj > ii + start)
        for i, j in zip(ii[keep], jj[keep]):
            out.append((int(idx[i + start]), int(idx[j]), int(dist[i, j])))
    return sorted(out)
