"""Burned-in text in the pixels (issue 10): decode every frame, show each one to the text
finder (``deid.pixeltext.find_text``) as a display-ready 8-bit image, mask what it reports as
identifying in STORED values, and re-encode.

Decisions (documented in README "Burned-in text"):

* Display for the finder: a min..max linear window over the frame's stored values (OCR only;
  deid/ may not import pixels/). Burned-in text is drawn at an extreme value, which min..max
  keeps apart from the anatomy; a clinical or percentile window could saturate it into bone.
  MONOCHROME1 is inverted; colour is shown as its luminance. Then the other ``views`` (R, G, B of
  colour that is not grey; a clipped window when outliers stretch min..max) and, in vindr
  anonymize and vindr audit, a ``coarse`` view for text too large for the finder (red team 4),
  its boxes gated (``_large_text``: a hint's match, 3+ characters read, or glyph-shaped strokes
  at an extreme of the display) and a marker kept in the first view cut out of them (``_cut``).
* Compressed frames the scan leaves unchanged lose what is not pixels (COM/APPn segments,
  bytes after the end, a Basic Offset Table that is not one): ``clean_frames``.
* A box found in ANY frame is masked in EVERY frame (consoles burn the same label into each
  frame, and a faint frame may hide it from the finder); the manifest lists each box once,
  with the frame it was found in. Boxes are [x0, x1) x [y0, y1), padded by ``PAD`` pixels.
* Fill: the darkest display value in stored units: the image's minimum (MONOCHROME2, signed or
  not), its maximum (MONOCHROME1), black (RGB).
* Re-encoding: RLE Lossless, JPEG-LS Lossless and JPEG 2000 Lossless are re-encoded in the
  same syntax (pydicom 3 encoders; pyjpegls for JPEG-LS); every other input, lossless JPEG
  (no encoder) and every lossy syntax (never re-compressed lossy), is written Explicit VR
  Little Endian uncompressed; a lossy input keeps (or gets) Lossy Image Compression "01".
* High-bit overlays: native data whose 60xx groups declare OverlayBitPosition > 0 carries
  graphics in the bits above Bits Stored: they are cleared (sign-extended for signed data)
  before the scan, and the number of pixel values changed is counted. So are bits set there
  that no 60xx group declares (red team 4: a name drawn in bit 15 of 12-bit data was copied
  byte for byte; the decoder masks those bits, so the finder never saw it, but any reader of
  the raw words does).
* Palette colour images and other layouts the scan cannot show the finder are refused
  (``UNSUPPORTED``): an image not scanned is not released by a scanning mode.
"""
from __future__ import annotations

import re
import struct
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Callable

import numpy as np
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless

FLOAT_PIXEL_TAGS = (0x7FE00008, 0x7FE00009)   # Float / Double Float Pixel Data

MODES = ("redact", "quarantine", "off")
PAD = 4
SAME_SYNTAX = (RLELossless, JPEGLSLossless, JPEG2000Lossless)
LOSSLESS = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
            "1.2.840.10008.1.2.5"}

DECODE_FAILED = "pixel data could not be decoded for the burned-in text scan"
ENCODE_FAILED = "pixel data could not be re-encoded after burned-in text redaction"
FINDER_FAILED = "the burned-in text finder failed on this image"
UNSUPPORTED = "pixel data layout not supported by the burned-in text scan (not released by --burned-in redact|quarantine)"
TEXT_FOUND = "identifying text found in the pixels (--burned-in quarantine)"

# decoders chosen for the scan where pydicom's default (GDCM, which also spends CPU on threads)
# is slower on the same lossless data: JPEG 2000 lossless through pylibjpeg-openjpeg, about
# 20 % less CPU on a 2k frame (bench/burned_in_phases.py --decoders; vindr decode prefers
# OpenJPEG too, pixels/backends.py); JPEG-LS lossless through pyjpegls (CharLS), 40-50 % less
# on 2k frames of 8-16 bits. The values are the same (tests/test_redact_speed.py).
_PREFERRED = {"1.2.840.10008.1.2.4.90": "pylibjpeg", "1.2.840.10008.1.2.4.80": "pyjpegls"}

Finder = Callable[..., list]
Box = tuple[int, int, int, int, int]          # frame, x0, y0, x1, y1


class PixelError(Exception):
    """The image cannot be scanned or re-encoded; ``reason`` is fixed, one line, no PHI."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class PixelOutcome:
    arr: np.ndarray | None = None          # new stored values (frames[, rows, cols[, samples]]); None: unchanged
    photometric: str = ""                  # of arr
    boxes: list[Box] = field(default_factory=list)        # masked (padded, clipped)
    kinds: Counter = field(default_factory=Counter)       # non-marker boxes by kind
    markers: int = 0                       # boxes kept as allowed markers
    overlay_pixels: int = 0                # pixel values whose high (overlay) bits were cleared
    input_ts: str = ""                     # the input's transfer syntax (set by the caller)
    frames: list[bytes] | None = None      # pixels unchanged, compressed frames without their metadata

    @property
    def identifying(self) -> bool:
        return bool(self.boxes)

    @property
    def changed(self) -> bool:
        """Is the Pixel Data written other than byte for byte?"""
        return self.arr is not None or self.frames is not None


def clear_high_bits(ds) -> int:
    """Clear the bits above Bits Stored of native pixel data in place (sign-extend signed data).
    Returns the number of pixel values changed."""
    ts = ds.file_meta.TransferSyntaxUID
    if UID(ts).is_compressed or "PixelData" not in ds:
        return 0
    alloc, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    if alloc not in (8, 16, 32) or stored >= alloc:
        return 0
    dtype = np.dtype(f"u{alloc // 8}").newbyteorder("<" if UID(ts).is_little_endian else ">")
    raw = bytes(ds.PixelData)
    n = len(raw) // dtype.itemsize
    values = np.frombuffer(raw, dtype=dtype, count=n)
    mask = (1 << stored) - 1
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if not signed and not (values > mask).any():      # the usual case, now checked for every image: one pass
        return 0
    fixed = values & mask
    if signed:
        negative = (fixed >> (stored - 1)) & 1
        fixed = np.where(negative == 1, fixed | (~np.array(mask, dtype=dtype.type) & np.iinfo(dtype.type).max), fixed)
    fixed = fixed.astype(dtype)
    changed = int(np.count_nonzero(fixed != values))
    if changed:
        ds.PixelData = fixed.tobytes() + raw[n * dtype.itemsize:]
    return changed


UNCHECKED_FRAMES = ("pixel data in a compressed syntax whose frames vindr cannot check for what is not "
                    "the image (video, JPEG XL, deflated frames); not written")


def compressed(ts: str) -> bool:
    """Is ``ts`` a compressed (encapsulated) transfer syntax? An unknown one counts as one."""
    try:
        return UID(ts).is_compressed
    except ValueError:
        return True


def may_hide_bits(ds) -> bool:
    """Native pixel data with unused bits above Bits Stored (8, 16 or 32 allocated)."""
    try:
        alloc, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    except Exception:
        return False
    return alloc in (8, 16, 32) and 0 < stored < alloc


def high_bits_set(value, ds, little: bool = True) -> bool:
    """Does native pixel data ``value`` (as stored) hold bits above Bits Stored other than the
    sign extension of signed data? (Red team 11: with --burned-in off a name written as ASCII in
    the high byte of 8-in-16-bit words was copied byte for byte.)"""
    alloc, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    dtype = np.dtype(f"u{alloc // 8}").newbyteorder("<" if little else ">")
    values = np.frombuffer(value, dtype=dtype, count=len(value) // dtype.itemsize)
    if int(ds.get("PixelRepresentation", 0) or 0) != 1:
        return bool((values >> stored).any())
    high = values >> (stored - 1)                 # the sign bit and every bit above it
    return bool(((high != 0) & (high != (1 << (alloc - stored + 1)) - 1)).any())


def _masked(arr: np.ndarray, ds) -> np.ndarray:
    """Decoded values without bits above Bits Stored (signed: sign-extended from Bits Stored)."""
    stored = int(ds.BitsStored)
    mask = (1 << stored) - 1
    v = arr.astype(np.int64) & mask
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        sign = 1 << (stored - 1)
        v = (v ^ sign) - sign
    return v.astype(arr.dtype)


def _precision(frame, ts: str) -> int | None:
    """The sample precision a JPEG / JPEG-LS frame's SOF (P) or a JPEG 2000 codestream's SIZ (the
    largest Ssiz + 1) declares; None when it is not found before the first scan."""
    n = len(frame)
    if ts in _T81:
        i = 2
        while i + 4 <= n and frame[i] == 0xFF:
            m = frame[i + 1]
            if 0xD0 <= m <= 0xD7 or m == 0x01:
                i += 2
                continue
            end = i + 2 + ((frame[i + 2] << 8) | frame[i + 3])
            if _is_sof(m, frame[i:end]):
                return frame[i + 4]
            if m == 0xDA:
                return None
            i = end
        return None
    if ts in _J2K and n >= 45 and bytes(frame[:4]) == b"\xff\x4f\xff\x51":
        c = (frame[40] << 8) | frame[41]
        if c and 42 + 3 * c <= n:
            return max((frame[42 + 3 * k] & 0x7F) + 1 for k in range(c))
    return None


def precision_exceeds(frames, ts: str, ds) -> bool:
    """Can a JPEG / JPEG-LS / JPEG 2000 frame of ``frames`` carry bits above Bits Stored (its
    codestream's precision is larger, or unknown)?"""
    if not may_hide_bits(ds) or ts not in _T81 | _J2K:
        return False
    stored = int(ds.BitsStored)
    return any((p := _precision(f, ts)) is None or p > stored for f in frames)


def codestream_hides_bits(ds, frames) -> bool:
    """Do the frames of a JPEG / JPEG-LS / JPEG 2000 image hold values with bits above Bits Stored
    (but a sign extension)? Red team 11: a JPEG-LS codestream of precision 15 in an image of 8 bits
    stored carried the name in every value's high byte; the JPEG decoders mask those bits (the image
    never shows them), the JPEG-LS / JPEG 2000 ones did not. Decoded raw only when a codestream's
    precision exceeds Bits Stored; a frame that cannot be decoded so counts as hiding them."""
    ts = str(ds.file_meta.TransferSyntaxUID)
    if not precision_exceeds(frames, ts, ds):
        return False
    try:
        raw = _pixel_array(ds, correct_unused_bits=False, apply_jls_sign_correction=False,
                           apply_j2k_sign_correction=False)
    except Exception:
        return True
    alloc, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    words = raw.astype(np.int64).view(np.uint64) & ((1 << alloc) - 1) if raw.dtype.kind == "i" else raw.astype(np.uint64)
    if int(ds.get("PixelRepresentation", 0) or 0) != 1:
        return bool((words >> stored).any())
    # signed: the sign bit and every bit above it, all clear or all set (as high_bits_set); from
    # Bits Stored up only, a positive value with every high bit set passed (review 13 S1)
    high = words >> (stored - 1)
    return bool(((high != 0) & (high != (1 << (alloc - stored + 1)) - 1)).any())


def strip_high_bits(ds) -> PixelOutcome:
    """--burned-in off, native pixel data: the pixels are not scanned, but bits above Bits Stored
    are no pixel (a reader of the raw words sees what they hold): they are cleared (sign-extended
    for signed data) as the scanning modes clear them. ``ds``: the complete ORIGINAL data set."""
    out = PixelOutcome()
    try:
        out.overlay_pixels = clear_high_bits(ds)
    except Exception as exc:
        raise PixelError(DECODE_FAILED) from exc
    if out.overlay_pixels:
        arr, out.photometric = _frames(ds)
        a = arr[..., 0] if arr.shape[-1] == 1 else arr
        out.arr = a[0] if a.shape[0] == 1 else a
    return out


def _pixel_array(ds, **opts) -> np.ndarray:
    """pydicom's pixel_array through the preferred decoder of the syntax (_PREFERRED), then
    pydicom's own choice where GDCM cannot take the syntax (native, RLE); where it can, the
    other installed plugins in pydicom's order, GDCM only when it is the one plugin there.
    Raises what the last decoder raised.

    GDCM last and never after another decoder refused the frame: on some malformed streams
    (a JFIF header whose version bytes are text) it abort()s the interpreter from an uncaught
    C++ exception, which no ``except`` catches -- a one-file or ``-j 1`` run would stop with
    no row written (red team 5). Every pydicom test file that GDCM decodes, another plugin
    decodes too."""
    from pydicom.pixels import get_decoder, pixel_array

    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    preferred = _PREFERRED.get(ts)
    try:
        plugins = list(get_decoder(ts).available_plugins)
    except Exception:          # no decoder for the syntax: pydicom says why below
        plugins = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if preferred in plugins:
            try:
                return pixel_array(ds, decoding_plugin=preferred, **opts)
            except Exception as exc:
                last: Exception | None = exc
        else:
            last = None
        if "gdcm" not in plugins or plugins == ["gdcm"]:
            return pixel_array(ds, **opts)  # pydicom's own choice (native data, RLE, GDCM alone)
        # pydicom's order without GDCM (Pillow before pylibjpeg: Pillow's libjpeg-turbo gives
        # GDCM's values on lossy JPEG, pylibjpeg's differ by one grey level here and there)
        for plugin in (p for p in plugins if p not in (preferred, "gdcm")):
            try:
                return pixel_array(ds, decoding_plugin=plugin, **opts)
            except Exception as exc:
                last = exc
        raise last if last is not None else ValueError("no decoder")


def _frames(ds, t81: list | None = None) -> tuple[np.ndarray, str]:
    """All frames as (F, R, C, S) stored values, and the photometric they are in. A JPEG or
    JPEG-LS frame whose header does not describe the image fails before any decoder sees it
    (dicomio.jpeg: GDCM can abort() the interpreter on one, pylibjpeg allocate gigabytes).
    ``t81``: a list that gets each JPEG frame as (stored bytes, ``_clean_t81`` of them or the
    exception it raised), in order, so that ``clean_frames`` need not walk the frames again."""
    from vindr_cli.dicomio.jpeg import MalformedJPEG, check_dataset

    clean = _clean_t81
    if t81 is not None:
        def clean(frame: bytes) -> bytes:
            try:
                c = _clean_t81(frame)
            except Exception as exc:
                t81.append((frame, exc))
                raise
            t81.append((frame, c))
            return c
    try:
        check_dataset(ds, clean=clean)     # the frame as written: bytes after its EOI dropped
    except MalformedJPEG as exc:
        raise PixelError(exc.reason) from None
    try:
        arr = _pixel_array(ds)
    except Exception as exc:   # any decoder failure: the file fails, the batch goes on
        raise PixelError(DECODE_FAILED) from exc
    if compressed(str(ds.file_meta.get("TransferSyntaxUID", ""))) and may_hide_bits(ds):
        arr = _masked(arr, ds)     # JPEG-LS / JPEG 2000 decoders leave bits above Bits Stored (red team 11)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames == 1:
        arr = arr[None]
    if spp == 1:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[0] != frames or arr.shape[-1] != spp:
        raise PixelError(UNSUPPORTED)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if spp == 3:
        photometric = "RGB"           # pydicom decodes YBR_* to RGB
    elif photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"):
        raise PixelError(UNSUPPORTED)
    return arr, photometric


def _palette_luminance(ds) -> np.ndarray:
    """Luminance of every palette index (PALETTE COLOR): what the finder sees, and which index
    is the darkest (the fill). A palette pydicom cannot apply makes the image unsupported."""
    from pydicom.pixels import apply_color_lut

    try:
        bits = int(ds.BitsStored)
        index = np.arange(2 ** min(bits, 16), dtype=np.uint16 if bits > 8 else np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rgb = apply_color_lut(index, ds).astype(np.float64)
    except Exception as exc:
        raise PixelError(UNSUPPORTED) from exc
    return rgb @ np.array([0.299, 0.587, 0.114])


def display(frame: np.ndarray, photometric: str) -> np.ndarray:
    """2-D uint8 image for the finder: min..max window, MONOCHROME1 inverted, colour as luminance.

    Integer samples of up to 16 bits go through a lookup table of the frame's lo..hi values
    (the same float64 formula as the general path below, evaluated once per value instead of
    once per pixel: the same bytes, tests/test_redact_speed.py)."""
    if frame.shape[-1] != 3 and frame.dtype.kind in "ui" and frame.dtype.itemsize <= 2:
        f = frame[..., 0]
        lo, hi = int(f.min()), int(f.max())
        if hi <= lo:
            out = np.zeros(f.shape, np.uint8)
            return 255 - out if photometric == "MONOCHROME1" else out
        lut = np.rint((np.arange(lo, hi + 1, dtype=np.float64) - lo) * (255.0 / (hi - lo))).astype(np.uint8)
        if photometric == "MONOCHROME1":
            lut = 255 - lut
        if f.dtype.kind == "i":          # signed: offset to unsigned without overflow
            unsigned = np.dtype(f.dtype.str.replace("i", "u"))   # same size and byte order
            bias = 1 << (8 * f.dtype.itemsize - 1)
            idx = f.view(unsigned) ^ unsigned.type(bias)       # v + bias, as unsigned
            lo += bias
        else:
            idx = f
        # the table indexed by the stored value itself (entries below lo never read), taken in
        # bands of rows: the gather's index buffer stays in cache (about half the CPU of one
        # lut[idx] over a 2k frame; the same bytes)
        full = np.zeros(hi + 1 + (bias if f.dtype.kind == "i" else 0), np.uint8)
        full[lo:] = lut
        out = np.empty(f.shape, np.uint8)
        for r in range(0, f.shape[0], 128):
            np.take(full, idx[r:r + 128], out=out[r:r + 128], mode="clip")
        return out
    f = frame.astype(np.float64)
    if f.shape[-1] == 3:
        f = f @ np.array([0.299, 0.587, 0.114])
    else:
        f = f[..., 0]
    lo, hi = float(f.min()), float(f.max())
    out = np.zeros(f.shape, np.uint8) if hi <= lo else np.rint((f - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return 255 - out if photometric == "MONOCHROME1" else out


def _palette_rgb(ds) -> np.ndarray | None:
    """The RGB colour of every palette index (the finder's colour views), None if it cannot be had."""
    from pydicom.pixels import apply_color_lut

    try:
        bits = int(ds.BitsStored)
        index = np.arange(2 ** min(bits, 16), dtype=np.uint16 if bits > 8 else np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(apply_color_lut(index, ds))
    except Exception:
        return None


def views(frame: np.ndarray, photometric: str, lum: np.ndarray | None = None,
          rgb_lut: np.ndarray | None = None) -> list[np.ndarray]:
    """What the finder is shown of one frame ((R, C, S) stored values): ``display`` first (for
    PALETTE COLOR the luminance of its colours, ``lum``); then, for colour that is not grey, each
    of R, G and B on its own (text in a colour of its background's luminance, red on grey or red
    on green, is invisible in luminance); then, for a grey integer frame whose min..max window
    is stretched by a few outlying values (a hot pixel, padding at the type's extreme: the values
    between the two extremes span less than a third of the range), a window over those values,
    clipped (the outliers, and text drawn at an extreme, saturate to black or white): what a
    viewer's window shows of text that min..max flattens into a few grey levels."""
    if lum is not None:
        idx = np.clip(frame.astype(np.int64), 0, len(lum) - 1)            # (R, C, 1)
        out = [display(lum[idx], "MONOCHROME2")]
        if rgb_lut is not None:
            rgb = rgb_lut[np.clip(idx[..., 0], 0, len(rgb_lut) - 1)]
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
                out += [display(rgb[..., c:c + 1], "MONOCHROME2") for c in range(3)]
        return out
    out = [display(frame, photometric)]
    if frame.shape[-1] == 3:
        if not (np.array_equal(frame[..., 0], frame[..., 1]) and np.array_equal(frame[..., 1], frame[..., 2])):
            out += [display(frame[..., c:c + 1], "MONOCHROME2") for c in range(3)]
        return out
    if frame.dtype.kind not in "ui":
        return out
    f = frame[..., 0]
    lo, hi = int(f.min()), int(f.max())
    step = max(1, int(np.sqrt(f.size / 250_000)))          # a sample of ~250k values is enough
    s = f[::step, ::step]
    inner = s[(s > lo) & (s < hi)]
    if inner.size == 0:
        return out
    plo, phi = (float(v) for v in np.percentile(inner, (0.5, 99.5)))     # a dead column is ~0.1 %
    if phi > plo and (phi - plo) * 3 < (hi - lo):
        v = np.rint(np.clip((f.astype(np.float64) - plo) * (255.0 / (phi - plo)), 0, 255)).astype(np.uint8)
        out.append(255 - v if photometric == "MONOCHROME1" else v)
    return out


def _fill(arr: np.ndarray, photometric: str):
    if photometric == "RGB":
        return 0
    return arr.max() if photometric == "MONOCHROME1" else arr.min()


_COARSE_MIN = 128          # a coarse view's long side is at least this many pixels


def coarse(image: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """The finder's view shrunk by block means, [(view, factor)] for the factor 2s where s is the
    finder's own working reduction (deid.pixeltext works on at most 1024 px a side): its stroke
    filter keeps strokes thinner than a few working pixels, so text taller than about 8 % of the
    image's long side (90 px on 1024, 180 px on 2048) was never a candidate; shrunk 2x further it
    is ordinary text up to about 15 % (measured: 90-150 px on 1024, 140-240 px on 2048; a 4s view
    as well cost a third more CPU for text larger still). None when the view's long side would
    be under _COARSE_MIN."""
    long = max(image.shape)
    s = max(1, -(-long // 1024))
    out = []
    for k in (2 * s,):
        if long // k < _COARSE_MIN:
            break
        out.append((_block_mean(image, k), k))
    return out


def _glyphs(crop: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The glyph-shaped strokes at an extreme of the display (>= 250 or <= 5: burned-in text
    is drawn at one, see ``display``) inside a coarse box: connected components of either
    polarity that do not touch the box's edge, at least 2/5 of its height, no wider than 1.3x
    their height, and strokes rather than solid (1/8 to 3/5 of their bounding box set). Boxes
    (y0, x0, y1, x1) in crop coordinates. Measured on the burned-in corpora (seeds 10, 11): of
    the 16 coarse boxes of text-free images that reached the gate, none held one (every extreme
    area there touches the box's edge: a collimator, a saturated background); large initials
    and IDs drawn white held one per glyph (bench/README.md, coarse gate)."""
    h, w = crop.shape
    return _strokes(crop, lambda y0, x0, y1, x1: not (y0 == 0 or x0 == 0 or y1 == h or x1 == w or (y1 - y0) * 5 < h * 2
                                                      or x1 - x0 > (y1 - y0) * 1.3))


def _strokes(img: np.ndarray, keep) -> list[tuple[int, int, int, int]]:
    """The connected components at an extreme of the display (>= 250, then <= 5: burned-in text
    is drawn at one) whose bounding box (y0, x0, y1, x1) ``keep`` accepts and that are strokes
    rather than solid (1/8 to 3/5 of that box set), in label order: what ``_glyphs`` and
    ``_row_extent`` look for, each with its own size test."""
    from scipy import ndimage

    out = []
    for mask in (img >= 250, img <= 5):
        if not mask.any():
            continue
        lab, _ = ndimage.label(mask)
        for i, sl in enumerate(ndimage.find_objects(lab), 1):
            if sl is None:
                continue
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            if keep(y0, x0, y1, x1) and 0.125 <= np.count_nonzero(lab[sl] == i) / ((y1 - y0) * (x1 - x0)) <= 0.6:
                out.append((y0, x0, y1, x1))
    return out


def _row(glyphs: list[tuple[int, int, int, int]]) -> bool:
    """Two glyphs of one line of text: heights within a quarter of each other, tops or bottoms
    within a quarter of the height."""
    for i, (a0, _, a1, _) in enumerate(glyphs):
        for b0, _, b1, _ in glyphs[i + 1:]:
            ha, hb = a1 - a0, b1 - b0
            if abs(ha - hb) * 4 <= max(ha, hb) and min(abs(a0 - b0), abs(a1 - b1)) * 4 <= max(ha, hb):
                return True
    return False


def _row_extent(image: np.ndarray, box: tuple[int, int, int, int], glyphs=None) -> tuple[int, int, int, int]:
    """A coarse box (x0, y0, x1, y1) that holds glyphs (``_glyphs``), grown along their row over
    the glyph-shaped strokes beside it: components at an extreme of the display inside the row's
    band (the glyphs' top and bottom, a quarter of their height more), 3/5 to 7/5 of their height,
    no wider than 1.3x tall, strokes rather than solid, each within one glyph height of the box
    so far. Red team 5: "NV 42" 180 px tall, the finder boxed the "4" alone in the coarse view.
    ``glyphs``: the box's ``_glyphs`` where the caller has them already."""
    x0, y0, x1, y1 = box
    if glyphs is None:
        glyphs = _glyphs(np.ascontiguousarray(image[max(0, y0):y1, max(0, x0):x1]))
    if not glyphs:
        return box
    gh = max(g[2] - g[0] for g in glyphs)
    b0 = max(0, y0 + min(g[0] for g in glyphs) - gh // 4)
    b1 = min(image.shape[0], y0 + max(g[2] for g in glyphs) + gh // 4)
    band = image[b0:b1]
    bh = band.shape[0]
    comps = [(cx0, cy0 + b0, cx1, cy1 + b0) for cy0, cx0, cy1, cx1 in _strokes(
        band, lambda y0, x0, y1, x1: not (y0 == 0 or y1 == bh or (y1 - y0) * 5 < gh * 3 or (y1 - y0) * 5 > gh * 7
                                          or x1 - x0 > (y1 - y0) * 1.3))]
    grown = True
    while grown:
        grown = False
        for c in comps:
            if c[0] <= x1 + gh and x0 - gh <= c[2] and not (x0 <= c[0] and c[2] <= x1 and y0 <= c[1] and c[3] <= y1):
                x0, y0, x1, y1 = min(x0, c[0]), min(y0, c[1]), max(x1, c[2]), max(y1, c[3])
                grown = True
    return x0, y0, x1, y1


def _block_mean(image: np.ndarray, k: int) -> np.ndarray:
    """The k x k block means of a uint8 image, rounded half to even: the bytes of
    ``np.rint(image[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3)))`` (an exact integer
    sum divided once: tests/test_redact_speed.py), as k x k strided adds of integers and an
    integer rounding -- about an eighth of the float mean's CPU on a 2k view (bench/README, issue 10)."""
    h, w = image.shape[0] // k * k, image.shape[1] // k * k
    kk = k * k
    acc = np.zeros((h // k, w // k), np.uint16 if kk * 255 < 65536 else np.uint32)
    for i in range(k):
        for j in range(k):
            acc += image[i:h:k, j:w:k]
    q, r = np.divmod(acc, acc.dtype.type(kk))
    # round half to even: up when the remainder is over half, or exactly half and q is odd
    q += (2 * r > kk) | ((2 * r == kk) & (q & 1 == 1))
    return q.astype(np.uint8)


def _large_text(image: np.ndarray, b, glyphs=None) -> bool:
    """Is a coarse view's box text? A header hint's match (name, id, date) is; so is a box where
    Tesseract reads at least 3 letters or digits (confidence >= the finder's), either polarity;
    and a box holding glyph-shaped strokes at an extreme of the display (``_glyphs``): two of
    one row, or one with at least 1 letter or digit read (red team 5: initials "NV" 110-140 px
    tall read as 2 characters, "NV 42" beside a marker as none confidently). Shrunk anatomy (a
    shoulder, a collimator edge) makes stroke-like shapes the finder calls unreadable text,
    which in a coarse view would mask large areas of text-free images: such a box counts only
    by one of those tests. The reading is counted, never kept. Without the engine every box
    is taken (safe by default). ``glyphs``: the box's ``_glyphs`` where the caller has them already."""
    import re

    from vindr_cli.deid import pixeltext

    if str(getattr(b, "kind", "other")) in ("name", "id", "date") or not pixeltext.engine_available():
        return True
    crop = np.ascontiguousarray(image[max(0, int(b.y0)):int(b.y1), max(0, int(b.x0)):int(b.x1)])
    if crop.size == 0:
        return False
    if glyphs is None:
        glyphs = _glyphs(crop)
    if _row(glyphs):
        return True
    least = 1 if glyphs else 3
    for c in (crop, 255 - crop):
        words = pixeltext._read(np.ascontiguousarray(c))
        if sum(len(re.sub(r"\W", "", t)) for t, conf, _ in words if conf >= pixeltext._CONF) >= least:
            return True
    return False


def _cut(box: tuple[int, int, int, int], holes, thin: int) -> list[tuple[int, int, int, int]]:
    """``box`` (x0, y0, x1, y1) less every hole: what is left as rectangles (above, below, left
    and right of each hole), each at least ``thin`` on its shorter side (a thinner sliver is the
    coarse view's rounding around the hole: no glyph of large text fits in it)."""
    parts = [box]
    for m0, n0, m1, n1 in holes:
        nxt = []
        for x0, y0, x1, y1 in parts:
            if not (x0 < m1 and m0 < x1 and y0 < n1 and n0 < y1):
                nxt.append((x0, y0, x1, y1))
                continue
            ya, yb = max(y0, n0), min(y1, n1)
            # left and right of the hole at the part's full height (not the hole's rows only): a
            # strip above or below thinner than ``thin`` is dropped, and its rows beside the
            # hole must stay masked by these (review: glyph tops left unmasked)
            nxt += [(x0, y0, x1, ya), (x0, yb, x1, y1), (x0, y0, max(x0, m0), y1), (min(x1, m1), y0, x1, y1)]
        parts = [p for p in nxt if min(p[2] - p[0], p[3] - p[1]) >= thin]
    return parts


def scan(ds, finder: Finder, hints=None, *, overlays: bool = True, large: bool = False,
         scale: bool = False) -> PixelOutcome:
    """Scan (and mask, in memory) the pixel data of ``ds``: a complete, ORIGINAL data set
    (the pixel data is modified in place when high overlay bits are cleared). Each frame is shown
    to ``finder`` in every one of its ``views`` and, with ``large`` (vindr anonymize with
    deid.pixeltext.find_text), in the ``coarse`` views too; boxes are mapped back to the frame.
    With ``scale`` the finder is also told each view's shrink factor (``scale=k``: 1, or the
    coarse view's k as ``coarse`` made it), so that it need not guess k from the shapes (vindr audit).
    Float and Double Float Pixel Data are refused (UNSUPPORTED). Raises PixelError."""
    out = PixelOutcome()
    if any(t in ds for t in FLOAT_PIXEL_TAGS):      # float pixels: not shown to the finder, never written unscanned
        raise PixelError(UNSUPPORTED)
    if "PixelData" not in ds:
        return out
    if overlays:      # declared high-bit overlays, and graphics in those bits that no 60xx group declares
        try:
            out.overlay_pixels = clear_high_bits(ds)
        except Exception as exc:
            raise PixelError(DECODE_FAILED) from exc
    t81: list = []                     # each JPEG frame's _clean_t81, for _drop_metadata's write
    arr, photometric = _frames(ds, t81)
    out.photometric = photometric
    lum = _palette_luminance(ds) if photometric == "PALETTE COLOR" else None
    n, rows, cols = arr.shape[0], arr.shape[1], arr.shape[2]
    found: list[Box] = []
    rgb_lut = _palette_rgb(ds) if lum is not None else None
    for i in range(n):
        boxes = []
        shown = [(img, 1) for img in views(arr[i], photometric, lum, rgb_lut)]
        if large:                      # the coarse views, for deid.pixeltext.find_text's size limit
            shown += coarse(shown[0][0])
        for v, (img, k) in enumerate(shown):
            told = {"scale": k} if scale else {}
            try:
                if k > 1:         # only boxes of text too large for the first view count below (>= 1/20
                    # of the long side); candidates under half that are not read (the whole large
                    # boxes stayed the same on corpus images; reading every one cost half a full scan)
                    boxes += [(v, k, b) for b in finder(img, frame=i, hints=hints, min_side=max(rows, cols) // (40 * k),
                                                        **told)]
                else:
                    boxes += [(v, k, b) for b in finder(img, frame=i, hints=hints, **told)]
            except Exception as exc:      # an unscanned image is never written by a scanning mode
                raise PixelError(FINDER_FAILED) from exc
        kept: list[tuple[int, int, int, int]] = []       # the first view's markers
        for v, k, b in boxes:
            if str(getattr(b, "kind", "other")) == "marker":
                out.markers += v == 0         # counted in the first view only
                if v == 0:
                    kept.append((b.x0, b.y0, b.x1, b.y1))
                continue
            try:
                x0, x1 = sorted((int(b.x0) * k, int(b.x1) * k))      # corners in either order
                y0, y1 = sorted((int(b.y0) * k, int(b.y1) * k))
            except (TypeError, ValueError, AttributeError) as exc:
                raise PixelError(FINDER_FAILED) from exc
            pieces = [(x0, y0, x1, y1)]
            if k > 1:        # a coarse view adds only text too large for the first, and only what reads as text;
                if min(x1 - x0, y1 - y0) * 20 < max(rows, cols):
                    continue
                view, cell = shown[v][0], (x0 // k, y0 // k, x1 // k, y1 // k)     # the box in the view
                glyphs = _glyphs(np.ascontiguousarray(view[max(0, cell[1]):cell[3], max(0, cell[0]):cell[2]]))
                if not _large_text(view, b, glyphs):       # (one walk for both: the same crop where both read one)
                    continue
                g = _row_extent(view, cell, glyphs)   # the rest of its row
                x0, x1 = min(x0, g[0] * k), max(x1, g[2] * k)
                y0, y1 = min(y0, g[1] * k), max(y1, g[3] * k)
                # a kept marker is cut out of the box, the rest redacted (red team 5: dropping the box
                # whole let a marker beside large text shelter it)
                pieces = _cut((x0, y0, x1, y1), [(m0 - PAD, n0 - PAD, m1 + PAD, n1 + PAD) for m0, n0, m1, n1 in kept], 2 * k)
            kind = str(getattr(b, "kind", "other"))
            new = False
            for x0, y0, x1, y1 in pieces:
                x0, y0, x1, y1 = x0 - PAD, y0 - PAD, x1 + PAD, y1 + PAD
                x0, y0, x1, y1 = max(0, x0), max(0, y0), min(cols, x1), min(rows, y1)
                new = new or v == 0 or not any(f == i and f0 <= x0 and g0 <= y0 and x1 <= f1 and y1 <= g1
                                               for f, f0, g0, f1, g1 in found)    # another view's sighting: counted once
                if x1 > x0 and y1 > y0:
                    found.append((i, x0, y0, x1, y1))
            if new:
                out.kinds[kind if kind in ("name", "id", "date", "other") else "other"] += 1
    out.boxes = sorted(set(found))
    if out.boxes:
        arr = np.array(arr, copy=True)
        value = int(np.argmin(lum)) if lum is not None else _fill(arr, photometric)   # the darkest colour's index
        for _, x0, y0, x1, y1 in out.boxes:
            arr[:, y0:y1, x0:x1, :] = value          # every frame
    if out.boxes or out.overlay_pixels:
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
        out.arr = arr[0] if arr.shape[0] == 1 else arr
    elif UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        _drop_metadata(ds, out, arr, t81)
    return out


# Metadata inside compressed frames (red team 4): a JPEG COM or APPn segment, a JPEG 2000 COM
# marker segment, bytes after the end-of-image marker. A frame's pixels are unchanged without
# them; a byte-for-byte copy would carry them. JFIF without a thumbnail and Adobe's colour
# transform flag are kept (decoders read them; they hold no text).
_T81 = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
_J2K = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
_RLE = "1.2.840.10008.1.2.5"
FRAME_SYNTAXES = frozenset(_T81 | _J2K | {_RLE})      # whose frames can hold metadata (strip_frames)


class _Unsure(Exception):
    """A codestream this reader cannot walk: its frames are decoded and written again."""


def _harmless_app(seg: bytes) -> bool:
    """JFIF without a thumbnail; Adobe's APP14 (version, flags, colour transform); in either,
    the numbers after the signature spell nothing: at most 2 bytes that are ASCII letters or
    digits, never 2 in a row (red team 5: their 7 free bytes held "NGUYEN "; 72 dpi, 'H' twice,
    and Adobe's version 100, 'd', still pass)."""
    m = seg[1]
    if m == 0xE0 and len(seg) == 18 and seg[4:9] == b"JFIF\0" and seg[16:18] == b"\0\0":
        free = seg[9:16]
    elif m == 0xEE and len(seg) in (14, 16) and seg[4:9] == b"Adobe":
        free = seg[9:]
    else:
        return False
    alnum = [chr(b).isascii() and chr(b).isalnum() for b in free]
    return sum(alnum) <= 2 and not any(a and b for a, b in zip(alnum, alnum[1:]))


@cache
def _banners() -> tuple[re.Pattern, ...]:
    import tomllib

    from vindr_cli.resources import schema_path

    data = tomllib.loads(schema_path("deid", "codestream_comments.toml").read_text(encoding="utf-8"))
    return tuple(re.compile(p) for p in data["patterns"])


def _banner(text: bytes) -> bool:
    """Is a comment's text an encoder banner of schemas/deid/codestream_comments.toml?"""
    s = text.rstrip(b"\0").decode("latin-1")
    return any(p.fullmatch(s) for p in _banners())


def _clean_t81(frame: bytes) -> bytes:
    """The JPEG (ITU T.81 / T.87) codestream without COM, APPn (but harmless ones) and trailing
    bytes; raises _Unsure when one sits after the first scan starts or the stream is not walkable."""
    if not frame.startswith(b"\xff\xd8"):
        raise _Unsure
    out, i, scanning, n = bytearray(b"\xff\xd8"), 2, False, len(frame)
    while True:
        if scanning:            # entropy-coded data: a marker is FF then C0..FE, not RSTn
            j = frame.find(b"\xff", i)
            while j != -1 and j + 1 < n and not (0xC0 <= frame[j + 1] <= 0xFE and not 0xD0 <= frame[j + 1] <= 0xD7):
                j = frame.find(b"\xff", j + 1)
            if j == -1 or j + 1 >= n:
                raise _Unsure
            out += frame[i:j]
            i = j
        if i + 2 > n or frame[i] != 0xFF:
            raise _Unsure
        m = frame[i + 1]
        if m == 0xD9:                                   # end of image: what follows is dropped
            return _drop_unused_tables(bytes(out + b"\xff\xd9"))
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            out += frame[i:i + 2]
            i += 2
            continue
        if i + 4 > n:
            raise _Unsure
        seg = frame[i:i + 2 + int.from_bytes(frame[i + 2:i + 4], "big")]
        if (m == 0xFE and not _banner(seg[4:])) or (0xE0 <= m <= 0xEF and not _harmless_app(seg)):
            if scanning:
                raise _Unsure
        else:
            out += seg
        i += len(seg)
        scanning = scanning or m == 0xDA


_LOSSLESS_SOF = {0xC3, 0xC7, 0xCB, 0xCF}
_PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}


def _table_entries(m: int, seg: bytes) -> list[tuple[tuple, bytes]]:
    """The tables of a DQT (("q", id), entry) or DHT (("h", class, id), entry) segment."""
    body, out, p = seg[4:], [], 0
    while p < len(body):
        if m == 0xDB:
            key, size = ("q", body[p] & 0x0F), 1 + 64 * (1 + (body[p] >> 4))
        else:
            key, size = ("h", body[p] >> 4, body[p] & 0x0F), 17 + sum(body[p + 1:p + 17])
        if p + size > len(body) or (m == 0xC4 and p + 17 > len(body)):
            raise _Unsure
        out.append((key, body[p:p + size]))
        p += size
    return out


def _is_sof(m: int, seg) -> bool:
    """A start-of-frame segment (SOF0-15 but DHT, JPG, DAC; F7: JPEG-LS) long enough to read."""
    return (0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC) or m == 0xF7) and len(seg) >= 10


def _sof_tables(seg) -> dict[int, int]:
    """component -> its quantization table, from a SOF segment."""
    return {seg[10 + 3 * k]: seg[12 + 3 * k] for k in range(seg[9]) if 12 + 3 * k < len(seg)}


def _scan_tables(seg, sof: int, tq: dict[int, int]) -> list[tuple] | None:
    """The table keys a scan (SOS ``seg``, of frame type ``sof``) uses: its components'
    quantization tables and, in a Huffman process, DC tables (all but progressive AC scans) and
    AC tables (neither lossless nor progressive DC scans); None when a component entry is cut."""
    ns = seg[4]
    ss = seg[5 + 2 * ns] if 5 + 2 * ns < len(seg) else 0
    huffman = sof < 0xC8
    used: list[tuple] = []
    for k in range(ns):
        if 6 + 2 * k >= len(seg):
            return None
        comp, tables = seg[5 + 2 * k], seg[6 + 2 * k]
        if not (sof in _LOSSLESS_SOF or sof == 0xF7):
            used.append(("q", tq.get(comp, -1)))
        if huffman and not (sof in _PROGRESSIVE_SOF and ss > 0):
            used.append(("h", 0, tables >> 4))
        if huffman and sof not in _LOSSLESS_SOF and not (sof in _PROGRESSIVE_SOF and ss == 0):
            used.append(("h", 1, tables & 0x0F))
    return used


def _drop_unused_tables(stream: bytes) -> bytes:
    """``stream`` (already without COM/APPn, ending at its EOI) without the quantization and
    Huffman tables no scan uses: a table defined and never used (or defined again before a scan
    used it) holds 64 to 272 free bytes that no decoder reads (red team 7: "NGUYEN THI HUONG" as
    the entries of a DQT for table 3, or the symbols of a DHT for AC table 3). A scan uses the
    quantization tables of its components (SOF) and, in a Huffman process, the DC tables (all
    but progressive AC scans) and AC tables (neither lossless nor progressive DC scans) it names."""
    pieces: list = []                   # bytes, or [marker, [(key, entry, used)]] of a DQT/DHT
    pending: dict[tuple, list] = {}     # key -> [used] of the table now defined for it
    tq: dict[int, int] = {}             # component -> its quantization table (SOF)
    sof, i, n, scanning = 0, 2, len(stream), False
    pieces.append(stream[:2])
    while True:
        if scanning:
            j = stream.find(b"\xff", i)
            while j != -1 and j + 1 < n and not (0xC0 <= stream[j + 1] <= 0xFE and not 0xD0 <= stream[j + 1] <= 0xD7):
                j = stream.find(b"\xff", j + 1)
            if j == -1 or j + 1 >= n:
                raise _Unsure
            pieces.append(stream[i:j])
            i = j
        m = stream[i + 1]
        if m == 0xD9:
            pieces.append(stream[i:i + 2])
            break
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            pieces.append(stream[i:i + 2])
            i += 2
            continue
        seg = stream[i:i + 2 + int.from_bytes(stream[i + 2:i + 4], "big")]
        if len(seg) < 4:
            raise _Unsure
        if m in (0xDB, 0xC4):
            entries = []
            for key, entry in _table_entries(m, seg):
                flag = [False]
                pending[key] = flag
                entries.append((key, entry, flag))
            pieces.append([m, entries])
        else:
            if _is_sof(m, seg):
                sof, tq = m, _sof_tables(seg)
            elif m == 0xDA and len(seg) >= 5:
                used = _scan_tables(seg, sof, tq)
                if used is None:
                    raise _Unsure
                for key in used:
                    if key in pending:
                        pending[key][0] = True
            pieces.append(seg)
        i += len(seg)
        scanning = scanning or m == 0xDA
    out = bytearray()
    for piece in pieces:
        if isinstance(piece, list):
            body = b"".join(entry for _, entry, flag in piece[1] if flag[0])
            if body:
                out += bytes([0xFF, piece[0]]) + (len(body) + 2).to_bytes(2, "big") + body
        else:
            out += piece
    return bytes(out)


# JPEG 2000 marker segments kept in a main header (ITU-T T.800 A.2 / Table A.2): SIZ, COD, COC,
# QCD, QCC, RGN, POC, PPM, and Part 2 / HTJ2K's CAP and CPF; in a tile-part header COD, COC, QCD,
# QCC, RGN, POC, PPT. Pointer markers (TLM, PLM, PLT: lengths a decoder may skip), CRG and unknown
# segments are dropped: their bytes are free, and OpenJPEG decodes the same pixels without them
# (red team 7: "NGUYEN THI HUONG" in an FF30, FF6E, TLM, PLM or PLT segment was copied).
_J2K_MAIN = frozenset({0x51, 0x52, 0x53, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x50, 0x59})
_J2K_TILE = frozenset({0x52, 0x53, 0x5C, 0x5D, 0x5E, 0x5F, 0x61})


def _j2k_keep(frame: bytes, i: int, kept: frozenset) -> tuple[bytes, bytes]:
    """(the segment at ``i``, what of it is written: itself, or b"" when it is dropped)."""
    seg = frame[i:i + 2 + int.from_bytes(frame[i + 2:i + 4], "big")]
    if frame[i] != 0xFF or len(seg) < 4:
        raise _Unsure
    m = frame[i + 1]
    return seg, seg if m in kept or (m == 0x64 and _banner(seg[6:])) else b""


def _clean_j2k(frame: bytes) -> bytes:
    """The JPEG 2000 codestream with only the marker segments of _J2K_MAIN / _J2K_TILE (and
    encoder banners) in its headers, and nothing after its end; raises _Unsure for a JP2
    wrapper or a stream not walkable."""
    if not frame.startswith(b"\xff\x4f"):
        raise _Unsure
    out, i, n = bytearray(b"\xff\x4f"), 2, len(frame)
    while i + 4 <= n and frame[i:i + 2] != b"\xff\x90":          # main header, up to the first SOT
        seg, keep = _j2k_keep(frame, i, _J2K_MAIN)
        out += keep
        i += len(seg)
    while i + 12 <= n and frame[i:i + 2] == b"\xff\x90":         # tile-parts
        psot = int.from_bytes(frame[i + 6:i + 10], "big")
        header, j = bytearray(), i + 12
        while j + 4 <= n and frame[j:j + 2] != b"\xff\x93":       # its header, up to SOD
            seg, keep = _j2k_keep(frame, j, _J2K_TILE)
            header += keep
            j += len(seg)
        end = n if psot == 0 else i + psot
        if end > n or j + 2 > end:
            raise _Unsure
        sot = bytearray(frame[i:i + 12])
        if psot:
            sot[6:10] = (12 + len(header) + end - j).to_bytes(4, "big")
        out += sot + header + frame[j:end]
        i = end
        if psot == 0:
            return bytes(out)
    if frame[i:i + 2] != b"\xff\xd9":
        raise _Unsure
    return bytes(out + b"\xff\xd9")


def _rle_segment(seg: bytes, need: int) -> bytes:
    """The packets of one RLE segment (PS3.5 G.3, PackBits) that make its ``need`` bytes, without
    no-op packets (header 128) and without what follows them but one zero byte (the pad of an odd
    segment: real files have both, rtdose_rle.dcm odd segments without it); raises _Unsure when the segment is short of ``need`` bytes or its last packet runs past
    them (the extra bytes of a literal run are free to hold text)."""
    out, pos, made, n = bytearray(), 0, 0, len(seg)
    while made < need:
        if pos >= n:
            raise _Unsure
        h = seg[pos]
        if h < 128:                     # literal: the next h + 1 bytes
            end = pos + 2 + h
            if end > n:
                raise _Unsure
            made += h + 1
        elif h > 128:                   # replicate: the next byte 257 - h times
            end = pos + 2
            if end > n:
                raise _Unsure
            made += 257 - h
        else:                           # no-op
            pos += 1
            continue
        out += seg[pos:end]
        pos = end
    if made != need:
        raise _Unsure
    if seg[pos:pos + 2] == b"\0":
        out += b"\0"
    return bytes(out)


def _clean_rle(frame: bytes, rows: int, cols: int, segments: int) -> bytes:
    """The RLE frame (PS3.5 G.5) with a header of its own segments' offsets (unused offsets zero:
    red team 11 wrote a name there) and each segment cut to the packets that make its bytes (the
    decoder stops at Rows x Columns bytes: anything after them in a segment, or after the last
    one, is never read and was copied); raises _Unsure when it cannot be walked."""
    if len(frame) < 64:
        raise _Unsure
    head = struct.unpack("<16I", frame[:64])
    n = head[0]
    if n != segments or not 1 <= n <= 15:
        raise _Unsure
    offsets = [*head[1:1 + n], len(frame)]
    if offsets[0] != 64 or any(a > b for a, b in zip(offsets, offsets[1:])):
        raise _Unsure
    parts = [_rle_segment(frame[a:b], rows * cols) for a, b in zip(offsets, offsets[1:])]
    table, pos = [n], 64
    for part in parts:
        table.append(pos)
        pos += len(part)
    return struct.pack("<16I", *table, *[0] * (15 - n)) + b"".join(parts)


def _rle_expand(packets: bytes) -> bytes:
    """The bytes a segment's packets (as ``_rle_segment`` returns them) make."""
    out, pos, n = bytearray(), 0, len(packets)
    while pos < n:
        h = packets[pos]
        if h < 128:
            out += packets[pos + 1:pos + 2 + h]
            pos += 2 + h
        elif h > 128:
            out += packets[pos + 1:pos + 2] * (257 - h)
            pos += 2
        else:
            pos += 1
    return bytes(out)


def _rle_hides_bits(frame: bytes, ds, pixels: int) -> bool:
    """Does a clean RLE frame (``_clean_rle``'s) hold bits above Bits Stored (not a sign
    extension)? The decoders mask them, so the image never shows them, but its segments carry them
    (red team 11: the name in the high byte of 8-in-16-bit words, as literal runs)."""
    n = struct.unpack("<I", frame[:4])[0]
    offsets = [*struct.unpack(f"<{n}I", frame[4:4 + 4 * n]), len(frame)]
    planes = [np.frombuffer(_rle_expand(frame[a:b]), np.uint8)[:pixels] for a, b in zip(offsets, offsets[1:])]
    k = int(ds.BitsAllocated) // 8
    for s in range(n // k):                 # per sample: its bytes' segments, most significant first
        values = np.zeros(pixels, np.uint32)
        for j in range(k):
            values = (values << 8) | planes[s * k + j]
        if high_bits_set(values.astype(f"<u{k}").tobytes(), ds):
            return True
    return False


def _rle_shape(ds) -> tuple[int, int, int]:
    """(rows, columns, segments per frame) of RLE pixel data; raises _Unsure when unreadable."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        alloc, spp = int(ds.BitsAllocated), int(ds.get("SamplesPerPixel", 1) or 1)
    except Exception as exc:
        raise _Unsure from exc
    if alloc % 8 or rows < 1 or cols < 1:
        raise _Unsure
    return rows, cols, spp * alloc // 8


# ---- the fast answer to "would clean_frames change anything?" (issue 13, stripfast) ----
# The walks above build new bytes for every frame (several copies of a 4 MB codestream: page
# faults, bench/README.md "anonenc"). Most frames have nothing to remove, so the same walks are
# first done over a memoryview of the value, copying nothing: True only when every frame would
# come out of _clean_t81 / _clean_j2k (and _drop_unused_tables) as it went in, up to its end, with
# only 00/FF padding after it; anything else (something to drop, a walk that would raise, a
# fragment layout other than one fragment per frame) is False, and the walks above decide as
# before. So clean_frames' answer is the same either way (tests/test_strip_fast.py).

# a marker inside entropy-coded data: FF then C0..FE, not RSTn (_clean_t81's search, in C)
_T81_MARKER = re.compile(rb"\xff[\xc0-\xcf\xd8-\xfe]")


def _padding(tail: memoryview) -> bool:
    """Nothing but 00 / FF bytes (room for no text) in ``tail``."""
    return not len(tail) or not bytes(tail).strip(b"\0\xff")


def _t81_same(b: memoryview) -> bool:
    """Would ``_clean_t81`` (then ``_drop_unused_tables``) return ``b`` up to its EOI, with only
    padding after it? Walks as they do; builds nothing."""
    n = len(b)
    if n < 2 or b[0] != 0xFF or b[1] != 0xD8:
        return False
    i, scanning, sof = 2, False, 0
    flags: list = []                    # every table entry defined: [used]
    pending: dict[tuple, list] = {}     # key -> [used] of the table now defined for it
    tq: dict[int, int] = {}
    while True:
        if scanning:
            found = _T81_MARKER.search(b, i)
            if found is None:
                return False
            i = found.start()
        if i + 2 > n or b[i] != 0xFF:
            return False
        m = b[i + 1]
        if m == 0xD9:
            return all(f[0] for f in flags) and _padding(b[i + 2:])
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            i += 2
            continue
        if i + 4 > n:
            return False
        end = i + 2 + ((b[i + 2] << 8) | b[i + 3])
        if end - i < 4 or end > n:
            return False
        seg = b[i:end]
        if m == 0xFE or 0xE0 <= m <= 0xEF:
            whole = bytes(seg)
            if not (_banner(whole[4:]) if m == 0xFE else _harmless_app(whole)):
                return False            # dropped (or, in a scan, _Unsure): the walks above decide
        elif m in (0xDB, 0xC4):
            try:
                entries = _table_entries(m, seg)
            except _Unsure:
                return False
            for key, _ in entries:
                flag = [False]
                pending[key] = flag
                flags.append(flag)
        elif _is_sof(m, seg):
            sof, tq = m, _sof_tables(seg)
        elif m == 0xDA and len(seg) >= 5:
            used = _scan_tables(seg, sof, tq)
            if used is None:
                return False
            for key in used:
                if key in pending:
                    pending[key][0] = True
        i = end
        scanning = scanning or m == 0xDA


def _j2k_kept(b: memoryview, i: int, kept: frozenset) -> int:
    """The end of the marker segment at ``i`` when ``_j2k_keep`` would keep it whole; 0 when it
    would drop it or raise, or when it runs past the end (the walk then fails)."""
    n = len(b)
    end = i + 2 + ((b[i + 2] << 8) | b[i + 3])
    if b[i] != 0xFF or end - i < 4 or end > n:
        return 0
    m = b[i + 1]
    return end if m in kept or (m == 0x64 and _banner(bytes(b[i + 6:end]))) else 0


def _j2k_same(b: memoryview) -> bool:
    """Would ``_clean_j2k`` return ``b`` up to its end, with only padding after it? Builds nothing."""
    n = len(b)
    if n < 2 or b[0] != 0xFF or b[1] != 0x4F:
        return False
    i = 2
    while i + 4 <= n and not (b[i] == 0xFF and b[i + 1] == 0x90):
        i = _j2k_kept(b, i, _J2K_MAIN)
        if not i:
            return False
    while i + 12 <= n and b[i] == 0xFF and b[i + 1] == 0x90:
        psot = int.from_bytes(b[i + 6:i + 10], "big")
        j = i + 12
        while j + 4 <= n and not (b[j] == 0xFF and b[j + 1] == 0x93):
            j = _j2k_kept(b, j, _J2K_TILE)
            if not j:
                return False
        end = n if psot == 0 else i + psot
        if end > n or j + 2 > end:
            return False
        i = end
        if psot == 0:
            return True
    return i + 2 <= n and b[i] == 0xFF and b[i + 1] == 0xD9 and _padding(b[i + 2:])


def _one_per_frame(value: memoryview, frames: int) -> list[memoryview] | None:
    """The frames of encapsulated ``value`` (Pixel Data as pydicom holds it: the offset table
    item, then the fragment items, perhaps the delimiter) as views, when pydicom's
    ``generate_frames`` would make each fragment one frame: as many fragments as frames, and an
    empty offset table or one that points at each fragment. None otherwise (or when the items do
    not walk to the end cleanly)."""
    n = len(value)
    if n < 8 or value[:4] != b"\xfe\xff\x00\xe0":
        return None
    bot = int.from_bytes(value[4:8], "little")
    if bot % 4 or 8 + bot > n:
        return None
    offsets = [int.from_bytes(value[8 + 4 * k:12 + 4 * k], "little") for k in range(bot // 4)]
    out, starts, pos, first = [], [], 8 + bot, 8 + bot
    while pos < n:
        if pos + 8 > n:
            return None
        tag = value[pos:pos + 4]
        if tag == b"\xfe\xff\xdd\xe0":
            break
        length = int.from_bytes(value[pos + 4:pos + 8], "little")
        if tag != b"\xfe\xff\x00\xe0" or length == 0xFFFFFFFF or pos + 8 + length > n:
            return None
        starts.append(pos - first)
        out.append(value[pos + 8:pos + 8 + length])
        pos += 8 + length
    if len(out) != frames or (offsets and offsets != starts):
        return None
    return out


def frames_unchanged(value, ts: str, frames: int, ds=None) -> bool:
    """True when ``clean_frames`` of a data set with this Pixel Data ``value``, transfer syntax
    ``ts`` and Number of Frames ``frames`` would return None (nothing to remove), found without
    building any bytes; False when it might not (``clean_frames`` then decides). With ``ds`` (its
    header), also False when a frame's precision exceeds Bits Stored (``codestream_hides_bits``)."""
    same = _t81_same if ts in _T81 else _j2k_same if ts in _J2K else None
    if same is None or not value:
        return False
    parts = _one_per_frame(memoryview(value), frames)
    return (parts is not None and all(same(f) for f in parts) and _offset_table_ok(value, frames)
            and not (ds is not None and precision_exceeds(parts, ts, ds)))


def clean_frames(ds, t81: list | None = None) -> list[bytes] | None:
    """The frames of encapsulated JPEG / JPEG 2000 / RLE pixel data without their metadata (see
    above): None when nothing was there to remove (the byte-for-byte copy is safe); raises
    _Unsure when a frame cannot be walked. Other syntaxes: None. ``t81``: what ``_frames`` filled
    for this Pixel Data (its header check walked each JPEG frame already): used, not walked again."""
    from pydicom.encaps import generate_frames

    ts = str(ds.file_meta.TransferSyntaxUID)
    if ts not in FRAME_SYNTAXES:
        return None
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if ts == _RLE:
        rows, cols, segments = _rle_shape(ds)
        try:
            frames = list(generate_frames(ds.PixelData, number_of_frames=n))
        except Exception as exc:
            raise _Unsure from exc
        clean = [_clean_rle(f, rows, cols, segments) for f in frames]
        if may_hide_bits(ds) and any(_rle_hides_bits(c, ds, rows * cols) for c in clean):
            raise _Unsure          # decoded (those bits masked) and written again
    elif frames_unchanged(ds.PixelData, ts, n, ds):
        return None                # nothing to remove, found without copying a frame
    elif ts in _T81 and t81 and len(t81) == n:
        frames = [f for f, _ in t81]
        for _, c in t81:
            if isinstance(c, BaseException):
                raise c
        clean = [c for _, c in t81]
    else:
        try:
            frames = list(generate_frames(ds.PixelData, number_of_frames=n))
        except Exception as exc:
            raise _Unsure from exc
        clean = [(_clean_t81 if ts in _T81 else _clean_j2k)(f) for f in frames]
    if codestream_hides_bits(ds, clean):
        raise _Unsure              # decoded (those bits masked, _frames) and written again
    # unchanged: the same bytes but padding after the end (0x00 or 0xFF: no room for text there),
    # and a Basic Offset Table that is one (a table of anything else can hold text: "NGUYEN  ")
    same = all(b.startswith(a) and not b[len(a):].strip(b"\0\xff") for a, b in zip(clean, frames))
    return None if same and _offset_table_ok(bytes(ds.PixelData), n) else clean


def _offset_table_ok(data: bytes, frames: int) -> bool:
    """Is the Basic Offset Table empty, or ``frames`` increasing offsets of fragments from 0?"""
    if len(data) < 8 or data[:4] != b"\xfe\xff\x00\xe0":
        return False
    n = int.from_bytes(data[4:8], "little")
    if n == 0:
        return True
    if n != 4 * frames or len(data) < 8 + n:
        return False
    table = [int.from_bytes(data[8 + 4 * k:12 + 4 * k], "little") for k in range(frames)]
    starts, pos = set(), 8 + n
    while pos + 8 <= len(data) and data[pos:pos + 4] == b"\xfe\xff\x00\xe0":
        starts.add(pos - 8 - n)
        pos += 8 + int.from_bytes(data[pos + 4:pos + 8], "little")
    return table[0] == 0 and all(a < b for a, b in zip(table, table[1:])) and set(table) <= starts


def strip_frames(ds) -> PixelOutcome:
    """--burned-in off: the pixels are not scanned, but what a JPEG / JPEG 2000 / RLE frame holds
    besides them is no pixel (a COM segment, bytes after its end, a table no scan uses): it is
    removed as in the other modes, checked to decode to the same values (red team 7: the name
    in a COM segment was written with --burned-in off). A frame with nothing to remove is not
    decoded. ``ds``: the complete ORIGINAL data set. Raises PixelError."""
    out = PixelOutcome()
    if str(ds.file_meta.get("TransferSyntaxUID", "")) not in FRAME_SYNTAXES or "PixelData" not in ds:
        return out
    try:
        if clean_frames(ds) is None:
            return out
    except _Unsure:
        pass                       # a stream that cannot be walked: its decoded values written again
    t81: list = []                 # the header check's walk of each JPEG frame, reused for the write
    arr, out.photometric = _frames(ds, t81)
    _drop_metadata(ds, out, arr, t81)
    return out


def _drop_metadata(ds, out: PixelOutcome, arr: np.ndarray, t81: list | None = None) -> None:
    """An image the scan leaves unchanged, in a JPEG or JPEG 2000 syntax: its frames without
    their metadata (``clean_frames``) when they decode to the same values, else (a stream that
    cannot be walked, or that decodes otherwise) its decoded values written again."""
    from pydicom.encaps import encapsulate

    try:
        clean = clean_frames(ds, t81)
        if clean is None:
            return
        saved = ds.PixelData
        try:
            ds.PixelData = encapsulate(clean)
            same = np.array_equal(_frames(ds)[0], arr)
        finally:
            ds.PixelData = saved
    except (_Unsure, PixelError):
        clean, same = None, False
    if same:
        out.frames = clean
        return
    a = arr[..., 0] if arr.shape[-1] == 1 else arr
    out.arr = a[0] if a.shape[0] == 1 else a


def _lossy(ts: str) -> bool:
    t = UID(ts)
    return t.is_compressed and str(t) not in LOSSLESS


def _native(ds, arr: np.ndarray, photometric: str) -> None:
    """Native pixel data: little endian (a big endian input stays big endian: pydicom swaps OW
    values when a data set read big endian is written little endian), colour interleaved."""
    meta = ds.file_meta
    ts = UID(meta.TransferSyntaxUID)
    if ts.is_compressed:
        meta.TransferSyntaxUID = ts = ExplicitVRLittleEndian
    alloc = int(ds.BitsAllocated)
    try:
        if alloc == 1:
            from pydicom.pixels import pack_bits

            data = pack_bits(arr)
        else:
            if arr.dtype.itemsize * 8 != alloc:
                raise PixelError(ENCODE_FAILED)
            order = "<" if ts.is_little_endian else ">"
            data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder(order)).tobytes()
    except PixelError:
        raise
    except Exception as exc:
        raise PixelError(ENCODE_FAILED) from exc
    if len(data) % 2:
        data += b"\0"
    for kw in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if kw in ds:
            del ds[kw]
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if alloc <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    if photometric == "RGB":
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0


def apply(ds, outcome: PixelOutcome, input_ts: str) -> None:
    """Put the outcome's pixel values into ``ds`` (the de-identified data set about to be
    written): same lossless syntax when it can be encoded, else uncompressed. Raises PixelError."""
    arr = outcome.arr
    if arr is None and outcome.frames is not None:     # same pixels, same syntax, no metadata
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate(outcome.frames)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        return
    if arr is None:
        return
    frames = ds.get("NumberOfFrames")
    lossy = _lossy(input_ts)
    if outcome.photometric == "RGB" and str(ds.get("PhotometricInterpretation", "")).strip().upper() != "RGB":
        ds.PhotometricInterpretation = "RGB"
    done = False
    if UID(input_ts) in SAME_SYNTAX:
        saved = {kw: ds[kw].value for kw in ("PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames",
                                             "LossyImageCompression") if kw in ds}
        ts = ds.file_meta.TransferSyntaxUID
        try:
            if outcome.photometric == "RGB" and str(input_ts) == "1.2.840.10008.1.2.4.90":
                ds.PhotometricInterpretation = "YBR_RCT"    # colour JPEG 2000 lossless: the RCT (PS3.5 8.2.4;
                                                          # US and others allow only YBR_RCT there)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.compress(input_ts, arr, generate_instance_uid=False)
                done = np.array_equal(_pixel_array(ds), arr)   # the encoder's output decodes to the masked values
        except Exception:
            done = False                 # no encoder for this layout: written uncompressed below
        if not done:
            ds.file_meta.TransferSyntaxUID = ts
            for kw, value in saved.items():
                setattr(ds, kw, value)
    if not done:
        _native(ds, arr, outcome.photometric)
    if frames is not None and "NumberOfFrames" not in ds:
        ds.NumberOfFrames = frames
    if lossy:
        ds.LossyImageCompression = "01"
    if outcome.boxes:
        ds.BurnedInAnnotation = "NO"


def add_boxes(ds, auto: PixelOutcome | None, boxes: list[Box]) -> PixelOutcome:
    """Mask ``boxes`` (drawn by a person in vindr review: [frame, x0, y0, x1, y1], x1/y1
    exclusive) on top of the automatic outcome ``auto`` (its masked values when it changed
    any, else the decoded frames of ``ds``, the complete ORIGINAL data set): the same fill rule
    as the automatic boxes, in EVERY frame, no padding (the box is what the person drew).
    The result keeps the automatic boxes and adds these. Raises PixelError."""
    if auto is not None and auto.arr is not None:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        photometric = auto.photometric
        try:
            arr = np.array(auto.arr, copy=True).reshape(frames, int(ds.Rows), int(ds.Columns), spp)
        except Exception as exc:
            raise PixelError(UNSUPPORTED) from exc
    else:
        arr, photometric = _frames(ds)
        arr = np.array(arr, copy=True)
    lum = _palette_luminance(ds) if photometric == "PALETTE COLOR" else None
    value = int(np.argmin(lum)) if lum is not None else _fill(arr, photometric)
    rows, cols = arr.shape[1], arr.shape[2]
    drawn: list[Box] = []
    for f, x0, y0, x1, y1 in boxes:
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(cols, x1), min(rows, y1)
        if x1 > x0 and y1 > y0:
            arr[:, y0:y1, x0:x1, :] = value          # every frame
            drawn.append((f, x0, y0, x1, y1))
    if arr.shape[-1] == 1:
        arr = arr[..., 0]
    out = PixelOutcome(arr=arr[0] if arr.shape[0] == 1 else arr, photometric=photometric,
                       boxes=list(auto.boxes if auto is not None else []) + drawn,
                       kinds=auto.kinds if auto is not None else Counter(),
                       markers=auto.markers if auto is not None else 0,
                       overlay_pixels=auto.overlay_pixels if auto is not None else 0,
                       input_ts=(auto.input_ts if auto is not None and auto.input_ts
                                 else str(ds.file_meta.TransferSyntaxUID)))
    return out
