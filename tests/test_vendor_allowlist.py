"""Manufacturer and model names are kept only when they name a known vendor and a plausible
model (schemas/deid/vendors.toml): a person's name shaped like a vendor is replaced, the
vendor strings of real public files (pydicom's test files, pydicom-data's CR films) are kept
byte for byte, and `vindr audit` agrees with the anonymizer."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file

from helpers import save
from real_images import from_wheel
from vindr_cli.deid import policy
from vindr_cli.deid.audit import audit
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile

# (file, where it comes from): the vendor strings are read from the files, never typed here
REAL = ["CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm", "JPEG2000.dcm", "examples_rgb_color.dcm",
        "examples_palette.dcm", "RG1_UNCR.dcm", "RG3_UNCR.dcm"]
NAMES_AS_VENDORS = ["NGUYEN VAN AN", "Dr Smith", "Dr. Smith Medical Systems", "NGUYEN VAN AN Co., Ltd",
                    "Smith Healthcare GmbH", "Tran Minh Khoa Inc.", "HEALTHCARE SMITH", "Manufacturer name here"]
NAMES_AS_MODELS = ["NGUYEN VAN AN", "John Smith", "Dr Smith", "Dr. Smith 2", "BS An", "Mr Nguyen",
                   "Treatment Planning System name here", "LE AN"]


def _read(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _real(name: str, tmp_path: Path):
    if name.startswith("RG"):
        return _read(from_wheel(name, tmp_path))
    p = get_testdata_file(name, download=False)
    if p is None:
        pytest.skip(f"pydicom test file {name} not bundled")
    return _read(p)


def _anonymize(tmp_path: Path, key_file: Path, datasets: dict, profile: str = "basic") -> tuple[Path, dict]:
    src = tmp_path / "in"
    for name, ds in datasets.items():
        save(ds, src / name)
    out = tmp_path / "out"
    anonymize(src, out, key_path=key_file, profile=load_profile(profile), workers=1, allow_burned_in=True,
              burned_in="off")
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows]
    # the linkage table (custodian only) says which input each output came from
    names = {r["input_key"]: Path(r["input_path"]).name for r in pq.read_table(out.parent / "out.linkage.parquet").to_pylist()}
    return out, {names[r["input_key"]]: r for r in rows}


def test_vendor_rule_on_values():
    for name in NAMES_AS_VENDORS:
        assert not policy.vendor_ok(name), name
    for kept in ("GE MEDICAL SYSTEMS", "G.E. Medical Systems", "TOSHIBA_MEC", "FUJI PHOTO FILM CO. LTD.",
                 "Philips Medical Systems, Inc.", "Agfa-Gevaert AG", "Canon Medical Systems Corporation",
                 "SIEMENS Healthineers", "Konica Minolta, Inc.", "United Imaging Healthcare", "DRGEM"):
        assert policy.vendor_ok(kept), kept
    for name in NAMES_AS_MODELS:
        assert not policy.model_ok(name), name
    for kept in ("LightSpeed Plus", "Eclipse 1.5T", "Cassette Holder Type 9840 500 70201", "SOMATOM Definition AS+",
                 "FV-DR 3543", "MRT50H1", "EPIQ 7C", "SSD-4000"):
        assert policy.model_ok(kept), kept


def test_real_vendor_strings_are_kept(tmp_path, key_file):
    datasets = {n: _real(n, tmp_path / "wheel") for n in REAL}
    before = {n: (str(ds.get("Manufacturer", "")), str(ds.get("ManufacturerModelName", ""))) for n, ds in datasets.items()}
    assert all(m for m, _ in before.values())                 # each file names its vendor
    out, rows = _anonymize(tmp_path, key_file, datasets)
    for n, (maker, model) in before.items():
        o = _read(out / rows[n]["output"])
        assert o.Manufacturer == maker, n
        assert str(o.get("ManufacturerModelName", "")) == model, n
    assert audit(out).counts().get(policy.UNSAFE_TEXT, 0) == 0


@pytest.mark.parametrize("profile", ["basic", "vindr"])
def test_names_shaped_like_vendors_are_replaced(tmp_path, key_file, profile):
    datasets = {}
    for i, name in enumerate(NAMES_AS_VENDORS):
        ds = _real("CT_small.dcm", tmp_path)
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{i + 1}"
        ds.Manufacturer = name
        datasets[f"v{i}.dcm"] = ds
    for i, name in enumerate(NAMES_AS_MODELS):
        ds = _real("CT_small.dcm", tmp_path)           # a real vendor, a person in the model
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{100 + i}"
        ds.ManufacturerModelName = name
        datasets[f"m{i}.dcm"] = ds
    out, rows = _anonymize(tmp_path, key_file, datasets, profile)
    for n, row in rows.items():
        o = _read(out / row["output"])
        data = (out / row["output"]).read_bytes()
        planted = datasets[n].Manufacturer if n.startswith("v") else datasets[n].ManufacturerModelName
        assert str(planted).encode() not in data, n
        assert str(o.get("Manufacturer", "")) in ("", "ANONYMOUS", "GE MEDICAL SYSTEMS"), n
        if n.startswith("v"):                         # an unknown maker takes its model with it
            assert str(o.get("ManufacturerModelName", "")) in ("", "ANONYMOUS"), n
        if profile == "basic":
            assert any(k.endswith("unsafe-text") for k in json.loads(row["actions"])), n


def test_audit_reports_a_name_planted_as_vendor(tmp_path, key_file):
    out, rows = _anonymize(tmp_path, key_file, {"ct.dcm": _real("CT_small.dcm", tmp_path)})
    path = out / rows["ct.dcm"]["output"]
    assert audit(out).counts().get(policy.UNSAFE_TEXT, 0) == 0
    o = _read(path)
    o.Manufacturer = "Smith Healthcare GmbH"
    save(o, path)
    report = audit(out)
    hits = [f for f in report.findings if f.kind == policy.UNSAFE_TEXT]
    assert hits and any("(0008,0070)" in f.detail for f in hits)
    assert "Smith" not in report.to_json()
    o.Manufacturer = "GE MEDICAL SYSTEMS"              # a real vendor, a name as the model
    o.ManufacturerModelName = "John Smith"
    save(o, path)
    hits = [f for f in audit(out).findings if f.kind == policy.UNSAFE_TEXT]
    assert any("(0008,1090)" in f.detail for f in hits) and not any("(0008,0070)" in f.detail for f in hits)
