"""Code sequence items: a CodeMeaning passes only as the known meaning of a known code.

A code item (PS3.3 Table 8.8-1: CodeValue, LongCodeValue or URNCodeValue +
CodingSchemeDesignator + CodeMeaning) is kept by the profile like any other item, but its
CodeMeaning is free text: a procedure code whose meaning holds a patient's or a
hospital's name would pass. So every code item met in a kept or cleaned sequence is
checked against the DICOM code dictionaries pydicom ships (``schemes and source:
schemas/deid/code_meanings.toml``):

- known code, meaning one of its known meanings (case and runs of white space ignored):
  ``"keep"``;
- known code, any other meaning (or none): CodeMeaning is set to the known meaning in
  place: ``"replaced"``;
- a known code's CodingSchemeVersion / MappingResourceName, the only other free text a
  code item holds, is kept only in the forms the schema allows (a version number; the
  DICOM mapping resource's name), else removed (``"replaced"``: the item was changed);
- anything else: ``"remove"``: the caller drops the item, or, when it is the last item of
  a sequence the IOD requires (Type 1 or 1C, or unknown), turns it into vindr's own
  placeholder code (:func:`placeholder`, ``99VINDR REMOVED``), as Annex E's D writes a
  dummy: the output stays valid and holds no trace of the local code. That is an unknown code (local
  "99..." schemes, designators vindr does not know, values not in the dictionary, URN and
  long values not in it), a malformed one (no or several code values, a multi-valued or
  non-text value, no designator), or an item with a CodeMeaning and no code at all.

Known codes: every scheme of pydicom's concept dictionary (DCM, SCT, LN, UCUM, FMA, NCIt,
RADLEX, MDC, ...); SNOMED-RT ids under SRT or SNM3 through pydicom's SRT -> SCT mapping
(devices still write "SNM3 R-10206 antero-posterior"); and the few retired codes listed
under ``extra`` in the schema (R-10214 "postero-anterior", the usual chest PA view).

The same rule applies to every code sequence, with no exception by name: SR
ConceptNameCodeSequence / ConceptCodeSequence (the document title and, ContentSequence
being D in Table E.1-1 and so walked, every content item at every depth; an item whose
concept name is unknown gets the placeholder, concept names being Type 1C),
ProcedureCodeSequence, AnatomicRegionSequence, ViewCodeSequence (standard SNOMED view codes,
current or SNOMED-RT, are known and survive with their meaning; a local view code is
dropped, or becomes the placeholder where the view is Type 1, as in MG), ECG channel
sources (SCPECG codes are not in pydicom's dictionaries: placeholders), and the modifier
sequences nested in them. A sequence the IOD does not require whose every item is removed
is left empty (zero length, as Z would). The only
exemption is the user's own choice: with an Annex E option that keeps an identity (Retain
Institution / Device Identity), the code sequences Table E.1-1 keeps for that option
(InstitutionCodeSequence, PerformedStationNameCodeSequence, ...) are not checked
(:func:`retained_sequences`).

The index is built once per process, the first time a code item is met: 31,439 codes in
0.3 s on a loaded 2-core machine, 8 MiB kept (the process RSS grows by about 23 MiB, as
pydicom's dictionary modules run once); it holds only (designator, value) -> meanings, not
pydicom's modules (see :func:`index_stats`).
"""
from __future__ import annotations

import importlib.util
import re
import tomllib
import unicodedata
from functools import cache
from pathlib import Path

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from vindr_cli.deid.table import load_table
from vindr_cli.resources import schema_path

CODE_VALUE, CODE_MEANING, LONG_CODE_VALUE, URN_CODE_VALUE = 0x00080100, 0x00080104, 0x00080119, 0x00080120
CODING_SCHEME_DESIGNATOR, CODING_SCHEME_VERSION, MAPPING_RESOURCE_NAME = 0x00080102, 0x00080103, 0x00080122
CONTEXT_IDENTIFIER, MAPPING_RESOURCE = 0x0008010F, 0x00080105
VALUE_TAGS = (CODE_VALUE, LONG_CODE_VALUE, URN_CODE_VALUE)
CODE_TAGS = frozenset((*VALUE_TAGS, CODE_MEANING))
_VALUE_MAX = {CODE_VALUE: 16, LONG_CODE_VALUE: 1024, URN_CODE_VALUE: 1024}   # SH (PS3.3 8.8: 16 at most), UC, UR


@cache
def _config() -> dict:
    return tomllib.loads(schema_path("deid", "code_meanings.toml").read_text(encoding="utf-8"))


def _pydicom_dict(name: str) -> dict:
    """One of pydicom's generated dictionary modules, executed on its own (not through
    ``pydicom.sr``, whose import also loads the CID tables and keeps them for good), so
    that only the index built from it outlives this call."""
    path = Path(pydicom.__file__).parent / "sr" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_vindr_pydicom_{name}", path)
    if spec is None or spec.loader is None:   # pragma: no cover - an unusual pydicom install
        module = importlib.import_module(f"pydicom.sr.{name}")
        return dict(vars(module))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(vars(module))


def norm(meaning: str) -> str:
    """A meaning as compared: case folded, runs of white space as one space, trimmed."""
    return " ".join(str(meaning).split()).casefold()


@cache
def _meanings() -> dict[tuple[str, str], list[str]]:
    """(designator, value) -> every meaning pydicom's dictionary gives it, in order (SRT /
    SNOMED-RT ids share their SCT code's list). Built once per process; what vindr writes and
    compares is derived per code on first use (:func:`_entry`): deriving all 31,439 up front
    was half of a worker's start-up."""
    concepts = _pydicom_dict("_concepts_dict")["concepts"]
    found: dict[tuple[str, str], list[str]] = {}
    for scheme, by_keyword in concepts.items():
        for codes in by_keyword.values():
            for value, (meaning, _cids) in codes.items():
                known = found.setdefault((scheme, value), [])
                if meaning not in known:
                    known.append(meaning)
    srt_to_sct = _pydicom_dict("_snomed_dict")["mapping"].get("SRT", {})
    for designator in _config()["snomed_rt_designators"]:
        for srt, sct in srt_to_sct.items():
            if ("SCT", sct) in found:
                found[(designator, srt)] = found[("SCT", sct)]
    mark = _config()["placeholder"]
    found[(mark["designator"], mark["value"])] = [mark["meaning"]]
    for extra in _config().get("extra", []):
        for designator in extra["designators"]:
            known = found.setdefault((designator, extra["value"]), [])
            if extra["meaning"] not in known:
                known.insert(0, extra["meaning"])
    return found


def _derive(meanings: list[str]) -> tuple[str, tuple[str, ...]]:
    # written: the first meaning that is not a SNOMED fully specified name ("... (qualifier value)")
    first = min(meanings, key=lambda m: (m.rstrip().endswith(")"), meanings.index(m)))
    known = [v for m in meanings for v in _forms(m)]
    return _forms(first)[1], tuple(dict.fromkeys(norm(v) for v in known))


_ENTRIES: dict[tuple[str, str], tuple[str, tuple[str, ...]] | None] = {}


def _entry(code: tuple[str, str]) -> tuple[str, tuple[str, ...]] | None:
    """(the meaning written, every known meaning normalised) for a known code, else None."""
    try:
        return _ENTRIES[code]
    except KeyError:
        pass
    meanings = _meanings().get(code)
    entry = None if meanings is None else _derive(meanings)
    if len(_ENTRIES) < 1 << 16:          # bounded: a file may carry any number of unknown codes
        _ENTRIES[code] = entry
    return entry


@cache
def _index() -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    """(designator, value) -> (the meaning written, every known meaning normalised): the
    whole index (reports and tests; de-identification looks codes up one by one, ``_entry``)."""
    out, shared = {}, {}
    for code, meanings in _meanings().items():
        entry = shared.get(id(meanings))          # SRT/SNM3 codes share their SCT code's list
        if entry is None:
            entry = shared[id(meanings)] = _derive(meanings)
        out[code] = entry
    return out


def _forms(meaning: str) -> tuple[str, str]:
    """(the meaning as the standard has it, the meaning as vindr writes it). pydicom's copy
    carries zero-width spaces from the standard's HTML ("Impression/\u200bRecommendation"),
    dropped from both; vindr writes ASCII (Müller -> Muller: right in any character set)
    and at most 64 characters (CodeMeaning is LO). A file may hold either form."""
    clean = " ".join(meaning.replace("\u200b", "").split())
    if clean.isascii() and len(clean) <= 64:
        return clean, clean
    ascii_ = unicodedata.normalize("NFKD", clean).encode("ascii", "ignore").decode("ascii")
    written = " ".join(ascii_.split())[:64].rstrip()
    return clean, written or clean[:64]


def source() -> str:
    """Where the known codes come from (for reports and the datasheet)."""
    return f"pydicom {pydicom.__version__}: {_config()['source']}"


def index_stats() -> dict[str, int]:
    """Number of known codes per designator (builds the index)."""
    stats: dict[str, int] = {}
    for scheme, _value in _meanings():
        stats[scheme] = stats.get(scheme, 0) + 1
    return stats


def known_meaning(scheme: str, value: str) -> str | None:
    """The meaning vindr writes for a known code, else None."""
    hit = _entry((str(scheme).strip(), str(value).strip()))
    return None if hit is None else hit[0]


def is_code_item(item: Dataset) -> bool:
    """An item that holds a code or a code meaning (CodingSchemeIdentificationSequence
    items, which hold a designator and no code, are not)."""
    return any(t in item for t in CODE_TAGS)


def _text(item: Dataset, tag: int) -> str | None:
    """The element's single text value, None when absent or empty; ValueError when it is
    not one plain text value (several values, bytes, control characters, too long)."""
    if tag not in item:
        return None
    value = item[tag].value
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("not a single text value")
    text = value.strip()
    if not text or any(ord(c) < 0x20 or c == "\\" for c in text) or len(text) > _VALUE_MAX.get(tag, 64):
        raise ValueError("not a code value")
    return text


def _code(item: Dataset) -> tuple[str, str] | None:
    """(designator, value) of a well-formed code item, else None."""
    try:
        values = [v for v in (_text(item, t) for t in VALUE_TAGS) if v is not None]
        scheme = _text(item, CODING_SCHEME_DESIGNATOR)
    except Exception:   # a value pydicom cannot read, or one no code value has
        return None
    if len(values) != 1 or scheme is None:
        return None
    return scheme, values[0]


def _free_text(item: Dataset) -> list[int]:
    """Tags of the item's CodingSchemeVersion / MappingResourceName when not in a form
    ``schemas/deid/code_meanings.toml`` allows (free text, which may hold anything)."""
    config = _config()
    out = []
    for tag, ok in ((CODING_SCHEME_VERSION, lambda v: re.fullmatch(config["coding_scheme_version"], v)),
                    (MAPPING_RESOURCE_NAME, lambda v: norm(v) in {norm(n) for n in config["mapping_resource_names"]}),
                    (CONTEXT_IDENTIFIER, lambda v: re.fullmatch(config["context_identifier"], v)),
                    (MAPPING_RESOURCE, lambda v: v in config["mapping_resources"])):
        if tag in item:
            try:
                value = item[tag].value
            except Exception:
                out.append(tag)
                continue
            if value not in (None, "") and not (isinstance(value, str) and ok(value.strip())):
                out.append(tag)
    return out


def code_status(item: Dataset) -> str:
    """``"known"`` (a known code whose CodeMeaning, if present, is a known meaning of it, and
    nothing else of it free text), ``"other-meaning"`` (a known code with another CodeMeaning
    or a free-text CodingSchemeVersion / MappingResourceName) or ``"unknown"``. Reads only."""
    code = _code(item)
    hit = None if code is None else _entry(code)
    if hit is None:
        return "unknown"
    if _free_text(item):
        return "other-meaning"
    if CODE_MEANING not in item:
        return "known"
    try:
        meaning = item[CODE_MEANING].value
    except Exception:
        return "other-meaning"
    if meaning is None or meaning == "":
        return "known"
    return "known" if isinstance(meaning, str) and norm(meaning) in hit[1] else "other-meaning"


def check_code_item(item: Dataset) -> str:
    """``"keep"``, ``"replaced"`` (CodeMeaning set to the known meaning in place, and a
    free-text CodingSchemeVersion / MappingResourceName removed) or ``"remove"`` (the caller
    removes the item). See the module docstring."""
    status = code_status(item)
    if status == "unknown":
        return "remove"
    free = _free_text(item)
    for tag in free:
        del item[tag]
    if free:
        status = code_status(item)
    written = _entry(_code(item))[0]
    if status == "known" and CODE_MEANING in item and item[CODE_MEANING].value not in (None, ""):
        return "replaced" if free else "keep"
    item.CodeMeaning = written       # Type 1 in a code item: a missing or empty one is written too
    return "replaced"


# the Code Sequence Macro (PS3.3 Table 8.8-1) and the coding scheme UID some writers add
MACRO_TAGS = frozenset({0x00080100, 0x00080102, 0x00080103, 0x00080104, 0x00080105, 0x00080106, 0x00080107,
                        0x0008010B, 0x0008010C, 0x0008010D, 0x0008010F, 0x00080117, 0x00080118, 0x00080119,
                        0x00080120, 0x00080121, 0x00080122})


def placeholder(item: Dataset) -> None:
    """Turn an unknown code's item into vindr's placeholder code in place (every attribute
    of the code macro dropped; ``[placeholder]`` in the schema written): for an item that
    must stay. The item's other attributes (nested sequences) are left to the caller."""
    for tag in [t for t in item.keys() if t in MACRO_TAGS]:
        del item[tag]
    mark = _config()["placeholder"]
    item.CodeValue = mark["value"]
    item.CodingSchemeDesignator = mark["designator"]
    item.CodeMeaning = mark["meaning"]


@cache
def _retained(options: frozenset[str]) -> frozenset[int]:
    wanted = set(_config()["identity_options"]) & options
    if not wanted:
        return frozenset()
    _provenance, rows = load_table()
    tags = set()
    for row in rows:
        if row.keyword and row.keyword.endswith("CodeSequence") and any(row.options.get(o) == "K" for o in wanted):
            tag = tag_for_keyword(row.keyword)
            if tag is not None:
                tags.add(tag)
    return frozenset(tags)


def retained_sequences(options) -> frozenset[int]:
    """Tags of the sequences whose items are not checked, given the profile's options:
    those Table E.1-1 keeps (K) for an identity option in effect (``identity_options`` in
    schemas/deid/code_meanings.toml)."""
    return _retained(frozenset(options))
