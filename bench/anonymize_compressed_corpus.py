#!/usr/bin/env python3
"""A COMPRESSED anonymize bench corpus: N synthetic 12-bit radiographs of 2560 x 2048 pixels,
half JPEG 2000 lossless (pylibjpeg-openjpeg, through pydicom's ``compress``), half JPEG-LS
lossless (pyjpegls / CharLS, pydicom's default JPEG-LS encoder): the syntaxes of most hospital
exports and of every VinDr file. Nothing is downloaded.

Each file has its own fake identity, planted as in the uncompressed bench (the header of
``vindr_cli.synth.export.write_radiograph`` for that index, PHI in standard, nested, private and
free-text tags, rendered at 64 x 64 to be cheap) with Rows / Columns set to 2560 x 2048 and the
pixel data replaced by one of ``--variants`` encoded images (a smooth random field of 0..4095 plus
noise: about 4 MB a frame compressed, like a real radiograph's 2-3:1). Variants are encoded
once and shared, alternately J2K and JPEG-LS by file index (anonymize's cost does not depend on
which pixels a file holds; each file is its own copy on disk and in the page cache). Every
variant is checked to decode to its pixels. Cached under ``--out`` (``.params`` stamp).

Usage: python bench/anonymize_compressed_corpus.py [--out bench/out/compressed] [--files 200]
       [--variants 6] [--force]
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from vindr_cli.synth.export import write_radiograph  # noqa: E402

ROWS, COLS = 2560, 2048
SYNTAXES = (JPEG2000Lossless, JPEGLSLossless)


def pixels(seed: int) -> np.ndarray:
    """A smooth random field (a coarse grid upsampled, blurred by a box filter) scaled to 12
    bits, plus Gaussian noise: compresses losslessly about as a radiograph does."""
    rng = np.random.default_rng([seed, 11])
    coarse = rng.random((ROWS // 128, COLS // 128))
    field = np.kron(coarse, np.ones((128, 128)))
    k = 64
    c = np.cumsum(np.cumsum(np.pad(field, k, mode="edge"), 0), 1)
    field = (c[2 * k:, 2 * k:] - c[:-2 * k, 2 * k:] - c[2 * k:, :-2 * k] + c[:-2 * k, :-2 * k])[:ROWS, :COLS] / (4 * k * k)
    img = 400 + 3200 * (field - field.min()) / max(np.ptp(field), 1e-9) + rng.normal(0, 12, (ROWS, COLS))
    return np.clip(img, 0, 4095).astype(np.uint16)


def header(index: int, work: Path) -> pydicom.Dataset:
    tmp = work / f".hdr_{index}.dcm"
    write_radiograph(tmp, index=index, rows=64, cols=64, transfer_syntax="1.2.840.10008.1.2.1",
                     photometric="MONOCHROME1" if index % 2 else "MONOCHROME2", seed=7, verify=False)
    ds = pydicom.dcmread(tmp)
    tmp.unlink()
    return ds


def encoded(variant: int, work: Path) -> tuple[str, bytes]:
    """(transfer syntax, encapsulated Pixel Data) of one variant, checked to round-trip."""
    ts = SYNTAXES[variant % 2]
    arr = pixels(variant)
    ds = header(0, work)
    ds.Rows, ds.Columns = ROWS, COLS
    kw = {"encoding_plugin": "pylibjpeg"} if ts == JPEG2000Lossless else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.compress(ts, arr, generate_instance_uid=False, **kw)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    back = pydicom.dcmread(io.BytesIO(buf.getvalue())).pixel_array
    if not np.array_equal(back, arr):
        raise SystemExit(f"variant {variant} does not decode to its pixels")
    return ts, ds.PixelData


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "compressed")
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--variants", type=int, default=6)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    out = args.out.resolve()
    want = f"{args.files} {args.variants} {ROWS} {COLS}"
    stamp = out / ".params"
    if stamp.exists() and stamp.read_text() == want and not args.force:
        print(f"{out}: cached ({want})")
        return
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    variants = []
    for v in range(args.variants):
        variants.append(encoded(v, out))
        print(f"variant {v}: {variants[-1][0]} {len(variants[-1][1]) / 2**20:.1f} MB", flush=True)
    total = 0
    for i in range(args.files):
        ts, value = variants[i % len(variants)]
        ds = header(i, out)
        ds.Rows, ds.Columns = ROWS, COLS
        ds.file_meta.TransferSyntaxUID = ts
        ds.PixelData = value
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        folder = out / f"PATIENT_{i:04d}"
        folder.mkdir()
        path = folder / f"IMG_{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    stamp.write_text(want)
    print(f"{args.files} files, {total / 2**20:.0f} MB in {out}")


if __name__ == "__main__":
    main()
