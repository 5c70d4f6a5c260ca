"""Decode a DICOM image's pixel data to stored values, frame by frame.

Backends are tried in the order of ``backends.CANDIDATES`` (fastest first, measured by
bench/decode_backends.py); the first that succeeds is recorded. With ``min_size`` a JPEG
2000 / HTJ2K image is decoded at a reduced resolution straight from the codestream.
Reasons of DecodeError are fixed sentences: never a value from the file, its path or a
library's exception message. A JPEG or JPEG-LS frame's header is checked in Python first
(``dicomio.jpeg``), and GDCM decodes only in a child process (``pixels.isolated``): a
malformed codestream ends as a DecodeError, never as a crash of the process.
"""
from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, UID_dictionary, JPEG2000TransferSyntaxes

from vindr_cli.dicomio.limits import DEFAULT_MAX_PIXELS, PIXELS_REASON, too_many_pixels
from vindr_cli.dicomio.pixelstream import native_pixel_length
from vindr_cli.errors import InternalError

from . import backends as B
from vindr_cli.dicomio.jpeg import MalformedJPEG, check_frame

GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
PHOTOMETRIC_TERMS = frozenset({   # PS3.3 C.7.6.3.1.2 defined terms (incl. retired ones)
    "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
    "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB"})
J2K_SYNTAXES = frozenset(JPEG2000TransferSyntaxes)


@dataclass
class Decoded:
    frames: list[np.ndarray]   # stored values per frame; (rows, cols) for grayscale
    backend: str               # the backend that decoded it
    reduce: int                # J2K resolution levels skipped (0 = full size)
    transfer_syntax: str


class DecodeError(InternalError):
    """Pixel data that cannot be decoded; ``reason`` is one line without any file value.

    Per file, like :class:`~vindr_cli.dicomio.header.BadInput`: ``pixels.task`` records it as
    ``failed`` and goes on; one that escapes to ``cli.main`` is a bug (exit 3) whose fixed
    reason may be printed.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode(ds_or_path, *, min_size: int | None = None, target: tuple[int, int] | None = None,
           device: str = "cpu", backends: list[str] | None = None, threads: int = 1,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Decode every frame of a Dataset or a Part 10 file.

    min_size: the smallest output side the caller needs; JPEG 2000 is then decoded with
    the largest resolution reduction that keeps both sides >= min_size.
    target: (rows, cols) the caller will resize to; the same, per side (with min_size,
    the larger bound wins).
    device: "cpu", "cuda" (nvImageCodec, error without it) or "auto" (GPU when present).
    backends: backend names to try, in order, instead of the table's.
    threads: decoder threads, used by the backends that take a thread count
    (``gdcm-openjpeg``; GDCM's own plugin always uses every core).
    max_pixels: the most samples (Rows x Columns x frames x samples per pixel) the header may
    declare; more is a DecodeError before any decoder runs (``dicomio.limits``).
    """
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError("device must be 'cpu', 'cuda' or 'auto'")
    if threads < 1:
        raise ValueError("threads must be >= 1")
    ds = _dataset(ds_or_path)
    ts = check_pixel_data(ds, max_pixels)
    # Colour (3 samples or a palette) goes through pydicom's plugins only, which return RGB
    # for every YBR_* (as_rgb); the GPU and the direct OpenJPEG backends handle grayscale.
    colour = int(ds.SamplesPerPixel) != 1 or str(ds.PhotometricInterpretation).strip().upper() not in GRAYSCALE
    gpu = None if colour else _gpu_module(device)
    if gpu is not None and ts in gpu.GPU_SYNTAXES:
        try:
            frames = gpu.decode_batch_gpu([(f, ts) for f in B.encapsulated_frames(ds)])
            return Decoded([f.astype(_dtype(ds), copy=False) for f in frames], "nvimagecodec", 0, ts)
        except Exception:
            pass   # fall back to the CPU backends
    if ts in B.JPEG_FAMILY:
        check_jpeg_frames(ds)
    order = B.candidates(ts, backends, threads)
    if colour:
        order = [name for name in order if name not in B.GREY_ONLY]
    bound = _bound(min_size, target)
    if bound and ts in J2K_SYNTAXES and not colour:
        reduced = _decode_reduced(ds, ts, order, bound, threads)
        if reduced is not None:
            return reduced
    for name in order:
        if not B.available(name, ts):
            continue
        try:
            return Decoded(_native(B.run(name, ds, ts, threads=threads)), name, 0, ts)
        except Exception:
            continue
    raise DecodeError(f"no installed decoder could decode {ts.name} pixel data")


def check_jpeg_frames(ds) -> None:
    """DecodeError unless every JPEG / JPEG-LS frame's header is well formed for the image
    (``dicomio.jpeg``): no decoder sees a header that does not describe it."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.SamplesPerPixel), int(ds.BitsAllocated)
    try:
        for frame in B.encapsulated_frames(ds):
            check_frame(frame, rows=rows, columns=cols, samples=samples, bits_allocated=bits)
    except MalformedJPEG as exc:
        raise DecodeError(exc.reason) from None


def check_grayscale(ds) -> None:
    """Raise DecodeError unless the image is single-sample MONOCHROME1/2."""
    term = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if term in GRAYSCALE and int(ds.get("SamplesPerPixel") or 1) == 1:
        return
    shown = term if term in PHOTOMETRIC_TERMS else ("missing" if not term else "non-standard")
    raise DecodeError(f"unsupported photometric interpretation: {shown}")


def check_pixel_data(ds, max_pixels: int = DEFAULT_MAX_PIXELS) -> UID:
    """The transfer syntax, after checking that the pixel data can be decoded at all (and
    that the header declares no more than ``max_pixels`` samples)."""
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if not ts:
        raise DecodeError("no transfer syntax in the file meta information")
    ts = UID(ts)
    if ts not in B.CANDIDATES:
        name = ts.name if ts in UID_dictionary else "non-standard"
        raise DecodeError(f"unsupported transfer syntax: {name}")
    if "PixelData" not in ds:
        raise DecodeError("no pixel data (float/double float pixel data is not supported)")
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel"):
        if not ds.get(keyword):
            raise DecodeError(f"missing or zero {keyword}")
    for keyword in ("PixelRepresentation", "PhotometricInterpretation"):
        if ds.get(keyword) in (None, ""):
            raise DecodeError(f"missing {keyword}")
    if too_many_pixels(ds, max_pixels):
        raise DecodeError(PIXELS_REASON)
    if not ds.PixelData:
        raise DecodeError("zero-length pixel data")
    frames = int(ds.get("NumberOfFrames") or 1)
    if not ts.is_compressed:
        if len(ds.PixelData) < (native_pixel_length(ds) or 0):
            raise DecodeError("truncated pixel data")
        return ts
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoded = B.encapsulated_frames(ds)
    except Exception:
        raise DecodeError("truncated or corrupt pixel data") from None
    if len(encoded) < frames or not all(encoded):
        raise DecodeError("truncated or corrupt pixel data")
    return ts


def j2k_header(codestream: bytes) -> tuple[int, int, int, int, int]:
    """(Ysiz, Xsiz, YOsiz, XOsiz, decomposition levels) from a J2K main header (SIZ, COD, COC)."""
    if codestream[:4] != b"\xff\x4f\xff\x51":
        raise ValueError("not a raw J2K codestream")
    size, levels, pos = None, None, 2
    while pos + 4 <= len(codestream):
        marker, length = struct.unpack_from(">HH", codestream, pos)
        seg = codestream[pos + 4:pos + 2 + length]
        if marker == 0xFF90 or length < 2:            # SOT: end of the main header
            break
        if marker == 0xFF51:                          # SIZ: Rsiz Xsiz Ysiz XOsiz YOsiz ... Csiz
            xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", seg, 2)
            ncomp = struct.unpack_from(">H", seg, 34)[0]
            size = (ysiz, xsiz, yo, xo)
        elif marker == 0xFF52:                        # COD: Scod SGcod(4) SPcod(levels, ...)
            levels = seg[5] if levels is None else min(levels, seg[5])
        elif marker == 0xFF53 and size is not None:   # COC: Ccoc(1|2) Scoc SPcoc(levels, ...)
            levels_at = 2 if ncomp < 257 else 3
            levels = seg[levels_at] if levels is None else min(levels, seg[levels_at])
        pos += 2 + length
    if size is None or levels is None:
        raise ValueError("no SIZ or COD marker segment")
    return (*size, levels)


def reduced_side(size: int, offset: int, r: int) -> int:
    """A side's length after skipping r resolution levels (OpenJPEG's ceil arithmetic)."""
    return math.ceil(size / 2 ** r) - math.ceil(offset / 2 ** r)


def choose_reduce(codestream: bytes, min_rows: int, min_cols: int | None = None) -> int:
    """Largest r <= the decomposition levels keeping reduced rows >= min_rows and
    reduced columns >= min_cols (default: min_rows)."""
    min_cols = min_rows if min_cols is None else min_cols
    try:
        ysiz, xsiz, yo, xo, levels = j2k_header(codestream)
    except (ValueError, struct.error, IndexError):
        return 0
    r = 0
    while r < levels and reduced_side(ysiz, yo, r + 1) >= min_rows and reduced_side(xsiz, xo, r + 1) >= min_cols:
        r += 1
    return r


def _bound(min_size: int | None, target: tuple[int, int] | None) -> tuple[int, int] | None:
    """(min rows, min cols) of a reduced decode, or None for a full-size decode."""
    rows, cols = target if target else (0, 0)
    rows, cols = max(rows, min_size or 0), max(cols, min_size or 0)
    return (rows, cols) if rows > 0 and cols > 0 else None


def _decode_reduced(ds, ts, order, bound, threads) -> Decoded | None:
    """A reduced decode through a backend that supports it; None when r is 0 or all fail."""
    encoded = B.encapsulated_frames(ds)
    r = choose_reduce(encoded[0], *bound)
    if r == 0:
        return None
    ysiz, xsiz, yo, xo, _ = j2k_header(encoded[0])
    expected = (reduced_side(ysiz, yo, r), reduced_side(xsiz, xo, r))
    for name in order:
        if name not in B.DIRECT or not B.available(name, ts):
            continue
        try:
            frames = B.run(name, ds, ts, reduce=r, threads=threads)
        except Exception:
            continue
        if all(f.shape == expected for f in frames):
            return Decoded(frames, name, r, ts)
    return None


def _native(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Frames in native byte order (pydicom returns big endian data as '>u2')."""
    return [f if f.dtype.isnative else f.astype(f.dtype.newbyteorder("=")) for f in frames]


def _dtype(ds) -> np.dtype:
    return np.dtype(f"{'i' if ds.PixelRepresentation else 'u'}{(ds.BitsAllocated + 7) // 8}")


def _gpu_module(device: str):
    """vindr_cli.pixels.gpu when the GPU is to be used, else None (imported only off the CPU path)."""
    if device == "cpu":
        return None
    from . import gpu

    if gpu.gpu_available():
        return gpu
    if device == "cuda":
        raise DecodeError("CUDA requested but nvImageCodec/GPU not available")
    return None


def _dataset(ds_or_path) -> Dataset:
    if isinstance(ds_or_path, Dataset):
        return ds_or_path
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(os.fspath(ds_or_path))
    except InvalidDicomError:
        raise DecodeError("not a DICOM Part 10 file") from None
    except OSError:
        raise DecodeError("file cannot be read") from None
    except Exception:
        raise DecodeError("unreadable DICOM file") from None
    if any("End of file reached" in str(w.message) for w in caught):   # pydicom's warning
        raise DecodeError("truncated file")
    return ds
