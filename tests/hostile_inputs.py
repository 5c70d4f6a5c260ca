"""Builders of hostile DICOM bytes from real files (hostile10): raw explicit VR little endian
elements put where their tag sorts, sequences nested N deep, ICC profiles with absurd tables.
Shared by tests/test_hostile10.py and bench/hostile10_bench.py."""
from __future__ import annotations

import struct

from fuzzing import walk

LONG = (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV")
UNDEFINED = 0xFFFFFFFF
ITEM = b"\xfe\xff\x00\xe0"
ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
SEQ_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def elem(group: int, element: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    """One explicit VR little endian element (``length``: the declared one, if not the value's)."""
    n = len(value) if length is None else length
    if vr in LONG:
        return struct.pack("<HH2sHI", group, element, vr, 0, n) + value
    return struct.pack("<HH2sH", group, element, vr, n) + value


def at(data: bytes, tag: int) -> int:
    """Where an element of ``tag`` goes among the top-level elements of ``data`` (a Part 10 file
    in explicit VR little endian)."""
    for el in walk(data):
        g, e = struct.unpack("<HH", data[el.start:el.start + 4])
        if (g << 16 | e) > tag:
            return el.start
    return len(data)


def insert(data: bytes, tag: int, blob: bytes) -> bytes:
    """``blob`` (whole elements) put among ``data``'s top-level elements where ``tag`` sorts."""
    i = at(data, tag)
    return data[:i] + blob + data[i:]


def pixel_start(data: bytes) -> int:
    return data.rfind(b"\xe0\x7f\x10\x00")


def nested(depth: int, name: bytes = b"Tran^Thi Bich") -> bytes:
    """ReferencedImageSequence nested ``depth`` levels (undefined lengths), a person name
    (ReferringPhysicianName) in the innermost item."""
    opening = elem(0x0008, 0x1140, b"SQ", b"", UNDEFINED) + ITEM + struct.pack("<I", UNDEFINED)
    return opening * depth + elem(0x0008, 0x0090, b"PN", name) + (ITEM_END + SEQ_END) * depth


def icc_profile(count: int, size: int, body: int, kind: bytes = b"XYZ ", offset: int | None = None) -> bytes:
    """A profile whose tag table has ``count`` entries, all pointing at one block (``offset``,
    default right after the table) of declared ``size``, the block ``kind`` + ``body`` zeros."""
    table_end = 128 + 4 + 12 * count
    off = table_end if offset is None else offset
    data = bytearray(128)
    data[8] = 4
    data[36:40] = b"acsp"
    data += struct.pack(">I", count)
    for _ in range(count):
        data += struct.pack(">4sII", b"rXYZ", off, size)
    data += kind + bytes(4) + bytes(body)
    struct.pack_into(">I", data, 0, len(data))
    return bytes(data)
