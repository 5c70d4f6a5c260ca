"""`vindr anonymize` (basic profile) keeps every IOD as valid as its input was: dciodvfy finds
no error in an output that it did not find in the input (values normalised away).

The inputs are pydicom's bundled test files, one or more per IOD that they cover and that
dciodvfy reads: CT, MR, Segmentation (multi-frame functional groups), US and US multi-frame,
RT Plan, RT Dose, Basic Text SR, Comprehensive SR, 12-lead ECG waveform, CR (also with
Japanese and Korean multi-byte character sets), Secondary Capture (RLE, JPEG 2000), an MR
with overlays, and a Color Palette (a non-image IOD). pydicom bundles no DX, NM, PET or enhanced
MR/CT file; the Deflated file is left out because dciodvfy cannot read Deflated data sets.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_charset_files, get_palette_files, get_testdata_file
from pydicom.data.data_manager import DATA_ROOT

from helpers import key_hex, run_cli

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")

FILES = {                                      # name in pydicom's test files -> what it is
    "CT_small.dcm": "CT",
    "693_J2KI.dcm": "CT, JPEG 2000",
    "dicomdirtests/98892001/CT2N/6293": "CT",
    "MR_small.dcm": "MR",
    "dicomdirtests/98892003/MR1/4919": "MR",
    "examples_overlay.dcm": "MR with overlays",
    "liver_1frame.dcm": "Segmentation",
    "examples_palette.dcm": "US, palette colour",
    "examples_rgb_color.dcm": "US, RGB",
    "examples_jpeg2k.dcm": "US, JPEG 2000",
    "examples_ybr_color.dcm": "US multi-frame",
    "rtplan.dcm": "RT Plan",
    "rtdose.dcm": "RT Dose",
    "reportsi.dcm": "Basic Text SR",
    "test-SR.dcm": "Comprehensive SR",
    "waveform_ecg.dcm": "12-lead ECG",
    "dicomdirtests/77654033/CR1/6154": "CR",
    "SC_rgb_rle.dcm": "Secondary Capture, RLE",
    "JPEG2000.dcm": "Secondary Capture, JPEG 2000",
    "palettes/hotiron.dcm": "Color Palette (a non-image IOD)",
    "charset_files/chrH31.dcm": "Secondary Capture, Japanese ISO 2022 IR 87 (the CR ones without Pixel Data fail by design)",
    "charset_files/chrI2.dcm": "Secondary Capture, Korean ISO 2022 IR 149",
}


def _local(name: str) -> str:
    """The bundled file (never a download: only names present in pydicom's own folder)."""
    folder, _, base = name.rpartition("/")
    if folder == "palettes":
        found = get_palette_files(base)
    elif folder == "charset_files":
        found = get_charset_files(base)
    elif (Path(DATA_ROOT) / "test_files" / name).is_file():
        found = [get_testdata_file(name, download=False)]
    else:
        found = []
    if len(found) != 1:
        pytest.fail(f"{name} is not among pydicom's bundled files")
    return found[0]


def _errors(path: Path) -> set[str]:
    p = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True, errors="replace", timeout=120)
    out = set()
    for line in (p.stdout + p.stderr).splitlines():
        if line.startswith("Error"):
            out.add(re.sub(r"\s=\s*<[^>]*>", " = <>", line.strip()))    # values differ by design
    return out


def test_outputs_have_no_new_dciodvfy_errors(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in FILES:
        shutil.copy(_local(name), src / name.replace("/", "_"))
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    key = keys / "vindr.key"
    key.write_text(key_hex("cd") + "\n")
    os.chmod(key, 0o600)
    out = tmp_path / "anon"
    run_cli("anonymize", src, out, "--key", key, "--allow-burned-in", "-j", "2")
    rows = pq.read_table(tmp_path / "anon.linkage.parquet").to_pylist()
    assert sorted(r["input_path"] for r in rows) == sorted(n.replace("/", "_") for n in FILES)
    assert {r["status"] for r in rows} == {"ok"}      # under the default --burned-in redact: scanned, some redacted
    new = {}
    for r in rows:
        before, after = _errors(src / r["input_path"]), _errors(out / r["output"])
        if after - before:
            new[r["input_path"]] = sorted(after - before)
    assert new == {}
    # the comparison sees a broken output: the CT output without its Type 1 Modality
    ct = next(out / r["output"] for r in rows if r["input_path"] == "CT_small.dcm")
    ds = pydicom.dcmread(ct)
    del ds.Modality
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    assert any("Modality" in e for e in _errors(broken) - _errors(ct))
