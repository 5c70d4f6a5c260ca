"""The same real image stored differently, for the near-duplicate tests and bench/phash_qc_bench.py.

Each function takes a pydicom Dataset of a real grayscale image and returns a new Dataset
(a copy: the input is not changed) with new SOP Instance UID, written by ``save``:

lossless_copy   RLE Lossless (pydicom's encoder): the same stored values
lossy_copy      what a PACS exporting 8-bit lossy JPEG does: the header-windowed display
                image (``pixels.window.render``) as JPEG Baseline (Pillow, quality q),
                MONOCHROME2, Lossy Image Compression 01, no window left in the header
resized_copy    stored values area-averaged to 1/factor of each side, native little endian
rewindowed_copy the same stored values with another Window Center/Width in the header
"""
from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid

from vindr_cli.pixels.resize import resize
from vindr_cli.pixels.voi import display_params
from vindr_cli.pixels.window import render

NO_WINDOW = ("WindowCenter", "WindowWidth", "VOILUTSequence", "VOILUTFunction", "WindowCenterWidthExplanation",
             "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence", "PresentationLUTShape",
             "PixelPaddingValue", "PixelPaddingRangeLimit", "SmallestImagePixelValue", "LargestImagePixelValue")


def _new(ds):
    out = copy.deepcopy(ds)
    uid = generate_uid()
    out.SOPInstanceUID = uid
    out.file_meta.MediaStorageSOPInstanceUID = uid
    return out


def _frame(ds) -> np.ndarray:
    arr = ds.pixel_array
    return arr[0] if int(ds.get("NumberOfFrames") or 1) > 1 else arr


def _single_frame(out) -> None:
    for kw in ("NumberOfFrames", "FrameIncrementPointer", "PerFrameFunctionalGroupsSequence"):
        if kw in out:
            del out[kw]


def lossless_copy(ds):
    out = _new(ds)
    if out.file_meta.TransferSyntaxUID.is_compressed:
        out.decompress()
    out.compress(RLELossless)
    return out


def lossy_copy(ds, quality: int = 75):
    out = _new(ds)
    shown, _ = render(_frame(ds), display_params(ds), "header", out_bits=8)
    buf = io.BytesIO()
    Image.fromarray(shown.astype(np.uint8), mode="L").save(buf, format="JPEG", quality=quality)
    for kw in NO_WINDOW:
        if kw in out:
            del out[kw]
    _single_frame(out)
    out.PhotometricInterpretation = "MONOCHROME2"
    out.SamplesPerPixel = 1
    out.BitsAllocated, out.BitsStored, out.HighBit, out.PixelRepresentation = 8, 8, 7, 0
    out.LossyImageCompression = "01"
    out.LossyImageCompressionMethod = "ISO_10918_1"
    out.PixelData = encapsulate([buf.getvalue()])
    out["PixelData"].VR = "OB"
    out.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return out


def resized_copy(ds, factor: int = 2):
    out = _new(ds)
    frame = _frame(ds)
    rows, cols = frame.shape
    small = resize(frame.astype(np.float32), max(1, rows // factor), max(1, cols // factor))
    info = np.iinfo(frame.dtype)
    small = np.clip(np.floor(small + 0.5), info.min, info.max).astype(frame.dtype)
    _single_frame(out)
    out.Rows, out.Columns = small.shape
    out.PixelData = small.astype(small.dtype.newbyteorder("<")).tobytes()
    out["PixelData"].VR = "OW" if frame.dtype.itemsize > 1 else "OB"
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "PixelSpacing" in out:
        out.PixelSpacing = [float(v) * factor for v in out.PixelSpacing]
    return out


def rewindowed_copy(ds, shift: float = 0.15, scale: float = 0.7):
    """Window centre moved by ``shift`` x width and width scaled by ``scale`` (from the header's
    window, else from the stored values' 1st..99th percentiles)."""
    out = _new(ds)
    p = display_params(ds)
    if p.window_center is not None and p.window_width:
        c, w = p.window_center, p.window_width
    else:
        v = _frame(ds).astype(np.float64) * p.rescale_slope + p.rescale_intercept
        lo, hi = np.percentile(v, (1, 99))
        c, w = (lo + hi) / 2, max(hi - lo, 2.0)
    for kw in ("VOILUTSequence", "WindowCenter", "WindowWidth", "VOILUTFunction"):
        if kw in out:
            del out[kw]
    out.WindowCenter = f"{c + shift * w:.2f}"[:16]
    out.WindowWidth = f"{w * scale:.2f}"[:16]
    return out


def save(ds, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
