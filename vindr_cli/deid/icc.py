"""An ICC profile (ICCProfile, PS3.3 C.11.15) with nothing but its numbers.

A profile is kept for colour management, but its text tags say who made it, for which screen,
in which hospital ('desc', 'cprt', 'dmnd', 'dmdd', 'vued'; v4 writes them as UTF-16 'mluc'),
and bytes no tag points at can hold anything. :func:`clean` writes the header, the tag table
and the data of the numeric tag types of ``schemas/deid/safe_attributes.toml`` [icc], each only as
far as its type defines (:func:`defined_size`, review 8); the rest is zeros (red team 7). The result is a valid profile, and cleaning it again changes nothing.
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


# parametricCurveType: parameters of each function type (ICC.1:2022 10.18, Table 68)
_PARA_PARAMS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
# fixed sizes: XYZType holds one XYZNumber in every tag that uses it (wtpt, bkpt, lumi, rXYZ,
# gXYZ, bXYZ; littleCMS reads one), signatureType 12, dateTimeType 20, measurementType 36,
# viewingConditionsType 36 (ICC.1:2022 10.31, 10.23, 10.8, 10.14, 10.30)
_FIXED = {b"XYZ ": 20, b"sig ": 12, b"dtim": 20, b"meas": 36, b"view": 36}
# arrays of numbers (no count: the size says how many): element size
_ARRAYS = {b"sf32": 4, b"uf32": 4, b"ui08": 1, b"ui16": 2, b"ui32": 4, b"ui64": 8}


def defined_size(data: bytes, off: int, size: int) -> int | None:
    """How many of a kept tag's ``size`` declared bytes its type defines (review 8: an 'XYZ '
    tag declared longer than its 20 bytes carried text); None when the declared size is shorter
    than the type needs. Types whose layout is offsets to sub-elements (mAB, mBA, mpet, rcs2)
    keep their declared size."""
    kind = data[off:off + 4]

    def u32(at: int) -> int:
        return struct.unpack_from(">I", data, off + at)[0] if size >= at + 4 else -1

    def u16(at: int) -> int:
        return struct.unpack_from(">H", data, off + at)[0] if size >= at + 2 else -1

    need: int | None
    if kind in _FIXED:
        need = _FIXED[kind]
    elif kind in _ARRAYS:
        need = 8 + (size - 8) // _ARRAYS[kind] * _ARRAYS[kind]
    elif kind == b"curv":
        need = 12 + 2 * u32(8) if u32(8) >= 0 else None
    elif kind == b"para":
        need = 12 + 4 * _PARA_PARAMS[u16(8)] if u16(8) in _PARA_PARAMS else None
    elif kind == b"chrm":
        need = 12 + 8 * u16(8) if u16(8) >= 0 else None
    elif kind == b"clro":
        need = 12 + u32(8) if u32(8) >= 0 else None
    elif kind in (b"mft1", b"mft2") and size >= 52:
        n_in, n_out, grid = data[off + 8], data[off + 9], data[off + 10]
        clut = grid ** n_in * n_out
        if kind == b"mft1":
            need = 48 + 256 * n_in + clut + 256 * n_out
        else:
            n_in_e, n_out_e = u16(48), u16(50)
            need = 52 + 2 * (n_in_e * n_in + clut + n_out_e * n_out)
    elif kind in (b"mft1", b"mft2"):
        need = None
    else:
        need = size
    return need if need is not None and need <= size else None


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
            used = defined_size(data, off, size)
            if used is None:
                return None
            out[off:off + used] = data[off:off + used]      # bytes past what the type defines stay zero
        else:
            emptied.append((off, size))
    for off, size in emptied:       # after the kept ones: a text tag sharing bytes with one stays empty
        out[off:off + size] = data[off:off + 4] + bytes(size - 4)
        if data[off:off + 4] == b"mluc" and size >= 16:
            out[off + 12:off + 16] = struct.pack(">I", 12)    # no record, of the record size v4 defines
    return bytes(out)
