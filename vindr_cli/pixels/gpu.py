"""Optional GPU decoding with NVIDIA nvImageCodec (pip ``nvidia-nvimgcodec-cu12[all]``).

Never required: everything here is import-guarded, and decode.py imports this module
only when a caller asks for ``device="cuda"`` or ``"auto"``.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache

import numpy as np
from pydicom import uid

GPU_SYNTAXES = frozenset({
    uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit,                       # nvJPEG
    uid.JPEG2000Lossless, uid.JPEG2000,                                # nvJPEG2000
    uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K,
})


@lru_cache(maxsize=None)
def _nvimgcodec():
    try:
        from nvidia import nvimgcodec
    except Exception:   # not installed, or its CUDA libraries are missing
        return None
    return nvimgcodec


@lru_cache(maxsize=None)
def _cuda_devices() -> int:
    """Number of CUDA devices the driver reports (0 without a driver)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    except OSError:
        return 0


def gpu_available() -> bool:
    """True when nvImageCodec imports and a CUDA device is present."""
    return _nvimgcodec() is not None and _cuda_devices() > 0


@lru_cache(maxsize=None)
def _decoder():
    nv = _nvimgcodec()
    backends = [nv.Backend(nv.BackendKind.GPU_ONLY), nv.Backend(nv.BackendKind.HYBRID_CPU_GPU)]
    params = nv.DecodeParams(allow_any_depth=True, color_spec=nv.ColorSpec.UNCHANGED)
    return nv.Decoder(backends=backends), params


def decode_batch_gpu(items: list[tuple[bytes, str]]) -> list[np.ndarray]:
    """Decode (frame bytes, transfer syntax UID) pairs in one GPU batch; arrays on the host."""
    if not gpu_available():
        raise RuntimeError("nvImageCodec/GPU not available")
    if any(ts not in GPU_SYNTAXES for _, ts in items):
        raise ValueError("transfer syntax not decodable by nvImageCodec")
    decoder, params = _decoder()
    images = decoder.decode([bytes(data) for data, _ in items], params=params)
    out = []
    for image in images:
        if image is None:
            raise RuntimeError("nvImageCodec could not decode a frame")
        arr = np.asarray(image.cpu())
        out.append(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
    return out
