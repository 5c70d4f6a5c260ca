#!/usr/bin/env python3
"""Benchmark `vindr anonymize` against named peers on the same data, in one run.

Peers: gdcmanon (Debian libgdcm-tools, PS3.15 basic profile with a throw-away
certificate), dicognito (PyPI) and `cp -r` (the cost of copying the bytes). The floor of
vindr's contract, in the same run (``anonymize_floor.py``, as many processes as vindr's
workers): "floor: read + SHA-256 + write" (every byte read, hashed with OpenSSL's SHA-256
and written: the least any tool recording ``pixel_sha256`` must do), the same with the copy
written by ``copy_file_range`` (as ``cp`` writes it), the same without the write, and
coreutils ``sha256sum`` (``xargs -P``). Ratios are printed by wall and by CPU.
Data: N radiograph-sized files (default 200 x 2048x1400 16-bit, ~5.7 MB, one fake
identity per file) made by vindr_cli.synth. Prints wall time, throughput, ratios and the
peak resident memory of the largest single process; a second, smaller run shows that
vindr's per-worker memory does not grow with file size (pixel data is streamed).

vindr runs twice per round: ``--burned-in off`` (the pure de-identification path, the one
compared with the peers, which do not look at pixels) and the default ``--burned-in redact``
(every image OCR'd, ~0.3 s CPU each: with ``--redact-files N`` on the first N files only, as
its own row). ``--before TREE`` adds the same runs from another checkout of vindr (e.g. the
commit before a change, ``git archive``d to a folder), run from that tree with PYTHONPATH.
Tools run round robin (one run of each, ``--repeat`` times), best kept; the load average is
recorded before and after. ``--startup``: wall and CPU of a one-file run, ``--burned-in off`` and
``redact`` (best of 7), for each tree, with the import floor of the libraries a run needs
(pydicom, pyarrow.parquet, typer).

Usage: python bench/anonymize_bench.py [--files 200] [--rows 2048 --cols 1400] [--workers 2]
                                       [--before TREE] [--startup | --startup-only] [--repeat 3] [--results NAME]
Results: bench/results/anonymize.json, or ``--results NAME`` (figures are copied by hand into bench/README.md).
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


def tree_env(tree: Path | None) -> dict | None:
    """Environment that runs vindr from ``tree`` (None: the installed one), with bytecode
    caching on (an installed package has its .pyc files). vindr runs as ``python -P -m``:
    without -P the working directory comes first on sys.path, and a checkout there would
    be run whatever PYTHONPATH says."""
    if tree is None:
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    return env


FLOOR = "floor: read + SHA-256 + write"    # row name of the floor (anonymize_floor.py)
KFLOOR = "floor: read + SHA-256, copy_file_range"   # the same, the copy written by the kernel (as cp does)
CPU: dict[str, float] = {}       # CPU seconds (user + system, the process and its workers) of the last timed run


def timed(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, int]:
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    mon = PeakRSS(proc.pid)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    peak = mon.stop()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return wall, peak


def certificate(work: Path) -> tuple[Path, Path]:
    key, cert = work / "gdcm_key.pem", work / "gdcm_cert.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-subj", "/CN=vindr-bench", "-days", "2"], check=True, capture_output=True)
    return key, cert


def tools(data: Path, work: Path, workers: int, trees: dict[str, Path | None], redact_data: Path | None) -> dict[str, callable]:
    keydir = work / "keys"
    keydir.mkdir(mode=0o700, exist_ok=True)
    vkey = keydir / "vindr.key"
    gkey, gcert = certificate(work)

    def out(name: str) -> Path:
        p = work / f"out_{name}"
        shutil.rmtree(p, ignore_errors=True)
        for extra in work.glob(f"out_{name}.linkage.parquet"):
            extra.unlink()
        return p

    def vindr(label: str, tree: Path | None, src: Path, burned_in: str):
        name = f"vindr{label} --burned-in {burned_in}"
        cmd = [sys.executable, "-P", "-m", "vindr_cli", "anonymize", str(src), "", "--key", str(vkey), "-j", str(workers),
               "--burned-in", burned_in]

        def run():
            cmd[cmd.index("--key") - 1] = str(out(name.replace(" ", "_")))
            return timed(cmd, env=tree_env(tree) or tree_env(ROOT))
        return name, run

    runs = {}
    for label, tree in trees.items():
        name, run = vindr(label, tree, data, "off")
        runs[name] = run
        if redact_data is not None:
            name, run = vindr(label, tree, redact_data, "redact")
            runs[name] = run
    return runs | {
        "gdcmanon": lambda: timed(["gdcmanon", "-e", "-r", "--continue", "-i", str(data), "-o", str(out("gdcmanon")),
                                   "-k", str(gkey), "-c", str(gcert)]),
        "dicognito": lambda: timed([sys.executable, "-m", "dicognito", "-o", str(out("dicognito")), "--quiet", str(data)]),
        "cp -r": lambda: timed(["cp", "-r", str(data), str(out("cp"))]),
        # the floor (anonymize_floor.py): what any tool with vindr's contract must do at least,
        # i.e. read every byte, SHA-256 the pixel bytes (pixel_sha256) and write the copy
        FLOOR: lambda: timed([sys.executable, str(ROOT / "bench" / "anonymize_floor.py"), str(data), str(out("floor")),
                              "-j", str(workers)]),
        KFLOOR: lambda: timed([sys.executable, str(ROOT / "bench" / "anonymize_floor.py"), str(data),
                               str(out("floor_kernel")), "-j", str(workers), "--kernel-copy"]),
        "floor: read + SHA-256, no write": lambda: timed([sys.executable, str(ROOT / "bench" / "anonymize_floor.py"),
                                                          str(data), str(out("floor_nowrite")), "-j", str(workers),
                                                          "--no-write"]),
        "sha256sum": lambda: timed(["sh", "-c", f"find '{data}' -name '*.dcm' -print0 | xargs -0 -P {workers} -n 25 "
                                                "sha256sum > /dev/null"]),
    }


def startup(work: Path, trees: dict[str, Path | None], repeat: int = 7) -> dict:
    """A one-file ``vindr anonymize`` per tree, ``--burned-in off`` and the default
    ``redact`` (best wall and best CPU of ``repeat``, round robin with the import floors of
    what such a run needs), with the load average before and after."""
    from pydicom.data import get_testdata_file

    one = work / "one"
    one.mkdir(exist_ok=True)
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), one / "CT_small.dcm")
    key = work / "keys" / "vindr.key"
    floors = {"python -c pass": "pass", "import pydicom": "import pydicom",
              "import pydicom, pyarrow.parquet, typer, rich.console": "import pydicom, pyarrow.parquet, typer, rich.console",
              # the floor of a one-file run (startup2): what it imports of other people's code,
              # with vindr's own start-up measures (pydicom hook, GC deferral) and without vindr
              # (startup3: + one BLAS thread, vindr_cli.startup.one_blas_thread)
              "libraries of a one-file run, vindr's start-up": (
                  "from vindr_cli.startup import defer_first_collection, one_blas_thread\n"
                  "defer_first_collection(); one_blas_thread()\n"
                  "from vindr_cli.dicomio.lazy import defer_pydicom_backends; defer_pydicom_backends()\n"
                  "import pydicom, pyarrow.parquet, typer, rich.console, rich.table, rich.progress"),
              "import numpy": "import numpy", "import numpy, pyarrow.parquet": "import numpy, pyarrow.parquet",
              "import numpy, one BLAS thread": "import os; os.environ['OPENBLAS_NUM_THREADS'] = '1'; import numpy",
              "import typer, rich.console, rich.table, rich.progress":
                  "import typer, rich.console, rich.table, rich.progress"}
    best: dict[str, list[float]] = {}

    def keep(name: str, wall: float) -> None:
        old = best.get(name, [1e9, 1e9])
        best[name] = [min(old[0], wall), min(old[1], CPU["last"])]

    load = [round(x, 2) for x in os.getloadavg()]
    for _ in range(repeat):
        for label, tree in trees.items():
            for mode in ("off", "redact"):
                o = work / "one_out"
                shutil.rmtree(o, ignore_errors=True)
                (work / "one_out.linkage.parquet").unlink(missing_ok=True)
                wall, _ = timed([sys.executable, "-P", "-m", "vindr_cli", "anonymize", str(one), str(o), "--key",
                                 str(key), "--burned-in", mode], env=tree_env(tree) or tree_env(ROOT))
                keep(f"vindr{label} one file --burned-in {mode}", wall)
        for name, code in floors.items():
            wall, _ = timed([sys.executable, "-P", "-c", code], env=tree_env(ROOT))
            keep(name, wall)
    out = {k: {"wall_s": round(w, 3), "cpu_s": round(c, 3)} for k, (w, c) in best.items()}
    return out | {"repeat": repeat, "load_average": [load, [round(x, 2) for x in os.getloadavg()]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=1400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="runs per tool; the best is kept")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--skip", nargs="*", default=[], help="tools to leave out")
    ap.add_argument("--before", type=Path, help="another vindr tree to run alongside (e.g. the previous commit)")
    ap.add_argument("--redact-files", type=int, default=20,
                    help="files for the default --burned-in redact runs (0: none; OCR costs ~0.3 s CPU per image)")
    ap.add_argument("--startup", action="store_true", help="also time a one-file run per tree (best of 7)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory-vs-file-size runs")
    ap.add_argument("--results", default="anonymize.json", help="file name under bench/results/")
    ap.add_argument("--startup-only", action="store_true",
                    help="only the one-file series (results: bench/results/anonymize_startup.json)")
    ap.add_argument("--startup-results", type=Path, default=ROOT / "bench" / "results" / "anonymize_startup.json",
                    help="where --startup-only writes its results")
    ap.add_argument("--startup-repeat", type=int, default=7, help="rounds of the one-file series (best kept)")
    args = ap.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.startup_only:
        (work / "keys").mkdir(mode=0o700, exist_ok=True)
        start = startup(work, {"": ROOT} | ({" (before)": args.before.resolve()} if args.before else {}),
                        repeat=args.startup_repeat)
        for name, r in start.items():
            console.print(f"{name}: {r}")
        res = args.startup_results.resolve()
        res.write_text(json.dumps({"startup": start, "before_tree": str(args.before) if args.before else None,
                                   "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                   # BLAS thread settings the runs inherited (none: vindr sets its own)
                                   "blas_env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                                                                           "OMP_NUM_THREADS") if k in os.environ},
                                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1) + "\n")
        console.print(f"wrote {res.relative_to(ROOT) if res.is_relative_to(ROOT) else res}")
        return
    data = work / "data"
    total = make_data(data, args.files, args.rows, args.cols)
    redact_data = None
    if args.redact_files:
        redact_data = work / f"redact_{args.redact_files}"
        if not redact_data.is_dir() or len(list(redact_data.iterdir())) != args.redact_files:
            shutil.rmtree(redact_data, ignore_errors=True)
            redact_data.mkdir()
            for d in sorted(p for p in data.iterdir() if p.is_dir())[:args.redact_files]:
                shutil.copytree(d, redact_data / d.name)
    warm(data)
    trees = {"": ROOT} | ({" (before)": args.before.resolve()} if args.before else {})
    load = {"before": [round(x, 2) for x in os.getloadavg()]}
    runs = {name: run for name, run in tools(data, work, args.workers, trees, redact_data).items()
            if name not in args.skip and not (name == "gdcmanon" and not shutil.which("gdcmanon"))}
    best: dict[str, tuple[float, int, float]] = {}
    best_cpu: dict[str, float] = {}           # the least CPU of any round (CPU is what a busy machine distorts least)
    for _ in range(args.repeat):              # round robin: every tool once per round
        for name, run in runs.items():
            wall, peak = run()
            if name not in best or wall < best[name][0]:
                best[name] = (wall, peak, CPU["last"])
            best_cpu[name] = min(best_cpu.get(name, 1e9), CPU["last"])
            console.print(f"{name}: {wall:.2f} s wall, {CPU['last']:.2f} s CPU")
    results = {}
    for name, (wall, peak, cpu) in best.items():
        n = args.redact_files if "redact" in name else args.files
        mb = total / 2**20 * n / args.files
        results[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "best_cpu_s": round(best_cpu[name], 3),
                         "cpu_ms_per_file": round(best_cpu[name] / n * 1000, 2),
                         "peak_rss_mb": round(peak / 2**20, 1),
                         "files": n, "files_per_s": round(n / wall, 1), "mb_per_s": round(mb / wall, 1)}
    start = startup(work, trees, repeat=args.startup_repeat) if args.startup else None
    load["after"] = [round(x, 2) for x in os.getloadavg()]

    # memory vs file size: same count of files, 4x the pixels
    mem = {}
    for label, (r, c) in ({} if args.no_memory else {"1x": (args.rows, args.cols), "4x": (args.rows * 2, args.cols * 2)}).items():
        d = work / f"mem_{label}"
        make_data(d, 12, r, c)
        o = work / f"mem_out_{label}"
        shutil.rmtree(o, ignore_errors=True)
        _, peak = timed([sys.executable, "-P", "-m", "vindr_cli", "anonymize", str(d), str(o), "--key",
                         str(work / "keys" / "vindr.key"), "-j", "1", "--no-linkage", "--burned-in", "off"], env=tree_env(ROOT))
        mem[label] = {"file_mb": round(2 * r * c / 2**20, 1), "peak_rss_mb": round(peak / 2**20, 1)}

    t = Table(title=f"anonymize {args.files} files, {total / 2**20:.0f} MB, {args.workers} workers for vindr")
    for col in ("tool", "wall s", "best CPU s", "CPU ms/file", "files/s", "MB/s", "wall / vindr", "peak RSS (largest process) MB"):
        t.add_column(col, justify="right" if col != "tool" else "left")
    base = results.get("vindr --burned-in off", {}).get("wall_s")
    for name, r in results.items():
        t.add_row(name, f"{r['wall_s']:.2f}", f"{r['best_cpu_s']:.2f}", f"{r['cpu_ms_per_file']:.1f}", f"{r['files_per_s']:.1f}",
                  f"{r['mb_per_s']:.0f}",
                  f"{r['wall_s'] / base:.2f}" if base and "redact" not in name else "-", f"{r['peak_rss_mb']:.0f}")
    console.print(t)
    ratios, cpu_ratios = {}, {}
    for label in trees:
        mine = results.get(f"vindr{label} --burned-in off", {}).get("wall_s")
        for peer in ("gdcmanon", "cp -r", "dicognito", FLOOR, KFLOOR):
            if mine and peer in results:
                ratios[f"vindr{label} (off) / {peer}"] = round(mine / results[peer]["wall_s"], 2)
                # CPU against CPU: what a busy machine distorts least
                cpu_ratios[f"vindr{label} (off) / {peer}"] = round(
                    results[f"vindr{label} --burned-in off"]["best_cpu_s"] / results[peer]["best_cpu_s"], 2)
    for k, v in ratios.items():
        console.print(f"{k} wall time: {v:.2f}, CPU time: {cpu_ratios[k]:.2f}")
    if start:
        console.print(f"start-up (one file, best wall / best CPU of {start['repeat']}): {start}")
    if mem:
        console.print(f"vindr peak RSS, one worker: {mem['1x']['file_mb']} MB files -> {mem['1x']['peak_rss_mb']} MB; "
                      f"{mem['4x']['file_mb']} MB files -> {mem['4x']['peak_rss_mb']} MB")
    console.print(f"load average (1, 5, 15 min) before {load['before']}, after {load['after']}")
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "files": args.files, "rows": args.rows, "cols": args.cols, "total_mb": round(total / 2**20, 1),
           "workers": args.workers, "repeat": args.repeat, "results": results, "ratios": ratios, "cpu_ratios": cpu_ratios,
           "startup": start,
           "memory_vs_file_size": mem, "load_average": load, "before_tree": str(args.before) if args.before else None,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    res = ROOT / "bench" / "results" / args.results
    res.write_text(json.dumps(out, indent=1) + "\n")
    console.print(f"wrote {res}")


if __name__ == "__main__":
    main()
