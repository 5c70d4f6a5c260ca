"""Boxes a person drew in ``vindr review`` ("needs more redaction"), read for ``vindr anonymize``.

The review table (``OUTPUT/.vindr/review.parquet``, schema ``schemas/tables/review.json``; or
``--review PATH``, one made on a selection: its image ids are anonymize image ids) is an INPUT
here: every row is checked (whole numbers, a known image, the box inside the image, the frame
in range, an undo that names an earlier decision), and a bad row refuses the run with one line
naming its ``seq``, before anything is written. Nothing in the table is used as a path.

A box is *live* while no undo row voids it. What an image gets (:func:`wanted`): the boxes
its manifest row already records (``review_boxes``: once applied a box stays applied, so an
undo, a lost review file or a re-run without ``--review`` never brings text back) plus every
live box of the review tables read in this run. An entry is ``{"seq", "time", "reviewer",
"box"}``: which decision of which review (``seq`` + ``time`` name it), never any text of the
image; ``reviewer`` is always null (kept for the format): what a reviewer types is free
text, and a patient's name or ID typed there would pass any "plain name" test, so the
manifest names the decision by seq + time only (its reviewer stays in the review table).

This module reads the table as a plain file (no import of vindr_cli.review: anonymize runs
before, and below, the review stage).
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from vindr_cli.errors import RequestError

STATE = ".vindr"
PARQUET = "review.parquet"
QUEUES = ("redacted", "residual-text", "qc", "duplicates", "spot-check")
DECISIONS = ("accept", "exclude", "more-redaction", "undo")
IMAGE_ID = re.compile(r"[0-9a-f]{32}")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
PLAIN_NAME = re.compile(r"[A-Za-z0-9 ._@-]{1,64}")
MAX_ROWS = 1_000_000


class ReviewBoxError(RequestError):
    """A review table that cannot be trusted (exit 2, one line naming the row's seq)."""


def own_table(output: Path) -> Path:
    return Path(output) / STATE / PARQUET


def locate(output: Path, review: Path | None) -> list[Path]:
    """The review tables to read: OUTPUT's own when it exists, and ``--review`` (a
    review.parquet, or a folder vindr review ran on: its ``.vindr/review.parquet``)."""
    out = []
    own = own_table(output)
    try:
        st = own.lstat()
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise ReviewBoxError("OUTPUT/.vindr/review.parquet is a link or not a regular file: remove it")
        out.append(own)
    if review is not None:
        review = Path(review)
        path = review / STATE / PARQUET if review.is_dir() else review
        try:
            st = path.lstat()
        except OSError:
            raise ReviewBoxError("--review: no vindr review decisions there (a review.parquet, or a folder "
                                 "holding .vindr/review.parquet)") from None
        if not stat.S_ISREG(st.st_mode):
            raise ReviewBoxError("--review names a link or not a regular file: give the review.parquet itself")
        if not out or path.resolve() != out[0].resolve():
            out.append(path)
    return out


def _whole(v) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    return v


def read_table(path: Path) -> list[dict]:
    """The rows of one review table, each checked on its own (shape and types): a bad row is
    a one-line :class:`ReviewBoxError` naming its seq (or its position when seq is bad)."""
    import pyarrow.parquet as pq

    from vindr_cli.tables import arrow_file

    try:
        # never wait on a FIFO swapped in after locate()'s lstat, never follow a link there:
        # open without blocking, then only a regular file is read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        raise ReviewBoxError("the review table cannot be opened (a link, or gone)") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ReviewBoxError("the review table is not a regular file")
        with os.fdopen(fd, "rb") as opened:  # one open file: a table renamed in meanwhile is read whole
            fd = None
            with arrow_file(opened) as f:    # Arrow-native (tables.arrow_file)
                rows_in = pq.ParquetFile(f).metadata.num_rows
                if rows_in > MAX_ROWS:
                    raise ReviewBoxError(f"the review table holds more than {MAX_ROWS} rows")
                f.seek(0)
                table = pq.read_table(f)
    except ReviewBoxError:
        raise
    except Exception:
        raise ReviewBoxError("the review table is not a Parquet file written by vindr review") from None
    finally:
        if fd is not None:
            os.close(fd)
    need = {"seq", "image_id", "queue", "decision", "box", "time", "reviewer", "undoes"}
    if not need <= set(table.column_names):
        raise ReviewBoxError("the review table lacks the columns of vindr review's review.parquet")
    if table.num_rows > MAX_ROWS:
        raise ReviewBoxError(f"the review table holds more than {MAX_ROWS} rows")
    rows = table.select(sorted(need)).to_pylist()
    seen: dict[int, dict] = {}
    for n, r in enumerate(rows):
        seq = _whole(r["seq"])
        if seq is None or seq < 0:
            raise ReviewBoxError(f"review table row {n + 1}: seq is not a whole number >= 0")

        def bad(what: str):
            return ReviewBoxError(f"review table row seq {seq}: {what}")

        if seq in seen:
            raise bad("seq appears twice")
        if not isinstance(r["image_id"], str) or not IMAGE_ID.fullmatch(r["image_id"]):
            raise bad("image_id is not 32 hex digits")
        if r["queue"] not in QUEUES:
            raise bad("unknown queue")
        if r["decision"] not in DECISIONS:
            raise bad("unknown decision")
        if not isinstance(r["time"], str) or not TIME.fullmatch(r["time"]):
            raise bad("time is not a UTC ISO 8601 time")
        if r["reviewer"] is not None and not isinstance(r["reviewer"], str):
            raise bad("reviewer is not text")
        if r["decision"] == "undo":
            target = _whole(r["undoes"])
            if target is None or target not in seen or seen[target]["decision"] == "undo" \
                    or seen[target]["image_id"] != r["image_id"]:
                raise bad("undo does not name an earlier decision of the same image")
        elif r["undoes"] is not None:
            raise bad("only an undo names another decision")
        if r["decision"] == "more-redaction":
            r["box"] = _box(r["box"], bad)
        elif r["box"] is not None:
            raise bad("only more-redaction has a box")
        seen[seq] = r
    return rows


def _box(text, bad) -> list[int]:
    try:
        box = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        box = None
    if not isinstance(box, list) or len(box) != 5 or any(_whole(v) is None for v in box):
        raise bad("box is not [frame, x0, y0, x1, y1] in whole pixels")
    f, x0, y0, x1, y1 = box
    if not (f >= 0 and 0 <= x0 < x1 and 0 <= y0 < y1):
        raise bad("box must have frame >= 0 and 0 <= x0 < x1, 0 <= y0 < y1")
    return box


def live(rows: list[dict]) -> dict[str, list[dict]]:
    """{image_id: [entry]}: the more-redaction boxes no undo voids, in the order drawn."""
    voided = {r["undoes"] for r in rows if r["decision"] == "undo"}
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r["decision"] == "more-redaction" and r["seq"] not in voided:
            # no reviewer: it is free text (a patient's name or ID is a "plain short name");
            # seq + time name the decision, whose reviewer the review table itself keeps
            out.setdefault(r["image_id"], []).append(
                {"seq": r["seq"], "time": r["time"], "box": list(r["box"]), "reviewer": None})
    return out


def check_images(rows: list[dict], images: dict[str, tuple]) -> None:
    """Every row names an image of OUTPUT (``images``: image_id -> (rows, cols, frames) of its
    ``ok`` manifest row), and every box lies inside its image and frame range."""
    for r in rows:
        shape = images.get(r["image_id"])
        if shape is None:
            raise ReviewBoxError(f"review table row seq {r['seq']}: image_id is not an image of OUTPUT's manifest "
                                 "(a review of another tree?)")
        if r["decision"] == "more-redaction":
            rows_, cols, frames = shape
            f, x0, y0, x1, y1 = r["box"]
            if not rows_ or not cols or x1 > cols or y1 > rows_ or f >= (frames or 1):
                raise ReviewBoxError(f"review table row seq {r['seq']}: box lies outside the image "
                                     "(or its frame is beyond the last)")


def recorded(row: dict) -> list[dict]:
    """The entries a manifest row records (``review_boxes``), each in the exact form
    :func:`live` makes (a hand-edited entry of another form is dropped: nothing but those
    numbers and names is carried into an output's row); [] when none or unreadable."""
    try:
        got = json.loads(row.get("review_boxes") or "[]")
    except (TypeError, ValueError):
        return []
    # an entry written before the reviewer was dropped carries no name on either
    return [{**e, "reviewer": None} for e in got if _entry_ok(e)] if isinstance(got, list) else []


def _entry_ok(e) -> bool:
    if not isinstance(e, dict) or set(e) != {"seq", "time", "box", "reviewer"}:
        return False
    box, who = e["box"], e["reviewer"]
    return (_whole(e["seq"]) is not None and isinstance(e["time"], str) and bool(TIME.fullmatch(e["time"]))
            and isinstance(box, list) and len(box) == 5 and all(_whole(v) is not None and v >= 0 for v in box)
            and (who is None or (isinstance(who, str) and (who == "(other)" or bool(PLAIN_NAME.fullmatch(who))))))


def wanted(already: list[dict], boxes: list[dict]) -> list[dict]:
    """The boxes an image must carry: those applied before (kept) and the live ones, once
    each (named by seq + time), in the order drawn."""
    out = {(e["seq"], e["time"]): e for e in already}
    for e in boxes:
        out.setdefault((e["seq"], e["time"]), e)
    return sorted(out.values(), key=lambda e: (e["time"], e["seq"]))
