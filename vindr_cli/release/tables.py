"""Release tables: CSV files described by ``schemas/release/<name>.json``, written in the
schema's column order (atomically) and checked against it by ``vindr validate``."""
from __future__ import annotations

import io
import json
import math
import re
from functools import cache
from pathlib import Path

import pandas as pd

from vindr_cli.resources import schema_path
from vindr_cli.atomic import atomic_write


@cache
def release_schema(name: str) -> dict:
    return json.loads(schema_path("release", f"{name}.json").read_text(encoding="utf-8"))


def columns(name: str) -> list[str]:
    return [f["name"] for f in release_schema(name)["fields"]]


def _fields(name: str, df: pd.DataFrame) -> list[dict]:
    """The schema's fields, plus one per extra column when the schema allows additional ones."""
    spec = release_schema(name)
    fields = list(spec["fields"])
    extra = spec.get("additional")
    if extra:
        fixed = {f["name"] for f in fields}
        fields += [{**extra, "name": c} for c in df.columns if c not in fixed]
    return fields


def write_csv(df: pd.DataFrame, name: str, path: Path) -> None:
    """Write df with exactly the schema's columns, in order; refuse a frame that breaks it."""
    out = df.reindex(columns=[f["name"] for f in _fields(name, df)])
    problems = check_frame(out, name)
    if problems:
        raise ValueError(f"{path.name}: {problems[0]}")
    buf = io.StringIO()
    out.to_csv(buf, index=False)
    with atomic_write(path) as f:
        f.write(buf.getvalue().encode("utf-8"))


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def _bad(value, field: dict) -> str | None:
    t = field["type"]
    if t == "string":
        if "pattern" in field and not re.fullmatch(field["pattern"], str(value)):
            return "does not match the pattern"
        if "enum" in field and value not in field["enum"]:
            return f"not one of {field['enum']}"
        return None
    try:
        num = float(value)
    except (TypeError, ValueError):
        return f"not a number ({t})"
    if math.isnan(num) or math.isinf(num):
        return "not a finite number"
    if t == "int64" and num != int(num):
        return "not an integer"
    if "minimum" in field and num < field["minimum"]:
        return f"below {field['minimum']}"
    if "enum_numbers" in field and num not in field["enum_numbers"]:
        return f"not one of {field['enum_numbers']}"
    return None


def check_frame(df: pd.DataFrame, name: str, *, limit: int = 20) -> list[str]:
    """Schema problems of a table: missing/extra columns, nulls, types, patterns, enums."""
    spec = _fields(name, df)
    want = [f["name"] for f in spec]
    problems = []
    if list(df.columns) != want:
        missing, extra = set(want) - set(df.columns), set(df.columns) - set(want)
        # the schema's names only: a column it does not have is counted (a header a hand edit
        # made may hold anything, a name; vindr validate quotes no such value, review 13)
        problems.append(f"columns differ from the schema (missing {sorted(missing)}, {len(extra)} extra, "
                        "not named here)")
        return problems
    for field in spec:
        col = df[field["name"]]
        nulls = col.isna()
        if not field.get("nullable", True) and nulls.any():
            problems.append(f"line {int(nulls.idxmax()) + 2}: {field['name']} is empty")
        for i, v in col[~nulls].items():
            why = _bad(v, field)
            if why:
                problems.append(f"line {int(i) + 2}: {field['name']} {why}")
                if len(problems) >= limit:
                    return problems
    return problems


def check_csv(path: Path, name: str) -> list[str]:
    try:
        df = read_csv(path)
    except Exception as exc:
        return [f"cannot read it as CSV ({type(exc).__name__})"]
    return check_frame(df, name)
