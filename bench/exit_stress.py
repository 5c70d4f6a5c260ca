"""Stress the CLI's process exit: the same small command many times, each in a fresh OUTPUT,
with busy loops competing for the CPUs, counting non-zero exits and their signals
(apache/arrow#34314: native thread pools torn down during interpreter finalization).

    python bench/exit_stress.py WORKDIR --runs 300 --busy 2 --budget-s 900 [--json OUT.json]
        [--variant before=SRC_A --variant after=SRC_B] [--exit entry|normal]

--exit normal runs each command as ``cli.main()`` called in a process (what tests and library
callers do: Python's normal finalization, no os._exit), instead of ``python -m vindr_cli``.

With --variant (LABEL=a source tree, e.g. `git archive` of two commits), every command runs
once per variant in each round, interleaved, with that tree as PYTHONPATH: both see the
same load.

WORKDIR gets in/ (3 small pydicom test files, one renumbered), a key, anon/ (their
anonymized tree), then one fresh OUTPUT per run (removed after). Each busy loop is started
with `timeout`, and killed by its process id at the end. Commands run round robin:
decode (-j 1), anonymize, info. Nothing is downloaded."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench_io import load_summary, write_record

PY = sys.executable
VINDR = [PY, "-P", "-m", "vindr_cli"]
NORMAL = [PY, "-P", "-c", "import sys; sys.argv[0] = 'vindr'; from vindr_cli.cli import main; main()"]


def prepare(work: Path) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    src = work / "in"
    if (work / "anon" / "manifest.parquet").is_file():
        return
    src.mkdir(parents=True, exist_ok=True)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name, download=False), src / name)
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm", download=False))
    root = "1.2.826.0.1.3680043.8.498.777"          # MR_small_RLE is MR_small's instance: renumber
    ds.StudyInstanceUID, ds.SeriesInstanceUID = root, root + ".1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = root + ".1.1"
    ds.save_as(src / "MR_small_RLE.dcm")
    (work / "keys").mkdir(mode=0o700, exist_ok=True)
    fd = os.open(work / "keys" / "k", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, secrets.token_hex(32).encode())
    os.close(fd)
    subprocess.run([*VINDR, "anonymize", src, work / "anon", "--key", work / "keys" / "k", "--burned-in", "off"],
                   check=True, capture_output=True)


def commands(work: Path, out: Path, run: list = VINDR) -> dict[str, list]:
    return {"decode": [*run, "decode", work / "anon", out, "-j", "1"],
            "anonymize": [*run, "anonymize", work / "in", out, "--key", work / "keys" / "k", "--burned-in", "off"],
            "info": [*run, "info", work / "in"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--runs", type=int, default=300, help="runs of each command")
    ap.add_argument("--busy", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=900)
    ap.add_argument("--only", default="decode,anonymize,info")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--variant", action="append", default=[], help="LABEL=PATH (PYTHONPATH of that variant)")
    ap.add_argument("--exit", choices=["entry", "normal"], default="entry",
                    help="entry: python -m vindr_cli; normal: cli.main() in a process (normal finalization)")
    a = ap.parse_args()
    work = a.work.resolve()
    prepare(work)
    variants = dict(v.split("=", 1) for v in a.variant) or {"": os.environ.get("PYTHONPATH", "")}
    names = [f"{cmd}@{label}" if label else cmd for label in variants for cmd in a.only.split(",")]
    busy = [subprocess.Popen(["timeout", str(int(a.budget_s) + 60), PY, "-c", "while 1: pass"])
            for _ in range(a.busy)]
    counts = {n: Counter() for n in names}
    fails: list[dict] = []
    load = []
    t0 = time.monotonic()
    try:
        for i in range(a.runs):
            if time.monotonic() - t0 > a.budget_s:
                break
            for name in names:
                cmd, _, label = name.partition("@")
                out = work / f"out-{cmd}-{label}-{i}"
                env = dict(os.environ, COLUMNS="120")
                if label:
                    env["PYTHONPATH"] = variants[label]
                p = subprocess.run(commands(work, out, NORMAL if a.exit == "normal" else VINDR)[cmd], capture_output=True, text=True, env=env, timeout=300)
                rc = p.returncode
                key = "ok" if rc == 0 else (f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit {rc}")
                counts[name][key] += 1
                if rc != 0:
                    fails.append({"cmd": name, "run": i, "rc": rc, "stderr_tail": p.stderr[-300:]})
                    print(f"{name} run {i}: {key}: {p.stderr[-200:]!r}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
                for extra in (out.with_name(out.name + ".linkage.parquet"),):
                    extra.unlink(missing_ok=True)
            load.append(os.getloadavg()[0])
            if i % 20 == 19:
                print(f"round {i + 1}: {json.dumps({n: dict(c) for n, c in counts.items()})} "
                      f"load {load[-1]:.1f}", flush=True)
    finally:
        for b in busy:
            b.terminate()        # SIGTERM: `timeout` passes it on to its busy loop (SIGKILL would orphan it)
            b.wait()
    res = {"python": sys.version.split()[0], "exit": a.exit, "variants": variants, "cpus": os.cpu_count(), "runs_per_command": {n: sum(c.values()) for n, c in counts.items()},
           "outcomes": {n: dict(c) for n, c in counts.items()}, "busy_loops": a.busy,
           "loadavg_1min": load_summary(load),
           "wall_s": round(time.monotonic() - t0, 1), "failures": fails}
    print(json.dumps({k: v for k, v in res.items() if k != "failures"}, indent=1))
    if a.json:
        write_record(a.json, res)


if __name__ == "__main__":
    main()
