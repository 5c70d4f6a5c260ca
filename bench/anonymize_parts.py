#!/usr/bin/env python3
"""Where one file's anonymize time goes, in CPU milliseconds per file (process_time, so a
busy machine inflates it less than wall time): header read + structure checks, the
de-identification walk, pydicom's header write, and the pixel copy + SHA-256, against a
plain read+write copy, a read + SHA-256 of the whole file, and the floor of vindr's contract
(every byte read, SHA-256-hashed and written through one buffer: anonymize_floor.py's loop). In one process, no pool,
page cache warm (one pass first). Run from a tree: PYTHONPATH=TREE python bench/anonymize_parts.py DIR

Usage: python bench/anonymize_parts.py DIR [--repeat 2]   (DIR: e.g. bench/out/data of anonymize_bench.py)
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import pydicom

from vindr_cli.deid import codes
from vindr_cli.deid.engine import deidentify
from vindr_cli.deid.profile import load_profile
from vindr_cli.deid.substitutes import Substitutes
from vindr_cli.deid.task import _copy_pixels
from vindr_cli.dicomio.header import read_header
from vindr_cli.dicomio.quiet import quiet_pydicom


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--files", type=int, default=40)
    args = ap.parse_args()
    quiet_pydicom()
    prof = load_profile("basic", dates="shift", options={"retain_patient_characteristics"}, without=set())
    subs = Substitutes(os.urandom(32), "2.25")
    files = sorted(args.folder.rglob("*.dcm"))[:args.files]
    t = time.process_time()
    (getattr(codes, "_meanings", None) or codes._index)()    # the code index: once per process
    index_ms = (time.process_time() - t) * 1000
    best: dict[str, float] = {}
    buf = memoryview(bytearray(4 << 20))
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "x.dcm"
        for rep in range(args.repeat + 1):
            acc = dict.fromkeys(("read", "deid", "write", "copy+sha256", "plain copy", "read+sha256",
                                 "floor read+sha256+write"), 0.0)
            for p in files:
                out_path.unlink(missing_ok=True)
                with open(p, "rb") as f:
                    t0 = time.process_time()
                    h = read_header(f, p.stat().st_size)
                    t1 = time.process_time()
                    deidentify(h.ds, prof, subs, "x")
                    t2 = time.process_time()
                    with open(out_path, "w+b") as out:      # as deid.task._write opens it
                        pydicom.dcmwrite(out, h.ds, enforce_file_format=True)
                        t3 = time.process_time()
                        _copy_pixels(f, out, h)
                        t4 = time.process_time()
                acc["read"] += t1 - t0
                acc["deid"] += t2 - t1
                acc["write"] += t3 - t2
                acc["copy+sha256"] += t4 - t3
                out_path.unlink()
                t0 = time.process_time()
                with open(p, "rb") as f, open(out_path, "wb") as out:
                    while chunk := f.read(4 << 20):
                        out.write(chunk)
                acc["plain copy"] += time.process_time() - t0
                t0 = time.process_time()
                hashlib.sha256(p.read_bytes()).hexdigest()
                acc["read+sha256"] += time.process_time() - t0
                out_path.unlink()
                t0 = time.process_time()
                h = hashlib.sha256()            # the floor (anonymize_floor.py): every byte read, hashed, written
                with open(p, "rb", buffering=0) as f, open(out_path, "wb", buffering=0) as out:
                    while n := f.readinto(buf):
                        h.update(buf[:n])
                        out.write(buf[:n])
                h.hexdigest()
                acc["floor read+sha256+write"] += time.process_time() - t0
            if rep:                     # the first pass warms the page cache and the caches
                for k, v in acc.items():
                    best[k] = min(best.get(k, 1e9), v / len(files) * 1000)
    print(f"{len(files)} files; code index {index_ms:.0f} ms CPU once; load average {os.getloadavg()[0]:.1f}")
    print("  ".join(f"{k} {v:.2f}" for k, v in best.items()), "(ms CPU per file, best of", args.repeat, ")")


if __name__ == "__main__":
    main()
