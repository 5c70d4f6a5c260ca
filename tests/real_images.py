"""Real public DICOM images for the QC, hash and near-duplicate tests: pydicom's bundled
test files (always here; only names that resolve locally, never a download) and, where the
pydicom-data package is installed (the test extra), its CR chest and extremity films; else
read from a pydicom-data wheel at /tmp/pdd (or $VINDR_PYDICOM_DATA) with zipfile."""
from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

WHEEL = Path(os.environ.get("VINDR_PYDICOM_DATA", "/tmp/pdd/pydicom_data-1.0.0-py3-none-any.whl"))
# name -> what it is (all MONOCHROME2 but the CRs)
LOCAL = {"examples_overlay.dcm": "MR 300x484", "693_J2KI.dcm": "CT 512x512 J2K lossy",
         "CT_small.dcm": "CT 128x128", "MR_small.dcm": "MR 64x64", "JPEG2000.dcm": "NM whole body 1024x256"}
WHEEL_FILES = {"RG1_UNCR.dcm": "CR chest PA 1955x1841 MONOCHROME1", "RG1_J2KI.dcm": "the same, J2K lossy",
               "RG3_UNCR.dcm": "CR extremity 1760x1760 MONOCHROME1, collimated"}


def local(name: str) -> Path:
    p = get_testdata_file(name, download=False)
    if p is None:
        pytest.skip(f"pydicom test file {name} not bundled")
    return Path(p)


def from_wheel(name: str, dest: Path) -> Path:
    """A pydicom-data file: the installed package's (never a download), else extracted under
    dest from the wheel (skips when neither is here)."""
    installed = get_testdata_file(name, download=False)
    if installed is not None:
        return Path(installed)
    if not WHEEL.is_file():
        pytest.skip("pydicom-data wheel not present")
    out = dest / name
    if not out.is_file():
        with zipfile.ZipFile(WHEEL) as z:
            out.write_bytes(z.read(f"data_store/data/{name}"))
    return out


def real(name: str, dest: Path) -> Path:
    return from_wheel(name, dest) if name in WHEEL_FILES else local(name)
