"""tables.build_table (the pandas-free builder behind write_table) gives the table pyarrow's
own from_pylist gives, for every field type the table schemas use, nulls and odd values
included; what it does not take goes through from_pylist unchanged."""
from __future__ import annotations

import io
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from vindr_cli.tables import _TYPES, arrow_schema, build_table, write_table

SCHEMA = pa.schema([pa.field(k.replace("<", "_").replace(">", ""), t) for k, t in _TYPES.items()]
                   + [pa.field("required", pa.string(), nullable=False)])

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
row = st.fixed_dictionaries({
    "string": st.none() | texts,
    "int32": st.none() | st.integers(-(1 << 31), (1 << 31) - 1),
    "int64": st.none() | st.integers(-(1 << 63), (1 << 63) - 1),
    "float64": st.none() | st.floats(allow_nan=False),
    "bool": st.none() | st.booleans(),
    "list_string": st.none() | st.lists(texts, max_size=4),
    "required": texts,
})


def reference(rows, schema):
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)


def parquet_bytes(table) -> bytes:
    b = io.BytesIO()
    pq.write_table(table, b)
    return b.getvalue()


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, max_size=8))
def test_same_table_as_from_pylist(rows):
    got, want = build_table(rows, SCHEMA), reference(rows, SCHEMA)
    got.validate(full=True)
    assert got.equals(want)
    assert got.to_pylist() == want.to_pylist()
    assert parquet_bytes(got) == parquet_bytes(want)


@pytest.mark.parametrize("odd", [
    {"int32": 1 << 31}, {"int64": True}, {"float64": 3}, {"bool": 1}, {"string": 5},
    {"list_string": ["a", None]}, {"list_string": "ab"}, {"required": None},
])
def test_odd_values_take_pyarrows_path(odd):
    rows = [dict({"required": "x"}, **odd)]
    try:
        want = reference(rows, SCHEMA)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            build_table(rows, SCHEMA)
        return
    assert build_table(rows, SCHEMA).equals(want)


def test_lone_surrogate_is_refused_as_before():
    rows = [{"required": "x", "string": "a\udcff"}]
    with pytest.raises(Exception) as want:
        reference(rows, SCHEMA)
    with pytest.raises(type(want.value)):
        build_table(rows, SCHEMA)


def test_manifest_written_without_pandas(tmp_path):
    """Writing a stage's table does not import pandas (start-up: issue 13)."""
    code = ("import sys; from pathlib import Path; from vindr_cli.tables import write_table, read_rows\n"
            "write_table([{'input_key': 'k', 'status': 'ok', 'rows': 5, 'pixels_modified': False}], "
            f"'anonymize_manifest', Path({str(tmp_path / 'm.parquet')!r}))\n"
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    rows = pq.read_table(tmp_path / "m.parquet").to_pylist()
    assert rows[0]["input_key"] == "k" and rows[0]["rows"] == 5 and rows[0]["pixels_modified"] is False


def test_every_schema_builds(tmp_path):
    for name in ("anonymize_manifest", "linkage", "images", "selection", "review", "push", "selection_scan"):
        schema = arrow_schema(name)
        sample = {pa.string(): "x", pa.int32(): 7, pa.int64(): 1 << 40, pa.float64(): 0.5, pa.bool_(): True,
                  pa.list_(pa.string()): ["a", "b"]}
        rows = [{f.name: sample[f.type] for f in schema}, {f.name: None if f.nullable else sample[f.type] for f in schema}]
        want = reference(rows, schema)
        assert build_table(rows, schema).equals(want)
        write_table(rows, name, tmp_path / f"{name}.parquet")
        assert pq.read_table(tmp_path / f"{name}.parquet").equals(want)
