"""The state a resumable stage keeps: what the run was asked to do (``OUTPUT/.vindr/<stage>.json``)
and, per table, a journal of finished inputs. A re-run with other settings is refused; a
re-run with the same settings skips what the journal (or the final table) already holds.

Integrity: the settings file is ``{"version": 2, "sha256": ..., "settings": {...}}`` where
``sha256`` is the SHA-256 of the canonical JSON of ``settings``, written twice
(``<stage>.json`` and ``<stage>_copy.json``); each journal line carries its own checksum
(:mod:`vindr_cli.runner.journal`). A damaged state file (not UTF-8, not JSON, the wrong
shape, a checksum mismatch, or a final table that cannot be read) stops the request with
:class:`StateDamaged` (exit 2), naming the file and what is wrong and the command that
recovers: the same command with ``--rebuild-state``, which moves the damaged file to
``OUTPUT/.vindr/damaged/`` and rebuilds: the settings from their intact copy (else the stage
decides: anonymize reads them back from the outputs' own marks, decode refuses to mix),
intact journal entries are kept, and inputs whose record was lost are processed again
(their outputs are rewritten, the same bytes for the same key and settings). A torn last
journal line (a kill while writing) is not damage and is dropped silently. A settings file
of version 1 (a plain settings object, written before checksums) is read as it is."""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from vindr_cli.atomic import atomic_write
from vindr_cli.errors import RequestError
from vindr_cli.runner.discover import STATE_DIR
from vindr_cli.runner.journal import Journal, JournalDamaged, iter_journal, json_object, line_for, stage_entry
from vindr_cli.runner.rowstore import RowStore
from vindr_cli.tables import BATCH_ROWS, arrow_file, write_rows

__all__ = ["STATE_DIR", "SETTINGS_VERSION", "output_intact", "SettingsChanged", "Settings", "StageState", "StateDamaged",
           "settings_digest"]

SETTINGS_VERSION = 2
REBUILD_HINT = ("re-run the same command with --rebuild-state (the damaged file is moved to OUTPUT/.vindr/damaged/; "
                "settings come back from their copy or the outputs, lost records are processed again), "
                "or use a new OUTPUT folder")


class SettingsChanged(RequestError):
    """OUTPUT was made with other settings (one line, exit 2)."""


class StateDamaged(RequestError):
    """A state file of OUTPUT is damaged (one line, exit 2): which file, what is wrong, how to recover."""


def _generic(name: str, old: Any, new: Any) -> str:
    what = "INPUT" if name == "input_fingerprint" else name.replace("_", " ")
    return f"OUTPUT was made with a different {what}; use a new OUTPUT folder to change it"


def settings_digest(settings: dict[str, Any]) -> str:
    blob = json.dumps(settings, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def set_aside(path: Path, output: Path) -> Path:
    """Move a damaged state file to OUTPUT/.vindr/damaged/ (kept for inspection, never read)."""
    dest_dir = output / STATE_DIR / "damaged"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}"
    n = 1
    while dest.exists():
        n += 1
        dest = dest_dir / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{n}"
    path.replace(dest)
    return dest


def _rel(path: Path, output: Path) -> str:
    try:
        return "OUTPUT/" + path.relative_to(output).as_posix()
    except ValueError:
        return path.name


class Settings:
    """``OUTPUT/.vindr/<stage>.json``: checked first (nothing written), written once the
    request is known to run, together with a second copy ``<stage>_copy.json``. A missing
    settings file is read from an intact copy. A damaged one is refused; with ``rebuild`` it
    is set aside and the copy, when intact, takes its place (else :attr:`recovered` says that
    the settings were lost and the stage decides, :meth:`Stage.settings_lost`)."""

    def __init__(self, output: Path, stage: str, *, rebuild: bool = False):
        self.output = output
        self.dir = output / STATE_DIR
        self.file = self.dir / f"{stage}.json"
        self.copy = self.dir / f"{stage}_copy.json"
        self.rebuild = rebuild
        self.recovered = False          # True: the settings were lost (damaged file set aside, no intact copy)

    @staticmethod
    def _read(path: Path) -> tuple[dict[str, Any] | None, str]:
        """(settings, "") or (None, what is wrong)."""
        obj, what = json_object(path.read_bytes(), "a settings record")
        if obj is None:
            return None, what
        if "version" not in obj:                 # version 1: the plain settings object
            return obj, ""
        if (obj.get("version") != SETTINGS_VERSION or set(obj) != {"version", "sha256", "settings"}
                or not isinstance(obj["settings"], dict) or not isinstance(obj["sha256"], str)):
            return None, "not a settings record (wrong shape or unknown version)"
        if settings_digest(obj["settings"]) != obj["sha256"]:
            return None, "checksum mismatch (the file was changed)"
        return obj["settings"], ""

    def _copy(self) -> dict[str, Any] | None:
        if not self.copy.exists():
            return None
        return self._read(self.copy)[0]

    def previous(self) -> dict[str, Any] | None:
        """The recorded settings; None when there are none (or they were lost)."""
        if not self.file.exists():
            return self._copy()
        settings, what = self._read(self.file)
        if settings is not None:
            return settings
        if not self.rebuild:
            raise StateDamaged(f"{_rel(self.file, self.output)} is damaged ({what}); {REBUILD_HINT}")
        set_aside(self.file, self.output)
        copy = self._copy()
        self.recovered = copy is None
        return copy

    def check(self, settings: dict[str, Any], compared: tuple[str, ...],
              explain: Callable[[str, Any, Any], str | None] | None = None) -> None:
        old = self.previous()
        if old is None:
            return
        for k in compared:
            if old.get(k) != settings.get(k):
                raise SettingsChanged((explain and explain(k, old.get(k), settings.get(k))) or _generic(k, old.get(k), settings.get(k)))

    def lost(self) -> bool:
        """No settings survive (neither file nor an intact copy), or they were set aside."""
        return self.recovered or (not self.file.exists() and self._copy() is None)

    def write(self, settings: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        record = {"version": SETTINGS_VERSION, "sha256": settings_digest(settings), "settings": settings}
        blob = json.dumps(record, indent=1, sort_keys=True).encode()
        for path in (self.file, self.copy):
            with atomic_write(path) as f:
                f.write(blob)


PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def output_intact(path: Path, row: dict) -> bool:
    """Cheap checks that catch a truncated or replaced output: size against the row, the
    PNG end chunk, the npy header's array size against the file size."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            return False
        if row.get("output_bytes") is not None and size != row["output_bytes"]:
            return False
        if path.suffix == ".png":
            with open(path, "rb") as f:
                f.seek(max(size - len(PNG_END), 0))
                return f.read() == PNG_END
        if path.suffix == ".npy":
            import numpy as np

            with open(path, "rb") as f:
                fmt = np.lib.format
                version = fmt.read_magic(f)
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(f)
                return size == f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    except (OSError, ValueError):
        return False
    return True


class StageState:
    """One table a stage writes: its journal (``journal``, default
    OUTPUT/.vindr/<stage>.journal.jsonl) and final Parquet file (``table_path``, schema
    ``table``); ``mode`` sets their permissions (e.g. 0600 for a PHI table kept outside
    OUTPUT)."""

    def __init__(self, output: Path, stage: str, table: str, table_path: Path, *, key: str = "input_key",
                 journal: Path | None = None, mode: int = 0o644, rebuild: bool = False):
        self.output = output
        self.dir = output / STATE_DIR
        self.journal_file = journal or self.dir / f"{stage}.journal.jsonl"
        self.table = table
        self.table_path = table_path
        self.key = key
        self.mode = mode
        self.rebuild = rebuild
        self._journal: Journal | None = None
        self.rows: RowStore | None = None      # where each input's rows lie (previous(), append())

    def previous(self) -> RowStore:
        """Rows already written, grouped by input (final table first, then the journal;
        a later batch of rows for one input replaces an earlier one), as a :class:`RowStore`:
        where each input's rows lie, read back when asked for, never all held at once. Every
        table row and journal line is read (and checked) here, a batch at a time."""
        self.release()
        store = RowStore(self.journal_file, self.table_path)
        if self.table_path.exists():
            try:
                self._index_table(store)
            except Exception:
                store.close()
                store = RowStore(self.journal_file, self.table_path)
                if not self.rebuild:
                    raise StateDamaged(f"{self.table_path.name} exists but is not a vindr {self.table} table (cannot be read); "
                                       f"{REBUILD_HINT}") from None
                self._set_aside(self.table_path)
        try:
            self._index_journal(store)
        except JournalDamaged as exc:
            if not self.rebuild:
                store.close()
                raise StateDamaged(f"{_rel(self.journal_file, self.output)} is damaged (line {exc.line}: {exc.what}); "
                                   f"{REBUILD_HINT}") from None
            copy = self._set_aside(self.journal_file)
            _rewrite_intact(copy, self.journal_file, self.mode)   # intact entries only, streaming
            copy.chmod(self.mode)
            self._index_journal(store)
        self.rows = store
        return store

    def _index_table(self, store: RowStore) -> None:
        import pyarrow.parquet as pq

        with open(self.table_path, "rb") as opened:
            f = arrow_file(opened)      # Arrow-native: no Python buffer freed on Arrow's threads
        try:
            pf = pq.ParquetFile(f)
            if pf.metadata.num_rows and self.key not in pf.schema_arrow.names:
                raise ValueError
            i = 0
            for batch in pf.iter_batches(batch_size=BATCH_ROWS):    # every page decoded: a damaged one refuses now
                for key in batch.column(self.key).to_pylist():
                    if not isinstance(key, str):
                        raise ValueError
                    store.add_row(key, i)
                    i += 1
        except BaseException:
            f.close()
            raise
        store.use_table(f, pf)

    def _index_journal(self, store: RowStore) -> None:
        for offset, length, entry, whole in iter_journal(self.journal_file, stage_entry):
            if whole:
                store.at_line(entry["key"], offset, length)
            else:               # a torn last line: the next append cuts it off, so it is held
                store[entry["key"]] = entry["rows"]

    def _set_aside(self, path: Path) -> Path:
        dest = set_aside(path, self.output) if self.output in path.parents else None
        if dest is None:      # a table kept outside OUTPUT (linkage): set aside beside it
            dest = path.with_name(f"{path.name}.damaged.{time.strftime('%Y%m%dT%H%M%S')}")
            path.replace(dest)
        return dest

    def append(self, key: str, rows: list[dict]) -> None:
        """Record every row one input produced (one journal line, so never half an input);
        :attr:`rows` then knows where they lie, and holds none of them."""
        if self._journal is None:
            self._journal = Journal(self.journal_file, self.mode)
        offset, length = self._journal.append({"key": key, "rows": rows})
        if self.rows is None:
            self.rows = RowStore(self.journal_file, self.table_path)
        self.rows.at_line(key, offset, length)

    def close(self) -> None:
        """Stop journaling (the rows stay readable for :meth:`finish`)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def release(self) -> None:
        """Close everything: the journal and the files :attr:`rows` reads from."""
        self.close()
        if self.rows is not None:
            self.rows.close()

    def finish(self, rows: Iterable[dict]) -> int:
        """Write the final table from ``rows`` (an iterable that may read them one by one,
        from :attr:`rows`), a bounded batch at a time, to a temporary name renamed into place
        at the end; then drop the journal. Returns the row count."""
        self.close()
        try:
            n = write_rows(rows, self.table, self.table_path, mode=self.mode)
        finally:
            self.release()
        self.journal_file.unlink(missing_ok=True)
        return n


def _rewrite_intact(src: Path, dest: Path, mode: int) -> None:
    """``dest`` (atomically): the intact entries of journal ``src``, one line each."""
    from vindr_cli.atomic import atomic_write

    entries = iter_journal(src, stage_entry)
    with atomic_write(dest, mode) as f:
        try:
            for _, _, entry, _ in entries:
                f.write(line_for(entry).encode("ascii"))
        except JournalDamaged:
            pass
