"""The exit abort of apache/arrow#34314 in isolation: a fresh process reads one Parquet table,
then leaves by Python's normal finalization; the two ways of reading alternate, run by run.

    python bench/exit_pybuffer.py WORKDIR --runs 500 [--json OUT.json]

``python-file``: ``pq.ParquetFile(f).read()`` over ``open(path, "rb")`` (what vindr did before
tables.arrow_file): pyarrow wraps it in a PythonFile and, with pre_buffer, reads on its I/O
threads into buffers owned by Python objects. ``arrow-file``: the same read over
``tables.arrow_file(f)`` (an OSFile of the same open file). Counts exit statuses; an abort is
SIGABRT (`terminate called without an active exception`). Nothing is downloaded."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench_io import load_summary, write_record

READ = {
    "python-file": "import pyarrow.parquet as pq\nwith open(P, 'rb') as f:\n    n = len(pq.ParquetFile(f).read().to_pylist())\n",
    "arrow-file": ("import pyarrow.parquet as pq\nfrom vindr_cli.tables import arrow_file\n"
                   "with open(P, 'rb') as f, arrow_file(f) as af:\n    n = len(pq.ParquetFile(af).read().to_pylist())\n"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--budget-s", type=float, default=900)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vindr_cli.tables import write_rows

    a.work.mkdir(parents=True, exist_ok=True)
    table = a.work / "manifest.parquet"
    write_rows([{"input_key": f"{i:06d}", "status": "ok", "output": f"a/{i}.dcm", "rows": i, "columns": i}
                for i in range(3000)], "anonymize_manifest", table)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    counts = {m: Counter() for m in READ}
    load, fails, t0 = [], [], time.monotonic()
    for i in range(a.runs):
        if time.monotonic() - t0 > a.budget_s:
            break
        for mode, code in READ.items():
            p = subprocess.run([sys.executable, "-c", f"P = {str(table)!r}\n{code}"], capture_output=True, text=True,
                               env=env, timeout=120)
            rc = p.returncode
            counts[mode]["ok" if rc == 0 else (f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit {rc}")] += 1
            if rc:
                fails.append({"mode": mode, "run": i, "rc": rc, "stderr_tail": p.stderr[-200:]})
        load.append(os.getloadavg()[0])
        if i % 50 == 49:
            print(f"round {i + 1}: {json.dumps({m: dict(c) for m, c in counts.items()})} load {load[-1]:.1f}", flush=True)
    res = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "outcomes": {m: dict(c) for m, c in counts.items()},
           "loadavg_1min": load_summary(load),
           "wall_s": round(time.monotonic() - t0, 1), "failures": fails}
    print(json.dumps({k: v for k, v in res.items() if k != "failures"}, indent=1))
    if a.json:
        write_record(a.json, res)


if __name__ == "__main__":
    main()
