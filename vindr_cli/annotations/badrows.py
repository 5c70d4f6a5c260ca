"""Bad rows and bad files: how every reader of annotations and predictions reports problems.

A bad row is left out and reported with its line number (the physical line its CSV record
starts on; the header is line 1) and a one-line reason in vindr's words. A row's value is
free text from the hospital's file (a class column with the patient's name typed in), so a
reason never quotes it (:func:`quote`): it shows ``<value>`` instead, except a value that is
one of the listed names of the label set in effect or a short plain number (a class_id such
as ``15`` or ``3.5``, at most 3 characters); an unknown class may add the closest listed
class (:func:`closest`: the label set's own words, never the value). What a user sees
about bad rows (:class:`BadRowsError`, evaluate's table and --json, split_report.json) is
masked the same way again (:func:`mask_quoted`; ``reasons.shown_masked``). A file that
cannot be read as any accepted form is an :class:`AnnotationInputError` (exit 2); bad rows
under ``strict`` are a :class:`BadRowsError` (exit 1) whose ``details`` list them.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from vindr_cli.errors import FindingsError, RequestError

MAX_DETAILS = 50
MASK = "<value>"          # what a reason shows in place of a row's value
# a short plain number may be shown (a class_id such as 15 or 3.5): at most 3 characters
_PLAIN_NUMBER = re.compile(r"(?=.{1,3}\Z)[+-]?[0-9]+(?:\.[0-9]+)?")
# a quoted value in a reason (Python's repr: single or double quotes, backslash escapes)
QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
CLOSEST_CUTOFF = 0.8      # difflib ratio for "closest listed class"


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

    def __init__(self, bad: "BadRows | list[BadRow]", what: str = "annotation", names: Iterable[str] = ()):
        """``names``: the listed names of the label set in effect, which the message may show
        quoted; every other quoted value of a reason is shown as ``<value>`` (:func:`mask_quoted`)."""
        self.bad = bad if isinstance(bad, BadRows) else BadRows(list(bad))
        names = frozenset(names)
        shown = BadRows([BadRow(r.line, mask_quoted(r.reason, names), r.source) for r in self.bad.rows])
        lines = [str(r) for r in shown.rows[:MAX_DETAILS]]
        if len(self.bad) > MAX_DETAILS:
            lines.append(f"... and {len(self.bad) - MAX_DETAILS} more")
        super().__init__(f"{what}: {shown.summary()} (--strict)", details=lines)

    @property
    def bad_rows(self) -> list[BadRow]:
        return self.bad.rows


def _plain(value: str) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()


def quote(value, names: Iterable[str] = ()) -> str:
    """A row's value as a reason may show it: quoted (``repr``) when it is one of ``names``
    (the listed names of the label set in effect) or a short plain number, else ``<value>``."""
    v = _plain(value)
    return repr(v) if v in frozenset(names) or _PLAIN_NUMBER.fullmatch(v) else MASK


def closest(value, names: Iterable[str]) -> str | None:
    """The listed name closest to ``value`` (difflib, without case, ratio >= 0.8), or None.
    What a reason may show is the name, never the value."""
    names = list(names)
    by_key = {n.casefold(): n for n in names}
    got = difflib.get_close_matches(_plain(value).casefold(), list(by_key), n=1, cutoff=CLOSEST_CUTOFF)
    return by_key[got[0]] if got else None


def mask_quoted(reason: str, names: Iterable[str] = ()) -> str:
    """``reason`` with every quoted value replaced by ``<value>``, except one of ``names``
    or a short plain number (what :func:`quote` may show)."""
    keep = {repr(n) for n in names}

    def sub(m: re.Match) -> str:
        q = m.group(0)
        return q if q in keep or (q[0] == "'" and _PLAIN_NUMBER.fullmatch(q[1:-1])) else MASK
    return QUOTED.sub(sub, str(reason))
