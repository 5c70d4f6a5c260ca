"""The audit's 15 `phi` + 15 `phi-bytes` findings on anonymized public test files (issue 13, auditfp).

`vindr anonymize --burned-in off --allow-burned-in` of sample_dicoms/export + pydicom's and
deid-data's DICOM files, then `vindr audit --no-pixels` with the linkage table: 14 files reported in
Manufacturer (and their header bytes), 1 in BodyPartExamined. Each matched a value of ANOTHER file
of the corpus, never the file's own:
- pydicom's ExplVR_BigEnd.dcm has a GE vendor name as its InstitutionName (its own Manufacturer is
  GE spelled with dots, so the anonymizer's rule that drops a maker's own words from the searched
  values did not apply): every GE file's kept Manufacturer (CT_small.dcm, JPEG-lossy.dcm, the DICOMDIR
  test CTs...) matched it;
- deid-data's RGB_IMAGE.dcm has a body part word as its BranchOfService: examples_overlay.dcm's
  BodyPartExamined, the same listed word, matched it.
(Values are not written here; the tests read them from the files.)
False alarms: each output is made from its own input only (same bytes with or without the other
file in the run), and the value is a word of a closed list the policy keeps (a listed vendor, a
listed body part). The audit now seeks only the file's own linkage values in such a value (and in
its bytes where encoded as that element); other files' values are still sought everywhere else,
and any value that is not a listed word is searched as before. Tests use the real files (one
planted value, BranchOfService, as RGB_IMAGE.dcm has it, so that deid-data is not needed).
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest

from helpers import key_file_in
from test_safe_default import real
from vindr_cli.deid.audit import audit
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile


def _save(ds, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("auditfp")
    export = base / "export"
    for name in ("CT_small.dcm", "ExplVR_BigEnd.dcm", "examples_overlay.dcm"):
        _save(real(name), export / name)
    other = real("MR_small.dcm")
    other.BranchOfService = real("examples_overlay.dcm").BodyPartExamined   # as deid-data's RGB_IMAGE.dcm has it
    _save(other, export / "branch.dcm")
    key = key_file_in(base)
    out = base / "anon"
    summary = anonymize(export, out, key_path=key, profile=load_profile("basic"), workers=1,
                        allow_burned_in=True, burned_in="off")
    links = {Path(r["input_path"]).name: r for r in pq.read_table(base / "anon.linkage.parquet").to_pylist()}
    assert all(r["output"] for r in links.values()), summary
    return {"out": out, "linkage": base / "anon.linkage.parquet", "links": links}


def _tree(world, tmp_path) -> Path:
    out = tmp_path / "anon"
    shutil.copytree(world["out"], out)
    return out


def _edit(path: Path, change) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)


def _found(report) -> set[tuple[str, str, str]]:
    return {(f.kind, f.where, f.detail) for f in report.findings}


def test_the_corpus_values_are_there(world):
    """The premise: the other file's value equals this file's kept vocabulary word."""
    def value(name, kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(pydicom.dcmread(world["out"] / world["links"][name]["output"]).get(kw, ""))
    assert value("CT_small.dcm", "Manufacturer").upper() in {t.upper() for t in world["links"]["ExplVR_BigEnd.dcm"]["phi_terms"]}
    assert value("examples_overlay.dcm", "BodyPartExamined") in world["links"]["branch.dcm"]["phi_terms"]


def test_a_listed_vendor_or_body_part_equal_to_another_files_value_is_no_finding(world):
    """On main: phi + phi-bytes in CT_small's Manufacturer and examples_overlay's BodyPartExamined."""
    report = audit(world["out"], world["linkage"], pixels=False)
    assert report.counts() == {}


def test_another_files_value_in_manufacturer_is_still_found(world, tmp_path):
    """A planted real leak in the same element: examples_overlay's institution (no vendor) in
    CT_small's Manufacturer is a `phi` finding there and in its bytes."""
    out = _tree(world, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        place = str(pydicom.dcmread(get_input("examples_overlay.dcm")).InstitutionName)
    rel = world["links"]["CT_small.dcm"]["output"]
    _edit(out / rel, lambda ds: setattr(ds, "Manufacturer", place))
    found = _found(audit(out, world["linkage"], pixels=False))
    assert ("phi", rel, "an original identifying value in element (0008,0070) Manufacturer") in found
    assert ("phi-bytes", rel, "an original identifying value in the header bytes") in found


def test_another_files_value_in_body_part_is_still_found(world, tmp_path):
    """A planted real leak in BodyPartExamined: CT_small's patient ID (not a listed body part)."""
    out = _tree(world, tmp_path)
    pid = world["links"]["CT_small.dcm"]["original_patient_id"]
    rel = world["links"]["examples_overlay.dcm"]["output"]
    _edit(out / rel, lambda ds: setattr(ds, "BodyPartExamined", pid))
    found = _found(audit(out, world["linkage"], pixels=False))
    assert ("phi", rel, "an original identifying value in element (0018,0015) BodyPartExamined") in found
    assert ("phi-bytes", rel, "an original identifying value in the header bytes") in found


def test_the_files_own_value_in_a_vocabulary_element_is_still_found(world, tmp_path):
    """The file's own linkage values are still sought in a listed word's element: the body part
    word planted into the BranchOfService file's own BodyPartExamined is its own value."""
    out = _tree(world, tmp_path)
    rel = world["links"]["branch.dcm"]["output"]
    part = str(real("examples_overlay.dcm").BodyPartExamined)
    _edit(out / rel, lambda ds: setattr(ds, "BodyPartExamined", part))
    found = _found(audit(out, world["linkage"], pixels=False))
    assert ("phi", rel, "an original identifying value in element (0018,0015) BodyPartExamined") in found
    assert ("phi-bytes", rel, "an original identifying value in the header bytes") in found


def test_a_vocabulary_word_outside_its_element_is_still_found_in_the_bytes(world, tmp_path):
    """Only the bytes encoded as the vocabulary element are left out of the search of other files'
    values: the same words in the preamble of CT_small's output are a `phi-bytes` finding."""
    out = _tree(world, tmp_path)
    rel = world["links"]["CT_small.dcm"]["output"]
    term = str(real("ExplVR_BigEnd.dcm").InstitutionName)

    def plant(ds):
        ds.preamble = (b" " + term.encode() + b" ").ljust(128, b"\0")
    _edit(out / rel, plant)
    found = _found(audit(out, world["linkage"], pixels=False))
    assert ("phi-bytes", rel, "an original identifying value in the header bytes") in found


def get_input(name: str) -> str:
    from pydicom.data import get_testdata_file
    path = get_testdata_file(name, download=False)
    assert path is not None
    return path
