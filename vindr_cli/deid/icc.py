"""An ICC profile (ICCProfile, PS3.3 C.11.15) with nothing but its numbers.

A profile is kept for colour management, but its text tags say who made it, for which screen,
in which hospital ('desc', 'cprt', 'dmnd', 'dmdd', 'vued'; v4 writes them as UTF-16 'mluc'),
and bytes no tag points at can hold anything. :func:`clean` writes the header, the tag table
and the data of the numeric tag types of ``schemas/deid/safe_attributes.toml`` [icc]; the rest
is zeros (red team 7). The result is a valid profile, and cleaning it again changes nothing.
"""
from __future__ import annotations

import struct
import tomllib
from functools import cache

from vindr_cli.resources import schema_path

_HEADER, _RESERVED, _PROFILE_ID = 128, slice(100, 128), slice(84, 100)
_MAX_TAGS = 1024


@cache
def kept_types() -> frozenset[bytes]:
    data = tomllib.loads(schema_path("deid", "safe_attributes.toml").read_text(encoding="utf-8"))["icc"]
    if not data.get("reason") or not data.get("source"):
        raise ValueError("safe_attributes.toml: [icc] needs a reason and a source")
    return frozenset(t.encode("ascii") for t in data["kept_types"])


def clean(data: bytes) -> bytes | None:
    """The profile with only its numbers, or None when ``data`` is no ICC profile ('acsp' at
    36, a tag table and tags inside the bytes)."""
    if len(data) < _HEADER + 4 or data[36:40] != b"acsp":
        return None
    (count,) = struct.unpack_from(">I", data, _HEADER)
    table_end = _HEADER + 4 + 12 * count
    if count > _MAX_TAGS or table_end > len(data):
        return None
    out = bytearray(len(data))
    out[:_HEADER] = data[:_HEADER]
    out[_RESERVED] = bytes(28)
    out[_PROFILE_ID] = bytes(16)           # an MD5 of the profile as it was: zero is "not computed"
    out[_HEADER:table_end] = data[_HEADER:table_end]
    keep = kept_types()
    emptied = []
    for i in range(count):
        _sig, off, size = struct.unpack_from(">4sII", data, _HEADER + 4 + 12 * i)
        if off < table_end or size < 8 or off + size > len(data):
            return None
        if data[off:off + 4] in keep:
            out[off:off + size] = data[off:off + size]
        else:
            emptied.append((off, size))
    for off, size in emptied:       # after the kept ones: a text tag sharing bytes with one stays empty
        out[off:off + size] = data[off:off + 4] + bytes(size - 4)
        if data[off:off + 4] == b"mluc" and size >= 16:
            out[off + 12:off + 16] = struct.pack(">I", 12)    # no record, of the record size v4 defines
    return bytes(out)
