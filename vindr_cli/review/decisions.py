"""The custodian's decisions: an append-only journal, one JSON line per decision, fsync'd.

``DIR/.vindr/review.jsonl`` is the record; ``DIR/.vindr/review.parquet`` (schema
``schemas/tables/review.json``) is rebuilt from it atomically after every write. Writers
take a lock (a thread lock and ``flock`` on ``DIR/.vindr/review.lock``), so two tabs, two
threads or two processes never interleave or lose a line. An undo is a row of its own
(``decision="undo"``, ``undoes=<seq>``) that voids an earlier decision; nothing is rewritten.
A torn last line (a crash while writing) is ignored when read and closed before the next write.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from vindr_cli.errors import RequestError
from vindr_cli.runner import paths
from vindr_cli.tables import write_table

STATE = ".vindr"
JOURNAL = "review.jsonl"
PARQUET = "review.parquet"
LOCK = "review.lock"
QUEUES = ("redacted", "residual-text", "qc", "duplicates", "spot-check")
FLAGGED = ("redacted", "residual-text", "qc", "duplicates")
DECISIONS = ("accept", "exclude", "more-redaction")
UNDO = "undo"

_thread_lock = threading.Lock()


class DecisionError(RequestError):
    """A decision that cannot be recorded (unknown queue or decision, a bad box): one line."""


def journal_path(review_dir: Path) -> Path:
    return Path(review_dir) / STATE / JOURNAL


def parquet_path(review_dir: Path) -> Path:
    return Path(review_dir) / STATE / PARQUET


REVIEW_LINK = ("DIR/.vindr or a file of vindr review in it (review, review/cache, review.jsonl, review.parquet, "
               "review.lock) is a symbolic link: writes would land outside DIR; remove it")


def check_state(review_dir: Path) -> None:
    """Refuse (exit 2, one line) a DIR whose state folder, or a review file or folder in it,
    is a link: the journal, its table and the rendering cache are written only inside DIR."""
    try:
        paths.check_state_dir(Path(review_dir), STATE)
    except RequestError:
        raise DecisionError(REVIEW_LINK) from None
    state = Path(review_dir) / STATE
    for name in ("review", "review/cache", JOURNAL, PARQUET, LOCK):
        if (state / name).is_symlink():
            raise DecisionError(REVIEW_LINK)


@contextmanager
def _locked(review_dir: Path) -> Iterator[None]:
    check_state(review_dir)
    state = Path(review_dir) / STATE
    state.mkdir(parents=True, exist_ok=True)
    with _thread_lock:
        fd = os.open(state / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def read_rows(review_dir: Path) -> list[dict]:
    """Every row of the journal in order. A line that does not parse is a write that never
    finished (a crash: its decision was never acknowledged) and is skipped; the next write
    starts on a fresh line."""
    path = journal_path(review_dir)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("seq"), int) and row.get("decision") in (*DECISIONS, UNDO):
            rows.append(row)
    return rows


def _check_box(box, rows: int | None, cols: int | None, frames: int | None) -> list[int]:
    try:
        vals = [int(v) for v in box]
    except (TypeError, ValueError):
        raise DecisionError("box must be [frame, x0, y0, x1, y1] in whole pixels") from None
    if len(vals) != 5 or any(float(v) != int(v) for v in box):
        raise DecisionError("box must be [frame, x0, y0, x1, y1] in whole pixels")
    f, x0, y0, x1, y1 = vals
    if not (0 <= x0 < x1 and 0 <= y0 < y1 and f >= 0):
        raise DecisionError("box must have x0 < x1, y0 < y1, all >= 0")
    if (cols and x1 > cols) or (rows and y1 > rows) or (frames and f >= frames):
        raise DecisionError("box lies outside the image")
    return vals


def record(review_dir: Path, image_id: str, queue: str, decision: str, *, box=None, reviewer: str | None = None,
           shape: tuple[int, int, int] | None = None) -> dict:
    """Append one decision (accept | exclude | more-redaction, the last with ``box``) and
    rebuild review.parquet. ``shape`` = (rows, cols, frames) bounds the box. Returns the row."""
    if queue not in QUEUES:
        raise DecisionError(f"unknown queue (allowed: {', '.join(QUEUES)})")
    if decision not in DECISIONS:
        raise DecisionError(f"unknown decision (allowed: {', '.join(DECISIONS)})")
    if decision == "more-redaction":
        if box is None:
            raise DecisionError("more-redaction needs a box drawn on the image")
        box = _check_box(box, *(shape or (None, None, None)))
    elif box is not None:
        raise DecisionError("only more-redaction takes a box")
    return _append(review_dir, {"image_id": str(image_id), "queue": queue, "decision": decision,
                                "box": json.dumps(box) if box is not None else None, "reviewer": reviewer,
                                "undoes": None})


def undo(review_dir: Path, *, image_id: str | None = None, reviewer: str | None = None,
         applied: dict[str, set] | None = None) -> dict | None:
    """Void the latest decision still in force (of ``image_id`` when given) with an undo row;
    None when there is nothing to undo. A box already applied by ``vindr anonymize``
    (``applied``) is no longer in force: it cannot be undone (the re-written output keeps it)."""
    with _locked(review_dir):
        rows = read_rows(review_dir)
        target = None
        for r in reversed(_in_force(rows, applied)):
            if image_id is None or r["image_id"] == image_id:
                target = r
                break
        if target is None:
            return None
        return _append_locked(review_dir, rows, {"image_id": target["image_id"], "queue": target["queue"],
                                                 "decision": UNDO, "box": None, "reviewer": reviewer,
                                                 "undoes": target["seq"]})


def _append(review_dir: Path, row: dict) -> dict:
    with _locked(review_dir):
        return _append_locked(review_dir, read_rows(review_dir), row)


def _append_locked(review_dir: Path, rows: list[dict], row: dict) -> dict:
    row = {"seq": max(r["seq"] for r in rows) + 1 if rows else 0, **row,
           "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    row = {k: row.get(k) for k in ("seq", "image_id", "queue", "decision", "box", "time", "reviewer", "undoes")}
    path = journal_path(review_dir)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        prefix = b""
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    prefix = b"\n"          # close a torn line so this one stands alone
        os.write(fd, prefix + json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    rows.append(row)
    write_table(rows, "review", parquet_path(review_dir))
    return row


def _in_force(rows: list[dict], applied: dict[str, set] | None = None) -> list[dict]:
    """Decisions not voided by an undo, in order (undo rows themselves are never in force).

    ``applied`` ({image_id: {(seq, time)}}, the manifest's ``review_boxes``: boxes ``vindr
    anonymize`` has masked) also voids, for such an image, the applied more-redaction rows and
    every other decision of the redacted queue made up to the last of them, an exclusion
    excepted: they were about the pixels before the re-write, so the image is undecided in
    the redacted queue again until a person confirms the new output."""
    voided = {r["undoes"] for r in rows if r["decision"] == UNDO}
    cut: dict[str, int] = {}
    done: set[int] = set()
    for r in rows:
        marks = (applied or {}).get(r["image_id"])
        if marks and r["decision"] == "more-redaction" and (r["seq"], r.get("time")) in marks:
            done.add(r["seq"])
            cut[r["image_id"]] = max(cut.get(r["image_id"], -1), r["seq"])
    stale = {r["seq"] for r in rows if r["image_id"] in cut and r["seq"] <= cut[r["image_id"]]
             and r["queue"] == "redacted" and r["decision"] != "exclude"}
    return [r for r in rows if r["decision"] != UNDO and r["seq"] not in voided and r["seq"] not in done
            and r["seq"] not in stale]


def current_by_queue(review_dir: Path, applied: dict[str, set] | None = None) -> dict[str, dict[str, dict]]:
    """{image_id: {queue: the latest decision row in force made in that queue}} (``applied``:
    see :func:`_in_force`)."""
    out: dict[str, dict[str, dict]] = {}
    for r in _in_force(read_rows(review_dir), applied):
        out.setdefault(r["image_id"], {})[r["queue"]] = r
    return out


def verdict(per_queue: dict[str, dict]) -> str:
    """One image's decision across its queues: exclude wins, then more-redaction, then accept
    (accepting a QC flag never clears a box drawn in the redacted queue)."""
    found = {r["decision"] for r in per_queue.values()}
    return next(d for d in ("exclude", "more-redaction", "accept") if d in found)


def current(review_dir: Path, applied: dict[str, set] | None = None) -> dict[str, str]:
    """{image_id: accept | exclude | more-redaction} for every image with a decision in force
    (across queues: see :func:`verdict`)."""
    return {k: verdict(v) for k, v in current_by_queue(review_dir, applied).items()}


def is_decided(image_id: str, queue: str, by_queue: dict[str, dict[str, dict]]) -> bool:
    """Decided in this queue, or excluded in any (an excluded image needs no further look)."""
    mine = by_queue.get(image_id, {})
    return queue in mine or any(r["decision"] == "exclude" for r in mine.values())


def undecided(review_dir: Path, queues: dict[str, list[str]], applied: dict[str, set] | None = None) -> dict[str, list[str]]:
    """Per queue, the image ids still to decide there (in the queue's order): an image in two
    queues is decided in each separately, unless it was excluded."""
    by_queue = current_by_queue(review_dir, applied)
    return {q: [i for i in ids if not is_decided(i, q, by_queue)] for q, ids in queues.items()}


def exists(review_dir: Path) -> bool:
    return journal_path(review_dir).is_file()
