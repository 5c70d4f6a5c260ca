"""Review 13: the six branches merged after 572da60 (redteam11, hostile11, digits, studyscale,
daskhang, newuser6) read as a demanding reviewer; each problem held by a test that failed on main.

S1 A signed JPEG-LS / JPEG 2000 image whose codestream's precision exceeds Bits Stored: the check
   for bits above Bits Stored (``redact.codestream_hides_bits``) took the bits from Bits Stored up
   as the sign extension, not from the sign bit (Bits Stored - 1) up as ``high_bits_set`` does for
   native data: a positive value with every high bit set (or a negative one with none) passed, so
   one free bit per pixel -- enough to draw a name -- was copied byte for byte in every
   --burned-in mode, and ``vindr audit`` did not report it.
V1 ``vindr validate``'s findings quoted hand-edited values of images.csv (a dicom or image path,
   a patient id on both sides) and the names of columns a table should not have, though README
   says findings never quote one (a name put there was printed); now a path only in the form
   vindr release writes, else its line, a group by its first line, extra columns counted.
J1 A state file of anonymize's OUTPUT nested 100,000 deep (the new peer sets record,
   ``.vindr/anonymize_peers.json``, and the settings record it sits beside): json's
   RecursionError was no ValueError, so the run ended in an internal error (exit 3) instead of
   the damaged-state line and --rebuild-state.
A1 ``vindr audit`` checked native pixel data for bits above Bits Stored (red team 11) only in a
   file not deflated: an output in Deflated Explicit VR Little Endian (anonymize keeps a deflated
   input's syntax) holding them was no finding, but for a hash that disagrees with the manifest
   (which agrees with whatever the anonymizer wrote).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

from helpers import key_file_in
from test_redteam11 import PLANT, _patient
from vindr_cli.deid import redact

JLS = "1.2.840.10008.1.2.4.80"


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


# ------------------------------------------------------------------ S1: signed codestream high bits

def signed_jls_bitmap() -> pydicom.Dataset:
    """8 bits stored in 16 allocated, SIGNED, every value positive (bit 7 clear), the bits of the
    name as the high byte of the first values (0xFF: a 1, 0x00: a 0): wrong sign extensions, as a
    JPEG-LS codestream of precision 16."""
    import jpeg_ls

    ds = _patient("MR_small.dcm")
    a = (np.frombuffer(ds.PixelData, "<i2").astype(np.int32) & 0x7F).astype(np.uint16)
    bits = np.unpackbits(np.frombuffer(PLANT, np.uint8)).astype(np.uint16)
    a[:len(bits)] |= bits * 0xFF00
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 7, 1
    for kw in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if kw in ds:
            del ds[kw]
    ds.PixelData = encapsulate([np.asarray(jpeg_ls.encode(a.reshape(ds.Rows, ds.Columns))).tobytes()])
    ds.file_meta.TransferSyntaxUID = JLS
    return ds


def _raw_words(path: Path) -> np.ndarray:
    """The first frame's values as its codestream holds them (no mask, no sign correction)."""
    import jpeg_ls

    frame = next(generate_frames(_read(path).PixelData, number_of_frames=1))
    return jpeg_ls.decode(np.frombuffer(frame, np.uint8)).astype(np.uint16).reshape(-1)


def _wrong_extensions(words: np.ndarray) -> int:
    """Values whose high byte is not the sign extension of their bit 7 (8 bits stored)."""
    high, sign = words >> 8, (words >> 7) & 1
    return int((high != sign * 0xFF).sum())


def test_s1_the_plant_is_a_wrong_sign_extension():
    ds = signed_jls_bitmap()
    frames = list(generate_frames(ds.PixelData, number_of_frames=1))
    assert redact._precision(frames[0], JLS) == 16 and redact.precision_exceeds(frames, JLS, ds)
    assert redact.codestream_hides_bits(ds, frames)
    with pytest.raises(redact._Unsure):         # so every mode decodes it and writes it again
        redact.clean_frames(ds)


@pytest.mark.parametrize("burned_in", ["off", "redact"])
def test_s1_signed_codestream_bits_are_not_copied(tmp_path, burned_in):
    from vindr_cli.deid.audit import audit
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    src, out = tmp_path / "export", tmp_path / "anon"
    src.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signed_jls_bitmap().save_as(src / "img.dcm", enforce_file_format=True)
    assert _wrong_extensions(_raw_words(src / "img.dcm")) == int(np.unpackbits(np.frombuffer(PLANT, np.uint8)).sum())
    key = key_file_in(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anonymize(src, out, key_path=key, profile=load_profile(), workers=1, linkage=tmp_path / "l.parquet",
                  burned_in=burned_in, allow_burned_in=True)
    row = pq.read_table(out / "manifest.parquet").to_pylist()[0]
    assert row["status"] == "ok" and row["pixels_modified"] is True
    written = _read(out / row["output"])
    if written.file_meta.TransferSyntaxUID == JLS:
        assert _wrong_extensions(_raw_words(out / row["output"])) == 0
    else:                                       # written again native: no bit above the sign extension
        assert not redact.high_bits_set(written.PixelData, written)
    # the plant written back is a finding of the audit
    planted = signed_jls_bitmap()
    planted.PixelData = _read(src / "img.dcm").PixelData
    kept = _read(out / row["output"])
    kept.file_meta.TransferSyntaxUID = JLS
    kept.PixelData = planted.PixelData
    kept.save_as(out / row["output"], enforce_file_format=True)
    rep = audit(out, tmp_path / "l.parquet", pixels=False)
    assert any(f.kind == "pixel-data" for f in rep.findings)


# ------------------------------------------------------------------ V1: validate quotes hand-edited values

def _rows(path: Path) -> list[list[str]]:
    import csv

    return list(csv.reader(path.open(newline="")))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    import csv

    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def _edit_images(r: Path, damage: str) -> None:
    secret = "Nguyen_Van_Planted"
    rows = _rows(r / "images.csv")
    head = rows[0]
    if damage == "dicom path":
        rows[1][head.index("dicom")] = f"train/dicom/{secret}.dicom"
    elif damage == "image path":
        rows[1][head.index("image")] = f"train/images/{secret}.png"
    elif damage == "patient on both sides":
        side = head.index("split")
        one = {rows[i][side]: i for i in range(1, len(rows))}
        for i in one.values():                 # a train row and a test row: one patient, a name
            rows[i][head.index("patient_id")] = "Nguyen Van Planted"
    elif damage == "dicom empty":
        rows[1][head.index("dicom")] = ""
    elif damage == "extra column":
        rows[0] = head + [secret]
        rows[1:] = [r_ + [""] for r_ in rows[1:]]
    _write_rows(r / "images.csv", rows)


@pytest.mark.parametrize("damage", ["dicom path", "image path", "patient on both sides", "extra column",
                                    "annotation column", "dicom empty", "labels name"])
def test_v1_validate_never_prints_a_hand_edited_images_csv_value(pipeline, tmp_path, damage):
    """README (vindr validate): "findings never quote a hand-edited value". images.csv's dicom and
    image paths, its patient ids and the names of extra columns (any table's) were printed."""
    from test_hostile11 import _release_copy, _validate

    r = _release_copy(pipeline, tmp_path)
    if damage == "labels name":            # a label set named, its classes emptied
        (r / "labels.json").write_text('{"label_set": "Nguyen_Van_Planted", "classes": []}')
    elif damage == "annotation column":
        path = r / "annotations" / "annotations_train.csv"
        rows = _rows(path)
        _write_rows(path, [rows[0] + ["Nguyen_Van_Planted"]] + [x + [""] for x in rows[1:]])
    else:
        _edit_images(r, damage)
    p = _validate(r)
    assert p.returncode == 1 and "Traceback" not in p.stderr, (p.stdout, p.stderr)
    assert "Planted" not in p.stdout + p.stderr, p.stdout


# ------------------------------------------------------------------ J1: a state file nested too deep

@pytest.mark.parametrize("name", ["anonymize_peers.json", "anonymize.json"])
def test_j1_a_state_file_nested_too_deep_is_damaged_not_an_internal_error(tmp_path, name):
    from test_studyscale import _anonymize, _world
    from vindr_cli.runner.state import StateDamaged

    src, out, linkage, key = _world(tmp_path, 3)
    (out / ".vindr" / name).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(StateDamaged) as err:
        _anonymize(src, out, key, linkage)
    assert f"{name} is damaged" in str(err.value) and "--rebuild-state" in str(err.value)
    assert _anonymize(src, out, key, linkage, rebuild=True).resumed == 3


# ------------------------------------------------------------------ A1: audit, deflated native high bits

def test_a1_audit_finds_high_bits_in_a_deflated_output(tmp_path):
    import pyarrow as pa

    from test_redteam11 import native_high_byte
    from vindr_cli.deid.audit import audit
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.dicomio.pixelstream import hash_bytes_value

    src, out, linkage = tmp_path / "export", tmp_path / "anon", tmp_path / "l.parquet"
    src.mkdir()
    planted = native_high_byte()
    planted.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"      # Deflated Explicit VR Little Endian
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        planted.save_as(src / "img.dcm", enforce_file_format=True)
        anonymize(src, out, key_path=key_file_in(tmp_path), profile=load_profile(), workers=1, linkage=linkage,
                  burned_in="off")
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    row = rows[0]
    written = _read(out / row["output"])
    assert str(written.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1.99"
    assert row["pixels_modified"] is True and not redact.high_bits_set(written.PixelData, written)
    assert not [f for f in audit(out, linkage, pixels=False).findings if f.kind == "pixel-data"]
    # the anonymizer's output as a bug would write it: the high bytes kept, the manifest agreeing
    written.PixelData = planted.PixelData
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written.save_as(out / row["output"], enforce_file_format=True)
    row["pixel_sha256"] = hash_bytes_value(_read(out / row["output"]).PixelData)
    table = pq.read_table(out / "manifest.parquet")
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out / "manifest.parquet")
    found = [f for f in audit(out, linkage, pixels=False).findings if f.kind in ("pixel-data", "pixel-hash")]
    assert [f.kind for f in found] == ["pixel-data"] and "Bits Stored" in found[0].detail
