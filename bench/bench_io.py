"""Small helpers the bench scripts share (no heavy import: a reader's RSS after its imports is
a figure): the process's resident memory now, a results file written whole, and the corpus of
public DICOM files the red-team diffs copy."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent


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


def write_cases(path: Path, results: list, load0: float) -> Path:
    """The hostile benches' record at ``path`` (:func:`write_record`): how many cases ran, the
    1-minute load at the start (``load0``) and now, and each case's result."""
    return write_record(Path(path), {"cases": len(results), "load_start_end": [load0, os.getloadavg()[0]],
                                     "results": results})


def corpus_roots(*, pydicom_data: bool = True) -> list[Path]:
    """Where the public DICOM test files are: pydicom's own, then (when installed; nothing is
    downloaded) pydicom-data's (``pydicom_data``) and deid-data's."""
    import pydicom.data

    roots = [Path(pydicom.data.__file__).parent / "test_files"]
    for mod, sub, wanted in (("data_store", "data", pydicom_data), ("deid_data", "", True)):
        if not wanted:
            continue
        try:
            m = __import__(mod)
        except ImportError:
            continue
        roots.append(Path(m.__file__).parent / sub)
    return roots


def copy_dicom_corpus(dest: Path, roots: list[Path], folder: Callable[[int, Path], str] = lambda k, root: root.name,
                      max_bytes: int = 20_000_000) -> int:
    """Copy every file under ``roots`` smaller than ``max_bytes`` with the DICM marker at byte 128
    to ``dest/folder(k, root)/<its path under root>``, then sample_dicoms/export to
    ``dest/sample``; returns how many were copied from ``roots``."""
    n = 0
    for k, root in enumerate(roots):
        for p in root.rglob("*"):
            if p.is_file() and p.stat().st_size < max_bytes:
                with open(p, "rb") as f:
                    f.seek(128)
                    if f.read(4) != b"DICM":
                        continue
                d = dest / folder(k, root) / p.relative_to(root).parent
                d.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, d / p.name)
                n += 1
    shutil.copytree(REPO / "sample_dicoms" / "export", dest / "sample")
    return n


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
