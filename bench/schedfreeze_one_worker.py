"""One `dask worker` of two stopped with SIGSTOP (issue 13, schedfreeze): what a run does when
the scheduler answers and another worker lives. The driver's watch does not stop such a run
(a worker is heard from); Dask's ``distributed.scheduler.worker-ttl`` (a scheduler setting,
default 5 minutes; 10 s here) drops the silent worker and its files run on the other.

Two cases, each on a fresh scheduler + two one-thread workers whose text finder is 0.3 s
slower (tests/schedfreeze_slow_worker.py), `vindr anonymize --executor dask` on
`sample_dicoms/export`, one file per Dask task:

* ``mid-run``: once 2 files are journaled, the worker that holds a task is stopped;
* ``before``: one worker stopped before the run starts (the run's first check, a
  ``client.run`` on every worker, waits for it).

Each: exit code, seconds from the start, whether the stopped worker held a task, and whether
the tree equals a local run's with the same key (files and rows).

    python bench/schedfreeze_one_worker.py [--ttl 10s] [--out schedfreeze_one_worker.json]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttl", default="10s")
    ap.add_argument("--out", default="schedfreeze_one_worker.json")
    a = ap.parse_args()
    os.environ["DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"] = a.ttl      # the scheduler's, read by Cluster's _env()
    from helpers import run_cli
    from test_dask_cluster import _same_tree
    from test_schedfreeze import EXPORT, VINDR, Slow, _env, _journaled, _signal

    base = Path(tempfile.mkdtemp(prefix="schedfreeze-one-"))
    key = base / "k.key"
    key.write_text(os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    run_cli("anonymize", EXPORT, base / "local", "--key", key, "-j", "2")
    results = []
    for case in ("mid-run", "before"):
        c = Slow(base / f"logs-{case}", n=2)
        c.start()
        out = base / f"anon-{case}"
        pids = c.worker_pids()               # address -> pid
        stopped: list[int] = []
        held = None
        load = os.getloadavg()[0]
        try:
            c.marker.touch()
            if case == "before":
                stopped = [sorted(pids.values())[0]]
                _signal(stopped, signal.SIGSTOP)
            t0 = time.monotonic()
            p = subprocess.Popen([*VINDR, "anonymize", str(EXPORT), str(out), "--key", str(key), "--executor", "dask",
                                  "--scheduler", c.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=REPO, env=_env(VINDR_DASK_BATCH="1"))
            if case == "mid-run":
                while _journaled(out) < 2 and p.poll() is None:
                    time.sleep(0.05)
                busy = {addr: keys for addr, keys in c.client.processing().items() if keys}
                addr = sorted(busy)[0] if busy else sorted(pids)[0]
                held = bool(busy)
                stopped = [pids[addr]]
                _signal(stopped, signal.SIGSTOP)
            _, err = p.communicate(timeout=900)
            seconds = round(time.monotonic() - t0, 1)
        finally:
            _signal(stopped, signal.SIGCONT)
            c.marker.unlink(missing_ok=True)
            c.stop()
        same = p.returncode == 0 and _same_tree(base / "local", out) >= 20
        r = {"case": case, "exit": p.returncode, "seconds": seconds, "stopped_worker_held_a_task": held,
             "same_tree_as_local": same, "worker_ttl": a.ttl, "load_avg_1min": round(load, 1),
             "error_lines": [ln for ln in err.splitlines() if ln.startswith("error:")]}
        print(json.dumps(r), flush=True)
        results.append(r)
    (REPO / "bench" / "results" / a.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
