"""What a chest selection must leave out: CT and MR slices, and a multi-frame fluoroscopy run.

The slices are derived from pydicom's bundled test files (CT_small.dcm: 128 x 128 CT,
MR_small.dcm: 64 x 64 MR; resolved with download=False, so nothing is fetched): slice k
is the source shifted down k rows (the top row repeated), integers only, so the bytes are
the same on every machine for a given pydicom. Headers carry the same planted PHI as the
radiographs (dataset.base_dataset) plus the Image Plane and CT / MR Image modules, and a
Frame of Reference UID (an original UID, recorded in planted_phi.json).
"""
from __future__ import annotations

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from vindr_cli.synth import modules as m
from vindr_cli.synth.dataset import base_dataset
from vindr_cli.synth.encode import encode_file
from vindr_cli.synth.modules import ImageContext
from vindr_cli.synth.phi import PhiRegistry

SOURCES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm"}
SLICE_MM = 5
RF_FRAMES = 3


def source_pixels(modality: str) -> np.ndarray:
    """The bundled test file's stored values (both are non-negative and below 4096)."""
    path = get_testdata_file(SOURCES[modality], download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom's bundled {SOURCES[modality]} is missing")
    arr = dcmread(path).pixel_array.astype(np.int64)
    if arr.min() < 0 or arr.max() >= 4096:
        raise ValueError(f"{SOURCES[modality]}: stored values outside 0..4095")
    return arr.astype(np.uint16)


def shifted_down(arr: np.ndarray, k: int) -> np.ndarray:
    """Rows moved down by k, the top row repeated: a neighbouring 'slice'."""
    if k == 0:
        return arr.copy()
    return np.concatenate([np.repeat(arr[:1], k, axis=0), arr[:-k]], axis=0)


def _plane(ds: Dataset, shape: tuple[int, int], index: int, spacing_tenths: int) -> None:
    spacing = f"{spacing_tenths / 10:g}"
    half = spacing_tenths * shape[0] // 20
    z = -100 - SLICE_MM * index
    ds.PixelSpacing = [spacing, spacing]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [f"-{half / 10:g}", f"-{half / 10:g}", str(z)]
    ds.SliceThickness = str(SLICE_MM)
    ds.SliceLocation = str(z)
    ds.PositionReferenceIndicator = ""


def slice_dataset(ctx: ImageContext, index: int, frame_of_reference: str,
                  registry: PhiRegistry) -> Dataset:
    """A CT or MR image header for slice `index` of its series."""
    ds = base_dataset(ctx, registry)
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PatientPosition = "HFS"
    _plane(ds, ctx.image.shape, index, 7 if ctx.modality == "CT" else 3)  # about the sources' 0.66 / 0.31 mm
    ds.AcquisitionNumber = 1
    if ctx.modality == "CT":
        ds.KVP = "120"
        ds.XRayTubeCurrent = 200
        ds.ExposureTime = 1000
        ds.ConvolutionKernel = "STANDARD"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.WindowCenterWidthExplanation = "MEDIASTINUM"
    else:
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "500", "15", 1
        ds.MagneticFieldStrength = "1.5"
        ds.ImagedNucleus = "1H"
    return ds


def render_slice(ctx: ImageContext, index: int, frame_of_reference: str,
                 registry: PhiRegistry) -> tuple[bytes, np.ndarray]:
    """(Part 10 bytes, stored pixels) of one CT / MR slice."""
    pixels = shifted_down(source_pixels(ctx.modality), 2 * index)
    if pixels.shape != ctx.image.shape:
        raise ValueError(f"{SOURCES[ctx.modality]} is {pixels.shape}, the plan says {ctx.image.shape}")
    ds = slice_dataset(ctx, index, frame_of_reference, registry)
    if ctx.modality == "MR":
        m.voi_window(ds, pixels)
    return encode_file(ds, pixels, ctx.image.transfer_syntax), pixels


def fluoro_frames(frame: np.ndarray) -> np.ndarray:
    """RF_FRAMES frames of a breathing run: the frame moved down 0, 2, 4 rows."""
    return np.stack([shifted_down(frame, 2 * k) for k in range(RF_FRAMES)])


def rf_modules(ds: Dataset, ctx: ImageContext, frames: np.ndarray) -> None:
    """Multi-frame + Cine + X-Ray Image / Acquisition modules of an RF image (3 frames)."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.NumberOfFrames = len(frames)
    ds.FrameIncrementPointer = Tag("FrameTime")
    ds.FrameTime = "200"
    ds.CineRate = 5
    ds.PixelIntensityRelationship = "LIN"
    ds.PositionerMotion = "STATIC"
    ds.ViewPosition = m.view_position(ctx.image.view)
    ds.KVP, ds.XRayTubeCurrent, ds.ExposureTime = "75", 3, 200
    ds.RadiationSetting = "GR"
    ds.ImagerPixelSpacing = ["0.4", "0.4"]
    m.voi_window(ds, frames[0])
