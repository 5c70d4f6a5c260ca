"""Leak class 2 of issue #9: free text in the CodeMeaning of kept code sequences.

A code item passes only as a known code (pydicom's PS3.16 dictionaries) with its known
meaning: another meaning is replaced by the known one, an unknown or local code is removed
with its item, and `vindr audit` reports a code item an output should not hold. Built from
pydicom's bundled CT_small.dcm (offline) and the sample export.
"""
from __future__ import annotations

import json
import warnings
import io

import pyarrow.parquet as pq
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from conftest import SAMPLE
from helpers import run_cli, save, split_file
from vindr_cli.deid import codes
from vindr_cli.deid.audit import audit
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.engine import deidentify
from vindr_cli.deid.profile import load_profile
from vindr_cli.deid.substitutes import Substitutes

DX = "1.2.840.10008.5.1.4.1.1.1.1"          # Digital X-Ray Image Storage - For Presentation
MG = "1.2.840.10008.5.1.4.1.1.1.2"          # Digital Mammography X-Ray Image Storage - For Presentation
PATIENT_TEXT = "CT CHEST FOR SMITHSON^JANE MRN 4471"
HOSPITAL = "Saint Mungo Hospital"
KEY = b"\x05" * 32


def code(value: str, scheme: str, meaning: str | None, tag: str = "CodeValue") -> Dataset:
    item = Dataset()
    setattr(item, tag, value)
    item.CodingSchemeDesignator = scheme
    if meaning is not None:
        item.CodeMeaning = meaning
    return item


# -- the dictionary --------------------------------------------------------------------

def test_known_meanings_from_pydicoms_dictionaries():
    assert codes.known_meaning("DCM", "113100") == "Basic Application Confidentiality Profile"
    assert codes.known_meaning("DCM", "121320") == "Uncompressed predecessor"
    assert codes.known_meaning("SCT", "399067008") == "lateral"              # CID 4010 DX view
    assert codes.known_meaning("SRT", "T-D0050") == "Tissue"                 # SNOMED-RT id -> SCT 85756007
    assert codes.known_meaning("SCT", "85756007") == "Tissue"
    assert codes.known_meaning("UCUM", "mm") is not None and codes.known_meaning("LN", "18748-4") is not None
    assert codes.known_meaning("99HOSP", "XR123") is None
    assert codes.known_meaning("DCM", "999999999") is None
    assert codes.known_meaning("SCT", "T-D0050") is None                     # an SRT id is not an SCT id
    stats = codes.index_stats()
    assert stats["DCM"] > 4000 and stats["SCT"] > 8000 and stats["SRT"] > 7000
    assert codes.source().startswith(f"pydicom {pydicom.__version__}")


def test_every_option_code_vindr_writes_is_known():
    """vindr's own DeidentificationMethodCodeSequence (schemas/deid/options.toml) passes."""
    from vindr_cli.deid.options import load_options

    basic, opts = load_options()
    for o in [basic, *opts.values()]:
        assert codes.known_meaning("DCM", o.code) == o.meaning, o.code


def test_every_meaning_vindr_writes_fits_a_code_meaning_in_any_character_set():
    written = {codes.known_meaning(*c) for c in codes._index()}
    assert written and all(m and m.isascii() and len(m) <= 64 and m == m.strip() for m in written)
    assert not [m for m in written if "\u200b" in m]


@pytest.mark.parametrize("meaning, status", [
    ("Müller Method Planning for Hip Replacement", "keep"),           # as the standard has it
    ("Muller Method Planning for Hip Replacement", "keep"),           # as vindr writes it
    ("Müller (the patient's surgeon)", "replaced"),
])
def test_non_ascii_meanings(meaning, status):
    item = code("112344", "DCM", meaning)
    assert codes.check_code_item(item) == status
    assert item.CodeMeaning == (meaning if status == "keep" else "Muller Method Planning for Hip Replacement")


def test_meanings_longer_than_lo_are_written_cut_and_read_in_either_form():
    full = "Integration of sum of closed areas on contiguous slices method for volume"
    cut = codes.known_meaning("DCM", "122503")
    assert len(full) > 64 and cut == full[:64].rstrip()
    for meaning in (full, cut):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # pydicom warns of the 73 characters in an LO
            item = code("122503", "DCM", meaning)
        assert codes.check_code_item(item) == "keep"
    assert codes.check_code_item(code("111034", "DCM", "Individual Impression/Recommendation")) == "keep"


@pytest.mark.parametrize("meaning", ["lateral", "LATERAL", "  Lateral ", "lateral "])
def test_the_known_meaning_is_kept_ignoring_case_and_spaces(meaning):
    item = code("399067008", "SCT", meaning)
    assert codes.check_code_item(item) == "keep" and item.CodeMeaning == meaning


def test_any_known_meaning_of_a_code_with_several_is_kept():
    item = code("85756007", "SCT", "Body tissue structure (body structure)")
    assert codes.check_code_item(item) == "keep"
    assert item.CodeMeaning == "Body tissue structure (body structure)"


@pytest.mark.parametrize("meaning", [PATIENT_TEXT, "", None, "lateral view of Jane"])
def test_another_meaning_of_a_known_code_is_replaced(meaning):
    item = code("399067008", "SCT", meaning)
    assert codes.check_code_item(item) == "replaced"
    assert item.CodeMeaning == "lateral"
    assert codes.code_status(item) == "known"


@pytest.mark.parametrize("item", [
    code("XR123", "99HOSP", HOSPITAL),                              # a private scheme
    code("XR123", "LOCAL", HOSPITAL),                               # a designator vindr does not know
    code("SMITHSON JANE", "DCM", "x"),                              # a name put into CodeValue
    code("113100\\113101", "DCM", "Basic Application Confidentiality Profile"),   # several values
    code("urn:oid:1.2.3.4", "DCM", HOSPITAL, "URNCodeValue"),       # a URN that is not known
    code("A" * 40, "SCT", HOSPITAL, "LongCodeValue"),               # a long value that is not known
    code("113100", "DCM\x01", "Basic Application Confidentiality Profile"),        # control character
], ids=["99-scheme", "unknown-scheme", "name-in-value", "multi-value", "urn", "long", "control"])
def test_unknown_or_malformed_codes_are_removed(item):
    assert codes.code_status(item) == "unknown"
    assert codes.check_code_item(item) == "remove"


@pytest.mark.parametrize("version, kept", [("01", True), ("3.5", True), ("20020904", True), ("SMITHSON", False),
                                            ("1 Saint Mungo", False)])
def test_coding_scheme_version_is_kept_only_as_a_version(version, kept):
    item = code("399067008", "SCT", "LATERAL")
    item.CodingSchemeVersion = version
    item.MappingResourceName = "DICOM Content Mapping Resource"
    assert codes.code_status(item) == ("known" if kept else "other-meaning")
    assert codes.check_code_item(item) == ("keep" if kept else "replaced")
    assert ("CodingSchemeVersion" in item) == kept and item.MappingResourceName == "DICOM Content Mapping Resource"
    assert item.CodeMeaning == "LATERAL"                # a known meaning stays as written


def test_mapping_resource_name_is_kept_only_as_the_dicom_one():
    item = code("121320", "DCM", "Uncompressed predecessor")
    item.MappingResource, item.MappingResourceName = "DCMR", HOSPITAL + " mapping"
    assert codes.check_code_item(item) == "replaced"
    assert "MappingResourceName" not in item and item.MappingResource == "DCMR"
    assert codes.code_status(item) == "known"


def test_items_that_are_not_codes():
    no_scheme = Dataset()
    no_scheme.CodeValue, no_scheme.CodeMeaning = "113100", HOSPITAL        # no designator
    assert codes.is_code_item(no_scheme) and codes.check_code_item(no_scheme) == "remove"
    only_meaning = Dataset()
    only_meaning.CodeMeaning = HOSPITAL                                  # a meaning with no code
    assert codes.is_code_item(only_meaning) and codes.check_code_item(only_meaning) == "remove"
    two_values = code("113100", "DCM", "Basic Application Confidentiality Profile")
    two_values.LongCodeValue = "113100"                                  # CodeValue and LongCodeValue
    assert codes.check_code_item(two_values) == "remove"
    scheme_id = Dataset()                                                # CodingSchemeIdentificationSequence item
    scheme_id.CodingSchemeDesignator = "99HOSP"
    assert not codes.is_code_item(scheme_id)


def test_identity_options_exempt_only_their_sequences():
    assert codes.retained_sequences(set()) == frozenset()
    inst = codes.retained_sequences({"retain_institution_identity"})
    assert inst == {0x00080082, 0x00081041}                # InstitutionCodeSequence, ...DepartmentType...
    dev = codes.retained_sequences({"retain_device_identity", "clean_descriptors"})
    assert 0x00404028 in dev and 0x00080082 not in dev     # PerformedStationNameCodeSequence


# -- the engine ------------------------------------------------------------------------

def _ct(dx: bool = False) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    if dx:                       # the same real file, declared as a DX image (ViewCodeSequence is Type 3 there)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DX
        ds.Modality = "DX"
    ds.ProcedureCodeSequence = Sequence([code("816094009", "SCT", PATIENT_TEXT),      # known code, free text
                                         code("XR123", "99HOSP", HOSPITAL)])         # local code
    ds.AnatomicRegionSequence = Sequence([code("T-D0050", "SRT", "tissue")])
    view = code("399067008", "SCT", "lateral")
    view.ViewModifierCodeSequence = Sequence([code("VM1", "99HOSP", HOSPITAL)])
    ds.ViewCodeSequence = Sequence([view])
    return ds


def test_engine_keeps_known_codes_replaces_free_text_removes_local_codes():
    ds = _ct(dx=True)
    out = deidentify(ds, load_profile(), Substitutes(KEY))
    assert len(ds.ProcedureCodeSequence) == 1                              # the 99HOSP item is gone
    proc = ds.ProcedureCodeSequence[0]
    assert (proc.CodeValue, proc.CodingSchemeDesignator, proc.CodeMeaning) == ("816094009", "SCT", "Chest")
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "tissue"           # known meaning, any case: kept
    view = ds.ViewCodeSequence[0]                                          # a known SNOMED view survives
    assert (view.CodeValue, view.CodingSchemeDesignator, view.CodeMeaning) == ("399067008", "SCT", "lateral")
    assert "ViewModifierCodeSequence" not in view      # emptied and Type 3 here: removed (a Type 3 sequence needs an item)
    assert out.counts["C:code-meaning"] == 1 and out.counts["X:unknown-code"] == 2
    assert out.counts["X:emptied-sequence"] == 1
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence][0] == "113100"
    text = repr(ds)
    assert "SMITHSON" not in text and HOSPITAL not in text and "Mungo" not in text


@pytest.mark.parametrize("scheme", ["SNM3", "SRT"])
def test_legacy_snomed_rt_views_that_devices_write_survive(scheme):
    """Chest PA as most CR/DX devices still code it (SNOMED-RT ids, SNM3 or SRT)."""
    ds = _ct(dx=True)
    ds.ViewCodeSequence = Sequence([code("R-10214", scheme, "postero-anterior"),
                                    code("R-10206", scheme, "ANTERO-POSTERIOR"),
                                    code("R-10236", scheme, "left lateral of JANE")])
    out = deidentify(ds, load_profile(), Substitutes(KEY))
    assert [(i.CodeValue, i.CodeMeaning) for i in ds.ViewCodeSequence] == [
        ("R-10214", "postero-anterior"), ("R-10206", "ANTERO-POSTERIOR"), ("R-10236", "left lateral")]
    assert out.counts["C:code-meaning"] == 2          # the procedure code's and the lateral view's


def _code_items(ds, path=""):
    for elem in ds:
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                if codes.is_code_item(item):
                    yield f"{path}{elem.keyword}[{i}]", item
                yield from _code_items(item, f"{path}{elem.keyword}[{i}]>")


def test_sr_content_tree_codes_are_checked_at_every_depth():
    """ContentSequence is D in Table E.1-1: vindr walks the tree, so the concept names and
    coded values of every content item pass the same check (pydicom's test-SR.dcm uses
    local 99_OFFIS_DCMTK and TEST codes throughout). Concept names and coded values are
    Type 1(C) in SR content items: an unknown one becomes vindr's placeholder code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("test-SR.dcm", download=False))
    before = list(_code_items(ds))
    assert len(before) > 10 and all(codes.code_status(i) == "unknown" for _, i in before)
    deep = ds.ContentSequence[1].ContentSequence[0]              # a TEXT content item two levels down
    deep.ConceptNameCodeSequence = Sequence([code("18748-4", "LN", "Report on SMITHSON^JANE")])
    ds.ConceptNameCodeSequence = Sequence([code("18748-4", "LN", "diagnostic imaging report")])   # title
    out = deidentify(ds, load_profile(), Substitutes(KEY))
    after = dict((p, i) for p, i in _code_items(ds) if not p.startswith("DeidentificationMethodCodeSequence"))
    # every code item is where it was (each is the only item of a Type 1(C) sequence), and none is local
    walked = [p for p, _ in before if not p.startswith("VerifyingObserverSequence")]
    assert sorted(after) == sorted(walked)
    assert after["ConceptNameCodeSequence[0]"].CodeMeaning == "diagnostic imaging report"
    named = after["ContentSequence[1]>ContentSequence[0]>ConceptNameCodeSequence[0]"]
    assert named.CodeMeaning == codes.known_meaning("LN", "18748-4")
    others = [i for p, i in after.items() if i.CodeValue != "18748-4"]
    assert others and all((i.CodingSchemeDesignator, i.CodeValue, i.CodeMeaning) ==
                          ("99VINDR", "REMOVED", "code removed by de-identification") for i in others)
    assert all("CodingSchemeUID" not in i and "CodingSchemeVersion" not in i for i in others)
    assert all(codes.code_status(i) == "known" for i in after.values())
    # the observer's VerifyingObserverIdentificationCodeSequence is emptied (Z) before any item is looked at
    assert out.counts["D:unknown-code"] == len(others) == len(walked) - 2
    assert out.counts["C:code-meaning"] == 1 and out.counts["X:unknown-code"] == 0
    assert "SMITHSON" not in repr(ds) and "OFFIS" not in repr(ds)


def test_a_required_sequence_keeps_a_placeholder_never_the_local_code():
    """ViewCodeSequence is Type 1 in a mammogram (MG Image Module; Type 3 in DX
    Positioning): a local view code alone becomes vindr's placeholder (the output stays
    valid); a Type 3 ProcedureCodeSequence of local codes is emptied, then removed (a
    present Type 3 sequence needs an item: dciodvfy calls an empty one an error)."""
    ds = _ct(dx=True)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MG
    ds.Modality = "MG"
    ds.ViewCodeSequence = Sequence([code("PA-CHEST", "99HOSP", HOSPITAL)])
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = Sequence([code("399067008", "SCT", HOSPITAL)])
    ds.ProcedureCodeSequence = Sequence([code("XR1", "99HOSP", HOSPITAL), code("XR2", "99HOSP", HOSPITAL)])
    out = deidentify(ds, load_profile(), Substitutes(KEY))
    view = ds.ViewCodeSequence[0]
    assert (view.CodeValue, view.CodingSchemeDesignator) == ("REMOVED", "99VINDR")
    assert view.ViewModifierCodeSequence[0].CodeMeaning == "lateral"          # nested items still checked
    assert "ProcedureCodeSequence" not in ds
    assert out.counts["D:unknown-code"] == 1 and out.counts["X:unknown-code"] == 2
    assert HOSPITAL not in repr(ds) and "PA-CHEST" not in repr(ds)


def test_ecg_channel_sources_in_a_legacy_scheme_become_placeholders():
    """pydicom's waveform_ecg.dcm codes its channels in SCPECG, which pydicom's dictionaries
    do not hold: each ChannelSourceSequence (Type 1) keeps one placeholder item."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm", download=False))
    sources = [c.ChannelSourceSequence[0] for w in ds.WaveformSequence for c in w.ChannelDefinitionSequence]
    assert sources and {s.CodingSchemeDesignator for s in sources} == {"SCPECG"}
    deidentify(ds, load_profile(), Substitutes(KEY))
    for w in ds.WaveformSequence:
        for c in w.ChannelDefinitionSequence:
            assert [(i.CodingSchemeDesignator, i.CodeValue) for i in c.ChannelSourceSequence] == [("99VINDR", "REMOVED")]
    assert all(codes.code_status(i) == "known" for _, i in _code_items(ds))


def test_identity_option_keeps_institution_codes_as_the_user_asked():
    ds = _ct()
    ds.InstitutionCodeSequence = Sequence([code("H01", "99HOSP", HOSPITAL)])
    deidentify(ds, load_profile(options={"retain_institution_identity"}), Substitutes(KEY))
    assert ds.InstitutionCodeSequence[0].CodeMeaning == HOSPITAL           # asked for: kept
    assert len(ds.ProcedureCodeSequence) == 1                              # the rest is still checked


def test_anonymize_writes_no_free_text_meaning_and_audit_agrees(tmp_path, key_file):
    src = tmp_path / "in"
    save(_ct(dx=True), src / "a.dcm")
    out = tmp_path / "out"
    anonymize(src, out, key_path=key_file, profile=load_profile(), workers=1)
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok"]
    counts = json.loads(rows[0]["actions"])
    assert counts["C:code-meaning"] == 1 and counts["X:unknown-code"] == 2
    target = out / rows[0]["output"]
    header = split_file(target)[0]
    for secret in ("SMITHSON", "4471", "Mungo", "99HOSP", "XR123"):
        assert secret.encode() not in header, secret
    assert b"Chest" in header and b"lateral" in header
    ds = pydicom.dcmread(target)
    assert ds.ViewCodeSequence[0].CodeMeaning == "lateral"

    report = audit(out, tmp_path / "out.linkage.parquet")
    assert not [f for f in report.findings if f.kind == "code-meaning"]

    # planted after the fact: free text in a known code's meaning, and a local code
    ds.ProcedureCodeSequence[0].CodeMeaning = PATIENT_TEXT
    ds.AnatomicRegionSequence.append(code("XR123", "99HOSP", HOSPITAL))
    ds.save_as(target)
    report = audit(out, tmp_path / "out.linkage.parquet")
    found = [f for f in report.findings if f.kind == "code-meaning"]
    assert {f.detail.split(" is ")[0] for f in found} == {
        "code item (0008,1032) ProcedureCodeSequence[0]", "code item (0008,2218) AnatomicRegionSequence[1]"}
    doc = report.to_json()
    assert "SMITHSON" not in doc and "Mungo" not in doc and "XR123" not in doc


def test_audit_respects_an_identity_option_the_run_recorded(tmp_path, key_file):
    src = tmp_path / "in"
    ds = _ct()
    ds.InstitutionCodeSequence = Sequence([code("H01", "99HOSP", HOSPITAL)])
    save(ds, src / "a.dcm")
    out = tmp_path / "out"
    anonymize(src, out, key_path=key_file, profile=load_profile(options={"retain_institution_identity"}), workers=1)
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    kept = pydicom.dcmread(out / rows[0]["output"])
    assert kept.InstitutionCodeSequence[0].CodeMeaning == HOSPITAL        # the user asked for it
    assert len(kept.ProcedureCodeSequence) == 1                            # the local procedure code is not
    report = audit(out, tmp_path / "out.linkage.parquet")
    assert not [f for f in report.findings if f.kind == "code-meaning"]
    kept.ProcedureCodeSequence[0].CodeMeaning = HOSPITAL                   # still checked elsewhere
    kept.save_as(out / rows[0]["output"])
    found = [f.detail for f in audit(out, tmp_path / "out.linkage.parquet").findings if f.kind == "code-meaning"]
    assert found == ["code item (0008,1032) ProcedureCodeSequence[0] is not a known code with its known meaning"]


def test_sample_export_through_the_cli_has_no_code_meaning_finding(tmp_path, key_file):
    """vindr's own marks (DCM 113100, 113107, 113108, ...) pass the audit."""
    out = tmp_path / "anon"
    run_cli("anonymize", SAMPLE / "export", out, "--key", key_file, "-j", "1")
    doc = json.loads(run_cli("audit", out, "--linkage", tmp_path / "anon.linkage.parquet", "--json",
                             check=False).stdout)
    assert doc["dicom_files"] > 0
    assert "code-meaning" not in doc["findings_by_kind"]
    marks = views = 0
    for p in out.rglob("*.dcm"):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        for item in ds.DeidentificationMethodCodeSequence:
            assert codes.code_status(item) == "known"
            marks += 1
        if ds.Modality == "DX":                    # every DX keeps its (Type 1) standard view code
            assert [codes.code_status(i) for i in ds.ViewCodeSequence] == ["known"]
            views += 1
    assert marks >= 3 * doc["dicom_files"]        # 113100 + dates + patient characteristics each
    assert views > 0


KNOWN = sorted(codes._index())[::97]      # a spread of known codes over every designator


@settings(max_examples=60)
@given(known=st.sampled_from(KNOWN), scheme=st.sampled_from(["99HOSP", "L", "SCT", "DCM", "SRT", "LN"]),
       text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\\"),
                    min_size=4, max_size=40),
       where=st.sampled_from(["ProcedureCodeSequence", "AnatomicRegionSequence", "ViewCodeSequence"]),
       nested=st.booleans())
def test_a_planted_meaning_never_reaches_the_output_bytes(known, scheme, text, where, nested):
    """A random text as the meaning of a known code, and as the value and meaning of a code
    that is probably unknown, at the top level or one code sequence deeper: the output holds
    the known meaning, never the text (unless the text is itself a known meaning of that code)."""
    secret = "QZX" + text + "XZQ"                    # nothing else in the file holds it
    ds = _ct()
    for kw in ("ProcedureCodeSequence", "AnatomicRegionSequence", "ViewCodeSequence"):
        delattr(ds, kw)
    items = [code(known[1], known[0], secret), code(text[:16].strip() or "X", scheme, secret)]
    if nested:
        outer = code("399067008", "SCT", "lateral")
        outer.ViewModifierCodeSequence = Sequence(items)
        items = [outer]
    setattr(ds, where, Sequence(items))
    deidentify(ds, load_profile(), Substitutes(KEY))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buf, enforce_file_format=True)
    assert secret.encode() not in buf.getvalue()
    inner = getattr(ds, where)[0].ViewModifierCodeSequence if nested else getattr(ds, where)
    assert inner[0].CodeMeaning == codes.known_meaning(*known)
    assert all(codes.code_status(i) == "known" for i in inner)
