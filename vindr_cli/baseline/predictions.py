"""Read detection predictions (Kaggle submission or one box per row) and the class vocabularies.

Bad rows are never guessed at: each is reported with its line number (the physical line the
CSV record starts on; the header is line 1) and a one-line reason, and left out of scoring.
A Kaggle row is all or nothing: one bad box rejects the whole row (its tokens may be out of
step). Scores may be any finite float (not only [0, 1]); NaN and infinities are refused.
"""
from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NO_FINDING = "No finding"
NO_FINDING_BOX = (0.0, 0.0, 1.0, 1.0)  # the VinBigData convention: "14 1 0 0 1 1"

# VinBigData (Kaggle) class ids 0..14; "No finding" is 14.
CXR_CLASSES = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
    "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
    "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", NO_FINDING,
)
# VinDr-SpineXR's seven lesion types (this project's id order, as vindr_cli.synth writes them),
# then "No finding" as id 7.
SPINE_CLASSES = (
    "Osteophytes", "Spondylolysthesis", "Disc space narrowing", "Vertebral collapse",
    "Foraminal stenosis", "Surgical implant", "Other lesions", NO_FINDING,
)

BOX_NAMES = (("x_min", "y_min", "x_max", "y_max"), ("xmin", "ymin", "xmax", "ymax"))
_FIELD_LIMIT = 64 * 1024 * 1024
_INT = re.compile(r"^[+]?\d+(\.0*)?$")


class EvalInputError(ValueError):
    """A file that cannot be evaluated at all (missing, empty, unknown columns)."""


@dataclass(frozen=True)
class BadRow:
    source: str   # "gt" or "pred"
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source} line {self.line}: {self.reason}"


class Vocabulary:
    """Class names indexed by class id; names match exactly, else case-insensitively."""

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)
        if len(set(self.names)) != len(self.names):
            raise ValueError("class names must be unique")
        self._exact = {n: i for i, n in enumerate(self.names)}
        self._folded = {n.casefold(): i for i, n in enumerate(self.names)}
        self.no_finding = self._exact.get(NO_FINDING)

    def __len__(self) -> int:
        return len(self.names)

    def by_name(self, name: str) -> int | None:
        name = name.strip()
        i = self._exact.get(name)
        return self._folded.get(name.casefold()) if i is None else i

    def by_id(self, token: str) -> int | None:
        token = token.strip()
        if not _INT.match(token):
            return None
        i = int(float(token))
        return i if 0 <= i < len(self.names) else None


@dataclass
class Predictions:
    image: list[str] = field(default_factory=list)
    cls: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    line: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    format: str = ""

    def __len__(self) -> int:
        return len(self.image)


# ---------------------------------------------------------------------------------------------
# CSV reading shared with the ground-truth reader

def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header (lower-cased, stripped) and an iterator of (start line, fields); blank lines skipped."""
    path = Path(path)
    if csv.field_size_limit() < _FIELD_LIMIT:  # a Kaggle PredictionString can be long
        csv.field_size_limit(_FIELD_LIMIT)
    if not path.is_file():
        raise EvalInputError(f"{path} is not a file")
    fh = open(path, newline="", encoding="utf-8-sig")
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise EvalInputError(f"{path} is empty") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        fh.close()
        raise EvalInputError(f"{path}: not a readable CSV ({exc.__class__.__name__})") from None
    header = [h.strip().lower() for h in header]

    def rows() -> Iterator[tuple[int, list[str]]]:
        with fh:
            end = reader.line_num
            while True:
                start = end + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise EvalInputError(f"{path} line {start}: broken CSV ({exc})") from None
                end = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield start, row

    return header, rows()


def parse_float(token: str, what: str) -> float:
    """A finite float, else ValueError with a one-line reason."""
    t = token.strip()
    if not t:
        raise ValueError(f"{what} is empty")
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{what} {t[:20]!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} is {t[:20]}, not a finite number")
    return v


def parse_box(tokens: Sequence[str]) -> tuple[float, float, float, float]:
    """Four finite coordinates with x_min <= x_max and y_min <= y_max, else ValueError."""
    x0, y0, x1, y1 = (parse_float(t, n) for t, n in zip(tokens, BOX_NAMES[0]))
    if x1 < x0 or y1 < y0:
        raise ValueError(f"inverted box ({x0:g}, {y0:g}, {x1:g}, {y1:g}): x_max < x_min or y_max < y_min")
    return x0, y0, x1, y1


def box_columns(header: Sequence[str]) -> tuple[int, int, int, int] | None:
    for names in BOX_NAMES:
        if all(n in header for n in names):
            return tuple(header.index(n) for n in names)  # type: ignore[return-value]
    return None


def resolve_class(vocab: Vocabulary, class_id: str | None, class_name: str | None) -> int:
    """The class index from an id and/or a name column; ValueError if unknown or they disagree."""
    by_id = by_name = None
    if class_id is not None:
        by_id = vocab.by_id(class_id)
        if by_id is None:
            raise ValueError(f"unknown class id {class_id.strip()[:20]!r} (0..{len(vocab) - 1})")
    if class_name is not None:
        by_name = vocab.by_name(class_name)
        if by_name is None:
            raise ValueError(f"unknown class name {class_name.strip()[:40]!r}")
    if by_id is not None and by_name is not None and by_id != by_name:
        raise ValueError(f"class id {by_id} is {vocab.names[by_id]!r}, not {vocab.names[by_name]!r}")
    if by_id is None and by_name is None:
        raise ValueError("no class")
    return by_id if by_id is not None else by_name  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# predictions

def read_predictions(path: Path, vocab: Vocabulary, known_images: set[str] | None = None,
                     ) -> tuple[Predictions, list[BadRow]]:
    """Read a prediction CSV in either form (chosen by its header).

    * Kaggle submission: ``image_id, PredictionString``; the string repeats
      ``class_id score x_min y_min x_max y_max`` (an empty string: no box). One row per image;
      a repeated image is a bad row.
    * One box per row: ``image_id``, ``class_id`` and/or ``class_name`` (they must agree),
      ``score``, ``x_min, y_min, x_max, y_max`` (or ``xmin ...``). A "No finding" row with
      all four coordinates empty is the box (0, 0, 1, 1), as in the ground truth.

    With ``known_images``, a prediction for an image that the ground truth does not list is
    a bad row (a mismatched file is more likely than a real image without any row).
    """
    header, rows = read_rows(path)
    if "image_id" not in header:
        raise EvalInputError(f"{path}: no image_id column")
    image = []
    cls: list[int] = []
    score: list[float] = []
    boxes: list[tuple[float, float, float, float]] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    ii = header.index("image_id")
    width = len(header)

    def unknown_image(line: int, img: str) -> bool:
        if not img:
            bad.append(BadRow("pred", line, "empty image_id"))
            return True
        if known_images is not None and img not in known_images:
            bad.append(BadRow("pred", line, "image_id is not in the ground truth"))
            return True
        return False

    if "predictionstring" in header:
        fmt = "kaggle"
        pi = header.index("predictionstring")
        seen: dict[str, int] = {}
        for line, row in rows:
            if len(row) != width:
                bad.append(BadRow("pred", line, f"{len(row)} fields, the header has {width}"))
                continue
            img = row[ii].strip()
            if unknown_image(line, img):
                continue
            if img in seen:
                bad.append(BadRow("pred", line, f"image_id repeated (first on line {seen[img]})"))
                continue
            seen[img] = line
            tokens = row[pi].split()
            if len(tokens) % 6:
                bad.append(BadRow("pred", line, f"{len(tokens)} tokens in PredictionString, not a multiple of 6 "
                                                f"(class score x_min y_min x_max y_max)"))
                continue
            parsed = []
            try:
                for k in range(0, len(tokens), 6):
                    where = f"box {k // 6 + 1}: " if len(tokens) > 6 else ""
                    try:
                        c = resolve_class(vocab, tokens[k], None)
                        s = parse_float(tokens[k + 1], "score")
                        b = parse_box(tokens[k + 2:k + 6])
                    except ValueError as exc:
                        raise ValueError(where + str(exc)) from None
                    parsed.append((c, s, b))
            except ValueError as exc:
                bad.append(BadRow("pred", line, str(exc)))
                continue
            for c, s, b in parsed:
                image.append(img)
                cls.append(c)
                score.append(s)
                boxes.append(b)
                lines.append(line)
    else:
        fmt = "boxes"
        ci = header.index("class_id") if "class_id" in header else None
        ni = header.index("class_name") if "class_name" in header else None
        si = header.index("score") if "score" in header else None
        bi = box_columns(header)
        if (ci is None and ni is None) or si is None or bi is None:
            raise EvalInputError(f"{path}: expected image_id,PredictionString or image_id, class_id|class_name, "
                                 f"score, x_min, y_min, x_max, y_max")
        for line, row in rows:
            if len(row) != width:
                bad.append(BadRow("pred", line, f"{len(row)} fields, the header has {width}"))
                continue
            img = row[ii].strip()
            if unknown_image(line, img):
                continue
            try:
                c = resolve_class(vocab, row[ci] if ci is not None else None, row[ni] if ni is not None else None)
                s = parse_float(row[si], "score")
                coords = [row[i] for i in bi]
                if c == vocab.no_finding and not any(t.strip() for t in coords):
                    b = NO_FINDING_BOX
                else:
                    b = parse_box(coords)
            except ValueError as exc:
                bad.append(BadRow("pred", line, str(exc)))
                continue
            image.append(img)
            cls.append(c)
            score.append(s)
            boxes.append(b)
            lines.append(line)
    preds = Predictions(image, np.asarray(cls, dtype=np.int64), np.asarray(score, dtype=np.float64),
                        np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(lines, dtype=np.int64), fmt)
    return preds, bad
