"""An append-only JSON-lines journal of finished items, so a killed batch resumes.

Each line is one JSON object: the entry's fields plus ``sha256``, the SHA-256 of the
canonical JSON of the entry without it (sorted keys, ASCII, no spaces), written whole and
flushed, so a changed or garbled line is told from a good one. A torn LAST line (the run was killed
while writing it: no newline at its end) is ignored on reading and cut off before the next
append, so it never ends up in the middle of the file. Any other bad line — not UTF-8, not
JSON, the wrong shape, a checksum that does not match — is damage: :func:`read_journal`
raises :class:`JournalDamaged` (the line number and what is wrong, never the content)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

VERSION = 2


class JournalDamaged(Exception):
    """A journal line that is not a whole, intact record. ``line`` is 1-based; ``what`` is a
    fixed phrase; ``good`` holds every intact entry (for ``--rebuild-state``)."""

    def __init__(self, line: int, what: str, good: list[dict[str, Any]]):
        super().__init__(f"line {line}: {what}")
        self.line = line
        self.what = what
        self.good = good


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode("ascii")


def line_for(entry: dict[str, Any]) -> str:
    """One journal line (with its newline) for ``entry`` (a JSON object without ``sha256``)."""
    if "sha256" in entry:
        raise ValueError("a journal entry may not have a 'sha256' field")
    digest = hashlib.sha256(_canonical(entry)).hexdigest()
    return json.dumps({**entry, "sha256": digest}, ensure_ascii=True, sort_keys=True) + "\n"


def entry_line(key: str, rows: list) -> str:
    """The line of a stage's entry: one input's ``key`` and ``rows``."""
    return line_for({"key": key, "rows": rows})


def stage_entry(entry: dict[str, Any]) -> bool:
    """The shape of a stage's entry (``StageState``): a key and a list of row objects."""
    return (set(entry) == {"key", "rows"} and isinstance(entry["key"], str) and isinstance(entry["rows"], list)
            and all(isinstance(r, dict) for r in entry["rows"]))


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line without its newline (a write cut short by a kill)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "r+b") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        keep, pos = 0, size
        while pos > 0:                      # find the last newline, reading backwards
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = pos + i + 1
                break
        f.truncate(keep)


class Journal:
    def __init__(self, path: Path, mode: int = 0o644):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
        os.fchmod(fd, mode)
        self._pos = os.fstat(fd).st_size      # where the next line starts (the one writer: the lock)
        self._f = os.fdopen(fd, "a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> tuple[int, int]:
        """Write one line, flushed; returns where it lies: (byte offset, length with newline)."""
        line = line_for(row)                  # ASCII: characters are bytes
        self._f.write(line)
        self._f.flush()
        at = self._pos
        self._pos += len(line)
        return at, len(line)

    def close(self) -> None:
        self._f.close()


def json_object(raw: bytes, what: str) -> tuple[dict[str, Any] | None, str]:
    """``raw`` as a JSON object, or (None, what is wrong) in fixed words (never the content);
    shared by the journal lines and the settings files (``runner.state``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):       # RecursionError: nested too deep (no ValueError; review 13)
        return None, "not valid JSON"
    if not isinstance(obj, dict):
        return None, f"not {what} (wrong shape)"
    return obj, ""


def _parse(raw: bytes, shape) -> tuple[dict[str, Any] | None, str]:
    obj, what = json_object(raw, "a journal entry")
    if obj is None:
        return None, what
    if not isinstance(obj.get("sha256"), str):
        return None, "not a journal entry (wrong shape)"
    digest = obj.pop("sha256")
    if shape is not None and not shape(obj):
        return None, "not a journal entry (wrong shape)"
    if hashlib.sha256(_canonical(obj)).hexdigest() != digest:
        return None, "checksum mismatch (the line was changed)"
    return obj, ""


def read_journal(path: Path, shape=None) -> list[dict[str, Any]]:
    """Every entry, in order. Raises :class:`JournalDamaged` at the first damaged line (a
    torn last line is not damage). ``shape``: a predicate an entry must satisfy."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()          # b"" when the file ends with a newline
    good: list[dict[str, Any]] = []
    damage: tuple[int, str] | None = None
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        entry, what = _parse(raw.strip(), shape)
        if entry is None:
            damage = damage or (n, what)
            continue
        good.append(entry)
    if torn.strip():
        entry, _ = _parse(torn.strip(), shape)
        if entry is not None:                    # whole but for its newline
            good.append(entry)
    if damage is not None:
        raise JournalDamaged(damage[0], damage[1], good)
    return good


def iter_journal(path: Path, shape=None) -> Iterator[tuple[int, int, dict[str, Any], bool]]:
    """:func:`read_journal` one line at a time, for journals too large to hold: yields
    ``(offset, length, entry, whole)`` for every intact entry in order (``whole`` False for a
    torn last line that still parses: a later append cuts it off, so its caller keeps the
    entry itself), then raises :class:`JournalDamaged` (with ``good`` empty) if a line was
    damaged, naming the first, as :func:`read_journal` does."""
    if not path.exists():
        return
    damage: tuple[int, str] | None = None
    pos = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            at, pos = pos, pos + len(raw)
            whole = raw.endswith(b"\n")
            if not raw.strip():
                continue
            entry, what = _parse(raw.strip(), shape)
            if entry is None:
                if whole:
                    damage = damage or (n, what)
                continue
            yield at, len(raw), entry, whole
    if damage is not None:
        raise JournalDamaged(damage[0], damage[1], [])


def rewrite_journal(path: Path, entries: list[dict[str, Any]], mode: int = 0o644) -> None:
    """Replace the journal with ``entries`` only (atomically)."""
    from vindr_cli.atomic import atomic_write

    with atomic_write(path, mode) as f:
        f.write("".join(line_for(e) for e in entries).encode("ascii"))
