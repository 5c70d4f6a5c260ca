#!/usr/bin/env python3
"""Benchmark `vindr anonymize` against named peers on the same data, in one run.

Peers: gdcmanon (Debian libgdcm-tools, PS3.15 basic profile with a throw-away
certificate), dicognito (PyPI) and `cp -r` (the floor: the cost of copying the bytes).
Data: N radiograph-sized files (default 200 x 2048x1400 16-bit, ~5.7 MB, one fake
identity per file) made by vindr_cli.synth. Prints wall time, throughput, ratios and the
peak resident memory of the largest single process; a second, smaller run shows that
vindr's per-worker memory does not grow with file size (pixel data is streamed).

Usage: python bench/anonymize_bench.py [--files 200] [--rows 2048 --cols 1400] [--workers 2]
Results: bench/results/anonymize.json (figures are copied by hand into bench/README.md).
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
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from vindr_cli.synth.export import write_radiograph  # noqa: E402
from procmon import PeakRSS, warm  # noqa: E402  (bench/ is on sys.path when run as a script)

console = Console()
VENV_BIN = Path(sys.executable).parent


def make_data(folder: Path, n: int, rows: int, cols: int) -> int:
    stamp = folder / ".params"
    want = f"{n} {rows} {cols}"
    if stamp.exists() and stamp.read_text() == want:
        return sum(p.stat().st_size for p in folder.rglob("*.dcm"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with console.status(f"generating {n} files of {rows}x{cols}"):
        for i in range(n):
            photometric = "MONOCHROME1" if i % 2 else "MONOCHROME2"
            (folder / f"PATIENT_{i:04d}").mkdir()
            write_radiograph(folder / f"PATIENT_{i:04d}" / f"IMG_{i:04d}.dcm", index=i, rows=rows, cols=cols,
                             transfer_syntax="1.2.840.10008.1.2.1", photometric=photometric, seed=7, verify=False)
    stamp.write_text(want)
    return sum(p.stat().st_size for p in folder.rglob("*.dcm"))


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mon = PeakRSS(proc.pid)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    peak = mon.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return wall, peak


def certificate(work: Path) -> tuple[Path, Path]:
    key, cert = work / "gdcm_key.pem", work / "gdcm_cert.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-subj", "/CN=vindr-bench", "-days", "2"], check=True, capture_output=True)
    return key, cert


def tools(data: Path, work: Path, workers: int) -> dict[str, callable]:
    keydir = work / "keys"
    keydir.mkdir(mode=0o700, exist_ok=True)
    vkey = keydir / "vindr.key"
    gkey, gcert = certificate(work)
    vindr = str(VENV_BIN / "vindr")

    def out(name: str) -> Path:
        p = work / f"out_{name}"
        shutil.rmtree(p, ignore_errors=True)
        for extra in work.glob(f"out_{name}.linkage.parquet"):
            extra.unlink()
        return p

    return {
        "vindr": lambda: timed([vindr, "anonymize", str(data), str(out("vindr")), "--key", str(vkey),
                                "-j", str(workers)]),
        "gdcmanon": lambda: timed(["gdcmanon", "-e", "-r", "--continue", "-i", str(data), "-o", str(out("gdcmanon")),
                                   "-k", str(gkey), "-c", str(gcert)]),
        "dicognito": lambda: timed([sys.executable, "-m", "dicognito", "-o", str(out("dicognito")), "--quiet", str(data)]),
        "cp -r": lambda: timed(["cp", "-r", str(data), str(out("cp"))]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=1400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="runs per tool; the best is kept")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--skip", nargs="*", default=[], help="tools to leave out")
    args = ap.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    total = make_data(data, args.files, args.rows, args.cols)
    warm(data)
    results = {}
    for name, run in tools(data, work, args.workers).items():
        if name in args.skip or (name == "gdcmanon" and not shutil.which("gdcmanon")):
            continue
        best = None
        for _ in range(args.repeat):
            wall, peak = run()
            if best is None or wall < best[0]:
                best = (wall, peak)
        results[name] = {"wall_s": round(best[0], 3), "peak_rss_mb": round(best[1] / 2**20, 1),
                         "files_per_s": round(args.files / best[0], 1), "mb_per_s": round(total / 2**20 / best[0], 1)}
        console.print(f"{name}: {best[0]:.2f} s")

    # memory vs file size: same count of files, 4x the pixels
    mem = {}
    for label, (r, c) in {"1x": (args.rows, args.cols), "4x": (args.rows * 2, args.cols * 2)}.items():
        d = work / f"mem_{label}"
        make_data(d, 12, r, c)
        o = work / f"mem_out_{label}"
        shutil.rmtree(o, ignore_errors=True)
        _, peak = timed([str(VENV_BIN / "vindr"), "anonymize", str(d), str(o), "--key", str(work / "keys" / "vindr.key"),
                         "-j", "1", "--no-linkage"])
        mem[label] = {"file_mb": round(2 * r * c / 2**20, 1), "peak_rss_mb": round(peak / 2**20, 1)}

    t = Table(title=f"anonymize {args.files} files, {total / 2**20:.0f} MB, {args.workers} workers for vindr")
    for col in ("tool", "wall s", "files/s", "MB/s", "wall / vindr", "peak RSS (largest process) MB"):
        t.add_column(col, justify="right" if col != "tool" else "left")
    base = results.get("vindr", {}).get("wall_s")
    for name, r in results.items():
        t.add_row(name, f"{r['wall_s']:.2f}", f"{r['files_per_s']:.1f}", f"{r['mb_per_s']:.0f}",
                  f"{r['wall_s'] / base:.2f}" if base else "-", f"{r['peak_rss_mb']:.0f}")
    console.print(t)
    if base:
        for peer in ("gdcmanon", "cp -r", "dicognito"):
            if peer in results:
                console.print(f"vindr / {peer} wall time: {base / results[peer]['wall_s']:.2f}")
    console.print(f"vindr peak RSS, one worker: {mem['1x']['file_mb']} MB files -> {mem['1x']['peak_rss_mb']} MB; "
                  f"{mem['4x']['file_mb']} MB files -> {mem['4x']['peak_rss_mb']} MB")
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "files": args.files, "rows": args.rows, "cols": args.cols, "total_mb": round(total / 2**20, 1),
           "workers": args.workers, "results": results, "memory_vs_file_size": mem,
           "date": time.strftime("%Y-%m-%d")}
    res = ROOT / "bench" / "results" / "anonymize.json"
    res.write_text(json.dumps(out, indent=1) + "\n")
    console.print(f"wrote {res.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
