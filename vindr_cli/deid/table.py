"""PS3.15 Table E.1-1 as loaded from ``schemas/deid/ps3.15-table-e1-1.json``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from vindr_cli.resources import schema_path


@dataclass(frozen=True)
class TableRow:
    tag: str            # 8 hex digits, or a pattern with x's, or "private"
    name: str
    keyword: str | None
    basic: str          # Basic Profile action, possibly compound ("X/Z/D")
    options: dict[str, str]


@cache
def load_table(filename: str = "ps3.15-table-e1-1.json") -> tuple[dict, tuple[TableRow, ...]]:
    """Return (provenance, rows)."""
    data = json.loads(schema_path("deid", filename).read_text(encoding="utf-8"))
    rows = tuple(
        TableRow(r["tag"], r["name"], r["keyword"], r["basic"], dict(r["options"])) for r in data["rows"]
    )
    return data["provenance"], rows
