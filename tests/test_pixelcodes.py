"""deid.pixelcodes (g1nolink): the file's own terms as runs of character codes in pixel values.
The end-to-end cases are red team 10's and 11's (tests/test_redteam10.py, test_redteam11.py)."""
from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from vindr_cli.deid import pixelcodes


def test_terms_are_the_long_exact_parts_and_no_ramp():
    terms = pixelcodes.terms_of(["NGUYEN^VAN^THANG", "LE^AN", "12345678", "40517263", "ABCDEFG", "X"])
    assert "NGUYEN" in terms and "40517263" in terms
    assert "LE AN" not in terms and "VAN" not in terms        # under 6 characters
    assert "12345678" not in terms and "ABCDEFG" not in terms  # a ramp of codes: a gradient spells it
    assert "NGUYEN VAN THANG" not in terms                     # holds NGUYEN: its needles hold NGUYEN's


@pytest.mark.parametrize("layout,pack", [("u8", None), ("u16le", "<{}H"), ("u16be", ">{}H"), ("u32le", "<{}I"),
                                         ("f32le", "<{}f"), ("f64le", "<{}d")])
def test_a_term_is_found_in_its_layout_across_a_chunk_boundary(layout, pack, monkeypatch):
    monkeypatch.setattr(pixelcodes, "CHUNK", 64)
    codes = [ord(c) for c in "TRUONG"]
    needle = bytes(codes) if pack is None else struct.pack(pack.format(len(codes)), *codes)
    data = bytes(61) + needle + bytes(200)           # cut by the first chunk's end
    seek = pixelcodes.needles(["TRUONG"], (layout,))
    assert pixelcodes.found_in_stream(io.BytesIO(data), 0, seek)
    other = [ord(c) for c in "TRUONX"]
    near = bytes(other) if pack is None else struct.pack(pack.format(len(other)), *other)
    assert not pixelcodes.found_in_stream(io.BytesIO(bytes(61) + near + bytes(200)), 0, seek)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "SC_rgb.dcm"])
def test_real_images_do_not_spell_their_own_terms_and_a_planted_name_is_found(name, tmp_path):
    """Real images: their own terms are not found; the same image with the name written into its
    last row as codes is."""

    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientName, ds.PatientID = "TRUONG^BAO^NGOC", "88314527"
    terms = pixelcodes.terms_of(pixelcodes.values_of(ds))
    clean = tmp_path / "clean.dcm"
    ds.save_as(clean)
    assert not pixelcodes.in_output(clean, terms)
    a = ds.pixel_array.copy()
    text = np.array([ord(c) for c in "TRUONG BAO"], dtype=a.dtype)
    a.reshape(-1)[-len(text):] = text         # the last samples (colour: one a channel value)
    ds.PixelData = a.tobytes()
    planted = tmp_path / "planted.dcm"
    ds.save_as(planted)
    assert pixelcodes.in_output(planted, terms)
