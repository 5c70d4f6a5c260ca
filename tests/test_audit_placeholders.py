"""`vindr audit` never flags vindr's own substitutes or generic placeholders (issue #9): an
input already stamped "ANON" / "UNKNOWN" by another tool used to "leak" into every output's
`ANON^…` PatientName; a real name that merely contains such a word is still found.
Built from pydicom's real CT_small and MR_small."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file

from helpers import renumber, run_cli, save
from vindr_cli.deid.substitutes import Substitutes
from vindr_cli.deid.terms import build_terms, is_placeholder, tokens
from vindr_cli.resources import schema_path

PHI_KINDS = {"phi", "phi-bytes", "phi-path"}


def _write(src: str, dest: Path, n: int, **values) -> None:
    ds = pydicom.dcmread(get_testdata_file(src, download=False))
    for k, v in values.items():
        setattr(ds, k, v)
    save(renumber(ds, f"1.2.826.0.1.3680043.10.543.88.{n}"), dest)


@pytest.fixture
def anonymized(tmp_path: Path, key_file: Path) -> tuple[Path, Path, list[dict]]:
    """An export whose first file another tool already stamped ANON / UNKNOWN (and N/A, a
    dummy birth date, a 2-digit study ID), and a second file of a real patient whose name
    contains ANON as a part of a word; anonymized by vindr. (OUTPUT, linkage, ok rows)."""
    root = tmp_path / "export"
    _write("CT_small.dcm", root / "ct.dcm", 1, PatientName="ANON", PatientID="UNKNOWN", PatientBirthDate="19000101",
           OtherPatientIDs="N/A", StudyID="12", AccessionNumber="ANONYMIZED", ReferringPhysicianName="UNKNOWN")
    # (MR_small's InstitutionName "TOSHIBA" is also in its kept Manufacturer "TOSHIBA_MEC": a finding
    # that has nothing to do with placeholders, so the institution is another one here)
    _write("MR_small.dcm", root / "mr.dcm", 2, PatientName="ANONA^MARIA", PatientID="MR0042",
           PatientBirthDate="19761023", InstitutionName="BENH VIEN 108")
    out = tmp_path / "anon"
    run_cli("anonymize", root, out, "--key", key_file, "-j", "1")
    rows = [r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["status"] == "ok"]
    assert len(rows) == 2
    link = tmp_path / "anon.linkage.parquet"
    originals = {r["original_patient_name"] for r in pq.read_table(link).to_pylist()}
    assert originals == {"ANON", "ANONA^MARIA"}          # the audit has both to search for
    return out, link, rows


def _audit(out: Path, link: Path) -> dict:
    p = run_cli("audit", out, "--linkage", link, "--json", check=False)
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout)


def _phi(doc: dict) -> list[dict]:
    return [f for f in doc["findings"] if f["kind"] in PHI_KINDS]


def test_own_output_of_a_placeholder_input_raises_no_phi_finding(anonymized):
    out, link, rows = anonymized
    ct = next(r for r in rows if r["modality"] == "CT")
    ds = pydicom.dcmread(out / ct["output"])
    assert str(ds.PatientName).startswith("ANON^")           # the substitute that the input's "ANON" is inside
    doc = _audit(out, link)
    assert doc["linkage_table_used"] and doc["original_values_searched"] > 0
    assert _phi(doc) == [], _phi(doc)
    assert doc["findings"] == []                             # the user is not stuck: exit 0


def test_a_planted_real_name_is_still_found(anonymized):
    out, link, rows = anonymized
    ct = next(r for r in rows if r["modality"] == "CT")
    target = out / ct["output"]
    ds = pydicom.dcmread(target)
    ds.ImageComments = "ANON UNKNOWN N/A 12"                  # placeholders only: still nothing
    ds.save_as(target)
    assert _phi(_audit(out, link)) == []
    ds.ImageComments = "reviewed with Anona Maria"           # the real name, in another file than its own
    ds.save_as(target)
    found = _phi(_audit(out, link))
    assert {f["kind"] for f in found} >= {"phi", "phi-bytes"}
    assert any(f["where"] == ct["output"] and "ImageComments" in f["detail"] for f in found)
    assert all("Maria" not in json.dumps(f) and "MARIA" not in json.dumps(f) for f in found)
    ds.ImageComments = "Maria"                               # one component of the name is enough
    ds.save_as(target)
    assert any("ImageComments" in f["detail"] for f in _phi(_audit(out, link)))
    ds.ImageComments = "MR0042"                              # the real patient's ID
    ds.save_as(target)
    assert any("ImageComments" in f["detail"] for f in _phi(_audit(out, link)))


@pytest.mark.parametrize("value", ["ANON", "anon", "Anonymous", "ANONYMIZED", "UNKNOWN", "NONE", "NULL", "N/A", "NA",
                                   "n.a.", "TEST", "PATIENT", "REMOVED", "DELETED", "^", "^^^", "7", "42", "19000101",
                                   "ANON^UNKNOWN", "TEST PATIENT", "ANON^12", "", "  "])
def test_placeholders_are_never_searched(value):
    assert is_placeholder(value)
    assert not build_terms([value], include_dates=True)


def test_vindrs_own_substitutes_are_never_searched():
    subs = Substitutes(b"k" * 32)
    for own in [subs.patient_name("nid:1"), subs.patient_id("nid:1"), subs.accession("x"), subs.study_id("y")]:
        assert is_placeholder(own), own
        assert not build_terms([own], include_dates=True)
        # and the word an earlier tool's "ANON" shares with them is not found inside them
        assert not build_terms(["ANON"], include_dates=True).found_in(tokens(own))


@pytest.mark.parametrize("value, text, found", [
    ("ANONA^MARIA", "ANON^ABCDEFGHIJKLMNO", False),
    ("ANONA^MARIA", "Anona Maria", True),
    ("ANONA^MARIA", "maria", True),
    ("ANON^MARIA", "ANON^ABCDEFGHIJKLMNO", False),
    ("ANON^MARIA", "Maria", True),
    ("UNKNOWN^HOANG", "Hoàng", True),
    ("12345", "study 12345", True),
    ("19761023", "19761023", True),
    ("0077123", "0077123", True),
    ("0077123", "window 77123", True),          # the same ID without its leading zeros (deid.identity)
    ("LE^AN", "Lê An", True),                      # a short real name is no placeholder
    ("12 Unknown Street", "Unknown Street 12", True),
    ("12 Unknown Street", "street", False),       # as specific as the value: every word
])
def test_real_values_holding_placeholder_words_are_still_found(value, text, found):
    assert not is_placeholder(value)
    assert build_terms([value], include_dates=True).found_in(tokens(text)) is found


def test_placeholder_list_is_data_with_its_source():
    text = schema_path("deid", "placeholders.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert {"ANON", "UNKNOWN", "NA"} <= set(data["values"]) and "19000101" in data["dates"]
    assert "Source:" in text and "ANON" in data["own_words"]


REAL_FILES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm", "rtdose.dcm", "waveform_ecg.dcm",
              "liver_1frame.dcm", "693_J2KI.dcm", "SC_rgb_rle.dcm", "examples_overlay.dcm", "MR_small_bigendian.dcm",
              "image_dfl.dcm", "test-SR.dcm", "reportsi.dcm"]


@pytest.mark.parametrize("profile", ["basic", "vindr"])
def test_real_files_audit_clean_with_their_linkage(tmp_path, key_file, profile):
    """Real public files of many IODs (CT, MR, SEG, RT, ECG, SR, SC; big endian, deflated),
    anonymized, then audited with their linkage table: no finding at all. A custodian is not
    stuck on false alarms: a station named like its scanner's maker (MR_small's TOSHIBA),
    template names ("Last Name^First Name" vs "Manufacturer name here"), vindr's own codes,
    dummies and marks. The same audit still finds a planted original value (last lines)."""
    import shutil

    src = tmp_path / "in"
    src.mkdir()
    for name in REAL_FILES:
        shutil.copy(get_testdata_file(name, download=False), src / name)
    out = tmp_path / "out"
    run_cli("anonymize", src, out, "--key", key_file, "--allow-burned-in", "--profile", profile, "-j", "1")
    link = tmp_path / "out.linkage.parquet"
    doc = _audit(out, link)
    assert doc["findings_total"] == 0, doc["findings_by_kind"]
    everything = pq.read_table(link).to_pylist()
    assert sorted(r["input_path"] for r in everything) == sorted(REAL_FILES)
    rows = [r for r in everything if r.get("output")]     # MR_small_bigendian repeats MR_small's SOP UID
    assert len(rows) == len(REAL_FILES) - 1
    ct = next(r for r in rows if r["input_path"] == "CT_small.dcm")
    ds = pydicom.dcmread(out / ct["output"])
    ds.ImageComments = f"seen by {ct['original_patient_name']}"
    ds.save_as(out / ct["output"])
    assert {f["kind"] for f in _phi(_audit(out, link))} == {"phi", "phi-bytes"}
