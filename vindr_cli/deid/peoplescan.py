"""The first pass's cheap read: the person values of a file from a walk of its raw header bytes.

``deid.studyterms.people_of`` reads every input's header before the work (pydicom's
``dcmread`` up to the Pixel Data, then ``engine.person_values``, which converts the elements
that may hold a person); the work pass reads it again. That read was ≈ 2 ms a file, ≈ 18 % of
``vindr anonymize``'s CPU (bench/README.md, "studyterms", "firstpass"). :func:`scan` gets the
same answer from the bytes: it walks the element headers of the data set and of every sequence
item (tag, VR, length) without building pydicom data sets, and converts, with pydicom's own
``convert_raw_data_element`` and the encoding pydicom would use, only the elements
``person_values`` takes a value from (PN at any depth, the person tags, the study's dates, the
places) and the few ``identity.patient_key`` reads; each converted element goes through the
same ``engine.person_element`` as ``person_values``.

Safe by construction, not by imitation: the walk handles only the plain case, and whatever
else it meets it answers :class:`Unsure`, and the caller reads the file the old way (never
fewer people: the old read decides every file the walk is not sure of). The plain case: a
file (not a zip member) with a Part 10 preamble and file meta pydicom reads, not a DICOMDIR;
a data set pydicom reads as Explicit VR Little Endian (the native syntax and every
encapsulated one) or Implicit VR Little Endian, without a command set; explicit VRs one of the
standard two letters and not UN (pydicom would resolve a UN); implicit VRs as pydicom's
``hooks.raw_element_vr`` finds them (the dictionary; a private element by its creator in the
private dictionary, creators of plain ASCII only; else UN) and undefined lengths as its reader
does (a sequence if the dictionary says so or, unknown, if an item follows); tags strictly
ascending in each data set (pydicom keeps one element a tag, in file order); lengths that fit
in their data set, item and sequence exactly (undefined lengths only for sequences and items);
no Specific Character Set inside an item; the data set ending at the end of the file or at the
top level's Pixel Data (pydicom's ``stop_before_pixels``); at most :data:`MAX_DEPTH` levels;
SOPClassUID and SOPInstanceUID at the top and a character set ``read_header`` accepts (else
the old read gives the file no values: the main pass fails it); no conversion or person rule
raising. Proofs: tests/test_peoplescan.py (the same values as the old read on pydicom's test
files, the sample export, deid-data, pydicom-data, every cut and changed byte of a file, and
Hypothesis data sets).
"""
from __future__ import annotations

import struct
import warnings
from typing import BinaryIO

from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.datadict import _dictionary_vr_fast, private_dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import ImplicitVRLittleEndian, PrivateTransferSyntaxes
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR
from pydicom.values import empty_value_for_VR

from vindr_cli.dicomio.dictionary import dictionary_VR

MAX_DEPTH = 32          # deeper nesting: the old read (person_values recurses to 64)
# An element's part of the answer depends only on its tag, VR, bytes, the character set, implicit
# VR and whether it is at the top (person_element): a batch's staff, places and dates repeat from
# file to file, so each distinct one is converted once in a worker (PHI, this process's memory
# only, like the values it returns; emptied when full).
MEMO_SIZE = 4096
_MEMO: dict[tuple, tuple[tuple[str, ...], tuple[str, ...]]] = {}
MEMO_BYTES = 1024       # longer values are converted every time (the memo stays small)
# bytes read for the walk: the first 64 KiB, then 1 MiB, then 16 MiB (None: the whole file); a header
# longer than the last: the old read. Read, not mapped: a file cut short while mapped would kill the
# process (SIGBUS), not fail one input
CHUNKS = (1 << 16, 1 << 20, 1 << 24)

_VRS = {vr.encode("ascii"): str(vr) for vr in STANDARD_VR if len(vr) == 2 and vr != "UN"}
_LONG = {str(vr) for vr in EXPLICIT_VR_LENGTH_32}
_HEAD = struct.Struct("<HH2sH").unpack_from
_U32 = struct.Struct("<L").unpack_from
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXELS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_CHARSET = 0x00080005
# what identity.patient_key, studyterms and read_header's checks read at the top level
_TOP = frozenset({_CHARSET, 0x00080016, 0x00080018, 0x00100010, 0x00100020, 0x00100021, 0x00100030, 0x0020000D})
_UNDEFINED = 0xFFFFFFFF


class Unsure(Exception):
    """The walk met something outside its plain case: read the file the old way."""


def scan(f: BinaryIO, size: int, patient_match: str, places: list[str]):
    """``(study, patient key, person values)`` of an open Part 10 file as ``people_of``'s old read
    gives them (its places appended to ``places``); :class:`Unsure` for anything else."""
    if size < 132:
        raise Unsure
    f.seek(128)
    if f.read(4) != b"DICM":
        raise Unsure
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = _read_file_meta_info(f)
    except Exception:
        raise Unsure from None
    if not _plain_syntax(meta.get("TransferSyntaxUID")) or meta.get("MediaStorageSOPClassUID") == "1.2.840.10008.1.3.10":
        raise Unsure
    start = f.tell()
    from vindr_cli.dicomio.header import BadInput, _check_encoding

    try:
        _check_encoding(f, meta)
    except BadInput:
        raise Unsure from None
    implicit = meta.TransferSyntaxUID == ImplicitVRLittleEndian
    for chunk in CHUNKS:        # the file's first bytes; more only when the header goes on past them
        f.seek(0)
        buf = f.read(chunk) if chunk else f.read()
        whole = not chunk or len(buf) < chunk or not f.read(1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return _walk_file(buf, start, implicit, whole, patient_match, places)
        except Unsure:
            if whole:
                raise
            del places[:]
        except Exception:           # a conversion or a rule that raised: the old read says what that means
            raise Unsure from None
    raise Unsure


def _plain_syntax(uid) -> bool:
    """A known transfer syntax whose data set pydicom reads as Explicit VR Little Endian, as it
    is: the native one and every encapsulated one (JPEG, JPEG 2000, RLE...); not implicit VR,
    big endian, deflated or one of pydicom's private syntaxes."""
    if uid == ImplicitVRLittleEndian:
        return True
    try:
        return bool(uid) and uid.is_transfer_syntax and not uid.is_implicit_VR and uid.is_little_endian and \
            not uid.is_deflated and uid not in PrivateTransferSyntaxes
    except Exception:
        return False


def _walk_file(buf: bytes, start: int, implicit: bool, whole: bool, patient_match: str, places: list[str]):
    """The walk over ``buf``, the file's first bytes (``whole``: all of them)."""
    from vindr_cli.deid.engine import person_element
    from vindr_cli.deid.identity import patient_key
    from vindr_cli.dicomio.header import check_charset

    end = len(buf)
    top: dict = {}
    needed: list[tuple[int, RawDataElement]] = []      # (depth, raw) of what person_values converts
    pos = _walk(buf, start, end, 0, top, needed, implicit, top_level=True)
    if pos != end and not (end - pos >= 8 and _tag(buf, pos) in _PIXELS):
        raise Unsure
    if pos == end and not whole:        # the bytes read ended, not the file
        raise Unsure
    if 0x00080016 not in top or 0x00080018 not in top:
        raise Unsure
    charset = top[_CHARSET].value if _CHARSET in top else None
    ds = Dataset(top)       # (converts into ``top``)
    ds.set_original_encoding(implicit, True, ds._character_set)   # as pydicom's read_partial does
    try:
        check_charset(ds)
    except Exception:
        raise Unsure from None
    encoding = ds.original_character_set or ds._character_set
    if charset is not None:     # an undefined-length sequence is read with the generator's own conversion
        from pydicom.charset import convert_encodings
        from pydicom.values import convert_string

        if convert_encodings(convert_string(charset or b"", True)) != encoding:
            raise Unsure
    out: list[str] = []
    charsets = tuple(encoding) if isinstance(encoding, list) else encoding
    for depth, raw in needed:
        key = (raw.tag, raw.VR, raw.value, charsets, implicit, depth == 0)
        got = _MEMO.get(key)
        if got is None:
            elem = convert_raw_data_element(raw, encoding=encoding, ds=None)
            if elem.VR != raw.VR:
                raise Unsure
            values: list[str] = []
            found: list[str] = []
            person_element(int(raw.tag), elem.VR, elem.value, depth, values, None, found, raw)
            got = (tuple(values), tuple(found))
            if raw.length <= MEMO_BYTES:
                if len(_MEMO) >= MEMO_SIZE:
                    _MEMO.clear()
                _MEMO[key] = got
        out.extend(got[0])
        places.extend(got[1])
    study = str(ds.get("StudyInstanceUID", "") or "").strip()
    return study, patient_key(ds, patient_match), out


def _tag(buf, pos: int) -> int:
    group, element = struct.unpack_from("<HH", buf, pos)
    return group << 16 | element


def _walk(buf, pos: int, end: int | None, depth: int, top: dict | None, needed: list, implicit: bool,
          top_level: bool = False) -> int:
    """Walk one data set's elements from ``pos`` to ``end`` (None: to its item delimiter, whose end
    is returned); the top level stops at the Pixel Data. Collects what must be converted."""
    from vindr_cli.deid.engine import _BIRTH_DATE, _PERSON_DATES, _PERSON_TAGS, _PLACE_TAGS

    size = len(buf)
    limit = size if end is None else end
    last = -1
    creators: dict[int, str] = {}       # implicit VR: this data set's private creators (pydicom's VR look-up)
    if implicit and top_level and pos + 6 <= limit and all(0x40 < b < 0x5B for b in buf[pos + 4:pos + 6]):
        raise Unsure        # pydicom would read this data set as explicit VR
    while pos < limit:
        if pos + 8 > limit:
            raise Unsure
        group, element, vr_bytes, short = _HEAD(buf, pos)
        tag = group << 16 | element
        if end is None and tag == _ITEM_END:
            if buf[pos + 4:pos + 8] != b"\0\0\0\0":
                raise Unsure
            return pos + 8
        if top_level and tag in _PIXELS:      # pydicom reads its VR and length before it stops
            if not implicit and (vr_bytes not in _VRS or (_VRS[vr_bytes] in _LONG and pos + 12 > limit)):
                raise Unsure
            return pos
        if tag <= last or group == 0xFFFE or group == 0x0002 or (not top_level and tag == _CHARSET) or \
                (top_level and group == 0):         # pydicom reads a command set (0000,eeee) as implicit VR
            raise Unsure
        last = tag
        if implicit:
            length = _U32(buf, pos + 4)[0]
            value_at = pos + 8
            if length == _UNDEFINED:    # pydicom: a sequence if the dictionary says so, or, unknown, if items follow
                try:
                    vr = _dictionary_vr_fast(tag)
                except KeyError:
                    vr = "SQ" if value_at + 4 <= limit and _tag(buf, value_at) == _ITEM else None
            else:
                vr = _implicit_vr(tag, creators)
        else:
            vr = _VRS.get(vr_bytes)
            if vr is None:
                raise Unsure
            if vr in _LONG:
                if short or pos + 12 > limit:
                    raise Unsure
                length = _U32(buf, pos + 8)[0]
                value_at = pos + 12
            else:
                length = short
                value_at = pos + 8
        if vr == "SQ":
            if depth >= MAX_DEPTH or (top_level and tag < _CHARSET):     # read before the character set
                raise Unsure
            pos = _sequence(buf, value_at, length, limit, depth + 1, needed, implicit)
            continue
        if length == _UNDEFINED or value_at + length > limit or vr is None:
            raise Unsure
        if implicit and group & 1 and 0x10 <= element < 0x100:
            creators[tag] = _creator(buf[value_at:value_at + length])
        if top is not None and tag in _TOP or vr == "PN" or tag in _PERSON_TAGS or tag == _BIRTH_DATE \
                or tag in _PLACE_TAGS or (depth == 0 and tag in _PERSON_DATES):
            value = buf[value_at:value_at + length] if length else empty_value_for_VR(vr, raw=True)
            raw = RawDataElement(BaseTag(tag), vr, length, value, value_at, implicit, True)
            if top is not None and tag in _TOP:
                top[BaseTag(tag)] = raw
            if vr == "PN" or tag in _PERSON_TAGS or tag == _BIRTH_DATE or tag in _PLACE_TAGS or \
                    (depth == 0 and tag in _PERSON_DATES):
                needed.append((depth, raw))
        pos = value_at + length
    if end is not None and pos != end:
        raise Unsure
    if end is None:
        raise Unsure                # an undefined-length item without its delimiter
    return pos


_CREATOR_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.,:;-+()/&")


def _creator(value: bytes) -> str:
    """A private creator's value as pydicom's conversion gives it (LO: text, padding stripped),
    for bytes every character set reads alike; anything else: Unsure."""
    if not _CREATOR_BYTES.issuperset(value.rstrip(b"\0")):
        raise Unsure
    got = convert_raw_data_element(RawDataElement(BaseTag(0x00090010), "LO", len(value), value, 0, True, True)).value
    if not isinstance(got, str):
        raise Unsure
    return got


def _implicit_vr(tag: int, creators: dict[int, str]) -> str:
    """pydicom's VR for an implicit VR element (``hooks.raw_element_vr``): the dictionary's; a
    private creator LO; a private element the private dictionary's by its creator, else UN; a
    group length UL; anything else UN."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        pass
    group, element = tag >> 16, tag & 0xFFFF
    if group & 1:
        if 0x10 <= element < 0x100:
            return "LO"
        creator = creators.get(group << 16 | element >> 8) if element & 0xFF00 else None
        if creator:
            try:
                return private_dictionary_VR(BaseTag(tag), creator)
            except KeyError:
                pass
        return "UN"
    return "UL" if element == 0 else "UN"


def _sequence(buf, pos: int, length: int, limit: int, depth: int, needed: list, implicit: bool) -> int:
    """Walk a sequence's items from ``pos`` (its value); the position after it."""
    if length != _UNDEFINED:
        end = pos + length
        if end > limit:
            raise Unsure
    else:
        end = None
    while end is None or pos < end:
        stop = limit if end is None else end
        if pos + 8 > stop:
            raise Unsure
        tag = _tag(buf, pos)
        item_length = _U32(buf, pos + 4)[0]
        if end is None and tag == _SEQ_END:
            if item_length:
                raise Unsure
            return pos + 8
        if tag != _ITEM:
            raise Unsure
        pos += 8
        if item_length == _UNDEFINED:
            pos = _walk(buf, pos, None, depth, None, needed, implicit)
            if end is not None and pos > end:
                raise Unsure
        else:
            if pos + item_length > stop:
                raise Unsure
            pos = _walk(buf, pos, pos + item_length, depth, None, needed, implicit)
    if pos != end:
        raise Unsure
    return pos
