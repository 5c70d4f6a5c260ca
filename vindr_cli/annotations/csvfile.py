"""The one CSV reader of annotation and prediction files: every field as text, each data row
with the physical line its record starts on (header = line 1).

pandas' C parser reads the file when line numbers can be trusted (no quoted fields, every
row as wide as the header); otherwise the ``csv`` module reads it record by record, and a
record with more or fewer fields than the header is a bad row. Blank lines are skipped
(their line numbers are kept for the rows after them). A UTF-8 byte-order mark is dropped.
"""
from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vindr_cli.annotations.badrows import AnnotationInputError, BadRow

_FIELD_LIMIT = 64 * 1024 * 1024   # a Kaggle PredictionString can be long


@dataclass
class CsvText:
    header: list[str]
    data: pd.DataFrame        # all columns as str, '' for empty
    lines: np.ndarray         # 1-based line number of each data row
    bad: list[BadRow]         # records of the wrong width


def read_csv_text(path: Path, what: str = "annotation") -> CsvText:
    """Read a CSV file (see the module doc); a missing, unreadable or empty file is an AnnotationInputError."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationInputError(f"{what} file not found: {path.name}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnnotationInputError(f"{what} file {path.name} cannot be read ({type(exc).__name__})") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        raise AnnotationInputError(f"{what} file {path.name} is empty")
    fast = _read_fast(raw)
    return fast if fast is not None else _read_slow(raw, path.name, what)


def _read_fast(raw: bytes) -> CsvText | None:
    """pandas' C parser; None when line numbers or widths cannot be trusted."""
    if b'"' in raw or b"\r" in raw:
        return None
    lines_raw = raw.split(b"\n")
    if lines_raw and lines_raw[-1] == b"":
        lines_raw.pop()
    width = lines_raw[0].count(b",")
    if any(ln.count(b",") != width for ln in lines_raw[1:] if ln.strip()):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            df = pd.read_csv(io.BytesIO(raw), dtype=str, na_filter=False, index_col=False,
                             skip_blank_lines=False, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, ValueError, Warning):
        return None
    if len(df) != len(lines_raw) - 1 or any(str(c).startswith("Unnamed: ") for c in df.columns):
        return None
    lines = np.arange(2, len(df) + 2, dtype=np.int64)
    blank = (df == "").all(axis=1).to_numpy()
    if blank.any():
        df, lines = df.loc[~blank].reset_index(drop=True), lines[~blank]
    return CsvText([str(c) for c in df.columns], df, lines, [])


def _read_slow(raw: bytes, name: str, what: str) -> CsvText:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    text = raw.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise AnnotationInputError(f"{what} file {name}: header is not CSV ({type(exc).__name__})") from None
    n = len(header)
    rows, lines, bad = [], [], []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            raise AnnotationInputError(f"{what} file {name}: broken CSV record from line {start}") from None
        line, start = start, reader.line_num + 1
        if not row or all(not v.strip() for v in row):
            continue
        if len(row) != n:
            bad.append(BadRow(line, f"{len(row)} fields, the header has {n}"))
            continue
        rows.append(row)
        lines.append(line)
    cols = _dedupe(header)
    df = pd.DataFrame(rows, columns=cols, dtype=object) if rows else \
        pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    return CsvText(list(df.columns), df, np.asarray(lines, dtype=np.int64), bad)


def _dedupe(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in header:
        k = seen.get(h, 0)
        out.append(h if k == 0 else f"{h}.{k}")
        seen[h] = k + 1
    return out
