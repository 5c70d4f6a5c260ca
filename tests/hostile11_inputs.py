"""Hostile display attributes, pixel layouts and encapsulations for `vindr decode` (hostile11),
built from pydicom's bundled files. Each builder returns a data set (file meta included, marked
PatientIdentityRemoved YES) to write with :func:`save`. Shared by tests/test_hostile11.py and
bench/hostile11_bench.py."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian


def read(name: str) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file(name, download=False))
    ds.PatientIdentityRemoved = "YES"
    return ds


def save(ds: Dataset, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=False)
    return path


def ct() -> Dataset:
    """CT_small: 128x128, 16 bits, signed, rescale -1024."""
    return read("CT_small.dcm")


def _lut_item(desc, data, vr_data: str = "OW") -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", list(desc))
    if isinstance(data, (bytes, bytearray)):
        item.add_new(0x00283006, vr_data, bytes(data))
    else:
        item.add_new(0x00283006, "US", list(data))
    return item


def modality_lut(desc, data, vr_data: str = "OW") -> Dataset:
    ds = ct()
    for k in ("RescaleSlope", "RescaleIntercept"):
        if k in ds:
            del ds[k]
    ds.ModalityLUTSequence = Sequence([_lut_item(desc, data, vr_data)])
    return ds


def voi_lut(desc, data, vr_data: str = "OW", photometric: str = "MONOCHROME2") -> Dataset:
    ds = ct()
    ds.PhotometricInterpretation = photometric
    for k in ("WindowCenter", "WindowWidth"):
        if k in ds:
            del ds[k]
    ds.VOILUTSequence = Sequence([_lut_item(desc, data, vr_data)])
    return ds


def attrs(base=ct, **kw) -> Dataset:
    ds = base()
    for k, v in kw.items():
        if v is None:
            if k in ds:
                del ds[k]
        else:
            setattr(ds, k, v)
    return ds


def raw_set(ds: Dataset, tag: int, vr: str, value) -> Dataset:
    """An element written as given (a value pydicom would refuse to set through a keyword)."""
    ds.add_new(tag, vr, value)
    return ds


def frames_of(ds: Dataset) -> list[bytes]:
    n = int(ds.get("NumberOfFrames", 1) or 1)
    return list(generate_frames(ds.PixelData, number_of_frames=n))


def encapsulated(base: Dataset, frames: list[bytes], ts=None) -> Dataset:
    out = base.copy()
    out.PixelData = encapsulate(frames) if frames else b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    if ts is not None:
        out.file_meta.TransferSyntaxUID = ts
    return out


def j2k_markers(codestream: bytes) -> list[tuple[str, int]]:
    """(name, offset) of the main-header markers and each tile-part's SOT, and EOC."""
    names = {0xFF4F: "SOC", 0xFF51: "SIZ", 0xFF52: "COD", 0xFF53: "COC", 0xFF5C: "QCD", 0xFF5D: "QCC",
             0xFF64: "COM", 0xFF55: "TLM", 0xFF58: "PLT", 0xFF90: "SOT", 0xFF93: "SOD", 0xFFD9: "EOC",
             0xFF50: "CAP", 0xFF59: "CPF", 0xFF5E: "RGN", 0xFF5F: "POC"}
    out, i = [("SOC", 0)], 2
    n = len(codestream)
    while i + 4 <= n:
        m = int.from_bytes(codestream[i:i + 2], "big")
        if m == 0xFF90:         # SOT: Psot gives the tile-part length
            psot = int.from_bytes(codestream[i + 6:i + 10], "big")
            out.append(("SOT", i))
            sod = codestream.find(b"\xff\x93", i)
            if sod > 0:
                out.append(("SOD", sod))
            if psot == 0:
                break
            i += psot
            continue
        if m == 0xFFD9:
            out.append(("EOC", i))
            break
        if m not in names:
            break
        out.append((names[m], i))
        i += 2 + int.from_bytes(codestream[i + 2:i + 4], "big")
    return out


def native_grey(rows: int, cols: int, bits: int = 16, value=None, frames: int = 1, seed: int = 0) -> Dataset:
    """A native MONOCHROME2 image of the given size (a CT header carried over)."""
    ds = ct()
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if bits == 16 else np.uint8
    shape = (frames, rows, cols) if frames > 1 else (rows, cols)
    arr = np.full(shape, value, dtype=dtype) if value is not None else rng.integers(0, 4096 if bits == 16 else 256,
                                                                                     size=shape, dtype=dtype)
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def mr() -> Dataset:
    """MR_small: 64x64, 16 bits, unsigned-looking values stored signed? (as bundled)."""
    return read("MR_small.dcm")


def rgb() -> Dataset:
    """SC_rgb_small_odd: a tiny native RGB image."""
    return read("SC_rgb_small_odd.dcm")


def palette() -> Dataset:
    """examples_palette: a native PALETTE COLOR image, 16-bit LUT entries."""
    return read("examples_palette.dcm")
