"""PLACEHOLDER of the text finder's API (issue 10). The "ocr" branch owns this module: on
merge its file replaces this one. ``deid.redact`` codes against exactly this API."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("name", "id", "date", "other", "marker")     # markers are kept, the rest redacted


@dataclass(frozen=True)
class TextBox:
    frame: int
    x0: int
    y0: int
    x1: int
    y1: int
    kind: str


@dataclass(frozen=True)
class Hints:
    names: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


def hints_from(ds) -> Hints:
    return Hints()


def find_text(image: np.ndarray, frame: int = 0, hints: Hints | None = None) -> list[TextBox]:
    raise NotImplementedError("the text finder lands with the ocr branch")
