"""An ICC profile (ICCProfile, PS3.3 C.11.15) with nothing but the numbers colours need.

A profile is kept for colour management, but its text tags say who made it, for which screen,
in which hospital ('desc', 'cprt', 'dmnd', 'dmdd', 'vued'; v4 writes them as UTF-16 'mluc'),
and bytes no tag points at can hold anything. :func:`clean` writes the profile again (issue 13,
icc2) from the tags it keeps, so that nothing of the old layout survives:

- a fresh header of the numeric and enumerated fields only (:func:`_header`: version, class,
  colour spaces, the defined flag and attribute bits, intent, illuminant); the maker, model,
  creator, CMM and platform signatures, the creation date, the profile ID and the reserved bytes
  are zeros, and the size field is the new profile's length;
- a tag table of only the registered tag signatures of ``schemas/deid/safe_attributes.toml``
  [icc] (a private signature is four characters of anything: the tag is dropped), in signature
  order, with canonical offsets (:func:`pack`: the tags' data packed in that order, each from a
  4-byte boundary, zero padding, no gap and no trailing byte; data equal byte for byte written
  once and shared, ICC.1 7.3.1): the old offsets, sizes, order, gaps and tail are not kept;
- the data of a tag whose (type, signature) pair is in [icc] ``kept`` (what a colour transform
  reads: XYZ, TRC curves, LUTs, 'chad'), each only as far as its type defines
  (:func:`defined_ranges`), reserved bytes zero; an 'mAB ' / 'mBA ' laid out again, its
  sub-elements packed in the order of its offset fields (:func:`_lut_ab_blob`);
- 'desc' and 'cprt' (every profile class requires them) always, empty ([icc] ``empty_tags``:
  their type by the header's version, then the zeros of its smallest empty value,
  ``emptied_sizes``); every other tag dropped, so which tags the original held, and of which
  type, is not kept either. The numeric array types are kept only as 'chad' (nine s15Fixed16
  numbers).

A profile is refused (None: the element is removed) when it is no profile, a tag's data
overlaps another's other than an exact share (ICC.1 7.3.1 lets tags share one data block) or
the tag table, a signature appears twice, a tag has a type of [icc] ``refused_types``, a kept
tag is malformed, the fixed numbers of a kept tag (XYZ, 'chad', 'chrm', 'para', LUT matrices)
read as text (:func:`reads_as_text`: real values are small, so their bytes never spell four
characters), a curve (a 'curv' of two entries or more, an 'mft1' / 'mft2' input or output
table) is not monotonic (a name as 16-bit values is not), or the bytes of a curve, a CLUT or a
grid spell words (:func:`spells_words`: [icc] ``word_run`` letters in a row that go up and down,
longer than any run in the real profiles measured). The result is a valid profile, and cleaning
it again changes nothing. :func:`numbers` gives the kept fixed numbers, for the person search of
deid.engine and audit (which also read the whole profile's bytes for the file's own values).
"""
from __future__ import annotations

import re
import struct
import tomllib
from functools import cache

from vindr_cli.resources import schema_path

_HEADER = 128
_MAX_TAGS = 1024


@cache
def _policy() -> dict:
    data = tomllib.loads(schema_path("deid", "safe_attributes.toml").read_text(encoding="utf-8"))["icc"]
    if not data.get("reason") or not data.get("source"):
        raise ValueError("safe_attributes.toml: [icc] needs a reason and a source")
    enc = lambda xs: frozenset(x.encode("ascii") for x in xs)   # noqa: E731
    kept = {t.encode("ascii"): enc(sigs) for t, sigs in data["kept"].items()}
    refused = enc(data.get("refused_types", []))
    registered = enc(data["registered_tags"])
    if refused & frozenset(kept):
        raise ValueError("safe_attributes.toml: [icc] a type cannot be both kept and refused")
    if any(not sigs <= registered for sigs in kept.values()):
        raise ValueError("safe_attributes.toml: [icc] a kept tag signature is not registered")
    empty = {sig.encode("ascii"): tuple(t.encode("ascii") for t in types) for sig, types in data["empty_tags"].items()}
    sizes = {t.encode("ascii"): int(n) for t, n in data["emptied_sizes"].items()}
    if any(len(types) != 2 or not set(types) <= set(sizes) for types in empty.values()) or any(n < 8 for n in sizes.values()):
        raise ValueError("safe_attributes.toml: [icc] empty_tags: a v2 and a v4 type each, with emptied_sizes of 8 or more")
    if set(empty) & {sig for sigs in kept.values() for sig in sigs}:
        raise ValueError("safe_attributes.toml: [icc] a tag cannot be both kept and written empty")
    if int(data["word_run"]) < 4:
        raise ValueError("safe_attributes.toml: [icc] word_run is at least 4")
    return {"kept": kept, "refused": refused, "registered": registered,
            "empty_tags": empty, "emptied_sizes": sizes, "word_run": int(data["word_run"]),
            "classes": enc(data["header_classes"]), "spaces": enc(data["header_colour_spaces"])}


def kept_types() -> frozenset[bytes]:
    return frozenset(_policy()["kept"])


def refused_types() -> frozenset[bytes]:
    return _policy()["refused"]


# printable ASCII, or UTF-16 of it in either byte order, 4 characters or more: text
_TEXT = re.compile(rb"[\x20-\x7e]{4,}|(?:\x00[\x20-\x7e]){4,}|(?:[\x20-\x7e]\x00){4,}")


def reads_as_text(data: bytes) -> bool:
    """Fixed numbers of a colour profile (XYZ values about 0-2, matrix entries, curve
    parameters, chromaticities in 0-1, as s15Fixed16 / u16Fixed16) have a zero or 0xFF high
    byte, so their bytes never hold a run of four printable characters; planted text does."""
    return _TEXT.search(data) is not None


_LETTERS = re.compile(rb"[A-Za-z ]{4,}")


def _turns(run: bytes) -> int:
    """How often a run of bytes changes direction (up, then down, ...), equal steps ignored."""
    steps = [b - a for a, b in zip(run, run[1:]) if b != a]
    return sum(1 for x, y in zip(steps, steps[1:]) if (x > 0) != (y > 0))


def spells_words(data: bytes, width: int = 1) -> bool:
    """Curve and CLUT entries are numbers a transform needs, and any byte value is a real one,
    so four printable bytes in a row prove nothing (every long real curve has them). Words are
    letters in an order that goes up and down: [icc] ``word_run`` ASCII letters or spaces in a
    row that turn at least twice, in the bytes, and for 16-bit values (``width`` 2) in their low
    bytes (a name as 8-bit entries, as 16-bit values, as UTF-16-BE). Not in their high bytes:
    a Lab CLUT's a* and b* are about 0x8000, whose high bytes 0x6x-0x7x are lower-case letters
    (ghostscript's default_cmyk.icc has such runs); a monotonic curve's high bytes never turn.
    The real profiles measured have runs of 9 at most (bench/README.md, icc2)."""
    words = _words(_policy()["word_run"])
    for view in (data, data[1::2]) if width == 2 else (data,):
        for m in words.finditer(view):
            if _turns(m.group()) >= 2:
                return True
    return False


@cache
def _words(run: int) -> re.Pattern:
    return re.compile(rb"[A-Za-z ]{%d,}" % run)


def _monotonic(values) -> bool:
    return all(a <= b for a, b in zip(values, values[1:])) or all(a >= b for a, b in zip(values, values[1:]))


def _table_ok(data: bytes, at: int, count: int, entries: int, width: int) -> bool:
    """``count`` curves of ``entries`` values of ``width`` bytes at ``at`` (an 'mft1' / 'mft2'
    input or output table): each monotonic, and their bytes spelling no words."""
    fmt = ">%d%s" % (entries, "B" if width == 1 else "H")
    for i in range(count):
        start = at + i * entries * width
        if not _monotonic(struct.unpack_from(fmt, data, start)):
            return False
    return not spells_words(data[at:at + count * entries * width], width)


# parametricCurveType: parameters of each function type (ICC.1:2022 10.18, Table 68)
_PARA_PARAMS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
# arrays of numbers (no count: the size says how many): element size
_ARRAYS = {b"sf32": 4, b"uf32": 4, b"ui08": 1, b"ui16": 2, b"ui32": 4, b"ui64": 8}
_LUT_AB = (b"mAB ", b"mBA ")
# the numeric parts each fixed type keeps (after the type signature and 4 reserved bytes)
_CHAD = 8 + 9 * 4                     # chromaticAdaptationTag: a 3 x 3 s15Fixed16 matrix


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from(">I", data, at)[0]


def _u16(data: bytes, at: int) -> int:
    return struct.unpack_from(">H", data, at)[0]


def _curve_size(data: bytes, at: int, end: int) -> int | None:
    """A 'curv' / 'para' at ``at``: its defined size (None: unknown, past ``end``, or a
    parametric curve whose parameters read as text)."""
    if at + 12 > end:
        return None
    kind = data[at:at + 4]
    if kind == b"curv":
        count = _u32(data, at + 8)
        need = 12 + 2 * count
        if count >= 2 and at + need <= end:
            # a sampled tone curve goes one way (every real one measured does, bench/README.md
            # icc2); a name as 16-bit values does not, and a curve's bytes spell no words
            if not _monotonic(struct.unpack_from(f">{count}H", data, at + 12)) or spells_words(data[at + 12:at + need], 2):
                return None
    elif kind == b"para" and _u16(data, at + 8) in _PARA_PARAMS:
        need = 12 + 4 * _PARA_PARAMS[_u16(data, at + 8)]
        if at + need <= end and reads_as_text(data[at + 12:at + need]):
            return None
    else:
        return None
    return need if at + need <= end else None


def _curve_ranges(data: bytes, at: int, need: int) -> list[tuple[int, int]]:
    """The defined bytes of a curve of ``need`` bytes at ``at``: type, then count (curv) or
    function type (para: its 2 reserved bytes are not), then the numbers."""
    if data[at:at + 4] == b"para":
        return [(at, at + 4), (at + 8, at + 10), (at + 12, at + need)]
    return [(at, at + 4), (at + 8, at + need)]


def defined_ranges(data: bytes, off: int, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges (relative to the tag start, sorted, disjoint) a kept tag's type defines;
    the 4 reserved bytes after the type and every reserved or padding byte are in none. None
    (refuse the profile) when the declared size is shorter than the type needs, the layout is
    malformed or its fixed numbers read as text.

    'mAB ' / 'mBA ' (ICC.1:2022 10.12 / 10.13): the header's type, channels and offsets, and
    each sub-element its offsets reach (curves each to its defined size, the matrix, the CLUT's
    used grid points, precision and table); None when a sub-element runs past the tag, overlaps
    another or the header, has an unknown curve type or precision, or does not fit the channels."""
    kind = data[off:off + 4]
    if kind in _LUT_AB:
        return _lut_ab_ranges(data, off, size)
    end = off + size
    if kind in (b"curv", b"para"):
        need = _curve_size(data, off, end)
        return None if need is None else [(s - off, e - off) for s, e in _curve_ranges(data, off, need)]
    if kind == b"XYZ ":               # one XYZNumber, as every tag of that type holds (littleCMS reads one)
        if size < 20 or reads_as_text(data[off + 8:off + 20]):
            return None
        return [(0, 4), (8, 20)]
    if kind == b"sf32":               # kept only as 'chad' (kept pairs): nine numbers
        if size < _CHAD or reads_as_text(data[off + 8:off + _CHAD]):
            return None
        return [(0, 4), (8, _CHAD)]
    if kind == b"chrm":
        if size < 12:
            return None
        need = 12 + 8 * _u16(data, off + 8)
        if need > size or reads_as_text(data[off + 8:off + need]):
            return None
        return [(0, 4), (8, need)]
    if kind in (b"mft1", b"mft2"):
        if size < 52 and not (kind == b"mft1" and size >= 48):
            return None
        n_in, n_out, grid = data[off + 8], data[off + 9], data[off + 10]
        if not 1 <= n_in <= 15 or not 1 <= n_out <= 15:
            return None
        clut = grid ** n_in * n_out
        if kind == b"mft1":
            need = 48 + 256 * n_in + clut + 256 * n_out
        else:
            need = 52 + 2 * (_u16(data, off + 48) * n_in + clut + _u16(data, off + 50) * n_out)
        if need > size or reads_as_text(data[off + 12:off + 48]):
            return None
        if kind == b"mft1":
            tables = ((off + 48, n_in, 256, 1), (off + 48 + 256 * n_in + clut, n_out, 256, 1))
            table_at, width = off + 48 + 256 * n_in, 1
        else:
            n_i, n_o = _u16(data, off + 48), _u16(data, off + 50)
            if not 2 <= n_i <= 4096 or not 2 <= n_o <= 4096:
                return None                       # lut16Type: 2 to 4096 entries a table
            tables = ((off + 52, n_in, n_i, 2), (off + 52 + 2 * (n_i * n_in + clut), n_out, n_o, 2))
            table_at, width = off + 52 + 2 * n_i * n_in, 2
        if not all(_table_ok(data, *t) for t in tables) or spells_words(data[table_at:table_at + clut * width], width):
            return None
        return [(0, 4), (8, 11), (12, need)]
    return None                       # a type listed as kept but not bounded here


def _lut_ab_ranges(data: bytes, off: int, size: int) -> list[tuple[int, int]] | None:
    if size < 32:
        return None
    end = off + size
    n_in, n_out = data[off + 8], data[off + 9]
    if not 1 <= n_in <= 15 or not 1 <= n_out <= 15:
        return None
    o_b, o_mat, o_m, o_clut, o_a = struct.unpack_from(">5I", data, off + 12)
    ab = data[off:off + 4] == b"mAB "
    # channels each element works on: mAB runs A -> CLUT -> M -> matrix -> B, mBA the reverse
    pcs_side, dev_side = (n_out, n_in) if ab else (n_in, n_out)
    ranges = [(0, 4), (8, 10), (12, 32)]

    def curves(rel: int, count: int) -> bool:
        at = off + rel
        for _ in range(count):
            need = _curve_size(data, at, end)
            if need is None:
                return False
            ranges.extend((s - off, e - off) for s, e in _curve_ranges(data, at, need))
            at += need + (-need) % 4
        return True

    if not o_b or not curves(o_b, pcs_side):
        return None                                     # B curves are required in both types
    if bool(o_mat) != bool(o_m) or bool(o_clut) != bool(o_a):
        return None
    if o_mat:
        if pcs_side != 3 or o_mat + 48 > size or reads_as_text(data[off + o_mat:off + o_mat + 48]):
            return None
        ranges.append((o_mat, o_mat + 48))
        if not curves(o_m, pcs_side):
            return None
    if o_clut:
        if o_clut + 20 > size:
            return None
        grid = data[off + o_clut:off + o_clut + n_in]   # the CLUT maps the tag's inputs to its outputs
        precision = data[off + o_clut + 16]
        if precision not in (1, 2):
            return None
        points = 1
        for g in grid:
            points *= g
        table = points * n_out * precision
        if o_clut + 20 + table > size:
            return None
        if _LETTERS.search(bytes(grid).replace(b" ", b"\0")) or spells_words(
                data[off + o_clut + 20:off + o_clut + 20 + table], precision):
            return None                                 # grid points or entries that spell words
        ranges.extend([(o_clut, o_clut + n_in), (o_clut + 16, o_clut + 17), (o_clut + 20, o_clut + 20 + table)])
        if not curves(o_a, dev_side):
            return None
    ranges.sort()
    for (_s0, e0), (s1, _e1) in zip(ranges, ranges[1:]):
        if s1 < e0:
            return None                                 # two sub-elements share bytes
    if ranges[-1][1] > size:
        return None
    return [r for r in ranges if r[1] > r[0]]


def defined_size(data: bytes, off: int, size: int) -> int | None:
    """The end of the last byte a kept tag's type defines (None: refused, see
    :func:`defined_ranges`)."""
    ranges = defined_ranges(data, off, size)
    return None if ranges is None else max(e for _s, e in ranges)


def _header(data: bytes) -> bytes:
    """The header's numbers and listed signatures (ICC.1:2022 7.2); its size field is written by
    :func:`pack`."""
    pol = _policy()
    h = bytearray(_HEADER)
    if data[8] in (2, 4):
        h[8:10] = data[8:10]                            # version: major (ICC.1: 2 or 4), minor.bugfix; 10-11 reserved
    for at, listed in ((12, pol["classes"]), (16, pol["spaces"]), (20, pol["spaces"])):
        if data[at:at + 4] in listed:
            h[at:at + 4] = data[at:at + 4]
    h[36:40] = b"acsp"
    h[44:48] = struct.pack(">I", _u32(data, 44) & 0x3)                  # embedded, used independently
    h[60:64] = struct.pack(">I", _u32(data, 60) & 0xF)                  # reflective, glossy, positive, colour
    intent = _u32(data, 64)
    h[64:68] = struct.pack(">I", intent if intent <= 3 else 0)
    if not reads_as_text(data[68:80]):
        h[68:80] = data[68:80]                                          # PCS illuminant (D50)
    return bytes(h)


def _lut_ab_blob(data: bytes, off: int) -> bytes:
    """An 'mAB ' / 'mBA ' (checked by :func:`_lut_ab_ranges`) laid out again: its 32-byte header
    (type, channels, the five offsets), then its sub-elements in the order of the offset fields
    (B curves, matrix, M curves, CLUT, A curves), each from a 4-byte boundary, each curve only as
    far as it is defined and padded to 4 bytes, the CLUT's 16 grid bytes (those of channels that
    exist), its precision and its table: the old offsets and gaps are not kept."""
    n_in, n_out = data[off + 8], data[off + 9]
    o_b, o_mat, o_m, o_clut, o_a = struct.unpack_from(">5I", data, off + 12)
    ab = data[off:off + 4] == b"mAB "
    pcs_side, dev_side = (n_out, n_in) if ab else (n_in, n_out)
    body = bytearray(32)
    body[0:4], body[8], body[9] = data[off:off + 4], n_in, n_out
    offsets = []

    def curves(rel: int, count: int) -> bytes:
        out, at = bytearray(), off + rel
        for _ in range(count):
            need = _curve_size(data, at, len(data))
            one = bytearray(need)
            for s, e in _curve_ranges(data, at, need):
                one[s - at:e - at] = data[s:e]
            out += one + bytes(-need % 4)
            at += need + (-need) % 4
        return bytes(out)

    for rel, part in ((o_b, lambda: curves(o_b, pcs_side)),
                      (o_mat, lambda: data[off + o_mat:off + o_mat + 48]),
                      (o_m, lambda: curves(o_m, pcs_side)),
                      (o_clut, lambda: _clut_blob(data, off + o_clut, n_in, n_out)),
                      (o_a, lambda: curves(o_a, dev_side))):
        if not rel:
            offsets.append(0)
            continue
        offsets.append(len(body))
        blob = part()
        body += blob + bytes(-len(blob) % 4)
    struct.pack_into(">5I", body, 12, *offsets)
    return bytes(body)


def _clut_blob(data: bytes, at: int, n_in: int, n_out: int) -> bytes:
    points = 1
    for g in data[at:at + n_in]:
        points *= g
    precision = data[at + 16]
    head = bytearray(20)
    head[:n_in] = data[at:at + n_in]
    head[16] = precision
    return bytes(head) + data[at + 20:at + 20 + points * n_out * precision]


def _kept_blob(data: bytes, off: int, size: int) -> bytes | None:
    """A kept tag's data as the new profile holds it: only what its type defines, the rest (and
    anything after the defined end) gone; None: refused (:func:`defined_ranges`)."""
    ranges = defined_ranges(data, off, size)
    if ranges is None:
        return None
    if data[off:off + 4] in _LUT_AB:
        return _lut_ab_blob(data, off)
    out = bytearray(max(e for _s, e in ranges))
    for start, stop in ranges:
        out[start:stop] = data[off + start:off + stop]
    return bytes(out)


def _empty(kind: bytes) -> bytes:
    """An empty tag of type ``kind``: its type, then the zeros of its smallest empty value
    ([icc] emptied_sizes); an 'mluc' with no record keeps the record size v4 defines (12)."""
    out = bytearray(_policy()["emptied_sizes"][kind])
    out[0:4] = kind
    if kind == b"mluc":
        out[12:16] = struct.pack(">I", 12)
    return bytes(out)


def pack(header: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A profile of ``header`` (128 bytes; its size field is written here) and ``tags``
    (signature, data), laid out canonically: the table in signature order, the data packed in
    that order right after it, each block from a 4-byte boundary with zero padding, data equal
    byte for byte written once and shared (ICC.1 7.3.1), nothing after the last block. The
    layout depends on the signatures and data only."""
    tags = sorted(tags)
    start = _HEADER + 4 + 12 * len(tags)
    where: dict[bytes, int] = {}
    body, table = bytearray(), bytearray(struct.pack(">I", len(tags)))
    for sig, blob in tags:
        if blob not in where:
            where[blob] = start + len(body)
            body += blob + bytes(-len(blob) % 4)
        table += struct.pack(">4sII", sig, where[blob], len(blob))
    out = bytearray(header[:_HEADER]) + table + body
    struct.pack_into(">I", out, 0, len(out))
    return bytes(out)


def tags(profile: bytes) -> list[tuple[bytes, bytes]]:
    """The (signature, data) pairs of a profile's tag table, in table order (for :func:`pack`'s
    tests and the bench); a table entry past the end gives the bytes that are there."""
    count = min(_u32(profile, _HEADER), max(0, (len(profile) - _HEADER - 4) // 12))
    found = []
    for i in range(count):
        sig, off, size = struct.unpack_from(">4sII", profile, _HEADER + 4 + 12 * i)
        found.append((sig, profile[off:off + size]))
    return found


def clean(data: bytes) -> bytes | None:
    """The profile written again with only the numbers colours need, or None (refused: the
    element is removed)."""
    if len(data) < _HEADER + 4 or data[36:40] != b"acsp":
        return None
    count = _u32(data, _HEADER)
    table_end = _HEADER + 4 + 12 * count
    if count > _MAX_TAGS or table_end > len(data):
        return None
    pol = _policy()
    entries = [struct.unpack_from(">4sII", data, _HEADER + 4 + 12 * i) for i in range(count)]
    if len({sig for sig, _o, _s in entries}) != count:
        return None                                     # a signature twice: which one a reader takes is its choice
    blocks = sorted({(off, size) for _sig, off, size in entries})
    for off, size in blocks:
        if off < table_end or size < 8 or off + size > len(data) or data[off:off + 4] in pol["refused"]:
            return None
    for (o0, s0), (o1, _s1) in zip(blocks, blocks[1:]):
        if o1 < o0 + s0:
            return None                                 # overlapping data other than an exact share
    kept, done = [], {}
    for sig, off, size in entries:
        kind = data[off:off + 4]
        if sig not in pol["registered"]:
            continue                                    # a private signature: dropped from the table
        if sig not in pol["kept"].get(kind, ()):
            continue                                    # a text, a date, a name's bytes...: dropped
        if (off, size) not in done:
            done[(off, size)] = _kept_blob(data, off, size)
        blob = done[(off, size)]
        if blob is None:
            return None
        kept.append((sig, blob))
    header = _header(data)
    for sig, (v2, v4) in pol["empty_tags"].items():    # always, whatever the original held
        kept.append((sig, _empty(v4 if header[8] == 4 else v2)))
    return pack(header, kept)


def numbers(profile: bytes) -> list[int]:
    """The fixed numbers a cleaned profile keeps (header illuminant; XYZ, 'chad', 'chrm' and
    'para' values), as signed 32-bit integers: an ID written as one of them is found by the person
    search (deid.terms.value_views, "SL") in deid.engine and audit. Empty for no profile."""
    if len(profile) < _HEADER + 4 or profile[36:40] != b"acsp":
        return []
    found = list(struct.unpack_from(">3i", profile, 68))
    count = min(_u32(profile, _HEADER), (len(profile) - _HEADER - 4) // 12)
    spans = set()
    for i in range(count):
        _sig, off, size = struct.unpack_from(">4sII", profile, _HEADER + 4 + 12 * i)
        kind = profile[off:off + 4]
        start = {b"XYZ ": 8, b"sf32": 8, b"chrm": 12, b"para": 12}.get(kind)
        end = min(off + size, len(profile))
        if start is not None and off + start + 4 <= end:
            spans.add((off + start, off + start + (end - off - start) // 4 * 4))
    # each byte read once per 4-byte alignment (hostile10: a profile planted in an audited tree
    # whose thousands of table entries all cover the whole profile asked for entries x size / 4
    # numbers, gigabytes): spans that overlap, on the same alignment, are read as one, in order
    merged: list[list[int]] = []
    for s, e in sorted(spans, key=lambda x: (x[0] % 4, x[0])):
        if merged and s % 4 == merged[-1][0] % 4 and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    for s, e in merged:
        found.extend(struct.unpack_from(f">{(e - s) // 4}i", profile, s))
    return found
