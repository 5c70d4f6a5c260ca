"""Tables written by the stages: Arrow schemas from ``schemas/tables`` and atomic Parquet I/O."""
from __future__ import annotations

import json
import os
from array import array
from collections.abc import Iterable, Iterator
from typing import BinaryIO
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


class _Unusual(Exception):
    """A value the direct builder does not take; pyarrow's own conversion decides instead."""


_INT_RANGE = {"int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1)}
_ARRAY_CODE = {"int32": "i", "int64": "q", "float64": "d"}
_TYPE_NAME = {v: k for k, v in _TYPES.items()}


def _bitmap(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _strings(values: list, typ) -> "pa.Array":
    offsets, chunks, valid, pos = array("i", [0]), [], [], 0
    for v in values:
        if v is not None and type(v) is not str:
            raise _Unusual
        if v is not None:
            try:
                b = v.encode("utf-8")
            except UnicodeEncodeError:   # a lone surrogate: pyarrow's conversion decides (and refuses)
                raise _Unusual from None
            chunks.append(b)
            pos += len(b)
        if pos >= 1 << 31:
            raise _Unusual
        offsets.append(pos)
        valid.append(v is not None)
    return _with_validity(typ, len(values), valid, [pa.py_buffer(offsets), pa.py_buffer(b"".join(chunks))])


def _with_validity(typ, n: int, valid: list[bool], buffers: list, children=None) -> "pa.Array":
    mask = None if all(valid) else pa.py_buffer(_bitmap(valid))
    return pa.Array.from_buffers(typ, n, [mask, *buffers], null_count=n - sum(valid), children=children)


def _column(values: list, typ) -> "pa.Array":
    """One column built straight from its buffers. ``pa.array`` would do the same, but its
    first call imports pandas (~0.3 s) to ask whether the list is a pandas object."""
    kind = _TYPE_NAME.get(typ)
    n = len(values)
    valid = [v is not None for v in values]
    if kind == "string":
        return _strings(values, typ)
    if kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        if any(v is not None and (type(v) is not int or not low <= v <= high) for v in values):
            raise _Unusual
        data = array(_ARRAY_CODE[kind], [0 if v is None else v for v in values])
        return _with_validity(typ, n, valid, [pa.py_buffer(data)])
    if kind == "float64":
        if any(v is not None and type(v) is not float for v in values):
            raise _Unusual
        data = array("d", [0.0 if v is None else v for v in values])
        return _with_validity(typ, n, valid, [pa.py_buffer(data)])
    if kind == "bool":
        if any(v is not None and type(v) is not bool for v in values):
            raise _Unusual
        return _with_validity(typ, n, valid, [pa.py_buffer(_bitmap([bool(v) for v in values]))])
    if kind == "list<string>":
        offsets, items = array("i", [0]), []
        for v in values:
            if v is not None and type(v) not in (list, tuple):
                raise _Unusual
            items.extend(v or ())
            offsets.append(len(items))
        child = _strings(items, pa.string())
        if child.null_count:
            raise _Unusual
        return _with_validity(typ, n, valid, [pa.py_buffer(offsets)], children=[child])
    raise _Unusual


def build_table(rows: list[dict], schema: "pa.Schema") -> "pa.Table":
    """``pa.Table.from_pylist(rows, schema=schema)`` for rows of plain Python values (str, int,
    float, bool, lists of str, None), built without importing pandas; anything else (or a
    None in a non-nullable field) goes through ``from_pylist`` itself, unchanged."""
    try:
        columns = []
        for f in schema:
            values = [r.get(f.name) for r in rows]
            if not f.nullable and any(v is None for v in values):
                raise _Unusual
            columns.append(_column(values, f.type))
        return pa.Table.from_arrays(columns, schema=schema)
    except _Unusual:
        return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)


def write_table(rows: list[dict], name: str, path: Path, mode: int = 0o644) -> None:
    """Write rows as Parquet with the named schema, atomically (temp name, then rename)."""
    table = build_table(rows, arrow_schema(name))
    with atomic_write(path, mode) as f:
        pq.write_table(table, f)


BATCH_ROWS = 50_000      # rows per row group written by write_rows
CONVERT_ROWS = 5_000     # row dicts held at a time by write_rows (converted to Arrow, then let go)


def write_rows(rows: Iterable[dict], name: str, path: Path, mode: int = 0o644, *,
               batch_rows: int | None = None, convert_rows: int | None = None) -> int:
    """:func:`write_table` for rows that come one by one (a generator reading them from disk):
    at most ``convert_rows`` (default :data:`CONVERT_ROWS`) row dicts are held at a time; each
    such chunk goes through the same builder and schema (:func:`build_table`), and every
    ``batch_rows`` (default :data:`BATCH_ROWS`) rows of Arrow data are appended as one row
    group through one ``ParquetWriter`` to a temporary name, renamed into place once the last
    row is written (nothing half-written). The file read back equals :func:`write_table`'s
    for the same rows (schema, order, values); only the row groups differ. Returns the row count."""
    schema = arrow_schema(name)
    size = batch_rows or BATCH_ROWS
    chunk = min(convert_rows or CONVERT_ROWS, size)
    n = 0
    with atomic_write(path, mode) as f:
        writer = pq.ParquetWriter(f, schema)
        try:
            group: list[pa.Table] = []        # Arrow data of the row group being gathered
            in_group = 0
            batch: list[dict] = []

            def convert() -> None:
                nonlocal batch, in_group
                group.append(build_table(batch, schema))
                in_group += len(batch)
                batch = []

            def flush() -> None:
                nonlocal group, in_group, n
                table = group[0] if len(group) == 1 else pa.concat_tables(group)
                writer.write_table(table, row_group_size=max(in_group, 1))
                n += in_group
                group, in_group = [], 0

            for row in rows:
                batch.append(row)
                if in_group + len(batch) >= size:
                    convert()
                    flush()
                elif len(batch) >= chunk:
                    convert()
            if batch or not (n or group):     # an empty table still has its schema (as write_table's)
                convert()
            if group:
                flush()
        finally:
            writer.close()
    return n


def arrow_file(f: BinaryIO) -> "pa.NativeFile":
    """The open binary file ``f`` as an Arrow-native file for pyarrow's readers, open on its
    own (the caller closes both; ``f`` may be closed first): the same file opened once more
    through ``/proc/self/fd`` (``/dev/fd`` elsewhere), so a table renamed over meanwhile is
    still read whole from the file ``f`` is; no path is looked up again.

    Not ``f`` itself: pyarrow wraps a Python file in a PythonFile whose reads return buffers
    owned by Python objects, and its Parquet reader reads ahead on Arrow's I/O threads
    (``pre_buffer``). Such a thread sometimes drops the last reference to one of those
    buffers just after the read has returned; when the interpreter is exiting by then, its
    request for the GIL ends the thread with ``pthread_exit``, which aborts the process
    (`terminate called without an active exception`, exit 134, apache/arrow#34314; the cores
    of such runs: bench/README "exitcrash"). An OSFile's buffers are Arrow's own: freeing
    them needs no GIL. Without either folder: a PythonFile over a duplicate of ``f``'s
    descriptor, as pyarrow would make."""
    fd = f.fileno()
    for base in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(base):
            return pa.OSFile(f"{base}/{fd}", "r")
    return pa.PythonFile(os.fdopen(os.dup(fd), "rb"), "r")  # pragma: no cover - no /dev/fd


class WrittenRows:
    """The rows of a written table, read back batch by batch each time it is iterated (never
    all at once); ``len`` is the row count the file records."""

    def __init__(self, path: Path, batch_rows: int | None = None):
        self.path = path
        self.batch_rows = batch_rows or BATCH_ROWS

    def __iter__(self) -> Iterator[dict]:
        with open(self.path, "rb") as f, arrow_file(f) as af:
            for batch in pq.ParquetFile(af).iter_batches(batch_size=self.batch_rows):
                yield from batch.to_pylist()

    def __len__(self) -> int:
        with open(self.path, "rb") as f, arrow_file(f) as af:
            return pq.ParquetFile(af).metadata.num_rows


def read_rows(path: Path, columns: Iterable[str] | None = None) -> list[dict]:
    """Rows of a Parquet table. Read through one open file: a table replaced by an atomic rename
    while it is read (a live `vindr review` rebuilding review.parquet) is then read whole, old or
    new; given a path, pyarrow opens the file twice (footer, then data) and can mix the two.
    ``columns``: only those of them the table has (:func:`iter_rows`)."""
    if columns is not None:
        return list(iter_rows(path, columns))
    with open(path, "rb") as f, arrow_file(f) as af:
        return pq.ParquetFile(af).read().to_pylist()   # not pq.read_table: it imports pyarrow.dataset and pandas (0.25 s)


def iter_rows(path: Path, columns: Iterable[str] | None = None, batch_rows: int | None = None) -> Iterator[dict]:
    """The rows of a Parquet table one by one, read ``batch_rows`` (default :data:`BATCH_ROWS`)
    at a time through one open file (as :func:`read_rows`): a million-row manifest is never
    held whole, neither as Arrow data nor as dicts. ``columns``: only those of them the table
    has, in the table's order (a column it lacks is absent from the rows, as in a table
    written without it); None: every column."""
    with open(path, "rb") as f, arrow_file(f) as af:
        pf = pq.ParquetFile(af)
        names = pf.schema_arrow.names
        wanted = None if columns is None else set(columns)     # once: ``columns`` may be a generator
        cols = names if wanted is None else [c for c in names if c in wanted]
        if not cols:                                        # no column wanted: rows are empty dicts
            yield from ({} for _ in range(pf.metadata.num_rows))
            return
        for batch in pf.iter_batches(batch_size=batch_rows or BATCH_ROWS, columns=cols):
            yield from batch.to_pylist()
