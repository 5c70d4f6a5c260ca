"""Our display pipeline against an independent renderer: dcmtk's dcmj2pnm (dcmimgle).

Command: ``dcmj2pnm -O +op <VOI flag> in.dcm out.pgm`` — ``-O`` no overlays (we do not burn
them in), ``+op`` 8-bit binary PGM; VOI: ``+Wi n`` n-th header window, ``+Wl n`` n-th VOI LUT
Sequence item, ``+Ww C W`` explicit window (dcmtk's default is *no* windowing). The Modality
LUT (rescale or LUT Sequence) is on by default (``+M``). Every pixel must agree within one
grey level (max |diff| <= 1) at full size.

Where dcmtk (3.6.7) and we differ, and why:
* Rounding: dcmtk truncates the windowed value to an integer, we round half up
  (``floor(y + 0.5)``): hence the +-1 tolerance; we are never more than 1 above dcmtk.
* Pixel padding: dcmtk does not paint Pixel Padding Value pixels black (it windows them like
  any other value); PS3.3 C.7.5.1.1.2 says they are not part of the image, we paint them 0.
  Padding pixels are left out of the comparison (and checked to be 0 on our side).
* Polarity: dcmtk lets a present Presentation LUT Shape decide (IDENTITY = never inverted,
  also for MONOCHROME1). We invert when MONOCHROME1 or INVERSE, so the non-conformant
  MONOCHROME1 + IDENTITY renders as a positive here and as a negative in dcmtk
  (test_monochrome1_identity_differs pins that). MONOCHROME1 + INVERSE agrees: one inversion.
* VOI LUT output scaling: dcmtk maps entry v to v * 256 / 2**bits (truncated), the standard
  range 0 .. 2**bits - 1 maps to 0 .. 255 here: within the tolerance.
* LINEAR_EXACT: dcmtk 3.6.7 does not know it (warns, uses LINEAR), so it is tested against the
  standard's formula in test_voi.py instead of against dcmtk.
* JPEG 2000: dcmj2pnm cannot decode it; the sample VOI LUT image (JPEG 2000 lossless) is
  written uncompressed first (pydicom decode), our side reads the original file.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLossless, JPEGLosslessSV1, RLELossless, generate_uid,
)

from vindr_cli.pixels.voi import display_params, padding_mask, stored_values
from vindr_cli.pixels.window import render

pytestmark = pytest.mark.skipif(shutil.which("dcmj2pnm") is None, reason="dcmtk dcmj2pnm not on PATH")

SAMPLE = Path(__file__).resolve().parent.parent / "sample_dicoms"
DCMTK_READABLE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLossless, JPEGLosslessSV1, RLELossless}


# ------------------------------------------------------------------ helpers

def read_pgm(path: Path) -> np.ndarray:
    """A binary (P5) PGM: magic, width, height, maxval (comments allowed), one whitespace, data."""
    b = path.read_bytes()
    fields, i = [], 0
    while len(fields) < 4:
        while b[i:i + 1].isspace():
            i += 1
        if b[i:i + 1] == b"#":
            while b[i:i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        j = i
        while not b[j:j + 1].isspace():
            j += 1
        fields.append(b[i:j])
        i = j
    assert fields[0] == b"P5", fields[0]
    w, h, maxval = int(fields[1]), int(fields[2]), int(fields[3])
    dtype = np.uint8 if maxval < 256 else np.dtype(">u2")
    return np.frombuffer(b[i + 1:], dtype=dtype, count=w * h).reshape(h, w)


def dcmtk_render(path: Path, *voi: str) -> np.ndarray:
    """dcmj2pnm's 8-bit rendering (written to a temporary folder, never beside the input)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pgm"
        proc = subprocess.run(["dcmj2pnm", "-O", "+op", *voi, str(path), str(out)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return read_pgm(out)


def ours(path: Path, mode: str = "header", window_index: int = 0):
    ds = pydicom.dcmread(path)
    image, used = render(ds.pixel_array, display_params(ds, window_index), mode)
    return image, used, ds


def assert_agree(path: Path, voi: tuple[str, ...], mode="header", window_index=0, compare_path=None):
    """Our 8-bit output equals dcmtk's within 1 grey level at every non-padding pixel."""
    mine, used, ds = ours(path, mode, window_index)
    theirs = dcmtk_render(compare_path or path, *voi)
    assert mine.shape == theirs.shape
    keep = ~padding_mask(stored_values(ds.pixel_array, display_params(ds)), display_params(ds))
    diff = mine.astype(int) - theirs.astype(int)
    assert np.abs(diff[keep]).max() <= 1, (path.name, voi, np.unique(diff, return_counts=True))
    assert (mine[~keep] == 0).all()
    assert int(mine[keep].max()) - int(mine[keep].min()) >= 150     # a real image, not a flat one
    return mine, theirs, used


def radiograph(rows=48, cols=64, signed=False, seed=0) -> np.ndarray:
    """12-bit ramp + noise covering the whole stored range (both clip regions get pixels)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 4095, cols)[None, :] + np.linspace(-300, 300, rows)[:, None]
    img = np.clip(ramp + rng.normal(0, 60, (rows, cols)), 0, 4095).round().astype(np.int64)
    return img - 2048 if signed else img


def write(path: Path, arr: np.ndarray, photometric: str, signed=False, **attrs) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"   # DX
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, int(signed)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = arr.astype(np.int16 if signed else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def lut_item(desc, data, explanation="") -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", list(desc))
    item.add_new(0x00283006, "US", [int(v) for v in data])
    if explanation:
        item.LUTExplanation = explanation
    return item


GAMMA = (4095 * (np.arange(4096) / 4095) ** 0.6).round()                 # 12-bit VOI LUT
S_CURVE = 65535 / (1 + np.exp(-(np.arange(3000) - 1500) / 300))          # 16-bit entries, from 500
MODALITY = (np.sqrt(np.arange(4096) / 4095) * 8000).round()             # 13-bit modality values

CASES = {
    # name: (header attributes, our mode, dcmtk VOI flags)
    "window": (dict(WindowCenter=2048, WindowWidth=3000), "header", ("+Wi", "1")),
    "second_window": (dict(WindowCenter=[2048, 1200], WindowWidth=[3000, 800]), "header", ("+Wi", "2")),
    "sigmoid": (dict(WindowCenter=2000, WindowWidth=1500, VOILUTFunction="SIGMOID"), "header", ("+Wi", "1")),
    "explicit": (dict(), "1500,2500", ("+Ww", "1500", "2500")),
    "voi_lut": (dict(VOILUTSequence=Sequence([lut_item([4096, 0, 12], GAMMA, "GAMMA")])), "header", ("+Wl", "1")),
    "voi_lut_first_500_16bit": (dict(VOILUTSequence=Sequence([lut_item([3000, 500, 16], S_CURVE)])), "header",
                                ("+Wl", "1")),
    "rescale": (dict(RescaleSlope="0.5", RescaleIntercept="-200", WindowCenter=800, WindowWidth=1600),
                "header", ("+Wi", "1")),
    "modality_lut_sequence": (dict(ModalityLUTSequence=Sequence([lut_item([4096, 0, 13], MODALITY)]),
                                   WindowCenter=5000, WindowWidth=6000), "header", ("+Wi", "1")),
    "modality_lut_and_voi_lut": (dict(ModalityLUTSequence=Sequence([lut_item([4096, 0, 13], MODALITY)]),
                                      VOILUTSequence=Sequence([lut_item([8192, 0, 12], GAMMA.repeat(2))])),
                                 "header", ("+Wl", "1")),
}


# ------------------------------------------------------------------ synthetic files

@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_synthetic_agrees_with_dcmtk(tmp_path, case, photometric):
    attrs, mode, voi = CASES[case]
    path = write(tmp_path / f"{case}.dcm", radiograph(), photometric, **attrs)
    index = 1 if case == "second_window" else 0
    mine, theirs, used = assert_agree(path, voi, mode, index)
    assert used.inverted is (photometric == "MONOCHROME1")
    assert used.kind == {"header": "voi_lut" if "voi_lut" in case else "window"}.get(mode, "explicit")
    if case == "second_window":
        assert (used.center, used.width, used.index) == (1200, 800, 1)


def test_signed_pixels_agree(tmp_path):
    path = write(tmp_path / "signed.dcm", radiograph(signed=True), "MONOCHROME2", signed=True,
                 WindowCenter=-100, WindowWidth=3000)
    assert_agree(path, ("+Wi", "1"))


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_presentation_lut_inverse_agrees(tmp_path, photometric):
    path = write(tmp_path / "inv.dcm", radiograph(), photometric, WindowCenter=2048, WindowWidth=3000,
                 PresentationLUTShape="INVERSE")
    mine, _, used = assert_agree(path, ("+Wi", "1"))
    assert used.inverted and mine[:, 0].mean() > 200       # low stored values (left) shown white


def test_monochrome1_identity_differs(tmp_path):
    """Documented difference: dcmtk shows MONOCHROME1 + IDENTITY as a negative, we do not."""
    path = write(tmp_path / "m1id.dcm", radiograph(), "MONOCHROME1", WindowCenter=2048, WindowWidth=3000,
                 PresentationLUTShape="IDENTITY")
    mine, used, _ = ours(path)
    theirs = dcmtk_render(path, "+Wi", "1")
    assert used.inverted
    assert np.abs(mine.astype(int) - (255 - theirs.astype(int))).max() <= 1


def test_padding_excluded_from_comparison(tmp_path):
    img = radiograph()
    img[:6, :] = 4095                                  # padding: would window to white
    path = write(tmp_path / "pad.dcm", img, "MONOCHROME2", WindowCenter=2048, WindowWidth=3000,
                 PixelPaddingValue=4095)
    mine, theirs, _ = assert_agree(path, ("+Wi", "1"))
    assert (mine[:6] == 0).all() and (theirs[:6] == 255).all()   # dcmtk does not paint padding


# ------------------------------------------------------------------ sample_dicoms/export

def special_files() -> dict[str, list[str]]:
    return json.loads((SAMPLE / "planted_phi.json").read_text())["special_files"]


def windowed_sample_files() -> list[tuple[Path, int, str, str]]:
    """(path, number of header windows, photometric, modality) for every CR/DX image of the
    export with plain header windows in a transfer syntax dcmtk decodes."""
    # the blank (constant) radiograph has nothing to compare: assert_agree wants a real image
    skip = {SAMPLE / p for key in ("truncated", "zero_byte", "voi_lut", "blank") for p in special_files()[key]}
    found = []
    for path in sorted((SAMPLE / "export").rglob("*")):
        if not path.is_file() or path in skip:
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        ts = ds.get("file_meta", Dataset()).get("TransferSyntaxUID")
        if ds.get("Modality") in ("CR", "DX") and ts in DCMTK_READABLE and "WindowCenter" in ds:
            found.append((path, ds["WindowCenter"].VM, str(ds.PhotometricInterpretation), ds.Modality))
    return found


def test_sample_selection_covers_what_it_should():
    files = windowed_sample_files()
    kinds = {(photometric, modality) for _, _, photometric, modality in files}
    assert {("MONOCHROME1", "CR"), ("MONOCHROME2", "DX")} <= kinds
    paths = {p for p, *_ in files}
    for key in ("rescale", "padding"):
        assert SAMPLE / special_files()[key][0] in paths
    assert any(n > 1 for _, n, *_ in files)             # the image with two windows


@pytest.mark.parametrize("entry", windowed_sample_files(), ids=lambda e: e[0].name)
def test_sample_windows_agree_with_dcmtk(entry):
    path, n_windows, photometric, _ = entry
    for i in range(n_windows):
        _, _, used = assert_agree(path, ("+Wi", str(i + 1)), window_index=i)
        assert used.kind == "window" and used.index == i
        assert used.inverted is (photometric == "MONOCHROME1")


def test_sample_rescale_file_uses_modality_values():
    path = SAMPLE / special_files()["rescale"][0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert float(ds.RescaleSlope) != 1 and ds.PhotometricInterpretation == "MONOCHROME1"
    assert_agree(path, ("+Wi", "1"))
    # and dcmtk without the modality LUT (-M) is clearly different: the rescale matters
    mine, _, _ = ours(path)
    assert np.abs(mine.astype(int) - dcmtk_render(path, "-M", "+Wi", "1").astype(int)).max() > 1


def test_sample_voi_lut_agrees_with_dcmtk(tmp_path):
    path = SAMPLE / special_files()["voi_lut"][0]
    ds = pydicom.dcmread(path)
    assert "VOILUTSequence" in ds
    ds.decompress()                                     # JPEG 2000: dcmj2pnm cannot decode it
    plain = tmp_path / "voi_lut_uncompressed.dcm"
    ds.save_as(plain, enforce_file_format=True)
    _, _, used = assert_agree(path, ("+Wl", "1"), compare_path=plain)
    assert used.kind == "voi_lut" and used.lut == "VOI LUT Sequence item 1"     # never the LUTExplanation
