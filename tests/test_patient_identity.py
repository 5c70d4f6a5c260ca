"""One patient per normalised PatientID (issue #9): `0077123` and `77123`, or an issuer in one
file only, are one patient with one substitute and one date shift, so the interval between
that patient's studies is true in the release; `--patient-match strict` keeps them apart; a
resume with the other mode is refused. Built from pydicom's real CT_small and MR_small."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from helpers import renumber, run_cli, save
from vindr_cli.deid.identity import normalise_id, normalise_name, patient_key

DATE_1, DATE_2 = "20200115", "20210310"        # 420 days apart


def _study(src: str, dest: Path, *, pid: str, issuer: str | None, study_date: str, n: int) -> None:
    ds = pydicom.dcmread(get_testdata_file(src, download=False))
    ds.PatientID = pid
    if issuer is None:
        if "IssuerOfPatientID" in ds:
            del ds.IssuerOfPatientID
    else:
        ds.IssuerOfPatientID = issuer
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Lê^Thị Hồng"
    ds.StudyDate = study_date
    save(renumber(ds, f"1.2.826.0.1.3680043.10.543.77.{n}"), dest)


@pytest.fixture
def one_patient(tmp_path: Path) -> Path:
    """Two studies of one patient: CT with `0077123` and an issuer, MR with `77123` and none."""
    root = tmp_path / "export"
    _study("CT_small.dcm", root / "ct.dcm", pid="0077123", issuer="BV BACH MAI", study_date=DATE_1, n=1)
    _study("MR_small.dcm", root / "mr.dcm", pid=" 77123", issuer=None, study_date=DATE_2, n=2)
    return root


def _outputs(out: Path) -> dict[str, Dataset]:
    """Output data sets by original StudyDate order: 'first' (CT) and 'second' (MR)."""
    rows = [r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["status"] == "ok"]
    assert len(rows) == 2, [r["reason"] for r in pq.read_table(out / "manifest.parquet").to_pylist()]
    by_modality = {r["modality"]: pydicom.dcmread(out / r["output"]) for r in rows}
    return {"first": by_modality["CT"], "second": by_modality["MR"]}


def _date(v: str) -> dt.date:
    return dt.date(int(v[:4]), int(v[4:6]), int(v[6:8]))


def _anonymize(src: Path, out: Path, key: Path, *extra: str, check: bool = True):
    return run_cli("anonymize", src, out, "--key", key, "-j", "1", *extra, check=check)


def test_zero_padded_id_and_missing_issuer_are_one_patient_with_one_date_shift(one_patient, key_file, tmp_path):
    out = tmp_path / "anon"
    _anonymize(one_patient, out, key_file)
    ds = _outputs(out)
    a, b = ds["first"], ds["second"]
    assert a.PatientID == b.PatientID and str(a.PatientName) == str(b.PatientName)
    assert a.PatientID not in ("0077123", "77123") and a.StudyDate != DATE_1      # replaced, shifted
    # one date shift: the interval between the patient's two studies is the true one
    assert (_date(b.StudyDate) - _date(a.StudyDate)).days == (_date(DATE_2) - _date(DATE_1)).days == 420
    assert a.StudyInstanceUID != b.StudyInstanceUID
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len({r["patient_id"] for r in manifest if r["status"] == "ok"}) == 1
    assert len({r["output"].split("/")[0] for r in manifest if r["status"] == "ok"}) == 1     # one patient folder
    # the linkage table keeps both spellings, each linked to the one substitute
    link = pq.read_table(tmp_path / "anon.linkage.parquet").to_pylist()
    assert {(r["original_patient_id"], r["patient_id"]) for r in link} == {("0077123", a.PatientID),
                                                                            ("77123", a.PatientID)}
    settings = json.loads((out / ".vindr" / "anonymize.json").read_text())
    assert settings["settings"]["patient_match"] == "normalised"


def test_strict_matching_keeps_them_two_patients(one_patient, key_file, tmp_path):
    out = tmp_path / "anon"
    _anonymize(one_patient, out, key_file, "--patient-match", "strict")
    ds = _outputs(out)
    a, b = ds["first"], ds["second"]
    assert a.PatientID != b.PatientID and str(a.PatientName) != str(b.PatientName)
    # two patients, two keyed shifts: the interval is no longer the true one
    assert (_date(b.StudyDate) - _date(a.StudyDate)).days != 420
    assert json.loads((out / ".vindr" / "anonymize.json").read_text())["settings"]["patient_match"] == "strict"


def test_resume_with_the_other_mode_is_refused(one_patient, key_file, tmp_path):
    out = tmp_path / "anon"
    _anonymize(one_patient, out, key_file)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.dcm"))
    p = _anonymize(one_patient, out, key_file, "--patient-match", "strict", check=False)
    assert p.returncode == 2, p.stderr
    assert "--patient-match normalised" in " ".join(p.stderr.split())
    assert len(p.stderr.strip().splitlines()) == 1 and "Lê" not in p.stderr and "77123" not in p.stderr
    # without anonymize.json the outputs' own settings mark still refuses it
    shutil.rmtree(out / ".vindr")
    p = _anonymize(one_patient, out, key_file, "--patient-match", "strict", check=False)
    assert p.returncode == 2 and "--patient-match" in " ".join(p.stderr.split()), p.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.dcm")) == before
    # the same mode resumes
    shutil.rmtree(out)
    _anonymize(one_patient, out, key_file)
    assert _anonymize(one_patient, out, key_file).returncode == 0


def test_an_unknown_mode_is_refused(one_patient, key_file, tmp_path):
    p = _anonymize(one_patient, tmp_path / "anon", key_file, "--patient-match", "fuzzy", check=False)
    assert p.returncode == 2 and "--patient-match must be one of normalised, strict" in p.stderr
    assert not (tmp_path / "anon").exists()


@pytest.mark.parametrize("a, b", [
    ("0077123", "77123"), (" 77123 ", "77123"), ("ab 0012", "AB 0012"), ("AB  12", "ab 12"),
    ("000", "0"), ("0", "00"), ("ＡＢ１２", "ab12"), ("77123\x00", "77123"),
])
def test_normalised_ids_that_are_one_patient(a, b):
    assert normalise_id(a) == normalise_id(b)


@pytest.mark.parametrize("a, b", [("77123", "771230"), ("AB12", "AB 12"), ("7712", "77-12"), ("0", "")])
def test_normalised_ids_that_stay_apart(a, b):
    assert normalise_id(a) != normalise_id(b)


@given(st.text(alphabet="0123456789ABCDEFabcdef-", min_size=1, max_size=12).filter(lambda s: s.strip("0")),
       st.integers(0, 4))
def test_leading_zeros_case_and_padding_never_split_a_patient(pid, zeros):
    assert normalise_id(" " + "0" * zeros + pid.swapcase() + "  ") == normalise_id(pid)


def _ds(**kw) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_patient_key_rules():
    ds = _ds(PatientID="0077123", IssuerOfPatientID="H1", PatientName="X^Y", StudyInstanceUID="1.2.3")
    assert patient_key(ds) == patient_key(_ds(PatientID="77123")) == patient_key(_ds(PatientID="77123",
                                                                                   IssuerOfPatientID="H2"))
    assert patient_key(ds, "strict") != patient_key(_ds(PatientID="77123"), "strict")
    assert patient_key(ds, "strict") != patient_key(_ds(PatientID="0077123"), "strict")      # issuer counts
    # no usable ID: the name, folded (accents, case, spaces, trailing components), + birth date
    n1 = _ds(PatientID="", PatientName="Nguyễn^Văn  An^^", PatientBirthDate="19800101", StudyInstanceUID="1.2.3")
    n2 = _ds(PatientName="NGUYEN^VAN AN", PatientBirthDate="19800101", StudyInstanceUID="1.2.4")
    assert patient_key(n1) == patient_key(n2)
    assert patient_key(n1, "strict") != patient_key(n2, "strict")
    n2.PatientBirthDate = "19800102"
    assert patient_key(n1) != patient_key(n2)
    # a placeholder ID is no ID: every patient of an export stamped UNKNOWN is not one patient
    u1 = _ds(PatientID="UNKNOWN", PatientName="Trần^Thị B", StudyInstanceUID="1.2.5")
    u2 = _ds(PatientID="n/a", PatientName="Phạm^Văn C", StudyInstanceUID="1.2.6")
    assert patient_key(u1) != patient_key(u2)
    assert patient_key(u1) == patient_key(_ds(PatientName="TRAN^THI B", StudyInstanceUID="1.2.7"))
    # no usable name either: the study
    s1 = _ds(PatientID="ANON", PatientName="ANONYMOUS", StudyInstanceUID="1.2.8")
    assert patient_key(s1) == patient_key(_ds(StudyInstanceUID="1.2.8")) != patient_key(_ds(StudyInstanceUID="1.2.9"))
    # numbers are IDs, however short; a previous vindr substitute is an ID too
    assert patient_key(_ds(PatientID="7")) != patient_key(_ds(PatientID="8"))
    assert patient_key(_ds(PatientID="PABCDEFGHIJKLMN2")).startswith("nid:")
    with pytest.raises(ValueError):
        patient_key(ds, "fuzzy")


def test_normalise_name_keeps_the_first_written_group():
    assert normalise_name("Yamada^Tarou=山田^太郎=やまだ^たろう") == normalise_name("YAMADA^TAROU")
    assert normalise_name("=山田^太郎") == normalise_name("山田^太郎")
    assert normalise_name("Đặng ^ Thị") == "dang^thi"
