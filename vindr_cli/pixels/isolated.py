"""GDCM's decoder in a child process, so that its ``abort()`` or crash ends the child only.

On malformed JPEG headers GDCM ``abort()``s the interpreter (an uncaught C++ exception: a
JFIF header whose version bytes are text, a short ICC or Exif segment, bytes between
segments) or crashes it (SIGSEGV: a SOF precision of 17, zero width); bench/jpeg_hostile.py
measured it on ~5 % of mutated headers. No ``except`` catches either, so the decoders
that run in vindr's processes never include GDCM: :func:`run_gdcm` starts
``python -I`` (no user site, no PYTHONPATH, no working folder on the path), sends it the
encoded frames and the few attributes pydicom's ``gdcm`` plugin reads (no other element of
the data set), and reads the frames back as one ``.npy`` array (``allow_pickle=False``:
the child's output is data, never code). The child's stderr is discarded (the C libraries
print about file content), and it ends after :data:`TIMEOUT_S` (killed by the parent, or by its
own alarm when the parent was killed first: a pool worker past its task timeout). Any failure raises
:class:`IsolatedError`, which the candidate loop treats as a refusal.

Cost: the child's start (interpreter, pydicom, GDCM: ~0.3-0.6 s). GDCM is the last
candidate of every syntax (``backends.CANDIDATES``), so that is paid only for the frames
every in-process decoder refused.
"""
from __future__ import annotations

import io
import pickle
import subprocess
import sys

import numpy as np

TIMEOUT_S = 120           # the child is killed after this (one image; GDCM takes < 1 s for 2k x 2k)

# attributes pydicom's gdcm plugin reads (pydicom.pixels.decoders.gdcm._decode_frame)
_ATTRS = ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored",
          "HighBit", "PixelRepresentation", "PlanarConfiguration", "NumberOfFrames")

_CHILD = r"""
import signal, sys
signal.alarm(int(sys.argv[1]))     # bounded even if the parent is killed first (SIGALRM ends it)
import io, pickle, warnings
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import iter_pixels
ts, attrs, pixel_data = pickle.loads(sys.stdin.buffer.read())
ds = Dataset()
ds.file_meta = FileMetaDataset()
ds.file_meta.TransferSyntaxUID = ts
for k, v in attrs.items():
    setattr(ds, k, v)
ds.PixelData = pixel_data
ds["PixelData"].VR = "OB"
ds["PixelData"].is_undefined_length = True
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    frames = np.stack(list(iter_pixels(ds, decoding_plugin="gdcm")))
out = io.BytesIO()
np.save(out, frames, allow_pickle=False)
sys.stdout.buffer.write(out.getvalue())
"""


class IsolatedError(RuntimeError):
    """The child did not return decoded frames (refused, crashed, killed); a fixed message."""


def run_gdcm(ds, ts: str) -> list[np.ndarray]:
    """Every frame of ``ds`` decoded by pydicom's ``gdcm`` plugin in a child process."""
    attrs = {k: ds.get(k) for k in _ATTRS if ds.get(k) is not None}
    attrs = {k: (str(v) if k == "PhotometricInterpretation" else int(v)) for k, v in attrs.items()}
    payload = pickle.dumps((str(ts), attrs, bytes(ds.PixelData)))
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", _CHILD, str(TIMEOUT_S)], input=payload, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise IsolatedError("GDCM did not finish in time") from None
    if proc.returncode != 0:
        raise IsolatedError("GDCM refused the data or stopped")
    try:
        frames = np.load(io.BytesIO(proc.stdout), allow_pickle=False)
    except Exception:
        raise IsolatedError("GDCM returned no frames") from None
    return list(frames)
