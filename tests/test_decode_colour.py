"""`vindr decode` on colour and multi-frame files: pydicom's bundled test files (no download).

Colour images become RGB PNGs without windowing; YBR_* are converted to RGB; a palette is
applied; every frame of a multi-frame file is its own image (``_f0001`` ...), for colour and
grayscale alike; images.parquet records photometric and channels.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from vindr_cli.tables import read_rows

from helpers import decoded_rows, marked_parts, run_cli

FILES = {
    "rgb.dcm": "examples_rgb_color.dcm",                    # RGB, native, 8-bit
    "rgb_ref.dcm": "SC_rgb_rle.dcm",                         # RGB colour bars, RLE (lossless reference)
    "ybr422.dcm": "SC_ybr_full_422_uncompressed.dcm",         # YBR_FULL_422 native (2 samples per pixel stored)
    "ybr_jpeg.dcm": "SC_rgb_dcmtk_+eb+cy+n1.dcm",             # YBR_FULL, JPEG baseline
    "rct.dcm": "GDCMJ2K_TextGBR.dcm",                         # YBR_RCT, JPEG 2000 lossless
    "palette.dcm": "examples_palette.dcm",                    # PALETTE COLOR, 16-bit LUT entries
    "ybr_frames.dcm": "examples_ybr_color.dcm",               # YBR_FULL_422, JPEG, 30 frames (ultrasound)
    "rgb16_frames.dcm": "SC_rgb_rle_16bit_2frame.dcm",        # RGB 16-bit, 2 frames
    "grey_frames.dcm": "rtdose.dcm",                          # MONOCHROME2, 15 frames
    "truncated.dcm": "MR_truncated.dcm",
}


def _ds(name: str):
    """The test file, marked de-identified (decode refuses identified input by default)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file(FILES[name], download=False))
    ds.PatientIdentityRemoved = "YES"
    return ds


def _copy(name: str, dst: Path) -> None:
    """A copy of the test file marked PatientIdentityRemoved YES (a truncated file stays cut
    exactly where it was)."""
    header, pixels = marked_parts(get_testdata_file(FILES[name], download=False))
    dst.write_bytes(header + pixels)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    src = tmp_path_factory.mktemp("colour_in")
    for name, test_file in FILES.items():
        assert get_testdata_file(test_file, download=False), f"{test_file} is not bundled with pydicom"
        _copy(name, src / name)
    for name in ("rgb.dcm", "ybr_frames.dcm"):      # cut in the middle of native / encapsulated pixel data
        data = (src / name).read_bytes()
        (src / f"cut_{name}").write_bytes(data[: len(data) // 2])
    out = tmp_path_factory.mktemp("colour") / "out"
    p = run_cli("decode", src, out, "-j", "1", check=False)
    assert p.returncode == 0, p.stderr
    rows = decoded_rows(out, src)         # not a vindr anonymize OUTPUT: keyed names, mapped back here
    return out, {(r["input"], r["frame"]): r for r in rows}, rows


def _png(out: Path, row: dict) -> np.ndarray:
    im = Image.open(out / row["output"])
    return np.asarray(im)


def test_rgb_is_written_as_stored(decoded):
    out, by, _ = decoded
    r = by[("rgb.dcm", 0)]
    assert r["status"] == "ok" and r["photometric"] == "RGB" and r["channels"] == 3
    assert r["window_kind"] == "colour" and r["window_center"] is None
    img = _png(out, r)
    assert Image.open(out / r["output"]).mode == "RGB"
    assert np.array_equal(img, _ds("rgb.dcm").pixel_array)


@pytest.mark.parametrize("name,photometric,tolerance", [
    ("ybr422.dcm", "YBR_FULL_422", 1.0),      # chroma subsampling only
    ("ybr_jpeg.dcm", "YBR_FULL", 5.0),         # lossy JPEG
])
def test_ybr_becomes_rgb(decoded, name, photometric, tolerance):
    out, by, _ = decoded
    r = by[(name, 0)]
    assert r["status"] == "ok", r["reason"]
    assert r["photometric"] == photometric and r["channels"] == 3
    img = _png(out, r).astype(int)
    ref = _png(out, by[("rgb_ref.dcm", 0)]).astype(int)      # the same colour bars, stored as RGB
    assert img.shape == ref.shape == (100, 100, 3)
    assert np.abs(img - ref).mean() < tolerance
    raw_ybr = np.asarray(Image.open(out / r["output"]).convert("YCbCr")).astype(int)
    assert np.abs(raw_ybr - ref).mean() > 10 * tolerance      # writing YBR values unconverted would fail


def test_rct_j2k_is_rgb(decoded):
    out, by, _ = decoded
    r = by[("rct.dcm", 0)]
    assert r["status"] == "ok" and r["photometric"] == "YBR_RCT" and r["channels"] == 3
    img = _png(out, r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pydicom.pixels import iter_pixels
        stored = next(iter_pixels(get_testdata_file(FILES["rct.dcm"], download=False), as_rgb=False))
    assert np.array_equal(img, stored)                # RCT is undone by the codec: RGB, lossless
    assert not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]))


def test_palette_is_applied(decoded):
    out, by, _ = decoded
    r = by[("palette.dcm", 0)]
    assert r["status"] == "ok" and r["photometric"] == "PALETTE COLOR" and r["channels"] == 3
    assert r["lut"] == "palette"
    img = _png(out, r).astype(int)
    ds = _ds("palette.dcm")
    n, first, bits = (int(v) for v in ds.RedPaletteColorLookupTableDescriptor)
    n = n or 65536
    idx = np.clip(ds.pixel_array.astype(int) - first, 0, n - 1)
    for c, colour in enumerate(("Red", "Green", "Blue")):   # the LUT by hand, 16-bit entries -> 8-bit
        lut = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype="<u2").astype(float)
        want = np.floor(lut[idx] * 255 / ((1 << bits) - 1) + 0.5)
        assert np.array_equal(img[..., c], want), colour
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10


def test_multiframe_colour_gives_one_rgb_image_per_frame(decoded):
    out, by, rows = decoded
    frames = sorted((r for r in rows if r["input"] == "ybr_frames.dcm"), key=lambda r: r["frame"])
    assert [r["frame"] for r in frames] == list(range(30))
    assert [r["named"] for r in frames] == [f"ybr_frames_f{i:04d}.png" for i in range(1, 31)]
    ds = _ds("ybr_frames.dcm")
    ref = ds.pixel_array          # pydicom: (frames, rows, cols, 3), converted to RGB
    for r in frames[:: 7]:
        img = _png(out, r)
        assert img.shape == (240, 320, 3) and r["channels"] == 3
        assert np.abs(img.astype(int) - ref[r["frame"]].astype(int)).max() <= 1
    assert not np.array_equal(_png(out, frames[0]), _png(out, frames[-1]))


def test_multiframe_grey_gives_one_image_per_frame(decoded):
    out, by, rows = decoded
    frames = sorted((r for r in rows if r["input"] == "grey_frames.dcm"), key=lambda r: r["frame"])
    assert [r["named"] for r in frames] == [f"grey_frames_f{i:04d}.png" for i in range(1, 16)]
    images = [_png(out, r) for r in frames]
    assert all(im.shape == (10, 10) and r["channels"] == 1 and r["photometric"] == "MONOCHROME2"
               for im, r in zip(images, frames))
    assert len({im.tobytes() for im in images}) > 1          # each frame its own pixels


def test_16_bit_colour(decoded, tmp_path):
    out, by, _ = decoded
    ref = _ds("rgb16_frames.dcm").pixel_array                # (2, 100, 100, 3) uint16
    for f in (0, 1):
        r = by[("rgb16_frames.dcm", f)]
        assert r["bits_stored"] == 16 and r["bits"] == 8
        want = np.floor(ref[f].astype(float) * 255 / 65535 + 0.5)
        assert np.array_equal(_png(out, r), want)
    src = tmp_path / "in"
    src.mkdir()
    _copy("rgb16_frames.dcm", src / "a.dcm")
    run_cli("decode", src, tmp_path / "o16", "--bits", "16", "-j", "1")
    png = tmp_path / "o16" / next(r["output"] for r in decoded_rows(tmp_path / "o16", src) if r["frame"] == 0)
    assert png.read_bytes()[24:26] == bytes([16, 2])           # IHDR: bit depth 16, colour type RGB
    assert np.array_equal(np.asarray(Image.open(png)), ref[0] >> 8)   # Pillow reads the top byte
    run_cli("decode", src, tmp_path / "npy", "--bits", "16", "--format", "npy", "-j", "1")
    npy = next(r["output"] for r in decoded_rows(tmp_path / "npy", src) if r["frame"] == 1)
    assert npy.endswith("_f0002.npy") and np.array_equal(np.load(tmp_path / "npy" / npy), ref[1])


def test_colour_resized_per_channel(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _copy("rgb.dcm", src / "a.dcm")
    run_cli("decode", src, tmp_path / "o", "--size", "160", "-j", "1")
    r = read_rows(tmp_path / "o" / "images.parquet")[0]
    img = np.asarray(Image.open(tmp_path / "o" / r["output"])).astype(float)
    assert img.shape == (120, 160, 3) and r["scale_x"] == 0.5
    full = _ds("rgb.dcm").pixel_array.astype(float)
    box = full.reshape(120, 2, 160, 2, 3).mean(axis=(1, 3))       # area average of 2x2 blocks
    assert np.abs(img - box).max() <= 1


def test_truncated_reported_as_anonymize_does(decoded):
    _, by, _ = decoded
    for name in ("truncated.dcm", "cut_rgb.dcm", "cut_ybr_frames.dcm"):
        r = by[(name, None)]
        assert r["status"] == "failed"
        assert r["reason"] == "truncated pixel data (file ends before the pixel data does)", name


def test_colour_through_anonymize_then_decode(tmp_path, key_file):
    """Native YBR_FULL_422 stores 2 samples per pixel: anonymize must accept its length, and
    the de-identified file must decode to the same RGB image as the original."""
    src = tmp_path / "in"
    src.mkdir()
    for name in ("ybr422.dcm", "palette.dcm", "ybr_frames.dcm"):
        _copy(name, src / name)
    anon = tmp_path / "anon"
    run_cli("anonymize", src, anon, "--key", key_file, "--allow-burned-in", "--layout", "vindr", "-j", "1")
    manifest = read_rows(anon / "manifest.parquet")
    assert {r["status"] for r in manifest} == {"ok"}, [r["reason"] for r in manifest]
    run_cli("decode", src, tmp_path / "d0", "-j", "1")
    run_cli("decode", anon, tmp_path / "d1", "-j", "1")
    before = {(r["input"], r["frame"]): r for r in decoded_rows(tmp_path / "d0", src)}
    by_input = {r["input_path"]: r["output"] for r in read_rows(tmp_path / "anon.linkage.parquet")}
    after = {(r["input"], r["frame"]): r for r in read_rows(tmp_path / "d1" / "images.parquet")}
    assert len(after) == len(before) == 1 + 1 + 30
    modified = {m["output"] for m in manifest if m["pixels_modified"]}
    assert by_input["palette.dcm"] in modified       # the US palette image shows text: redacted
    for (name, frame), r in before.items():
        a = after[(by_input[name], frame)]
        assert a["channels"] == r["channels"] == 3
        if by_input[name] not in modified:        # a redacted one is re-written (as RGB when it was YBR)
            assert a["photometric"] == r["photometric"]
            assert np.array_equal(_png(tmp_path / "d0", r), _png(tmp_path / "d1", a))


@pytest.mark.parametrize("photometric,spp,reason", [
    ("HSV", 3, "unsupported photometric interpretation: HSV"),
    ("YBR_PARTIAL_420", 3, "unsupported photometric interpretation: YBR_PARTIAL_420"),
    ("Nguyen Van An", 1, "unsupported photometric interpretation: non-standard"),
    ("RGB", 1, "RGB image without three samples per pixel"),
])
def test_unsupported_or_inconsistent_photometric_has_a_fixed_reason(tmp_path, photometric, spp, reason):
    ds = _ds("rgb.dcm")
    if spp == 1:
        ds.PixelData = ds.PixelData[: ds.Rows * ds.Columns]
        ds.SamplesPerPixel = 1
        del ds.PlanarConfiguration
    ds.PhotometricInterpretation = photometric
    src = tmp_path / "in"
    src.mkdir()
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    run_cli("decode", src, tmp_path / "o", "-j", "1")
    r = read_rows(tmp_path / "o" / "images.parquet")[0]
    assert r["status"] == "failed" and r["reason"] == reason


@pytest.mark.skipif(shutil.which("dcmj2pnm") is None, reason="dcmtk dcmj2pnm not on PATH")
@pytest.mark.parametrize("name", ["rgb.dcm", "ybr422.dcm", "ybr_jpeg.dcm", "palette.dcm", "ybr_frames.dcm",
                                  "rgb16_frames.dcm"])
def test_colour_matches_dcmtk(decoded, tmp_path, name):
    """dcmtk's dcmj2pnm (its own YBR conversion, palette and 16 -> 8 bit scaling) agrees within
    one level, frame by frame."""
    import subprocess

    out, by, _ = decoded
    frames = sorted((r for r in by.values() if r["input"] == name), key=lambda r: r["frame"] or 0)
    src = get_testdata_file(FILES[name], download=False)
    p = subprocess.run(["dcmj2pnm", "+on", "+Fa", src, str(tmp_path / "ref.png")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for r in frames:
        ref_path = tmp_path / f"ref.png.{r['frame'] or 0}.png"      # +Fa: one file per frame
        ref = np.asarray(Image.open(ref_path)).astype(int)
        ours = _png(out, r).astype(int)
        assert ref.shape == ours.shape and ref.ndim == 3
        assert np.abs(ref - ours).max() <= 1, (name, r["frame"])


def test_ybr_ict_jpeg2000_is_rgb(tmp_path):
    """pydicom bundles no YBR_ICT file: encode the RGB example as lossy JPEG 2000 with the
    irreversible colour transform (MCT on) through OpenJPEG, label it YBR_ICT as PS3.5 8.2.4
    requires, and check that decode gives back RGB close to the original."""
    openjpeg = pytest.importorskip("openjpeg")
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000

    ds = _ds("rgb.dcm")
    original = ds.pixel_array.copy()
    cs = openjpeg.encode(original, photometric_interpretation=1, use_mct=True, compression_ratios=[8])
    cod = cs.find(b"\xff\x52")
    assert cs[cod + 8] == 1                                   # COD: multiple component transform on
    ds.PixelData = encapsulate([cs])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000
    ds.PhotometricInterpretation = "YBR_ICT"
    src = tmp_path / "in"
    src.mkdir()
    ds.save_as(src / "ict.dcm", enforce_file_format=True)
    for size, shape in ((None, (240, 320, 3)), ("160", (120, 160, 3))):
        out = tmp_path / f"o{size}"
        run_cli("decode", src, out, "-j", "1", *(["--size", size] if size else []))
        r = read_rows(out / "images.parquet")[0]
        assert r["status"] == "ok" and r["photometric"] == "YBR_ICT" and r["channels"] == 3 and r["reduce"] == 0
        img = _png(out, r).astype(float)
        assert img.shape == shape
        want = original.astype(float) if size is None else original.astype(float).reshape(120, 2, 160, 2, 3).mean(axis=(1, 3))
        assert np.abs(img - want).mean() < 3
