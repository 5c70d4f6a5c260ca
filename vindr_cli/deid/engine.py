"""Walk a dataset (every sequence at every depth), apply the profile, rebuild file meta, mark it.

Input: a FileDataset read without its pixel data. Output: the same object, de-identified,
plus what the batch needs to know (substitute ids) and what only the custodian may keep
(original ids and the identifying values removed, for the linkage table and the audit).
"""
from __future__ import annotations

import hashlib
import pickle
import re
import threading
import tomllib
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import cache

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from vindr_cli import __version__
from vindr_cli.deid import actions, codes, identity, policy
from vindr_cli.deid.identity import DEFAULT_PATIENT_MATCH
from vindr_cli.deid.iod import attribute_type, resolve_compound
from vindr_cli.deid.profile import Profile
from vindr_cli.deid.substitutes import Substitutes
from vindr_cli.deid.terms import (_DIGITS, NUMBER_FORMATS, OWN_SUBSTITUTE, TermSet, TermUnion, _placeholders,
                                  build_terms, decode_all, fold, tokens, value_text, value_views)
from vindr_cli.dicomio import provenance
from vindr_cli.dicomio.dictionary import dictionary_VM, dictionary_VR
from vindr_cli.dicomio.structure import ASCII_MAX, TEXT_VRS, text_fault
from vindr_cli.errors import InternalError
from vindr_cli.resources import schema_path

IMPLEMENTATION_CLASS_UID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/vindr/vindr_cli").int)
IMPLEMENTATION_VERSION = ("VINDR_" + __version__)[:16]
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
DATE_VRS = {"DA", "DT"}


# VRs of a Type 1 attribute that a keep-list profile keeps (when deid.policy judges the value
# safe) instead of writing a dummy: numbers and coded strings name no one once their grammar
# is checked, and a dummy 0 or "ANONYMOUS" would make the instance invalid or lie about it
# (ImageOrientationPatient, ImageType). Dates, times, UIDs and text get the dummy.
KEEP_LIST_TYPE1_KEPT = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "CS", "AT"})  # AT: a tag pointer


class EngineError(InternalError):
    """A dataset that cannot be de-identified (one line, no PHI).

    A per-file outcome: ``deid.task`` catches it and records the file as ``failed`` with the
    message as its reason; the batch goes on. It is in the hierarchy (as an InternalError,
    exit 3) because one that escapes the per-file handler is a bug, and its message, being a
    fixed PHI-free sentence, may then be printed as it is.
    """


@cache
def _term_tags() -> frozenset[int]:
    data = tomllib.loads(schema_path("deid", "audit_terms.toml").read_text(encoding="utf-8"))
    return frozenset(tag_for_keyword(k) for k in data["keywords"])


@dataclass
class Outcome:
    patient_key: str                       # original identity of the patient (PHI: linkage only)
    ids: dict[str, str]                    # substitute identities
    originals: dict[str, str]              # original identities (PHI: linkage only)
    terms: set[str] = field(default_factory=set)   # identifying values removed (PHI: linkage only)
    counts: Counter = field(default_factory=Counter)


def _element(ds: Dataset, tag: int):
    """``ds[tag]``, the very object pydicom returns: one dict look-up when the element was
    converted already (``dicomio.structure.check_values`` converts every standard element of a
    file read by ``read_header``), else ``ds[tag]`` (which converts a raw element, or raises
    ``KeyError``). Saves pydicom's tag normalisation on the walk's ~300 look-ups a file."""
    elem = ds._dict.get(tag)
    return elem if type(elem) is DataElement else ds[tag]


def _raw_element(ds: Dataset, tag: int):
    """``ds.get_item(tag)`` (the element, raw if never converted), by one dict look-up when
    it was converted already."""
    elem = ds._dict.get(tag)
    return elem if type(elem) is DataElement else ds.get_item(tag)


def _vr_of(elem) -> str:
    """The element's VR as stored; for implicit VR or UN, the dictionary's."""
    vr = getattr(elem, "VR", None)
    if vr and vr not in ("UN",):
        return vr
    try:
        return dictionary_VR(elem.tag)
    except KeyError:
        return vr or "UN"


HIDING_VRS = {"SQ", "OB", "OW", "UN", "UT", "UC", "LT", "ST", "OD", "OF", "OL", "OV"}


def _vr_matches(elem, dict_vr: str) -> bool:
    """The stored VR agrees with the dictionary (implicit VR files store none)."""
    stored = getattr(elem, "VR", None)
    if stored is None:
        return True
    try:
        known = dictionary_VR(elem.tag)
    except KeyError:
        return True
    return stored == dict_vr or stored in known.split(" or ")


# Kept values are checked against their VR before they are kept (PS3.5 6.2): a length field
# damaged or grown by an export fault makes an element swallow the elements after it (names,
# IDs, whole sequences) into its value, which would then be "kept as read".
_CHARS = {   # PS3.5 Table 6.2-1 character repertoires of the coded and numeric string VRs; CS also
    # admits lower case, '-' and '.', common in real exports ("Chest") and no channel for a value
    "CS": frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-."), "DS": frozenset(b"0123456789+-.eE "),
    "IS": frozenset(b"0123456789+- "), "DA": frozenset(b"0123456789- "), "TM": frozenset(b"0123456789.:- "),
    "AS": frozenset(b"0123456789DWMY "), "UI": frozenset(b"0123456789."),
}
_CHARS_BYTES = {vr: bytes(sorted(chars)) for vr, chars in _CHARS.items()}
_FIXED = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "SV": 8, "UV": 8}


PIXEL_DESCRIPTION = frozenset({0x00280002, 0x00280004, 0x00280008, 0x00280010, 0x00280011, 0x00280100, 0x00280101,
                               0x00280102, 0x00280103})    # samples, photometric, frames, rows, columns, bits, sign
DAMAGED_PIXEL_DESCRIPTION = "damaged header: an image pixel description attribute has an impossible value"
IMPLAUSIBLE_VALUE = "damaged header: a kept attribute has a value its value representation cannot hold (it may have swallowed further elements)"
UNREADABLE_VALUE = "damaged header: an element's value cannot be read as its value representation"


def plausible_value(raw, vr: str) -> bool:
    """False when a raw (undecoded) value cannot be valid for ``vr``: too long for a value,
    control bytes in text, non-ASCII in an ASCII-only VR, a binary length that is not a
    whole number of values or more values than the dictionary's fixed VM allows."""
    value = getattr(raw, "value", None)
    if value is None or value == "" or value == b"":
        return True
    if not isinstance(value, (bytes, bytearray)):     # decoded by pydicom: check the text it holds
        if vr in _FIXED:
            try:
                vm = dictionary_VM(raw.tag)
            except KeyError:
                return True
            n = len(value) if isinstance(value, (list, tuple, MultiValue)) else 1
            return not vm.isdigit() or n <= int(vm)
        if vr not in TEXT_VRS:
            return True
        values = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        texts = [v.original_string if isinstance(getattr(v, "original_string", None), bytes) else str(v) for v in values]
        value = b"\\".join(t if isinstance(t, bytes) else t.encode("utf-8", "surrogateescape") for t in texts)
    if vr in _FIXED:
        size = _FIXED[vr]
        if len(value) % size:
            return False
        try:
            vm = dictionary_VM(raw.tag)
        except KeyError:
            return True
        return not vm.isdigit() or len(value) // size <= int(vm)
    if vr not in TEXT_VRS:
        return True
    # control bytes, or a value beyond twice its PS3.5 length (the same rule as the structure
    # check: a value a little too long, a DS of 17+ characters, is a grammar question for
    # deid.policy; one far beyond it may hold swallowed elements and fails the file)
    if text_fault(bytes(value), vr):
        return False
    if vr in ASCII_MAX:
        body = bytes(value).rstrip(b"\x00 ")
        allowed = _CHARS_BYTES.get(vr)       # (deleting the allowed bytes leaves nothing)
        return body.isascii() and (allowed is None or not body.replace(b"\\", b"").translate(None, allowed))
    return True


def _rule_vr(elem) -> str:
    """The VR that decides the rule: the dictionary's when it has one (a file cannot hide a
    person name by declaring another VR), else the stored one."""
    try:
        vr = dictionary_VR(elem.tag)
        if " or " not in vr:
            return vr
    except KeyError:
        pass
    return _vr_of(elem)


def _text(ds: Dataset, keyword: str) -> str:
    v = ds.get(keyword)
    return "" if v is None else str(v).strip()


def patient_key(ds: Dataset, match: str = DEFAULT_PATIENT_MATCH) -> str:
    """What makes two files the same patient (``deid.identity``): the normalised PatientID
    (default), else the normalised name + birth date, else the study; ``match="strict"``:
    PatientID + issuer as stored."""
    return identity.patient_key(ds, match)


# Values that name or number a person, wherever they are (PS3.15 E.1-1 rows of patients,
# physicians, operators): any PN, and these. A kept value of the same file that holds one of
# them (a name typed into Manufacturer, ScanOptions or a window explanation; an ID without its
# leading zeros; the birth date as a number) is removed like unsafe text: the allowlists say
# which attributes may hold text, this says that their text must not be the file's own people.
PERSON_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "PatientBirthDate", "PatientTelephoneNumbers",
                   "PatientAddress", "MedicalRecordLocator", "PatientBirthName", "PatientMotherBirthName",
                   "OtherPatientNames", "ResponsiblePerson", "StudyID", "IssuerOfPatientID",
                   "PersonTelephoneNumbers", "PersonAddress", "RequestingPhysician", "PerformingPhysicianName")
_PERSON_TAGS = frozenset(t for t in (tag_for_keyword(k) for k in PERSON_KEYWORDS) if t is not None)
_PERSON_DATES = frozenset(tag_for_keyword(k) for k in ("PatientBirthDate", "StudyDate", "SeriesDate",
                                                       "AcquisitionDate", "ContentDate"))
# Values that name a place (Annex E removes them; the audit seeks their original values in every
# output byte): the anonymizer seeks them in kept numbers and bytes (review 10), wherever they are
# in the data set, a sequence item too (RequestAttributesSequence, ReferencedStudySequence, a
# kept private sequence: issue 13), as the audit's linkage terms hold them from any depth.
PLACE_KEYWORDS = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
                  "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers")
_PLACE_TAGS = frozenset(t for t in (tag_for_keyword(k) for k in PLACE_KEYWORDS) if t is not None)
_BIRTH_DATE = tag_for_keyword("PatientBirthDate")     # also sought a day off (policy.date_forms; red team 9)
SCRUBBED_VRS = frozenset({"AE", "CS", "LO", "SH", "LT", "ST", "UT", "UC", "PN", "IS", "DS", "AS",
                          "OB", "OW", "OD", "OF", "OL", "OV", "UN",    # bytes: read as Latin-1, UTF-8 and UTF-16 text
                          *NUMBER_FORMATS})                            # numbers: as digits, characters and bytes


_REORDER_MAX = 5     # name parts put in every order: at most 320 joined values per name


def _reordered(alpha: str, folds: dict[str, str] | None = None) -> list[str]:
    """Two or more of a name's parts (split at ^ and spaces) run together in every order:
    NGUYEN^VAN AN is also written ANNGUYEN or VANANNGUYEN (red team 5: a model name). Bounded:
    the first _REORDER_MAX parts only. ``folds``: also record each joined value's
    ``deid.terms.fold``, joined from its parts' folds (fold works character by character, the
    combining marks it drops aside: tests/test_deid_fastpaths.py), for :func:`person_terms`."""
    from itertools import permutations

    parts = list(dict.fromkeys(alpha.replace("^", " ").split()))[:_REORDER_MAX]
    out = ["".join(p) for n in range(2, len(parts) + 1) for p in permutations(parts, n)]
    if folds is not None:
        folded = [fold(p) for p in parts]
        for joined, f in zip(out, ("".join(p) for n in range(2, len(parts) + 1)
                                   for p in permutations(folded, n))):
            folds[joined] = f
    return out


def person_values(ds: Dataset, folds: dict[str, str] | None = None, places: list[str] | None = None) -> list[str]:
    """The file's person values (PHI: only kept in memory, and in the linkage table's terms).
    ``folds``: filled with the folded form of the name parts run together (``_reordered``).
    ``places``: filled with the values of :data:`PLACE_KEYWORDS`, at any depth (the same walk)."""
    out: list[str] = []

    def visit(d: Dataset, depth: int) -> None:
        for tag in list(d.keys()):
            if _never_a_person(d, tag):
                continue
            raw = d._dict.get(tag)          # the stored bytes, while the element is still raw (the first pass)
            try:
                elem = _element(d, tag)
            except Exception:
                continue
            vr = getattr(elem, "VR", None)
            if vr == "SQ":
                if depth < 64:
                    for item in elem.value or []:
                        visit(item, depth + 1)
                continue
            person_element(tag, vr, elem.value, depth, out, folds, places, raw)

    visit(ds, 0)
    return out


_MISLABELLED = ("utf-8", "gb18030")     # what a person value's bytes may really be when its file says otherwise


def _misdecoded(value, raw) -> list[str]:
    """A person value's text as its bytes read in the encodings exports write without saying so
    (red team 10): UTF-8 or GB18030 bytes in a file declaring ISO_IR 100 or nothing read as
    Latin-1 (PHáº M for PHẠM), whose name, written properly in a kept LUT, was no term; and, while
    the element is raw (``raw``: deid.studyterms' first pass, whose values each file of the study
    is given), Latin-1 bytes declared UTF-8 (M\ufffdLLER for MÜLLER) read as Latin-1. Only the
    readings that decode without error and differ from the value."""
    out: list[str] = []
    texts = [str(v) for v in actions._values(value) if isinstance(v, str) or type(v).__name__ == "PersonName"]
    for text in texts:
        if text.isascii():
            continue
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:
            continue
        for enc in _MISLABELLED:
            try:
                alt = data.decode(enc)
            except UnicodeDecodeError:
                continue
            # GB18030 reads most Latin-1 byte pairs (MÜLLER is M躄LER): a reading only when it is all
            # ideographs beside ASCII separators (UTF-8 rarely decodes a Latin-1 text at all)
            if alt != text and (enc == "utf-8" or all(not c.isalpha() or "\u4e00" <= c <= "\u9fff" for c in alt)):
                out.extend(a for a in alt.split("\\") if a.strip())
    raw_bytes = getattr(raw, "value", None) if raw is not None and type(raw) is not DataElement else None
    if isinstance(raw_bytes, (bytes, bytearray)) and not raw_bytes.isascii() and any("\ufffd" in t for t in texts):
        out.extend(a for a in bytes(raw_bytes).decode("latin-1").rstrip(" \0").split("\\") if a.strip())
    return out


def name_forms(text: str, folds: dict[str, str] | None = None) -> list[str]:
    """A person name's parts run together, as :func:`person_values` seeks them (6 characters or
    more): NGUYEN^VAN^THANG is also written NGUYENVANTHANG, and NGUYEN^VAN AN as NGUYENVANAN or
    ANNGUYEN (red team 5: a model name); ``folds`` as :func:`_reordered`'s."""
    alpha = text.split("=")[0]
    return [joined for joined in dict.fromkeys(("".join(p.strip() for p in alpha.split("^")),
                                                "".join(alpha.replace("^", " ").split()),
                                                *_reordered(alpha, folds)))
            if len(joined) >= 6]


def person_element(tag: int, vr, value, depth: int, out: list[str], folds: dict[str, str] | None,
                   places: list[str] | None, raw=None) -> None:
    """One converted element's part of :func:`person_values` (``vr`` and ``value`` as pydicom
    gives them; not a sequence): its person values appended to ``out``, its place to ``places``;
    ``raw``: the element's stored bytes while still raw (the first pass; :func:`_misdecoded`).
    Shared with ``deid.peoplescan`` (the first pass's walk of the raw header bytes)."""
    if places is not None and tag in _PLACE_TAGS:
        places.extend(t for v in actions._values(value) if (t := str(v).strip()))
        return
    # the birth date in an item too (another patient's, a mother's); the study's dates only at the top
    if vr == "PN" or tag in _PERSON_TAGS or (depth == 0 and tag in _PERSON_DATES) or tag == _BIRTH_DATE:
        for v in [*actions._values(value), *_misdecoded(value, raw)]:
            text = str(v).strip()
            if text:
                out.append(text)
                if vr in ("DA", "DT"):          # 19850312 also as 12031985 and 03121985 (red team 9)
                    out.extend(policy.date_forms(text[:8], near=tag == _BIRTH_DATE))
                elif vr != "PN":                # an ID "3006 7891" also as 30067891 (red team 9)
                    out.extend(policy.id_forms(text))
                if vr == "PN":
                    out.extend(name_forms(text, folds))


def _never_a_person(d: Dataset, tag: int) -> bool:
    """A raw (never converted) public element that :func:`person_values` would skip once
    converted: its VR (stored, else the dictionary's) known and not PN, SQ or UN, and not a
    person tag or date. Left raw: a header read without ``structure`` (deid.studyterms' first
    pass) is not decoded element by element for nothing (a file read by ``read_header`` with
    ``structure`` has every element converted already: nothing is skipped here)."""
    raw = d._dict.get(tag)
    if (raw is None or type(raw) is DataElement or tag >> 16 & 1 or tag in _PERSON_TAGS or tag in _PERSON_DATES
            or tag in _PLACE_TAGS):
        return False
    vr = getattr(raw, "VR", None)
    if not vr:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return False
    return vr not in ("PN", "SQ", "UN") and " or " not in vr


_ONE_WORD = re.compile(r"[^\W_]+")     # one token of deid.terms (letters/digits of any script, no dot)


def person_terms(values: list[str], folds: dict[str, str] | None = None):
    """``build_terms(values, include_dates=True)``: the same single terms and the same set of
    multi-word terms (so ``found_in`` answers the same; tests/test_deid_fastpaths.py). Most of
    a file's ~200 person values are a name's parts run together in every order: one word,
    whose terms (``TermSet.add``: the word folded, its digit runs) are derived here from one
    fold instead of the general path's three folds and tokenizations (~1 ms a file); with
    ``folds`` (from :func:`person_values`), a value's fold is looked up there first."""
    folds = folds or {}
    ts = TermSet()
    placeholders, own, digits = _placeholders()
    for v in dict.fromkeys(values):
        if not v:
            continue
        v = str(v).strip()
        c = folds.get(v)
        if c is None:
            c = fold(v)
        if not _ONE_WORD.fullmatch(c) or not c.isascii():     # other scripts: their written form too (TermSet.wide)
            ts.add(v)
            continue
        # TermSet.add of a value whose only token is ``c`` (and so is its compact form too)
        if (c in placeholders or c in own or (c.isdigit() and len(c) <= digits) or OWN_SUBSTITUTE.match(v)
                or len(set(c)) < 2 or (len(c) < 3 and c.isascii())):
            continue            # a placeholder, a word vindr writes, filler, or too short alone
        ts.single.add(c)
        if not c.isdigit():
            for run in _DIGITS.findall(c):
                ts.single.add(run)
                if len(run.lstrip("0")) >= 5:
                    ts.single.add(run.lstrip("0"))
        elif c.startswith("0") and len(c.lstrip("0")) > digits:
            ts.single.add(c.lstrip("0"))
    return ts


# termcache (issue 13): a group's peer terms, built once per worker process and group (PHI: this
# process's memory only, never written, logged or sent): sha256 of the peer values -> (their
# person_terms, the values stripped). Bounded: a worker takes the files of a few groups at a time.
_PEER_TERMS: OrderedDict[bytes, tuple[TermSet, frozenset[str]]] = OrderedDict()
PEER_TERMS_KEPT = 4
_PEER_LOCK = threading.Lock()


def peer_terms(peers: tuple[str, ...]) -> tuple[TermSet, frozenset[str]]:
    """(``person_terms`` of the strings of ``peers``, those as ``deidentify`` compares them:
    stripped), from this process's small cache when a file of the same group (the same peer
    values, by a SHA-256 made in C) came before. The set is never added to: searches only read it."""
    key = _group_key(peers)
    with _PEER_LOCK:
        got = _PEER_TERMS.get(key) if key is not None else None
        if got is not None:
            _PEER_TERMS.move_to_end(key)
            return got
    values = [v for v in peers if isinstance(v, str)]
    got = (person_terms(values), frozenset(v.strip() for v in values))
    if key is None:
        return got
    with _PEER_LOCK:
        _PEER_TERMS[key] = got
        while len(_PEER_TERMS) > PEER_TERMS_KEPT:
            _PEER_TERMS.popitem(last=False)
    return got


def _group_key(peers: tuple) -> bytes | None:
    """The SHA-256 of ``peers``: of the strings joined by NUL when none holds one (each NUL then
    separates two values: no two tuples give one text), else of their pickle (3 ms for 9,000
    values, the join 0.1 ms); None for what cannot be pickled (not a task's tuple: not kept)."""
    try:
        joined = "\0".join(peers)
        if joined.count("\0") == len(peers) - 1:
            return hashlib.sha256(b"j" + joined.encode("utf-8", "surrogatepass")).digest()
    except TypeError:           # not strings only
        pass
    try:
        return hashlib.sha256(b"p" + pickle.dumps(peers, protocol=4)).digest()
    except Exception:
        return None


def file_person_terms(values: list[str], folds: dict[str, str] | None,
                      peers: tuple[str, ...]) -> tuple[TermSet | TermUnion, frozenset[str]]:
    """(the terms of a file's person ``values`` and of its study's ``peers`` (deid.studyterms),
    the peers stripped): one :class:`~vindr_cli.deid.terms.TermUnion` of the file's own set and
    the group's cached one (:func:`peer_terms`), which answers as ``person_terms(values + peers,
    folds)`` does (``TermSet.add`` only adds, each search is an OR over terms, and a value's fold
    in ``folds`` is ``fold`` of it: tests/test_termcache_oracle.py, test_deid_fastpaths.py),
    without building a study's thousands of peer terms again for each file (termcache)."""
    own = person_terms(values, folds)
    if not peers:
        return own, frozenset()
    group, stripped = peer_terms(tuple(peers))
    return TermUnion(own, group), stripped


def _holds(people, places, value, vr: str, tag: int) -> bool:
    """Whether a kept value of VR ``vr`` (one of SCRUBBED_VRS) holds one of ``people`` (a
    :func:`person_terms` set) or, in numbers and bytes, of ``places`` (``build_terms``): the
    search :meth:`_Walker._judged_safe` makes in every kept value, and :func:`holds_people` in
    a written output."""
    if vr in NUMBER_FORMATS or vr in policy.BINARY:     # numbers and bytes also as characters (red team 7)
        numbers, views = value_views(value, vr)
        is_bytes = isinstance(value, (bytes, bytearray))
        hit = bool(people) and (people.found_in_value(views, numbers) or (
            is_bytes and people.found_in(tokens(decode_all(bytes(value))))) or (
            is_bytes and policy.found_in_digits(people, views, vr)))     # "3006-7891" in a LUT's bytes
        if not hit and people and tag == policy.ICC_PROFILE and isinstance(value, (bytes, bytearray)):
            from vindr_cli.deid import icc      # its fixed numbers as integers: an ID as an XYZ or 'chad' value
            hit = people.found_in_value(*reversed(value_views(icc.numbers(bytes(value)), "SL")))
        if not hit and places:     # the hospital's name as LUT entries or ICC curve points (review 10)
            hit = places.found_in_value(*reversed(value_views(value, vr)))
        return bool(hit)
    text = value_text(value, vr)        # ... and a word whose marks split its tokens (राजेश: review 10)
    return bool(people) and bool(people.found_in(tokens(text)) or people.found_wide(text)
                                 # an ID or birth date inside a number or split by dots (red team 9)
                                 or policy.found_in_digits(people, text, vr))


def holds_people(ds: Dataset, profile: Profile, peers: tuple[str, ...], peer_places: tuple[str, ...] = ()) -> bool:
    """Whether a WRITTEN output ``ds`` (read back from OUTPUT) holds one of ``peers`` (person
    values, as the first pass gives them) or ``peer_places``, sought as :func:`deidentify` seeks
    them in a file's kept values: every element of a searched VR at every depth (not a keyed
    substitute, not the pixel description or Pixel Data), and two number elements of one data
    set spelling an ID together. ``deid.batch`` asks it of an output whose study gained people
    after a file of it left INPUT unknown (no linkage table): kept when False."""
    people = person_terms([v for v in peers if isinstance(v, str)])
    places = build_terms([v for v in peer_places if isinstance(v, str)], include_dates=False)
    if not people and not places:
        return False

    def visit(d: Dataset, depth: int) -> bool:
        numbers = []
        for tag in list(d.keys()):
            if depth == 0 and (tag in PIXEL_TAGS or tag in PIXEL_DESCRIPTION):
                continue
            elem = _element(d, tag)
            vr = _vr_of(elem)
            if vr == "SQ":
                if depth < 64 and any(visit(item, depth + 1) for item in elem.value or []):
                    return True
                continue
            if tag in profile.substitutes or vr not in SCRUBBED_VRS or elem.value in (None, "", b""):
                continue
            if _holds(people, places, elem.value, vr, tag):
                return True
            if vr in policy.SPLIT_VRS:
                numbers.append((tag, vr, elem.value))
        return bool(people) and len(numbers) >= 2 and bool(policy.split_across(people, numbers))

    return visit(ds, 0)


class _Walker:
    def __init__(self, profile: Profile, subs: Substitutes, key: str, sop_class: str | None):
        self.p = profile
        self.subs = subs
        self.patient = key
        self.sop_class = sop_class
        self.days = subs.date_offset_days(key)
        self.terms: set[str] = set()
        self.counts: Counter = Counter()
        self.path: list[int] = []       # tags of the sequences enclosing the data set being walked
        self.emptied: int | None = None  # a sequence _items just emptied of unknown codes (walk decides)
        self.people = None                 # deid.terms.TermSet of the file's person values (person_values)
        self.places = None                 # ... of its institution's name and address, sought in numbers and bytes only

    # -- recording -----------------------------------------------------------------
    def _record(self, elem, vr: str) -> None:
        if elem.value in (None, "", b""):
            return
        if vr == "PN" or vr == "UI" or elem.tag in _term_tags():
            # ... and a value's misread bytes read right (UTF-8 read as Latin-1: the audit seeks PHẠM too)
            for v in [*actions._values(elem.value), *(_misdecoded(elem.value, None) if vr != "UI" else ())]:
                s = str(v).strip()
                if len(s) >= 3 and not (vr == "UI" and actions.is_registry_uid(s)):
                    self.terms.add(s)

    def _collect(self, elem, vr: str) -> None:
        """Record the identifying values inside a sequence that is about to be removed, so
        the audit can look for them elsewhere."""
        if vr != "SQ":
            self._record(elem, vr)
            return
        for item in elem.value or []:
            for tag in list(item.keys()):
                try:
                    inner = _element(item, tag)
                except Exception:
                    continue
                self._collect(inner, _vr_of(inner))

    # -- the walk ------------------------------------------------------------------
    def walk(self, ds: Dataset, depth: int) -> None:
        for tag in list(ds.keys()):
            group, elem_no = tag >> 16, tag & 0xFFFF
            if depth == 0 and tag > policy.POST_PIXEL:   # after the pixel data (signatures, padding...)
                self._remove(ds, tag, "post-pixel")
            elif group % 2 == 1:
                self._remove(ds, tag, "private")
            elif 0x5000 <= group <= 0x50FF:
                self._remove(ds, tag, "curve")
            elif 0x6000 <= group <= 0x60FF:
                self._remove(ds, tag, "overlay")
            elif elem_no == 0 or group <= 0x0002:
                self._remove(ds, tag, "group length / meta")
            elif tag in PIXEL_TAGS and depth == 0:
                continue
            else:
                self._apply(ds, tag, depth)
                if self.emptied is not None:
                    self._drop_emptied(ds, self.emptied)
        if self.people:
            self._split_numbers(ds, depth)

    def _drop_emptied(self, ds: Dataset, tag: int) -> None:
        """A sequence whose every item was an unknown code or emptied: kept empty where the IOD
        makes it Type 2; else removed (a present Type 3 sequence needs an item, PS3.5 7.5.3;
        types are merged as 1C -> 1, and a 1C whose items all went is no longer required:
        it referenced what was removed). A Type 1 or unknown sequence of unknown codes kept
        vindr's placeholder item instead (``_items``)."""
        self.emptied = None
        if tag in ds and attribute_type(self.sop_class, tag, tuple(self.path)) != 2:
            del ds[tag]
            self.counts["X:emptied-sequence"] += 1

    def _implausible(self, ds: Dataset, tag: int, depth: int) -> None:
        """A value no valid element has may hold swallowed elements: the file fails, nothing
        of it is written (issue #9, "malformed structure never passes")."""
        if depth == 0 and tag in PIXEL_DESCRIPTION:     # the pixel data could not be described or copied
            raise EngineError(DAMAGED_PIXEL_DESCRIPTION)
        raise EngineError(IMPLAUSIBLE_VALUE)

    def _remove(self, ds: Dataset, tag: int, why: str) -> None:
        del ds[tag]
        self.counts["X:" + why] += 1

    def _apply(self, ds: Dataset, tag: int, depth: int) -> None:
        raw = _raw_element(ds, tag)
        vr = _rule_vr(raw)
        rule = self.p.rule(tag, vr)
        action = self._simple(rule.action, tag, depth)
        if self.p.mode == "keep-list" and tag not in self.p.rules and action in ("Z", "D"):
            if vr == "UR" or vr in policy.BINARY:
                action = "X"    # a URL or a blob not on the list: removed whatever its Type (as in _judged_safe)
            elif action == "D" and vr in KEEP_LIST_TYPE1_KEPT:
                action = "K"    # a Type 1 number or coded string is its own best dummy (still judged below)
        checked = None      # the VR a kept value was found plausible for (as ``raw``)
        if action == "K" and vr != "SQ":
            if not plausible_value(raw, vr):
                self._implausible(ds, tag, depth)   # a value no valid element has: it may hold swallowed elements
                return
            checked = vr
        try:
            elem = _element(ds, tag)
        except Exception:  # a value pydicom cannot convert: the file fails, nothing of it is written
            raise EngineError(UNREADABLE_VALUE) from None
        if not _vr_matches(elem, vr) or policy.vr_mismatch(getattr(elem, "VR", None), tag):
            # stored under another VR than the dictionary's (or a text VR on an ambiguous
            # one): a sequence or text could hide anything, and a damaged tag (one flipped
            # bit) can relabel a name or an ID as an attribute that is kept: drop it
            del ds[tag]
            self.counts["X:vr-mismatch"] += 1
            return
        vr = _vr_of(elem)
        if tag in self.p.substitutes:
            self._substitute(ds, elem, vr)
            return
        if action == "C":
            action = self._clean(ds, elem, vr, rule.fallback, tag, depth)
            if action == "done":
                return
        if action == "K" and vr != "SQ" and not (elem is raw and vr == checked) and not plausible_value(elem, vr):
            # (the same element, unchanged, with the same VR was checked above: read_header has
            # converted it already, so raw is elem)
            self._implausible(ds, tag, depth)
            return
        if action == "K" and vr != "SQ" and not self._judged_safe(ds, elem, vr, tag, depth):
            return
        self.counts[action] += 1
        if action != "K":
            self._record(elem, vr)
        if action == "X":
            if vr == "SQ":
                self._collect(elem, vr)
            del ds[tag]
        elif action == "Z":
            ds[tag] = DataElement(tag, vr, actions.empty_value(vr))
        elif action == "K":
            if vr == "SQ":
                self._items(elem, depth)
        elif action == "U":
            if vr == "SQ":
                self._items(elem, depth)
            elif vr == "UI":
                elem.value = actions.remap_uids(elem.value, self.subs)
            else:
                del ds[tag]
        elif action == "D":
            self._dummy(ds, elem, vr, tag, depth)
        else:  # pragma: no cover - profile validation prevents this
            raise EngineError(f"unknown action {action}")

    def _trusted_text(self, tag: int) -> bool:
        """Text the profile keeps by an explicit rule (a Table E.1-1 option, a recipe action)
        is the user's choice; a keep-list profile's text and everything unlisted is judged
        against the allowlist (schemas/deid/safe_attributes.toml)."""
        rule = self.p.rules.get(tag)
        return (self.p.mode == "table" and rule is not None and rule.action in ("K", "C")
                and tag not in policy.JUDGED_EVEN_IF_KEPT)

    def _judged_safe(self, ds: Dataset, elem, vr: str, tag: int, depth: int) -> bool:
        """Safe by default (deid.policy.judge, the audit's rule too): True when the element
        may stay (a lower-case CS may be normalised to its defined term); else it is removed,
        or dummied / emptied where the IOD makes it Type 1 / 2 (at its sequence path), and False."""
        verdict = policy.judge(elem, trusted_text=self._trusted_text(tag), top=depth == 0, siblings=ds)
        # the pixel description (samples, photometric, frames, rows, columns, bits, sign) judged plausible
        # is the pixels' geometry and encoding, not a person's: never searched for people, whose terms
        # may hold any word (a damaged file of the study whose person values swallowed "MONOCHROME2":
        # every other file of the study failed as damaged; the fuzz test)
        if (verdict.ok and (self.people or self.places) and vr in SCRUBBED_VRS and tag not in self.p.substitutes
                and not (depth == 0 and tag in PIXEL_DESCRIPTION)):
            value = verdict.value if verdict.value is not None else elem.value
            if _holds(self.people, self.places, value, vr, tag):
                verdict = policy.Verdict(policy.IDENTIFYING)
        if verdict.ok:
            if verdict.value is not None:
                ds[tag] = DataElement(tag, vr, verdict.value)
                self.counts["C:normalised"] += 1
                return False
            return True
        if depth == 0 and tag in PIXEL_DESCRIPTION:    # the pixel data could not be described or copied
            raise EngineError(DAMAGED_PIXEL_DESCRIPTION)
        self._drop(ds, elem, vr, tag, depth, verdict.reason)
        return False

    def _drop(self, ds: Dataset, elem, vr: str, tag: int, depth: int, reason: str) -> None:
        """Remove an element judged unsafe for ``reason``, or dummy / empty it by its Type."""
        self._record(elem, vr)
        # text or a coded value the IOD requires gets a dummy / empty value; a URL, a binary
        # blob or a relabelled VR is removed whatever its Type (a 1C ExtendedOffsetTableLengths
        # or PixelDataProviderURL is required only with what is removed with it)
        compound = "X/Z/D" if reason in (policy.UNSAFE_TEXT, policy.GRAMMAR, policy.IDENTIFYING) else "X"
        if tag in (codes.CODING_SCHEME_VERSION, codes.MAPPING_RESOURCE_NAME):
            compound = "X"      # removed, as deid.codes removes a version it does not allow: a dummy
            # "ANONYMOUS" is no version, and the audit would report the code (red team 9: "1985.03.12")
        action = self._simple(compound, tag, depth)
        self.counts[f"{action}:{reason}"] += 1
        if action == "X":
            del ds[tag]
        elif action == "Z":
            ds[tag] = DataElement(tag, vr, actions.empty_value(vr))
        else:
            self._dummy(ds, elem, vr, tag, depth)

    def _split_numbers(self, ds: Dataset, depth: int) -> None:
        """Two kept number elements of ``ds`` that spell one of the file's IDs or dates together
        (InstanceNumber 4051 and AcquisitionNumber 7263 for the ID 40517263: policy.split_across,
        red team 10) are both dropped as an identifying value. The pixel description is left: a
        Rows/Columns pair is the image's geometry."""
        kept = []
        for tag in ds.keys():
            if depth == 0 and (tag in PIXEL_DESCRIPTION or tag in PIXEL_TAGS):
                continue
            elem = ds[tag]
            if elem.VR in policy.SPLIT_VRS:
                kept.append((tag, elem.VR, elem.value))
        if len(kept) < 2:
            return
        for tag in sorted(policy.split_across(self.people, kept)):
            elem = ds[tag]
            self._drop(ds, elem, elem.VR, tag, depth, policy.IDENTIFYING)

    def _simple(self, action: str, tag: int, depth: int) -> str:
        typ = attribute_type(self.sop_class, tag, tuple(self.path))
        simple = resolve_compound(action, typ)
        # Z allows "a non-zero length value that may be a dummy" (PS3.15 E.1): a Type 1
        # attribute must not be empty, so it gets D
        return "D" if simple == "Z" and typ == 1 else simple

    def _items(self, elem, depth: int) -> None:
        """Walk each item; a code item first has its CodeMeaning checked (deid.codes): an
        unknown code's item is removed (a sequence may end empty) unless it is the last item
        of a sequence the IOD requires (Type 1, or unknown), which then holds vindr's
        placeholder code; another meaning of a known code is replaced by the known one."""
        items = elem.value or []
        had_items = len(items) > 0
        checked = elem.tag not in codes.retained_sequences(self.p.options)
        unknown = []
        hollow = set()      # items that held elements and hold none after the walk
        self.path.append(elem.tag)
        try:
            for i, item in enumerate(items):
                if checked and codes.is_code_item(item):
                    verdict = codes.check_code_item(item)
                    if verdict == "remove":
                        unknown.append(i)
                        continue
                    if verdict == "replaced":
                        self.counts["C:code-meaning"] += 1
                before = len(item)
                self.walk(item, depth + 1)
                if before and not len(item):
                    hollow.add(id(item))
        finally:
            self.path.pop()
        if hollow:
            # an item de-identification emptied says nothing: it goes (a sequence left without
            # items is then kept empty or removed by its Type: _drop_emptied)
            for i in reversed(range(len(items))):
                if id(items[i]) in hollow:
                    unknown = [j - 1 if j > i else j for j in unknown]
                    del items[i]
                    self.counts["X:emptied-item"] += 1
        for i in reversed(unknown):
            for tag in list(items[i].keys()):
                try:
                    inner = _element(items[i], tag)
                except Exception:   # an unreadable value goes with its item
                    continue
                self._collect(inner, _vr_of(inner))
            if len(items) == 1 and attribute_type(self.sop_class, elem.tag, tuple(self.path)) in (1, None):
                # the last item of a sequence the IOD requires: vindr's placeholder code instead
                codes.placeholder(items[i])
                self.counts["D:unknown-code"] += 1
                self.path.append(elem.tag)
                try:
                    self.walk(items[i], depth + 1)
                finally:
                    self.path.pop()
            else:
                del items[i]
                self.counts["X:unknown-code"] += 1
        if had_items and not items:
            self.emptied = elem.tag     # walk() removes it when the IOD does not require it

    def _dummy(self, ds: Dataset, elem, vr: str, tag: int, depth: int) -> None:
        if vr == "SQ":
            self._items(elem, depth)
        elif vr == "UI":
            elem.value = actions.remap_uids(elem.value, self.subs)
        elif vr in DATE_VRS and self.p.dates == "shift":
            shifted = actions.shift_dates(elem.value, vr, self.days)
            ds[tag] = DataElement(tag, vr, shifted if shifted else actions.dummy_value(vr))
        else:
            ds[tag] = DataElement(tag, vr, actions.dummy_value(vr))

    def _clean(self, ds: Dataset, elem, vr: str, fallback: str, tag: int, depth: int) -> str:
        """Carry out C where vindr has a cleaner; else return the (resolved) basic action."""
        if vr in DATE_VRS and self.p.dates == "shift":
            shifted = actions.shift_dates(elem.value, vr, self.days)
            if shifted is not None:
                self._record(elem, vr)
                ds[tag] = DataElement(tag, vr, shifted)
                self.counts["C:date"] += 1
                return "done"
        elif vr == "TM" and self.p.dates == "shift":
            return "K"
        elif vr == "SQ":
            self._items(elem, depth)
            self.counts["C:sequence"] += 1
            return "done"
        elif vr in actions.TEXT_VRS and "clean_descriptors" in self.p.options and actions.is_clean_descriptor(elem.value):
            self.counts["C:descriptor"] += 1
            return "done"
        fb = self._simple(fallback, tag, depth)
        return "X" if fb == "C" else fb

    def _substitute(self, ds: Dataset, elem, vr: str) -> None:
        tag = elem.tag
        if elem.value in (None, ""):
            self.counts["Z"] += 1
            return
        self._record(elem, vr)
        kind = self.p.substitutes[tag]
        original = str(elem.value).strip()
        if kind == "patient_name":
            new = self.subs.patient_name(self.patient)
        elif kind == "patient_id":
            new = self.subs.patient_id(self.patient)
        elif kind == "accession":
            new = self.subs.accession(original)
        elif kind == "study_id":
            new = self.subs.study_id(original)
        else:
            raise EngineError(f"unknown substitute kind {kind}")
        ds[tag] = DataElement(tag, vr, new)
        self.counts["D:substitute"] += 1


KEY_MARK = provenance.KEY_MARK          # "vindr key fingerprint " + Substitutes.fingerprint() (a keyed hash, never the key)
PROFILE_MARK = "vindr profile fingerprint "  # + Profile.fingerprint()
SETTINGS_MARK = "vindr settings fingerprint "  # + deid.batch.settings_fingerprint (INPUT, UID root, layout, burned-in)


_PROFILE_FINGERPRINTS: dict[int, tuple[Profile, str]] = {}


def _profile_fingerprint(profile: Profile) -> str:
    """``profile.fingerprint()``, once per profile object: it hashes the profile and reads and
    hashes six policy files, ~2 ms that every output paid again (a profile is frozen, and the
    policy data a process applies is loaded once)."""
    hit = _PROFILE_FINGERPRINTS.get(id(profile))
    if hit is not None and hit[0] is profile:
        return hit[1]
    if len(_PROFILE_FINGERPRINTS) > 16:
        _PROFILE_FINGERPRINTS.clear()
    fp = profile.fingerprint()
    _PROFILE_FINGERPRINTS[id(profile)] = (profile, fp)
    return fp


def _mark(ds: Dataset, profile: Profile, key_fingerprint: str, settings_fingerprint: str | None = None) -> None:
    """PS3.15 marks. DeidentificationMethod (0012,0063, LO, VM 1-n, free text "describing the
    method used") also names the key and profile by fingerprint, so that an output says which
    key and settings made it even when OUTPUT/.vindr/anonymize.json is lost (a re-run then
    reads them back and refuses another key: :func:`read_marks`)."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [f"vindr {__version__}"[:64], f"profile {profile.name}"[:64],
                                 f"{KEY_MARK}{key_fingerprint}"[:64], f"{PROFILE_MARK}{_profile_fingerprint(profile)}"[:64]]
    if settings_fingerprint:
        ds.DeidentificationMethod = [*ds.DeidentificationMethod, f"{SETTINGS_MARK}{settings_fingerprint}"[:64]]
    items = []
    for code, meaning in profile.option_codes():
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = {
        "shift": "MODIFIED", "keep": "UNMODIFIED", "remove": "REMOVED"
    }[profile.dates]


def _new_meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def read_marks(ds: Dataset) -> dict[str, str]:
    """``{"key_fingerprint", "profile_fingerprint", "settings_fingerprint"}`` as recorded by
    :func:`_mark` (those found)."""
    raw = ds.get("DeidentificationMethod")
    values = [] if raw is None else ([raw] if isinstance(raw, str) else list(raw))
    out = {}
    for v in values:
        v = str(v)
        if v.startswith(KEY_MARK):
            out["key_fingerprint"] = v[len(KEY_MARK):]
        elif v.startswith(PROFILE_MARK):
            out["profile_fingerprint"] = v[len(PROFILE_MARK):]
        elif v.startswith(SETTINGS_MARK):
            out["settings_fingerprint"] = v[len(SETTINGS_MARK):]
    return out


def deidentify(ds: Dataset, profile: Profile, subs: Substitutes, settings_fingerprint: str | None = None,
               patient_match: str = DEFAULT_PATIENT_MATCH, peers: tuple[str, ...] = (),
               peer_places: tuple[str, ...] = ()) -> Outcome:
    """De-identify ``ds`` in place (header only; pixel data is not touched here).
    ``settings_fingerprint``: recorded in DeidentificationMethod with the key's and profile's.
    ``patient_match``: how files are grouped into patients (``deid.identity``). ``peers``: the
    person values (:func:`person_values`) of the other files of its study and patient
    (deid.studyterms), sought in its kept values as its own people are, with the same action;
    ``peer_places``: their places (InstitutionName...), sought as its own places are (review 11)."""
    transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
    sop_class = _text(ds, "SOPClassUID") or None
    key = patient_key(ds, patient_match)
    originals = {
        "patient_id": _text(ds, "PatientID"),
        "patient_name": _text(ds, "PatientName"),
        "study_uid": _text(ds, "StudyInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "sop_uid": _text(ds, "SOPInstanceUID"),
        "accession": _text(ds, "AccessionNumber"),
        "study_id": _text(ds, "StudyID"),
    }
    # the equipment maker's words (kept when deid.policy knows the vendor, and the model beside
    # it) are not searched for: a station named "TOSHIBA" on a TOSHIBA_MEC scanner names no one,
    # and the audit would report every output of that scanner. An unknown maker is removed, so
    # its words stay searchable.
    maker = tokens(" ".join(_text(ds, k) for k in ("Manufacturer", "ManufacturerModelName"))
                   if policy.vendor_ok(_text(ds, "Manufacturer")) else "")
    meta_terms = {_text(ds.file_meta, k) for k in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                                                   "ReceivingApplicationEntityTitle")}
    folds: dict[str, str] = {}
    places: list[str] = []
    people = person_values(ds, folds, places)
    walker = _Walker(profile, subs, key, sop_class)
    walker.people, peer_person = file_person_terms(people, folds, peers)    # the group's peer terms: once a worker
    # the institution's name, address and department, wherever they are (Annex E removes them; the
    # audit searches their original values everywhere): a kept table or profile spelling them was
    # written and failed the audit (review 10; in a sequence item or the department: issue 13)
    walker.places = build_terms(places + [v for v in peer_places if isinstance(v, str)], include_dates=False)
    walker.walk(ds, 0)
    if "SOPInstanceUID" not in ds:
        raise EngineError("the profile removed SOPInstanceUID; an output needs one")
    _mark(ds, profile, subs.fingerprint(), settings_fingerprint)
    ds.file_meta = _new_meta(ds, transfer_syntax)
    ds.preamble = b"\x00" * 128          # the input's preamble may hold anything
    ids = {
        "patient_id": subs.patient_id(key),
        "study_uid": subs.uid(originals["study_uid"]) if originals["study_uid"] else "",
        "series_uid": subs.uid(originals["series_uid"]) if originals["series_uid"] else "",
        "sop_uid": str(ds.SOPInstanceUID),
        "image_id": subs.image_id(originals["sop_uid"]),
        "patient_dir": subs.short("patient-dir", key),
        "study_dir": subs.short("study-dir", originals["study_uid"]),
        "series_dir": subs.short("series-dir", originals["series_uid"]),
    }
    # a maker's word is dropped only when it is not a person's value (a name or ID written into
    # Manufacturer is searched for, and was removed from Manufacturer by the walk)
    person = {str(v).strip() for v in people}
    terms = {t for t in walker.terms | {t for t in meta_terms if len(t) >= 3}
             if t in person or t in peer_person or not (maker and tokens(t) <= maker)}
    return Outcome(key, ids, originals, terms, walker.counts)
