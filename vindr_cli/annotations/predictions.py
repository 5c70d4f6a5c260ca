"""Read detection predictions — a Kaggle submission or one box per row — into the canonical
table of :mod:`vindr_cli.annotations.read` (``score`` filled, ``reader`` null).

Forms, chosen by the header:

``kaggle-submission``
    ``image_id, PredictionString``; the string repeats ``class_id score x_min y_min x_max
    y_max`` (an empty string: no box). One row per image; a repeated image is a bad row. A
    row is all or nothing: one bad box rejects the whole row (its tokens may be out of step).
``pred-boxes``
    ``image_id``, ``class_id`` and/or ``class_name`` (they must agree), ``score``, ``x_min,
    y_min, x_max, y_max`` (or ``xmin …``). A "No finding" row with all four coordinates empty
    is the box (0, 0, 1, 1), as in the ground truth.

Scores may be any finite float (not only [0, 1]); NaN and infinities are refused. Boxes need
x_min <= x_max and y_min <= y_max (a model may predict a box partly outside the image).
Bad rows are never guessed at: each is reported by line with a one-line reason (source
``pred``) and left out of scoring; a reason quotes no value of the row but a listed class
name or a short plain number (annotations.badrows.quote).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from vindr_cli.annotations.badrows import AnnotationInputError, BadRow, quote
from vindr_cli.annotations.csvfile import read_csv_text
from vindr_cli.annotations.labels import LabelSet
from vindr_cli.annotations.read import BOX, SPINE_BOX, _key

NO_FINDING_BOX = (0.0, 0.0, 1.0, 1.0)  # the VinBigData convention: "14 1 0 0 1 1"
PREDICTION_FORMS = ("kaggle-submission", "pred-boxes")


def parse_float(token: str, what: str) -> float:
    """A finite float, else ValueError with a one-line reason."""
    t = token.strip()
    if not t:
        raise ValueError(f"{what} is empty")
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{what} {quote(t)} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} is {'nan' if math.isnan(v) else 'inf' if v > 0 else '-inf'}, not a finite number")
    return v


def parse_box(tokens: Sequence[str]) -> tuple[float, float, float, float]:
    """Four finite coordinates with x_min <= x_max and y_min <= y_max, else ValueError."""
    x0, y0, x1, y1 = (parse_float(t, n) for t, n in zip(tokens, BOX))
    if x1 < x0 or y1 < y0:
        raise ValueError("inverted box: x_max < x_min or y_max < y_min")     # the row's numbers are not shown
    return x0, y0, x1, y1


def resolve_class(labels: LabelSet, class_id: str | None, class_name: str | None) -> int:
    """The class id from an id and/or a name; ValueError if unknown or they disagree."""
    by_id = by_name = None
    if class_id is not None:
        by_id = labels.by_id(class_id)
        if by_id is None:
            raise ValueError(f"unknown class id {quote(class_id)} (0..{len(labels) - 1} in label set "
                             f"{labels.name})")
    if class_name is not None:
        by_name = labels.by_name(class_name)
        if by_name is None:
            raise ValueError(f"unknown class name {quote(class_name, labels.classes)}; {labels.allowed()}")
    if by_id is not None and by_name is not None and by_id != by_name:
        raise ValueError(f"class id {by_id} is {labels.names[by_id]!r}, not {labels.names[by_name]!r}")
    if by_id is None and by_name is None:
        raise ValueError("no class")
    return by_id if by_id is not None else by_name  # type: ignore[return-value]


def read_predictions(path: Path, labels: LabelSet, known_images: set[str] | None = None,
                     ) -> tuple[pd.DataFrame, list[BadRow]]:
    """Read a prediction CSV in either form (module doc) into the canonical table.

    With ``known_images``, a prediction for an image that the ground truth does not list is
    a bad row (a mismatched file is more likely than a real image without any row).
    ``df.attrs['format']`` is the form.
    """
    csvt = read_csv_text(Path(path), "prediction")
    col = {_key(h): h for h in csvt.header}
    if "image_id" not in col:
        raise AnnotationInputError(f"prediction file {Path(path).name}: no image_id column")
    data = csvt.data
    bad: list[BadRow] = [BadRow(b.line, b.reason, "pred") for b in csvt.bad]
    out: dict[str, list] = {"line": [], "image_id": [], "class_id": [], "score": [], "box": []}

    def add(line: int, img: str, c: int, s: float, b) -> None:
        out["line"].append(line)
        out["image_id"].append(img)
        out["class_id"].append(c)
        out["score"].append(s)
        out["box"].append(b)

    def unknown_image(line: int, img: str) -> bool:
        if not img:
            bad.append(BadRow(line, "empty image_id", "pred"))
            return True
        if known_images is not None and img not in known_images:
            bad.append(BadRow(line, "image_id is not in the ground truth", "pred"))
            return True
        return False

    images = data[col["image_id"]].astype(str).str.strip().tolist()
    lines = csvt.lines.tolist()
    if "predictionstring" in col:
        fmt = "kaggle-submission"
        strings = data[col["predictionstring"]].astype(str).tolist()
        seen: dict[str, int] = {}
        for line, img, text in zip(lines, images, strings):
            if unknown_image(line, img):
                continue
            if img in seen:
                bad.append(BadRow(line, f"image_id repeated (first on line {seen[img]})", "pred"))
                continue
            seen[img] = line
            tokens = text.split()
            if len(tokens) % 6:
                bad.append(BadRow(line, f"{len(tokens)} tokens in PredictionString, not a multiple of 6 "
                                        f"(class score x_min y_min x_max y_max)", "pred"))
                continue
            parsed = []
            try:
                for k in range(0, len(tokens), 6):
                    where = f"box {k // 6 + 1}: " if len(tokens) > 6 else ""
                    try:
                        parsed.append((resolve_class(labels, tokens[k], None), parse_float(tokens[k + 1], "score"),
                                       parse_box(tokens[k + 2:k + 6])))
                    except ValueError as exc:
                        raise ValueError(where + str(exc)) from None
            except ValueError as exc:
                bad.append(BadRow(line, str(exc), "pred"))
                continue
            for c, s, b in parsed:
                add(line, img, c, s, b)
    else:
        fmt = "pred-boxes"
        box_cols = next((names for names in (BOX, SPINE_BOX) if all(n in col for n in names)), None)
        if ("class_id" not in col and "class_name" not in col) or "score" not in col or box_cols is None:
            raise AnnotationInputError(f"prediction file {Path(path).name}: expected image_id,PredictionString or "
                                       "image_id, class_id|class_name, score, x_min, y_min, x_max, y_max")
        ids = data[col["class_id"]].astype(str).tolist() if "class_id" in col else [None] * len(data)
        names = data[col["class_name"]].astype(str).tolist() if "class_name" in col else [None] * len(data)
        scores = data[col["score"]].astype(str).tolist()
        coords = data[[col[n] for n in box_cols]].astype(str).to_numpy().tolist()
        for line, img, ci, cn, sc, xy in zip(lines, images, ids, names, scores, coords):
            if unknown_image(line, img):
                continue
            try:
                c = resolve_class(labels, ci, cn)
                s = parse_float(sc, "score")
                b = NO_FINDING_BOX if c == labels.no_finding_id and not any(t.strip() for t in xy) else parse_box(xy)
            except ValueError as exc:
                bad.append(BadRow(line, str(exc), "pred"))
                continue
            add(line, img, c, s, b)
    boxes = np.asarray(out["box"], dtype=np.float64).reshape(-1, 4)
    df = pd.DataFrame({
        "line": np.asarray(out["line"], dtype=np.int64),
        "image_id": pd.array(out["image_id"], dtype="string"),
        "reader": pd.array([None] * len(out["line"]), dtype="string"),
        "label": pd.array([labels.names[c] for c in out["class_id"]], dtype="string"),
        "class_id": pd.array(out["class_id"], dtype="Int64"),
        "score": np.asarray(out["score"], dtype=np.float64),
    })
    for j, b in enumerate(BOX):
        df[b] = boxes[:, j]
    df.attrs.update(format=fmt, label_set=labels, labels=list(labels.names))
    bad.sort(key=lambda r: r.line)
    return df, bad
