"""Properties of the committed synthetic export (sample_dicoms/) and its generator."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.fileset import FileSet
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
)

from vindr_cli.synth.annotations import CXR_CLASSES, SPINE_LESIONS
from vindr_cli.synth.encode import COMPRESSED, encode_file
from vindr_cli.synth.export import build_export, write_radiograph

SAMPLE = Path(__file__).resolve().parents[1] / "sample_dicoms"
EXPORT = SAMPLE / "export"
CR, DX, SC = "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.7"
GENERATED = ("export", "annotations", "planted_phi.json", "selection_truth.json")
CT, MR, RF = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.12.2"


@dataclass
class Item:
    origin: str  # relative path, or "archive.zip!member"
    data: bytes
    ds: pydicom.Dataset


def _tree_hashes(root: Path) -> dict[str, str]:
    out = {}
    for name in GENERATED:
        base = root / name
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _parse(data: bytes) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError):
        return None


@pytest.fixture(scope="module")
def planted() -> dict:
    return json.loads((SAMPLE / "planted_phi.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((SAMPLE / "selection_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def items(planted) -> list[Item]:
    """Every complete DICOM instance: plain files, DICOMDIR media files and zip members."""
    truncated = set(planted["special_files"]["truncated"])
    out = []
    for path in sorted(p for p in EXPORT.rglob("*") if p.is_file()):
        rel = path.relative_to(SAMPLE).as_posix()
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    data = archive.read(name)
                    out.append(Item(f"{rel}!{name}", data, _parse(data)))
            continue
        ds = _parse(path.read_bytes())
        if ds is not None and rel not in truncated and path.name != "DICOMDIR":
            out.append(Item(rel, path.read_bytes(), ds))
    return out


@pytest.fixture(scope="module")
def radiographs(items) -> list[Item]:
    return [i for i in items if i.ds.SOPClassUID in (CR, DX)]


# -- determinism and size ----------------------------------------------------------
def test_generator_is_deterministic_and_matches_committed_tree(tmp_path):
    result = build_export(tmp_path)
    assert _tree_hashes(tmp_path) == _tree_hashes(SAMPLE)
    assert result == json.loads((SAMPLE / "planted_phi.json").read_text(encoding="utf-8"))


def test_sample_size_budget():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= 5 * 1024 * 1024


def test_build_refuses_non_empty_export(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        build_export(tmp_path)


# -- counts and coverage ------------------------------------------------------------
def test_patients_studies_and_images(items):
    studies: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for item in items:
        studies[item.ds.PatientID][item.ds.StudyInstanceUID].add(item.ds.SOPInstanceUID)
    assert len(studies) >= 6
    for per_patient in studies.values():
        assert 1 <= len(per_patient) <= 3
        for images in per_patient.values():
            assert 1 <= len(images) <= 3


def test_sop_classes_body_parts_and_views(items, radiographs):
    assert {i.ds.SOPClassUID for i in items} == {CR, DX, SC, CT, MR, RF}
    assert {i.ds.Modality for i in radiographs} == {"CR", "DX"}
    assert {i.ds.BodyPartExamined for i in radiographs} == {"CHEST", "THORAX", "LSPINE", "CSPINE"}
    chest = {i.ds.ViewPosition for i in radiographs if i.ds.BodyPartExamined in ("CHEST", "THORAX")}
    spine = {i.ds.ViewPosition for i in radiographs if i.ds.BodyPartExamined.endswith("SPINE")}
    assert chest == {"PA", "AP", "LL"} and spine == {"AP", "LL"}


def test_transfer_syntaxes_present(items):
    found = {i.ds.file_meta.TransferSyntaxUID for i in items}
    assert {ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGLosslessSV1, RLELossless} <= found


def test_pixel_modules(radiographs):
    assert {i.ds.PhotometricInterpretation for i in radiographs} == {"MONOCHROME1", "MONOCHROME2"}
    assert {i.ds.BitsStored for i in radiographs} == {12, 14, 16}
    for item in radiographs:
        ds = item.ds
        assert ds.BitsAllocated == 16 and ds.HighBit == ds.BitsStored - 1 and ds.PixelRepresentation == 0
        assert 256 <= max(ds.Rows, ds.Columns) <= 512
        assert ds.pixel_array.max() < 2 ** ds.BitsStored


def test_photometric_matches_pixel_values(radiographs):
    """Bone (central spine column) vs air (corners): high in MONOCHROME2, low in MONOCHROME1."""
    for item in radiographs:
        if "PixelPaddingValue" in item.ds or item.ds.ViewPosition == "LL" or item.ds.pixel_array.min() == item.ds.pixel_array.max():
            continue
        arr = item.ds.pixel_array.astype(float)
        rows, cols = arr.shape
        air = np.mean([arr[:8, :8].mean(), arr[:8, -8:].mean()])
        bone = arr[rows // 3: 2 * rows // 3, cols // 2 - 4: cols // 2 + 4].mean()
        assert (bone > air) == (item.ds.PhotometricInterpretation == "MONOCHROME2"), item.origin


def test_display_variants(radiographs):
    with_lut = [i for i in radiographs if "VOILUTSequence" in i.ds]
    rescaled = [i for i in radiographs if float(i.ds.get("RescaleSlope", 1)) != 1]
    padded = [i for i in radiographs if "PixelPaddingValue" in i.ds]
    windowed = [i for i in radiographs if "WindowCenter" in i.ds]
    assert with_lut and rescaled and padded and len(windowed) >= len(radiographs) // 2
    ds = padded[0].ds
    arr = ds.pixel_array
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    assert np.all(border == ds.PixelPaddingValue)
    assert np.all(arr[arr.shape[0] // 2, arr.shape[1] // 4: 3 * arr.shape[1] // 4] != ds.PixelPaddingValue)


TWO_DECODERS = {RLELossless: ("pydicom", "pylibjpeg"), JPEG2000Lossless: ("pylibjpeg", "gdcm"),
                JPEGLosslessSV1: ("pylibjpeg", "gdcm")}


def test_compressed_pixels_decode_identically_with_two_decoders(items):
    """Exactness was checked against the source array at build time; here two
    independent decoders must agree on every compressed file."""
    compressed = [i for i in items if i.ds.file_meta.TransferSyntaxUID in COMPRESSED]
    assert len(compressed) >= 6
    for item in compressed:
        first, second = (pydicom.pixels.pixel_array(io.BytesIO(item.data), decoding_plugin=plugin)
                         for plugin in TWO_DECODERS[item.ds.file_meta.TransferSyntaxUID])
        frames = (item.ds.NumberOfFrames,) if item.ds.get("NumberOfFrames", 1) > 1 else ()
        assert first.shape == (*frames, item.ds.Rows, item.ds.Columns)
        assert np.array_equal(first, second), item.origin


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless,
                                JPEGLosslessSV1, RLELossless])
@pytest.mark.parametrize("bits", [12, 16])
def test_encoders_are_lossless_and_deterministic(ts, bits):
    rng = np.random.default_rng(bits)
    pixels = rng.integers(0, 2 ** bits, (40, 56), dtype=np.uint16)

    def encoded() -> bytes:
        ds = pydicom.Dataset()
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.SOPClassUID, ds.SOPInstanceUID = DX, "2.25.1"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
        return encode_file(ds, pixels, ts)

    first = encoded()
    assert first == encoded()
    assert np.array_equal(pydicom.dcmread(io.BytesIO(first)).pixel_array, pixels)


# -- planted PHI ----------------------------------------------------------------------
def test_charset_and_vietnamese_names(items):
    for item in items:
        assert item.ds.SpecificCharacterSet == "ISO_IR 192"
        assert not str(item.ds.PatientName).isascii()
    names = {str(i.ds.PatientName) for i in items}
    assert {"Nguyễn^Văn An", "Trần^Thị Bích", "Đặng^Quốc Bảo"} <= names


STANDARD_PHI = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientSize",
                "PatientWeight", "PatientAddress", "PatientTelephoneNumbers", "OtherPatientNames",
                "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "InstitutionName",
                "InstitutionAddress", "StationName", "AccessionNumber", "StudyID", "StudyDate", "StudyTime")


def test_standard_and_nested_phi(radiographs):
    uids_by_study = defaultdict(set)
    for item in radiographs:
        uids_by_study[item.ds.StudyInstanceUID].add(item.ds.SOPInstanceUID)
    for item in radiographs:
        ds = item.ds
        for keyword in STANDARD_PHI:
            assert ds.get(keyword) not in (None, ""), (item.origin, keyword)
        request = ds.RequestAttributesSequence[0]
        assert request.RequestedProcedureID and request.ScheduledProcedureStepID
        assert request.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
        deep = request.ScheduledProtocolCodeSequence[0].ProtocolContextSequence[0]
        assert str(deep.PersonName) == str(ds.ReferringPhysicianName)
        assert all(x.PatientID and x.IssuerOfPatientID for x in ds.OtherPatientIDsSequence)
        assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
        if len(uids_by_study[ds.StudyInstanceUID]) > 1:
            ref = ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID
            assert ref in uids_by_study[ds.StudyInstanceUID] and ref != ds.SOPInstanceUID


def _text(value) -> str:
    """Private values read from implicit VR files come back as UN bytes."""
    return value.decode("utf-8").rstrip("\x00 ") if isinstance(value, bytes) else value


def test_private_block_and_file_meta(items):
    for item in items:
        ds = item.ds
        block = ds.private_block(0x0029, "HOSPITAL_PACS 1.0")
        assert _text(block[0x10].value) == str(ds.PatientName)
        assert _text(block[0x11].value) == ds.PatientID
        if block[0x20].VR == "SQ":  # an opaque UN blob in implicit VR files
            inner = block[0x20].value[0].private_block(0x0029, "HOSPITAL_PACS 1.0")
            assert inner[0x02].value == str(ds.PatientName).replace("^", " ")
        else:
            assert str(ds.PatientName).replace("^", " ").encode() in block[0x20].value
        assert ds.file_meta.SourceApplicationEntityTitle.endswith("_PACS01")
        assert ds.file_meta.ImplementationVersionName == "MEDIVIEW_PACS_42"


def test_free_text_overlay_and_curve(items):
    assert any(str(i.ds.PatientName).replace("^", " ") in i.ds.get("ImageComments", "") for i in items)
    assert any(str(i.ds.PatientName).replace("^", " ") in i.ds.get("StudyDescription", "") for i in items)
    assert any(str(i.ds.PatientName).replace("^", " ") in i.ds.get("AdditionalPatientHistory", "") for i in items)
    overlays = [i for i in items if 0x60003000 in i.ds]
    curves = [i for i in items if 0x50003000 in i.ds]
    assert len(overlays) == 1 and len(curves) == 1
    assert overlays[0].ds.overlay_array(0x6000).any()


def test_dates_and_ages(items):
    dates = defaultdict(set)
    for item in items:
        ds = item.ds
        dates[ds.PatientID].add(ds.StudyDate)
        birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
        day = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
        years = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
        assert ds.PatientAge == f"{years:03d}Y"
    assert any(len(d) >= 2 for d in dates.values())


def test_names_in_paths_and_extensions(items):
    plain = [Path(i.origin) for i in items if "!" not in i.origin and "IMAGES" not in i.origin]
    suffixes = [p.suffix for p in plain]
    assert ".dcm" in suffixes and "" in suffixes and suffixes.count(".DCM") == 1
    for item in items:
        if "!" in item.origin or "IMAGES" in item.origin:
            continue
        assert item.ds.PatientID in item.origin
        camel = "".join(w.capitalize() for w in Path(item.origin).parts[1].split("_")[0].lower().split())
        assert f"IMG_{camel}_" in Path(item.origin).name


def test_secondary_capture_has_burned_in_name(items):
    (sc,) = [i for i in items if i.ds.SOPClassUID == SC]
    assert sc.ds.BurnedInAnnotation == "YES"
    assert sc.ds.SourceImageSequence[0].ReferencedSOPInstanceUID
    banner = sc.ds.pixel_array[:44]
    assert (banner == 255).sum() > 200


# -- awkward files ----------------------------------------------------------------
def test_special_files(planted):
    special = planted["special_files"]
    for rel in special["non_dicom"]:
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(SAMPLE / rel)
    assert any(rel.endswith(".txt") for rel in special["non_dicom"])
    (zero,) = special["zero_byte"]
    assert (SAMPLE / zero).stat().st_size == 0
    (truncated,) = special["truncated"]
    header = pydicom.dcmread(SAMPLE / truncated, stop_before_pixels=True)
    assert header.PatientName and header.Rows
    with pytest.raises(ValueError):
        pydicom.dcmread(SAMPLE / truncated).pixel_array


def test_dicomdir_media(planted):
    (rel,) = planted["special_files"]["dicomdir"]
    fileset = FileSet(SAMPLE / rel)
    instances = list(fileset)
    assert 1 <= len(instances) <= 2
    for instance in instances:
        parts = Path(instance.path).relative_to((SAMPLE / rel).parent).parts
        assert parts[0] == "IMAGES" and len(parts[1]) == 8 and parts[1].isupper()
        assert instance.load().PatientID == instance.PatientID
    assert fileset.UID in planted["uids"]


def test_zip_contains_dicom(planted):
    (rel,) = planted["special_files"]["zip"]
    with zipfile.ZipFile(SAMPLE / rel) as archive:
        infos = archive.infolist()
        assert 1 <= len(infos) <= 2
        for info in infos:
            assert info.date_time[0] >= 2020
            ds = pydicom.dcmread(io.BytesIO(archive.read(info)))
            assert ds.SOPInstanceUID in planted["uids"]


# -- annotations -------------------------------------------------------------------
def _csv(name: str) -> list[dict]:
    with open(SAMPLE / "annotations" / name, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _check_box(row: dict, keys: tuple[str, ...], ds: pydicom.Dataset) -> None:
    x0, y0, x1, y1 = (float(row[k]) for k in keys)
    assert 0 <= x0 < x1 <= ds.Columns - 1 and 0 <= y0 < y1 <= ds.Rows - 1


def test_cxr_annotations(radiographs, truth):
    by_uid = {i.ds.SOPInstanceUID: i.ds for i in radiographs}
    rows = _csv("vindr_cxr_annotations.csv")
    assert list(rows[0]) == ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
    readers = defaultdict(set)
    for row in rows:
        ds = by_uid[row["image_id"]]
        assert ds.BodyPartExamined in ("CHEST", "THORAX")
        assert CXR_CLASSES[int(row["class_id"])] == row["class_name"]
        readers[row["image_id"]].add(row["rad_id"])
        keys = ("x_min", "y_min", "x_max", "y_max")
        if row["class_id"] == "14":
            assert all(row[k] == "" for k in keys)
        else:
            _check_box(row, keys, ds)
    assert all(r == {"R1", "R2", "R3"} for r in readers.values())
    assert any(row["class_id"] == "14" for row in rows) and any(row["class_id"] != "14" for row in rows)
    zipped = {i.ds.SOPInstanceUID for i in radiographs if "!" in i.origin}
    # adult chest radiographs only: no rows for what a selection excludes (child, blank, duplicate copy)
    chest = {u for u, t in truth.items() if t["category"] in ("adult-frontal-chest", "lateral")} - zipped
    assert set(readers) == chest


def test_spine_annotations(radiographs, truth):
    by_uid = {i.ds.SOPInstanceUID: i.ds for i in radiographs}
    rows = _csv("vindr_spinexr_annotations.csv")
    assert list(rows[0]) == ["image_id", "study_id", "series_id", "rad_id", "lesion_type",
                             "xmin", "ymin", "xmax", "ymax"]
    for row in rows:
        ds = by_uid[row["image_id"]]
        assert ds.BodyPartExamined in ("LSPINE", "CSPINE")
        assert (row["study_id"], row["series_id"]) == (ds.StudyInstanceUID, ds.SeriesInstanceUID)
        keys = ("xmin", "ymin", "xmax", "ymax")
        if row["lesion_type"] == "No finding":
            assert all(row[k] == "" for k in keys)
        else:
            assert row["lesion_type"] in SPINE_LESIONS
            _check_box(row, keys, ds)
    spine = {u for u, ds in by_uid.items() if ds.BodyPartExamined.endswith("SPINE")}
    assert spine == {u for u, t in truth.items() if t["category"] == "spine"}
    assert {row["image_id"] for row in rows} == spine


# -- selection_truth.json (issue 11: what `vindr select` must catch) ------------------------
FRONTAL_CHEST = ("CHEST", "THORAX")  # THORAX: a body-part synonym the vindr-cxr preset must still read as chest


def _age_years(ds: pydicom.Dataset) -> int:
    birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
    day = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def test_selection_truth_covers_every_instance(truth, items, planted):
    (truncated,) = planted["special_files"]["truncated"]
    cut = pydicom.dcmread(SAMPLE / truncated, stop_before_pixels=True).SOPInstanceUID
    assert set(truth) == {i.ds.SOPInstanceUID for i in items} | {cut}
    assert truth[cut] == {"category": "truncated", "expect_selected": False}
    assert all(set(v) == {"category", "expect_selected"} for v in truth.values())
    kinds = {v["category"].split(":")[0] for v in truth.values()}
    assert {"adult-frontal-chest", "lateral", "pediatric", "ct", "mr", "blank", "duplicate-of",
            "multiframe", "spine", "secondary-capture", "truncated"} == kinds
    for uid, v in truth.items():
        assert v["expect_selected"] == (v["category"] == "adult-frontal-chest"), uid


def test_selection_truth_agrees_with_headers_and_pixels(truth, items):
    """Each category is checked against what the file says, independently of the generator."""
    by_uid = {i.ds.SOPInstanceUID: i for i in items}
    for uid, v in truth.items():
        kind = v["category"]
        if uid not in by_uid:
            continue  # the truncated file (checked above)
        ds = by_uid[uid].ds
        frames = int(ds.get("NumberOfFrames", 1))
        if kind == "ct":
            assert (ds.SOPClassUID, ds.Modality, ds.BodyPartExamined) == (CT, "CT", "CHEST") and frames == 1
        elif kind == "mr":
            assert (ds.SOPClassUID, ds.Modality) == (MR, "MR") and frames == 1
        elif kind == "multiframe":
            assert ds.SOPClassUID == RF and frames == 3 and ds.pixel_array.shape == (3, ds.Rows, ds.Columns)
            assert not np.array_equal(ds.pixel_array[0], ds.pixel_array[1])
        elif kind == "secondary-capture":
            assert ds.SOPClassUID == SC
        elif kind == "spine":
            assert ds.SOPClassUID in (CR, DX) and ds.BodyPartExamined.endswith("SPINE")
        else:  # chest radiographs
            assert ds.SOPClassUID in (CR, DX) and ds.BodyPartExamined in FRONTAL_CHEST and frames == 1, uid
            px = ds.pixel_array
            assert (px.min() == px.max()) == (kind == "blank"), uid
            assert (_age_years(ds) < 18) == (kind == "pediatric"), uid
            assert int(ds.PatientAge[:3]) == _age_years(ds)
            frontal = ds.ViewPosition in ("PA", "AP")
            assert frontal == (kind != "lateral"), uid
    pediatric = [by_uid[u].ds for u, v in truth.items() if v["category"] == "pediatric"]
    assert pediatric and all(ds.PatientAge == "006Y" for ds in pediatric)
    selected = [by_uid[u].ds for u, v in truth.items() if v["expect_selected"]]
    assert len(selected) >= 10 and {ds.BodyPartExamined for ds in selected} == set(FRONTAL_CHEST)


def test_duplicate_is_the_same_picture_in_another_syntax(truth, items):
    by_uid = {i.ds.SOPInstanceUID: i.ds for i in items}
    pairs = [(u, v["category"].split(":", 1)[1]) for u, v in truth.items() if v["category"].startswith("duplicate-of:")]
    assert len(pairs) == 1
    for copy_uid, kept_uid in pairs:
        copy, kept = by_uid[copy_uid], by_uid[kept_uid]
        assert truth[kept_uid] == {"category": "adult-frontal-chest", "expect_selected": True}
        assert (copy.PatientID, copy.StudyInstanceUID) == (kept.PatientID, kept.StudyInstanceUID)
        assert copy.file_meta.TransferSyntaxUID != kept.file_meta.TransferSyntaxUID
        assert {copy.file_meta.TransferSyntaxUID, kept.file_meta.TransferSyntaxUID} == {ExplicitVRLittleEndian,
                                                                                        JPEG2000Lossless}
        assert np.array_equal(copy.pixel_array, kept.pixel_array)


def test_ct_and_mr_derive_from_pydicoms_bundled_files(truth, items):
    from pydicom.data import get_testdata_file

    by_uid = {i.ds.SOPInstanceUID: i.ds for i in items}
    for kind, name, count in (("ct", "CT_small.dcm", 3), ("mr", "MR_small.dcm", 2)):
        source = pydicom.dcmread(get_testdata_file(name, download=False)).pixel_array
        series = sorted((by_uid[u] for u, v in truth.items() if v["category"] == kind), key=lambda d: d.InstanceNumber)
        assert len(series) == count and len({d.SeriesInstanceUID for d in series}) == 1
        assert len({d.FrameOfReferenceUID for d in series}) == 1
        assert np.array_equal(series[0].pixel_array, source)
        assert all(not np.array_equal(series[0].pixel_array, d.pixel_array) for d in series[1:])


# -- planted_phi.json ----------------------------------------------------------------
def test_planted_phi_is_complete_and_present(planted, items):
    strings, uids = planted["strings"], set(planted["uids"])
    assert strings == sorted(set(strings)) and all(len(s) >= 4 for s in strings)
    corpus = b"\n".join(p.read_bytes() + p.relative_to(SAMPLE).as_posix().encode()
                        for p in EXPORT.rglob("*") if p.is_file())
    assert [s for s in strings if s.encode() not in corpus] == []
    assert [u for u in uids if u.encode() not in corpus] == []
    for item in items:
        ds = item.ds
        assert {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID} <= uids
        for value in (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.AccessionNumber, ds.StudyID,
                      ds.PatientAddress, ds.PatientTelephoneNumbers, str(ds.OperatorsName), ds.InstitutionName,
                      ds.StationName, ds.file_meta.SourceApplicationEntityTitle):
            assert value in strings, value
    assert "CHEST" not in strings


# -- benchmark helper ----------------------------------------------------------------
@pytest.mark.parametrize("ts,photometric", [(JPEG2000Lossless, "MONOCHROME1"),
                                            (ExplicitVRLittleEndian, "MONOCHROME2")])
def test_write_radiograph(tmp_path, ts, photometric):
    kwargs = dict(index=7, rows=300, cols=260, transfer_syntax=ts, photometric=photometric, seed=3)
    result = write_radiograph(tmp_path / "a.dcm", **kwargs)
    write_radiograph(tmp_path / "b.dcm", **kwargs)
    data = (tmp_path / "a.dcm").read_bytes()
    assert data == (tmp_path / "b.dcm").read_bytes()
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    assert ds.file_meta.TransferSyntaxUID == ts and ds.PhotometricInterpretation == photometric
    assert ds.pixel_array.shape == (300, 260)
    assert str(ds.PatientName) in result["strings"] and ds.SOPInstanceUID in result["uids"]
    assert ds.private_block(0x0029, "HOSPITAL_PACS 1.0")[0x10].value == str(ds.PatientName)
    assert all(s.encode() in data for s in result["strings"])
    other = write_radiograph(tmp_path / "c.dcm", **{**kwargs, "index": 8})
    assert set(other["uids"]).isdisjoint(result["uids"])
