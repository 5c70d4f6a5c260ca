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
