"""``vindr info`` as a library call: probe every input's header in parallel and aggregate
the facts into a JSON-serialisable summary that holds no identifying value.

Counts of distinct patients/studies/series/instances come from sets of sha256 hashes that
live only in this function. DICOMDIR files are counted as DICOM files but left out of the
per-image breakdowns. ``bytes`` sums file sizes (uncompressed sizes for archive members).
"""
from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from rich.console import Console

from vindr_cli.info.probe import probe, setup
from vindr_cli.runner.executor import Executor
from vindr_cli.runner.sources import Source
from vindr_cli.runner.stage import Run, Stage, Table, run_stage

BREAKDOWNS = ("modality", "photometric", "bits_stored", "body_part", "charset")
UID_BREAKDOWNS = ("sop_class", "transfer_syntax")
FLAGS = {"burned_in": "burned_in_annotation", "private": "private_elements", "overlay": "overlays", "curve": "curves"}
IDS = {"patient": "patients", "study": "studies", "series": "series", "instance": "instances"}


def _ranked(counter: Counter) -> dict:
    """Most frequent first, ties by label: the same order whatever the worker count."""
    return {k: n for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))}


def _stats(values: list[int]) -> dict | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


class Tally:
    """Accumulates probe results; ``summary()`` turns them into plain data."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.reasons: dict[str, Counter] = {"not-dicom": Counter(), "failed": Counter()}
        self.ids: dict[str, set[str]] = {k: set() for k in IDS}
        self.by: dict[str, Counter] = {k: Counter() for k in BREAKDOWNS + UID_BREAKDOWNS}
        self.uid_names: dict[str, set[tuple[str, str]]] = {k: set() for k in UID_BREAKDOWNS}
        self.rows: list[int] = []
        self.columns: list[int] = []

    def add(self, source: Source, rec: dict) -> None:
        self.counts["files"] += 1
        self.counts["bytes"] += source.size
        self.counts["archive_members"] += source.member is not None
        status = rec["status"]
        if status != "dicom":
            key = status if status in self.reasons else "failed"
            self.counts[key.replace("-", "_")] += 1
            self.reasons[key][rec.get("reason") or "no reason given"] += 1
            return
        self.counts["dicom"] += 1
        if rec["dicomdir"]:
            self.counts["dicomdir_files"] += 1
            return
        for key, ids in self.ids.items():
            if rec[key]:
                ids.add(rec[key])
        for key in BREAKDOWNS:
            self.by[key][rec[key]] += 1
        for key in UID_BREAKDOWNS:
            uid, name = rec[key]
            self.by[key][name] += 1
            self.uid_names[key].add((name, uid))
        for key, out in FLAGS.items():
            self.counts[out] += bool(rec[key])
        if rec["rows"] and rec["columns"]:
            self.rows.append(rec["rows"])
            self.columns.append(rec["columns"])

    def _uid_rows(self, key: str) -> list[dict]:
        uids = dict(self.uid_names[key])
        return [{"name": name, "uid": uids[name], "files": n} for name, n in _ranked(self.by[key]).items()]

    def summary(self) -> dict:
        c = self.counts
        images = c["dicom"] - c["dicomdir_files"]
        out: dict = {k: c[k] for k in ("files", "bytes", "dicom", "not_dicom", "failed", "dicomdir_files", "archive_members")}
        out["reasons"] = {k: _ranked(v) for k, v in self.reasons.items()}
        out.update({name: len(self.ids[key]) for key, name in IDS.items()})
        out["duplicate_instances"] = images - len(self.ids["instance"])
        out.update({out_key: c[out_key] for out_key in FLAGS.values()})
        out["image_size"] = {"files": len(self.rows), "rows": _stats(self.rows), "columns": _stats(self.columns)}
        out.update({key: self._uid_rows(key) for key in UID_BREAKDOWNS})
        out.update({key: _ranked(self.by[key]) for key in BREAKDOWNS})
        return out


class InfoStage(Stage):
    """Reads headers, writes nothing: no settings, journal or table; results feed a Tally."""

    name = "reading headers"
    task = staticmethod(probe)
    setup = staticmethod(setup)
    primary = "probe"

    def __init__(self) -> None:
        self.tally = Tally()

    def tables(self) -> list[Table]:
        return [Table("probe")]          # in memory only: statuses for the runner's tallies

    def place(self, run: Run, src: Source, rec: dict):
        self.tally.add(src, rec)
        return [(run.keys[src.rel], {"probe": [{"status": rec["status"], "reason": rec.get("reason")}]})]


def scan(root: Path, workers: int = 1, console: Console | None = None,
         executor: Executor | None = None) -> tuple[dict, list[str]]:
    """(summary, warnings): the summary of every input under root (headers only, never
    pixel data), and PHI-free warnings (no input, no DICOM input)."""
    stage = InfoStage()
    result = run_stage(stage, Path(root), executor=executor, workers=workers, console=console)
    return stage.tally.summary(), result.warnings


def scan_export(root: Path, workers: int = 1, console: Console | None = None) -> dict:
    """Summary of every input under root (headers only, never pixel data)."""
    return scan(root, workers, console)[0]
