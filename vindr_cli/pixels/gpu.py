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


_COUNT_DEVICES = (
    "import ctypes\n"
    "try:\n"
    "    cuda = ctypes.CDLL('libcuda.so.1')\n"
    "except OSError:\n"
    "    print(0); raise SystemExit\n"
    "n = ctypes.c_int(0)\n"
    "ok = cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(n)) == 0\n"
    "print(n.value if ok else 0)\n"
)


@lru_cache(maxsize=None)
def _cuda_devices() -> int:
    """Number of CUDA devices the driver reports (0 without a driver).

    Asked in a short child process: ``cuInit`` in this process would leave every worker the
    local pool forks from it unable to use CUDA (a forked child cannot re-initialise the
    driver), so ``--device cuda -j N`` would fail on every file.
    """
    import subprocess
    import sys
    try:
        r = subprocess.run([sys.executable, "-I", "-S", "-c", _COUNT_DEVICES], capture_output=True,
                           text=True, timeout=60, check=False)
        return int(r.stdout.strip() or 0) if r.returncode == 0 else 0
    except (OSError, ValueError, subprocess.SubprocessError):
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
