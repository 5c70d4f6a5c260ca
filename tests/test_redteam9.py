"""Red team 9: identifying values where a real export hides them and the earlier red teams did not
look — in the text the policy keeps because its words are "known" (window and LUT preset names,
calibration descriptions, ethnic groups, software versions), in numbers written as text (IS, DS),
in a code's version, in nested sequences, file meta, overlays, curves, per-frame functional groups,
a DICOMDIR and the input's file names. Each channel is a real file (pydicom's CT_small) with the
patient DOAN^QUYNH^NHU, ID 30067891, born 1985-03-12, at BENH VIEN PHUOC LOC, referred by
HUYNH^TAN^PHAT; run through the real CLI (`vindr anonymize`, default profile, and with
``--burned-in off``), each output and what was printed searched for the planted values (as
written, accent-folded, without spaces, any case, UTF-8 and UTF-16), and `vindr audit` run on
outputs with the leaked values planted back.

Found and fixed here (deid/policy.py, schemas/deid/safe_attributes.toml, deid/engine.py,
deid/audit.py):
1. A date or an ID split by separators in a kept preset name: WindowCenterWidthExplanation "LUNG
   12/03/1985" (the birth date), "BONE 3006 7891" (the ID), "LUNG 3006" and "BONE 7891" (the ID
   across two values), LUTExplanation "DEFAULT 1985.03.12", PixelSpacingCalibrationDescription
   "CALIBRATED 12/03/1985": the "words" rule counted each digit run alone (at most 5). Digits
   joined by spaces or _-./ now count as one number, so do all the values' digits together, and
   three numbers joined by -./ (a date: "1/3/85") are refused.
2. A name made of ethnic-group words, which are Vietnamese name syllables too: EthnicGroup "DAO GIA
   HOA", "THAI BA NA" (kept by Retain Patient Characteristics, on by default). EthnicGroup must now
   be one listed group as a whole (values = "phrases").
3. The patient's ID or birth date inside a number written as text: IS "300678914" (the ID and a
   check digit), DS "19850312.0" and "1985.0312" (one dotted token), PixelSpacing 3006 and 7891
   (the ID across its two values), a code's version "1985.03.12", and the birth date as IS
   "12031985" (DD MM YYYY): person terms were matched as whole tokens only; and in a kept LUT's
   bytes the birth date as " DOB 12/03/1985 " and the ID as " MRN 3006-7891 ", and the ID in
   SoftwareVersions "V3006-7891". Digits split by spaces, dots, slashes or dashes (and an IS/DS's
   values) are now searched joined, IDs and dates of 7+ digits also inside a run, a person date is
   also sought as DDMMYYYY and MMDDYYYY (a birth date also a day off: 19850313 as a code's version,
   19850311 as an IS; by the anonymizer only), and an ID written with a space or a prefix ("3006 7891",
   "BN 30067891") also as its digits run together, which were kept as the IS 30067891 and in a
   LUT's bytes (policy.found_in_digits, policy.date_forms, policy.id_forms; the audit reads alike).
4. A hospital's or a person's name with a digit in SoftwareVersions ("PHUOC LOC PACS 2.1", "TRINH
   CONG SON 1"): the pattern asked only for a digit. Its letters-only words must now be listed
   software words or vendors.toml's model words and families (values = "software").
`vindr audit` said 0 findings on each of these outputs; it now reports them (the policy's check
mode, and the linkage table's values inside numbers). It also said 0 findings on a UID holding the
patient's ID as a component ("1.2.30067891.5"); such a component is now a finding (deid/audit.py).

Held (kept so by the tests below): a TEXT/PNAME/NUM SR content tree, RequestAttributesSequence
(description, IDs, InstitutionName/Address inside it), a private coding scheme's code meaning, a
known code's ContextIdentifier and version, file meta (source/sending/receiving AE titles,
PrivateInformation, implementation version name), overlay description and label, a curve's
description, label and data, per-frame functional groups' FrameLabel/FrameComments/DerivationDescription
and their numbers, an item with its own SpecificCharacterSet (ISO_IR 192) holding the name,
ImageType / ScanOptions / ConvolutionKernel values, a model name with the hospital's name, the
input's folder and file names (a DICOM file, a text file and a damaged file named after the
patient; zip members and the zip's comment), a DICOMDIR with the patient's record (skipped, never written).
"""
from __future__ import annotations

import io
import json
import shutil
import unicodedata
import warnings
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from helpers import key_file_in, leaks, run_cli
from test_safe_default import real
from vindr_cli.deid import policy

PATIENT = {"PatientName": "DOAN^QUYNH^NHU", "PatientID": "30067891", "PatientBirthDate": "19850312",
           "InstitutionName": "BENH VIEN PHUOC LOC", "ReferringPhysicianName": "HUYNH^TAN^PHAT"}


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _voi(explanation: str) -> Sequence:
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add(DataElement(0x00283006, "US", list(range(256))))
    item.LUTExplanation = explanation
    return Sequence([item])


def _voi_bytes(blob: bytes) -> Sequence:
    item = Dataset()
    item.LUTDescriptor = [len(blob) // 2, 0, 16]
    item.add(DataElement(0x00283006, "OW", blob))
    return Sequence([item])


def _setter(**values):
    def plant(ds):
        for k, v in values.items():
            setattr(ds, k, v)
    return plant


def _code_version(version: str):
    def plant(ds):
        c = _code("113100", "DCM", "Basic Application Confidentiality Profile")
        c.CodingSchemeVersion = version
        ds.ProcedureCodeSequence = Sequence([c])
    return plant


# label: (how the value is planted in the input, the forms that must not reach the output,
#         the audit's finding kind once planted back into a clean output)
LEAKED = {
    "preset_ddmmyyyy": (_setter(WindowCenterWidthExplanation="LUNG 12/03/1985"), ["12/03/1985"], "unsafe-text"),
    "preset_spaced_id": (_setter(WindowCenterWidthExplanation=["BONE 3006 7891", "LUNG 3006-7891"]),
                         ["3006 7891", "3006-7891"], "unsafe-text"),
    "preset_split_values": (_setter(WindowCenterWidthExplanation=["LUNG 3006", "BONE 7891"]),
                            ["LUNG 3006", "BONE 7891"], "unsafe-text"),
    "lut_dotted_date": (lambda ds: setattr(ds, "VOILUTSequence", _voi("DEFAULT 1985.03.12")), ["1985.03.12"],
                        "unsafe-text"),
    "calibration_date": (_setter(PixelSpacingCalibrationDescription="CALIBRATED 12/03/1985"), ["12/03/1985"],
                         "unsafe-text"),
    "ethnic_name": (_setter(EthnicGroup="DAO GIA HOA"), ["DAO GIA HOA"], "unsafe-text"),
    "ethnic_name2": (_setter(EthnicGroup="THAI BA NA"), ["THAI BA NA"], "unsafe-text"),
    "is_check_digit": (_setter(AcquisitionNumber="300678914"), ["300678914"], "phi"),
    "ds_birth_date": (_setter(SliceLocation="19850312.0"), ["19850312"], "phi"),
    "ds_dotted_birth_date": (_setter(SliceLocation="1985.0312"), ["1985.0312"], "phi"),
    "is_ddmmyyyy": (_setter(AcquisitionNumber="12031985"), ["12031985"], "phi"),
    # the birth date a day off: the anonymizer seeks it (the file's own birth date), the audit does not
    # (a DA of the output, shifted by 1-11 years, would equal some patient's birth date +-1 by chance)
    "code_version_day_off": (_code_version("19850313"), ["19850313"], None),
    "is_day_off": (_setter(AcquisitionNumber="19850311"), ["19850311"], None),
    "code_version_date": (_code_version("1985.03.12"), ["1985.03.12"], "phi"),
    "lut_bytes_date": (lambda ds: setattr(ds, "VOILUTSequence", _voi_bytes(b" DOB 12/03/1985 ")), ["12/03/1985"],
                       "phi"),
    "lut_bytes_id": (lambda ds: setattr(ds, "VOILUTSequence", _voi_bytes(b" MRN 3006-7891 ")), ["3006-7891"], "phi"),
    "software_dashed_id": (_setter(SoftwareVersions="V3006-7891"), ["3006-7891"], "phi"),
    "ds_id_across_values": (_setter(PixelSpacing=["3006", "7891"]), ["3006\\7891"], "phi"),
    "id_spaced_as_number": (_setter(PatientID="3006 7891", AcquisitionNumber="30067891"), ["30067891"], "phi"),
    "id_prefixed_in_lut": (lambda ds: (setattr(ds, "PatientID", "BN 30067891"),
                                       setattr(ds, "VOILUTSequence", _voi_bytes(b" 30067891 "))), ["30067891"], "phi"),
    "software_hospital": (_setter(SoftwareVersions="PHUOC LOC PACS 2.1"), ["PHUOC LOC"], "unsafe-text"),
    "software_person": (_setter(SoftwareVersions="TRINH CONG SON 1"), ["TRINH CONG SON"], "unsafe-text"),
}


def _sr(ds):
    text = Dataset()
    text.RelationshipType, text.ValueType = "CONTAINS", "TEXT"
    text.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    text.TextValue = "Bs HUYNH TAN PHAT, BV PHUOC LOC, 30067891"
    person = Dataset()
    person.RelationshipType, person.ValueType = "HAS OBS CONTEXT", "PNAME"
    person.ConceptNameCodeSequence = Sequence([_code("121008", "DCM", "Person Observer Name")])
    person.PersonName = "HUYNH^TAN^PHAT"
    num = Dataset()
    num.RelationshipType, num.ValueType = "CONTAINS", "NUM"
    num.ConceptNameCodeSequence = Sequence([_code("121206", "DCM", "Distance")])
    mv = Dataset()
    mv.NumericValue = "30067891"
    mv.MeasurementUnitsCodeSequence = Sequence([_code("mm", "UCUM", "mm")])
    num.MeasuredValueSequence = Sequence([mv])
    ds.ContentSequence = Sequence([text, person, num])


def _request(ds):
    item = Dataset()
    item.RequestedProcedureID, item.ScheduledProcedureStepID = "30067891", "RQ30067891"
    item.RequestedProcedureDescription = "CHUP PHOI BS HUYNH TAN PHAT"
    item.InstitutionName, item.InstitutionAddress = "BENH VIEN PHUOC LOC", "12 NGUYEN TRAI PHUOC LOC"
    item.ReasonForTheRequestedProcedure = "kham BS HUYNH"
    ds.RequestAttributesSequence = Sequence([item])


def _codes(ds):
    anatomy = _code("T-D3000", "SRT", "Chest")
    anatomy.ContextIdentifier, anatomy.MappingResource = "30067891", "PHUOCLOC"
    ds.AnatomicRegionSequence = Sequence([anatomy])
    version = _code("113100", "DCM", "Basic Application Confidentiality Profile")
    version.CodingSchemeVersion = "30067891"
    ds.ProcedureCodeSequence = Sequence([_code("PL01", "99PHUOCLOC", "XQ nguc BV PHUOC LOC"), version])


def _file_meta(ds):
    fm = ds.file_meta
    fm.SourceApplicationEntityTitle, fm.SendingApplicationEntityTitle = "PHUOCLOC_PACS", "HUYNH_WS"
    fm.ReceivingApplicationEntityTitle, fm.ImplementationVersionName = "DOANQ", "PHUOCLOC_1"
    fm.PrivateInformationCreatorUID, fm.PrivateInformation = "1.2.3.30067891", b"DOAN QUYNH NHU 30067891"


def _overlay_and_curve(ds):
    for tag, vr, value in ((0x60000010, "US", 128), (0x60000011, "US", 128), (0x60000040, "CS", "G"),
                           (0x60000050, "SS", [1, 1]), (0x60000100, "US", 1), (0x60000102, "US", 0),
                           (0x60000022, "LO", "BS HUYNH TAN PHAT"), (0x60001500, "LO", "BV PHUOC LOC"),
                           (0x60003000, "OW", b"\0" * (128 * 128 // 8)),
                           (0x50000005, "US", 2), (0x50000010, "US", 4), (0x50000020, "CS", "POLY"),
                           (0x50000022, "LO", "BS HUYNH TAN PHAT"), (0x50002500, "LO", "PHUOC LOC"),
                           (0x50003000, "OW", b"HUYNH PHUOC LOC!")):
        ds.add_new(tag, vr, value)


def _functional_groups(ds):
    content = Dataset()
    content.FrameLabel, content.FrameComments = "HUYNH TAN PHAT", "BV PHUOC LOC"
    content.add_new(0x00209128, "UL", 30067891)        # TemporalPositionIndex
    content.FrameAcquisitionDateTime = "19850312093000"
    group = Dataset()
    group.FrameContentSequence = Sequence([content])
    ds.PerFrameFunctionalGroupsSequence = Sequence([group])
    derivation = Dataset()
    derivation.DerivationDescription = "HUYNH"
    shared = Dataset()
    shared.DerivationImageSequence = Sequence([derivation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])


def _item_charset(ds):
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 192"
    item.PatientName, item.EthnicGroup = "ĐOÀN^QUỲNH^NHƯ", "ĐOÀN QUỲNH"
    ds.OtherPatientIDsSequence = Sequence([item])
    ref = Dataset()
    ref.SpecificCharacterSet = "ISO_IR 192"
    ref.EthnicGroup = "KINH ĐOÀN"
    ds.ReferencedPatientSequence = Sequence([ref])


HELD = {
    "sr_content": (_sr, ["HUYNH", "TAN PHAT", "PHUOC", "30067891"]),
    "request_attributes": (_request, ["HUYNH", "PHUOC", "BENH VIEN", "30067891", "NGUYEN TRAI"]),
    "codes": (_codes, ["PHUOC", "30067891"]),
    "file_meta": (_file_meta, ["PHUOCLOC", "HUYNH", "DOANQ", "DOAN QUYNH", "30067891"]),
    "overlay_curve": (_overlay_and_curve, ["HUYNH", "PHUOC"]),
    "functional_groups": (_functional_groups, ["HUYNH", "PHUOC", "30067891", "19850312"]),
    "item_charset": (_item_charset, ["ĐOÀN", "QUỲNH", "DOAN QUYNH", "DOANQUYNH"]),
    "coded_strings": (_setter(ImageType=["ORIGINAL", "PRIMARY", "AXIAL", "HUYNH", "DOANQ"],
                              ScanOptions=["HELICAL", "HUYNH"], ConvolutionKernel="HUYNH"), ["HUYNH", "DOANQ"]),
    "model_name": (_setter(Manufacturer="SIEMENS", ManufacturerModelName="PHUOC LOC 2"), ["PHUOC"]),
}
NAMED = "DOAN QUYNH NHU_30067891"            # an input folder named after the patient
NAMED_FORMS = ["DOAN QUYNH NHU", "DoanQuynhNhu", "30067891"]


def _forms(values) -> set[bytes]:
    out = set()
    for v in values:
        folded = "".join(c for c in unicodedata.normalize("NFKD", v.replace("Đ", "D").replace("đ", "d"))
                         if not unicodedata.combining(c))
        for f in {v, folded, v.replace(" ", ""), folded.replace(" ", "")}:
            for enc in ("utf-8", "utf-16-le"):
                out.add(f.lower().encode(enc))
    return out


def _patient(plant) -> Dataset:
    ds = real("CT_small.dcm")
    for k, v in PATIENT.items():
        setattr(ds, k, v)
    plant(ds)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The export (one folder per channel, a folder and files named after the patient, a DICOMDIR),
    anonymized by the CLI with the default settings and with --burned-in off."""
    base = tmp_path_factory.mktemp("redteam9")
    export = base / "export"
    for label, (plant, *_) in {**LEAKED, **HELD}.items():
        (export / label).mkdir(parents=True)
        _patient(plant).save_as(export / label / "img.dcm", enforce_file_format=True)
    named = export / NAMED
    named.mkdir()
    _patient(lambda ds: None).save_as(named / "DoanQuynhNhu.dcm", enforce_file_format=True)
    (named / "notes_DoanQuynhNhu.txt").write_text("x")
    (named / "broken_DoanQuynhNhu.dcm").write_bytes(b"\0" * 128 + b"DICM\x02\x00")
    with zipfile.ZipFile(export / "DoanQuynhNhu_30067891.zip", "w") as z:     # members named after the patient
        for name in ("DOAN QUYNH NHU/IMG1.dcm", "30067891/DoanQuynhNhu.dcm"):
            buf = io.BytesIO()
            _patient(lambda ds: None).save_as(buf, enforce_file_format=True)
            z.writestr(name, buf.getvalue())
        z.comment = b"DOAN QUYNH NHU 30067891"
    from pydicom.fileset import FileSet
    media = FileSet()
    media.add(_patient(lambda ds: None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        media.write(export / "media")
    key = key_file_in(base)
    runs = {}
    for mode in ("redact", "off"):
        out = base / f"anon_{mode}"
        p = run_cli("anonymize", export, out, "--key", key, "--burned-in", mode, "-j", "2")
        a = run_cli("audit", out, "--no-pixels", check=False)
        links = {}
        for row in pq.read_table(base / f"anon_{mode}.linkage.parquet").to_pylist():
            links[Path(row["input_path"]).parent.name if row["output"] else row["input_path"]] = row
        runs[mode] = {"out": out, "printed": p.stdout + p.stderr + a.stdout + a.stderr, "links": links,
                      "audit_rc": a.returncode, "linkage": base / f"anon_{mode}.linkage.parquet"}
    return runs


@pytest.mark.parametrize("mode", ["redact", "off"])
@pytest.mark.parametrize("label", sorted(LEAKED))
def test_a_leaked_channel_is_not_in_its_output(world, mode, label):
    run = world[mode]
    row = run["links"][label]
    assert row["status"] == "ok", label
    data = (run["out"] / row["output"]).read_bytes().lower()
    assert not [f for f in _forms(LEAKED[label][1]) if f in data], label


@pytest.mark.parametrize("mode", ["redact", "off"])
@pytest.mark.parametrize("label", sorted(HELD))
def test_a_held_channel_is_not_in_its_output(world, mode, label):
    run = world[mode]
    row = run["links"][label]
    assert row["status"] == "ok", label
    data = (run["out"] / row["output"]).read_bytes().lower()
    assert not [f for f in _forms(HELD[label][1]) if f in data], label


@pytest.mark.parametrize("mode", ["redact", "off"])
def test_nothing_written_or_printed_holds_a_planted_value(world, mode):
    """Every file under OUTPUT (images, manifest, state) and what anonymize and audit printed:
    no planted value of any channel, nor the input's names; the audit of the tree is clean; the
    DICOMDIR and the damaged and text files named after the patient are accounted for, unwritten."""
    run = world[mode]
    values = [v for _, forms, *_ in {**LEAKED, **HELD}.values() for v in forms] + NAMED_FORMS
    assert leaks(run["out"], _forms(values), run["printed"]) == []
    assert run["audit_rc"] == 0
    statuses = sorted(r["status"] for k, r in run["links"].items() if not r["output"])
    assert statuses == ["failed", "not-dicom", "skipped"]


def test_audit_reports_each_leak_planted_back_into_an_output(world, tmp_path):
    """`vindr audit` reported 0 findings on outputs holding these values (main before red team 9):
    each leaked value, planted back into its own clean output, is now a finding of its kind there
    (the policy in check mode, or the linkage table's values inside numbers), quoting none."""
    from vindr_cli.deid.audit import audit

    run = world["redact"]
    out = tmp_path / "anon"
    shutil.copytree(run["out"], out)
    for label, (plant, _, kind) in LEAKED.items():
        if kind is None:
            continue
        target = out / run["links"][label]["output"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(target)
            plant(ds)
            ds.save_as(target)
    report = audit(out, run["linkage"], pixels=False)
    found = {(f.kind, f.where) for f in report.findings}
    missed = [label for label, (_, _, kind) in LEAKED.items()
              if kind and (kind, run["links"][label]["output"]) not in found]
    assert missed == []
    assert leaks(tmp_path / "none", _forms([v for _, forms, _ in LEAKED.values() for v in forms]),
                 json.dumps(report.to_dict())) == []


@pytest.mark.parametrize("keyword, value", [
    ("EthnicGroup", "KINH"), ("EthnicGroup", "Gia Rai"), ("EthnicGroup", "Asian/Pacific Islander"),
    ("EthnicGroup", "BLACK OR AFRICAN AMERICAN"), ("WindowCenterWidthExplanation", "LUNG 2"),
    ("WindowCenterWidthExplanation", "BONE 400/40"), ("WindowCenterWidthExplanation", "WINDOW1"),
    ("LUTExplanation", "SIGMOID DEFAULT"),
    ("PixelSpacingCalibrationDescription", "Corrected for geometric magnification"),
    # the SoftwareVersions of pydicom's, pydicom-data's and deid-data's test files (but those refused
    # by the pattern before: brackets, colons, '*'; and "acp_3403", "softwareV1")
    *[("SoftwareVersions", v) for v in (
        "0005", "05", "0.0.0", "2.0", "4.2.1", "51.80.108.010", "R6.1", "R1.0.D", "VE10B", "c25_1008", "CX50_210",
        "0d533f1", "1.0.3.37", "Affiniti 70G_1.7.1.24", "EPIQ 5G_1.5.6.850", "syngo CT VA48A",
        "syngo MR 2004V 4VB11D", "version 1", "LightSpeedApps14.13_2.8.2L_H2.1M4", "LightSpeedApps308I.2_H3.1M5",
        "coreload.81", "VIA5.2")],
])
def test_real_values_of_the_tightened_rules_are_still_kept(keyword, value):
    assert policy.safe_text(tag_for_keyword(keyword), value)


@pytest.mark.parametrize("keyword, value", [
    ("EthnicGroup", "HOA DAO"), ("EthnicGroup", "KINH THAI"), ("WindowCenterWidthExplanation", "LUNG 1/3/85"),
    ("WindowCenterWidthExplanation", "BONE 300-67891"), ("WindowCenterWidthExplanation", "LUNG 12 03 1985"),
    ("LUTExplanation", "DEFAULT 1985-03-12"), ("SoftwareVersions", "HUYNH2"), ("SoftwareVersions", "LE VAN AN 2"),
    ("SoftwareVersions", "V 30067891"), ("SoftwareVersions", "BVPHUOCLOC_V2"),
])
def test_names_dates_and_ids_in_the_tightened_rules_are_refused(keyword, value):
    assert not policy.safe_text(tag_for_keyword(keyword), value)


def test_an_id_with_separators_or_a_prefix_is_also_sought_as_its_digits():
    assert policy.id_forms("3006 7891") == ["30067891"]
    assert policy.id_forms("BN 30067891") == ["30067891"]
    assert policy.id_forms("30067891-4") == ["300678914", "30067891"]
    assert policy.id_forms("30067891") == [] and policy.id_forms("NGUYEN VAN AN") == []
    assert policy.id_forms("12 A") == []


def test_a_person_date_is_also_sought_in_day_first_and_month_first_digits():
    assert policy.date_forms("19850312") == ["12031985", "03121985"]
    assert policy.date_forms("19850301", near=True) == ["01031985", "03011985", "19850228", "19850302"]
    assert policy.date_forms("19850303") == ["03031985"]
    assert policy.date_forms("30067891") == [] and policy.date_forms("1985031") == []


def test_audit_reports_an_id_as_a_component_of_a_uid(world, tmp_path):
    """Leaked past the audit: a UID that is not the registry's holding the patient's ID as one of
    its components ("1.2.30067891.5", as some PACS build instance UIDs) was no finding (the
    linkage table's UIDs are matched whole or as prefixes only). vindr anonymize replaces every
    such UID, so one found in a tree was written by something else; it is now a ``phi`` finding.
    The tree's own UIDs (vindr's 2.25 ones, the registry's) are none."""
    from vindr_cli.deid.audit import audit

    run = world["off"]
    out = tmp_path / "anon"
    shutil.copytree(run["out"], out)
    assert audit(out, run["linkage"], pixels=False).counts() == {}
    target = out / run["links"]["codes"]["output"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(target)
        ds.add_new(0x0018100B, "UI", "1.2.30067891.5")      # ManufacturerDeviceClassUID
        ds.save_as(target)
    report = audit(out, run["linkage"], pixels=False)
    assert {(f.kind, f.where) for f in report.findings} == {("phi", run["links"]["codes"]["output"])}
    assert "30067891" not in json.dumps(report.to_dict())
