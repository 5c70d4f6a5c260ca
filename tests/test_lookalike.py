"""Names disguised by script (issue 13, "lookalike"): what the name search over kept values,
numbers and bytes (deid.terms: TermSet, fold, the wide search) let through on 9aebe87, each
held by a test that failed there, on pydicom's CT_small with planted values.

L1 Look-alikes. "NGUYEN VAN AN" written with Cyrillic or Greek capitals that look like Latin
   ones (Е А of Cyrillic, Ν Υ Ε Α of Greek: mixed-script spoofing) in a kept text element, in a
   kept sequence item's text, or as UTF-8/UTF-16 bytes of a kept OW value: fold kept the
   Cyrillic letters, so the words were other tokens, and the bytes' search read only Latin
   letters. Text and terms are now also compared by their Latin skeleton
   (schemas/deid/confusables.toml, from Unicode TR39's confusables.txt): the other way round
   too (the header's name spoofed, the bytes plain).
L2 Indic names without their vowel signs: राजेश written रजश, கார்த்திக் written கரததக (consonants
   only, as typed without a matra keyboard): not found. The marks of the Indic scripts are now
   optional as Hebrew and Arabic vowel marks are (review 10), for names of 3 letters or more
   once the marks are dropped.
L3 Vietnamese names in the one-byte code pages (VISCII, TCVN 5712) whose words all are shorter
   than 5 characters or hold fewer than 4 ASCII letters (LÊ^THỊ^HỒNG): no word was sought (a lone
   HỒNG matches random bytes too often). The whole name (its words in order, and its first and
   last, at most 3 separator bytes between them) is sought now when it holds 5 ASCII letters or
   more and no word of it is sought alone, for 2 to 5 words.
L4 The hospital named only inside a sequence item (RequestAttributesSequence, removed, whose
   InstitutionName the audit then seeks everywhere), and the department (InstitutionalDepartmentName):
   neither was sought by the anonymizer in kept numbers and bytes, so a LUT spelling them was
   written and the output failed `vindr audit`.
"""
from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import anonymize_export, audit_after_planting, save
from test_redteam8 import _voi_lut
from test_safe_default import real
from vindr_cli.deid.terms import TermSet, tokens, value_views

NAME = "NGUYEN^VAN^AN"
# the same words with look-alike letters of other scripts (only these code points differ)
SPOOFS = {
    "cyrillic": "NGUY\u0415N V\u0410N \u0410N",                  # Cyrillic Е, А
    "greek": "\u039dGU\u03a5\u0395\u039d V\u0391\u039d \u0391\u039d",   # Greek Ν Υ Ε Ν, Α Ν
    "cyrillic_lower": "nguy\u0435n v\u0430n \u0430n",            # Cyrillic е, а
    "fullwidth": "ＮＧＵＹＥＮ ＶＡＮ ＡＮ",
}
BYTE_FORMS = {"utf8": "utf-8", "utf16le": "utf-16-le", "utf16be": "utf-16-be"}


def _terms(*values: str) -> TermSet:
    ts = TermSet()
    for v in values:
        ts.add(v)
    return ts


def _in_bytes(ts: TermSet, data: bytes) -> bool:
    return ts.found_in_value(*reversed(value_views(data, "OW")))


def _in_text(ts: TermSet, text: str) -> bool:
    return ts.found_in(tokens(text)) or ts.found_wide(text)


# ------------------------------------------------------------------ L1: look-alike letters

@pytest.mark.parametrize("spoof", list(SPOOFS))
def test_a_look_alike_spelling_in_text_is_the_name(spoof):
    assert _in_text(_terms(NAME), SPOOFS[spoof])
    assert _in_text(_terms(NAME), SPOOFS[spoof].replace(" ", ""))       # run together


@pytest.mark.parametrize("spoof", list(SPOOFS))
@pytest.mark.parametrize("form", list(BYTE_FORMS))
def test_a_look_alike_spelling_in_bytes_is_the_name(spoof, form):
    assert _in_bytes(_terms(NAME), f" {SPOOFS[spoof]} ".encode(BYTE_FORMS[form]))


@pytest.mark.parametrize("spoof", ["cyrillic", "greek"])
def test_a_look_alike_spelling_in_the_header_finds_the_plain_name(spoof):
    ts = _terms(SPOOFS[spoof].replace(" ", "^"))
    assert _in_bytes(ts, b" NGUYEN VAN AN ")
    assert _in_text(ts, "NGUYEN VAN AN")


def test_a_look_alike_spelling_in_numbers_is_the_name():
    """One character a US number (UTF-16 code units), as red team 7 planted Latin names."""
    ts = _terms(NAME)
    assert ts.found_in_value(*reversed(value_views([ord(c) for c in SPOOFS["cyrillic"]], "US")))


def test_real_cyrillic_and_greek_names_are_still_matched_in_either_case():
    """The skeleton is an added comparison: a Cyrillic name in upper case still matches its lower
    case, and a name whose letters look Latin is not confused with a different Latin name."""
    ts = _terms("Ivanov^Sergei=Иванов^Сергей")
    assert _in_text(ts, "ИВАНОВ") and _in_text(ts, "иванов")
    assert not _in_text(_terms("MAI^TAN^HOA"), "МАЙ ТАН")          # Cyrillic МАЙ: not MAI (Й)
    assert not _in_text(_terms(NAME), "НГУЕН ВАН АН")               # a Cyrillic transliteration: other letters


def test_random_and_ramp_values_are_not_a_look_alike_name():
    """The skeleton adds ~80 letters that read as Latin: 64 KiB of random bytes and a linear
    LUT of every 16-bit value still hold no name of the sample export's kind."""
    ts = _terms(NAME, "TRAN^THI^MAI", "LE^VAN^HUNG", "PHAM^MINH^KHOA")
    rng = np.random.default_rng(13)
    for i in range(4):
        assert not _in_bytes(ts, rng.integers(0, 256, 65536, dtype=np.uint8).tobytes()), i
    assert not ts.found_in_value(*reversed(value_views(list(range(65536)), "US")))


# ------------------------------------------------------------------ L2: Indic names without vowel signs

HI = "Rajesh^Kumar=राजेश^कुमार"
TA = "Karthik^Raja=கார்த்திக்^ராஜா"
BN = "Sourav^Ganguly=সৌরভ^গাঙ্গুলী"
BARE = {    # the name's word without its marks (vowel signs, virama, nukta, anusvara)
    "hi": (HI, "रजश"),
    "ta": (TA, "கரததக"),
    "bn": (BN, "গঙগল"),
}


@pytest.mark.parametrize("label", list(BARE))
def test_an_indic_name_without_its_vowel_signs_is_found(label):
    name, bare = BARE[label]
    ts = _terms(name)
    assert _in_bytes(ts, f" {bare} ".encode("utf-16-le"))
    assert _in_bytes(ts, f" {bare} ".encode("utf-8"))
    assert _in_text(ts, bare)


def test_an_indic_name_written_without_marks_in_the_header_finds_the_full_word():
    ts = _terms("Rajesh^Kumar=रजश^कमर")
    assert _in_text(ts, "राजेश") and _in_bytes(ts, " राजेश ".encode("utf-16-le"))


def test_two_letters_without_marks_are_not_a_term():
    """A name of two letters once its marks are gone (राम: रम) would match any Hindi text: not sought bare."""
    ts = _terms("Ram^Lal=राम^लाल")
    assert _in_text(ts, "राम")
    assert not _in_text(ts, "रम")


# ------------------------------------------------------------------ L3: short Vietnamese words in VISCII / TCVN

SHORT_VI = "LÊ^THỊ^HỒNG"
# " LÊ THỊ HỒNG " as glibc's iconv writes it (-t VISCII, -t TCVN; checked below where iconv has them)
CODE_PAGES = {"VISCII": b" L\xca TH\x98 H\x90NG ", "TCVN": b" L\xa3 TH\x91 H\xdbNG "}


@pytest.mark.parametrize("charset", list(CODE_PAGES))
def test_the_code_page_bytes_are_iconv_s(charset):
    if not shutil.which("iconv"):
        pytest.skip("iconv not installed")
    p = subprocess.run(["iconv", "-f", "UTF-8", "-t", charset], input=" LÊ THỊ HỒNG ".encode(),
                       capture_output=True, timeout=30)
    if p.returncode:
        pytest.skip(f"this iconv has no {charset}")
    assert p.stdout == CODE_PAGES[charset]


@pytest.mark.parametrize("charset", list(CODE_PAGES))
def test_a_name_of_short_words_in_a_vietnamese_code_page_is_found(charset):
    ts = _terms(SHORT_VI)
    data = CODE_PAGES[charset]
    assert _in_bytes(ts, data)
    assert _in_bytes(ts, data.replace(b" ", b""))              # run together
    assert _in_bytes(ts, data.replace(b" ", b"^"))


def test_a_lone_short_word_is_not_sought_in_random_bytes():
    """The whole name is sought, not its short words: 1 MiB of random bytes holds none of these
    names' code-page patterns, and does hold a lone THỊ's and LÊ's ('TH' or 'L', then a code-page
    byte), which is why such a word is not sought alone."""
    import re

    from vindr_cli.deid.terms import _code_page_word

    ts = _terms(SHORT_VI, "VŨ^ĐỨC^ANH", "ĐỖ^THỊ^LAN", "TRẦN^VĂN^LỘC")
    data = np.random.default_rng(31).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    assert len(ts.skeletons) >= 4
    assert not ts.found_skeleton(value_views(data, "OW")[1])
    assert all(re.search(_code_page_word(w), data, re.IGNORECASE) for w in ("THỊ", "LÊ"))


# ------------------------------------------------------------------ end to end: anonymize and audit

HOSPITAL = "BENH VIEN SONG LAM"
DEPARTMENT = "KHOA CHAN DOAN HINH ANH"


def _file(path: Path, uid_tail: int, *, name=NAME, charset="ISO_IR 192", lut=None, station=None,
          station_in_item=None, institution_in_item=None, department=None) -> None:
    ds = real("CT_small.dcm")
    ds.SpecificCharacterSet = charset
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, f"LK13{uid_tail:03d}77", "19790512"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.543.13.{uid_tail}"
    for k in ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"):
        if k in ds:
            del ds[k]
    if lut is not None:
        ds.VOILUTSequence = _voi_lut(*lut)
    if station is not None:     # kept as it is under --retain-device-identity (trusted text)
        ds.StationName = station
    if station_in_item is not None:     # in a kept sequence's item (a VOI LUT of 16 entries)
        ds.VOILUTSequence = _voi_lut("US", list(range(0, 4096, 256)))
        ds.VOILUTSequence[0].StationName = station_in_item
    if institution_in_item is not None:
        item = Dataset()
        item.RequestedProcedureID = "RP13"
        item.InstitutionName = institution_in_item
        ds.RequestAttributesSequence = Sequence([item])
    if department is not None:
        ds.InstitutionalDepartmentName = department
    save(ds, path)


CASES = {   # label: (_file's keywords, what must not be in the output as any of BYTE_FORMS)
    "station_cyrillic": (dict(station=SPOOFS["cyrillic"]), SPOOFS["cyrillic"]),
    "station_in_item_greek": (dict(station_in_item=SPOOFS["greek"]), SPOOFS["greek"]),
    "lut_utf8_cyrillic": (dict(lut=("OW", f" {SPOOFS['cyrillic']} ".encode("utf-8"))), SPOOFS["cyrillic"]),
    "lut_utf16_greek": (dict(lut=("OW", f" {SPOOFS['greek']} ".encode("utf-16-le"))), SPOOFS["greek"]),
    "lut_us_cyrillic_lower": (dict(lut=("US", [ord(c) for c in SPOOFS["cyrillic_lower"]])), SPOOFS["cyrillic_lower"]),
    "lut_hindi_bare": (dict(name=HI, lut=("OW", " रजश ".encode("utf-16-le"))), "रजश"),
    "lut_viscii_short": (dict(name=SHORT_VI, lut=("OW", CODE_PAGES["VISCII"] + b" ")), None),
    "hospital_in_item": (dict(institution_in_item=HOSPITAL, lut=("OW", f" {HOSPITAL} ".encode("utf-16-le"))), HOSPITAL),
    "department": (dict(department=DEPARTMENT, lut=("OW", f" {DEPARTMENT} ".encode("utf-8"))), DEPARTMENT),
}


def _forms(text: str) -> set[bytes]:
    return {f.lower() for t in (text, text.replace(" ", "")) for enc in BYTE_FORMS.values() for f in [t.encode(enc)]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("lookalike")
    src = base / "export"
    for i, (label, (kw, _)) in enumerate(CASES.items()):
        _file(src / f"{label}.dcm", 200 + i, **kw)
    return anonymize_export(base, {"retain_device_identity"})


def _output(world, label: str) -> pydicom.Dataset:
    _, out, _, links = world
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(out / links[f"{label}.dcm"]["output"])


@pytest.mark.parametrize("label", list(CASES))
def test_a_disguised_name_or_place_is_not_written(world, label):
    _, out, _, links = world
    ds = _output(world, label)
    kw, planted = CASES[label]
    if "station" in kw:
        assert str(ds.get("StationName", "")) != kw["station"]
    if "station_in_item" in kw:
        assert all(str(i.get("StationName", "")) != kw["station_in_item"] for i in ds.get("VOILUTSequence", []))
    if "lut" in kw:
        vr, value = kw["lut"]
        kept = ds.VOILUTSequence[0].get("LUTData") if "VOILUTSequence" in ds else None
        assert kept is None or (list(np.atleast_1d(kept)) if vr == "US" else bytes(kept)) != value
    if planted is not None:
        data = (out / links[f"{label}.dcm"]["output"]).read_bytes().lower()
        assert not [f for f in _forms(planted) if f in data]


def test_the_outputs_pass_the_audit(world):
    """The audit seeks the linkage's values (the hospital in the removed item among them): the
    anonymizer now removes what the audit would report."""
    from vindr_cli.deid.audit import audit

    _, out, linkage, _ = world
    assert audit(out, linkage, pixels=False).counts() == {}


@pytest.mark.parametrize("label", ["cyrillic", "greek"])
def test_audit_finds_a_look_alike_name_planted_in_an_output(world, label, tmp_path):
    value = f" {SPOOFS[label]} ".encode("utf-16-le" if label == "cyrillic" else "utf-8")
    _, out, linkage, links = world

    def plant(ds):
        ds.VOILUTSequence = _voi_lut("OW", value)

    report = audit_after_planting(out, links, "station_cyrillic.dcm", plant, tmp_path, linkage=linkage)
    assert report.counts().get("phi") == 1


def test_person_and_place_values_are_collected_from_items():
    """deid.engine.person_values' walk: the places of every depth (RequestAttributesSequence,
    ReferencedStudySequence items) and a birth date in an item; the study's dates stay top-level."""
    from vindr_cli.deid.engine import person_values

    ds = real("CT_small.dcm")
    for k in ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"):
        if k in ds:
            del ds[k]
    req, ref = Dataset(), Dataset()
    req.InstitutionName, req.InstitutionalDepartmentName = HOSPITAL, DEPARTMENT
    ref.InstitutionAddress, ref.ReferringPhysicianAddress = "12 PHO HUE HA NOI", "7 HANG BAI HA NOI"
    ref.ReferringPhysicianTelephoneNumbers = "0912345678"
    ref.PatientBirthDate, ref.StudyDate = "19610203", "20010203"
    ds.RequestAttributesSequence = Sequence([req])
    ds.ReferencedStudySequence = Sequence([ref])
    places: list[str] = []
    people = person_values(ds, {}, places)
    assert sorted(places) == sorted([HOSPITAL, DEPARTMENT, "12 PHO HUE HA NOI", "7 HANG BAI HA NOI", "0912345678"])
    assert "19610203" in people and "20010203" not in people


def test_audit_finds_a_look_alike_name_planted_in_a_kept_text_element(world, tmp_path):
    """StationName is kept under --retain-device-identity (trusted text): the audit's token search
    reads its look-alike skeleton too."""
    _, out, linkage, links = world

    def plant(ds):
        ds.StationName = SPOOFS["cyrillic_lower"]

    report = audit_after_planting(out, links, "department.dcm", plant, tmp_path, linkage=linkage)
    assert report.counts().get("phi") == 1
