"""Review 8: the confirmed findings of the review of the day's merged diff, each held by a test
that failed before its fix.

P2 A number array of more than 16 values (deid.terms._MAX_NUMBERS, read as a table) was searched
   only as bytes, so a PatientID 2023123456 stored as one UL value of a 17-value array was found
   neither by the anonymizer (engine._judged_safe) nor by `vindr audit`. A number of six digits
   or more (no US/SS table entry holds one) is now searched as its digits in any array; red team
   7's LUT of every number up to 32766 still holds (tests/test_redteam7.py).
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import key_file_in
from test_safe_default import real

PID_NUMBER = 2023123456


def _read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _save(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)


def _index_values(ds: Dataset, n: int) -> None:
    """The patient's ID as one UL value of an n-value DimensionIndexValues."""
    fc = Dataset()
    fc.DimensionIndexValues = list(range(1, n)) + [PID_NUMBER]
    item = Dataset()
    item.FrameContentSequence = Sequence([fc])
    ds.PerFrameFunctionalGroupsSequence = Sequence([item])


# ------------------------------------------------------------------ P2: an ID in a long number array

@pytest.mark.parametrize("n", [16, 17, 40])
def test_an_id_in_a_long_number_array_is_found_by_the_terms(n):
    from vindr_cli.deid.engine import person_terms
    from vindr_cli.deid.terms import value_views

    ts = person_terms([str(PID_NUMBER), "NGUYEN^VAN AN"])
    vals = list(range(1, n)) + [PID_NUMBER]
    assert ts.found_in_value(*reversed(value_views(vals, "UL")))
    assert ts.found_in_value(*reversed(value_views([float(v) for v in vals], "FD")))
    assert not ts.found_in_value(*reversed(value_views(list(range(1, n + 1)), "UL")))


@pytest.fixture(scope="module")
def id_world(tmp_path_factory):
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    base = tmp_path_factory.mktemp("review8_ids")
    key = key_file_in(base)
    for i, n in enumerate((16, 17)):
        ds = real("CT_small.dcm")
        ds.PatientName, ds.PatientID = "NGUYEN^VAN AN", str(PID_NUMBER)
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.543.88.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        _index_values(ds, n)
        _save(ds, base / "export" / f"n{n}.dcm")
    out = base / "anon"
    anonymize(base / "export", out, key_path=key, profile=load_profile("basic"), workers=1,
              linkage=base / "link.parquet")
    links = {r["input_path"]: r for r in pq.read_table(base / "link.parquet").to_pylist()}
    return {"base": base, "out": out, "links": links}


@pytest.mark.parametrize("n", [16, 17])
def test_the_anonymizer_removes_an_id_in_a_number_array_of_any_length(id_world, n):
    row = id_world["links"][f"n{n}.dcm"]
    assert row["status"] == "ok"
    raw = (id_world["out"] / row["output"]).read_bytes()
    assert PID_NUMBER.to_bytes(4, "little") not in raw


@pytest.mark.parametrize("n", [16, 17])
def test_audit_finds_an_id_planted_in_a_number_array_of_any_length(id_world, n, tmp_path):
    from vindr_cli.deid.audit import audit

    out = tmp_path / "anon"
    shutil.copytree(id_world["out"], out)
    link = id_world["base"] / "link.parquet"
    assert audit(out, link).counts().get("phi", 0) == 0
    target = out / id_world["links"]["n16.dcm"]["output"]
    ds = _read(target)
    _index_values(ds, n)
    ds.save_as(target)
    report = audit(out, link)
    assert report.counts().get("phi") == 1
    assert str(PID_NUMBER) not in repr(report.findings)
