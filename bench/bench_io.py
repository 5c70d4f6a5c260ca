"""Small helpers the bench scripts share (no heavy import: a reader's RSS after its imports is
a figure): the process's resident memory now, and a results file written whole."""
from __future__ import annotations

import json
import os
from pathlib import Path


def current_rss_mb() -> float:
    """This process's resident set now (VmRSS), in MiB; NaN where /proc does not say."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_record(path: Path, record: dict, *, indent: int = 1) -> Path:
    """``record`` as indented JSON (and a newline) at ``path``, its folder made, written under a
    temporary name and renamed (never half-written); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=indent) + "\n")
    os.replace(tmp, path)
    return path


def manifest_rows(rows_n: int, row: dict, *, folders: int | None = None, quarantine_every: int | None = None):
    """``rows_n`` synthetic anonymize-manifest rows made one at a time from the template ``row``:
    unique input keys, image ids and output paths (the first folder ``i % folders`` when given,
    else ``i``); with ``quarantine_every`` = n, every n-th row quarantined (no output)."""
    for i in range(rows_n):
        r = dict(row)
        r["input_key"] = f"{i:024x}"
        r["image_id"] = f"{i:032x}"
        r["output"] = f"{i % folders if folders else i:016x}/{i:016x}/{i:016x}/{i:032x}.dcm"
        if quarantine_every and i % quarantine_every == quarantine_every - 1:
            r.update(status="quarantined", reason="burned-in text found and --burned-in quarantine", output=None)
        yield r


def load_summary(load: list[float]) -> dict:
    """The 1-minute load averages sampled during a run, as the results record them."""
    return {"min": min(load, default=None), "max": max(load, default=None),
            "mean": sum(load) / len(load) if load else None}


# A memory-capped launcher: ``python -c LAUNCH CAP CMD...`` runs CMD with its address space capped
# at CAP bytes (0: no cap), passes its stdout and stderr through as bytes, prints the peak RSS of
# what it ran as "MAXRSS_KB <n>" on stderr, and exits with CMD's code (fuzz_bench, hostile10_bench).
LAUNCH = ("import resource, subprocess, sys\n"
          "cap = int(sys.argv[1])\n"
          "p = subprocess.run(sys.argv[2:], preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)) if cap else None,"
          " capture_output=True)\n"
          "sys.stdout.buffer.write(p.stdout); sys.stderr.buffer.write(p.stderr)\n"
          "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
          "sys.exit(p.returncode)\n")
