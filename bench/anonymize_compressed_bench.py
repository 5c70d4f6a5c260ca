#!/usr/bin/env python3
"""`vindr anonymize --burned-in off -j 2` on COMPRESSED inputs (bench/anonymize_compressed_corpus.py:
200 JPEG 2000 / JPEG-LS lossless radiographs), this tree against ``--before TREE``, gdcmanon,
`cp -r` and the floors of the contract (anonymize_floor.py: read + SHA-256 + write, the same with
the copy by copy_file_range, without the write), every tool once per round, round robin, best of
``--repeat``. CPU = user + system of the run and all its children (what a busy machine distorts
least); wall is printed too, with the load average before and after every round.

After the first round the outputs of this tree and of ``--before`` (same key) are compared file
for file and the manifests' pixel_sha256 / status row for row: a speed change must not change
a byte. ``--parts N``: the pixel copy alone, in this process, on the first N files: the
encapsulated element copied to a new file by the kernel path and by the buffered path
(os.copy_file_range refused), CPU ms a file, interleaved, best of ``--repeat``.

Usage: python bench/anonymize_compressed_bench.py --before TREE [--repeat 3] [--parts 40]
       [--results anonymize_anonenc.json]
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from anonymize_bench import CPU, FLOOR, KFLOOR, tools  # noqa: E402
from procmon import warm  # noqa: E402

KEEP = ("vindr --burned-in off", "vindr (before) --burned-in off", "gdcmanon", "cp -r", FLOOR, KFLOOR,
        "floor: read + SHA-256, no write")


def same_outputs(work: Path) -> dict:
    import pyarrow.parquet as pq

    a, b = work / "out_vindr_--burned-in_off", work / "out_vindr_(before)_--burned-in_off"
    ra = sorted(pq.read_table(a / "manifest.parquet").to_pylist(), key=lambda r: r["input_key"])
    rb = sorted(pq.read_table(b / "manifest.parquet").to_pylist(), key=lambda r: r["input_key"])
    cols = ("input_key", "status", "output", "pixel_sha256", "input_pixel_sha256", "output_bytes")
    rows_same = [{c: r.get(c) for c in cols} for r in ra] == [{c: r.get(c) for c in cols} for r in rb]
    files = [r["output"] for r in ra if r["status"] == "ok"]
    differ = sum((a / f).read_bytes() != (b / f).read_bytes() for f in files)
    return {"rows": len(ra), "ok": len(files), "manifest_rows_same": rows_same, "files_differ": differ}


def parts(data: Path, n: int, repeat: int) -> dict:
    """CPU ms a file of the pixel copy alone: kernel path against buffered path, interleaved."""
    import tempfile

    from vindr_cli.dicomio.header import read_header
    from vindr_cli.dicomio.pixelstream import copy_pixel_element

    files = sorted(data.rglob("*.dcm"))[:n]
    offsets = {}
    for p in files:
        with open(p, "rb") as f:
            offsets[p] = read_header(f, p.stat().st_size).pixel_offset
    real = os.copy_file_range

    def refuse(*a):
        raise OSError(errno.ENOSYS, "refused for the bench")

    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=data.parent) as tmp:
        for r in range(repeat):
            for how in ("kernel", "buffered"):
                os.copy_file_range = real if how == "kernel" else refuse
                t0 = time.process_time()
                for i, p in enumerate(files):
                    with open(p, "rb") as f, open(Path(tmp) / f"{how}_{r}_{i}.dcm", "w+b") as out:
                        f.seek(offsets[p])
                        copy_pixel_element(f, out, implicit=False, little=True, frames=1)
                ms = (time.process_time() - t0) / len(files) * 1000
                best[how] = min(best.get(how, 1e9), ms)
                print(f"parts {how} round {r + 1}: {ms:.2f} ms CPU a file (load {os.getloadavg()[0]:.1f})", flush=True)
            for q in Path(tmp).iterdir():
                q.unlink()
    os.copy_file_range = real
    return {"files": len(files), "cpu_ms_per_file_best": {k: round(v, 2) for k, v in best.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "compressed")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "compressed_work")
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--parts", type=int, default=40)
    ap.add_argument("--results", default="anonymize_anonenc.json")
    args = ap.parse_args()
    data, work = args.data.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    files = sorted(data.rglob("*.dcm"))
    total = sum(p.stat().st_size for p in files)
    runs = {k: v for k, v in tools(data, work, 2, {"": ROOT, " (before)": args.before.resolve()}, None).items() if k in KEEP}
    warm(data)
    rounds, loads = [], []
    identity = None
    for r in range(args.repeat):
        load0 = os.getloadavg()[0]
        row = {}
        for name, run in runs.items():
            wall, _ = run()
            row[name] = {"wall_s": round(wall, 3), "cpu_s": round(CPU["last"], 3)}
            print(f"round {r + 1} {name}: {wall:.2f} s wall, {CPU['last']:.2f} s CPU", flush=True)
        loads.append([round(load0, 2), round(os.getloadavg()[0], 2)])
        rounds.append(row)
        if identity is None:
            identity = same_outputs(work)
            print("after vs before:", identity, flush=True)
    best = {name: {"best_cpu_s": min(rd[name]["cpu_s"] for rd in rounds),
                   "best_wall_s": min(rd[name]["wall_s"] for rd in rounds),
                   "cpu_rounds": [rd[name]["cpu_s"] for rd in rounds]} for name in runs}
    mine = best["vindr --burned-in off"]["best_cpu_s"]
    for name, b in best.items():
        b["cpu_ms_per_file"] = round(b["best_cpu_s"] / len(files) * 1000, 2)
        b["vindr_off_cpu_over_this"] = round(mine / b["best_cpu_s"], 2)
        print(f"{name:40s} best CPU {b['best_cpu_s']:6.2f} s ({b['cpu_ms_per_file']:5.1f} ms/file)  "
              f"best wall {b['best_wall_s']:6.2f}  vindr off / this (CPU) {b['vindr_off_cpu_over_this']:.2f}")
    print("load (1 min) before / after each round:", loads)
    part = parts(data, args.parts, args.repeat) if args.parts else None
    if part:
        print("pixel copy alone:", part)
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "files": len(files),
           "total_mb": round(total / 2**20, 1), "workers": 2, "repeat": args.repeat, "before_tree": str(args.before),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "load_1min_per_round": loads, "best": best, "rounds": rounds, "after_vs_before": identity, "parts": part}
    res = ROOT / "bench" / "results" / args.results
    res.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
