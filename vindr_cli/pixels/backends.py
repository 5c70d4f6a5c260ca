"""Decoder backends: the candidate table per transfer syntax, and how each backend runs.

Most backends are pydicom 3 decoding plugins (``pydicom.pixels.iter_pixels`` with
``decoding_plugin=``). Two call OpenJPEG's C API directly through ctypes, because only the
C API offers reduced-resolution decoding (``cp_reduce``) and a thread count:
pylibjpeg-openjpeg 2.6's ``openjpeg.decode`` has neither (its signature is
``decode(stream, j2k_format=None, reshape=True)``). They use the OpenJPEG libraries the
installed wheels already ship, so there is no new dependency:

* ``openjpeg-direct``: OpenJPEG 2.5 inside pylibjpeg-openjpeg's extension (built without
  thread support, decodes HTJ2K);
* ``gdcm-openjpeg``: OpenJPEG 2.3 shipped by python-gdcm (thread support, no HTJ2K).

``libjpeg-turbo`` decodes JPEG lossless through imagecodecs (libjpeg-turbo 3, which reads
process 14) where that optional package is installed (``pip install vindr[fast]``).

GDCM (pydicom's ``gdcm`` plugin) runs only in a child process (``pixels.isolated``): on
malformed JPEG headers it ``abort()``s or crashes the interpreter (bench/jpeg_hostile.py), which
no ``except`` catches. It is therefore the last candidate everywhere, for the streams the
in-process decoders refuse.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import sys
import warnings
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from pydicom import uid
from pydicom.encaps import generate_frames

# Candidate backends per transfer syntax, fastest first. Measured by bench/decode_backends.py
# (bench/results/decode_backends.json): one 2048x2048 12-bit chest radiograph, median CPU ms
# per image (all threads of the process), 2-core Xeon development machine, 7 runs:
#   RLE                 pylibjpeg-rle 9.7 | pydicom-rle 71 (x7.3)
#   JPEG baseline 8-bit pydicom-pillow 6.4 | gdcm 24.7 | pylibjpeg-libjpeg 27.7 (x4.3)
#   JPEG extended 12-bit  only pylibjpeg-libjpeg decodes it (1.7 ms on pydicom's 1024x256
#                       JPGExtended.dcm); pydicom's gdcm plugin refuses 12-bit, Pillow fails
#   JPEG lossless 4.57  gdcm 94 | pylibjpeg-libjpeg 136 (x1.45); 4.70: 96 | 143 (x1.49)
#   JPEG-LS lossless    gdcm 141 | pylibjpeg-libjpeg 381 (x2.7); near-lossless 124 | 330;
#                       pyjpegls not installed, not measured
#   JPEG 2000 lossless  gdcm-openjpeg 468 | openjpeg-direct 472 | pylibjpeg-openjpeg 473 |
#                       pydicom-pillow 482 | gdcm 536 CPU ms but 301 ms wall (always uses every
#                       core); gdcm-openjpeg with threads=2: 247 ms wall (x1.9 faster)
#   JPEG 2000 lossy 10:1  gdcm-openjpeg 106 | openjpeg-direct 107 | pylibjpeg-openjpeg 115 |
#                       pydicom-pillow 116 | gdcm 156
#   reduce=1 (2048 -> 1024): 113 ms lossless, 32 ms lossy (x4.2 and x3.3 faster)
# On 8 REAL radiographs (bench/decode_backends.py --real: CR 1955x1841 15-bit and 1760x1760
# 10-bit, DX 2048x2048 12-bit; OpenJPEG-, GDCM- and vendor-encoded), mean CPU ms per image:
#   openjpeg-direct 340 | gdcm-openjpeg 341 | pylibjpeg-openjpeg 344 | imagecodecs 345 (not a
#   backend: no reduced decode) | pydicom-pillow 355 | gdcm 421; reduce=1: 90. No clear winner.
# The two direct OpenJPEG backends tie (<1 %); OpenJPEG 2.5 goes first (newer, HTJ2K). With
# threads > 1, decode() moves the threaded backend (gdcm-openjpeg) to the front. HTJ2K has
# no encoder or sample here and is not measured; it uses the same OpenJPEG 2.5.
# JPEG lossless and JPEG-LS (bench/jpeg_hostile.py --speed, same image, CPU ms, best of 5,
# load 10.7): JPEG lossless SV1: libjpeg-turbo 24 | gdcm in process 107 | pylibjpeg-libjpeg 143;
# JPEG-LS lossless: pyjpegls 87 | gdcm in process 142 | pylibjpeg-libjpeg 322; near-lossless:
# pyjpegls 73 | gdcm 122 | pylibjpeg-libjpeg 288. GDCM, first there before, now runs last and
# in a child process (module doc).
_J2K = ("openjpeg-direct", "gdcm-openjpeg", "pylibjpeg-openjpeg", "pydicom-pillow", "gdcm")
_HTJ2K = ("openjpeg-direct", "pylibjpeg-openjpeg")
_JPEG_BASELINE = ("pydicom-pillow", "pylibjpeg-libjpeg", "gdcm")
_JPEG_EXTENDED = ("pylibjpeg-libjpeg", "pydicom-pillow", "gdcm")
_JPEG_LOSSLESS = ("libjpeg-turbo", "pylibjpeg-libjpeg", "gdcm")
_JPEG_LS = ("pyjpegls", "pylibjpeg-libjpeg", "gdcm")
CANDIDATES: dict[str, tuple[str, ...]] = {
    uid.ExplicitVRLittleEndian: ("native",),
    uid.ImplicitVRLittleEndian: ("native",),
    uid.ExplicitVRBigEndian: ("native",),
    uid.DeflatedExplicitVRLittleEndian: ("native",),
    uid.RLELossless: ("pylibjpeg-rle", "pydicom-rle"),
    uid.JPEGBaseline8Bit: _JPEG_BASELINE,
    uid.JPEGExtended12Bit: _JPEG_EXTENDED,
    uid.JPEGLossless: _JPEG_LOSSLESS,
    uid.JPEGLosslessSV1: _JPEG_LOSSLESS,
    uid.JPEGLSLossless: _JPEG_LS,
    uid.JPEGLSNearLossless: _JPEG_LS,
    uid.JPEG2000Lossless: _J2K,
    uid.JPEG2000: _J2K,
    uid.HTJ2KLossless: _HTJ2K,
    uid.HTJ2KLosslessRPCL: _HTJ2K,
    uid.HTJ2K: _HTJ2K,
}

# Backend name -> pydicom decoding plugin ("" = pydicom's native decoder).
PLUGINS = {
    "native": "",
    "pylibjpeg-openjpeg": "pylibjpeg",
    "pylibjpeg-libjpeg": "pylibjpeg",
    "pylibjpeg-rle": "pylibjpeg",
    "pydicom-rle": "pydicom",
    "gdcm": "gdcm",
    "pydicom-pillow": "pillow",
    "pyjpegls": "pyjpegls",
}
# Backends that take `reduce` (J2K resolution levels skipped) and `threads`.
DIRECT = ("openjpeg-direct", "gdcm-openjpeg")
# Backends for single-sample (grayscale) data only; colour goes through pydicom's plugins.
GREY_ONLY = (*DIRECT, "libjpeg-turbo")
# JPEG and JPEG-LS syntaxes: every frame's header is checked (dicomio.jpeg) before a decoder runs.
JPEG_FAMILY = frozenset({uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1,
                         uid.JPEGLSLossless, uid.JPEGLSNearLossless})


def candidates(ts: str, wanted: list[str] | None = None, threads: int = 1) -> list[str]:
    """Backends to try for `ts`, in order: `wanted` filtered to those that can, else the
    table's, with backends that take a thread count first when threads > 1."""
    table = CANDIDATES.get(ts, ())
    if wanted is not None:
        return [b for b in wanted if b in table]
    if threads > 1:
        return sorted(table, key=lambda b: not (b in DIRECT and _openjpeg(b) and _openjpeg(b).threaded))
    return list(table)


def available(name: str, ts: str) -> bool:
    """True when backend `name` is installed and can decode transfer syntax `ts`."""
    if name in DIRECT:
        return _openjpeg(name) is not None
    if name == "libjpeg-turbo":
        return ts in (uid.JPEGLossless, uid.JPEGLosslessSV1) and _has_module("imagecodecs")
    plugin = PLUGINS.get(name)
    if plugin is None:
        return False
    if plugin == "":
        return not uid.UID(ts).is_compressed
    from pydicom.pixels import get_decoder

    try:
        return plugin in get_decoder(ts).available_plugins
    except NotImplementedError:
        return False


@contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null for the duration: GDCM, OpenJPEG and libjpeg
    print diagnostics from C (``std::cerr``, ``fprintf(stderr)``) about the bytes they
    decode, which Python cannot catch; nothing from a file may reach the terminal.
    Python's own ``sys.stderr`` is flushed first and written again afterwards as usual."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    try:
        saved = os.dup(2)
    except OSError:              # no fd 2 at all: nothing to silence
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run(name: str, ds, ts: str, *, reduce: int = 0, threads: int = 1) -> list[np.ndarray]:
    """Decode every frame of `ds` with backend `name`; raises on any failure. The C
    libraries' own stderr output is discarded (:func:`quiet_stderr`)."""
    if name == "gdcm":              # never in this process (module doc)
        from . import isolated

        return isolated.run_gdcm(ds, ts)
    with warnings.catch_warnings(), quiet_stderr():
        warnings.simplefilter("ignore")
        if name in DIRECT:
            return _run_direct(name, ds, reduce, threads)
        if name == "libjpeg-turbo":
            return _run_libjpeg_turbo(ds)
        from pydicom.pixels import iter_pixels

        return list(iter_pixels(ds, decoding_plugin=PLUGINS[name]))


def encapsulated_frames(ds) -> list[bytes]:
    """The encoded frames of an encapsulated Pixel Data element."""
    n = int(ds.get("NumberOfFrames") or 1)
    return list(generate_frames(ds.PixelData, number_of_frames=n))


def _run_direct(name: str, ds, reduce: int, threads: int) -> list[np.ndarray]:
    lib = _openjpeg(name)
    if lib is None or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise RuntimeError("backend cannot decode this data")
    dtype = np.dtype(f"{'i' if ds.PixelRepresentation else 'u'}{(ds.BitsAllocated + 7) // 8}")
    frames = []
    for data in encapsulated_frames(ds):
        arr, prec, signed = lib.decode(data, reduce=reduce, threads=threads, dtype=dtype)
        shift = 8 * dtype.itemsize - prec
        if shift > 0 and signed != bool(ds.PixelRepresentation):   # as pydicom's J2K sign fix
            np.left_shift(arr, shift, out=arr)
            np.right_shift(arr, shift, out=arr)
        frames.append(arr)
    return frames


def _run_libjpeg_turbo(ds) -> list[np.ndarray]:
    """JPEG lossless frames through imagecodecs' libjpeg-turbo, as pydicom's plugins return them:
    the stored words in the data set's dtype, bits above Bits Stored cleared (unsigned) or
    sign-extended (signed), as pydicom's ``correct_unused_bits`` does for JPEG."""
    from imagecodecs import jpeg8_decode

    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise RuntimeError("backend cannot decode this data")
    alloc, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    dtype = np.dtype(f"{'i' if ds.PixelRepresentation else 'u'}{(alloc + 7) // 8}")
    shape = (int(ds.Rows), int(ds.Columns))
    frames = []
    for data in encapsulated_frames(ds):
        arr = np.asarray(jpeg8_decode(data))
        if arr.shape != shape or arr.dtype.kind != "u" or arr.dtype.itemsize > dtype.itemsize:
            raise RuntimeError("backend cannot decode this data")
        arr = arr.astype(f"u{dtype.itemsize}", copy=False).view(dtype)
        if not arr.flags.writeable:
            arr = arr.copy()
        shift = 8 * dtype.itemsize - stored
        if shift > 0:
            np.left_shift(arr, shift, out=arr)
            np.right_shift(arr, shift, out=arr)
        frames.append(arr)
    return frames


@lru_cache(maxsize=None)
def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


# --- OpenJPEG through ctypes -------------------------------------------------------------

class _Comp(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in
                ("dx", "dy", "w", "h", "x0", "y0", "prec", "bpp", "sgnd", "resno_decoded", "factor")]
    _fields_ += [("data", ctypes.POINTER(ctypes.c_int32)), ("alpha", ctypes.c_uint16)]


class _Image(ctypes.Structure):
    _fields_ = [("x0", ctypes.c_uint32), ("y0", ctypes.c_uint32), ("x1", ctypes.c_uint32),
                ("y1", ctypes.c_uint32), ("numcomps", ctypes.c_uint32), ("color_space", ctypes.c_int),
                ("comps", ctypes.POINTER(_Comp)), ("icc_profile_buf", ctypes.c_void_p),
                ("icc_profile_len", ctypes.c_uint32)]


_READ = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_SKIP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_SEEK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64, ctypes.c_void_p)
_END = ctypes.c_size_t(-1).value
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


class OpenJPEG:
    """The few OpenJPEG 2.x decoder calls needed for a reduced, threaded decode from memory."""

    def __init__(self, path: str, prefix: str):
        lib = ctypes.CDLL(path)
        p, vp, i = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int

        def fn(name, res, *args):
            f = getattr(lib, prefix + name)
            f.restype, f.argtypes = res, list(args)
            return f

        self.version = fn("version", ctypes.c_char_p)().decode()
        if not self.version.startswith(("2.3", "2.4", "2.5")):
            raise OSError("untested OpenJPEG version")   # struct layouts below are 2.3-2.5
        self.threaded = bool(fn("has_thread_support", i)())
        self.create_decompress = fn("create_decompress", p, i)
        self.set_default_parameters = fn("set_default_decoder_parameters", None, vp)
        self.setup_decoder = fn("setup_decoder", i, p, vp)
        self.set_threads = fn("codec_set_threads", i, p, i)
        self.stream_create = fn("stream_create", p, ctypes.c_size_t, i)
        self.set_read = fn("stream_set_read_function", None, p, _READ)
        self.set_skip = fn("stream_set_skip_function", None, p, _SKIP)
        self.set_seek = fn("stream_set_seek_function", None, p, _SEEK)
        self.set_length = fn("stream_set_user_data_length", None, p, ctypes.c_uint64)
        self.read_header = fn("read_header", i, p, p, ctypes.POINTER(ctypes.POINTER(_Image)))
        self.decode_image = fn("decode", i, p, p, ctypes.POINTER(_Image))
        self.end_decompress = fn("end_decompress", i, p, p)
        self.stream_destroy = fn("stream_destroy", None, p)
        self.destroy_codec = fn("destroy_codec", None, p)
        self.image_destroy = fn("image_destroy", None, ctypes.POINTER(_Image))

    def decode(self, data: bytes, *, reduce: int = 0, threads: int = 1,
               dtype=np.int32) -> tuple[np.ndarray, int, bool]:
        """Decode one single-component codestream: (values (h, w) as ``dtype``, cast from
        OpenJPEG's int32 in the one copy out of its buffer; precision; signed)."""
        src = np.frombuffer(data, np.uint8)
        base, size, pos = src.ctypes.data, len(src), [0]

        def read(buf, n, _):
            left = size - pos[0]
            if left <= 0:
                return _END
            n = min(n, left)
            ctypes.memmove(buf, base + pos[0], n)
            pos[0] += n
            return n

        def skip(n, _):
            if not 0 <= pos[0] + n <= size:
                pos[0] = size
                return -1
            pos[0] += n
            return n

        def seek(n, _):
            if not 0 <= n <= size:
                return 0
            pos[0] = n
            return 1

        callbacks = (_READ(read), _SKIP(skip), _SEEK(seek))   # kept alive for the whole call
        codec = self.create_decompress(2 if data[:12] == _JP2_SIGNATURE else 0)
        stream = self.stream_create(1 << 20, 1)
        image = ctypes.POINTER(_Image)()
        try:
            params = (ctypes.c_uint8 * 16384)()   # opj_dparameters_t is ~8.3 KB
            self.set_default_parameters(params)
            ctypes.c_uint32.from_buffer(params).value = reduce   # cp_reduce is its first field
            self.set_read(stream, callbacks[0])
            self.set_skip(stream, callbacks[1])
            self.set_seek(stream, callbacks[2])
            self.set_length(stream, size)
            if not self.setup_decoder(codec, params):
                raise RuntimeError("OpenJPEG setup failed")
            if threads > 1 and self.threaded:
                self.set_threads(codec, threads)
            if not self.read_header(stream, codec, ctypes.byref(image)):
                raise RuntimeError("OpenJPEG could not read the codestream header")
            if image.contents.numcomps != 1:
                raise RuntimeError("not a single-component codestream")
            if not (self.decode_image(codec, stream, image) and self.end_decompress(codec, stream)):
                raise RuntimeError("OpenJPEG could not decode the codestream")
            comp = image.contents.comps[0]
            values = np.ctypeslib.as_array(comp.data, shape=(comp.h, comp.w)).astype(dtype)
            return values, int(comp.prec), bool(comp.sgnd)
        finally:
            if image:
                self.image_destroy(image)
            self.stream_destroy(stream)
            self.destroy_codec(codec)


@lru_cache(maxsize=None)
def _openjpeg(name: str) -> OpenJPEG | None:
    """The OpenJPEG binding for a direct backend, or None when its library is missing."""
    try:
        if name == "openjpeg-direct":
            spec = importlib.util.find_spec("_openjpeg")
            return OpenJPEG(spec.origin, "opj_") if spec and spec.origin else None
        spec = importlib.util.find_spec("_gdcm")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(glob.glob(os.path.join(folder, "libgdcmopenjp2.so*"))):
                return OpenJPEG(path, "gdcmopenjp2_opj_")
    except (OSError, AttributeError):
        return None
    return None
