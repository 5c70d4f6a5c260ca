"""The pixel part of `vindr select`: perceptual hash + QC flags (curate.look.look_at) and
near-duplicate resolution (curate.dedup.resolve). Three measurements:

  python bench/phash_qc_bench.py throughput [--images 2000] [--workers 2]
      look_at over a corpus of real public radiographs, CT and MR slices (pydicom's test
      files and the pydicom-data wheel, plus lossy / resized copies of them), images/s and
      peak memory of the largest process; then dedup.resolve over the rows, and near_pairs
      over 18,000 random hashes (VinDr-CXR's size).
  python bench/phash_qc_bench.py hash-pairs
      own 64-bit DCT hash vs imagehash.phash (if installed) on the same thumbnails: the same
      image stored lossless / lossy JPEG / J2K irreversible / resized / re-windowed vs
      different real images and sample_dicoms' synthetic films of different patients.
  python bench/phash_qc_bench.py qc-stats
      the numbers the QC thresholds are set from (schemas/curate/qc.toml), per real image.

Results go to bench/results/select_*.json; figures in bench/README.md. The wheel is read
with zipfile from --pydicom-data (default /tmp/pdd/pydicom_data-1.0.0-py3-none-any.whl);
without it only pydicom's bundled files are used.
"""
from __future__ import annotations

import argparse
import glob
import io
import itertools
import json
import os
import sys
import time
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pydicom

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from near_dup_variants import lossless_copy, lossy_copy, resized_copy, rewindowed_copy, save  # noqa: E402
from vindr_cli.curate import qc  # noqa: E402
from vindr_cli.curate.dedup import resolve  # noqa: E402
from vindr_cli.curate.look import header_of, look_at  # noqa: E402
from vindr_cli.pixels.phash import dct_hash, hamming, near_pairs, settings, thumbnails  # noqa: E402

WHEEL = "/tmp/pdd/pydicom_data-1.0.0-py3-none-any.whl"
WHEEL_BASES = ["RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm",
               "vlut_04.dcm"]
WHEEL_LOSSY = {"RG1_UNCR.dcm": "RG1_J2KI.dcm", "MR2_UNCR.dcm": "MR2_J2KI.dcm", "693_UNCR.dcm": "693_J2KR.dcm",
               "RG3_UNCR.dcm": "RG3_J2KI.dcm"}
LOCAL_BASES = ["JPEG2000.dcm", "CT_small.dcm", "examples_overlay.dcm", "MR_small.dcm"]
RESULTS = HERE / "results"


def _quiet():
    warnings.simplefilter("ignore")


def real_files(work: Path, wheel: str | None) -> dict[str, Path]:
    """name -> path of every real base image available (and the wheel's lossy twins)."""
    from pydicom.data import get_testdata_file

    out = {}
    for n in LOCAL_BASES:
        p = get_testdata_file(n, download=False)
        if p:
            out[n] = Path(p)
    if wheel and Path(wheel).is_file():
        work.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for n in WHEEL_BASES + list(WHEEL_LOSSY.values()):
                (work / n).write_bytes(z.read(f"data_store/data/{n}"))
                out[n] = work / n
    return out


def _rt(ds):
    b = io.BytesIO()
    ds.save_as(b, enforce_file_format=True)
    b.seek(0)
    return pydicom.dcmread(b)


COPIES = {"rle": lambda ds: lossless_copy(ds), "jpeg q90": lambda ds: lossy_copy(ds, 90),
          "jpeg q50": lambda ds: lossy_copy(ds, 50), "jpeg q20": lambda ds: lossy_copy(ds, 20),
          "1/2": lambda ds: resized_copy(ds, 2), "1/3": lambda ds: resized_copy(ds, 3),
          "1/4": lambda ds: resized_copy(ds, 4), "window mild": lambda ds: rewindowed_copy(ds, 0.05, 0.9),
          "window wide": lambda ds: rewindowed_copy(ds, -0.1, 1.5), "window strong": lambda ds: rewindowed_copy(ds)}


def hash_pairs(a) -> dict:
    try:
        import imagehash
        from PIL import Image
    except ImportError:
        imagehash = None
    files = real_files(Path(a.work) / "real", a.pydicom_data)
    bases = [n for n in files if n not in WHEEL_LOSSY.values()]
    same = {"own": {}, "imagehash": {}}
    hashes = {"own": {}, "imagehash": {}}
    for n in bases:
        ds = pydicom.dcmread(files[n])
        variants = {"original": ds, **{k: _rt(f(ds)) for k, f in COPIES.items()}}
        if n in WHEEL_LOSSY:
            variants["j2k irreversible (real)"] = pydicom.dcmread(files[WHEEL_LOSSY[n]])
        th = {k: thumbnails(v)[0] for k, v in variants.items()}
        own = {k: dct_hash(t) for k, t in th.items()}
        same["own"][n] = {k: hamming(own["original"], h) for k, h in own.items() if k != "original"}
        hashes["own"][n] = list(own.values())
        if imagehash:
            ih = {k: imagehash.phash(Image.fromarray(t)) for k, t in th.items()}
            same["imagehash"][n] = {k: int(ih["original"] - h) for k, h in ih.items() if k != "original"}
            hashes["imagehash"][n] = list(ih.values())
    synthetic = [f for f in glob.glob(str(HERE.parent / "sample_dicoms" / "export" / "**" / "*"), recursive=True)
                 if os.path.isfile(f) and (f.endswith(".dcm") or "/IMAGES/" in f)]
    for f in synthetic:
        try:
            t = thumbnails(f)[0]
        except Exception:
            continue
        hashes["own"]["syn:" + f] = [dct_hash(t)]
        if imagehash:
            hashes["imagehash"]["syn:" + f] = [imagehash.phash(Image.fromarray(t))]
    out = {"threshold": settings()["max_distance"], "copies": list(COPIES), "bases": bases}
    for kind in ("own", "imagehash"):
        if not hashes[kind]:
            continue
        diff_real, diff_syn = [], []
        for x, y in itertools.combinations(hashes[kind], 2):
            if {x, y} == {"vlut_04.dcm", "mlut_18.dcm"}:
                continue
            d = [(hamming(p, q) if kind == "own" else int(p - q)) for p in hashes[kind][x] for q in hashes[kind][y]]
            (diff_syn if x.startswith("syn:") and y.startswith("syn:") else diff_real).extend(d)
        per_copy = {c: max(v.get(c, 0) for v in same[kind].values()) for c in
                    list(COPIES) + ["j2k irreversible (real)"]}
        flat = [d for v in same[kind].values() for d in v.values()]
        out[kind] = {"same_max_per_copy": per_copy, "same_max": max(flat),
                     "same_max_without_strong_window": max(d for v in same[kind].values()
                                                          for c, d in v.items() if c != "window strong"),
                     "different_real_min": min(diff_real), "different_real_p1": float(np.percentile(diff_real, 1)),
                     "different_real_pairs": len(diff_real),
                     "synthetic_different_min": min(diff_syn) if diff_syn else None,
                     "synthetic_pairs_within_threshold": sum(d <= settings()["max_distance"] for d in diff_syn),
                     "synthetic_pairs": len(diff_syn), "per_image": same[kind]}
        print(f"{kind}: same picture max {out[kind]['same_max']} (without the strong re-window "
              f"{out[kind]['same_max_without_strong_window']}); different real images min "
              f"{out[kind]['different_real_min']} (1st percentile {out[kind]['different_real_p1']:.0f}, "
              f"{len(diff_real)} pairs); synthetic films of different patients min {out[kind]['synthetic_different_min']}")
        print("  max per copy:", per_copy)
    return out


def qc_stats(a) -> dict:
    from pydicom.data import get_testdata_file

    files = list(real_files(Path(a.work) / "real", a.pydicom_data).values())
    bundled = Path(get_testdata_file("CT_small.dcm", download=False)).parent
    files += sorted(bundled.glob("*.dcm"))
    rows = []
    for f in files:
        try:
            ds = pydicom.dcmread(f)
            t = thumbnails(ds)[0]
        except Exception:
            continue
        h = header_of(ds)
        rows.append({"file": f.name, "modality": h.modality, "photometric": str(ds.get("PhotometricInterpretation", "")),
                     "rows": h.rows, "columns": h.columns, "std": float(t.std()),
                     "top_fraction": float((t >= 254).mean()),
                     "clipped_fraction": qc.clipped_fraction(t, qc.thresholds()["clipped"]["levels"]),
                     "inverted_score": qc.inverted_score(t) if qc.judges_inversion(h) else None,
                     "flags": list(qc.ordered(qc.size_flags(h) + qc.pixel_flags(t, h)))})
    gray = [r for r in rows if r["photometric"].startswith("MONOCHROME")]
    summary = {"images": len(rows), "grayscale": len(gray),
               "grayscale_min_std": min(r["std"] for r in gray),
               "grayscale_max_top_fraction": max(r["top_fraction"] for r in gray),
               "grayscale_max_clipped_fraction_without_seg": max(r["clipped_fraction"] for r in gray
                                                                 if r["modality"] != "SEG")}
    print(json.dumps(summary, indent=1))
    return {"summary": summary, "rows": rows}


def _corpus(a) -> list[Path]:
    """--images paths: the real images and copies of them (lossy, resized), repeated (hard
    links) up to the count; every entry is decoded in full by the bench."""
    work = Path(a.work) / "corpus"
    files = real_files(Path(a.work) / "real", a.pydicom_data)
    distinct = list(files.values())
    for n in [n for n in files if n in WHEEL_BASES[:2] or n in LOCAL_BASES[:1]]:
        ds = pydicom.dcmread(files[n])
        distinct.append(save(lossy_copy(ds, 75), work / f"{n}.lossy.dcm"))
        distinct.append(save(resized_copy(ds, 2), work / f"{n}.half.dcm"))
    # weight the mix towards radiographs (the CRs), as a chest release is
    radiographs = [p for p in distinct if p.name.startswith(("RG1", "RG3"))] or distinct
    mix = distinct + radiographs * 3
    out = []
    for i in range(a.images):
        src = mix[i % len(mix)]
        dst = work / "links" / f"{i:05d}.dcm"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            os.link(src, dst)
        out.append(dst)
    return out


def _look(p: str):
    _quiet()
    lk = look_at(Path(p))
    return lk.phash, lk.qc_flags, lk.reason


def throughput(a) -> dict:
    from procmon import PeakRSS, warm

    paths = _corpus(a)
    warm(Path(a.work) / "corpus")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mon = PeakRSS(os.getpid())
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers, initializer=_quiet) as ex:
        looks = list(ex.map(_look, map(str, paths), chunksize=8))
    wall = time.perf_counter() - t0
    peak = mon.stop()
    rows = [{"image_id": f"{i:032x}", "phash": h, "patient_id": f"P{i % 500}", "study_uid": f"S{i % 700}",
             "rows": 1, "columns": 1} for i, (h, _, _) in enumerate(looks)]
    t1 = time.perf_counter()
    res = resolve(rows)
    t_resolve = time.perf_counter() - t1
    rng = np.random.default_rng(0)
    big = [f"{int(v):016x}" for v in rng.integers(0, 2**63, size=18000, dtype=np.int64)]
    t2 = time.perf_counter()
    near_pairs(big)
    t_pairs = time.perf_counter() - t2
    out = {"images": len(paths), "workers": a.workers, "cpu_count": os.cpu_count(), "wall_s": round(wall, 1),
           "images_per_s": round(len(paths) / wall, 1), "peak_rss_mib_largest_process": round(peak / 2**20),
           "undecodable": sum(r is not None for _, _, r in looks),
           "flagged": {f: sum(f in fl for _, fl, _ in looks) for f in qc.FLAGS},
           "resolve_s": round(t_resolve, 2), "duplicates_in_corpus": sum(v[1] is not None for v in res.values()),
           "near_pairs_18000_random_s": round(t_pairs, 2)}
    print(json.dumps(out, indent=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("throughput", "hash-pairs", "qc-stats"))
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", default="/tmp/phash_qc_bench")
    ap.add_argument("--pydicom-data", default=WHEEL)
    a = ap.parse_args()
    _quiet()
    fn = {"throughput": throughput, "hash-pairs": hash_pairs, "qc-stats": qc_stats}[a.what]
    out = fn(a)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"select_{a.what.replace('-', '_')}.json").write_text(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
