"""Resource limits checked before work, so that a small hostile file cannot make a worker
allocate without bound. Each violation is a per-file :class:`~vindr_cli.dicomio.header.BadInput`
with a fixed reason (a ``failed`` row; the batch goes on).

* ``--max-inflate`` (default 256 MiB): the most bytes a deflated data set (Deflated Explicit VR
  Little Endian) may inflate to, and the most a ``.zip`` member may declare. The deflated
  stream is inflated incrementally (``zlib.decompressobj`` with ``max_length``) and counted,
  never kept, before pydicom is allowed to inflate it; pydicom then holds the inflated data
  set several times over (inflated bytes, parsed values, the deflated rewrite): measured, a
  450 MB data set peaked at 2.27 GB in an anonymize worker, a 260 MB one at 1.36 GB: the default
  keeps a worker under 1.5 GB. A
  zip member is read through :class:`zipfile.ZipExtFile`, which never returns more than the
  member's declared size, so bounding the declared size bounds the actual one.
* ``--max-pixels`` (default 2^28 samples = 268,435,456: a 16384 x 16384 image, 512 MiB at 16
  bits, 1 GiB as float32 in the display pipeline): Rows x Columns x frames x samples per
  pixel, checked from the header before any decoder runs (a 50 KB RLE file may declare
  65535 x 65535). The bytes that decoding needs (that product x Bits Allocated / 8) are
  bounded by the same limit x 8 bytes.
"""
from __future__ import annotations

import zlib
from typing import BinaryIO

DEFAULT_MAX_INFLATE = 256 << 20
DEFAULT_MAX_PIXELS = 1 << 28
INFLATE_REASON = "deflated data set inflates past --max-inflate (refused before inflating it)"
ZIP_REASON = "zip member declares more bytes than --max-inflate (refused before reading it)"
PIXELS_REASON = "image declares more samples than --max-pixels (Rows x Columns x frames x samples; refused before decoding)"
CHUNK = 1 << 20


def inflated_size_exceeds(f: BinaryIO, start: int, limit: int) -> bool:
    """True when the raw deflate stream from ``start`` inflates to more than ``limit`` bytes.
    Reads incrementally; memory stays at a few MiB whatever the ratio."""
    f.seek(start)
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            break
        data = chunk
        while data and not d.eof:     # after the stream's end zlib keeps returning the
            out = d.decompress(data, CHUNK)   # trailing bytes as unconsumed: no progress
            total += len(out)
            if total > limit:
                return True
            data = d.unconsumed_tail
        if d.eof:
            break
    if not d.eof:
        total += len(d.flush())
    return total > limit


def declared_samples(ds) -> int | None:
    """Rows x Columns x frames x samples per pixel as the header declares (None: cannot tell)."""
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = int(ds.get("NumberOfFrames") or 1)
        spp = int(ds.get("SamplesPerPixel") or 1)
    except (TypeError, ValueError):
        return None
    return max(rows, 0) * max(cols, 0) * max(frames, 1) * max(spp, 1)


def too_many_pixels(ds, limit: int) -> bool:
    n = declared_samples(ds)
    return n is not None and n > limit
