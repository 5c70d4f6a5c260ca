"""The privacy bench's instrument (bench/privacy_corpus.py + bench/privacy_bench.py) measured
on known trees: the raw corpus leaks in every place it plants, a tree with the planted
elements stripped by hand does not, and the truth never lands inside the corpus."""
from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pydicom
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import privacy_bench as pb  # noqa: E402
from privacy_corpus import HIDDEN_KINDS, build  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    work = tmp_path_factory.mktemp("privacy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = build(work, None)            # pydicom's bundled files only (pydicom-data optional)
    return work, truth


def test_corpus_is_adversarial_and_truth_stays_outside(corpus):
    work, truth = corpus
    files = truth["files"]
    assert len(files) >= 40 and len({f["patient"] for f in files}) >= 8
    assert len(truth["kinds"]) >= 25 and set(HIDDEN_KINDS) <= set(truth["kinds"])
    assert len({f["transfer_syntax"] for f in files}) >= 8            # implicit, explicit, BE, deflated, 4+ codecs
    assert len({json.dumps(f["charset"]) for f in files}) == 5
    assert {f["issuer"] for f in files} == {True, False}
    assert len({f["patient_id_written"] for f in files if f["patient"] == "P1"}) == 2    # 0077123 and 77123
    assert (work / "truth.json").exists() and not list((work / "corpus").rglob("*.json"))
    again = json.loads((work / "truth.json").read_text())
    assert again["files"] == files


def test_checker_finds_every_planted_place_in_the_raw_corpus(corpus):
    work, truth = corpus
    inputs = {f["path"]: set() for f in truth["files"]}
    r = pb.check_tree(work / "corpus", truth, inputs, pb.Matcher(pb.needles(truth)), pb.x_tags())
    assert r["files_written"] == len(truth["files"]) == r["files_leaking"] == r["mapped_outputs"]
    locs = r["locations"]
    for where in ("path", "PatientName", "OwnerID", "ImageID", "DeviceID", "NTPSourceAddress", "RetrieveURL",
                  "PixelDataProviderURL", "ReferencedSeriesSequence[].RetrieveURI", "AcquisitionProtocolName",
                  "PerformedProcedureTypeDescription", "StorageMediaFileSetID", "WindowCenterWidthExplanation",
                  "ProcedureCodeSequence[].CodeMeaning", "BadPixelImage", "SmallestImagePixelValue",
                  "TimeOfGainCalibration", "ExtendedOffsetTable", "DataSetTrailingPadding", "(8002,0010)",
                  "(0018,FFF0)", "(0029,1010)", "SourceApplicationEntityTitle", "PrivateInformation",
                  "RequestedProcedureDescriptionTrial", "WaveformSequence[].MultiplexGroupLabel"):
        assert locs.get(where, 0) > 0, where
    assert any(k.endswith("ContactDisplayName") and k.count("[]") == 5 for k in locs)
    assert r["needle_kinds"].get("name-ideographic", 0) > 0              # ISO 2022 / GB18030 names seen
    assert r["private_tags"] > 0 and r["x_attributes"] > 0
    assert r["patients_split"] == 1                                      # P1 written with and without zeros


def test_checker_is_quiet_on_a_cleaned_tree_and_sees_path_and_date_faults(corpus, tmp_path):
    work, truth = corpus
    out = tmp_path / "clean"
    ns = pb.needles(truth)
    for i, f in enumerate(truth["files"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(work / "corpus" / f["path"])
        keep = {"PixelData", "SOPClassUID", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                "SamplesPerPixel", "PhotometricInterpretation", "PixelRepresentation", "NumberOfFrames",
                "PlanarConfiguration"}
        for elem in list(ds):
            if elem.keyword not in keep:
                del ds[elem.tag]
        ds.file_meta = pydicom.dataset.FileMetaDataset({k: v for k, v in ds.file_meta.items()
                                                        if k in (0x00020001, 0x00020002, 0x00020003, 0x00020010)})
        ds.file_meta.MediaStorageSOPInstanceUID = f"2.25.{1000 + i}"
        ds.PatientID = f"SUB{f['patient']}"
        ds.StudyDate = f["study_date"]
        ds.preamble = b"\0" * 128
        target = out / f"{i:03d}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(target, enforce_file_format=True)
    study_dates = {n.digits for n in ns if n.kind == "study-date"}
    ns = [n for n in ns if n.digits not in study_dates]               # kept dates are the test's own choice
    truth2 = dict(truth, needles=[n for n in truth["needles"] if n["text"] not in study_dates])
    inputs = {f["path"]: set() for f in truth["files"]}
    r = pb.check_tree(out, truth2, inputs, pb.Matcher(ns), pb.x_tags())
    assert r["leak_locations"] == 0 and r["x_attributes"] == 0 and r["private_tags"] == 0
    assert r["patients_split"] == r["patients_merged"] == 0
    assert r["patients_with_broken_intervals"] == 0
    # now a name in a folder, and one of P1's studies moved alone
    victim = next(i for i, f in enumerate(truth["files"]) if f["patient"] == "P1")
    (out / "Nguyen_Van_Thang").mkdir()
    shutil.move(out / f"{victim:03d}.dcm", out / "Nguyen_Van_Thang" / "x.dcm")
    ds = pydicom.dcmread(out / "Nguyen_Van_Thang" / "x.dcm")
    ds.StudyDate = "20000101"
    ds.save_as(out / "Nguyen_Van_Thang" / "x.dcm")
    r = pb.check_tree(out, truth2, inputs, pb.Matcher(ns), pb.x_tags())
    assert r["leak_locations"] == 1 and r["locations"] == {"path": 1}
    assert r["patients_with_broken_intervals"] == 1
