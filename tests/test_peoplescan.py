"""deid.peoplescan: the first pass's raw walk finds exactly what the old read (pydicom's
``dcmread`` + ``engine.person_values``) finds, or says it is unsure and the old read decides.

Oracle: ``people_of`` with ``PeopleConfig(scan=False)``. Corpora: every file in pydicom's
bundled test_files folder (listed on disk), the sample export, deid-data's and pydicom-data's files, and
Hypothesis data sets (names at any depth, private PN, undefined lengths, character sets),
also cut short or with a byte changed.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

import vindr_cli.deid.peoplescan as peoplescan
from vindr_cli.deid.studyterms import PeopleConfig, people_of
from vindr_cli.runner.discover import discover
from vindr_cli.runner.sources import Source

ROOT = Path(__file__).resolve().parent.parent
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
MATCHES = ("normalised", "strict")


def _deid_data() -> Path | None:
    try:
        import deid_data
    except ImportError:
        return None
    return Path(deid_data.__file__).parent


def _compare(root: Path, monkeypatch) -> tuple[int, int]:
    """Every input of ``root``: the walk's answer == the old read's (both patient matches);
    returns (inputs, inputs the walk answered itself)."""
    walked = []
    real = peoplescan.scan

    def counting(*args, **kwargs):
        got = real(*args, **kwargs)
        walked.append(1)
        return got

    monkeypatch.setattr(peoplescan, "scan", counting)
    sources = discover(root)
    for match in MATCHES:
        new, old = PeopleConfig(patient_match=match), PeopleConfig(patient_match=match, scan=False)
        for src in sources:
            assert people_of(new, src) == people_of(old, src), src.rel
    return len(sources), len(walked) // len(MATCHES)


def test_pydicom_s_test_files_give_the_old_read_s_values(monkeypatch):
    inputs, walked = _compare(PYDICOM_FILES, monkeypatch)
    assert inputs > 100 and walked > 40        # the walk is used, not only its fallback


def test_the_sample_export_gives_the_old_read_s_values(monkeypatch):
    inputs, walked = _compare(ROOT / "sample_dicoms" / "export", monkeypatch)
    assert inputs > 30 and walked > 5


@pytest.mark.skipif(_deid_data() is None, reason="deid-data is not installed")
def test_deid_data_gives_the_old_read_s_values(monkeypatch):
    inputs, walked = _compare(_deid_data(), monkeypatch)
    assert inputs > 10 and walked > 0


def _pydicom_data() -> Path | None:
    try:
        import data_store
    except ImportError:
        return None
    folder = Path(data_store.__file__).parent / "data"
    return folder if folder.is_dir() else None


@pytest.mark.skipif(_pydicom_data() is None, reason="pydicom-data is not installed")
def test_pydicom_data_s_files_give_the_old_read_s_values(monkeypatch):
    inputs, walked = _compare(_pydicom_data(), monkeypatch)
    assert inputs > 30 and walked > 20


def test_the_bench_s_radiographs_are_walked_and_give_the_old_read_s_values(tmp_path, monkeypatch):
    from vindr_cli.synth.export import write_radiograph

    for i in range(3):
        write_radiograph(tmp_path / f"IMG_{i}.dcm", index=i, rows=64, cols=64, transfer_syntax="1.2.840.10008.1.2.1",
                         photometric="MONOCHROME2", seed=7, verify=False)
    assert _compare(tmp_path, monkeypatch) == (3, 3)


# -- Hypothesis: data sets the walk must read as pydicom does, or give up on ----------------------

_NAMES = st.text(alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ ^=-'.0123456789ÀÉñÜ"), max_size=24)
_IDS = st.text(alphabet=st.sampled_from("ABCXYZ0123456789 -_/"), max_size=16)
_DATES = st.sampled_from(["19850312", "20011231", "", "1985", "19850312 ", "2020010"])
_CHARSETS = st.sampled_from([None, "ISO_IR 100", "ISO_IR 192", "", "ISO_IR 6", "BOGUS"])


@st.composite
def _item(draw, depth: int) -> Dataset:
    d = Dataset()
    if draw(st.booleans()):
        d.PerformingPhysicianName = draw(_NAMES)
    if draw(st.booleans()):
        d.PatientBirthDate = draw(_DATES)
    if draw(st.booleans()):
        d.StudyDate = draw(_DATES)         # not a person value in an item
    if draw(st.booleans()):
        d.InstitutionName = draw(_NAMES)
    if draw(st.booleans()):
        d.CodeMeaning = draw(_NAMES)        # not a person value
    if draw(st.booleans()):
        d.add_new(0x00091010, "LO", "VENDOR")
        d.add_new(0x00091011, "PN", draw(_NAMES))    # a private PN
    if depth < 3 and draw(st.booleans()):
        seq = Sequence([draw(_item(depth + 1)) for _ in range(draw(st.integers(0, 2)))])
        d.ReferencedStudySequence = seq
        if draw(st.booleans()):
            d["ReferencedStudySequence"].is_undefined_length = True
        for it in seq:
            it.is_undefined_length_sequence_item = draw(st.booleans())
    return d


@st.composite
def _files(draw) -> bytes:
    ds = Dataset()
    charset = draw(_CHARSETS)
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    if draw(st.integers(0, 9)):
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["peoplescan", str(draw(st.integers(0, 99)))])
    ds.StudyDate = draw(_DATES)
    ds.AccessionNumber = draw(_IDS)
    ds.ReferringPhysicianName = draw(_NAMES)
    if draw(st.booleans()):
        ds.PatientName = draw(_NAMES)
    if draw(st.booleans()):
        ds.PatientID = draw(_IDS)
    if draw(st.booleans()):
        ds.IssuerOfPatientID = draw(_IDS)
    ds.PatientBirthDate = draw(_DATES)
    if draw(st.booleans()):
        ds.OtherPatientNames = [draw(_NAMES), draw(_NAMES)]
    if draw(st.booleans()):
        ds.StudyInstanceUID = draw(st.sampled_from(["1.2.3", "1.2.3.4 ", ""]))
    if draw(st.booleans()):
        ds.RequestAttributesSequence = Sequence([draw(_item(1)) for _ in range(draw(st.integers(0, 3)))])
        if draw(st.booleans()):
            ds["RequestAttributesSequence"].is_undefined_length = True
    if draw(st.booleans()):
        ds.add_new(0x00291010, "LO", "VENDOR")
        ds.add_new(0x00291011, "PN", draw(_NAMES))
    if draw(st.booleans()):     # a private PN and SQ pydicom's private dictionary knows (implicit VR: by their creator)
        ds.add_new(0x31030010, "LO", draw(st.sampled_from(["AMI Sequence Annotations_01", "OTHER", "AMI\\X"])))
        ds.add_new(0x31031060, "SQ", Sequence([draw(_item(2))]))
        ds.add_new(0x31031080, "PN", draw(_NAMES))
    ds.Rows = ds.Columns = 2
    ds.add_new(0x7FE00010, "OW", b"\0" * 8)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.file_meta.TransferSyntaxUID = draw(st.sampled_from([ExplicitVRLittleEndian] * 4 + [ImplicitVRLittleEndian]))
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    cut = draw(st.sampled_from([None, None, None, "cut", "flip"]))
    if cut == "cut":
        data = data[:draw(st.integers(132, len(data)))]
    elif cut == "flip":
        at = draw(st.integers(132, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    return data


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=_files())
def test_generated_files_give_the_old_read_s_values(tmp_path, data):
    path = tmp_path / "f.dcm"
    path.write_bytes(data)
    src = Source(path=str(path), rel="f.dcm", size=len(data))
    for match in MATCHES:
        assert people_of(PeopleConfig(patient_match=match), src) == \
            people_of(PeopleConfig(patient_match=match, scan=False), src)


def test_the_walk_answers_a_plain_file_itself_and_gives_up_on_what_it_does_not_handle(tmp_path):
    """The oracle above could pass with a walk that always gives up: this one must walk."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", "1.2.3.4"
    ds.PatientName, ds.PatientID, ds.StudyInstanceUID = "NGUYEN^VAN^THANG", "BN 5512", "1.2.3"
    item = Dataset()
    item.InstitutionName = "BENH VIEN A"
    item.add_new(0x00091010, "LO", "VENDOR")
    item.add_new(0x00091011, "PN", "TRAN^THI^B")
    ds.RequestAttributesSequence = Sequence([item])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, "1.2.3.4"
    path = tmp_path / "a.dcm"
    ds.save_as(path, enforce_file_format=True)
    places: list[str] = []
    with open(path, "rb") as f:
        study, patient, values = peoplescan.scan(f, os.path.getsize(path), "normalised", places)
    assert study == "1.2.3" and "NGUYEN^VAN^THANG" in values and "TRAN^THI^B" in values and "BN 5512" in values
    assert places == ["BENH VIEN A"]
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian        # outside the plain case
    ds.save_as(path, enforce_file_format=True)
    with open(path, "rb") as f, pytest.raises(peoplescan.Unsure):
        peoplescan.scan(f, os.path.getsize(path), "normalised", [])


def _rich_file(syntax) -> bytes:
    """One file with a bit of everything the walk handles: names at three depths, undefined
    lengths, private creators and a private PN and SQ pydicom's private dictionary knows."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", "1.2.3.4"
    ds.StudyDate, ds.ReferringPhysicianName = "20200102", "LE^VAN^C"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.StudyInstanceUID = "NGUYEN^THI^A", "BN 77", "19850312", "1.2.3"
    inner = Dataset()
    inner.PerformingPhysicianName = "PHAM^D"
    inner.InstitutionName = "BENH VIEN E"
    item = Dataset()
    item.PatientBirthDate = "19700101"
    item.ReferencedStudySequence = Sequence([inner])
    item["ReferencedStudySequence"].is_undefined_length = True
    inner.is_undefined_length_sequence_item = True
    ds.RequestAttributesSequence = Sequence([item, Dataset()])
    ds.add_new(0x00291010, "LO", "VENDOR")
    ds.add_new(0x00291011, "PN", "VO^F")
    ami = Dataset()
    ami.add_new(0x31030010, "LO", "AMI Sequence Annotations_01")
    ami.add_new(0x31031080, "PN", "DO^G")
    ds.add_new(0x31030010, "LO", "AMI Sequence Annotations_01")
    ds.add_new(0x31031060, "SQ", Sequence([ami]))
    ds.add_new(0x31031080, "PN", "HO^H")
    ds.add_new(0x7FE00010, "OW", b"\0" * 8)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, "1.2.3.4"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_every_cut_and_every_changed_byte_of_a_file_gives_the_old_read_s_values(tmp_path, syntax):
    """One file cut short, and with one byte changed (xor 0xFF, +1), at every 5th byte of its
    data set (PEOPLESCAN_STEP=1: every byte): the walk answers as the old read does, or gives up."""
    data = _rich_file(syntax)
    path = tmp_path / "f.dcm"
    new, old = PeopleConfig(), PeopleConfig(scan=False)
    whole = people_of(new, Source(path=str(path), rel="f.dcm", size=path.write_bytes(data)))
    # VO^F's creator is in no dictionary: with implicit VR, pydicom reads the element as UN, no name
    names = {"NGUYEN^THI^A", "PHAM^D", "DO^G", "HO^H"} | ({"VO^F"} if syntax == ExplicitVRLittleEndian else set())
    assert whole is not None and names <= set(whole[2]) and ("VO^F" in names) == ("VO^F" in whole[2])
    assert "BENH VIEN E" in whole[3]
    step = int(os.environ.get("PEOPLESCAN_STEP", "5"))     # 1: every byte (bench/README.md, firstpass)
    variants = [data[:n] for n in range(132, len(data), step)]
    variants += [data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:] for i in range(133, len(data), step)]
    variants += [data[:i] + bytes([(data[i] + 1) & 0xFF]) + data[i + 1:] for i in range(134, len(data), step)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v in variants:
            src = Source(path=str(path), rel="f.dcm", size=path.write_bytes(v))
            assert people_of(new, src) == people_of(old, src)


def test_a_header_longer_than_the_bytes_first_read_is_read_on_and_gives_the_old_read_s_values(monkeypatch):
    """The walk reads the first 64 KiB, then 1 MiB, then 16 MiB: with reads of 300 and 2,000
    bytes, headers end past them, some at a read's very end (which is not the file's)."""
    monkeypatch.setattr(peoplescan, "CHUNKS", (300, 2000, None))
    inputs, walked = _compare(PYDICOM_FILES, monkeypatch)
    assert inputs > 100 and walked > 40
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        data = _rich_file(syntax)
        for chunk in range(150, len(data) + 2, 7):
            monkeypatch.setattr(peoplescan, "CHUNKS", (chunk, None))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                places: list[str] = []
                got = peoplescan.scan(io.BytesIO(data), len(data), "normalised", places)
            monkeypatch.setattr(peoplescan, "CHUNKS", (None,))
            assert got == peoplescan.scan(io.BytesIO(data), len(data), "normalised", [])


def test_a_header_longer_than_the_last_read_goes_to_the_old_read(tmp_path, monkeypatch):
    data = _rich_file(ExplicitVRLittleEndian)
    path = tmp_path / "f.dcm"
    path.write_bytes(data)
    monkeypatch.setattr(peoplescan, "CHUNKS", (150, 300))
    with open(path, "rb") as f, pytest.raises(peoplescan.Unsure):
        peoplescan.scan(f, len(data), "normalised", [])
    src = Source(path=str(path), rel="f.dcm", size=len(data))
    got = people_of(PeopleConfig(), src)
    assert got == people_of(PeopleConfig(scan=False), src) and "NGUYEN^THI^A" in got[2]
