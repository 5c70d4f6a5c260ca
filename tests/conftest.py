"""Shared fixtures: a private key file, small real DICOM files made with pydicom."""
from __future__ import annotations

import os

# One OpenMP thread for torch and numpy, here and in the CLI subprocesses (which inherit it):
# on a 2-core machine busy with other work, two threads spin-wait on each other and a training
# step became 5-10x slower. Set before numpy or torch is imported; an explicit value wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Variables of the shell that started pytest which change what vindr does or prints (a key file
# of one's own, tracebacks, a progress bar or colour codes in piped output): the tests assert
# vindr's defaults and set these themselves where a test is about one. Dropped at import, before
# pytest-xdist starts its workers, so the workers and every CLI subprocess inherit the defaults
# too (with FORCE_COLOR=1 in the shell, stderr lines read by test_cli_errors carried colour codes).
for _name in ("VINDR_KEY", "VINDR_DEBUG", "VINDR_PROGRESS", "FORCE_COLOR", "NO_COLOR", "CLICOLOR_FORCE",
              "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
    os.environ.pop(_name, None)

# Ctrl-C as a terminal sends it: a shell script started in the background (`.ci/run &`, a CI
# runner's job) runs its commands with SIGINT ignored, every child inherits that, and a Python
# started with SIGINT ignored never raises KeyboardInterrupt -- the tests that send SIGINT to a
# CLI process (baseline, review) then wait on a process that cannot hear it. A handled signal is
# reset to the default in an exec'd child, so this process's handler gives them the default back.
import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless  # noqa: E402

from helpers import key_file_in  # noqa: E402

# Hypothesis: no per-example deadline and no "too slow" health check, so a loaded or slow
# machine cannot fail a property (both only measure speed). Loaded here, before any test
# module is imported, so a test's own @settings(...) inherits these values.
settings.register_profile("vindr", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("vindr")

# The terminal size the run was started with. Under pytest-xdist (`make test` runs two workers)
# the controller's environment gains COLUMNS=80 and LINES=24 after this file is imported and
# before the workers start, so each worker inherits them though the command had none; the CLI
# subprocesses inherit them in turn and rich then wraps long paths in the printed summaries that
# tests read. Captured here, at import, and handed to the workers with their input.
_TERMINAL_ENV = {name: os.environ.get(name) for name in ("COLUMNS", "LINES")}


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: each worker gets the terminal size variables the run was started with."""
    node.workerinput["vindr_terminal_env"] = _TERMINAL_ENV


@pytest.fixture(scope="session", autouse=True)
def terminal_env_as_started(request):
    """Every test, serial or under xdist, sees the terminal size variables the run began with."""
    started = getattr(request.config, "workerinput", {}).get("vindr_terminal_env", _TERMINAL_ENV)
    for name, value in started.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_dicoms"
CR = "1.2.840.10008.5.1.4.1.1.1"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return key_file_in(tmp_path)


def make_cr(path: Path, *, name="Nguyễn^Văn An", pid="PID0001", study="1.2.826.0.1.3680043.10.543.1",
            sop="1.2.826.0.1.3680043.10.543.1.1.1", series="1.2.826.0.1.3680043.10.543.1.1",
            ts=ExplicitVRLittleEndian, study_date="20240115", rows=64, cols=48, seed=0,
            extra=None) -> Path:
    """A small CR image with PHI in standard, nested, private and file meta places."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CR
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = "19650312"
    ds.PatientSex = "M"
    ds.PatientAge = "058Y"
    ds.PatientWeight = "61"
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.ContentDate = study_date
    ds.AccessionNumber = "ACC" + pid[-4:]
    ds.StudyID = "ST" + pid[-4:]
    ds.ReferringPhysicianName = "Trần^Thị Bích"
    ds.InstitutionName = "Bệnh viện Bạch Mai"
    ds.StudyDescription = "Chest for Nguyễn Văn An"
    ds.ImageComments = "patient PID0001 ok"
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "Agfa HealthCare"
    ds.SeriesNumber = "1"
    ds.InstanceNumber = "1"
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    req = Dataset()
    req.RequestedProcedureID = "RP" + pid
    inner = Dataset()
    inner.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    inner.ReferencedSOPInstanceUID = study
    req.ReferencedStudySequence = Sequence([inner])
    req.ScheduledPerformingPhysicianName = "Lê^Hoàng Phúc"
    ds.RequestAttributesSequence = Sequence([req])
    other = Dataset()
    other.PatientID = "OTHER" + pid
    ds.OtherPatientIDsSequence = Sequence([other])
    block = ds.private_block(0x0029, "HOSPITAL_PACS 1.0", create=True)
    block.add_new(0x10, "LO", str(name))
    block.add_new(0x11, "LO", pid)
    ds.add_new(0x60003000, "OW", b"\x00" * 8)
    ds.add_new(0x60000010, "US", 2)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "2048", "4096"
    if extra:
        extra(ds)
    ds.PixelData = arr.tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "BVBM_PACS01"
    meta.ImplementationVersionName = "ACMEPACS_9"
    ds.file_meta = meta
    if ts == RLELossless:
        ds.compress(RLELossless)
    elif ts != ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ts
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


PHI = ["Nguyễn", "Văn An", "PID0001", "19650312", "ACC0001", "ST0001", "Trần", "Bích", "Bạch Mai",
       "Hoàng Phúc", "OTHERPID0001", "BVBM_PACS01", "ACMEPACS_9", "RPPID0001", "1.2.826.0.1.3680043.10.543.1"]


@pytest.fixture
def small_export(tmp_path: Path) -> Path:
    """Two patients, three CR files (explicit, implicit, RLE), a text file, an empty file."""
    root = tmp_path / "export"
    make_cr(root / "NGUYEN VAN AN_PID0001" / "a.dcm")
    make_cr(root / "NGUYEN VAN AN_PID0001" / "b.dcm", sop="1.2.826.0.1.3680043.10.543.1.1.2",
            ts=ImplicitVRLittleEndian, study_date="20240301", seed=1)
    make_cr(root / "TRAN THI B_PID0002" / "c", name="Trần^Thị B", pid="PID0002",
            study="1.2.826.0.1.3680043.10.543.2", series="1.2.826.0.1.3680043.10.543.2.1",
            sop="1.2.826.0.1.3680043.10.543.2.1.1", ts=RLELossless, seed=2)
    (root / "notes.txt").write_text("Nguyễn Văn An report")
    (root / "empty.dcm").write_bytes(b"")
    return root


def cxr_annotation_rows() -> list[dict]:
    """The sample's VinDr-CXR annotation rows (one per reader and finding; every image they
    name is written by anonymize)."""
    import csv

    with open(SAMPLE / "annotations" / "vindr_cxr_annotations.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def sample_truth() -> dict:
    """sample_dicoms/selection_truth.json: original SOPInstanceUID -> category, expect_selected."""
    import json

    return json.loads((SAMPLE / "selection_truth.json").read_text(encoding="utf-8"))


def special_files() -> dict[str, list[str]]:
    """planted_phi.json's special_files: kind -> paths relative to sample_dicoms/."""
    import json

    return json.loads((SAMPLE / "planted_phi.json").read_text(encoding="utf-8"))["special_files"]


def has_tool(name: str) -> bool:
    return shutil.which(name) is not None


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """anonymize -> decode -> split -> release on sample_dicoms, built once per session (tests
    that change the release work on a copy): (base folder, release folder)."""
    from helpers import run_cli

    base = tmp_path_factory.mktemp("rel")
    keys = base / "keys"
    keys.mkdir(mode=0o700)
    anon, images, split, release = base / "anon", base / "images", base / "split", base / "release"
    run_cli("anonymize", SAMPLE / "export", anon, "--key", keys / "k")
    run_cli("decode", anon, images, "--size", "256")
    p = run_cli("split", SAMPLE / "annotations" / "vindr_cxr_annotations.csv", "--meta", anon / "manifest.parquet",
                "--linkage", base / "anon.linkage.parquet", "--test-size", "0.3", "--unit", "patients",
                "--seed", "3", "-o", split)
    assert f"re-keyed {len(cxr_annotation_rows())} annotation rows" in p.stdout
    run_cli("release", anon, "--split", split, "--images", images, "-o", release)
    return base, release
