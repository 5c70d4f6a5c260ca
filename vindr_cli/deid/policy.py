"""Safe by default: what an element may carry out of the hospital, judged by its VR and value.

One place of truth for the anonymizer (``deid.engine``) and ``vindr audit`` (check mode):
:func:`judge` says whether an element may stay as it is, and if not, why (a fixed kind:
``vr-mismatch``, ``url``, ``binary``, ``vr-grammar``, ``unsafe-text``). The data is
``schemas/deid/safe_attributes.toml`` (each entry with its reason and source); the VR grammar
is PS3.5 6.2. A coded string (CS) of an attribute Table E.1-1 does not decide stays only as a
listed term of its attribute (``schemas/deid/coded_strings.toml``, red team 6): the CS grammar
alone lets a name or an ID through. Pure functions; the data is read once.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache

from pydicom.datadict import keyword_for_tag
from pydicom.multival import MultiValue

from vindr_cli.dicomio.dictionary import dictionary_VR
from vindr_cli.resources import schema_path
from vindr_cli.vendors import model_ok, vendor_ok      # the Manufacturer and model-name rules

TEXT_CAPABLE = frozenset({"AE", "LO", "SH", "LT", "ST", "UT", "UC", "UR", "PN"})
RESTRICTED = frozenset({"CS", "DA", "DT", "TM", "AS", "IS", "DS", "UI"})
BINARY = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
NUMERIC = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "SV", "UV", "SQ"})
KNOWN_VRS = TEXT_CAPABLE | RESTRICTED | BINARY | NUMERIC
OWN_DUMMIES = frozenset({"ANONYMOUS"})          # actions.dummy_value for text VRs: carries nothing
OWN_BINARY_DUMMY = b"\x00\x00"                   # actions.dummy_value for binary VRs
CODE_MEANING = 0x00080104
ICC_PROFILE = 0x00282000                         # kept with its text tags emptied (deid.icc)
POST_PIXEL = 0x7FE00010                          # top-level tags above Pixel Data are dropped

# Kinds of refusal (engine counts "X:<kind>", audit findings use the same words)
VR_MISMATCH, URL, BINARY_KIND, GRAMMAR, UNSAFE_TEXT = "vr-mismatch", "url", "binary", "vr-grammar", "unsafe-text"
IDENTIFYING = "identifying-value"   # a kept value holding the same file's person values (deid.engine)

# PS3.5 6.2 value grammars (one value; leading/trailing spaces and trailing NULs stripped first)
_GRAMMAR = {
    "CS": re.compile(r"[A-Z0-9 _]{0,16}"),
    "DA": re.compile(r"[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"),
    "DT": re.compile(r"[0-9]{4}((0[1-9]|1[0-2])((0[1-9]|[12][0-9]|3[01])(([01][0-9]|2[0-3])([0-5][0-9]"
                     r"(([0-5][0-9]|60)(\.[0-9]{1,6})?)?)?)?)?)?([+-][0-9]{4})?"),
    # HHMMSS.FFFFFF, and the ACR-NEMA HH:MM:SS form PS3.5 tells readers to accept; never a date
    "TM": re.compile(r"([01][0-9]|2[0-3])(:?[0-5][0-9](:?([0-5][0-9]|60)(\.[0-9]{1,6})?)?)?"),
    "AS": re.compile(r"[0-9]{3}[DWMY]"),
    "IS": re.compile(r"[+-]?[0-9]{1,12}"),
    "DS": re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"),
    "UI": re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"),
}
_MAX_LEN = {"CS": 16, "DA": 8, "DT": 26, "TM": 16, "AS": 4, "IS": 12, "DS": 16, "UI": 64}
# CS attributes whose lower-case value is upper-cased when that gives a defined term
_CS_TERMS = {"Modality": "modality", "PhotometricInterpretation": "photometric", "BodyPartExamined": "body_part",
             "SpecificCharacterSet": "charset", "BurnedInAnnotation": "burned_in"}
_WORD = re.compile(r"[A-Za-z]{2,}")                 # a word of 2+ letters must be a listed one
_NUMBER = re.compile(r"[0-9]+(?:[ _\-./]+[0-9]+)*")  # digits joined by separators are one number (red team 9:
# "12/03/1985", "3006 7891", "1985.03.12" were runs of 2-4 digits each, a birth date and an ID kept in a preset name)
_DATE_SHAPE = re.compile(r"[0-9]+[\-./][0-9]+[\-./][0-9]+")   # d/m/y in any order: "1/3/85" (5 digits or fewer)
_PHRASE_GAPS = re.compile(r"[\s_\-./,]+")
_MAX_DIGITS = 5                                      # longer digit runs are IDs, not presets
_WORD_CHARS = re.compile(r"[A-Za-z0-9 _\-./]*")


@dataclass(frozen=True)
class TextRule:
    keyword: str
    values: str                       # pattern | defined_terms | words | phrases | software | vendor | model
    #                                   | clean_descriptor | checked_elsewhere
    pattern: re.Pattern | None = None
    terms: frozenset[str] = frozenset()
    maker: str | None = None          # model: the keyword of the vendor attribute beside it


@dataclass(frozen=True)
class Verdict:
    """``reason`` None: the element may stay (with ``value`` instead of its own when that is
    not None: a lower-case CS normalised to its defined term, a long DS number re-written). Else a refusal kind."""
    reason: str | None = None
    value: object = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@cache
def _data() -> dict:
    return tomllib.loads(schema_path("deid", "safe_attributes.toml").read_text(encoding="utf-8"))


@cache
def _defined_terms() -> dict[str, list[str]]:
    return tomllib.loads(schema_path("dicom", "defined_terms.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class CodedRule:
    """What a CS attribute may hold: ``terms``; ``blank_unlisted``: an unlisted value (not the
    first) is replaced by an empty one instead of refusing the element; ``digits``: the most
    digits of an all-digit value that may stay (0: none)."""
    keyword: str
    terms: frozenset[str]
    blank_unlisted: bool = False
    digits: int = 0


@cache
def coded_rules() -> dict[str, CodedRule]:
    """schemas/deid/coded_strings.toml by keyword (checked: each entry has terms and a source)."""
    data = tomllib.loads(schema_path("deid", "coded_strings.toml").read_text(encoding="utf-8"))
    out = {}
    for kw, entry in sorted(data["attributes"].items(), key=lambda e: str(e[1].get("terms")).startswith("same_as:")):
        terms = entry.get("terms")
        if not (terms or entry.get("digits")) or not entry.get("source"):
            raise ValueError(f"coded_strings.toml: {kw} needs terms (or digits) and a source")
        if terms == "body_parts":
            terms = [*_defined_terms()["body_part"], *_body_part_names()]
        elif isinstance(terms, str) and terms.startswith("same_as:"):
            terms = out[terms.removeprefix("same_as:")].terms     # FrameType: ImageType's terms
        elif isinstance(terms, str):
            terms = _defined_terms()[terms]
        terms = [*terms, *entry.get("also", ())]      # terms added beside a named list
        digits = int(entry.get("digits", 0))
        if not 0 <= digits < 5:         # 5+ digits may be an ID (deid/terms.py)
            raise ValueError(f"coded_strings.toml: {kw} digits must be 0-4")
        out[kw] = CodedRule(kw, frozenset(terms), bool(entry.get("blank_unlisted", False)), digits)
    return out


def _body_part_names() -> list[str]:
    """BodyPartExamined values of real exports (schemas/curate/body_parts.toml, with its sources):
    each normalised part name and synonym."""
    data = tomllib.loads(schema_path("curate", "body_parts.toml").read_text(encoding="utf-8"))
    return [n for part, entry in data.get("parts", {}).items() for n in (part, *entry.get("synonyms", ()))]


def coded_verdict(tag: int, value) -> Verdict:
    """A grammatical CS value of an attribute Table E.1-1 does not decide: it stays when every
    value is a listed term of its attribute (or empty, or vindr's own dummy); an attribute with
    ``blank_unlisted`` (ImageType) keeps its listed values with each unlisted one emptied, as
    long as its first value is listed (``Verdict(None, new value)``). Else ``unsafe-text``."""
    vals = _strings(value)
    rule = coded_rules().get(keyword_for_tag(tag) or "")
    if rule is None:
        ok = [v == "" or v in OWN_DUMMIES for v in vals]
    else:
        ok = [v == "" or v in OWN_DUMMIES or v in rule.terms
              or (0 < len(v) <= rule.digits and v.isdigit()) for v in vals]
    if all(ok):
        return Verdict()
    if rule is not None and rule.blank_unlisted and ok[0] and vals[0]:
        out = [v if k else "" for v, k in zip(vals, ok)]
        while out[-1] == "":
            out.pop()
        return Verdict(None, out[0] if len(out) == 1 else out)
    return Verdict(UNSAFE_TEXT)


@cache
def text_rules() -> dict[str, TextRule]:
    """The [text] allowlist by keyword (checked: each entry has a reason, source and a known kind)."""
    data = _data()
    vocabularies = data.get("vocabularies", {})
    out = {}
    for kw, entry in data["text"].items():
        if not entry.get("reason") or not entry.get("source"):
            raise ValueError(f"safe_attributes.toml: {kw} needs a reason and a source")
        kind = entry["values"]
        if kind == "pattern":
            out[kw] = TextRule(kw, kind, pattern=re.compile(entry["pattern"]))
        elif kind == "defined_terms":
            terms = entry["terms"]
            terms = _defined_terms()[terms] if isinstance(terms, str) else terms
            out[kw] = TextRule(kw, kind, terms=frozenset(terms))
        elif kind == "words":
            out[kw] = TextRule(kw, kind, terms=frozenset(w.upper() for w in vocabularies[entry["vocabulary"]]))
        elif kind == "phrases":
            phrases = [_PHRASE_GAPS.sub(" ", w).strip().upper() for w in vocabularies[entry["vocabulary"]]]
            out[kw] = TextRule(kw, kind, terms=frozenset(phrases))
        elif kind == "software":
            out[kw] = TextRule(kw, kind, pattern=re.compile(entry["pattern"]),
                               terms=frozenset(w.upper() for w in vocabularies[entry["vocabulary"]]))
        elif kind in ("clean_descriptor", "checked_elsewhere", "vendor"):
            out[kw] = TextRule(kw, kind)
        elif kind == "model":
            out[kw] = TextRule(kw, kind, maker=entry["maker"])
        else:
            raise ValueError(f"safe_attributes.toml: {kw} has an unknown values kind")
    return out


@cache
def binary_rules() -> dict[str, dict]:
    data = _data()["binary"]
    for kw, entry in data.items():
        if not entry.get("reason") or not entry.get("source"):
            raise ValueError(f"safe_attributes.toml: {kw} needs a reason and a source")
    return data


def text_capable(vr: str | None) -> bool:
    """AE, LO, SH, LT, ST, UT, UC, UR, PN, or a VR vindr does not know (could hold anything)."""
    return vr in TEXT_CAPABLE or vr not in KNOWN_VRS


def _values(value) -> list:
    if value is None or value == "" or value == b"":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def _strings(value) -> list[str]:
    out = []
    for v in _values(value):
        orig = getattr(v, "original_string", None)     # DS/IS as written, not as pydicom formats them
        if isinstance(orig, str) and orig:
            v = orig
        elif isinstance(v, bytes):
            v = v.decode("latin-1")
        out.append(str(v).strip(" \x00"))
    return out


def grammar_ok(vr: str, value) -> bool:
    """Every value of a restricted VR (CS, DA, DT, TM, AS, IS, DS, UI) matches PS3.5 6.2: a TM
    holding a date-time, a CS with lower case, a DS holding words, a UI with a leading zero or
    an empty component -> False. Other VRs: True (not a grammar question)."""
    grammar = _GRAMMAR.get(vr)
    if grammar is None:
        return True
    for s in _strings(value):
        if not s:
            continue
        if len(s) > _MAX_LEN[vr] or not grammar.fullmatch(s):
            return False
        if vr == "IS" and not -(2 ** 31) <= int(s) < 2 ** 31:
            return False
    return True


def normalised_cs(tag: int, value):
    """A lower-case CS value upper-cased, when that makes every value a defined term of the
    attribute (``Modality`` "cr" -> "CR"); else None."""
    keyword = keyword_for_tag(tag) or ""
    name = _CS_TERMS.get(keyword)
    coded = coded_rules().get(keyword)
    if name is None and coded is None:
        return None
    terms = coded.terms if coded is not None else set(_defined_terms().get(name, ()))
    vals = [s.upper() for s in _strings(value)]
    if not vals or not all(v in terms or v == "" for v in vals):
        return None
    return vals[0] if len(vals) == 1 else vals


def normalised_ds(value):
    """A DS value longer than PS3.5's 16 characters that is still a finite number (exports
    write ``0.14300000000000001``) re-written in at most 16 characters (pydicom's
    ``format_number_as_ds``); else None. A number hides no name, and removing it would lose
    a pixel spacing or a rescale slope."""
    import math

    from pydicom.valuerep import format_number_as_ds

    out = []
    for s in _strings(value):
        if s == "":
            out.append(s)
            continue
        if len(s) > 64 or not _GRAMMAR["DS"].fullmatch(s):
            return None
        try:
            f = float(s)
        except ValueError:
            return None
        if not math.isfinite(f):
            return None
        out.append(format_number_as_ds(f))
    if not out:
        return None
    return out[0] if len(out) == 1 else out


def _clean_descriptor(s: str) -> bool:
    from vindr_cli.deid.actions import safe_descriptors    # one vocabulary with the C action
    return s.upper() in safe_descriptors()


def code_meaning_checked_elsewhere(tag: int) -> bool:
    """CodeMeaning is judged with its whole code item by ``deid.codes.check_code_item``
    (another unit); here it counts as allowed text."""
    return tag == CODE_MEANING


def safe_text(tag: int, value, siblings=None) -> bool:
    """A text value may stay: empty, vindr's own dummy, or an allowlisted attribute whose every
    value passes the entry's constraint. ``siblings``: the data set (or item) holding the
    element; a model name stays only when the vendor attribute there is a listed vendor."""
    vals = [s for s in _strings(value) if s]
    if not vals or all(v in OWN_DUMMIES for v in vals):
        return True
    rule = text_rules().get(keyword_for_tag(tag) or "")
    if rule is None:
        return False
    if rule.values == "model":
        makers = _strings(siblings.get(rule.maker)) if siblings is not None and rule.maker in siblings else []
        if not makers or not all(vendor_ok(m) for m in makers):
            return False
    for s in vals:
        if s in OWN_DUMMIES:
            continue
        if rule.values == "pattern":
            ok = bool(rule.pattern.fullmatch(s))
        elif rule.values == "defined_terms":
            ok = s in rule.terms
        elif rule.values == "words":
            ok = (bool(_WORD_CHARS.fullmatch(s)) and all(w.upper() in rule.terms for w in _WORD.findall(s))
                  and all(sum(c.isdigit() for c in n) <= _MAX_DIGITS for n in _NUMBER.findall(s))
                  and not _DATE_SHAPE.search(s))
        elif rule.values == "phrases":
            ok = _PHRASE_GAPS.sub(" ", s).strip().upper() in rule.terms
        elif rule.values == "software":
            ok = bool(rule.pattern.fullmatch(s)) and _software_ok(s, rule.terms)
        elif rule.values == "vendor":
            ok = vendor_ok(s)
        elif rule.values == "model":
            ok = model_ok(s)
        elif rule.values == "clean_descriptor":
            ok = _clean_descriptor(s)
        else:                       # checked_elsewhere: codes.check_code_item
            ok = code_meaning_checked_elsewhere(tag)
        if not ok:
            return False
    if rule.values == "words" and sum(c.isdigit() for v in vals for c in v) > _MAX_DIGITS:
        return False        # an ID split across the values: "LUNG 3006" and "BONE 7891" (red team 9)
    return True


_ALNUM = re.compile(r"[A-Za-z0-9]+")
_LETTER_RUN = re.compile(r"[A-Za-z]+")
_DIGITS_ONLY = re.compile(r"[0-9]+")


def _software_ok(s: str, words: frozenset[str]) -> bool:
    """A software version that cannot be a name (red team 9: "PHUOC LOC PACS 2.1", "TRINH CONG SON 1"
    passed the digit-required pattern): every word of letters only (2+ letters) is a listed
    software word or a model word or family of schemas/deid/vendors.toml; a word of letters and
    digits holds no unlisted run of 4+ letters ("VA48A", "4VB11D", "R6.1" stay; "HUYNH2" goes);
    no digit run longer than 5 (an ID, a date)."""
    from vindr_cli.vendors import _vendors
    data = _vendors()
    listed = words | data["model_words"] | data["model_families"]
    for w in _ALNUM.findall(s):
        runs = _LETTER_RUN.findall(w)
        if w.isalpha():
            if len(w) >= 2 and w.upper() not in listed:
                return False
        elif any(len(r) >= 4 and r.upper() not in listed for r in runs):
            return False
    return all(len(d) <= _MAX_DIGITS for d in _DIGITS_ONLY.findall(s))


_DIGIT_GAP = re.compile(r"(?<=[0-9])[ ./-](?=[0-9])")
UID_SHAPE = re.compile(r"[0-9]+(\.[0-9]+)+")     # a UID: matched whole and by prefix, never by its digit runs
NUMBER_STRINGS = frozenset({"IS", "DS"})
_INSIDE_DIGITS = 7          # an ID or a date sought inside a number string from this many digits


def date_forms(value, near: bool = False) -> list[str]:
    """A date YYYYMMDD as it is also written in digits only: DDMMYYYY and MMDDYYYY (red team 9: a
    birth date 19850312 kept as the IS 12031985); with ``near``, also the day before and the day
    after (a birth date off by one, as a time zone or a typo writes it: 19850313 as a code's
    version). Anything else: none."""
    v = str(value).strip()
    if len(v) != 8 or not v.isdigit() or not "01" <= v[4:6] <= "12" or not "01" <= v[6:] <= "31":
        return []
    out = [v[6:] + v[4:6] + v[:4], v[4:6] + v[6:] + v[:4]]
    if near:
        import datetime
        try:
            day = datetime.date(int(v[:4]), int(v[4:6]), int(v[6:]))
            out += [(day + datetime.timedelta(days=d)).strftime("%Y%m%d") for d in (-1, 1)]
        except (ValueError, OverflowError):
            pass
    return list(dict.fromkeys(f for f in out if f != v))


def id_forms(value) -> list[str]:
    """An ID, phone number or other value of digits and separators or letters as it is also
    written elsewhere: its digits run together and each run of 5 or more on its own (red team 9:
    the ID "3006 7891" or "BN 30067891" kept as the IS 30067891). A value of digits only: none."""
    v = str(value).strip()
    runs = _DIGITS_ONLY.findall(v)
    joined = "".join(runs)
    if len(joined) < 5 or joined == v:
        return []
    return list(dict.fromkeys([joined, *(r for r in runs if len(r) >= 5 and r != joined)]))


_HEX_TOKEN = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?([0-9A-Fa-f]*[A-Fa-f][0-9A-Fa-f]*)(?![0-9A-Za-z])")


def _hex_number_found(terms, text: str) -> bool:
    """An ID or date of 6 digits or more written in hexadecimal ("26A3C8F" or "0x26A3C8F" is
    40517263; red team 10: kept as a SoftwareVersions): each word of 5 to 16 hex digits with a
    letter A-F read as a number and compared whole with the digit terms."""
    # listed once per size of each set (``terms.parts``: deid.terms.TermUnion): no terms, no search of the text
    sought = [s for s in (p.hex_terms() for p in terms.parts) if s]
    if not sought or not any(c in text for c in "ABCDEFabcdef"):
        return False
    numbers = {str(int(h, 16)) for h in _HEX_TOKEN.findall(text) if 5 <= len(h) <= 16 and any(c.isdigit() for c in h)}
    return any(not s.isdisjoint(numbers) for s in sought)


def _inside_runs(index: tuple[list[str], frozenset[str], frozenset[int]], runs: list[str]) -> bool:
    """A term of ``index`` (deid.terms.TermSet.digit_index: the terms, digits only, as a list, a
    set and their lengths) inside one of the digit runs ``runs``: each term sought once in the
    runs joined by a newline (no term holds one, so none matches across two runs), or, when there
    are more terms than the runs have digits for, each run's substrings of the terms' lengths
    looked up in the set (a study's 20,000 peer terms against a short value)."""
    sought, wanted, lengths = index
    if not sought:
        return False
    text = "\n".join(runs)
    if len(sought) * (1 + len(text) // 4096) <= len(text) * len(lengths) // 8:
        return any(t in text for t in sought)
    return any(r[i:i + k] in wanted for r in runs for k in lengths for i in range(len(r) - k + 1))


def found_in_digits(terms, text: str, vr: str | None) -> bool:
    """``terms`` (a deid.terms.TermSet) in the digits of a value, as the anonymizer and the audit
    both read it (red team 9), with the spaces, dots, slashes and dashes between digits dropped:
    an ID or a date of 7 digits or more anywhere inside ("300678914": the ID and a check digit;
    "19850312.0", "1985.0312", "12/03/1985" as 12031985, "MRN 3006-7891" in a LUT's bytes); and,
    but in IS/DS numbers, any shorter term as a whole joined run ("1985.03.12"'s tokens are kept
    whole, "77.123" is the ID 77123). Shorter IDs are not sought inside numbers: a 5-digit ID is
    inside about one DS value in 20,000 by chance, and a PixelSpacing dummied to 0 would cost the
    image its scale."""
    if _hex_number_found(terms, text):
        return True
    joined = _DIGIT_GAP.sub("", text)
    runs = _DIGITS_ONLY.findall(text) + (_DIGITS_ONLY.findall(joined) if joined != text else [])
    # "1234567" is in every ramp: never sought inside (TermSet.digit_terms)
    if runs and any(_inside_runs(p.digit_index(_INSIDE_DIGITS), runs) for p in terms.parts):
        return True
    if vr in NUMBER_STRINGS or joined == text:
        return False
    from vindr_cli.deid.terms import tokens
    return terms.found_in(tokens(joined))


SPLIT_VRS = frozenset({"IS", "DS", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})


def _number_digits(v) -> str | None:
    """A number's digits as it reads (4051, "4051", 4051.0 -> "4051"); None for a fraction or no number."""
    try:
        f = float(str(v).strip())
    except (TypeError, ValueError):
        return None
    if f != f or f in (float("inf"), float("-inf")) or not f.is_integer() or f < 0:
        return None
    return str(int(f))


def split_across(terms, elements) -> set[int]:
    """The tags of two number elements of one data set that together spell an ID or a date of
    ``terms`` (a deid.terms.TermSet: its digit terms of 7 digits or more), one part each, the
    first part's digits and then the second's: the ID 40517263 as InstanceNumber 4051 and
    AcquisitionNumber 7263, the birth date as WindowCenter 1979 and WindowWidth 824 (red team 10;
    the values of one element joined are found_in_digits'). ``elements``: (tag, VR, value) of the
    data set's kept number elements. Each part must have 3 significant digits or more, as a
    number is written ("0824" is 824; a part of 1-2 digits, InstanceNumber 7, would make an ID
    ending in 7 and any other number a match)."""
    from vindr_cli.deid.terms import SPLIT_PART, split_parts

    by_digits: dict[str, set[int]] = {}
    for tag, vr, value in elements:
        if vr not in SPLIT_VRS:
            continue
        values = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        if len(values) > 16:        # a table, not an attribute's numbers
            continue
        for v in values:
            d = _number_digits(v)
            if d is not None and len(d) >= SPLIT_PART:
                by_digits.setdefault(d, set()).add(tag)
    if len(by_digits) < 1:
        return set()
    hits: set[int] = set()
    for t in (t for p in terms.parts for t in p.split_terms(_INSIDE_DIGITS)):   # the digit terms only (listed once a set)
        for head, tail in split_parts(t):
            first, second = by_digits.get(head, set()), by_digits.get(tail, set())
            for a in first:
                for b in second:
                    if a != b:
                        hits.update((a, b))
    return hits


def safe_binary(tag: int, value=None) -> bool:
    """A binary-VR element may stay: its attribute is allowlisted (and for ICCProfile the bytes
    are an ICC profile). ExtendedOffsetTable(Lengths) are not on the list."""
    entry = binary_rules().get(keyword_for_tag(tag) or "")
    if entry is None:
        return False
    if entry.get("values") == "icc":
        from vindr_cli.deid import icc
        return icc.clean(bytes(value or b"")) is not None
    return True


def dictionary_vr(tag: int) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def vr_mismatch(stored: str | None, tag: int) -> bool:
    """The stored VR disagrees with an unambiguous dictionary VR, or is a text VR on an
    ambiguous one ("US or SS", "OB or OW"): a file cannot relabel a value to slip it through."""
    known = dictionary_vr(tag)
    if not stored or not known or " or " in stored:
        return False
    if " or " not in known:
        return stored != known
    return stored in TEXT_CAPABLE or stored not in known.split(" or ")


# The attributes of a code item (PS3.3 Table 8.8-1): judged with their item by deid.codes;
# at the top level of a data set, where no code item holds them, they are free text.
CODE_ITEM_TAGS = frozenset({0x00080100, 0x00080102, 0x00080103, 0x00080104, 0x00080105, 0x0008010F,
                            0x00080119, 0x00080120, 0x00080122})


PIXEL_VALUE_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
# Free text that an Annex E option keeps (K) but that is still judged against the allowlist:
# the option means "keep the characteristic", not "keep whatever was typed in the field".
# So are the coded strings it keeps (red team 8: "HOANG", another person's name, kept as
# PatientSex): a value that is not one of the attribute's listed terms is refused.
JUDGED_EVEN_IF_KEPT = frozenset({0x00102160,       # EthnicGroup
                                 0x00100040, 0x001021A0, 0x00102203})   # PatientSex, SmokingStatus, PatientSexNeutered


def judge(elem, *, trusted_text: bool = False, top: bool = False, siblings=None) -> Verdict:
    """May this (decoded) element stay in a de-identified data set as it is? ``siblings``: the
    data set or item holding it (a model name is judged with the vendor beside it).

    ``trusted_text``: the profile keeps this text attribute by an explicit rule (a Table
    E.1-1 option, a recipe) or vindr wrote it (its marks): text is then not checked against
    the allowlist, nor a coded string against its listed terms; grammar, URL, binary and VR
    checks still apply."""
    stored = getattr(elem, "VR", None)
    tag = elem.tag
    if vr_mismatch(stored, tag):
        return Verdict(VR_MISMATCH)
    if top and tag in CODE_ITEM_TAGS and elem.value not in (None, "", b""):
        # ``top``: the element is at depth 0 (no code item around it); a URN is still a URL
        return Verdict(URL if dictionary_vr(tag) == "UR" else UNSAFE_TEXT)
    if not top and tag in PIXEL_VALUE_TAGS:
        return Verdict(BINARY_KIND)     # pixels inside an item (an icon, a thumbnail) may show text
    vr = stored if stored and " or " not in stored else (dictionary_vr(tag) or "UN")
    if " or " in vr:
        vr = vr.split(" or ")[0]
    value = elem.value
    if value is None or value == "" or value == b"" or (isinstance(value, (list, MultiValue)) and len(value) == 0):
        return Verdict()
    if vr == "SQ" or vr in NUMERIC:
        return Verdict()
    if vr == "UR":
        return Verdict(URL)
    if vr in BINARY:
        ok = safe_binary(tag, value) or bytes(value) == OWN_BINARY_DUMMY
        if ok and tag == ICC_PROFILE and bytes(value) != OWN_BINARY_DUMMY:
            from vindr_cli.deid import icc
            cleaned = icc.clean(bytes(value))      # its numbers only: the text tags name makers, screens, places
            return Verdict() if cleaned == bytes(value) else Verdict(None, cleaned)
        return Verdict() if ok else Verdict(BINARY_KIND)
    if vr in RESTRICTED:
        if grammar_ok(vr, value):
            # a CS the profile does not keep by an explicit rule: a listed term of its attribute
            return coded_verdict(tag, value) if vr == "CS" and not trusted_text else Verdict()
        fixed = normalised_cs(tag, value) if vr == "CS" else normalised_ds(value) if vr == "DS" else None
        if fixed is not None:
            return Verdict(None, fixed)
        return Verdict(GRAMMAR)
    if trusted_text or safe_text(tag, value, siblings):
        return Verdict()
    return Verdict(UNSAFE_TEXT)
