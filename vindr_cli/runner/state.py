"""The state a resumable stage keeps in ``OUTPUT/.vindr/``: what the run was asked to do
(``<stage>.json``) and a journal of finished inputs. A re-run with other settings is
refused; a re-run with the same settings skips what the journal (or the final table)
already holds."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vindr_cli.runner.atomic import atomic_write
from vindr_cli.runner.journal import Journal, read_journal
from vindr_cli.tables import read_rows, write_table

from vindr_cli.runner.discover import STATE_DIR  # noqa: E402  (one name for the state folder)


class SettingsChanged(ValueError):
    """OUTPUT was made with other settings (one line)."""


class StageState:
    """``stage``: the settings file and journal go to OUTPUT/.vindr/<stage>.*; ``journal``
    and ``mode`` override where the journal lives and its permissions (e.g. a PHI table
    kept outside OUTPUT, mode 0600)."""

    def __init__(self, output: Path, stage: str, table: str, table_path: Path, *, key: str = "input_key",
                 journal: Path | None = None, mode: int = 0o644):
        self.output = output
        self.dir = output / STATE_DIR
        self.settings_file = self.dir / f"{stage}.json"
        self.journal_file = journal or self.dir / f"{stage}.journal.jsonl"
        self.table = table
        self.table_path = table_path
        self.key = key
        self.mode = mode
        self._journal: Journal | None = None

    def check_settings(self, settings: dict[str, Any], compared: tuple[str, ...]) -> None:
        if self.settings_file.exists():
            old = json.loads(self.settings_file.read_text(encoding="utf-8"))
            for k in compared:
                if old.get(k) != settings.get(k):
                    what = "INPUT" if k == "input_fingerprint" else k.replace("_", " ")
                    raise SettingsChanged(
                        f"OUTPUT was made with a different {what}; use a new OUTPUT folder to change it")
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.settings_file) as f:
            f.write(json.dumps(settings, indent=1, sort_keys=True).encode())

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
