"""Copy the pixel data element byte for byte from input to output, in chunks, hashing its value.

The hash is the SHA-256 of the element's value field as stored: for native data the
pixel bytes; for encapsulated data every item (basic offset table included) with its
item header, up to but not including the sequence delimiter.
"""
from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

from vindr_cli.dicomio.header import BadInput

CHUNK = 4 << 20
UNDEFINED = 0xFFFFFFFF
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
PIXEL_VRS = {b"OB", b"OW", b"OD", b"OF", b"OL", b"OV", b"UN"}
ITEM = 0xFFFEE000
SEQ_DELIM = 0xFFFEE0DD


def _read_exact(src: BinaryIO, n: int) -> bytes:
    b = src.read(n)
    if len(b) != n:
        raise BadInput("failed", "truncated pixel data (file ends before the pixel data does)")
    return b


def _copy(src: BinaryIO, dst: BinaryIO | None, n: int, h) -> None:
    """Copy n bytes through one reused buffer (no per-chunk allocation), hashing them."""
    buf = memoryview(bytearray(min(CHUNK, max(n, 1))))
    readinto = getattr(src, "readinto", None)
    while n > 0:
        want = min(len(buf), n)
        if readinto is not None:
            got = readinto(buf[:want])
            chunk = buf[:got]
        else:  # streams without readinto
            data = src.read(want)
            got, chunk = len(data), data
        if not got:
            raise BadInput("failed", "truncated pixel data (file ends before the pixel data does)")
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        n -= got


def copy_pixel_element(src: BinaryIO, dst: BinaryIO | None, *, implicit: bool, little: bool,
                       expected: int | None = None) -> tuple[str, int]:
    """Copy one pixel data element at src's position to dst (None: only hash it).

    ``expected``: the native pixel data length the header describes; a defined length that
    disagrees (beyond one pad byte) means the file is not what it claims, and is refused.
    Returns (sha256 hex of the value, number of bytes copied incl. the element header).
    """
    e = "<" if little else ">"
    tag_bytes = _read_exact(src, 4)
    group, elem = struct.unpack(e + "HH", tag_bytes)
    if group != 0x7FE0:
        raise BadInput("failed", "pixel data element not where expected")
    if implicit:
        len_bytes = _read_exact(src, 4)
        header = tag_bytes + len_bytes
        (length,) = struct.unpack(e + "L", len_bytes)
    else:
        vr = _read_exact(src, 2)
        if vr not in PIXEL_VRS:
            raise BadInput("failed", "malformed pixel data element (unexpected VR; transfer syntax mismatch?)")
        if vr in LONG_VRS:
            rest = _read_exact(src, 6)
            (length,) = struct.unpack(e + "L", rest[2:])
        else:
            rest = _read_exact(src, 2)
            (length,) = struct.unpack(e + "H", rest)
        header = tag_bytes + vr + rest
    if dst is not None:
        dst.write(header)
    h = hashlib.sha256()
    total = len(header)
    if length != UNDEFINED:
        if expected is not None and not (expected <= length <= expected + 1):
            raise BadInput("failed", "pixel data length does not match Rows, Columns, Bits Allocated and frames")
        _copy(src, dst, length, h)
        return h.hexdigest(), total + length
    while True:  # encapsulated: items until the sequence delimiter
        item = _read_exact(src, 8)
        itag = (struct.unpack(e + "H", item[:2])[0] << 16) | struct.unpack(e + "H", item[2:4])[0]
        (ilen,) = struct.unpack(e + "L", item[4:])
        if dst is not None:
            dst.write(item)
        total += 8
        if itag == SEQ_DELIM:
            return h.hexdigest(), total
        if itag != ITEM or ilen == UNDEFINED:
            raise BadInput("failed", "malformed encapsulated pixel data (bad item tag or length)")
        h.update(item)
        _copy(src, dst, ilen, h)
        total += ilen


def hash_bytes_value(value: bytes) -> str:
    """Hash of an in-memory native pixel value (deflated files)."""
    return hashlib.sha256(value).hexdigest()


def file_pixel_hash(path) -> str | None:
    """SHA-256 of a Part 10 file's Pixel Data value as stored (None: no pixel data or a
    deflated file, whose value is only reachable through a full parse)."""
    from vindr_cli.dicomio.header import read_header

    with open(path, "rb") as f:
        h = read_header(f, path.stat().st_size)
        if h.pixel_offset is None:
            return None
        ts = h.ds.file_meta.TransferSyntaxUID
        f.seek(h.pixel_offset)
        return copy_pixel_element(f, None, implicit=ts.is_implicit_VR, little=ts.is_little_endian)[0]
