"""Pixel encoding for the five transfer syntaxes, and lossless round-trip checks.

Uncompressed: explicit / implicit VR little endian. RLE via pydicom's native
encoder, JPEG 2000 lossless via pylibjpeg-openjpeg, JPEG lossless SV1
(process 14, selection value 1) via GDCM. All encoders are deterministic.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
)

TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGLosslessSV1, RLELossless)
COMPRESSED = (JPEG2000Lossless, JPEGLosslessSV1, RLELossless)


def set_pixels(ds: Dataset, pixels: np.ndarray, transfer_syntax: str) -> None:
    """Store `pixels` in `ds` encoded with `transfer_syntax` (file meta updated)."""
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"unsupported transfer syntax {transfer_syntax}")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW" if pixels.dtype.itemsize == 2 else "OB"
    if transfer_syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif transfer_syntax == RLELossless:
        ds.compress(RLELossless, pixels, encoding_plugin="pydicom", generate_instance_uid=False)
    elif transfer_syntax == JPEG2000Lossless:
        ds.compress(JPEG2000Lossless, pixels, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    elif transfer_syntax == JPEGLosslessSV1:
        ds.PixelData = _gdcm_jpeg_lossless(ds, pixels)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1


def _pixel_only_dataset(ds: Dataset, pixels: np.ndarray) -> Dataset:
    out = Dataset()
    out.file_meta = FileMetaDataset()
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out.SOPClassUID, out.SOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    for keyword in ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
                    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        setattr(out, keyword, getattr(ds, keyword))
    out.PixelData = pixels.tobytes()
    out["PixelData"].VR = "OW"
    return out


def _gdcm_jpeg_lossless(ds: Dataset, pixels: np.ndarray) -> bytes:
    """Encapsulated JPEG lossless SV1 pixel data, produced by GDCM."""
    return gdcm_transcode(_pixel_only_dataset(ds, pixels), JPEGLosslessSV1).PixelData


# GDCM's names for the syntaxes it can encode
GDCM_TS = {
    "1.2.840.10008.1.2.4.57": "JPEGLosslessProcess14", JPEGLosslessSV1: "JPEGLosslessProcess14_1",
    "1.2.840.10008.1.2.4.80": "JPEGLSLossless", "1.2.840.10008.1.2.4.81": "JPEGLSNearLossless",
    "1.2.840.10008.1.2.4.50": "JPEGBaselineProcess1",
}
# GDCM writes these too, on request only: callers that route a syntax to GDCM when it is in
# GDCM_TS (tests/test_decode.py, bench/decode_backends.py) encode JPEG 2000 with
# pylibjpeg-openjpeg, and bench/decode_corpus.py asks for GDCM's JPEG 2000 by name
GDCM_ALSO = {JPEG2000Lossless: "JPEG2000Lossless"}


def gdcm_transcode(ds: Dataset, transfer_syntax: str, *, jpeg_quality: int = 90, jpegls_error: int = 2,
                   path: Path | None = None) -> Dataset:
    """``ds`` (uncompressed) re-encoded by GDCM to one of GDCM_TS or GDCM_ALSO, read back with
    pydicom. Lossy settings apply to JPEG baseline (quality) and JPEG-LS near-lossless (error).
    ``path``: GDCM's file is written there (as GDCM wrote it) instead of a temporary name."""
    import gdcm

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = str(Path(tmp, "src.dcm")), str(path if path is not None else Path(tmp, "dst.dcm"))
        ds.save_as(src, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(src)
        if not reader.Read():
            raise RuntimeError("GDCM could not read the temporary file")
        change = gdcm.ImageChangeTransferSyntax()
        name = {**GDCM_TS, **GDCM_ALSO}[transfer_syntax]
        change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, name)))
        if transfer_syntax == "1.2.840.10008.1.2.4.81":
            codec = gdcm.JPEGLSCodec()
            codec.SetLossless(False)
            codec.SetLossyError(jpegls_error)
            change.SetUserCodec(codec)
        elif transfer_syntax == "1.2.840.10008.1.2.4.50":
            codec = gdcm.JPEGCodec()
            codec.SetLossless(False)
            codec.SetQuality(jpeg_quality)
            change.SetUserCodec(codec)
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise RuntimeError("GDCM encoding failed")
        writer = gdcm.ImageWriter()
        writer.SetFileName(dst)
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise RuntimeError("GDCM could not write the encoded file")
        return pydicom.dcmread(dst)


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def check_roundtrip(data: bytes, pixels: np.ndarray) -> None:
    """Raise if the encoded file does not decode exactly to `pixels`."""
    decoded = pydicom.dcmread(io.BytesIO(data)).pixel_array
    if decoded.shape != pixels.shape or not np.array_equal(decoded, pixels):
        raise AssertionError("encoded pixel data does not round-trip losslessly")


def encode_file(ds: Dataset, pixels: np.ndarray, transfer_syntax: str, verify: bool = True) -> bytes:
    """Encode pixels into `ds` and return the Part 10 file bytes (round-trip checked)."""
    set_pixels(ds, pixels, transfer_syntax)
    data = to_bytes(ds)
    if verify:
        check_roundtrip(data, pixels)
    return data
