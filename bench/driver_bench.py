"""How far one driver goes: tasks per second it can journal and track, and its memory.

The driver (vindr's main process) is the single writer of journals, tables and final
names, whatever the executor. This bench measures that bottleneck alone, with tasks that
do nothing, so that the figure is the driver's ceiling:

1. ``runner``: ``run_stage`` over N synthetic inputs (default 200,000) with the in-process
   executor and a task that returns a real anonymize manifest row (taken from a run on
   ``sample_dicoms/export``, the key and paths made unique per input): the journal line
   (canonical JSON + its SHA-256, appended and flushed), the tracking (``Run.done``), the
   progress bar, then the final ``manifest.parquet``. Tasks/s, peak RSS, journal and table
   size.
2. ``dask``: the same stage through :class:`vindr_cli.runner.cluster.DaskExecutor` on a
   local cluster (a scheduler and 2 one-thread workers started here), M inputs (default
   5,000), one item per Dask task and the auto batch (several items per task), round robin,
   best of ``--dask-rounds`` (3): the per-task cost of Dask's scheduling on top of the
   driver's own, and what batching saves of it.
3. ``table``: a 1,000,000-row manifest (the same row, made unique) held in memory as the
   runner holds it and written with ``tables.write_table``: memory per row, file size.

Prints one JSON object (also written to ``bench/results/driver_bench.json``).

    python bench/driver_bench.py [--n 200000] [--dask-n 5000] [--dask-rounds 3] [--rows 1000000] [--no-dask]

(``--rows 0`` skips the table part.)

**Before / after** (issue 13, tables written as they grow): ``--compare OTHER_CHECKOUT`` runs
each part in a fresh process per checkout (peak RSS is a process's own ``ru_maxrss``, so one
part per process), the two checkouts interleaved round robin, best of ``--rounds`` by wall
time, the load average recorded around each: ``runner`` with ``--n`` tasks (default 200,000),
``runner`` with ``--rows`` tasks (1,000,000: the runner's own 1,000,000-row manifest write),
and ``table``, the 1,000,000-row write alone (the old path: rows held, ``write_table``; the new
one, where the checkout has it: rows made one by one into ``tables.write_rows``).

    python bench/driver_bench.py --compare /work/main [--n 200000] [--rows 1000000] [--rounds 2] --out F.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = Path(os.environ.get("VINDR_BENCH_TREE") or REPO)     # the checkout whose vindr_cli is measured
sys.path.insert(0, str(TREE))

sys.path.insert(0, str(REPO / "bench"))
from bench_io import current_rss_mb, manifest_rows, write_record  # noqa: E402
from vindr_cli.runner.executor import InProcessExecutor  # noqa: E402
from vindr_cli.runner.sources import Source  # noqa: E402
from vindr_cli.runner.stage import Stage, Table, run_stage  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def template_row(tmp: Path) -> dict:
    """One real manifest row: the sample export anonymized, its first ok row."""
    import pyarrow.parquet as pq

    keys = tmp / "keys"
    keys.mkdir(mode=0o700)
    out = tmp / "anon"
    subprocess.run([sys.executable, "-m", "vindr_cli", "anonymize", str(REPO / "sample_dicoms" / "export"), str(out),
                    "--key", str(keys / "k"), "-j", "1", "--no-linkage"], check=True, capture_output=True)
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    return next(r for r in rows if r["status"] == "ok")


def bench_setup(config):
    return config


def bench_task(row: dict, src: Source) -> dict:
    r = dict(row)
    r["input_key"] = src.rel
    r["output"] = None          # nothing to rename or verify: the driver's own work only
    r["status"] = "quarantined"  # an accounted-for row with no output file
    r["reason"] = "bench"
    return {"rows": {"manifest": [r]}}


class BenchStage(Stage):
    name = "bench"
    task = staticmethod(bench_task)
    setup = staticmethod(bench_setup)
    primary = "manifest"

    def __init__(self, output: Path, row: dict):
        self.output, self.row = output, row

    def config(self):
        return self.row

    def tables(self):
        return [Table("manifest", "anonymize_manifest", self.output / "manifest.parquet")]


def sources(n: int) -> list[Source]:
    return [Source(path=f"/nonexistent/{i:08d}.dcm", rel=f"{i:024x}", size=0) for i in range(n)]


def run(n: int, row: dict, tmp: Path, executor=None, label: str = "runner") -> dict:
    out = tmp / f"out-{label}"
    srcs = sources(n)
    before = current_rss_mb()
    t0 = time.perf_counter()
    summary = run_stage(BenchStage(out, row), tmp, executor=executor or InProcessExecutor(), sources=srcs)
    wall = time.perf_counter() - t0
    assert summary.inputs == n and summary.counts["quarantined"] == n
    return {"tasks": n, "wall_s": round(wall, 2), "tasks_per_s": round(n / wall),
            "rss_before_mb": round(before), "peak_rss_mb": round(rss_mb()),
            "manifest_mb": round((out / "manifest.parquet").stat().st_size / 1e6, 2)}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_dask(n: int, row: dict, tmp: Path, rounds: int = 3) -> dict:
    from distributed import Client

    from vindr_cli.runner.cluster import DaskExecutor

    dask = Path(sys.executable).parent / "dask"
    addr = f"tcp://127.0.0.1:{_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "bench")])}
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", addr.rsplit(":", 1)[1],
                               "--no-dashboard"], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=tmp)]
    for _ in range(2):
        procs.append(subprocess.Popen([str(dask), "worker", addr, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                       "--host", "127.0.0.1"], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp))
    client = None
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
        # one item per Dask task (as before batching) and the auto batch, round robin, best of `rounds`
        best: dict[str, dict] = {}
        for r in range(rounds):
            for label, batch in (("one_per_task", 1), ("auto_batch", None)):
                ex = DaskExecutor(client, batch=batch)
                load = os.getloadavg()[0]
                res = run(n, row, tmp, executor=ex, label=f"dask-{label}-{r}")
                res.update(tasks_sent=len(ex.batches), largest_batch=max(ex.batches), load_avg_1min=round(load, 1))
                if label not in best or res["tasks_per_s"] > best[label]["tasks_per_s"]:
                    best[label] = res
        best["auto_over_one_per_task"] = round(best["auto_batch"]["tasks_per_s"] / best["one_per_task"]["tasks_per_s"], 1)
        best["rounds"] = rounds
        return best
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


def table(rows_n: int, row: dict, tmp: Path) -> dict:
    from vindr_cli.tables import write_table

    before = current_rss_mb()
    rows = []
    for i in range(rows_n):
        r = dict(row)
        r["input_key"] = f"{i:024x}"
        r["image_id"] = f"{i:032x}"
        r["output"] = f"{i:016x}/{i:016x}/{i:016x}/{i:032x}.dcm"
        rows.append(r)
    held = current_rss_mb() - before
    path = tmp / "manifest-1m.parquet"
    t0 = time.perf_counter()
    write_table(rows, "anonymize_manifest", path)
    wall = time.perf_counter() - t0
    return {"rows": rows_n, "held_mb": round(held), "bytes_per_row_held": round(held * 1e6 / rows_n),
            "write_s": round(wall, 2), "file_mb": round(path.stat().st_size / 1e6, 1), "peak_rss_mb": round(rss_mb())}


def table_streamed(rows_n: int, row: dict, tmp: Path) -> dict:
    """The 1,000,000-row write as the new runner does it: rows made one at a time (as it reads
    them back from the journal) into ``tables.write_rows``, a bounded batch held at a time."""
    from vindr_cli.tables import write_rows

    before = current_rss_mb()
    path = tmp / "manifest-1m.parquet"
    t0 = time.perf_counter()
    write_rows(manifest_rows(rows_n, row), "anonymize_manifest", path)
    wall = time.perf_counter() - t0
    return {"rows": rows_n, "held_mb": 0, "rss_before_mb": round(before), "write_s": round(wall, 2),
            "file_mb": round(path.stat().st_size / 1e6, 1), "peak_rss_mb": round(rss_mb()), "streamed": True}


def part(name: str, n: int, row_file: Path) -> None:
    """One measure in this (fresh) process: its peak RSS is this part's alone."""
    row = json.loads(row_file.read_text())
    tmp = Path(tempfile.mkdtemp(prefix="vindr-driver-part-", dir=row_file.parent))
    load = os.getloadavg()[0]
    try:
        if name == "runner":
            res = run(n, row, tmp)
        else:
            import vindr_cli.tables as tables

            res = table_streamed(n, row, tmp) if hasattr(tables, "write_rows") else table(n, row, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res.update(load_avg_1min_start=round(load, 1), load_avg_1min_end=round(os.getloadavg()[0], 1))
    print(json.dumps(res))


def compare(other: Path, a, tmp: Path) -> dict:
    """Both checkouts, each part in a fresh process, round robin, best of ``a.rounds``."""
    row_file = tmp / "row.json"
    row_file.write_text(json.dumps(template_row(tmp)))
    trees = {"before": other.resolve(), "after": REPO}
    commits = {k: subprocess.run(["git", "-C", str(v), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip() for k, v in trees.items()}
    plan = [("runner", a.n, a.rounds), ("table", a.rows, 1), ("runner", a.rows, 1)]
    out: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": len(os.sched_getaffinity(0)),
                 "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                 "python": sys.version.split()[0], "trees": {k: f"{v} @ {commits[k]}" for k, v in trees.items()},
                 "load_avg_1min_start": round(os.getloadavg()[0], 1), "parts": {}}
    for name, n, rounds in plan:
        if not n:
            continue
        label = f"{name}_{n}"
        runs: dict[str, list] = {"before": [], "after": []}
        for _ in range(rounds):
            for which, tree in trees.items():
                env = {**os.environ, "VINDR_BENCH_TREE": str(tree), "PYTHONPATH": str(tree)}
                p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--part", name, "--n", str(n),
                                    "--row-file", str(row_file)], env=env, capture_output=True, text=True, check=True)
                res = json.loads(p.stdout.strip().splitlines()[-1])
                runs[which].append(res)
                print(label, which, json.dumps(res), file=sys.stderr, flush=True)
        best = {k: min(v, key=lambda r: r.get("wall_s", r.get("write_s"))) for k, v in runs.items()}
        out["parts"][label] = {"best": best, "all": runs, "rounds": rounds,
                               "peak_rss_after_over_before": round(best["after"]["peak_rss_mb"]
                                                                   / best["before"]["peak_rss_mb"], 3)}
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dask-n", type=int, default=5_000)
    ap.add_argument("--dask-rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--out", default="driver_bench.json", help="file name under bench/results/")
    ap.add_argument("--compare", type=Path, help="another checkout (before): each part, both checkouts")
    ap.add_argument("--rounds", type=int, default=2, help="--compare: rounds of the --n runner part")
    ap.add_argument("--part", choices=("runner", "table"), help=argparse.SUPPRESS)
    ap.add_argument("--row-file", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.part:
        part(a.part, a.n, a.row_file)
        return
    tmp = Path(tempfile.mkdtemp(prefix="vindr-driver-bench-"))
    if a.compare:
        try:
            res = compare(a.compare, a, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(res, indent=2))
        write_record(REPO / "bench" / "results" / a.out, res, indent=2)
        return
    try:
        row = template_row(tmp)
        res = {"date": time.strftime("%Y-%m-%d"), "cpus": len(os.sched_getaffinity(0)),
               "load_avg_1min_start": round(os.getloadavg()[0], 1),
               "python": sys.version.split()[0], "row_columns": len(row)}
        res["runner"] = run(a.n, copy.deepcopy(row), tmp)
        if not a.no_dask:
            res["dask"] = run_dask(a.dask_n, copy.deepcopy(row), tmp, a.dask_rounds)
        if a.rows:
            res["table"] = table(a.rows, row, tmp)
        res["load_avg_1min_end"] = round(os.getloadavg()[0], 1)
        print(json.dumps(res, indent=2))
        write_record(REPO / "bench" / "results" / a.out, res, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
