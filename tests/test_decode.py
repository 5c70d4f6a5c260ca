"""vindr_cli.pixels.decode: exact lossless decoding per transfer syntax and backend, fallback,
reduced-resolution JPEG 2000, threads, the device switch and bad input."""
from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

from vindr_cli.pixels import backends as B
from vindr_cli.synth.encode import GDCM_TS, gdcm_transcode
from vindr_cli.pixels.decode import (Decoded, DecodeError, check_grayscale, choose_reduce, decode,
                                     j2k_header)

REPO = Path(__file__).resolve().parent.parent
EXPORT = REPO / "sample_dicoms" / "export"
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PHI = "NGUYEN^VAN AN"


# --- helpers -----------------------------------------------------------------------------

def image(rows: int, cols: int, bits: int, signed: bool, seed: int = 0) -> np.ndarray:
    """A smooth gradient + noise covering the full stored range, both extremes included."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    smooth = 0.5 + 0.35 * np.sin(x / (cols / 5)) * np.cos(y / (rows / 4))
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    values = lo + smooth * (hi - lo) + rng.normal(0, 0.01 * (hi - lo), (rows, cols))
    values = np.clip(np.rint(values), lo, hi)
    values[0, 0], values[-1, -1] = lo, hi
    allocated = 8 if bits <= 8 else 16
    return values.astype(f"{'i' if signed else 'u'}{allocated // 8}")


def pixel_dataset(arr: np.ndarray, bits: int, photometric: str = "MONOCHROME2") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "2.25.12345"
    ds.PatientName = PHI
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = arr.dtype.itemsize * 8, bits, bits - 1
    ds.PixelRepresentation = int(arr.dtype.kind == "i")
    ds.PixelData = arr.tobytes()
    return ds


def reread(ds: Dataset) -> Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))




def encode(arr: np.ndarray, bits: int, ts: str, photometric: str = "MONOCHROME2") -> Dataset:
    """`arr` stored with transfer syntax `ts`, written to bytes and read back."""
    ds = pixel_dataset(arr, bits, photometric)
    if ts in GDCM_TS:
        out = gdcm_transcode(ds, ts)
        assert out.file_meta.TransferSyntaxUID == ts
        return out
    if ts == uid.ExplicitVRBigEndian:
        ds.PixelData = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    if ts in (uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian):
        ds.file_meta.TransferSyntaxUID = ts
    elif ts == uid.RLELossless:
        ds.compress(ts, encoding_plugin="pydicom", generate_instance_uid=False)
    elif ts == uid.JPEG2000Lossless:
        ds.compress(ts, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    return reread(ds)


def decodes_with_every_backend(ds: Dataset) -> dict[str, np.ndarray]:
    ts = ds.file_meta.TransferSyntaxUID
    out = {}
    for name in B.candidates(ts):
        if B.available(name, ts):
            result = decode(ds, backends=[name])
            assert result.backend == name and result.reduce == 0
            out[name] = result.frames[0]
    return out


def sample_files() -> list[Path]:
    files = []
    for p in sorted(EXPORT.rglob("*")):
        if p.is_file() and p.stat().st_size > 132:
            with open(p, "rb") as f:
                if f.read(132)[128:] == b"DICM":
                    files.append(p)
    return files


# --- the synthetic export ----------------------------------------------------------------

def test_sample_export_compressed_files_agree_across_backends():
    seen = set()
    for path in sample_files():
        ds = pydicom.dcmread(path)
        ts = ds.file_meta.TransferSyntaxUID
        if "PixelData" not in ds or not ts.is_compressed:
            continue
        seen.add(ts)
        results = decodes_with_every_backend(ds)
        assert len(results) >= 2, (path.name, list(results))
        first = next(iter(results.values()))
        assert first.shape == (ds.Rows, ds.Columns)
        assert first.dtype == np.uint16
        for name, arr in results.items():
            assert np.array_equal(arr, first), (path.name, name)
    assert seen == {uid.JPEG2000Lossless, uid.JPEGLosslessSV1, uid.RLELossless}


def test_sample_export_native_files_equal_stored_bytes():
    checked = 0
    for path in sample_files():
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
            continue
        expected_len = ds.Rows * ds.Columns * ds.BitsAllocated // 8
        if len(ds.PixelData) < expected_len:
            with pytest.raises(DecodeError) as err:
                decode(path)
            assert err.value.reason == "truncated pixel data"
            continue
        result = decode(path)
        dtype = np.uint8 if ds.BitsAllocated == 8 else np.dtype("<u2")
        expected = np.frombuffer(ds.PixelData[:expected_len], dtype).reshape(ds.Rows, ds.Columns)
        assert result.backend == "native"
        assert np.array_equal(result.frames[0], expected)
        checked += 1
    assert checked >= 8


# --- round trips: generated arrays, every lossless syntax, every backend ---------------------

CASES = [  # bits stored, signed, photometric
    (12, False, "MONOCHROME2"),
    (12, False, "MONOCHROME1"),
    (16, False, "MONOCHROME2"),
    (12, True, "MONOCHROME2"),
    (16, True, "MONOCHROME1"),
    (8, False, "MONOCHROME2"),
]
LOSSLESS = [uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian,
            uid.DeflatedExplicitVRLittleEndian, uid.RLELossless, uid.JPEG2000Lossless,
            uid.JPEGLossless, uid.JPEGLosslessSV1, uid.JPEGLSLossless]


@pytest.mark.parametrize("ts", LOSSLESS, ids=lambda t: t.name)
@pytest.mark.parametrize("bits,signed,photometric", CASES)
def test_lossless_round_trip_exact_with_every_backend(ts, bits, signed, photometric):
    original = image(67, 94, bits, signed, seed=bits + signed)   # 8-bit: even byte count for GDCM
    ds = encode(original, bits, ts, photometric)
    assert ds.file_meta.TransferSyntaxUID == ts
    result = decode(ds)
    assert result.transfer_syntax == ts
    assert result.backend == next(b for b in B.candidates(ts) if B.available(b, ts))
    assert result.frames[0].dtype == original.dtype
    assert np.array_equal(result.frames[0], original)
    for name, arr in decodes_with_every_backend(ds).items():
        assert arr.dtype == original.dtype, name
        assert np.array_equal(arr, original), name


def test_decode_from_path_and_multiframe(tmp_path):
    frames = np.stack([image(40, 50, 12, False, seed=s) for s in range(3)])
    ds = pixel_dataset(frames[0], 12)
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    ds.compress(uid.JPEG2000Lossless, frames, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    path = tmp_path / "multi.dcm"
    ds.save_as(path, enforce_file_format=True)
    for backends in (None, ["pylibjpeg-openjpeg"], ["gdcm-openjpeg"]):
        result = decode(path, backends=backends)
        assert len(result.frames) == 3
        assert all(np.array_equal(a, b) for a, b in zip(result.frames, frames))


# --- pydicom's test files ----------------------------------------------------------------

def reference(name: str) -> np.ndarray:
    return pydicom.dcmread(PYDICOM_FILES / name).pixel_array


def test_big_endian_equals_little_endian_original():
    result = decode(PYDICOM_FILES / "MR_small_bigendian.dcm")
    assert result.backend == "native" and result.transfer_syntax == uid.ExplicitVRBigEndian
    assert result.frames[0].dtype == np.dtype("int16") and result.frames[0].dtype.isnative
    assert np.array_equal(result.frames[0], reference("MR_small.dcm"))


def test_deflated():
    result = decode(PYDICOM_FILES / "image_dfl.dcm")
    assert result.transfer_syntax == uid.DeflatedExplicitVRLittleEndian
    assert result.backend == "native"
    assert np.array_equal(result.frames[0], reference("image_dfl.dcm"))


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_RLE.dcm"])
def test_lossless_mr_equals_uncompressed_mr(name):
    ds = pydicom.dcmread(PYDICOM_FILES / name)
    expected = reference("MR_small.dcm")
    results = decodes_with_every_backend(ds)
    assert len(results) >= 2
    for backend, arr in results.items():
        assert np.array_equal(arr, expected), backend


def test_j2k_sign_mismatch_and_lossy_match_pylibjpeg():
    for name in ("J2K_pixelrep_mismatch.dcm", "JPEG2000.dcm", "693_J2KI.dcm"):
        ds = pydicom.dcmread(PYDICOM_FILES / name)
        ref = decode(ds, backends=["pylibjpeg-openjpeg"]).frames[0]
        direct = decode(ds, backends=["openjpeg-direct"]).frames[0]
        assert np.array_equal(direct, ref), name      # the same OpenJPEG 2.5 underneath
        older = decode(ds, backends=["gdcm-openjpeg"]).frames[0]
        assert older.dtype == ref.dtype
        assert np.abs(older.astype(np.int64) - ref).max() <= 1, name   # OpenJPEG 2.3


def test_jpeg_baseline_lossy_close_to_reference():
    ds = pydicom.dcmread(PYDICOM_FILES / "SC_rgb_jpeg_dcmtk.dcm")
    ref = pydicom.pixels.pixel_array(ds, decoding_plugin="pylibjpeg")
    results = decodes_with_every_backend(ds)
    assert len(results) >= 2
    for backend, arr in results.items():
        assert arr.shape == ref.shape == (ds.Rows, ds.Columns, 3) and arr.dtype == np.uint8
        assert np.abs(arr.astype(int) - ref).mean() < 2, backend
    with pytest.raises(DecodeError) as err:
        check_grayscale(ds)
    assert err.value.reason == f"unsupported photometric interpretation: {ds.PhotometricInterpretation}"


def test_jpeg_extended_12_bit_falls_back_to_libjpeg():
    ds = pydicom.dcmread(PYDICOM_FILES / "JPGExtended.dcm")
    result = decode(ds, backends=["gdcm", "pydicom-pillow", "pylibjpeg-libjpeg"])
    assert result.backend == "pylibjpeg-libjpeg"      # pydicom's gdcm plugin refuses 12-bit
    assert np.array_equal(result.frames[0], reference("JPGExtended.dcm"))


def test_jpeg_ls_near_lossless():
    result = decode(PYDICOM_FILES / "JPEGLSNearLossless_16.dcm")
    assert result.transfer_syntax == uid.JPEGLSNearLossless
    assert result.backend == B.CANDIDATES[uid.JPEGLSNearLossless][0]
    ref = reference("JPEGLSNearLossless_16.dcm")
    assert result.frames[0].shape == ref.shape and result.frames[0].dtype == ref.dtype
    assert np.abs(result.frames[0].astype(int) - ref).max() <= 3


def test_broken_jpeg_file_every_backend_fails_with_fixed_reason():
    with pytest.raises(DecodeError) as err:
        decode(PYDICOM_FILES / "JPEG-lossy.dcm")      # a known-broken 12-bit JPEG
    assert err.value.reason == "no installed decoder could decode JPEG Extended (Process 2 and 4) pixel data"


# --- fallback ---------------------------------------------------------------------------

def j2k_dataset(rows=64, cols=80) -> tuple[Dataset, np.ndarray]:
    original = image(rows, cols, 12, False)
    return encode(original, 12, uid.JPEG2000Lossless), original


def test_unknown_backend_is_skipped():
    ds, original = j2k_dataset()
    result = decode(ds, backends=["does-not-exist", "pylibjpeg-openjpeg"])
    assert result.backend == "pylibjpeg-openjpeg"
    assert np.array_equal(result.frames[0], original)


def test_backend_that_raises_falls_back(monkeypatch):
    ds, original = j2k_dataset()
    real_run = B.run

    def run(name, *args, **kw):
        if name == "openjpeg-direct":
            raise RuntimeError(f"boom {PHI}")
        return real_run(name, *args, **kw)

    monkeypatch.setattr(B, "run", run)
    result = decode(ds)
    assert result.backend == B.CANDIDATES[uid.JPEG2000Lossless][1]
    assert np.array_equal(result.frames[0], original)


def test_corrupt_codestream_every_backend_fails(tmp_path):
    ds, _ = j2k_dataset()
    frame = B.encapsulated_frames(ds)[0]
    sot = frame.find(b"\xff\x90")
    garbage = np.random.default_rng(1).integers(0, 256, len(frame) - sot, dtype=np.uint8).tobytes()
    ds.PixelData = encapsulate([frame[:sot] + garbage])
    path = tmp_path / f"{PHI}.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DecodeError) as err:
        decode(path)
    assert err.value.reason == "no installed decoder could decode JPEG 2000 Image Compression (Lossless Only) pixel data"
    assert str(err.value) == err.value.reason
    for secret in (PHI, "NGUYEN", str(tmp_path)):
        assert secret not in str(err.value)


def test_no_candidate_installed():
    ds, _ = j2k_dataset()
    with pytest.raises(DecodeError) as err:
        decode(ds, backends=["does-not-exist", "pylibjpeg-rle"])   # rle cannot do J2K
    assert err.value.reason.startswith("no installed decoder could decode JPEG 2000")


# --- reduced-resolution JPEG 2000 ----------------------------------------------------------

def box_downsample(arr: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = (math.ceil(s / factor) * factor for s in arr.shape)
    padded = np.pad(arr.astype(np.float64), ((0, rows - arr.shape[0]), (0, cols - arr.shape[1])), mode="edge")
    return padded.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))


def radiograph_j2k(rows=1037, cols=803) -> tuple[Dataset, np.ndarray]:
    from vindr_cli.synth.radiograph import chest_frontal, to_stored

    rng = np.random.default_rng(3)
    original = to_stored(chest_frontal(rows, cols, rng).attenuation, 12, "MONOCHROME2", rng)
    return encode(original, 12, uid.JPEG2000Lossless), original


def test_j2k_header_levels_and_size():
    ds, _ = radiograph_j2k()
    ysiz, xsiz, yo, xo, levels = j2k_header(B.encapsulated_frames(ds)[0])
    assert (ysiz, xsiz, yo, xo) == (1037, 803, 0, 0)
    assert levels == 5          # OpenJPEG's default: 6 resolutions
    with pytest.raises(ValueError):
        j2k_header(b"\x00" * 40)


@pytest.mark.parametrize("backend", ["openjpeg-direct", "gdcm-openjpeg"])
def test_reduced_decode_shape_and_correlation(backend):
    ds, original = radiograph_j2k()
    full = decode(ds).frames[0]
    assert np.array_equal(full, original)
    result = decode(ds, min_size=200, backends=[backend, "pylibjpeg-openjpeg"])
    # 1037x803 -> r=1: 519x402, r=2: 260x201, r=3: 130x101 (< 200): r=2
    assert result.backend == backend and result.reduce == 2
    assert result.frames[0].shape == (math.ceil(1037 / 4), math.ceil(803 / 4)) == (260, 201)
    assert result.frames[0].dtype == original.dtype
    corr = np.corrcoef(result.frames[0].ravel().astype(float), box_downsample(full, 4).ravel())[0, 1]
    assert corr > 0.99


def test_target_bounds_each_side():
    ds, _ = radiograph_j2k()
    # 1037x803 with target (250, 400): rows allow r=2 (260) but columns only r=1 (402)
    result = decode(ds, target=(250, 400))
    assert result.reduce == 1 and result.frames[0].shape == (519, 402)
    assert decode(ds, target=(250, 190)).reduce == 2
    assert decode(ds, target=(250, 190), min_size=300).reduce == 1    # the larger bound wins
    assert choose_reduce(B.encapsulated_frames(ds)[0], 250, 190) == 2


def test_reduce_zero_equals_full_decode():
    ds, original = radiograph_j2k()
    result = decode(ds, min_size=900)      # 1037x803: even r=1 goes below 900
    assert result.reduce == 0 and np.array_equal(result.frames[0], original)
    frame = B.encapsulated_frames(ds)[0]
    for name in B.DIRECT:
        values, prec, signed = B._openjpeg(name).decode(frame, reduce=0)
        assert (prec, signed) == (12, False) and np.array_equal(values, original)


def test_reduce_is_capped_by_decomposition_levels():
    ds, _ = radiograph_j2k()
    assert choose_reduce(B.encapsulated_frames(ds)[0], 1) == 5
    result = decode(ds, min_size=1)
    assert result.reduce == 5
    assert result.frames[0].shape == (math.ceil(1037 / 32), math.ceil(803 / 32))


def test_min_size_ignored_for_other_syntaxes_and_without_direct_backend():
    original = image(64, 80, 12, False)
    rle = encode(original, 12, uid.RLELossless)
    result = decode(rle, min_size=16)
    assert result.reduce == 0 and np.array_equal(result.frames[0], original)
    ds, original = j2k_dataset()
    result = decode(ds, min_size=16, backends=["pylibjpeg-openjpeg"])
    assert (result.backend, result.reduce) == ("pylibjpeg-openjpeg", 0)
    assert np.array_equal(result.frames[0], original)


def test_threads_prefer_the_threaded_backend():
    ds, original = radiograph_j2k(256, 256)
    if not B._openjpeg("gdcm-openjpeg").threaded:
        pytest.skip("GDCM's OpenJPEG built without threads")
    result = decode(ds, threads=2)
    assert result.backend == "gdcm-openjpeg"
    assert np.array_equal(result.frames[0], original)
    assert decode(ds).backend == B.CANDIDATES[uid.JPEG2000Lossless][0]
    with pytest.raises(ValueError):
        decode(ds, threads=0)


# --- device -----------------------------------------------------------------------------

def test_cuda_without_gpu_is_an_error_and_auto_uses_cpu():
    from vindr_cli.pixels import gpu

    if gpu.gpu_available():
        pytest.skip("a GPU with nvImageCodec is present")
    ds, original = j2k_dataset()
    with pytest.raises(DecodeError) as err:
        decode(ds, device="cuda")
    assert err.value.reason == "CUDA requested but nvImageCodec/GPU not available"
    result = decode(ds, device="auto")
    assert result.backend in B.CANDIDATES[uid.JPEG2000Lossless]
    assert np.array_equal(result.frames[0], original)
    with pytest.raises(RuntimeError):
        gpu.decode_batch_gpu([(B.encapsulated_frames(ds)[0], uid.JPEG2000Lossless)])
    with pytest.raises(ValueError):
        decode(ds, device="tpu")


def test_cpu_path_does_not_import_gpu_module():
    code = ("import sys; from vindr_cli.pixels.decode import decode; "
            f"r = decode({str(PYDICOM_FILES / 'MR_small_jp2klossless.dcm')!r}); "
            "assert 'vindr_cli.pixels.gpu' not in sys.modules, 'gpu imported'; "
            "assert not any(m.startswith('nvidia') for m in sys.modules); print(r.backend)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in B.CANDIDATES[uid.JPEG2000Lossless]


# --- bad input --------------------------------------------------------------------------

def bad(ds_or_path) -> str:
    with pytest.raises(DecodeError) as err:
        decode(ds_or_path)
    reason = err.value.reason
    assert "\n" not in reason and PHI not in reason and "NGUYEN" not in reason
    return reason


def test_sample_bad_files():
    dang = EXPORT / "DANG QUOC BAO_PN0678901" / "20240815_CHEST_PN2408150013" / "S01_DX_PA"
    assert bad(dang / "IMG_DangQuocBao_0004.dcm") == "truncated pixel data"
    assert bad(dang / "IMG_DangQuocBao_0005.dcm") == "not a DICOM Part 10 file"
    assert bad(EXPORT / "Thumbs.db") == "not a DICOM Part 10 file"
    assert bad(EXPORT / "no-such-file.dcm") == "file cannot be read"
    assert bad(EXPORT / "HOANG THI MAI_20078901" / "CD_20240912" / "DICOMDIR").startswith("no pixel data")


def test_truncated_encapsulated_file(tmp_path):
    ds, _ = j2k_dataset()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    path = tmp_path / "cut.dcm"
    path.write_bytes(buf.getvalue()[:-500])
    assert bad(path) == "truncated file"


@pytest.mark.parametrize("keyword", ["Rows", "Columns", "BitsAllocated", "BitsStored"])
def test_missing_pixel_attributes(keyword):
    ds = encode(image(8, 8, 12, False), 12, uid.ExplicitVRLittleEndian)
    del ds[keyword]
    assert bad(ds) == f"missing or zero {keyword}"


def test_missing_pixel_representation_and_zero_rows():
    ds = encode(image(8, 8, 12, False), 12, uid.ExplicitVRLittleEndian)
    del ds.PixelRepresentation
    assert bad(ds) == "missing PixelRepresentation"
    ds = encode(image(8, 8, 12, False), 12, uid.ExplicitVRLittleEndian)
    ds.Rows = 0
    assert bad(ds) == "missing or zero Rows"


def test_zero_length_and_missing_pixel_data():
    ds = encode(image(8, 8, 12, False), 12, uid.ExplicitVRLittleEndian)
    ds.PixelData = b""
    assert bad(ds) == "zero-length pixel data"
    del ds.PixelData
    assert bad(ds).startswith("no pixel data")


def test_corrupt_encapsulation_and_unsupported_syntax():
    ds, _ = j2k_dataset()
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\x12\x34" * 10   # no item tags after the BOT
    assert bad(ds) == "truncated or corrupt pixel data"
    ds, _ = j2k_dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"   # MPEG2
    assert bad(ds) == "unsupported transfer syntax: MPEG2 Main Profile / Main Level"
    ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.99.1"   # a private UID
    assert bad(ds) == "unsupported transfer syntax: non-standard"


# --- photometric ------------------------------------------------------------------------

def test_check_grayscale():
    check_grayscale(pixel_dataset(image(4, 4, 12, False), 12, "MONOCHROME1"))
    check_grayscale(pixel_dataset(image(4, 4, 12, False), 12, "MONOCHROME2"))
    palette = pydicom.dcmread(PYDICOM_FILES / "examples_palette.dcm")
    result = decode(palette)                   # decoding itself works: stored indices
    assert result.frames[0].shape == (palette.Rows, palette.Columns)
    with pytest.raises(DecodeError) as err:
        check_grayscale(palette)
    assert err.value.reason == "unsupported photometric interpretation: PALETTE COLOR"
    ybr = pydicom.dcmread(PYDICOM_FILES / "SC_ybr_full_422_uncompressed.dcm")
    with pytest.raises(DecodeError) as err:
        check_grayscale(ybr)
    assert err.value.reason == "unsupported photometric interpretation: YBR_FULL_422"
    odd = pixel_dataset(image(4, 4, 12, False), 12, PHI.replace("^", " ")[:16])
    with pytest.raises(DecodeError) as err:
        check_grayscale(odd)
    assert err.value.reason == "unsupported photometric interpretation: non-standard"
    del odd.PhotometricInterpretation
    with pytest.raises(DecodeError) as err:
        check_grayscale(odd)
    assert err.value.reason == "unsupported photometric interpretation: missing"


def test_decoded_record():
    ds, _ = j2k_dataset()
    result = decode(ds)
    assert isinstance(result, Decoded)
    assert result.transfer_syntax == uid.JPEG2000Lossless and result.reduce == 0
    assert result.backend == B.CANDIDATES[uid.JPEG2000Lossless][0]


def test_gpu_check_never_initialises_cuda_in_this_process(monkeypatch):
    """The device count is asked in a child process: cuInit in the driver would leave every
    worker it forks unable to use CUDA (``--device cuda -j N``). Loading libcuda here fails the test."""
    import ctypes

    from vindr_cli.pixels import gpu

    def refuse(name, *a, **k):
        raise AssertionError("libcuda loaded in the driver process")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    gpu._cuda_devices.cache_clear()
    try:
        assert gpu._cuda_devices() >= 0
    finally:
        gpu._cuda_devices.cache_clear()
