"""Structural check of a Part 10 file's raw header bytes, before anything is de-identified.

pydicom reads damaged headers quietly: an element whose VR or length was corrupted (one bit,
``\\0\\0`` for a VR, a length off by +1000) "swallows" the elements after it into its value,
and the patient's name and ID then travel inside a value that no rule looks at. This module
walks the element headers itself — file meta (explicit VR little endian), then the data set
in its transfer syntax (explicit or implicit VR, little or big endian, deflated data sets
inflated first), into every sequence and item (defined and undefined lengths, UN sequences
of undefined length read as implicit VR little endian, encapsulated icon pixel data) — and
refuses the file (:class:`~vindr_cli.dicomio.header.BadInput`, ``failed``) with one of the
fixed reasons below when:

* an element header or value ends past the end of the file, its item or its sequence;
* a VR is not one of PS3.5's (explicit VR transfer syntaxes);
* tags are not in ascending order within a data set (where a swallowing element ends,
  parsing resumes in the middle of other elements: their "tags" are never in order);
* an item or sequence holds something other than items, or a delimiter where none can be;
* a text value (standard attributes; private ones are removed whole, with anything they
  swallowed) holds control bytes no text can hold (anything below 0x20 but TAB, LF, FF,
  CR and ESC, trailing NUL padding aside) or is longer than its VR allows (with slack for
  real exports: 2x for the ASCII VRs, 4 bytes a character for the others): swallowed
  element headers always carry such bytes (tag and length bytes of small groups);
* a binary value (OB, OW, UN, ...) ends in a run of well-formed element headers (two or
  more explicit VR elements, or implicit ones with dictionary tags in ascending order)
  that fills it exactly to its end: what a length grown by the size of the next
  elements looks like;
* the header ends before its pixel data: an image storage SOP class (pydicom's UID name
  ends in "Image Storage"), Rows and Columns present at the top level, but no pixel data
  element (the file was cut at an element boundary, or its pixel data was removed: an
  image without pixels either way, PS3.3 C.7.6.3 makes Pixel Data Type 1).

Pixel data at the top level ends the walk (it is not read). Elements that pydicom cannot
convert to their VR are found by :func:`check_values` (called on the data set pydicom read).
Cost (``bench/structure_bench.py``): the walk about 0.1-0.2 s per MB of header (pixel data is
never read; real headers are a few KB), decoding every value about 1 s per MB.
Reasons are fixed sentences: no value, no tag, no offset from the file.
"""
from __future__ import annotations

import re
import struct
import zlib
from typing import BinaryIO

from vindr_cli.dicomio.dictionary import dictionary_VR

REASON_TRUNCATED = "damaged header: it ends in the middle of an element (truncated file)"
REASON_LENGTH = "damaged header: an element's length runs past the end of its item, sequence or the file"
REASON_VR = "damaged header: an element has a value representation that is not one of PS3.5's"
REASON_ORDER = "damaged header: elements are not in ascending tag order (a damaged VR or length)"
REASON_ITEMS = "damaged header: a sequence holds something other than items, or a misplaced delimiter"
REASON_TEXT = "damaged header: a text value holds bytes no text can hold (it may have swallowed further elements)"
REASON_TOO_LONG = "damaged header: a value is longer than its value representation allows (it may have swallowed further elements)"
REASON_SWALLOWED = "damaged header: a binary value ends in a run of element headers (it swallowed further elements)"
REASON_NO_PIXELS = "damaged header: it ends before its pixel data (Rows and Columns present, no pixel data element)"
REASON_UNDEFINED = "damaged header: an undefined length on an element that cannot have one"
REASON_DEEP = "damaged header: sequences nested deeper than 64 levels"
REASON_UNREADABLE = "damaged header: an element's value cannot be read as its value representation"
REASON_META = "damaged file meta information: it is not a group 0002 run of explicit VR elements"

VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD",
                 b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI",
                 b"UL", b"UN", b"UR", b"US", b"UT", b"UV"})
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})  # PS3.5 7.1.2
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# PS3.5 Table 6.2-1: most bytes of one value (ASCII VRs, here with 2x slack for real exports:
# a 17-digit DS is common) and most characters (others, at up to 4 bytes each).
ASCII_MAX = {"AE": 16, "AS": 4, "CS": 16, "DA": 18, "DS": 16, "DT": 54, "IS": 12, "TM": 28, "UI": 64}
CHAR_MAX = {"LO": 64, "SH": 16, "PN": 3 * 64 + 2, "ST": 1024, "LT": 10240}
SINGLE_VALUED = {"ST", "LT", "UT", "UR"}
TEXT_VRS = frozenset(ASCII_MAX) | frozenset(CHAR_MAX) | {"UC", "UT", "UR"}
TEXT_CONTROL = frozenset({0x09, 0x0A, 0x0C, 0x0D, 0x1B})
_BAD_CONTROL = re.compile(b"[" + re.escape(bytes(b for b in range(0x20) if b not in TEXT_CONTROL)) + b"]")
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
ITEM_TAG = {"<": b"\xfe\xff\x00\xe0", ">": b"\xff\xfe\xe0\x00"}
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
ROWS, COLUMNS, SOP_CLASS = 0x00280010, 0x00280011, 0x00080016
MAX_DEPTH = 64
MAX_TEXT_READ = 4 << 20          # UT/UC/UR values are read whole up to this size (beyond: not scanned)
MAX_BINARY_SCAN = 1 << 20        # binary values scanned for swallowed element headers up to this size
BLOCK = 1 << 20


class Malformed(Exception):
    """A structural fault; ``str()`` is one of the fixed reasons above."""


class _Bytes:
    """Random access to a file's bytes through one cached block (forward reads are cheap,
    also for a zip member); or to bytes already in memory (an inflated data set)."""

    def __init__(self, f: BinaryIO | None, size: int, data: bytes | None = None, base: int = 0):
        self.f, self.size, self.data, self.base = f, size, data, base
        self.start, self.block = 0, b""

    def get(self, pos: int, n: int) -> bytes:
        if self.data is not None:
            return self.data[pos - self.base:pos - self.base + n]
        if pos < self.start or pos + n > self.start + len(self.block):
            if n > BLOCK:
                self.f.seek(pos)
                return self.f.read(n)
            self.f.seek(pos)
            self.start, self.block = pos, self.f.read(BLOCK)
        return self.block[pos - self.start:pos - self.start + n]


def _dict_vr(tag: int) -> str | None:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        if (tag >> 16) % 2 == 1 and 0x0010 <= (tag & 0xFFFF) <= 0x00FF:
            return "LO"                  # private creator
        return None
    return None if " or " in vr else vr


def _image_class(uid: str) -> bool:
    """An image storage SOP class (its Image Pixel module makes Pixel Data Type 1)."""
    from pydicom.uid import UID

    try:
        return "Image Storage" in UID(uid).name     # also "Digital X-Ray Image Storage - For Presentation"
    except Exception:
        return False


def text_fault(value: bytes, vr: str) -> str | None:
    """The reason a text value of ``vr`` is impossible (None: plausible)."""
    body = value.rstrip(b"\x00 ")
    if _BAD_CONTROL.search(body):          # a control byte other than TEXT_CONTROL's
        return REASON_TEXT
    parts = [body] if vr in SINGLE_VALUED else body.split(b"\\")
    if vr in ASCII_MAX and any(len(p) > 2 * ASCII_MAX[vr] for p in parts):
        return REASON_TOO_LONG
    if vr in CHAR_MAX and any(len(p) > 4 * CHAR_MAX[vr] for p in parts):
        return REASON_TOO_LONG
    return None


def _runs_to_end(value: bytes, start: int, explicit: bool, little: bool) -> int:
    """How many well-formed element headers, chained from ``start``, end exactly at the end
    of ``value`` (0: they do not)."""
    e = "<" if little else ">"
    pos, n, last, end = start, 0, -1, len(value)
    while pos + 8 <= end and n < 64:
        group, elem = struct.unpack(e + "HH", value[pos:pos + 4])
        tag = group << 16 | elem
        if tag <= last or group < 0x0008 or group == 0xFFFE:
            return 0
        if explicit:
            vr = value[pos + 4:pos + 6]
            if vr not in VRS:
                return 0
            if vr in LONG_VRS:
                if value[pos + 6:pos + 8] != b"\x00\x00" or pos + 12 > end:
                    return 0
                (length,) = struct.unpack(e + "L", value[pos + 8:pos + 12])
                pos += 12
            else:
                (length,) = struct.unpack(e + "H", value[pos + 6:pos + 8])
                pos += 8
        else:
            if _dict_vr(tag) is None:
                return 0
            (length,) = struct.unpack(e + "L", value[pos + 4:pos + 8])
            pos += 8
        if length == UNDEFINED:
            return 0
        pos += length
        last, n = tag, n + 1
        if pos == end:
            return n
    return 0


def holds_elements(value: bytes, explicit: bool, little: bool) -> bool:
    """True when ``value`` ends in a run of element headers filling it exactly (two or more
    elements; see the module docstring)."""
    if len(value) < 16 or len(value) > MAX_BINARY_SCAN:
        return False
    for start in range(0, len(value) - 15, 2):
        if _runs_to_end(value, start, explicit, little) >= 2:
            return True
    return False


class _Walker:
    def __init__(self, buf: _Bytes, little: bool):
        self.b, self.e = buf, "<" if little else ">"
        self.little = little
        self.sop_class = ""

    def _u16(self, pos: int) -> int:
        return struct.unpack(self.e + "H", self.b.get(pos, 2))[0]

    def dataset(self, pos: int, end: int | None, limit: int, explicit: bool, depth: int, top: bool = False) -> int:
        """Walk the elements from ``pos`` to ``end`` (None: to an item delimiter); returns the
        position after them. ``limit``: the end of the enclosing container."""
        if depth > MAX_DEPTH:
            raise Malformed(REASON_DEEP)
        last, seen_rows = -1, 0
        while True:
            if end is not None and pos == end:
                break
            hdr = self.b.get(pos, 8)
            if len(hdr) < 8 or pos + 8 > limit:
                if top and end is not None and pos >= limit:
                    break
                raise Malformed(REASON_TRUNCATED if pos + 8 > self.b.size else REASON_LENGTH)
            group, elem = struct.unpack(self.e + "HH", hdr[:4])
            tag = group << 16 | elem
            if tag == ITEM_END and end is None:
                if struct.unpack(self.e + "L", hdr[4:8])[0] != 0:
                    raise Malformed(REASON_ITEMS)
                return pos + 8
            if group == 0xFFFE:
                raise Malformed(REASON_ITEMS)
            if tag <= last:
                raise Malformed(REASON_ORDER)
            last = tag
            if explicit:
                vr_b = hdr[4:6]
                if vr_b not in VRS:
                    raise Malformed(REASON_VR)
                vr = vr_b.decode()
                if vr_b in LONG_VRS:
                    more = self.b.get(pos + 8, 4)
                    if len(more) < 4:
                        raise Malformed(REASON_TRUNCATED)
                    (length,) = struct.unpack(self.e + "L", more)
                    vpos = pos + 12
                else:
                    (length,) = struct.unpack(self.e + "H", hdr[6:8])
                    vpos = pos + 8
            else:
                vr = _dict_vr(tag)
                (length,) = struct.unpack(self.e + "L", hdr[4:8])
                vpos = pos + 8
            if top and depth == 0 and tag in PIXEL_TAGS:
                return pos      # the header ends here (a cut pixel data value is the pixel stages' reason)
            if tag in (ROWS, COLUMNS) and top:
                seen_rows += 1
            if tag == SOP_CLASS and top and length <= 64:
                self.sop_class = self.b.get(vpos, length).rstrip(b"\x00 ").decode("ascii", "replace")
            if length == UNDEFINED:
                if tag in PIXEL_TAGS:                       # encapsulated (an icon image)
                    pos = self.fragments(vpos, limit)
                elif vr == "SQ" or (explicit and vr == "UN") or (not explicit and vr in (None, "UN")):
                    pos = self.sequence(vpos, None, limit, explicit and vr != "UN", depth + 1)
                else:
                    raise Malformed(REASON_UNDEFINED)
                continue
            vend = vpos + length
            if vend > limit:
                raise Malformed(REASON_TRUNCATED if vend > self.b.size and limit == self.b.size else REASON_LENGTH)
            if vr == "UN" and explicit:                     # a value stored as UN: read it as its dictionary VR
                vr = _dict_vr(tag) or "UN"
                if vr == "SQ":                              # PS3.5 6.2.2: a UN sequence is implicit VR LE
                    self.sequence(vpos, vend, vend, False, depth + 1)
                    pos = vend
                    continue
            if vr == "SQ":
                self.sequence(vpos, vend, vend, explicit, depth + 1)
            elif vr in TEXT_VRS and length and group % 2 == 0:    # (private: removed with what it swallowed)
                # a VR with a most length a value is read whole at any size (hostile10: a 4 MB
                # PatientName passed unread, while a 1 MB one was REASON_TOO_LONG); UT/UC/UR
                # beyond MAX_TEXT_READ are not scanned
                if length <= MAX_TEXT_READ or vr in ASCII_MAX or vr in CHAR_MAX:
                    why = text_fault(self.b.get(vpos, length), vr)
                    if why:
                        raise Malformed(why)
            elif vr in BINARY_VRS and 16 <= length <= MAX_BINARY_SCAN and tag not in PIXEL_TAGS and group % 2 == 0:
                # (a private element is removed by every profile, with whatever it swallowed)
                value = self.b.get(vpos, length)
                if value[:4] == ITEM_TAG[self.e] and self._is_sequence(vpos, vend, depth):
                    pass                                    # a sequence stored as bytes (e.g. UN, implicit VR)
                elif holds_elements(value, explicit and vr != "UN", self.little):
                    raise Malformed(REASON_SWALLOWED)
            pos = vend
        if top and seen_rows == 2 and _image_class(self.sop_class):
            raise Malformed(REASON_NO_PIXELS)
        return pos

    def _is_sequence(self, pos: int, end: int, depth: int) -> bool:
        """A binary value that holds a whole sequence of items (in either VR encoding)."""
        for explicit in (True, False):
            try:
                self.sequence(pos, end, end, explicit, depth + 1)
            except (Malformed, struct.error):
                continue
            return True
        return False

    def sequence(self, pos: int, end: int | None, limit: int, explicit: bool, depth: int) -> int:
        while True:
            if end is not None and pos == end:
                return pos
            hdr = self.b.get(pos, 8)
            if len(hdr) < 8 or pos + 8 > limit:
                raise Malformed(REASON_TRUNCATED if pos + 8 > self.b.size else REASON_LENGTH)
            group, elem = struct.unpack(self.e + "HH", hdr[:4])
            (length,) = struct.unpack(self.e + "L", hdr[4:8])
            tag = group << 16 | elem
            if tag == SEQ_END and end is None:
                return pos + 8
            if tag != ITEM:
                raise Malformed(REASON_ITEMS)
            if length == UNDEFINED:
                pos = self.dataset(pos + 8, None, limit, explicit, depth)
            else:
                iend = pos + 8 + length
                if iend > limit:
                    raise Malformed(REASON_TRUNCATED if iend > self.b.size and limit == self.b.size else REASON_LENGTH)
                self.dataset(pos + 8, iend, iend, explicit, depth)
                pos = iend

    def fragments(self, pos: int, limit: int) -> int:
        while True:
            hdr = self.b.get(pos, 8)
            if len(hdr) < 8 or pos + 8 > limit:
                raise Malformed(REASON_TRUNCATED)
            group, elem = struct.unpack(self.e + "HH", hdr[:4])
            (length,) = struct.unpack(self.e + "L", hdr[4:8])
            tag = group << 16 | elem
            if tag == SEQ_END:
                return pos + 8
            if tag != ITEM or length == UNDEFINED:
                raise Malformed(REASON_ITEMS)
            pos += 8 + length
            if pos > limit:
                raise Malformed(REASON_LENGTH)


def _meta_end(buf: _Bytes) -> tuple[int, str]:
    """Walk the file meta (group 0002, explicit VR little endian) from byte 132; returns
    where the data set starts and the transfer syntax UID."""
    pos, ts, last = 132, "", -1
    while True:
        hdr = buf.get(pos, 8)
        if len(hdr) < 8:
            if len(hdr) == 0 and ts:
                return pos, ts
            raise Malformed(REASON_TRUNCATED)
        group, elem = struct.unpack("<HH", hdr[:4])
        if group != 0x0002:
            return pos, ts
        tag = group << 16 | elem
        if tag <= last:
            raise Malformed(REASON_ORDER)
        last = tag
        vr_b = hdr[4:6]
        if vr_b not in VRS:
            raise Malformed(REASON_META)
        if vr_b in LONG_VRS:
            more = buf.get(pos + 8, 4)
            if len(more) < 4:
                raise Malformed(REASON_TRUNCATED)
            (length,) = struct.unpack("<L", more)
            vpos = pos + 12
        else:
            (length,) = struct.unpack("<H", hdr[6:8])
            vpos = pos + 8
        if length == UNDEFINED:
            raise Malformed(REASON_UNDEFINED)
        if vpos + length > buf.size:
            raise Malformed(REASON_TRUNCATED)
        vr = vr_b.decode()
        if vr in TEXT_VRS and length:
            value = buf.get(vpos, length)
            why = text_fault(value, vr)
            if why:
                raise Malformed(why)
            if tag == 0x00020010:
                ts = value.rstrip(b"\x00 ").decode("ascii", "replace")
        pos = vpos + length


def check_structure(f: BinaryIO, size: int) -> None:
    """Raise :class:`Malformed` (a fixed reason) when the header of the Part 10 file ``f``
    (``size`` bytes) is not well formed; leaves ``f`` at 0. Deflated data sets are
    inflated in memory (their size is bounded by ``--max-inflate`` before this runs)."""
    from pydicom.uid import UID

    try:
        buf = _Bytes(f, size)
        start, ts_text = _meta_end(buf)
        ts = UID(ts_text)
        try:
            implicit, little, deflated = ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated
        except ValueError:                      # unknown: read_header refuses it already
            return
        if deflated:
            f.seek(start)
            data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(f.read())
            buf = _Bytes(None, len(data), data, 0)
            start = 0
        _Walker(buf, little).dataset(start, buf.size, buf.size, not implicit, 0, top=True)
    except (struct.error, zlib.error):
        raise Malformed(REASON_TRUNCATED) from None
    finally:
        f.seek(0)


def check_values(ds) -> None:
    """Raise :class:`Malformed` when pydicom cannot convert an element of ``ds`` (any depth)
    to its VR: such a value could only be passed on as raw, unchecked bytes. Private
    elements are left raw (every profile removes them undecoded, whatever they hold)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _convert(ds, 0)
    except Malformed:
        raise
    except Exception:
        raise Malformed(REASON_UNREADABLE) from None


def _convert(ds, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Malformed(REASON_DEEP)
    for tag in list(ds.keys()):
        if (tag >> 16) % 2 == 1:
            continue
        elem = ds[tag]                      # converts the raw value (cached in ds)
        if elem.VR == "SQ":
            for item in elem.value or []:
                _convert(item, depth + 1)
