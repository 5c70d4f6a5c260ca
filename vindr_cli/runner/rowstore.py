"""Where a table's rows lie while a run goes on, so that the driver never holds them.

:class:`RowStore` is the ``Run.done[table]`` of a journaled table: a mapping from an input's
key to its rows, which keeps, per key, only where those rows are on disk — a line of the
table's journal (this run's rows and those a killed run journaled) or a stretch of rows of
the final table an earlier run wrote. Reading a key reads its rows back (fresh dicts each
time: a stage that changes a row records it again, :meth:`Run.record`). At 1,000,000 inputs
it holds a key and one integer per input, not ~760 B of row dicts.

The final table is then written from it in discovery order, a bounded batch at a time
(:func:`vindr_cli.tables.write_rows`): no row dict outlives its batch.
"""
from __future__ import annotations

import json
import os
from bisect import bisect_right
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, BinaryIO

_LEN_BITS = 24          # a journal line: offset << 24 | length (longer lines: a tuple)
_COUNT_BITS = 20        # table rows: -1 - (first row << 20 | count) (more rows: a tuple)
_CHUNK = 5_000          # table rows turned into dicts at a time


class RowStore(MutableMapping):
    """key -> rows, kept as their place in ``journal`` (a JSON-lines journal,
    :mod:`.journal`) or in ``table`` (the Parquet table of an earlier run). A key may also
    hold rows in memory (:meth:`__setitem__`, or a torn last journal line, which the next
    append cuts off); :attr:`held` counts those."""

    def __init__(self, journal: Path, table: Path | None = None):
        self.journal = journal
        self.table = table
        self._loc: dict[str, Any] = {}
        self._jf: BinaryIO | None = None
        self._tf: BinaryIO | None = None
        self._pf: Any = None
        self._starts: list[int] = []
        self._group: tuple[int, Any] | None = None            # the last row group read (Arrow)
        self._chunk: tuple[int, int, list[dict]] | None = None   # a slice of it as row dicts

    # --- where rows lie ---------------------------------------------------------------------
    def at_line(self, key: str, offset: int, length: int) -> None:
        """``key``'s rows are the journal line at ``offset`` (``length`` bytes)."""
        self._loc[key] = (offset << _LEN_BITS | length) if length < 1 << _LEN_BITS else ("j", offset, length)

    def at_rows(self, key: str, first: int, count: int) -> None:
        """``key``'s rows are rows ``first`` .. ``first + count - 1`` of the table."""
        self._loc[key] = -1 - (first << _COUNT_BITS | count) if count < 1 << _COUNT_BITS else ("t", first, count)

    def add_row(self, key: str, index: int) -> None:
        """One more table row of ``key`` (rows of one key are usually consecutive)."""
        loc = self._loc.get(key)
        if loc is None:
            self.at_rows(key, index, 1)
            return
        first, count = self._table_span(loc)
        if first is not None and first + count == index:
            self.at_rows(key, first, count + 1)
        else:                  # not consecutive: list every row (rare: a table written by hand)
            self._loc[key] = ("i", tuple(self._table_indices(loc)) + (index,))

    @property
    def held(self) -> int:
        """Keys whose rows are held in memory (not on disk)."""
        return sum(1 for v in self._loc.values() if type(v) is list)

    # --- the mapping ------------------------------------------------------------------------
    def __getitem__(self, key: str) -> list[dict]:
        loc = self._loc[key]
        if type(loc) is list:
            return loc
        if type(loc) is int and loc >= 0:
            return self._line(loc >> _LEN_BITS, loc & ((1 << _LEN_BITS) - 1))
        if type(loc) is tuple and loc[0] == "j":
            return self._line(loc[1], loc[2])
        return [self._row(i) for i in self._table_indices(loc)]

    def __setitem__(self, key: str, rows: list[dict]) -> None:
        self._loc[key] = list(rows)

    def __delitem__(self, key: str) -> None:
        del self._loc[key]

    def __contains__(self, key: object) -> bool:
        return key in self._loc

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._loc))

    def __len__(self) -> int:
        return len(self._loc)

    def close(self) -> None:
        for f in (self._jf, self._tf):
            if f is not None:
                f.close()
        self._jf = self._tf = self._pf = None
        self._group = self._chunk = None

    # --- reading back -----------------------------------------------------------------------
    def _line(self, offset: int, length: int) -> list[dict]:
        if self._jf is None:      # unbuffered: the journal grows (and its torn tail is cut) meanwhile
            self._jf = open(self.journal, "rb", buffering=0)
        raw = os.pread(self._jf.fileno(), length, offset)
        if len(raw) != length:
            raise ValueError("journal line cut short")
        return json.loads(raw)["rows"]

    @staticmethod
    def _table_span(loc: Any) -> tuple[int | None, int]:
        if type(loc) is int and loc < 0:
            v = -1 - loc
            return v >> _COUNT_BITS, v & ((1 << _COUNT_BITS) - 1)
        if type(loc) is tuple and loc[0] == "t":
            return loc[1], loc[2]
        return None, 0

    def _table_indices(self, loc: Any) -> range | tuple[int, ...]:
        if type(loc) is tuple and loc[0] == "i":
            return loc[1]
        first, count = self._table_span(loc)
        if first is None:       # a journal line or rows in memory: not table rows
            raise ValueError("not table rows")
        return range(first, first + count)

    def use_table(self, f: BinaryIO, pf: Any) -> None:
        """Read table rows from ``pf`` (a ``ParquetFile`` over the open file ``f``, which the
        store closes): the file that was indexed, even once a new table replaces its name."""
        self._tf, self._pf = f, pf
        meta = pf.metadata
        self._starts, n = [], 0
        for g in range(meta.num_row_groups):
            self._starts.append(n)
            n += meta.row_group(g).num_rows

    def _row(self, index: int) -> dict:
        if self._pf is None:
            raise ValueError("no table to read rows from")
        g = bisect_right(self._starts, index) - 1
        if self._group is None or self._group[0] != g:
            self._group = self._chunk = None     # let the last group go before the next is read
            self._group = (g, self._pf.read_row_group(g))
        i = index - self._starts[g]
        c = i // _CHUNK
        if self._chunk is None or self._chunk[:2] != (g, c):     # row dicts: one chunk of the group at a time
            self._chunk = None
            self._chunk = (g, c, self._group[1].slice(c * _CHUNK, _CHUNK).to_pylist())
        return dict(self._chunk[2][i - c * _CHUNK])


__all__ = ["RowStore"]
