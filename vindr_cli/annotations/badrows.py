"""Bad rows and bad files: how every reader of annotations and predictions reports problems.

A bad row is left out and reported with its line number (the physical line its CSV record
starts on; the header is line 1) and a one-line reason that quotes at most a short,
truncated value of the row — never a path or anything from outside the file. A file that
cannot be read as any accepted form is an :class:`AnnotationInputError` (exit 2); bad rows
under ``strict`` are a :class:`BadRowsError` (exit 1) whose ``details`` list them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from vindr_cli.errors import FindingsError, RequestError

_MAX_SHOWN = 40  # longest value quoted in a reason
MAX_DETAILS = 50


class AnnotationInputError(RequestError, ValueError):
    """A file that cannot be read as an annotation or prediction table (missing, empty, unknown columns)."""


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str
    source: str = ""      # which input, when there are several ("gt", "pred")

    def __str__(self) -> str:
        return f"{self.source + ' ' if self.source else ''}line {self.line}: {self.reason}"


@dataclass
class BadRows:
    """Rows left out, each with its line number and a one-line reason."""
    rows: list[BadRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[BadRow]:
        return iter(self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def extend(self, other: Iterable[BadRow]) -> None:
        self.rows.extend(other)
        self.rows.sort(key=lambda r: r.line)

    def by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.reason] = out.get(r.reason, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def lines(self) -> list[int]:
        return [r.line for r in self.rows]

    def summary(self, limit: int = 5) -> str:
        shown = "; ".join(str(r) for r in self.rows[:limit])
        more = f" (+{len(self.rows) - limit} more)" if len(self.rows) > limit else ""
        return f"{len(self.rows)} bad row{'s' if len(self.rows) != 1 else ''}: {shown}{more}"


class BadRowsError(FindingsError, ValueError):
    """Raised in strict mode when any input row is bad (exit 1); ``.bad`` holds all of them."""

    def __init__(self, bad: "BadRows | list[BadRow]", what: str = "annotation"):
        self.bad = bad if isinstance(bad, BadRows) else BadRows(list(bad))
        lines = [str(r) for r in self.bad.rows[:MAX_DETAILS]]
        if len(self.bad) > MAX_DETAILS:
            lines.append(f"... and {len(self.bad) - MAX_DETAILS} more")
        super().__init__(f"{what}: {self.bad.summary()} (--strict)", details=lines)

    @property
    def bad_rows(self) -> list[BadRow]:
        return self.bad.rows


def quote(value: str) -> str:
    """A value as a reason may show it: blanks folded, at most 40 characters."""
    value = re.sub(r"\s+", " ", str(value))
    return repr(value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "...")
