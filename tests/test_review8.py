"""Review 8: the confirmed findings of the review of the day's merged diff, each held by a test
that failed before its fix.

P2 A number array of more than 16 values (deid.terms._MAX_NUMBERS, read as a table) was searched
   only as bytes, so a PatientID 2023123456 stored as one UL value of a 17-value array was found
   neither by the anonymizer (engine._judged_safe) nor by `vindr audit`. A number of six digits
   or more (no US/SS table entry holds one) is now searched as its digits in any array; red team
   7's LUT of every number up to 32766 still holds (tests/test_redteam7.py).
P3 The JPEG header check judged the CLEANED frame while the decoder decoded the original: a
   malformed table no scan uses (dropped by the cleaning) was never checked, yet reached the
   decoder (GDCM can abort the interpreter on one). The header is now checked on the original
   bytes, the end (EOI) on the frame as written.
P1 deid.icc.clean copied a kept-type ICC tag over the whole size its table entry declared: an
   'XYZ ' tag declared longer than its 20 bytes carried a hospital's name (UTF-16) unchanged.
   A kept tag now keeps only the bytes its type defines (icc.defined_size), the rest zeros.
H1 In the scanning modes (and --burned-in off for JPEG / JPEG 2000) the pixels are scanned
   from one read of the input and copied from a second; nothing compared them. When the pixels
   are not modified, the copied Pixel Data's hash must now equal the scanned one's, else the
   file fails (deid.task.CHANGED_SINCE_SCAN) and nothing is written.
C1 The datasheet counted a frame only stripped of its metadata (a JPEG COM segment under
   --burned-in off) as "had pixels masked": masked now means boxes were masked (redactions,
   review_boxes); the rest of pixels_modified is counted as rewritten without masking.
K1 dicomio.pixelstream._kernel_copy reported TRUNCATED when copy_file_range returned 0 before
   copying anything (some file systems answer 0 instead of EXDEV): it now leaves the copy to
   the buffered one, which judges a truly truncated file.
D1 --burned-in off's help and the README said "pixels untouched": a JPEG 2000 frame holding a
   segment decoders need not (TLM) is rewritten without it under off too (test below).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import anonymize_rows, key_file_in, read_quietly
from test_safe_default import real

PID_NUMBER = 2023123456


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
    from helpers import audit_after_planting

    report = audit_after_planting(id_world["out"], id_world["links"], "n16.dcm", lambda ds: _index_values(ds, n),
                                  tmp_path, linkage=id_world["base"] / "link.parquet")
    assert report.counts().get("phi") == 1
    assert str(PID_NUMBER) not in repr(report.findings)


# ------------------------------------------------------------------ P3: the header check reads the original frame

def _bad_dht_file(path: Path, tail: int) -> None:
    """A CT as JPEG baseline (Pillow) with, right after SOI, a DHT of class 2 (none such) for
    table 3: no scan uses it, so the cleaning drops it; a decoder of the original reads it."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    from test_redteam4 import _ct, _dataset

    grey = np.round(_ct(64) * 200).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=90)
    f = buf.getvalue()
    body = bytes([0x23]) + bytes([1] * 16) + bytes(range(16))
    frame = f[:2] + b"\xff\xc4" + (len(body) + 2).to_bytes(2, "big") + body + f[2:]
    ds = _dataset(grey, bits=8)
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.543.89.{tail}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PixelData = encapsulate([frame])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    _save(ds, path)


def test_a_malformed_unused_table_fails_the_check_before_any_decoder(tmp_path):
    from vindr_cli.deid.redact import _clean_t81
    from vindr_cli.dicomio.jpeg import MalformedJPEG, check_dataset

    _bad_dht_file(tmp_path / "x.dcm", 1)
    ds = read_quietly(tmp_path / "x.dcm")
    with pytest.raises(MalformedJPEG):
        check_dataset(ds, clean=_clean_t81)


@pytest.mark.parametrize("mode", ["redact", "off"])
def test_a_malformed_unused_table_fails_the_file_with_the_fixed_reason(tmp_path, mode):
    from vindr_cli.dicomio.jpeg import REASON

    _bad_dht_file(tmp_path / "export" / "bad.dcm", 2)
    out = tmp_path / "anon"
    rows = anonymize_rows(tmp_path, out, mode)
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", REASON)]
    assert REASON.startswith("malformed JPEG codestream (")
    assert not [p for p in out.rglob("*.dcm")]


# ------------------------------------------------------------------ P1: an ICC tag longer than its type

HOSPITAL_UTF16 = "BENH VIEN BACH MAI NGUYEN VAN AN".encode("utf-16-be")


def _profile(tag: bytes, sig: bytes = b"wtpt") -> bytes:
    import struct

    hdr = bytearray(128)
    hdr[36:40] = b"acsp"
    off = 128 + 4 + 12
    prof = bytearray(bytes(hdr) + struct.pack(">I", 1) + struct.pack(">4sII", sig, off, len(tag)) + tag)
    prof[0:4] = struct.pack(">I", len(prof))
    return bytes(prof)


@pytest.mark.parametrize("label", ["xyz", "curv", "para"])
def test_text_after_what_a_kept_icc_type_defines_is_zeroed(label):
    import struct

    from vindr_cli.deid import icc

    tag, sig = {"xyz": (b"XYZ " + bytes(4) + struct.pack(">iii", 63190, 65536, 54061), b"wtpt"),
                "curv": (b"curv" + bytes(4) + struct.pack(">IH", 1, 0x0233), b"rTRC"),
                "para": (b"para" + bytes(4) + struct.pack(">HHi", 0, 0, 0x00023333), b"gTRC")}[label]
    prof = _profile(tag + HOSPITAL_UTF16, sig)
    out = icc.clean(prof)
    assert out is not None and HOSPITAL_UTF16[:8] not in out and b"B\0E\0N" not in out[::-1]
    assert dict(icc.tags(out))[sig] == tag                    # the numbers stay, nothing after them (icc2: written again)
    assert icc.clean(out) == out


def test_a_kept_icc_tag_shorter_than_its_type_refuses_the_profile():
    import struct

    from vindr_cli.deid import icc

    assert icc.clean(_profile(b"curv" + bytes(4) + struct.pack(">I", 40) + bytes(8), b"rTRC")) is None
    assert icc.clean(_profile(b"para" + bytes(4) + struct.pack(">HH", 9, 0) + bytes(4), b"gTRC")) is None


def test_the_policy_rewrites_a_profile_with_text_after_a_kept_tag():
    """What the anonymizer and the audit judge (deid.policy.judge): the profile is not kept as it
    is, but as its cleaned bytes, the text gone."""
    import struct

    from pydicom.dataelem import DataElement

    from vindr_cli.deid import policy

    prof = _profile(b"XYZ " + bytes(4) + struct.pack(">iii", 63190, 65536, 54061) + HOSPITAL_UTF16)
    verdict = policy.judge(DataElement(policy.ICC_PROFILE, "OB", prof), trusted_text=False, top=True,
                           siblings=Dataset())
    assert verdict.ok and verdict.value is not None and HOSPITAL_UTF16[:8] not in bytes(verdict.value)


@pytest.mark.parametrize("name", ["sRGB", "crayons.icc"])
def test_real_profiles_still_load_and_transform_colours_identically(name):
    import io

    from PIL import Image, ImageCms
    from pydicom.data import get_testdata_file

    from vindr_cli.deid import icc

    if name == "sRGB":
        original = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    else:
        original = Path(get_testdata_file(name, download=False)).read_bytes()
    kept = icc.clean(original)
    assert kept is not None and icc.clean(kept) == kept
    assert icc.pack(kept[:128], icc.tags(kept)) == kept        # written again, canonically (issue 13, icc2)
    img = Image.fromarray(np.random.default_rng(8).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    lab = ImageCms.createProfile("LAB")

    def through(p: bytes):
        return np.asarray(ImageCms.applyTransform(img, ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(io.BytesIO(p)), lab, "RGB", "LAB")))

    assert np.array_equal(through(kept), through(original))


# ------------------------------------------------------------------ H1: what is copied is what was scanned

def _plain_jpeg_file(path: Path, comment: bytes | None = None) -> None:
    """A 64 px CT-like 8-bit JPEG baseline file; ``comment``: a COM segment in its frame."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    from test_redteam4 import _ct, _dataset

    grey = np.round(_ct(64) * 200).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=90, **({"comment": comment} if comment else {}))
    ds = _dataset(grey, bits=8)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    _save(ds, path)


@pytest.mark.parametrize("changed", [False, True])
def test_pixels_that_change_between_scan_and_copy_fail_the_file(tmp_path, monkeypatch, changed):
    from vindr_cli.deid import task

    src = tmp_path / "export" / "plain.dcm"
    _plain_jpeg_file(src)
    copy = task._copy_pixels

    def copy_after_change(src_f, out, header):
        if out is not None and changed:             # the copy (second read): the input changed since the scan
            data = bytearray(src.read_bytes())
            data[-20] ^= 0x01                       # one byte of the entropy-coded data
            src.write_bytes(bytes(data))
        return copy(src_f, out, header)

    monkeypatch.setattr(task, "_copy_pixels", copy_after_change)
    out = tmp_path / "anon"
    rows = anonymize_rows(tmp_path, out, "off")
    if changed:
        assert [(r["status"], r["reason"]) for r in rows] == [("failed", task.CHANGED_SINCE_SCAN)]
        assert not list(out.rglob("*.dcm"))
    else:
        assert [r["status"] for r in rows] == ["ok"] and not rows[0]["pixels_modified"]
        assert rows[0]["pixel_sha256"] == rows[0]["input_pixel_sha256"]
        assert len(list(out.rglob("*.dcm"))) == 1


# ------------------------------------------------------------------ C1: the datasheet's count of masked files

def test_a_frame_stripped_of_its_comment_is_not_counted_as_masked(tmp_path):
    from vindr_cli.release.build import _deid_settings
    from vindr_cli.release.datasheet import _deid_explained

    _plain_jpeg_file(tmp_path / "export" / "commented.dcm", comment=b"made on ward 7")
    out = tmp_path / "anon"
    rows = anonymize_rows(tmp_path, out, "off")
    assert [(r["status"], r["pixels_modified"], r["redactions"]) for r in rows] == [("ok", True, None)]
    deid = _deid_settings(out, rows)
    assert deid["pixels_masked"] == {"files": 1, "masked": 0, "rewritten": 1}
    text = "\n".join(_deid_explained(deid))
    assert "0 of the 1 released DICOM file(s) had pixels masked." in text
    assert "1 had their pixel data rewritten without masking (frame metadata or overlay bits removed)." in text


# ------------------------------------------------------------------ K1: copy_file_range answering 0

def test_a_kernel_copy_that_copies_nothing_falls_back_to_the_buffered_copy(tmp_path, monkeypatch):
    import hashlib
    import os

    from test_deid_fastpaths import _copy_both
    from vindr_cli.dicomio.pixelstream import TRUNCATED

    calls = []
    monkeypatch.setattr(os, "copy_file_range", lambda *a: calls.append(a) or 0)
    value = bytes(range(256)) * 400 + b"x"
    res = _copy_both(tmp_path, value)
    assert calls and res["kernel"] == res["buffered"]
    digest, _after, data = res["kernel"]
    assert digest == (hashlib.sha256(value).hexdigest(), 12 + len(value)) and data.endswith(value)
    assert _copy_both(tmp_path, value[:1000], 5000)["kernel"][0] == TRUNCATED     # a truly short file still is


# ------------------------------------------------------------------ D1: --burned-in off and JPEG 2000 frames

def test_burned_in_off_strips_a_jpeg2000_segment_and_keeps_the_pixels(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    from test_redteam4 import _ct, _dataset
    from test_redteam7 import FRAME_TEXT, _jpeg_frames

    grey = np.round(_ct(256) * 200).astype(np.uint8)
    _kind, frame = _jpeg_frames()["j2k_tlm"]
    ds = _dataset(grey, bits=8)
    ds.PixelData = encapsulate([frame])
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    before = ds.pixel_array.copy()
    _save(ds, tmp_path / "export" / "tlm.dcm")
    out = tmp_path / "anon"
    rows = anonymize_rows(tmp_path, out, "off")
    assert [(r["status"], r["pixels_modified"]) for r in rows] == [("ok", True)]
    assert rows[0]["pixel_sha256"] != rows[0]["input_pixel_sha256"]
    raw = (out / rows[0]["output"]).read_bytes()
    assert FRAME_TEXT[:16] not in raw
    assert np.array_equal(read_quietly(out / rows[0]["output"]).pixel_array, before)
