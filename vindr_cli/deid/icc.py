"""An ICC profile (ICCProfile, PS3.3 C.11.15) with nothing but its numbers.

A profile is kept for colour management, but its text tags say who made it, for which screen,
in which hospital ('desc', 'cprt', 'dmnd', 'dmdd', 'vued'; v4 writes them as UTF-16 'mluc'),
and bytes no tag points at can hold anything. :func:`clean` writes the header, the tag table
and the data of the numeric tag types of ``schemas/deid/safe_attributes.toml`` [icc], each only as
far as its type defines (:func:`defined_size`, review 8); the rest is zeros (red team 7). The result is a valid profile, and cleaning it again changes nothing.
The offset-based 'mAB ' / 'mBA ' tags keep only their header and the sub-elements their offsets
reach, each as far as it is defined (:func:`defined_ranges`, issue 13); a profile with a tag of
the [icc] ``refused_types`` ('mpet', 'rcs2': offsets to elements not bounded here) is refused.
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


@cache
def refused_types() -> frozenset[bytes]:
    data = tomllib.loads(schema_path("deid", "safe_attributes.toml").read_text(encoding="utf-8"))["icc"]
    refused = frozenset(t.encode("ascii") for t in data.get("refused_types", []))
    if refused & kept_types():
        raise ValueError("safe_attributes.toml: [icc] a type cannot be both kept and refused")
    return refused


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
    than the type needs. For 'mAB ' / 'mBA ' the end of the last defined byte (the bytes kept
    are :func:`defined_ranges`)."""
    if data[off:off + 4] in _LUT_AB:
        ranges = defined_ranges(data, off, size)
        return None if ranges is None else max(end for _start, end in ranges)
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
    keep, refused = kept_types(), refused_types()
    emptied = []
    for i in range(count):
        _sig, off, size = struct.unpack_from(">4sII", data, _HEADER + 4 + 12 * i)
        if off < table_end or size < 8 or off + size > len(data):
            return None
        if data[off:off + 4] in refused:
            return None
        if data[off:off + 4] in keep:
            ranges = defined_ranges(data, off, size)
            if ranges is None:
                return None
            for start, stop in ranges:      # bytes the type does not define stay zero
                out[off + start:off + stop] = data[off + start:off + stop]
        else:
            emptied.append((off, size))
    for off, size in emptied:       # after the kept ones: a text tag sharing bytes with one stays empty
        out[off:off + size] = data[off:off + 4] + bytes(size - 4)
        if data[off:off + 4] == b"mluc" and size >= 16:
            out[off + 12:off + 16] = struct.pack(">I", 12)    # no record, of the record size v4 defines
    return bytes(out)


# lutAtoBType 'mAB ' / lutBtoAType 'mBA ' (ICC.1:2022 10.12 / 10.13): a 32-byte header (type,
# reserved, input and output channels, padding, then offsets from the tag start to the B curves,
# matrix, M curves, CLUT and A curves; 0 = absent). Curves are 'curv' / 'para', one per channel,
# each starting at the next 4-byte boundary; the matrix is 12 s15Fixed16 (48 bytes); the CLUT is
# 16 grid-point bytes (one per input channel used), a precision byte (1 or 2), 3 padding bytes,
# then product(grid) x outputs x precision bytes.
_LUT_AB = (b"mAB ", b"mBA ")


def _curve_size(data: bytes, at: int, end: int) -> int | None:
    if at + 12 > end:
        return None
    kind = data[at:at + 4]
    if kind == b"curv":
        need = 12 + 2 * struct.unpack_from(">I", data, at + 8)[0]
    elif kind == b"para" and struct.unpack_from(">H", data, at + 8)[0] in _PARA_PARAMS:
        need = 12 + 4 * _PARA_PARAMS[struct.unpack_from(">H", data, at + 8)[0]]
    else:
        return None                                     # an unknown curve type refuses the profile
    return need if at + need <= end else None


def defined_ranges(data: bytes, off: int, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges (relative to the tag start, sorted, disjoint) a kept tag's type defines:
    for 'mAB ' / 'mBA ' the header's type, channels and offsets, and each sub-element its offsets
    reach (curves each to its defined size, the matrix, the CLUT's used grid points, precision
    and table); reserved and padding bytes and every byte between or after them are not in any
    range. None (refuse the profile) when a sub-element runs past the tag, overlaps another or
    the header, has an unknown curve type or precision, or does not fit the channels. Other
    kept types: ``[(0, defined_size)]``."""
    kind = data[off:off + 4]
    if kind not in _LUT_AB:
        used = defined_size(data, off, size)
        return None if used is None else [(0, used)]
    if size < 32:
        return None
    end = off + size
    n_in, n_out = data[off + 8], data[off + 9]
    if not 1 <= n_in <= 15 or not 1 <= n_out <= 15:
        return None
    o_b, o_mat, o_m, o_clut, o_a = struct.unpack_from(">5I", data, off + 12)
    ab = kind == b"mAB "
    # channels each element works on: mAB runs A -> CLUT -> M -> matrix -> B, mBA the reverse
    pcs_side, dev_side = (n_out, n_in) if ab else (n_in, n_out)
    ranges = [(0, 4), (8, 10), (12, 32)]

    def curves(rel: int, count: int) -> bool:
        at = off + rel
        for _ in range(count):
            need = _curve_size(data, at, end)
            if need is None:
                return False
            ranges.extend([(at - off, at - off + 4), (at - off + 8, at - off + need)])
            at += need + (-need) % 4
        return True

    if not o_b or not curves(o_b, pcs_side):
        return None                                     # B curves are required in both types
    if bool(o_mat) != bool(o_m) or bool(o_clut) != bool(o_a):
        return None
    if o_mat:
        if pcs_side != 3 or o_mat + 48 > size:
            return None
        ranges.append((o_mat, o_mat + 48))
        if not curves(o_m, pcs_side):
            return None
    if o_clut:
        if o_clut + 20 > size:
            return None
        grid_in, grid_out = n_in, n_out        # the CLUT maps the tag's inputs to its outputs
        grid = data[off + o_clut:off + o_clut + grid_in]
        precision = data[off + o_clut + 16]
        if precision not in (1, 2):
            return None
        points = 1
        for g in grid:
            points *= g
        table = points * grid_out * precision
        if o_clut + 20 + table > size:
            return None
        ranges.extend([(o_clut, o_clut + grid_in), (o_clut + 16, o_clut + 17),
                       (o_clut + 20, o_clut + 20 + table)])
        if not curves(o_a, dev_side):
            return None
    ranges.sort()
    for (_s0, e0), (s1, _e1) in zip(ranges, ranges[1:]):
        if s1 < e0:
            return None                                 # two sub-elements share bytes
    if ranges[-1][1] > size:
        return None
    return [r for r in ranges if r[1] > r[0]]
