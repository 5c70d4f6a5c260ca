#!/usr/bin/env python3
"""Benchmark `vindr select` (header scan + pixel QC + perceptual hash + decisions + hand-off).

Data: N radiograph-sized files (default 2000 x 1024x1024 12-bit DX/CR, one fake identity
each, explicit VR little endian) made by vindr_cli.synth, anonymized once (--burned-in off:
this bench measures select, not the text finder). Then `vindr select` with the vindr-cxr
preset runs from scratch in a subprocess: wall time, images/s and the peak resident memory
of the largest single process; a second run with another seed shows the resume (nothing
read again).

Usage: python bench/select_bench.py [--files 2000] [--size 1024] [--workers 2] [--work DIR]
Results: bench/results/select.json (figures copied by hand into bench/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from vindr_cli.synth.export import write_radiograph  # noqa: E402
from procmon import PeakRSS, warm  # noqa: E402  (bench/ is on sys.path when run as a script)

VINDR = [sys.executable, "-m", "vindr_cli"]


def _write_one(job: tuple[Path, int, int]) -> None:
    raw, i, size = job
    write_radiograph(raw / f"{i:05d}.dcm", index=i, rows=size, cols=size, transfer_syntax="1.2.840.10008.1.2.1",
                     photometric="MONOCHROME1" if i % 3 == 0 else "MONOCHROME2", seed=7 + i, verify=False)


def make_tree(work: Path, n: int, size: int, workers: int) -> Path:
    anon = work / "anon"
    stamp = work / ".params"
    if stamp.is_file() and stamp.read_text() == f"{n} {size}" and (anon / "manifest.parquet").is_file():
        return anon
    shutil.rmtree(work, ignore_errors=True)
    raw = work / "raw"
    raw.mkdir(parents=True)
    with ProcessPoolExecutor(workers) as pool:   # the varied phantoms take ~1 s each at 512², 3-4 s at 1024²
        list(pool.map(_write_one, [(raw, i, size) for i in range(n)], chunksize=8))
    subprocess.run([*VINDR, "anonymize", raw, anon, "--key", work / "k.key", "--burned-in", "off", "--no-linkage",
                    "-j", str(workers)], check=True, stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"})
    shutil.rmtree(raw)
    stamp.write_text(f"{n} {size}")
    return anon


def timed(args: list, cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    p = subprocess.Popen([*VINDR, *map(str, args)], stdout=subprocess.DEVNULL, cwd=cwd,
                         env={**os.environ, "COLUMNS": "120"})
    mon = PeakRSS(p.pid)
    rc = p.wait()
    peak = mon.stop()
    if rc != 0:
        raise SystemExit(f"vindr select exited {rc}")
    return time.perf_counter() - start, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vindr-select-bench"))
    a = ap.parse_args()
    anon = make_tree(a.work, a.files, a.size, a.workers)
    warm(anon)
    sel = a.work / "sel"
    shutil.rmtree(sel, ignore_errors=True)
    first, peak = timed(["select", anon, "-o", sel, "-j", a.workers], a.work)
    again, _ = timed(["select", anon, "-o", sel, "-j", a.workers, "--seed", "1"], a.work)
    record = json.loads((sel / "selection.json").read_text())
    out = {"files": a.files, "size": a.size, "workers": a.workers, "cpus": os.cpu_count(),
           "machine": platform.processor() or platform.machine(), "select_s": round(first, 2),
           "images_per_s": round(a.files / first, 1), "peak_rss_mb": round(peak / 2**20, 1),
           "rerun_s": round(again, 2), "selected": record["selected"], "counts": record["counts"]}
    print(json.dumps(out, indent=2))
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "select.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
