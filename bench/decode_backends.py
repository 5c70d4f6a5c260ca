#!/usr/bin/env python3
"""Time every installed decoder backend on every transfer syntax it can decode.

Data: one radiograph-sized synthetic chest image (default 2048x2048, 12 bits stored,
MONOCHROME2, made by vindr_cli.synth.radiograph) encoded in each transfer syntax that has
an encoder here: native (explicit LE, big endian, deflated) by pydicom, RLE and JPEG 2000
(lossless, and lossy at 10:1) by pydicom + pylibjpeg, JPEG lossless (4.57, 4.70), JPEG-LS
(lossless, near-lossless error 2) and JPEG baseline (8-bit copy, quality 90) by GDCM.
JPEG extended 12-bit and HTJ2K have no encoder here: JPEG extended uses pydicom's test
file JPGExtended.dcm (1024x256); HTJ2K is listed as not measured.

Each backend decodes the image once to warm up, then `--runs` times; the medians of wall
time and of CPU time (all threads of the process: GDCM's J2K codec uses every core) are
reported with the wall ratio to the fastest full-size decode for that syntax. The direct OpenJPEG
backends are also timed with all cores (`threads=os.cpu_count()`) and with `reduce=1`
(what `min_size=1024` asks of a 2048 image). Every lossless result is checked against the
original array before timing.

With ``--real``: the JPEG 2000 decoders compared on REAL ~2k radiographs instead (issue 13):
8 files of bench/decode_corpus.py's corpus (RG1 1955x1841 15-bit and RG3 1760x1760 10-bit CR,
2048x2048 crops of a 12-bit DX, each as encoded by OpenJPEG and by GDCM, plus the two vendor
files). Decoders: OpenJPEG 2.5 direct (single-threaded: pylibjpeg-openjpeg's library has no
thread support), OpenJPEG 2.3 from python-gdcm direct with 1 and `cores` threads, the pydicom
plugins (pylibjpeg-openjpeg, GDCM — which always uses every core —, Pillow), and imagecodecs'
OpenJPEG with 1 and `cores` threads when installed; full size and, where the decoder can,
reduce=1. Every full-size result must equal the lossless original; every reduced result
must equal openjpeg-direct's. Median wall and CPU ms per image over `--runs`.

Usage: python bench/decode_backends.py [--size 2048] [--runs 7] [--real]
Results: bench/results/decode_backends.json, with --real decode_backends_real.json (figures
copied into vindr_cli/pixels/backends.py and bench/README.md).
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_io import write_record  # noqa: E402
from vindr_cli.pixels import backends as B  # noqa: E402
from vindr_cli.synth.encode import GDCM_TS, gdcm_transcode  # noqa: E402
from vindr_cli.synth.radiograph import chest_frontal, to_stored  # noqa: E402

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
LOSSY = {uid.JPEG2000, uid.JPEGLSNearLossless, uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit}


def pixel_dataset(arr: np.ndarray, bits_stored: int) -> Dataset:
    """A minimal CR data set holding `arr` uncompressed (explicit VR little endian)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "2.25.1"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = arr.dtype.itemsize * 8, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()
    return ds


def reread(ds: Dataset) -> Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def encode(arr: np.ndarray, ts: str) -> Dataset:
    """`arr` (12-bit in uint16) stored with transfer syntax `ts`, read back from bytes."""
    if ts == uid.JPEGBaseline8Bit:
        arr = (arr >> 4).astype(np.uint8)
    ds = pixel_dataset(arr, 8 if arr.dtype == np.uint8 else 12)
    if ts in GDCM_TS:
        return gdcm_transcode(ds, ts)
    if ts == uid.ExplicitVRBigEndian:
        ds.PixelData = arr.astype(">u2").tobytes()
        ds.file_meta.TransferSyntaxUID = ts
        return reread(ds)
    if ts == uid.DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ts
        return reread(ds)
    if ts == uid.RLELossless:
        ds.compress(uid.RLELossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    elif ts == uid.JPEG2000Lossless:
        ds.compress(ts, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    elif ts == uid.JPEG2000:
        ds.compress(ts, encoding_plugin="pylibjpeg", j2k_cr=[10], generate_instance_uid=False)
    return reread(ds)


def median_ms(fn, runs: int) -> tuple[float, float]:
    """Median wall and CPU (all threads of the process) milliseconds of `fn()`."""
    fn()   # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return round(1000 * statistics.median(wall), 2), round(1000 * statistics.median(cpu), 2)


def variants(name: str, ts: str) -> list[tuple[str, dict]]:
    """(label, run options) for a backend: plain, plus threads and reduce for direct OpenJPEG."""
    out = [(name, {})]
    if name in B.DIRECT:
        cores = os.cpu_count() or 1
        if cores > 1 and B._openjpeg(name).threaded:
            out.append((f"{name} threads={cores}", {"threads": cores}))
        out.append((f"{name} reduce=1", {"reduce": 1}))
    return out


def bench_syntax(ts: str, ds: Dataset, original: np.ndarray | None, runs: int) -> list[dict]:
    rows = []
    for name in B.CANDIDATES[ts]:
        if not B.available(name, ts):
            rows.append({"backend": name, "ms": None, "note": "not installed"})
            continue
        for label, opts in variants(name, ts):
            try:
                frames = B.run(name, ds, ts, **opts)
            except Exception as exc:
                rows.append({"backend": label, "ms": None, "note": f"fails: {type(exc).__name__}"})
                continue
            if original is not None and not opts.get("reduce") and not np.array_equal(frames[0], original):
                raise AssertionError(f"{label} does not decode {ts.name} losslessly")
            ms, cpu_ms = median_ms(lambda: B.run(name, ds, ts, **opts), runs)
            rows.append({"backend": label, "ms": ms, "cpu_ms": cpu_ms, "shape": list(frames[0].shape)})
    best = min((r["ms"] for r in rows if r["ms"] and "reduce" not in r["backend"]), default=None)
    for r in rows:
        r["ratio"] = round(r["ms"] / best, 2) if r["ms"] and best else None
    return rows


REAL_FILES = ("00_RG1_id", "01_RG1_flipud", "08_RG3_id", "09_RG3_flipud", "16_cat_0_0_id",
              "17_cat_0_0_fliplr", "24_RG1_J2KR", "25_RG3_J2KR")


def imagecodecs_decode(ds: Dataset, threads: int) -> list[np.ndarray]:
    import imagecodecs

    dtype = np.dtype(f"{'i' if ds.PixelRepresentation else 'u'}{(ds.BitsAllocated + 7) // 8}")
    return [imagecodecs.jpeg2k_decode(f, numthreads=threads).astype(dtype, copy=False)
            for f in B.encapsulated_frames(ds)]


def real_variants(ts: str) -> list[tuple[str, callable]]:
    """(label, decode(ds) -> frames) for every J2K decoder here, full size and reduce=1."""
    cores = os.cpu_count() or 1
    out = []
    for name in B.CANDIDATES[ts]:
        if not B.available(name, ts):
            continue
        out.append((name, lambda ds, n=name: B.run(n, ds, ts)))
        if name in B.DIRECT and B._openjpeg(name).threaded and cores > 1:
            out.append((f"{name} threads={cores}", lambda ds, n=name: B.run(n, ds, ts, threads=cores)))
        if name in B.DIRECT:
            out.append((f"{name} reduce=1", lambda ds, n=name: B.run(n, ds, ts, reduce=1)))
            if B._openjpeg(name).threaded and cores > 1:
                out.append((f"{name} reduce=1 threads={cores}",
                            lambda ds, n=name: B.run(n, ds, ts, reduce=1, threads=cores)))
    try:
        import imagecodecs

        if imagecodecs.JPEG2K.available:
            out.append(("imagecodecs threads=1", lambda ds: imagecodecs_decode(ds, 1)))
            if cores > 1:
                out.append((f"imagecodecs threads={cores}", lambda ds: imagecodecs_decode(ds, cores)))
    except ImportError:
        pass
    return out


def real_main(args) -> int:
    sys.path.insert(0, str(ROOT / "bench"))
    from decode_corpus import OUT as CORPUS, corpus

    corpus()
    files = [CORPUS / "data" / f"{n}.dcm" for n in REAL_FILES]
    per_file = []
    for path in files:
        ds = pydicom.dcmread(path)
        ts = ds.file_meta.TransferSyntaxUID
        original = B.run("pylibjpeg-openjpeg", ds, ts)[0]      # lossless: the stored array
        reduced_ref = B.run("openjpeg-direct", ds, ts, reduce=1)[0]
        rows = []
        for label, fn in real_variants(ts):
            frame = fn(ds)[0]
            ref = reduced_ref if "reduce=1" in label else original
            if frame.shape != ref.shape or not np.array_equal(frame, ref):
                raise AssertionError(f"{label} differs on {path.name}")
            ms, cpu_ms = median_ms(lambda: fn(ds), args.runs)
            rows.append({"backend": label, "ms": ms, "cpu_ms": cpu_ms})
        per_file.append({"file": path.name, "rows": int(ds.Rows), "cols": int(ds.Columns),
                         "bits_stored": int(ds.BitsStored), "bytes": len(ds.PixelData), "backends": rows})
        print(f"{path.name}: " + ", ".join(f"{r['backend']} {r['ms']:.0f}/{r['cpu_ms']:.0f}" for r in rows), flush=True)
    labels = [r["backend"] for r in per_file[0]["backends"]]
    summary = []
    for label in labels:
        ms = [next(r for r in f["backends"] if r["backend"] == label) for f in per_file]
        summary.append({"backend": label, "mean_ms": round(statistics.mean(r["ms"] for r in ms), 1),
                        "mean_cpu_ms": round(statistics.mean(r["cpu_ms"] for r in ms), 1)})
    base = next(s["mean_ms"] for s in summary if s["backend"] == "openjpeg-direct")
    for s in summary:
        s["wall_vs_openjpeg_direct"] = round(s["mean_ms"] / base, 2)
    print(f"\n{'decoder':<40}{'wall ms':>9}{'CPU ms':>9}  wall / openjpeg-direct  (mean over {len(files)} files)")
    for s in summary:
        print(f"{s['backend']:<40}{s['mean_ms']:9.1f}{s['mean_cpu_ms']:9.1f}  x{s['wall_vs_openjpeg_direct']:.2f}")
    versions = {p: version(p) for p in ("pydicom", "pylibjpeg-openjpeg", "python-gdcm", "pillow", "numpy")}
    try:
        import imagecodecs

        versions["imagecodecs"] = imagecodecs.__version__
        versions["imagecodecs openjpeg"] = imagecodecs.jpeg2k_version()
    except ImportError:
        pass
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load1": os.getloadavg(),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "versions": versions, "openjpeg": {n: (B._openjpeg(n).version if B._openjpeg(n) else None) for n in B.DIRECT},
              "runs": args.runs, "files": per_file, "summary": summary}
    out = args.out.with_name("decode_backends_real.json") if args.out.name == "decode_backends.json" else args.out
    print(f"wrote {write_record(out, record, indent=2)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--real", action="store_true", help="JPEG 2000 decoders on real radiographs (bench/decode_corpus.py)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "decode_backends.json")
    args = ap.parse_args()
    if args.real:
        return real_main(args)

    rng = np.random.default_rng(7)
    image = to_stored(chest_frontal(args.size, args.size, rng).attenuation, 12, "MONOCHROME2", rng)
    syntaxes = [uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian,
                uid.RLELossless, uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless,
                uid.JPEGLosslessSV1, uid.JPEGLSLossless, uid.JPEGLSNearLossless, uid.JPEG2000Lossless,
                uid.JPEG2000, uid.HTJ2KLossless]
    results = {}
    for ts in syntaxes:
        if ts in (uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K):
            results[ts.name] = {"note": "not measured: no HTJ2K encoder or sample file here"}
            continue
        if ts == uid.JPEGExtended12Bit:
            ds, original, source = pydicom.dcmread(PYDICOM_FILES / "JPGExtended.dcm"), None, "JPGExtended.dcm"
        else:
            ds, source = encode(image, ts), f"synthetic {args.size}x{args.size}"
            original = None if ts in LOSSY else image
        size = len(ds.PixelData)
        rows = bench_syntax(ts, ds, original, args.runs)
        results[ts.name] = {"uid": str(ts), "source": source, "bytes": size, "backends": rows}
        print(f"\n{ts.name}  ({source}, {size / 1e6:.2f} MB encoded)")
        print(f"  {'backend':<34}{'wall':>12} {'cpu':>12}  wall / fastest")
        for r in rows:
            ms = f"{r['ms']:9.2f} ms {r['cpu_ms']:9.2f} ms" if r["ms"] else f"{'-':>25}"
            ratio = f"x{r['ratio']:.2f}" if r.get("ratio") else r.get("note", "")
            print(f"  {r['backend']:<34}{ms}  {ratio}")

    record = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": {p: version(p) for p in ("pydicom", "pylibjpeg", "pylibjpeg-openjpeg", "pylibjpeg-libjpeg",
                                             "pylibjpeg-rle", "python-gdcm", "numpy")},
        "openjpeg": {n: (B._openjpeg(n).version if B._openjpeg(n) else None) for n in B.DIRECT},
        "image": {"rows": args.size, "cols": args.size, "bits_stored": 12, "runs": args.runs},
        "results": results,
    }
    print(f"\nwrote {write_record(args.out, record, indent=2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
