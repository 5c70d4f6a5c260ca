"""The PS3.3 C.11 display pipeline (vindr_cli.pixels.voi) and the --window modes (window.py).

Expected values are hand-computed from the standard's formulas (C.11.2.1.2 / C.11.2.1.3)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_voi_lut as pydicom_apply_voi_lut
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from vindr_cli.pixels.voi import (
    DisplayParams, WindowUsed, apply_voi_lut, apply_window, display_params, lut_descriptor, modality_lut,
    padding_mask, stored_values,
)
from vindr_cli.pixels.window import WindowMode, parse_window_mode, render

SAMPLE = Path(__file__).resolve().parent.parent / "sample_dicoms"


def make_ds(arr: np.ndarray, photometric="MONOCHROME2", bits=12, signed=False, **attrs) -> Dataset:
    """A minimal DX data set (file meta included, so it can be written and read back)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = int(signed)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = np.asarray(arr).astype(np.int16 if signed else np.uint16).tobytes()
    return ds


def lut_item(desc, data, vr_desc="US", vr_data="US", explanation=None) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, vr_desc, list(desc))
    item.add_new(0x00283006, vr_data, data)
    if explanation:
        item.LUTExplanation = explanation
    return item


# ------------------------------------------------------------------ window formulas at the edges

def test_linear_edges_c2048_w4096():
    # C.11.2.1.2.1: x <= c - 0.5 - (w-1)/2 = 0 -> 0 ; x > c - 0.5 + (w-1)/2 = 4095 -> 255
    x = np.array([-1, 0, 1, 2047.5, 4094, 4095, 4096])
    y = apply_window(x, 2048, 4096, "LINEAR", 255)
    expected = [0, 0, 255 / 4095, 127.5, 255 * 4094 / 4095, 255.0, 255.0]
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-9)


def test_linear_edges_c40_w1_is_a_threshold():
    # w = 1: both borders are c - 0.5 = 39.5; at the border -> 0, just past -> ymax
    y = apply_window(np.array([39.0, 39.5, 39.500001, 40.0, 41.0]), 40, 1, "LINEAR", 255)
    assert y.tolist() == [0.0, 0.0, 255.0, 255.0, 255.0]


def test_linear_exact_edges():
    # C.11.2.1.3.2: x <= c - w/2 -> 0 ; x > c + w/2 -> ymax ; else ((x - c)/w + 0.5) * ymax
    y = apply_window(np.array([39.5, 39.75, 40.0, 40.25, 40.5, 40.500001]), 40, 1, "LINEAR_EXACT", 255)
    np.testing.assert_allclose(y, [0, 63.75, 127.5, 191.25, 255, 255], atol=1e-9)
    y = apply_window(np.array([0, 1, 2048, 4096, 4097]), 2048, 4096, "LINEAR_EXACT", 255)
    np.testing.assert_allclose(y, [0, 255 / 4096, 127.5, 255, 255], atol=1e-9)
    # LINEAR and LINEAR_EXACT differ at the same x: 255/4095 vs 255/4096 at x = 1
    assert apply_window(1, 2048, 4096, "LINEAR") != apply_window(1, 2048, 4096, "LINEAR_EXACT")


def test_sigmoid_values():
    # C.11.2.1.3.1: y = ymax / (1 + exp(-4 (x - c) / w))
    y = apply_window(np.array([40.0, 40.25, 39.75]), 40, 1, "SIGMOID", 255)
    np.testing.assert_allclose(y, [127.5, 255 / (1 + math.exp(-1)), 255 / (1 + math.exp(1))], atol=1e-9)
    y = apply_window(np.array([2048, 4096, 0, -1e9, 1e9]), 2048, 4096, "SIGMOID", 255)
    np.testing.assert_allclose(y, [127.5, 224.60325488436, 255 - 224.60325488436, 0, 255], atol=1e-9)


@pytest.mark.parametrize("func,width", [("LINEAR", 0.999), ("LINEAR", 0), ("LINEAR_EXACT", 0),
                                        ("LINEAR_EXACT", -1), ("SIGMOID", 0)])
def test_invalid_widths_raise(func, width):
    with pytest.raises(ValueError, match=func):
        apply_window(np.zeros(3), 100, width, func, 255)


def test_valid_small_widths_and_unknown_function():
    assert apply_window(np.array([0.0]), 0, 0.5, "LINEAR_EXACT").shape == (1,)   # > 0 is enough
    with pytest.raises(ValueError, match="VOI LUT Function"):
        apply_window(np.zeros(2), 0, 10, "GAMMA")


def test_render_rounds_half_up_and_clips():
    p = DisplayParams(bits_stored=12)
    img, used = render(np.array([[0, 2047, 2048, 4095]], dtype=np.uint16), p, "2048,4096")
    # 2047 -> ((2047 - 2047.5)/4095 + 0.5) * 255 = 127.4689 -> 127 ; 2048 -> 127.531 -> 128
    assert img.tolist() == [[0, 127, 128, 255]] and img.dtype == np.uint8
    assert used.kind == "explicit" and (used.center, used.width, used.function) == (2048, 4096, "LINEAR")
    # an exact .5 goes up: LINEAR_EXACT c=40 w=1 at x=40 is 127.5 (see test_voi_lut_function_from_header)
    img16, _ = render(np.array([[0, 4095]]), p, "2048,4096", out_bits=16)
    assert img16.dtype == np.uint16 and img16.tolist() == [[0, 65535]]


# ------------------------------------------------------------------ stored values

def test_bits_stored_masking_and_sign_extension():
    raw = np.array([0xF123, 0x0FFF, 0xA800, 0x07FF, 0x0800], dtype=np.uint16)
    assert stored_values(raw, DisplayParams(bits_stored=12)).tolist() == [0x123, 4095, 2048, 2047, 2048]
    assert stored_values(raw, DisplayParams(bits_stored=12, pixel_representation=1)).tolist() == \
        [0x123, -1, -2048, 2047, -2048]
    # already sign-extended values pass unchanged (idempotent)
    s = np.array([-5, -2048, 2047], dtype=np.int16)
    assert stored_values(s, DisplayParams(bits_stored=12, pixel_representation=1)).tolist() == [-5, -2048, 2047]
    assert stored_values(np.array([0xFFFF], np.uint16), DisplayParams(bits_stored=16, pixel_representation=1))[0] == -1


def test_render_masks_garbage_high_bits():
    p = DisplayParams(bits_stored=12)
    clean, _ = render(np.array([[100, 3000]], np.uint16), p, "2048,4096")
    dirty, _ = render(np.array([[100 | 0xF000, 3000 | 0x5000]], np.uint16), p, "2048,4096")
    assert np.array_equal(clean, dirty)


# ------------------------------------------------------------------ modality LUT

def test_rescale_slope_intercept():
    ds = make_ds(np.zeros((2, 2)), RescaleSlope="0.5", RescaleIntercept="100")
    p = display_params(ds)
    np.testing.assert_allclose(modality_lut(np.array([0, 1, 4095]), p), [100, 100.5, 2147.5])


def test_lut_descriptor_rules():
    assert lut_descriptor([0, 0, 16]) == (65536, 0, 16)                       # 0 entries = 65536
    assert lut_descriptor([256, 65036, 8], signed=True) == (256, -500, 8)     # SS per representation
    assert lut_descriptor([256, 65036, 8], signed=False) == (256, 65036, 8)
    assert lut_descriptor([256, -500, 8], signed=False) == (256, 65036, 8)


def test_modality_lut_sequence_signed_first_value_and_clamping():
    item = lut_item([4, 65534, 8], [10, 20, 30, 40])            # first mapped 65534 -> -2 (signed)
    ds = make_ds(np.zeros((2, 2)), signed=True, ModalityLUTSequence=Sequence([item]))
    p = display_params(ds)
    assert p.modality_lut_descriptor == (4, -2, 8)
    out = modality_lut(np.array([-5, -2, -1, 0, 1, 7]), p)
    assert out.tolist() == [10, 10, 20, 30, 40, 40]


def test_modality_lut_sequence_65536_entries_ow():
    data = (np.arange(65536, dtype=np.uint16) // 2)
    item = lut_item([0, 0, 16], data.tobytes(), vr_data="OW")
    p = display_params(make_ds(np.zeros((2, 2)), bits=16, ModalityLUTSequence=Sequence([item])))
    assert p.modality_lut_descriptor == (65536, 0, 16)
    assert modality_lut(np.array([0, 3, 65535]), p).tolist() == [0, 1, 32767]


# ------------------------------------------------------------------ VOI LUT

def test_voi_lut_mapping_and_scaling():
    desc, data = (4, 10, 8), [0, 85, 170, 255]
    x = np.array([5, 10, 11, 12, 13, 100])
    assert apply_voi_lut(x, desc, data, 255).tolist() == [0, 0, 85, 170, 255, 255]
    np.testing.assert_allclose(apply_voi_lut(x, desc, data, 65535), [0, 0, 21845, 43690, 65535, 65535])
    # 12 bits per entry: 4095 is the top of the output range
    np.testing.assert_allclose(apply_voi_lut(np.array([0, 1]), (2, 0, 12), [0, 4095], 255), [0, 255])


def test_voi_lut_sequence_from_header_with_negative_first_value():
    item = lut_item([3, 65535, 12], [0, 2048, 4095], explanation="SOFT")   # first = -1 (signed)
    ds = make_ds(np.array([[-9, -1, 0, 1, 9]]), signed=True, VOILUTSequence=Sequence([item]))
    p = display_params(ds)
    img, used = render(ds.pixel_array, p)
    assert img.tolist() == [[0, 0, 128, 255, 255]]       # 2048/4095*255 = 127.53 -> 128
    assert used.kind == "voi_lut" and used.lut == "VOI LUT Sequence item 1" and used.index == 0   # never "SOFT"


def test_voi_lut_8bit_entries_packed_in_ow():
    item = lut_item([4, 0, 8], bytes([0, 100, 200, 255]), vr_data="OW")
    p = display_params(make_ds(np.zeros((1, 4)), VOILUTSequence=Sequence([item])))
    assert render(np.array([[0, 1, 2, 3]]), p)[0].tolist() == [[0, 100, 200, 255]]


# ------------------------------------------------------------------ polarity

def radiograph(photometric: str) -> tuple[np.ndarray, tuple, tuple]:
    """Left half 'air', right half 'bone'. MONOCHROME1 stores air high and bone low (film-like);
    MONOCHROME2 the opposite."""
    img = np.empty((20, 40), dtype=np.uint16)
    air, bone = ((4000, 100) if photometric == "MONOCHROME1" else (100, 4000))
    img[:, :20], img[:, 20:] = air, bone
    return img, np.s_[:, :20], np.s_[:, 20:]


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_air_dark_bone_bright(photometric):
    img, air, bone = radiograph(photometric)
    ds = make_ds(img, photometric, WindowCenter=2048, WindowWidth=4096)
    out, used = render(ds.pixel_array, display_params(ds))
    assert out[air].max() <= 10 and out[bone].min() >= 245
    assert used.inverted is (photometric == "MONOCHROME1")


def test_monochrome1_inverts_the_output_range_not_the_data():
    # data 1000..2000 under a 0..4095 window: out_max - y, not (max(x) - x) before the VOI
    ds = make_ds(np.array([[1000, 2000]]), "MONOCHROME1", WindowCenter=2048, WindowWidth=4096)
    out, _ = render(ds.pixel_array, display_params(ds))
    # y(1000) = 62.271 -> 255 - 62.271 = 192.73 -> 193 ; y(2000) = 124.542 -> 130.458 -> 130
    assert out.tolist() == [[193, 130]]


def test_presentation_lut_shape():
    img = np.array([[1000, 2000]])
    base = dict(WindowCenter=2048, WindowWidth=4096)
    mono2 = render(img, display_params(make_ds(img, **base)))[0]
    mono2_inverse = render(img, display_params(make_ds(img, PresentationLUTShape="INVERSE", **base)))[0]
    mono1 = render(img, display_params(make_ds(img, "MONOCHROME1", **base)))[0]
    mono1_inverse = render(img, display_params(make_ds(img, "MONOCHROME1", PresentationLUTShape="INVERSE", **base)))[0]
    mono1_identity = render(img, display_params(make_ds(img, "MONOCHROME1", PresentationLUTShape="IDENTITY",
                                                        **base)))[0]
    assert mono2.tolist() == [[62, 125]]
    assert mono2_inverse.tolist() == [[193, 130]]             # INVERSE inverts a MONOCHROME2 image
    # PS3.3 C.8.11.6.1.2: INVERSE is *the* MONOCHROME1 inversion stated again, not a second one
    assert np.array_equal(mono1_inverse, mono1) and np.array_equal(mono1, mono2_inverse)
    # non-conformant MONOCHROME1 + IDENTITY: Photometric Interpretation wins (dcmtk differs)
    assert np.array_equal(mono1_identity, mono1)


# ------------------------------------------------------------------ padding

def padded(pad_value=4095, inner=None) -> np.ndarray:
    rng = np.random.default_rng(1)
    img = rng.integers(1000, 3001, (30, 30)).astype(np.uint16) if inner is None else inner.copy()
    img[:5, :] = pad_value
    img[:, :3] = pad_value
    return img


def test_padding_is_black_and_excluded_from_statistics():
    img = padded(4095)                              # MONOCHROME2: padding (extreme) would render white
    mask = np.zeros(img.shape, bool)
    mask[:5, :], mask[:, :3] = True, True
    inner = img[~mask].astype(float)
    p = display_params(make_ds(img, WindowCenter=2000, WindowWidth=2000, PixelPaddingValue=4095))
    expected = {"minmax": (inner.min(), inner.max()),
                "percentile:1,99": tuple(np.percentile(inner, [1, 99])),
                "percentile:0,100": (inner.min(), inner.max())}
    for mode, (lo, hi) in expected.items():
        out, used = render(img, p, mode)
        assert (out[mask] == 0).all(), mode
        assert math.isclose(used.center, (lo + hi) / 2) and math.isclose(used.width, hi - lo), mode
        assert np.array_equal(out[~mask], np.floor(apply_window(inner, used.center, used.width,
                                                                "LINEAR_EXACT") + 0.5)), mode
    out, used = render(img, p, "header")
    no_pad = render(img, display_params(make_ds(img, WindowCenter=2000, WindowWidth=2000)), "header")[0]
    assert (out[mask] == 0).all() and (no_pad[mask] == 255).all()
    assert np.array_equal(out[~mask], no_pad[~mask])
    # without the padding attribute the extreme values do move the statistics
    _, u = render(img, display_params(make_ds(img)), "minmax")
    assert u.center + u.width / 2 == 4095


def test_padding_range_limit_and_monochrome1():
    img = padded(0)
    img[10, 10:15] = [3, 5, 7, 8, 9]                # 0..7 are padding (value 7, limit 0)
    ds = make_ds(img, "MONOCHROME1", WindowCenter=2000, WindowWidth=2000, PixelPaddingValue=7,
                 PixelPaddingRangeLimit=0)
    p = display_params(ds)
    pad = padding_mask(stored_values(img, p), p)
    assert pad[10, 10:15].tolist() == [True, True, True, False, False] and pad[0, 0]
    out, used = render(img, p, "minmax")
    assert (out[pad] == 0).all()                    # black although MONOCHROME1 maps low to white
    assert out[10, 13] == 255 and used.center - used.width / 2 == 8   # statistics start at 8


def test_padding_value_signed():
    img = np.array([[-1, 0, 100]])
    ds = make_ds(img, bits=16, signed=True, WindowCenter=0, WindowWidth=10)
    # y(-1) = ((-1 + 0.5)/9 + 0.5) * 255 = 113.3 ; y(0) = 141.7 ; y(100) = 255
    assert render(ds.pixel_array, display_params(ds))[0].tolist() == [[113, 142, 255]]
    ds.add_new(0x00280120, "US", 0xFFFF)            # stored as US, meaning -1 (signed)
    p = display_params(ds)
    assert p.padding_value == -1
    assert render(ds.pixel_array, p)[0].tolist() == [[0, 142, 255]]


# ------------------------------------------------------------------ header windows

def test_multi_valued_windows_and_index():
    ds = make_ds(np.array([[100, 200]]), WindowCenter=[100, 200], WindowWidth=[51, 401],
                 WindowCenterWidthExplanation=["NARROW", "WIDE"])
    p0, p1, p9 = display_params(ds), display_params(ds, 1), display_params(ds, 9)
    assert (p0.window_center, p0.window_width, p0.window_explanation) == (100, 51, "NARROW")
    assert (p1.window_center, p1.window_width, p1.window_index) == (200, 401, 1)
    assert (p9.window_center, p9.window_index) == (100, 0)          # past the end -> the first
    out0, u0 = render(ds.pixel_array, p0)
    out1, u1 = render(ds.pixel_array, p1)
    # (100 - 99.5)/50 + 0.5 -> 130.05 ; (100 - 199.5)/400 + 0.5 -> 64.07 ; (200 - 199.5)/400 + 0.5 -> 127.8
    assert out0.tolist() == [[130, 255]] and out1.tolist() == [[64, 128]]
    assert (u0.index, u1.index) == (0, 1)


def test_voi_lut_sequence_index():
    items = [lut_item([2, 0, 8], [0, 255], explanation="A"), lut_item([2, 0, 8], [255, 0], explanation="B")]
    ds = make_ds(np.array([[0, 1]]), VOILUTSequence=Sequence(items))
    assert render(ds.pixel_array, display_params(ds, 1))[0].tolist() == [[255, 0]]
    assert display_params(ds, 1).voi_lut_explanation == "B" and display_params(ds, 5).voi_lut_index == 0


def test_voi_lut_function_from_header():
    ds = make_ds(np.array([[40]]), WindowCenter=40, WindowWidth=1, VOILUTFunction="LINEAR_EXACT")
    out, used = render(ds.pixel_array, display_params(ds))
    assert used.function == "LINEAR_EXACT" and out[0, 0] == 128          # LINEAR would give 255
    ds.VOILUTFunction = "SIGMOID"
    assert render(ds.pixel_array, display_params(ds))[1].function == "SIGMOID"


def test_header_falls_back_to_percentiles():
    img = np.arange(1000).reshape(10, 100)
    out, used = render(img, display_params(make_ds(img)), "header")
    assert used.kind == "percentile" and used.percentiles == (0.5, 99.5) and "no VOI" in used.note
    lo, hi = np.percentile(img, [0.5, 99.5])
    assert math.isclose(used.center, (lo + hi) / 2) and math.isclose(used.width, hi - lo)
    assert out.min() == 0 and out.max() == 255
    bad = make_ds(img, WindowCenter=500, WindowWidth=0)             # width 0: not allowed for LINEAR
    assert render(img, display_params(bad))[1].kind == "percentile"
    from vindr_cli.errors import RequestError
    with pytest.raises(RequestError):                                # an explicit width 0 is a bad request
        render(img, display_params(bad), "500,0")


def test_window_used_as_dict_and_non_monochrome():
    used = WindowUsed("percentile", 1.0, 2.0, "LINEAR_EXACT", percentiles=(0.5, 99.5))
    assert used.as_dict()["percentiles"] == [0.5, 99.5] and used.as_dict()["kind"] == "percentile"
    with pytest.raises(ValueError, match="MONOCHROME"):
        render(np.zeros((2, 2)), DisplayParams(photometric="RGB"))


def test_constant_image_renders_black():
    out, used = render(np.full((4, 4), 7), DisplayParams(bits_stored=12), "minmax")
    assert (out == 0).all() and "constant" in used.note


# ------------------------------------------------------------------ kaggle

def read_xray(path, voi_lut=True, fix_monochrome=True):
    """The community function (VinBigData Kaggle notebooks), verbatim apart from dcmread."""
    dicom = pydicom.dcmread(path)
    if voi_lut:
        data = pydicom_apply_voi_lut(dicom.pixel_array, dicom)
    else:
        data = dicom.pixel_array
    if fix_monochrome and dicom.PhotometricInterpretation == "MONOCHROME1":
        data = np.amax(data) - data
    data = data - np.min(data)
    data = data / np.max(data)
    data = (data * 255).astype(np.uint8)
    return data


def kaggle_cases():
    rng = np.random.default_rng(3)
    img = rng.integers(200, 3900, (24, 32))
    yield make_ds(img, "MONOCHROME1", WindowCenter=2000, WindowWidth=2500)
    yield make_ds(img, "MONOCHROME2", WindowCenter=[1500, 2000], WindowWidth=[900, 3000],
                  RescaleSlope="0.5", RescaleIntercept="100")
    yield make_ds(img, "MONOCHROME1", VOILUTSequence=Sequence([lut_item([4096, 0, 12],
                                                                          (np.arange(4096) ** 2 // 4095).tolist())]))
    yield make_ds(img, "MONOCHROME2")


def test_kaggle_equals_read_xray(tmp_path):
    n = 0
    for i, ds in enumerate(kaggle_cases()):
        path = tmp_path / f"k{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        back = pydicom.dcmread(path)
        ours, used = render(back.pixel_array, display_params(back), "kaggle")
        theirs = read_xray(path)
        assert ours.dtype == np.uint8 and np.array_equal(ours, theirs), i
        assert used.kind == "kaggle" and used.inverted == (back.PhotometricInterpretation == "MONOCHROME1")
        n += 1
    assert n == 4


def test_kaggle_ignores_rescale_like_read_xray():
    # read_xray windows the stored values with a window meant for modality values
    img = np.array([[1000, 1500, 2000]])
    ds = make_ds(img, WindowCenter=1600, WindowWidth=1000, RescaleSlope="0.5", RescaleIntercept="100")
    kaggle, _ = render(img, display_params(ds), "kaggle")
    header, _ = render(img, display_params(ds), "header")
    assert not np.array_equal(kaggle, header)
    assert render(img, display_params(ds), "kaggle", ds=ds)[0].tolist() == kaggle.tolist()


def test_kaggle_on_sample_monochrome1():
    files = json.loads((SAMPLE / "planted_phi.json").read_text())["special_files"]
    path = SAMPLE / files["rescale"][0]
    ds = pydicom.dcmread(path)
    assert np.array_equal(render(ds.pixel_array, display_params(ds), "kaggle")[0], read_xray(path))


# ------------------------------------------------------------------ --window parsing

@pytest.mark.parametrize("text,expected", [
    ("header", WindowMode("header")), (" HEADER ", WindowMode("header")), ("minmax", WindowMode("minmax")),
    ("kaggle", WindowMode("kaggle")), ("percentile:0.5,99.5", WindowMode("percentile", lo=0.5, hi=99.5)),
    ("percentile:0,100", WindowMode("percentile", lo=0, hi=100)),
    ("40,400", WindowMode("explicit", center=40, width=400)),
    ("-600,1500", WindowMode("explicit", center=-600, width=1500)),
    ("2048.5,1", WindowMode("explicit", center=2048.5, width=1)),
])
def test_parse_window_mode_accepts(text, expected):
    assert parse_window_mode(text) == expected
    assert parse_window_mode(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "window", "percentile", "percentile:5", "percentile:50,50",
                                  "percentile:-1,50", "percentile:1,101", "percentile:a,b", "40",
                                  "40,0.5", "40,0", "40,400,1", "nan,400", "40,inf", "abc"])
def test_parse_window_mode_rejects(text):
    from vindr_cli.errors import RequestError

    with pytest.raises(RequestError) as exc:
        parse_window_mode(text)
    msg = str(exc.value)
    assert "\n" not in msg and "percentile:LO,HI" in msg and "C,W" in msg and "header" in msg


def test_voi_does_not_import_window():
    """voi.py holds the transforms, window.py the modes and render(): one direction only."""
    import subprocess
    import sys
    code = ("import sys, vindr_cli.pixels.voi; "
            "assert 'vindr_cli.pixels.window' not in sys.modules, 'voi imports window'")
    subprocess.run([sys.executable, "-c", code], check=True)
    import vindr_cli.pixels.voi as voi
    assert not hasattr(voi, "render")
    assert "vindr_cli.pixels.window" not in open(voi.__file__, encoding="utf-8").read().replace(
        "``window.render``", "")
