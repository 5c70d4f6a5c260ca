"""A file's own names and IDs spelled as character codes in its pixel values (red team 10, 11).

Pixel data that no mode rewrites (``--burned-in off``: native and Float Pixel Data are copied
byte for byte; the text finder reads native values as an image, not as codes) can hold the
patient's name one character a sample: "PHAM THI KIEU" as 16-bit values 80, 72, 65, 77, ...,
or as the bytes of Float Pixel Data. A search of pixel values for any letters matches real
backgrounds; a search for the file's OWN terms, exactly, as whole runs of codes, does not:
over every real image pydicom, pydicom-data, deid-data and sample_dicoms hold, no file's own
terms were found in its pixels, nor any of 600 names' parts, IDs and dates not its own
(bench/README.md "g1nolink"; bench/g1nolink_pixel_codes.py).

:func:`terms_of`: the file's person values (``engine.person_values``: names, IDs, dates, a
name's parts run together), each with its separators as one space and without them, and every
part of a name, kept when 4 characters or more (``MIN_TERM``). :func:`needles`: each term's
code points as 8-bit bytes (when all fit), 16-bit little and big endian, 32-bit little endian
and float32 / float64 little endian samples. :func:`found`: whether one lies in ``data`` (the
pixel bytes as stored). What is found is never returned or logged: only yes or no.
"""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import BinaryIO, Iterable

MIN_TERM = 4
# the reason of a file whose own name or ID its pixel values spell (deid.task: failed, not written)
FOUND = ("a name, ID or date of the file's own header is spelled as character codes in its pixel values "
         "(one character a sample or byte); not written")
CHUNK = 1 << 22
_SPLIT = re.compile(r"[\^=\s]+")


def terms_of(values: Iterable[str]) -> list[str]:
    """The exact strings sought (PHI: memory only) from a file's person values: none that a
    ramp of values spells (its codes one step apart, "1234", "ABCD", or all one, "0000": a
    gradient or a flat run is no name), and none holding another (its needles hold the other's)."""
    out: set[str] = set()
    for v in values:
        if not isinstance(v, str):
            continue
        parts = [p for p in _SPLIT.split(v.strip()) if p]
        for t in (" ".join(parts), "".join(parts), *parts):
            if len(t) >= MIN_TERM and not _ramp(t):
                out.add(t)
    short = sorted(out, key=len)
    kept: list[str] = []
    for t in short:
        if not any(k in t for k in kept):
            kept.append(t)
    return sorted(kept)


def _ramp(t: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(t, t[1:])}
    return len(steps) == 1


def needles(terms: Iterable[str]) -> list[bytes]:
    """Each term as runs of samples in every layout a copied pixel buffer may hold."""
    out: set[bytes] = set()
    for t in terms:
        codes = [ord(c) for c in t]
        if max(codes) > 0xFFFF:
            continue
        if max(codes) < 0x100:
            out.add(bytes(codes))
        out.add(struct.pack(f"<{len(codes)}H", *codes))
        out.add(struct.pack(f">{len(codes)}H", *codes))
        out.add(struct.pack(f"<{len(codes)}I", *codes))
        out.add(struct.pack(f"<{len(codes)}f", *codes))
        out.add(struct.pack(f"<{len(codes)}d", *codes))
    return sorted(out)


def found(data: bytes | bytearray | memoryview, seek: list[bytes]) -> bool:
    """Whether one of ``seek`` (:func:`needles`) lies in ``data``."""
    view = bytes(data) if not isinstance(data, bytes) else data
    return any(n in view for n in seek)


def found_in_stream(f: BinaryIO, start: int, seek: list[bytes]) -> bool:
    """:func:`found` over ``f`` from ``start`` to its end, a chunk at a time (overlapping by the
    longest needle, so none is cut in two)."""
    if not seek:
        return False
    overlap = max(map(len, seek)) - 1
    f.seek(start)
    tail = b""
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            return False
        buf = tail + chunk
        if found(buf, seek):
            return True
        tail = buf[-overlap:] if overlap else b""


def in_output(path: Path, seek: list[bytes]) -> bool:
    """Whether the pixel data of the written file ``path`` (native or Float / Double Float Pixel
    Data: values as they are stored; a compressed syntax is not searched) holds one of ``seek``."""
    from vindr_cli.dicomio.header import read_header

    if not seek:
        return False
    with open(path, "rb") as f:
        header = read_header(f, os.fstat(f.fileno()).st_size, structure=False)
        ts = header.ds.file_meta.TransferSyntaxUID
        if header.pixel_offset is None or ts.is_compressed:
            return False
        return found_in_stream(f, header.pixel_offset, seek)
