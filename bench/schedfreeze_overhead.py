"""What the driver's watch over a Dask run costs (issue 13, schedfreeze): the same tiny-task
stage as ``driver_bench.py`` through ``DaskExecutor`` on a local cluster (a scheduler and two
one-thread workers started here), with the watch (``cluster.Watch``: a pinging thread, every
blocking call in a thread of its own, the result wait in short steps) and without it (the
calls made directly, ``as_completed``'s own blocking wait: the code before the change),
alternated round robin. Figures: wall, the driver process's CPU seconds (all its threads:
``time.process_time``) and items/s; the 1-minute load average before each run.

    python bench/schedfreeze_overhead.py [--n 5000] [--rounds 3] [--ping 5] [--out schedfreeze_overhead.json]

``--ping`` sets ``cluster.PING_S`` (default 5 s, as shipped; a smaller one shows the ping's own
cost).
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
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import driver_bench  # noqa: E402
from vindr_cli.runner import cluster  # noqa: E402


class NoWatch(cluster.Watch):
    """The run as before the watch: no thread, direct calls, as_completed's blocking wait."""

    def start(self):
        return self

    def call(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def next_batch(self, done):
        try:
            return done.next_batch(block=True)
        except StopIteration:
            return None


def one(n: int, row: dict, tmp: Path, client, label: str, watched: bool) -> dict:
    cluster.Watch = Watch if watched else NoWatch
    ex = cluster.DaskExecutor(client, batch=None)
    load = os.getloadavg()[0]
    c0, t0 = time.process_time(), time.perf_counter()
    res = driver_bench.run(n, row, tmp, executor=ex, label=label)
    res.update(driver_cpu_s=round(time.process_time() - c0, 2), wall_s=round(time.perf_counter() - t0, 2),
               load_avg_1min=round(load, 1), tasks_sent=len(ex.batches))
    return res


Watch = cluster.Watch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ping", type=float, default=cluster.PING_S)
    ap.add_argument("--out", default="schedfreeze_overhead.json")
    a = ap.parse_args()
    cluster.PING_S = a.ping
    from distributed import Client

    tmp = Path(tempfile.mkdtemp(prefix="schedfreeze-bench-"))
    row = driver_bench.template_row(tmp)
    dask = Path(sys.executable).parent / "dask"
    addr = f"tcp://127.0.0.1:{driver_bench._port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "bench")])}
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", addr.rsplit(":", 1)[1],
                               "--no-dashboard"], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=tmp)]
    for _ in range(2):
        procs.append(subprocess.Popen([str(dask), "worker", addr, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                       "--host", "127.0.0.1"], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp))
    client = None
    runs: list[dict] = []
    try:
        deadline = time.monotonic() + 90
        while client is None:
            try:
                client = Client(addr, timeout=10, set_as_default=False)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        client.wait_for_workers(2, timeout=90)
        for r in range(a.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for watched in order:
                res = one(a.n, row, tmp, client, f"{'watch' if watched else 'nowatch'}-{r}", watched)
                res.update(round=r, watched=watched)
                runs.append(res)
                print(json.dumps(res), flush=True)
    finally:
        if client is not None:
            client.close(timeout=5)
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    summary = {}
    for watched in (False, True):
        rs = [r for r in runs if r["watched"] == watched]
        summary["watch" if watched else "no_watch"] = {
            "best_items_per_s": max(r["tasks_per_s"] for r in rs),
            "median_driver_cpu_s": sorted(r["driver_cpu_s"] for r in rs)[len(rs) // 2],
            "median_wall_s": sorted(r["wall_s"] for r in rs)[len(rs) // 2]}
    out = {"n": a.n, "rounds": a.rounds, "ping_s": a.ping, "runs": runs, "summary": summary}
    (REPO / "bench" / "results" / a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
