#!/usr/bin/env python3
"""Where a compressed file's CPU goes on the `--burned-in off` path after stripfast: one process,
the first N files of the compressed corpus (anonymize_compressed_corpus.py), twice, CPU ms a file
per step (header read, the one read + hash into pixelstream.ScratchSink, deid.redact.frames_unchanged,
header write, the kernel copy + read-back hash). Outputs go to a temporary folder, removed after.

Usage: python bench/anonymize_stripfast_steps.py [--data bench/out/compressed] [--files 40]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import pydicom

    from vindr_cli.deid import task
    from vindr_cli.deid.redact import frames_unchanged
    from vindr_cli.dicomio.header import read_header
    from vindr_cli.dicomio.pixelstream import ScratchSink

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "compressed")
    ap.add_argument("--files", type=int, default=40)
    args = ap.parse_args()
    files = sorted(args.data.rglob("*.dcm"))[:args.files]

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    tmp = Path(tempfile.mkdtemp())
    try:
        for rnd in range(2):
            acc: dict[str, float] = {}

            def add(step: str, t0: float) -> float:
                t = cpu()
                acc[step] = acc.get(step, 0.0) + t - t0
                return t

            for i, p in enumerate(files):
                t = cpu()
                with open(p, "rb") as f:
                    h = read_header(f, p.stat().st_size)
                    t = add("header read", t)
                    ts = h.ds.file_meta.TransferSyntaxUID
                    with ScratchSink() as sink:
                        task._copy_pixels(f, sink, h)
                        t = add("one read + hash (ScratchSink)", t)
                        _, value = sink.element()
                        assert frames_unchanged(value, str(ts), int(h.ds.get("NumberOfFrames", 1) or 1))
                        t = add("frames_unchanged", t)
                    with open(tmp / f"o{i}.dcm", "w+b") as out:
                        pydicom.dcmwrite(out, h.ds, enforce_file_format=True)
                        t = add("header write", t)
                        task._copy_pixels(f, out, h)
                        add("kernel copy + read-back hash", t)
            for q in tmp.iterdir():
                q.unlink()
            print(f"round {rnd + 1}:", {k: round(v / len(files) * 1e3, 2) for k, v in acc.items()},
                  f"ms CPU a file, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
