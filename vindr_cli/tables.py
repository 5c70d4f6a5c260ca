"""Tables written by the stages: Arrow schemas from ``schemas/tables`` and atomic Parquet I/O."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vindr_cli.resources import schema_path
from vindr_cli.atomic import atomic_write

_TYPES = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float64": pa.float64(),
          "bool": pa.bool_(), "list<string>": pa.list_(pa.string())}


@cache
def arrow_schema(name: str) -> pa.Schema:
    spec = json.loads(schema_path("tables", f"{name}.json").read_text(encoding="utf-8"))
    return pa.schema([pa.field(f["name"], _TYPES[f["type"]], nullable=f.get("nullable", True)) for f in spec["fields"]])


def write_table(rows: list[dict], name: str, path: Path, mode: int = 0o644) -> None:
    """Write rows as Parquet with the named schema, atomically (temp name, then rename)."""
    schema = arrow_schema(name)
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)
    with atomic_write(path, mode) as f:
        pq.write_table(table, f)


def read_rows(path: Path) -> list[dict]:
    """Rows of a Parquet table. Read through one open file: a table replaced by an atomic rename
    while it is read (a live `vindr review` rebuilding review.parquet) is then read whole, old or
    new; given a path, pyarrow opens the file twice (footer, then data) and can mix the two."""
    with open(path, "rb") as f:
        return pq.read_table(f).to_pylist()
