"""Resource limits checked before work (``vindr_cli.dicomio.limits``): a deflated data set
inflating past --max-inflate, a .zip member declaring more, and an image declaring more
samples than --max-pixels each give a failed row with a fixed reason; the batch goes on."""
from __future__ import annotations

import io
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

from conftest import make_cr
from helpers import run_cli
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.dicomio.limits import (DEFAULT_MAX_PIXELS, INFLATE_REASON, PIXELS_REASON, ZIP_REASON,
                                      inflated_size_exceeds)
from vindr_cli.pixels.batch import decode_tree
from vindr_cli.pixels.decode import DecodeError, decode
from vindr_cli.pixels.resize import parse_size
from vindr_cli.pixels.task import DecodeConfig
from vindr_cli.tables import read_rows


def _deflated_zeros(path: Path, side: int = 1024) -> Path:
    make_cr(path)
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = side
    ds.PixelData = bytes(side * side * 2)
    ds.PatientIdentityRemoved = "YES"
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 20_000        # 2 MiB of zeros, deflated
    return path


def _rle_huge(path: Path) -> Path:
    make_cr(path, ts=RLELossless, sop="1.2.826.0.1.3680043.10.543.1.1.9")
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 65535                # the header lies; the RLE data is tiny
    ds.PatientIdentityRemoved = "YES"
    ds.save_as(path, enforce_file_format=True)
    return path


def _manifest(out: Path) -> dict[str, dict]:
    return {r["input_key"]: r for r in read_rows(out / "manifest.parquet")}


def test_inflate_is_counted_incrementally_with_bounded_memory():
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = bytes(1 << 20)
    raw = b"".join(comp.compress(block) for _ in range(256)) + comp.flush()   # 256 MiB of zeros
    assert len(raw) < 1 << 20
    tracemalloc.start()
    try:
        assert inflated_size_exceeds(io.BytesIO(raw), 0, 64 << 20)
        assert not inflated_size_exceeds(io.BytesIO(raw), 0, 256 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_anonymize_refuses_a_deflate_bomb_and_goes_on(tmp_path, key_file):
    src = tmp_path / "in"
    _deflated_zeros(src / "bomb.dcm")
    make_cr(src / "good.dcm", sop="1.2.826.0.1.3680043.10.543.1.1.2")
    out = tmp_path / "out"
    s = anonymize(src, out, key_path=key_file, profile=load_profile(), workers=1, write_linkage=False,
                  max_inflate=1 << 20)
    assert s.counts == {"ok": 1, "failed": 1}
    assert s.reasons == {("failed", INFLATE_REASON): 1}
    s = anonymize(src, tmp_path / "out2", key_path=key_file, profile=load_profile(), workers=1, write_linkage=False)
    assert s.counts == {"ok": 2}                  # under the default limit the same file is fine


def test_zip_member_declaring_more_than_the_limit(tmp_path, key_file):
    src = tmp_path / "in"
    src.mkdir()
    big = make_cr(tmp_path / "big.dcm", rows=512, cols=512)
    small = make_cr(tmp_path / "small.dcm", sop="1.2.826.0.1.3680043.10.543.1.1.2")
    with zipfile.ZipFile(src / "x.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(big, "big.dcm")
        zf.write(small, "small.dcm")
    out = tmp_path / "out"
    s = anonymize(src, out, key_path=key_file, profile=load_profile(), workers=1, write_linkage=False,
                  max_inflate=200_000)
    assert s.counts == {"ok": 1, "failed": 1} and s.reasons == {("failed", ZIP_REASON): 1}


def test_decode_refuses_declared_pixels_past_the_limit_before_decoding(tmp_path):
    src = tmp_path / "in"
    _rle_huge(src / "huge.dcm")
    good = make_cr(src / "good.dcm", sop="1.2.826.0.1.3680043.10.543.1.1.2")
    ds = pydicom.dcmread(good)
    ds.PatientIdentityRemoved = "YES"
    ds.save_as(good, enforce_file_format=True)
    out = tmp_path / "img"
    s = decode_tree(src, out, DecodeConfig(output=str(out), size=parse_size("32")), workers=1)
    assert s.counts == {"ok": 1, "failed": 1}
    assert s.reasons == {("failed", PIXELS_REASON): 1}
    with pytest.raises(DecodeError, match="max-pixels"):      # the library call checks it too
        decode(pydicom.dcmread(src / "huge.dcm"))
    assert 65535 * 65535 > DEFAULT_MAX_PIXELS
    # a lower limit from the command line applies to an ordinary image
    p = run_cli("decode", src, tmp_path / "img2", "-j", "1", "--max-pixels", "1000", check=False)
    assert p.returncode == 0 and "max-pixels" in p.stdout
    rows = read_rows(tmp_path / "img2" / "images.parquet")
    assert [r["status"] for r in rows] == ["failed", "failed"]


def test_decode_bounds_deflate(tmp_path):
    src = tmp_path / "in"
    _deflated_zeros(src / "bomb.dcm")
    p = run_cli("decode", src, tmp_path / "img", "-j", "1", "--max-inflate", "100000", check=False)
    assert p.returncode == 0 and "max-inflate" in p.stdout
    assert [r["reason"] for r in read_rows(tmp_path / "img" / "images.parquet")] == [INFLATE_REASON]
    p = run_cli("decode", src, tmp_path / "img2", "-j", "1")    # the default limit lets it through
    assert [r["reason"] for r in read_rows(tmp_path / "img2" / "images.parquet")] != [INFLATE_REASON]


@pytest.mark.parametrize("trailing", [b"\0", b"\0\0\0", b"NGUYEN"])
def test_inflate_count_ends_at_the_stream_end_whatever_follows(trailing):
    """Bytes after the end of the deflate stream (a padding byte, hostile trailing data) once
    made the count loop forever: zlib returns them as unconsumed input on every call."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = comp.compress(bytes(3 << 20)) + comp.flush() + trailing
    assert not inflated_size_exceeds(io.BytesIO(raw), 0, 4 << 20)
    assert inflated_size_exceeds(io.BytesIO(raw), 0, 2 << 20)
