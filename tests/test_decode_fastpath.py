"""The fast paths of ``vindr decode`` give exactly what the plain paths give.

* ``window.display_lut``: the whole display transform as a table over every raw word; a
  frame looked up in it equals the direct rendering value for value, for any header the
  pipeline takes (signed or not, 8..16 bits stored, rescale, Modality LUT, window functions,
  VOI LUT, padding value or range, MONOCHROME1/INVERSE, 8- or 16-bit output).
* ``output.png_bytes``: the own PNG writer is lossless for grey and RGB, 8 and 16 bits
  (read back by Pillow, and by a plain zlib + unfilter reader for 16-bit RGB, which Pillow
  cannot hold).
* ``task.decode_one`` with the table equals the same image rendered without it.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from vindr_cli.pixels import window as W
from vindr_cli.pixels.output import png_bytes
from vindr_cli.pixels.voi import DisplayParams

FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@st.composite
def headers(draw):
    bits_allocated = draw(st.sampled_from((8, 16)))
    bits_stored = draw(st.integers(min_value=min(8, bits_allocated), max_value=bits_allocated))
    signed = draw(st.booleans())
    lo, hi = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
    kw: dict = {}
    if draw(st.booleans()):    # Modality LUT Sequence
        n = draw(st.integers(2, 300))
        first = draw(st.integers(lo, hi))
        kw["modality_lut_descriptor"] = (n, first, 16)
        kw["modality_lut_data"] = np.asarray(draw(st.lists(st.integers(0, 65535), min_size=n, max_size=n)))
        mod_lo, mod_hi = 0.0, 65535.0
    else:
        slope = draw(st.sampled_from((1.0, 0.5, 2.0, -1.0, 0.0123)))
        intercept = draw(st.sampled_from((0.0, -1024.0, 100.5)))
        kw.update(rescale_slope=slope, rescale_intercept=intercept)
        ends = (lo * slope + intercept, hi * slope + intercept)
        mod_lo, mod_hi = min(ends), max(ends)
    if draw(st.booleans()):    # VOI LUT Sequence
        n = draw(st.integers(2, 300))
        kw["voi_lut_descriptor"] = (n, int(mod_lo), draw(st.sampled_from((8, 12, 16))))
        kw["voi_lut_data"] = np.asarray(draw(st.lists(st.integers(0, 4095), min_size=n, max_size=n)))
    else:
        function = draw(st.sampled_from(FUNCTIONS))
        center = draw(st.floats(mod_lo - 10, mod_hi + 10, allow_nan=False))
        width = draw(st.floats(1.0, max(2.0, mod_hi - mod_lo + 20), allow_nan=False))
        kw.update(window_center=center, window_width=width, voi_lut_function=function)
    if draw(st.booleans()):
        kw["padding_value"] = draw(st.integers(lo, hi))
        if draw(st.booleans()):
            kw["padding_range_limit"] = draw(st.integers(lo, hi))
    return DisplayParams(photometric=draw(st.sampled_from(("MONOCHROME1", "MONOCHROME2"))),
                         bits_stored=bits_stored, bits_allocated=bits_allocated, pixel_representation=int(signed),
                         presentation_lut_shape=draw(st.sampled_from((None, "IDENTITY", "INVERSE"))), **kw)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(p=headers(), out_bits=st.sampled_from((8, 16)), seed=st.integers(0, 2**32 - 1),
       mode=st.sampled_from(("header", "300,1000")))
def test_display_table_equals_direct_rendering(p, out_bits, seed, mode):
    dtype = np.dtype(f"{'i' if p.signed else 'u'}{p.bits_allocated // 8}")
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    raw = rng.integers(info.min, info.max, size=(37, 41), endpoint=True).astype(dtype)   # stray high bits too
    table = W.display_lut(p, mode, dtype, out_bits)
    assert table is not None
    lut, used = table
    direct, used_direct = W.render(raw, p, mode, out_bits)    # small: the direct path
    assert raw.size < W.LUT_MIN_SAMPLES
    looked_up = lut[W.lut_index(raw)]
    assert looked_up.dtype == direct.dtype
    np.testing.assert_array_equal(looked_up, direct)
    assert used == used_direct


def test_render_takes_the_table_on_large_frames_and_agrees():
    p = DisplayParams(photometric="MONOCHROME1", bits_stored=12, window_center=1800.0, window_width=900.0,
                      rescale_slope=1.5, rescale_intercept=-30.0, padding_value=0)
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 65535, size=(600, 500), endpoint=True).astype(np.uint16)
    assert raw.size >= W.LUT_MIN_SAMPLES
    fast, used = W.render(raw, p, "header", 8)
    slow, used_slow = W._render(W.stored_values(raw, p), p, used, 8)
    np.testing.assert_array_equal(fast, slow)
    assert used == used_slow and (fast == 0).any() and (fast == 255).any()


@pytest.mark.parametrize("mode", ["minmax", "percentile:1,99", "kaggle"])
def test_statistics_modes_have_no_table(mode):
    p = DisplayParams(window_center=100.0, window_width=50.0)
    assert W.display_lut(p, mode, np.uint16) is None


def test_header_without_a_usable_window_has_no_table():
    assert W.display_lut(DisplayParams(), "header", np.uint16) is None          # no window: percentiles
    assert W.display_lut(DisplayParams(window_center=1.0, window_width=0.5), "header", np.uint16) is None
    assert W.display_lut(DisplayParams(window_center=1.0, window_width=10.0), "header", np.uint32) is None


def _read_png(data: bytes) -> np.ndarray:
    """A plain PNG reader for the writer's own files (IHDR, one IDAT, filters None/Up)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(tag + body) & 0xFFFFFFFF
        chunks[tag] = body
        pos += 12 + n
    assert b"IEND" in chunks
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = 3 if colour == 2 else 1
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, -1)
    out = np.empty((h, rows.shape[1] - 1), np.uint8)
    for y in range(h):
        f = rows[y, 0]
        assert f in (0, 2)
        out[y] = rows[y, 1:] + (out[y - 1] if f == 2 and y else 0)
    a = out.view(">u2" if depth == 16 else np.uint8).astype(np.uint16 if depth == 16 else np.uint8)
    return a.reshape(h, w, channels) if channels == 3 else a.reshape(h, w)


@settings(deadline=None, max_examples=40)
@given(h=st.integers(1, 40), w=st.integers(1, 40), rgb=st.booleans(), depth=st.sampled_from((8, 16)),
       seed=st.integers(0, 2**32 - 1))
def test_png_writer_is_lossless(h, w, rgb, depth, seed):
    dtype = np.uint8 if depth == 8 else np.uint16
    image = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, size=(h, w, 3) if rgb else (h, w),
                                                 endpoint=True).astype(dtype)
    data = png_bytes(image)
    np.testing.assert_array_equal(_read_png(data), image)
    if not (rgb and depth == 16):            # Pillow has no 16-bit RGB mode
        back = np.asarray(Image.open(io.BytesIO(data)))
        np.testing.assert_array_equal(back.astype(dtype), image)


def test_png_writer_refuses_what_png_cannot_hold():
    for bad in (np.zeros((2, 2), np.float32), np.zeros((2, 2, 4), np.uint8), np.zeros((2,), np.uint8)):
        with pytest.raises(ValueError):
            png_bytes(bad)


def test_decode_one_with_the_table_equals_the_plain_rendering(tmp_path, monkeypatch):
    """A real J2K image through decode_one, with the table and with it switched off."""
    from pydicom.data import get_testdata_file

    from vindr_cli.pixels.resize import parse_size
    from vindr_cli.pixels.task import DecodeConfig, decode_one, setup
    from vindr_cli.runner.discover import discover
    import pydicom

    src = get_testdata_file("MR_small_jp2klossless.dcm", download=False)
    ds = pydicom.dcmread(src)
    ds.PatientIdentityRemoved = "YES"
    ds.WindowCenter, ds.WindowWidth = 600, 800
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "a.dcm")
    outs = {}
    for name, floor in (("table", 0), ("plain", 1 << 40)):
        monkeypatch.setattr(W, "LUT_MIN_SAMPLES", floor)
        monkeypatch.setattr("vindr_cli.pixels.task.LUT_MIN_SAMPLES", floor)
        ctx = setup(DecodeConfig(output=str(tmp_path / name), size=parse_size("40"), bits=16))
        result = decode_one(ctx, discover(tmp_path / "in")[0])
        (tmp, _), = result["files"]
        outs[name] = np.asarray(Image.open(tmp))
        assert result["rows"]["images"][0]["window_center"] == 600
    assert outs["table"].shape == (40, 40)
    np.testing.assert_array_equal(outs["table"], outs["plain"])
    assert outs["table"].max() > outs["table"].min()


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "JPEG2000.dcm", "CT_small.dcm", "MR_small_RLE.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "SC_rgb_jpeg_dcmtk.dcm",
                                  "emri_small_jpeg_2k_lossless.dcm", "rtdose.dcm", "MR_small_padded.dcm"])
def test_completed_header_is_the_whole_data_set(name):
    """task._complete (the header's data set + the elements from Pixel Data on) equals a
    second full dcmread of the file, element for element."""
    import os

    from pydicom.data import get_testdata_file

    from vindr_cli.dicomio.header import read_header
    from vindr_cli.pixels.task import _complete, _read_all

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not installed here")
    with open(path, "rb") as f:
        header = read_header(f, os.path.getsize(path))
        assert header.pixel_offset is not None
        fast = _complete(f, header)
        full = _read_all(f)
    assert list(fast.keys()) == list(full.keys())
    assert fast.PixelData == full.PixelData and len(fast.PixelData) > 0
    for tag in full.keys():
        assert fast[tag].value == full[tag].value, tag


def test_completed_header_falls_back_when_the_offset_is_wrong(tmp_path):
    """A Pixel Data offset that does not point at Pixel Data: the full read, not a guess."""
    import os
    from dataclasses import replace

    from pydicom.data import get_testdata_file

    from vindr_cli.dicomio.header import read_header
    from vindr_cli.pixels.task import _complete, _read_all

    path = get_testdata_file("CT_small.dcm", download=False)
    with open(path, "rb") as f:
        header = read_header(f, os.path.getsize(path))
        ds = _complete(f, replace(header, pixel_offset=header.pixel_offset + 2))
        full = _read_all(f)
    assert ds.PixelData == full.PixelData and list(ds.keys()) == list(full.keys())


@pytest.mark.parametrize("method", ["area", "lanczos"])
def test_resize_through_arrow_equals_pillow_fromarray(method):
    """resize() hands Pillow the float array without a copy; the pixels are Pillow's own."""
    from vindr_cli.pixels.resize import FILTERS, resize

    rng = np.random.default_rng(5)
    for shape, out in (((611, 577), (320, 302)), ((7, 5), (3, 3)), ((1, 1), (1, 1)), ((30, 2), (40, 10))):
        a = (rng.random(shape) * 255).astype(np.float32)
        ref = np.asarray(Image.fromarray(a, mode="F").resize((out[1], out[0]), FILTERS[method]), dtype=np.float32)
        np.testing.assert_array_equal(resize(a, *out, method), ref)
    strided = (rng.random((50, 60)) * 255).astype(np.float32)[:, ::2]
    ref = np.asarray(Image.fromarray(np.ascontiguousarray(strided), mode="F").resize((10, 20), FILTERS[method]))
    np.testing.assert_array_equal(resize(strided, 20, 10, method), ref)
