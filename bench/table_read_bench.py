#!/usr/bin/env python3
"""Peak memory of reading a 1,000,000-row anonymize manifest, whole against in batches (issue 13).

The manifest is bench/driver_bench.py's simulation: one real row (the sample export
anonymized) made unique a million times and written by ``tables.write_rows``; every 20th row
is ``quarantined`` (a reason, no output), the rest ``ok``. Each reader runs in a fresh
process; its peak RSS (``ru_maxrss``) less the RSS after its imports is the figure.

* ``release, whole``:  ``vindr release``'s read before: ``read_rows`` (the whole table, then
  a dict per row), a dict of the ok rows by image_id, all rows kept for the datasheet;
* ``release, batches``: ``release.build._read_manifest`` (``tables.iter_rows``: 50,000 rows a
  batch, the 8 columns the release uses; ok rows kept, the others for the datasheet);
* ``select, whole``:   ``vindr select``'s read before: ``read_rows``, then the ok rows;
* ``select, batches``:  ``curate.select.read_manifest`` (every column, in batches, ok rows kept).

Both release variants are checked to give the same ok rows (projected) and the same
datasheet exclusion counts; both select variants the same ok rows.

Usage: python bench/table_read_bench.py [--rows 1000000] [--rounds 1]
Results: bench/results/table_read.json (figures in bench/README.md, driver section).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_io import current_rss_mb, manifest_rows, write_record  # noqa: E402

READERS = ("release, whole", "release, batches", "select, whole", "select, batches")


def write_manifest(rows_n: int, row: dict, anon: Path) -> Path:
    from vindr_cli.tables import write_rows

    (anon / ".vindr").mkdir(parents=True)
    (anon / ".vindr" / "anonymize.json").write_text("{}")
    path = anon / "manifest.parquet"
    write_rows(manifest_rows(rows_n, row, folders=997, quarantine_every=20), "anonymize_manifest", path)
    return path


def reader(name: str, anon: Path) -> None:
    """One reader in this (fresh) process; prints its figures as one JSON line."""
    import hashlib

    from vindr_cli.curate.select import read_manifest
    from vindr_cli.release import datasheet
    from vindr_cli.release.build import _MANIFEST_COLUMNS, _read_manifest
    from vindr_cli.tables import read_rows

    path = anon / "manifest.parquet"
    base = current_rss_mb()
    t0 = time.perf_counter()
    if name == "release, whole":
        rows = read_rows(path)
        ok = {r["image_id"]: r for r in rows if r["status"] == "ok"}
        others = rows
    elif name == "release, batches":
        ok, others = _read_manifest(path)
    elif name == "select, whole":
        rows = read_rows(path)
        ok = [r for r in rows if r.get("status") == "ok"]
    else:
        ok = read_manifest(anon)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if name.startswith("release"):      # the same content both ways: ok rows (projected), exclusions
        digest = hashlib.sha256(json.dumps([[r.get(c) for c in _MANIFEST_COLUMNS] for r in ok.values()]).encode())
        digest.update(json.dumps(datasheet.anonymize_exclusions(others)).encode())
        n_ok = len(ok)
    else:
        digest = hashlib.sha256(json.dumps([sorted(r.items()) for r in ok], default=str).encode())
        n_ok = len(ok)
    print(json.dumps({"reader": name, "ok_rows": n_ok, "wall_s": round(wall, 2), "rss_after_imports_mb": round(base),
                      "peak_rss_mb": round(peak), "peak_over_imports_mb": round(peak - base),
                      "content_sha256": digest.hexdigest()[:16]}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "table_read.json")
    ap.add_argument("--reader", help=argparse.SUPPRESS)
    ap.add_argument("--anon", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.reader:
        reader(a.reader, a.anon)
        return 0
    from driver_bench import template_row

    tmp = Path(tempfile.mkdtemp(prefix="vindr-table-read-"))
    try:
        row = template_row(tmp)
        t0 = time.perf_counter()
        path = write_manifest(a.rows, row, tmp / "anon_tree")
        made = {"rows": a.rows, "file_mb": round(path.stat().st_size / 1e6, 1),
                "write_s": round(time.perf_counter() - t0, 1)}
        runs: dict[str, list] = {r: [] for r in READERS}
        load = [round(os.getloadavg()[0], 1)]
        for _ in range(a.rounds):
            for name in READERS:          # round robin, each in a fresh process
                p = subprocess.run([sys.executable, __file__, "--reader", name, "--anon", str(tmp / "anon_tree")],
                                   capture_output=True, text=True, check=True)
                res = json.loads(p.stdout.strip().splitlines()[-1])
                runs[name].append(res)
                print(json.dumps(res), flush=True)
            load.append(round(os.getloadavg()[0], 1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = {k: min(v, key=lambda r: r["peak_rss_mb"]) for k, v in runs.items()}
    for a_, b_ in (("release, whole", "release, batches"), ("select, whole", "select, batches")):
        if best[a_]["content_sha256"] != best[b_]["content_sha256"]:
            raise AssertionError(f"{a_} and {b_} read different content")
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "manifest": made,
              "load_avg_1min": load, "best": best, "all": runs}
    print(f"wrote {write_record(a.out, record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
