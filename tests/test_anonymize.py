"""`vindr anonymize` end to end on a small export built in the test (sample_dicoms has its own tests)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest

from conftest import PHI, make_cr
from helpers import key_hex, run_cli, split_file, tree_hashes
from vindr_cli.deid.batch import RequestError, anonymize
from vindr_cli.deid.profile import load_profile


def _run(src, out, key, *extra, check=True):
    return run_cli("anonymize", src, out, "--key", key, *extra, check=check)


def _manifest(out: Path) -> list[dict]:
    return pq.read_table(out / "manifest.parquet").to_pylist()


def test_statuses_manifest_and_linkage(small_export, key_file, tmp_path):
    out = tmp_path / "anon"
    p = _run(small_export, out, key_file, "-j", "2")
    rows = _manifest(out)
    assert len(rows) == 5                                     # every input accounted for
    by = sorted(r["status"] for r in rows)
    assert by == ["not-dicom", "not-dicom", "ok", "ok", "ok"]
    reasons = {r["reason"] for r in rows if r["status"] == "not-dicom"}
    assert reasons == {"empty file (0 bytes)", "not a DICOM file (no 'DICM' marker at byte 128)"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert len({r["patient_id"] for r in ok}) == 2 and len({r["study_uid"] for r in ok}) == 2
    for r in ok:
        assert (out / r["output"]).is_file() and len(r["image_id"]) == 32
        assert r["output"].endswith(r["image_id"] + ".dcm")
    link = out.parent / "anon.linkage.parquet"
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    lrows = pq.read_table(link).to_pylist()
    assert {r["original_patient_id"] for r in lrows if r["status"] == "ok"} == {"PID0001", "PID0002"}
    assert "ok" in p.stdout and "not-dicom" in p.stdout           # the summary table


def test_no_phi_anywhere_in_outputs(small_export, key_file, tmp_path):
    out = tmp_path / "anon"
    _run(small_export, out, key_file, "-j", "1")
    key_text = key_file.read_text().strip()
    for p in out.rglob("*"):
        rel = p.relative_to(out).as_posix()
        for s in PHI + ["NGUYEN", "PID0002", "TRAN THI"]:
            assert s.lower() not in rel.lower()
        if not p.is_file():
            continue
        data = split_file(p)[0] if p.suffix == ".dcm" else p.read_bytes()
        assert key_text.encode() not in data and bytes.fromhex(key_text) not in data
        for s in PHI + ["PID0002", "Trần^Thị B"]:
            assert s.encode("utf-8") not in data, (rel, s)


def test_pixel_data_copied_byte_for_byte(small_export, key_file, tmp_path):
    out = tmp_path / "anon"
    _run(small_export, out, key_file)
    inputs = {}
    for p in small_export.rglob("*"):
        if p.is_file() and p.stat().st_size > 200:
            ds = pydicom.dcmread(p, force=True)
            if "PixelData" in ds:
                inputs[str(ds.SOPInstanceUID)] = (split_file(p)[1], str(ds.file_meta.TransferSyntaxUID))
    rows = [r for r in _manifest(out) if r["status"] == "ok"]
    hashes = {h for h, _ in inputs.values()}
    assert len(rows) == 3
    for r in rows:
        digest = split_file(out / r["output"])[1]
        assert digest == r["pixel_sha256"] and digest in hashes
        ds = pydicom.dcmread(out / r["output"])
        assert str(ds.file_meta.TransferSyntaxUID) in {ts for _, ts in inputs.values()}
        assert ds.pixel_array.shape == (64, 48)              # still decodes (RLE included)


def test_same_outputs_for_1_and_2_workers_and_rerun(small_export, key_file, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(small_export, a, key_file, "-j", "1", "--no-linkage")
    _run(small_export, b, key_file, "-j", "2", "--no-linkage")
    ha, hb = tree_hashes(a, skip=(".vindr",)), tree_hashes(b, skip=(".vindr",))
    assert ha == hb and len(ha) == 4
    p = _run(small_export, a, key_file, "-j", "2", "--no-linkage")
    assert "already done" in p.stdout
    assert tree_hashes(a, skip=(".vindr",)) == ha


def test_another_key_gives_unrelated_substitutes(small_export, key_file, tmp_path):
    other = key_file.parent / "other.key"
    other.write_text(key_hex("cd"))
    os.chmod(other, 0o600)
    _run(small_export, tmp_path / "a", key_file, "--no-linkage")
    _run(small_export, tmp_path / "b", other, "--no-linkage")
    ma, mb = _manifest(tmp_path / "a"), _manifest(tmp_path / "b")
    ids_a = {r["patient_id"] for r in ma if r["patient_id"]} | {r["sop_uid"] for r in ma if r["sop_uid"]}
    ids_b = {r["patient_id"] for r in mb if r["patient_id"]} | {r["sop_uid"] for r in mb if r["sop_uid"]}
    assert ids_a and not ids_a & ids_b
    p = _run(small_export, tmp_path / "a", other, "--no-linkage", check=False)   # resume with another key
    assert p.returncode == 2 and "different key fingerprint" in p.stderr


def test_input_never_modified(small_export, key_file, tmp_path):
    before = tree_hashes(small_export)
    _run(small_export, tmp_path / "anon", key_file)
    assert tree_hashes(small_export) == before


def test_refusals(small_export, key_file, tmp_path):
    p = _run(small_export, small_export / "out", key_file, check=False)
    assert p.returncode == 2 and "inside INPUT" in p.stderr
    os.chmod(key_file, 0o644)
    p = _run(small_export, tmp_path / "o", key_file, check=False)
    assert p.returncode == 2 and "chmod 600" in p.stderr and not (tmp_path / "o").exists()
    os.chmod(key_file, 0o600)
    p = _run(small_export, tmp_path / "o2", key_file, "--linkage", tmp_path / "o2" / "l.parquet", check=False)
    assert p.returncode == 2 and "linkage" in p.stderr
    p = _run(small_export, tmp_path / "o3", key_file, "--profile", "nonsense", check=False)
    assert p.returncode == 2 and "--profile" in p.stderr


def test_key_created_private_on_first_use(small_export, tmp_path):
    key = tmp_path / "newkeys" / "k"
    p = _run(small_export, tmp_path / "o", key, "--no-linkage")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and "created a new secret key" in p.stdout
    assert key.read_text().strip() not in p.stdout + p.stderr


def test_strict_exit_code_and_failed_reasons(small_export, key_file, tmp_path):
    data = (small_export / "NGUYEN VAN AN_PID0001" / "a.dcm").read_bytes()
    (small_export / "cut.dcm").write_bytes(data[: len(data) - 500])
    p = _run(small_export, tmp_path / "o", key_file, "--strict", check=False)
    assert p.returncode == 1
    rows = _manifest(tmp_path / "o")
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["reason"] for r in failed] == ["truncated pixel data (file ends before the pixel data does)"]
    assert not list((tmp_path / "o").rglob("*.vindr-part"))
    assert _run(small_export, tmp_path / "o", key_file, check=False).returncode == 0


def test_burned_in_quarantined_unless_allowed(tmp_path, key_file):
    src = tmp_path / "in"
    make_cr(src / "x.dcm", extra=lambda d: setattr(d, "BurnedInAnnotation", "YES"))
    _run(src, tmp_path / "o", key_file)
    (row,) = _manifest(tmp_path / "o")
    assert row["status"] == "quarantined" and "BurnedInAnnotation" in row["reason"] and row["output"] is None
    assert not list((tmp_path / "o").rglob("*.dcm"))
    _run(src, tmp_path / "o2", key_file, "--allow-burned-in")
    assert _manifest(tmp_path / "o2")[0]["status"] == "ok"


def test_duplicate_sop_instance_first_in_order_wins(tmp_path, key_file):
    src = tmp_path / "in"
    make_cr(src / "a" / "x.dcm")
    make_cr(src / "b" / "x.dcm", seed=5)   # same SOP Instance UID, other pixels
    for workers in ("1", "2"):
        out = tmp_path / f"o{workers}"
        _run(src, out, key_file, "-j", workers, "--no-linkage")
        rows = _manifest(out)
        assert [r["status"] for r in rows] == ["ok", "duplicate"]
    assert tree_hashes(tmp_path / "o1", skip=(".vindr",)) == tree_hashes(tmp_path / "o2", skip=(".vindr",))


def test_vindr_layout_and_profile(small_export, key_file, tmp_path):
    out = tmp_path / "o"
    _run(small_export, out, key_file, "--layout", "vindr", "--profile", "vindr")
    rows = [r for r in _manifest(out) if r["status"] == "ok"]
    assert sorted(p.name for p in out.glob("*.dicom")) == sorted(r["image_id"] + ".dicom" for r in rows)
    ds = pydicom.dcmread(out / rows[0]["output"])
    assert not ds.get("PatientName") and "PatientAge" in ds and ds.PatientIdentityRemoved == "YES"   # Type 2: empty


def test_zip_and_dicomdir_inputs(tmp_path, key_file):
    import zipfile

    src = tmp_path / "in"
    f = make_cr(tmp_path / "staging" / "x.dcm")
    src.mkdir()
    with zipfile.ZipFile(src / "study.zip", "w") as zf:
        zf.write(f, "inner/x.dcm")
    out = tmp_path / "o"
    _run(src, out, key_file)
    rows = _manifest(out)
    assert [r["status"] for r in rows] == ["ok"]
    lrows = pq.read_table(tmp_path / "o.linkage.parquet").to_pylist()
    assert lrows[0]["input_path"] == "study.zip!inner/x.dcm"


def test_library_refuses_output_inside_input(small_export, key_file):
    with pytest.raises(RequestError):
        anonymize(small_export, small_export / "x", key_path=key_file, profile=load_profile(), workers=1)


def test_audit_clean_then_catches_planted_problems(small_export, key_file, tmp_path):
    out = tmp_path / "anon"
    _run(small_export, out, key_file)
    p = run_cli("audit", out, check=False)
    assert p.returncode == 0 and "no findings" in p.stdout
    row = next(r for r in _manifest(out) if r["status"] == "ok")
    target = out / row["output"]
    ds = pydicom.dcmread(target)
    ds.ImageComments = "seen by Nguyễn Văn An"
    ds.add_new(0x00291010, "LO", "x")
    ds.add_new(0x00081030, "LO", "study")            # StudyDescription: the profile removes it
    del ds.PatientIdentityRemoved
    ds.save_as(target)
    (out / "NGUYEN VAN AN.txt").write_text("x")
    p = run_cli("audit", out, check=False)
    assert p.returncode == 1
    for kind in ("phi", "private", "removed-tag", "not-marked", "phi-path", "stray-file"):
        assert kind in p.stdout, kind
    assert "Nguyễn" not in p.stdout and "NGUYEN" not in p.stdout      # paths with PHI are masked
    assert "(withheld)" in p.stdout


def test_audit_detects_pixel_change(small_export, key_file, tmp_path):
    out = tmp_path / "anon"
    _run(small_export, out, key_file, "--no-linkage")
    row = next(r for r in _manifest(out) if r["status"] == "ok" and r["transfer_syntax"] == "1.2.840.10008.1.2.1")
    target = out / row["output"]
    data = bytearray(target.read_bytes())
    data[-3] ^= 0xFF
    target.write_bytes(bytes(data))
    p = run_cli("audit", out, check=False)
    assert p.returncode == 1 and "pixel-hash" in p.stdout


def test_uid_root_is_checked_up_front(small_export, key_file, tmp_path):
    for bad in ("1.2.abc", "", "1.02.3", "1.2.", "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17"):
        p = _run(small_export, tmp_path / "o", key_file, "--uid-root", bad, check=False)
        assert p.returncode == 2 and "--uid-root" in p.stderr, bad
    _run(small_export, tmp_path / "o2", key_file, "--uid-root", "1.2.826.0.1.3680043.10.543", "--no-linkage")
    uids = {r["sop_uid"] for r in _manifest(tmp_path / "o2") if r["sop_uid"]}
    assert uids and all(u.startswith("1.2.826.0.1.3680043.10.543.") and len(u) <= 64 for u in uids)


def test_another_input_into_the_same_output_is_refused(small_export, key_file, tmp_path):
    out = tmp_path / "o"
    _run(small_export, out, key_file)
    p = _run(small_export / "NGUYEN VAN AN_PID0001", out, key_file, check=False)
    assert p.returncode == 2 and "different INPUT" in p.stderr
    assert "NGUYEN" not in p.stderr                     # the path is never echoed
    assert len(_manifest(out)) == 5


def test_failed_inputs_are_retried_on_a_rerun(small_export, key_file, tmp_path):
    cut = small_export / "cut.dcm"
    data = (small_export / "NGUYEN VAN AN_PID0001" / "a.dcm").read_bytes()
    cut.write_bytes(data[:-500])
    out = tmp_path / "o"
    _run(small_export, out, key_file, "--no-linkage")
    assert sorted(r["status"] for r in _manifest(out)).count("failed") == 1
    make_cr(cut, sop="1.2.826.0.1.3680043.10.543.9.9.9")   # the file is re-exported whole
    p = _run(small_export, out, key_file, "--no-linkage")
    assert "already done" in p.stdout
    assert "failed" not in {r["status"] for r in _manifest(out)}


def test_outputs_are_not_nested_in_another_vindr_output(small_export, key_file, tmp_path):
    out = tmp_path / "o"
    _run(small_export, out, key_file)
    p = _run(small_export, out / "sub", key_file, check=False)     # its linkage would land inside `o`
    assert p.returncode == 2 and "another vindr output" in p.stderr
    p = run_cli("decode", small_export, out / "images", check=False)
    assert p.returncode == 2 and "another vindr output" in p.stderr
