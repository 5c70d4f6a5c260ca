"""The burned-in scan's speed work (issue 10) changes how pixels reach the finder, never what
it sees: the display's lookup table gives the bytes of the float formula it replaced, the
preferred decoders give the values of pydicom's default choice, and a scan through the new
path gives the same boxes, masked values and re-encoded pixel data as the old path, with the
real text finder, on real pydicom test images with text drawn in, in every lossless syntax."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings, strategies as st
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless,
                         JPEGLSLossless, JPEGLosslessSV1, RLELossless)

from vindr_cli.deid import pixeltext, redact
from vindr_cli.synth.encode import set_pixels
from vindr_cli.synth.font import stamp


def _real(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return Path(path)


def reference_display(frame: np.ndarray, photometric: str) -> np.ndarray:
    """deid.redact.display before the lookup table (float64 per pixel), kept as the oracle."""
    f = frame.astype(np.float64)
    if f.shape[-1] == 3:
        f = f @ np.array([0.299, 0.587, 0.114])
    else:
        f = f[..., 0]
    lo, hi = float(f.min()), float(f.max())
    out = np.zeros(f.shape, np.uint8) if hi <= lo else np.rint((f - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return 255 - out if photometric == "MONOCHROME1" else out


@st.composite
def frames(draw):
    dtype = np.dtype(draw(st.sampled_from(["u1", "i1", "<u2", "<i2", ">u2", ">i2"])))
    info = np.iinfo(dtype)
    a, b = (draw(st.integers(int(info.min), int(info.max))) for _ in range(2))
    lo, hi = min(a, b), max(a, b)
    shape = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    arr = np.random.default_rng(seed).integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    if draw(st.booleans()):             # the extremes of the type, as burned-in text is drawn
        arr.flat[0], arr.flat[-1] = info.min, info.max
    return arr


@settings(deadline=None, max_examples=150)
@given(frames(), st.sampled_from(["MONOCHROME1", "MONOCHROME2"]), st.booleans())
def test_display_lookup_table_gives_the_float_path_bytes(arr, photometric, strided):
    frame = arr[..., None]
    if strided:                          # a view into a multi-sample or multi-frame array
        frame = np.repeat(arr[..., None], 2, axis=-1)[..., :1]
    got = redact.display(frame, photometric)
    want = reference_display(frame, photometric)
    assert got.dtype == np.uint8 and got.shape == arr.shape
    assert np.array_equal(got, want)


def test_display_keeps_the_float_path_for_colour_and_wide_values():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    wide = rng.integers(-2 ** 30, 2 ** 30, size=(9, 7, 1), dtype=np.int32)
    for frame in (rgb, wide):
        assert np.array_equal(redact.display(frame, "MONOCHROME2"), reference_display(frame, "MONOCHROME2"))


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "J2K_pixelrep_mismatch.dcm",
                                  "GDCMJ2K_TextGBR.dcm", "examples_jpeg2k.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_preferred_decoder_gives_pydicom_default_values(name):
    ds = pydicom.dcmread(_real(name))
    assert str(ds.file_meta.TransferSyntaxUID) in redact._PREFERRED
    arr, _ = redact._frames(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = pixel_array(ds)
    frames_ = int(ds.get("NumberOfFrames", 1) or 1)
    default = default[None] if frames_ == 1 else default
    default = default[..., None] if int(ds.SamplesPerPixel) == 1 else default
    assert arr.dtype == default.dtype and np.array_equal(arr, default)


def _with_text(name: str, syntax: str, photometric: str) -> pydicom.Dataset:
    """A real test image, scaled to at least 256 px, text drawn at its brightest display
    value (a patient name top left, a marker top right) and stored in ``syntax``."""
    ds = pydicom.dcmread(_real(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = ds.pixel_array
    if arr.ndim == 3:
        arr = arr[0]
    k = max(1, -(-256 // min(arr.shape)))
    arr = np.kron(arr, np.ones((k, k), arr.dtype))
    if syntax in (JPEG2000Lossless, JPEGLosslessSV1, RLELossless, JPEGLSLossless) and arr.dtype.kind == "i":
        arr = (arr.astype(np.int32) - int(arr.min())).astype(np.uint16)     # the encoders here want unsigned
        ds.PixelRepresentation = 0
    mask = np.zeros(arr.shape, bool)
    stamp(mask, "NGUYEN VAN AN", 6, 6, scale=2)
    stamp(mask, "PA", 6, arr.shape[1] - 40, scale=3)
    hi = int(np.iinfo(arr.dtype).max) if ds.BitsStored >= 8 * arr.dtype.itemsize else (1 << int(ds.BitsStored)) - 1
    bright = 0 if photometric == "MONOCHROME1" else hi
    arr = arr.copy()
    arr[mask] = bright
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = arr.shape
    for kw in ("NumberOfFrames", "FrameIncrementPointer"):
        if kw in ds:
            del ds[kw]
    ds.PatientName = "NGUYEN^VAN AN"
    if syntax == JPEGLSLossless:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = arr.astype("<" + arr.dtype.str[1:]).tobytes()
        ds.compress(JPEGLSLossless, arr, generate_instance_uid=False)
    elif syntax == ExplicitVRBigEndian:
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        ds.PixelData = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    else:
        set_pixels(ds, arr, syntax)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def reference_filt(a, k, op, axes=(0, 1)):
    """deid.pixeltext._filt before the numpy sliding windows (scipy.ndimage), the oracle."""
    from scipy import ndimage
    size = tuple(k if ax in axes else 1 for ax in (0, 1))
    f = ndimage.minimum_filter if op is np.minimum else ndimage.maximum_filter
    return f(a, size=size, mode="nearest")


@settings(deadline=None, max_examples=150)
@given(st.sampled_from(["u1", "<i2"]), st.integers(1, 40), st.integers(1, 40), st.integers(1, 12),
       st.sampled_from([np.minimum, np.maximum]), st.sampled_from([(0, 1), (1,), (0,)]), st.integers(0, 2 ** 32 - 1))
def test_min_max_filter_gives_ndimage_values(dtype, rows, cols, k, op, axes, seed):
    info = np.iinfo(np.dtype(dtype))
    a = np.random.default_rng(seed).integers(info.min, info.max, size=(rows, cols), endpoint=True).astype(dtype)
    got = pixeltext._filt(a, k, op, axes)
    assert got.dtype == a.dtype and np.array_equal(got, reference_filt(a, k, op, axes))


def reference_quiet_test(th, region, n, floor, flat):
    """The quiet-background test of deid.pixeltext._candidates before the order-statistic
    bounds (np.percentile / np.median on every region), the oracle."""
    peak = float(np.percentile(th[region], 90))
    between = float(np.median(th[~region])) if n < region.size else 0.0
    if peak < pixeltext._PEAK_ALWAYS and peak < pixeltext._QUIET_RATIO * (between + floor):
        return True
    return flat and between > 1


@settings(deadline=None, max_examples=250)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 255), st.floats(0.0, 1.0), st.sampled_from([1, 5]),
       st.booleans(), st.integers(0, 2 ** 32 - 1))
def test_quiet_test_gives_the_percentile_decisions(rows, cols, top, share, floor, flat, seed):
    rng = np.random.default_rng(seed)
    # values around the thresholds, with many ties (top-hats are small integers)
    th = rng.integers(0, top, size=(rows, cols), endpoint=True).astype(np.int16)
    region = rng.random((rows, cols)) < share
    region.flat[0] = True
    n = int(region.sum())
    assert pixeltext._quiet_test(th, region, n, floor, flat) == reference_quiet_test(th, region, n, floor, flat)


def test_quiet_test_falls_back_to_the_percentile_when_bounds_straddle(monkeypatch):
    """Order statistics 99 and 100 either side of the 90th percentile's index straddle
    _PEAK_ALWAYS: np.percentile decides (99.1: dropped), as before."""
    calls = []
    real = np.percentile
    monkeypatch.setattr(np, "percentile", lambda *a, **k: calls.append(1) or real(*a, **k))
    th = np.array([[0] * 16 + [99, 99, 100, 100] + [20] * 10], np.int16)
    region = np.zeros(th.shape, bool)
    region[0, :20] = True
    assert pixeltext._quiet_test(th, region, 20, 5, False) is True
    assert calls and reference_quiet_test(th, region, 20, 5, False) is True
    calls.clear()
    th[0, 16:20] = 100                   # every order statistic >= 100: settled without np.percentile
    assert pixeltext._quiet_test(th, region, 20, 5, False) is False and not calls


def reference_work(image):
    """deid.pixeltext._work before the strided adds (a reshape summed over two axes), the oracle."""
    s = max(1, -(-max(image.shape) // pixeltext._WORK_MAX))
    h, w = (image.shape[0] // s) * s, (image.shape[1] // s) * s
    if s == 1:
        return image.astype(np.int16), 1
    a = image[:h, :w].reshape(h // s, s, w // s, s).sum(axis=(1, 3), dtype=np.uint32) // (s * s)
    return a.astype(np.int16), s


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 5000), st.integers(1, 40), st.booleans(), st.integers(0, 2 ** 32 - 1))
def test_working_image_gives_the_block_sum_values(long_side, short_side, tall, seed):
    shape = (long_side, short_side) if tall else (short_side, long_side)
    image = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    image.flat[-1] = 255
    got, s = pixeltext._work(image)
    want, s_want = reference_work(image)
    assert s == s_want and got.dtype == want.dtype and np.array_equal(got, want)


def reference_components(mask, cy, cx):
    """deid.pixeltext._components before the grid was read as words (any over two axes)."""
    from scipy import ndimage
    h, w = mask.shape
    gh, gw = -(-h // cy), -(-w // cx)
    pad = np.zeros((gh * cy, gw * cx), bool)
    pad[:h, :w] = mask
    grid = pad.reshape(gh, cy, gw, cx).any(axis=(1, 3))
    labels, _ = ndimage.label(grid, structure=np.ones((3, 3), bool))
    boxes = []
    for sl in ndimage.find_objects(labels):
        if sl is None:
            continue
        ys, xs = sl
        boxes.append((xs.start * cx, ys.start * cy, min(w, xs.stop * cx), min(h, ys.stop * cy)))
    return boxes


@settings(deadline=None, max_examples=150)
@given(st.integers(1, 50), st.integers(1, 50), st.sampled_from([(1, 4), (1, 2), (1, 8), (1, 3), (2, 4)]),
       st.floats(0.0, 0.5), st.integers(0, 2 ** 32 - 1))
def test_components_give_the_any_grid_boxes(rows, cols, cells, share, seed):
    mask = np.random.default_rng(seed).random((rows, cols)) < share
    assert pixeltext._components(mask, *cells) == reference_components(mask, *cells)



def reference_block_mean(image, k):
    """deid.redact.coarse's view before the integer adds (a float mean over two axes, rounded)."""
    h, w = image.shape[0] // k * k, image.shape[1] // k * k
    return np.rint(image[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))).astype(np.uint8)


@settings(deadline=None, max_examples=120)
@given(st.integers(1, 300), st.integers(1, 300), st.sampled_from([2, 4, 6, 8, 10, 16, 18]),
       st.sampled_from(["uniform", "two", "extremes"]), st.integers(0, 2 ** 32 - 1))
def test_coarse_block_mean_gives_the_float_mean_bytes(rows, cols, k, values, seed):
    """Every rounding case: two-valued blocks hit the exact halves (round half to even), extremes
    the largest sums (18 x 18 x 255 needs 32 bits)."""
    rng = np.random.default_rng(seed)
    if values == "uniform":
        image = rng.integers(0, 256, size=(rows, cols), dtype=np.uint8)
    elif values == "two":
        a = int(rng.integers(0, 255))
        image = (a + rng.integers(0, 2, size=(rows, cols))).astype(np.uint8)
    else:
        image = rng.choice(np.array([0, 255], np.uint8), size=(rows, cols))
    assert np.array_equal(redact._block_mean(image, k), reference_block_mean(image, k))


def reference_join_lines(cands):
    """deid.pixeltext._join_lines before its search stopped restarting from the top, the oracle."""
    out = [list(c) for c in cands]
    if len(out) > 300:
        return [tuple(c) for c in out]
    joined = True
    while joined:
        joined = False
        for i, a in enumerate(out):
            for b in out[i + 1:]:
                h = max(a[3] - a[1], b[3] - b[1])
                ov = min(a[3], b[3]) - max(a[1], b[1])
                gap = max(a[0], b[0]) - min(a[2], b[2])
                if a[4] == b[4] and ov >= 0.75 * min(a[3] - a[1], b[3] - b[1]) and gap <= h:
                    a[:4] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    out.remove(b)
                    joined = True
                    break
            if joined:
                break
    return [tuple(c) for c in out]


@st.composite
def line_candidates(draw):
    """Boxes on a few shared lines (so that many join, in chains), duplicates and boxes inside
    others among them (the removal is by value), both polarities."""
    n = draw(st.integers(0, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    lines = rng.integers(0, 60, size=max(1, n // 6 + 1))
    out = []
    for _ in range(n):
        if out and rng.random() < 0.1:
            out.append(out[int(rng.integers(len(out)))])          # a duplicate
            continue
        y0 = int(rng.choice(lines)) + int(rng.integers(-2, 3))
        h = int(rng.integers(1, 12))
        x0 = int(rng.integers(0, 120))
        out.append((x0, y0, x0 + int(rng.integers(1, 25)), y0 + h, bool(rng.random() < 0.8)))
    return out


@settings(deadline=None, max_examples=300)
@given(line_candidates())
def test_join_lines_gives_the_restarting_search_joins(cands):
    assert pixeltext._join_lines(cands) == reference_join_lines(cands)


def reference_stroke_ratio(crop):
    """deid.pixeltext._stroke_ratio with its loop over column groups, the oracle."""
    ink = crop < 128
    cols = ink.any(axis=0)
    d = np.diff(np.r_[0, cols.astype(np.int8), 0])
    heights = []
    for a, b in zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]):
        r = np.nonzero(ink[:, a:b].any(axis=1))[0]
        if r[-1] + 1 - r[0] >= 3:
            heights.append(r[-1] + 1 - r[0])
    p = np.pad(ink, ((0, 0), (1, 1))).astype(np.int8)
    dd = np.diff(p, axis=1)
    runs = np.nonzero(dd == -1)[1] - np.nonzero(dd == 1)[1]
    if not heights or runs.size == 0:
        return 0.0
    return float(np.median(runs)) / float(np.median(heights))


@settings(deadline=None, max_examples=300)
@given(st.integers(1, 40), st.integers(1, 80), st.floats(0.0, 1.0), st.integers(0, 2 ** 32 - 1))
def test_stroke_ratio_gives_the_per_group_values(rows, cols, share, seed):
    """Glyph-like crops (dark strokes in column groups with blank columns between) and noise."""
    rng = np.random.default_rng(seed)
    crop = np.full((rows, cols), 255, np.uint8)
    crop[rng.random((rows, cols)) < share] = 0
    crop[:, rng.random(cols) < 0.3] = 255              # blank columns split the groups
    assert pixeltext._stroke_ratio(crop) == reference_stroke_ratio(crop)

def _old_path(monkeypatch):
    monkeypatch.setattr(redact, "display", reference_display)
    monkeypatch.setattr(redact, "_PREFERRED", {})
    monkeypatch.setattr(pixeltext, "_filt", reference_filt)
    monkeypatch.setattr(pixeltext, "_quiet_test", reference_quiet_test)
    monkeypatch.setattr(pixeltext, "_work", reference_work)
    monkeypatch.setattr(pixeltext, "_components", reference_components)
    monkeypatch.setattr(pixeltext, "_join_lines", reference_join_lines)
    monkeypatch.setattr(pixeltext, "_stroke_ratio", reference_stroke_ratio)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, RLELossless,
                                    JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless])
@pytest.mark.parametrize("name,photometric", [("MR_small.dcm", "MONOCHROME2"), ("CT_small.dcm", "MONOCHROME1")])
def test_scan_gives_the_old_paths_boxes_and_output(monkeypatch, syntax, name, photometric):
    if not pixeltext.engine_available():
        pytest.skip("Tesseract is not installed")
    data = _with_text(name, syntax, photometric)
    results = []
    for old in (False, True):
        with monkeypatch.context() as m:
            if old:
                _old_path(m)
            ds = pydicom.dcmread(io.BytesIO(data))
            hints = pixeltext.hints_from(ds)
            out = redact.scan(ds, pixeltext.find_text, hints)
            written = None
            if out.arr is not None:
                redact.apply(ds, out, str(ds.file_meta.TransferSyntaxUID))
                written = bytes(ds.PixelData)
            results.append((out.boxes, dict(out.kinds), out.markers, out.arr, written))
    new, old = results
    assert new[0], "the drawn name must be found (else the comparison proves little)"
    assert new[:3] == old[:3]
    assert np.array_equal(new[3], old[3]) and new[4] == old[4]
