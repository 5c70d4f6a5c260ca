"""The state a resumable stage keeps: what the run was asked to do (``OUTPUT/.vindr/<stage>.json``)
and, per table, a journal of finished inputs. A re-run with other settings is refused; a
re-run with the same settings skips what the journal (or the final table) already holds."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vindr_cli.atomic import atomic_write
from vindr_cli.errors import RequestError
from vindr_cli.runner.discover import STATE_DIR
from vindr_cli.runner.journal import Journal, read_journal
from vindr_cli.tables import read_rows, write_table

__all__ = ["STATE_DIR", "SettingsChanged", "Settings", "StageState"]


class SettingsChanged(RequestError):
    """OUTPUT was made with other settings (one line, exit 2)."""


def _generic(name: str, old: Any, new: Any) -> str:
    what = "INPUT" if name == "input_fingerprint" else name.replace("_", " ")
    return f"OUTPUT was made with a different {what}; use a new OUTPUT folder to change it"


class Settings:
    """``OUTPUT/.vindr/<stage>.json``: checked first (nothing written), written once the
    request is known to run."""

    def __init__(self, output: Path, stage: str):
        self.dir = output / STATE_DIR
        self.file = self.dir / f"{stage}.json"

    def previous(self) -> dict[str, Any] | None:
        if not self.file.exists():
            return None
        return json.loads(self.file.read_text(encoding="utf-8"))

    def check(self, settings: dict[str, Any], compared: tuple[str, ...],
              explain: Callable[[str, Any, Any], str | None] | None = None) -> None:
        old = self.previous()
        if old is None:
            return
        for k in compared:
            if old.get(k) != settings.get(k):
                raise SettingsChanged((explain and explain(k, old.get(k), settings.get(k))) or _generic(k, old.get(k), settings.get(k)))

    def write(self, settings: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.file) as f:
            f.write(json.dumps(settings, indent=1, sort_keys=True).encode())


class StageState:
    """One table a stage writes: its journal (``journal``, default
    OUTPUT/.vindr/<stage>.journal.jsonl) and final Parquet file (``table_path``, schema
    ``table``); ``mode`` sets their permissions (e.g. 0600 for a PHI table kept outside
    OUTPUT)."""

    def __init__(self, output: Path, stage: str, table: str, table_path: Path, *, key: str = "input_key",
                 journal: Path | None = None, mode: int = 0o644):
        self.output = output
        self.dir = output / STATE_DIR
        self.journal_file = journal or self.dir / f"{stage}.journal.jsonl"
        self.table = table
        self.table_path = table_path
        self.key = key
        self.mode = mode
        self._journal: Journal | None = None

    def previous(self) -> dict[str, list[dict]]:
        """Rows already written, grouped by input (final table first, then the journal;
        a later batch of rows for one input replaces an earlier one)."""
        out: dict[str, list[dict]] = {}
        try:
            rows = read_rows(self.table_path) if self.table_path.exists() else []
        except Exception:
            raise SettingsChanged(f"{self.table_path.name} exists but is not a vindr {self.table} table; "
                                  "move it away or choose another path") from None
        for r in rows:
            out.setdefault(r[self.key], []).append(r)
        for entry in read_journal(self.journal_file):
            out[entry["key"]] = entry["rows"]
        return out

    def append(self, key: str, rows: list[dict]) -> None:
        """Record every row one input produced (one journal line, so never half an input)."""
        if self._journal is None:
            self._journal = Journal(self.journal_file, self.mode)
        self._journal.append({"key": key, "rows": rows})

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def finish(self, rows: list[dict]) -> None:
        """Write the final table (atomically), then drop the journal."""
        self.close()
        write_table(rows, self.table, self.table_path, mode=self.mode)
        self.journal_file.unlink(missing_ok=True)
