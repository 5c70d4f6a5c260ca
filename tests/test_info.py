"""``vindr info``: exact counts over a small planted export, and no identifying value out."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import (
    CTImageStorage, ComputedRadiographyImageStorage, DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
    MRImageStorage, RLELossless, generate_uid,
)
from rich.console import Console

from vindr_cli.info import render, scan_export, to_json
from vindr_cli.dicomio.safe import NONSTANDARD, UNKNOWN_UID, coded, registry_uid, small_int

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR")

PHI = ["DOE^JOHN", "SMITH^JANE", "PID-SECRET-1", "PID-SECRET-2", "ACC-998877", "19700101", "jane smith"]
UIDS = {k: generate_uid() for k in ("st1", "st2", "st3", "se1", "se2", "se3", "se4")}


def image(path: Path, *, name, pid, study, series, sop_class, modality, ts, rows, cols,
          photometric="MONOCHROME2", bits=8, **extra) -> str:
    """Write one Part 10 image; return its SOPInstanceUID."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if ts == RLELossless else ts
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID, ds.StudyDate, ds.AccessionNumber = name, pid, "19700101", "ACC-998877"
    ds.StudyTime, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "101010", "1", 1, 1
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = UIDS[study], UIDS[series], modality
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, photometric
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    dtype = np.uint16 if bits > 8 else np.uint8
    ds.PixelData = (np.arange(rows * cols) % (1 << bits)).astype(dtype).reshape(rows, cols).tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    if ts == RLELossless:
        ds.compress(RLELossless)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("export")
    john = dict(name="DOE^JOHN", pid="PID-SECRET-1")
    jane = dict(name="SMITH^JANE", pid="PID-SECRET-2")
    sops = []
    a = image(root / "DOE^JOHN" / "a.dcm", **john, study="st1", series="se1", sop_class=MRImageStorage,
              modality="MR", ts=ExplicitVRLittleEndian, rows=4, cols=6, bits=12,
              BodyPartExamined="HEAD", SpecificCharacterSet="ISO_IR 100")
    sops.append(a)
    ds = pydicom.dcmread(root / "DOE^JOHN" / "a.dcm")
    block = ds.private_block(0x0009, "PHI VENDOR", create=True)
    block.add_new(0x01, "LO", "PID-SECRET-1")
    ds.save_as(root / "DOE^JOHN" / "a.dcm")
    b = root / "DOE^JOHN" / "b.dcm"
    sops.append(image(b, **john, study="st1", series="se1", sop_class=MRImageStorage, modality="MR",
                      ts=ImplicitVRLittleEndian, rows=8, cols=8))
    ds = pydicom.dcmread(b)
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60003000, "OW", bytes(8))
    ds.save_as(b)
    sops.append(image(root / "DOE^JOHN" / "19700101" / "c.dcm", **john, study="st2", series="se2",
                      sop_class=CTImageStorage, modality="CT", ts=RLELossless, rows=16, cols=16,
                      BurnedInAnnotation="YES", BodyPartExamined="CHEST"))
    d = root / "SMITH^JANE" / "d.dcm"
    sops.append(image(d, **jane, study="st3", series="se3", sop_class=ComputedRadiographyImageStorage,
                      modality="CR", ts=DeflatedExplicitVRLittleEndian, rows=10, cols=12, bits=12,
                      photometric="MONOCHROME1", SpecificCharacterSet="ISO_IR 192"))
    ds = pydicom.dcmread(d)
    ds.add_new(0x50000005, "US", 1)  # retired curve group
    ds.save_as(d)
    e = root / "tmp" / "e.dcm"
    sops.append(image(e, **jane, study="st3", series="se4", sop_class=DigitalXRayImageStorageForPresentation,
                      modality="DX", ts=ExplicitVRLittleEndian, rows=20, cols=30, bits=16,
                      photometric="MONOCHROME1", BodyPartExamined="jane smith"))
    with zipfile.ZipFile(root / "SMITH^JANE_export.zip", "w") as zf:
        zf.write(e, "SMITH^JANE/e.dcm")
    e.unlink()
    e.parent.rmdir()
    (root / "notes PID-SECRET-2.txt").write_text("patient SMITH^JANE called\n")
    (root / "empty.dcm").write_bytes(b"")
    (root / "truncated.dcm").write_bytes((root / "DOE^JOHN" / "a.dcm").read_bytes()[:140])
    return root, sops


@pytest.fixture(scope="module")
def summary(export) -> dict:
    return scan_export(export[0], workers=1)


def test_file_counts(summary):
    assert (summary["files"], summary["dicom"], summary["not_dicom"], summary["failed"]) == (8, 5, 2, 1)
    assert summary["archive_members"] == 1
    assert summary["dicomdir_files"] == 0
    assert summary["reasons"]["not-dicom"] == {
        "empty file (0 bytes)": 1, "not a DICOM file (no 'DICM' marker at byte 128)": 1}
    assert summary["reasons"]["failed"] == {"file meta information has no TransferSyntaxUID": 1}


def test_bytes_total(export, summary):
    root = export[0]
    plain = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.suffix != ".zip")
    with zipfile.ZipFile(root / "SMITH^JANE_export.zip") as zf:
        member = zf.infolist()[0].file_size
    assert summary["bytes"] == plain + member


def test_identity_counts(summary):
    got = {k: summary[k] for k in ("patients", "studies", "series", "instances", "duplicate_instances")}
    assert got == {"patients": 2, "studies": 3, "series": 4, "instances": 5, "duplicate_instances": 0}


def test_breakdowns(summary):
    ts = {r["name"]: (r["uid"], r["files"]) for r in summary["transfer_syntax"]}
    assert ts == {
        "Explicit VR Little Endian": (ExplicitVRLittleEndian, 2),
        "Implicit VR Little Endian": (ImplicitVRLittleEndian, 1),
        "RLE Lossless": (RLELossless, 1),
        "Deflated Explicit VR Little Endian": (DeflatedExplicitVRLittleEndian, 1),
    }
    sop = {r["name"]: r["files"] for r in summary["sop_class"]}
    assert sop == {"MR Image Storage": 2, "CT Image Storage": 1, "Computed Radiography Image Storage": 1,
                   "Digital X-Ray Image Storage - For Presentation": 1}
    assert summary["modality"] == {"MR": 2, "CR": 1, "CT": 1, "DX": 1}
    assert list(summary["modality"]) == ["MR", "CR", "CT", "DX"]  # by count, then label
    assert summary["photometric"] == {"MONOCHROME2": 3, "MONOCHROME1": 2}
    assert summary["bits_stored"] == {"12": 2, "8": 2, "16": 1}
    assert summary["body_part"] == {"(absent)": 2, "CHEST": 1, "HEAD": 1, NONSTANDARD: 1}
    assert summary["charset"] == {"(absent)": 3, "ISO_IR 100": 1, "ISO_IR 192": 1}


def test_flags_and_sizes(summary):
    flags = {k: summary[k] for k in ("burned_in_annotation", "private_elements", "overlays", "curves")}
    assert flags == {"burned_in_annotation": 1, "private_elements": 1, "overlays": 1, "curves": 1}
    assert summary["image_size"] == {"files": 5, "rows": {"min": 4, "median": 10, "max": 20},
                                     "columns": {"min": 6, "median": 12, "max": 30}}


def test_json_has_no_identifying_value(export, summary):
    root, sops = export
    text = to_json(summary)
    assert json.loads(text) == summary
    planted = PHI + sops + list(UIDS.values()) + [str(root), root.name, "a.dcm", "SMITH^JANE_export", "notes"]
    leaked = [p for p in planted if p.lower() in text.lower()]
    assert leaked == []
    assert re.search(r"[0-9a-f]{32}", text) is None  # no identifier hashes either


def test_render_shows_tables_without_phi(export, summary):
    console = Console(record=True, width=200)
    render(summary, console)
    out = console.export_text()
    for expected in ("Export overview", "Patients", "RLE Lossless", "MONOCHROME1", "Inputs not read",
                     "empty file (0 bytes)", "4 / 10 / 20"):
        assert expected in out
    assert [p for p in PHI + export[1] if p.lower() in out.lower()] == []


def test_two_workers_same_summary(export, summary):
    assert scan_export(export[0], workers=2) == summary
    assert to_json(scan_export(export[0], workers=2)) == to_json(summary)


def test_patient_issuer_distinguishes_patients(tmp_path):
    common = dict(name="X^Y", pid="SAME-ID", study="st1", series="se1", sop_class=MRImageStorage,
                  modality="MR", ts=ExplicitVRLittleEndian, rows=2, cols=2)
    image(tmp_path / "1.dcm", **common, IssuerOfPatientID="HOSPITAL-A")
    image(tmp_path / "2.dcm", **common, IssuerOfPatientID="HOSPITAL-B")
    image(tmp_path / "3.dcm", **common, IssuerOfPatientID="HOSPITAL-A")
    s = scan_export(tmp_path)
    assert (s["patients"], s["studies"], s["series"], s["instances"]) == (2, 1, 1, 3)


def test_duplicate_instance_counted(tmp_path):
    image(tmp_path / "1.dcm", name="X", pid="P", study="st1", series="se1", sop_class=MRImageStorage,
          modality="MR", ts=ExplicitVRLittleEndian, rows=2, cols=2)
    (tmp_path / "copy.dcm").write_bytes((tmp_path / "1.dcm").read_bytes())
    s = scan_export(tmp_path)
    assert (s["dicom"], s["instances"], s["duplicate_instances"]) == (2, 1, 1)


def test_dicomdir_media_and_missing_file(tmp_path):
    src = tmp_path / "src"
    fs = FileSet()
    for i in range(2):
        image(src / f"{i}.dcm", name="DOE^JOHN", pid="PID-SECRET-1", study="st1", series="se1",
              sop_class=CTImageStorage, modality="CT", ts=ExplicitVRLittleEndian, rows=2, cols=2)
        fs.add(src / f"{i}.dcm")
    media = tmp_path / "media"
    fs.write(media)
    referenced = sorted(p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    referenced[0].unlink()
    s = scan_export(media)
    assert (s["files"], s["dicom"], s["dicomdir_files"], s["failed"], s["instances"]) == (3, 2, 1, 1, 1)
    assert s["reasons"]["failed"] == {"referenced by a DICOMDIR but missing from the media": 1}
    assert s["modality"] == {"CT": 1}


def test_unsafe_values_become_placeholders():
    assert coded("DOE^JOHN", "charset") == NONSTANDARD
    assert coded("DOE JOHN", "modality") == NONSTANDARD      # passes the CS repertoire, not a defined term
    assert coded("CR", "modality") == "CR"
    assert coded(["ISO_IR 100", "ISO 2022 IR 87"], "charset") == "ISO_IR 100\\ISO 2022 IR 87"
    assert coded("", "modality") == "(absent)"
    private = generate_uid()
    assert registry_uid(private) == (None, UNKNOWN_UID)
    assert registry_uid("1.2.840.10008.19650412.1") == (None, UNKNOWN_UID)   # registry root, not registered
    assert registry_uid("John Smith") == (None, UNKNOWN_UID)
    assert registry_uid(RLELossless) == (RLELossless, "RLE Lossless")
    assert small_int("99999999999") is None and small_int("12") == 12 and small_int("x") is None
