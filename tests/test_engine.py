"""The dataset walk: actions per element, sequences at every depth, file meta, marks."""
from __future__ import annotations

import datetime as dt
import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from conftest import make_cr
from vindr_cli.deid.engine import IMPLEMENTATION_CLASS_UID, deidentify, patient_key
from vindr_cli.deid.profile import load_profile
from vindr_cli.deid.substitutes import Substitutes

KEY = b"\x07" * 32


def read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.fixture
def cr(tmp_path):
    return read(make_cr(tmp_path / "a.dcm"))


def test_basic_profile_actions(cr):
    subs = Substitutes(KEY)
    orig_study = cr.StudyInstanceUID
    out = deidentify(cr, load_profile(), subs)
    assert str(cr.PatientName) == subs.patient_name("nid:pid0001") == str(cr.PatientName)
    assert cr.PatientID == subs.patient_id("nid:pid0001") == out.ids["patient_id"]
    assert cr.AccessionNumber == subs.accession("ACC0001") and cr.StudyID == subs.study_id("ST0001")
    assert cr.StudyInstanceUID == subs.uid(orig_study) == out.ids["study_uid"]
    assert cr["PatientBirthDate"].is_empty and cr["ReferringPhysicianName"].is_empty   # Z
    for gone in ("StudyDescription", "ImageComments", "InstitutionName", "RequestAttributesSequence",
                 "OtherPatientIDsSequence"):
        assert gone not in cr, gone                                               # X (and X/Z/D type 3)
    assert cr.PatientAge == "058Y" and cr.PatientSex == "M" and cr.PatientWeight == "61"   # 113108
    assert cr.Manufacturer == "Agfa HealthCare" and cr.BodyPartExamined == "CHEST"   # not in the table, a listed vendor
    assert not [e for e in cr if e.tag.group % 2 == 1]                            # private
    assert not [e for e in cr if 0x6000 <= e.tag.group <= 0x60FF]                  # overlays
    assert out.originals["patient_id"] == "PID0001" and "PID0001" in out.terms


def test_dates_shift_per_patient(cr):
    subs = Substitutes(KEY)
    deidentify(cr, load_profile(), subs)
    days = subs.date_offset_days("nid:pid0001")
    expect = (dt.date(2024, 1, 15) + dt.timedelta(days=days)).strftime("%Y%m%d")
    assert cr.StudyDate == expect == cr.ContentDate
    assert cr.StudyTime == "101500"
    assert cr.LongitudinalTemporalInformationModified == "MODIFIED"


def test_dates_removed(cr):
    deidentify(cr, load_profile(dates="remove"), Substitutes(KEY))
    assert cr["StudyDate"].is_empty and cr["ContentDate"].is_empty   # type 2 in CR -> Z
    assert cr.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in cr.DeidentificationMethodCodeSequence] == ["113100", "113108"]


def test_marks_and_file_meta(cr):
    deidentify(cr, load_profile(), Substitutes(KEY))
    assert cr.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in cr.DeidentificationMethodCodeSequence] == ["113100", "113107", "113108"]
    m = cr.file_meta
    assert m.MediaStorageSOPInstanceUID == cr.SOPInstanceUID
    assert m.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert "SourceApplicationEntityTitle" not in m and m.ImplementationVersionName.startswith("VINDR_")
    assert cr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1"       # registry UIDs are kept


def test_nested_sequences_at_every_depth(tmp_path):
    """A recipe keeps a sequence: its items are still walked, names and UIDs inside replaced."""
    recipe = tmp_path / "keep.toml"
    recipe.write_text('[actions]\nRequestAttributesSequence = "K"\nReferencedImageSequence = "K"\n'
                      'ReferencedStudySequence = "K"\n')

    def extra(ds):
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.543.1.1.2"
        deeper = Dataset()
        deeper.PersonName = "Phạm^Minh Đức"
        deeper.AccessionNumber = "ACC0001"
        ref.ReferencedStudySequence = Sequence([deeper])
        ds.ReferencedImageSequence = Sequence([ref])

    ds = read(make_cr(tmp_path / "a.dcm", extra=extra))
    subs = Substitutes(KEY)
    deidentify(ds, load_profile(str(recipe)), subs)
    req = ds.RequestAttributesSequence[0]
    assert "ScheduledPerformingPhysicianName" not in req or req.ScheduledPerformingPhysicianName == ""
    assert req.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
    ref = ds.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == subs.uid("1.2.826.0.1.3680043.10.543.1.1.2")
    assert ref.ReferencedSOPClassUID == ds.SOPClassUID
    deeper = ref.ReferencedStudySequence[0]
    assert "PersonName" not in deeper or str(deeper.PersonName) in ("", "ANONYMOUS")
    assert deeper.AccessionNumber == ds.AccessionNumber         # same substitute at every depth


def test_clean_descriptors_keeps_only_safe_vocabulary(tmp_path):
    safe = read(make_cr(tmp_path / "a.dcm", extra=lambda d: setattr(d, "StudyDescription", "Chest PA")))
    unsafe = read(make_cr(tmp_path / "b.dcm"))
    prof = load_profile(options={"clean_descriptors"})
    deidentify(safe, prof, Substitutes(KEY))
    deidentify(unsafe, prof, Substitutes(KEY))
    assert safe.StudyDescription == "Chest PA"
    assert "StudyDescription" not in unsafe


def test_vindr_profile_output(cr):
    deidentify(cr, load_profile("vindr"), Substitutes(KEY))
    kept = {e.keyword for e in cr if e.value not in (None, "", b"", [])}    # Type 2 ones stay, empty
    assert {"Rows", "Columns", "BitsStored", "PhotometricInterpretation", "PatientAge", "PatientSex",
            "WindowCenter", "SOPInstanceUID", "PatientIdentityRemoved"} <= kept
    assert not kept & {"PatientName", "PatientID", "StudyDate", "Manufacturer", "AccessionNumber"}


def test_patient_key_fallbacks():
    ds = Dataset()
    ds.PatientID = ""
    ds.PatientName = "A^B"
    ds.PatientBirthDate = "19000101"
    assert patient_key(ds) == "nname:a^b|19000101"                # normalised (default): deid.identity
    assert patient_key(ds, "strict") == "name:A^B|19000101"
    ds.PatientName = ""
    ds.StudyInstanceUID = "1.2.3"
    assert patient_key(ds) == "study:1.2.3"
