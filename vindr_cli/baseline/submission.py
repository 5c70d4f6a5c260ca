"""The baseline's test-split predictions as a VinBigData (Kaggle) submission, the file
``vindr evaluate --pred`` reads: ``image_id,PredictionString`` with one row per test image and
``class score x_min y_min x_max y_max`` repeated in the string.

* Boxes are in the release's **DICOM pixels** — the coordinates of
  ``RELEASE/annotations/kaggle_test.csv`` and ``annotations_test.csv`` — not in the decoded
  images' pixels the model saw: each box is divided by the image's ``scale_x``/``scale_y``
  (``images.csv``, or the on-the-fly decode's factors), so ``vindr evaluate --gt
  RELEASE/annotations/kaggle_test.csv`` scores it as it stands.
* ``class`` is the class's id in the release's label set (its position in ``labels.json``),
  not the baseline's own index (which leaves "No finding" out).
* Every image also gets ``<no finding id> <1 - abnormality score> 0 0 1 1`` when the label set
  has a "No finding" class (the competition's convention: an image with no box and an
  abnormality score of 0 reads ``14 1 0 0 1 1``).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vindr_cli.atomic import atomic_write

FILE = "test_predictions.csv"
HEADER = ("image_id", "PredictionString")


@dataclass(frozen=True)
class SubmissionSpec:
    """How the baseline's classes map to the label set's ids."""
    class_ids: tuple[int, ...]          # label-set id of the baseline's class i
    no_finding_id: int | None = None    # the label set's "No finding" id, if it has one


def submission_spec(label_set, classes: Sequence[str]) -> SubmissionSpec:
    """Ids from ``label_set`` (a :class:`~vindr_cli.annotations.LabelSet`), else the baseline's
    own positions (a release without labels.json: no "No finding" row is written then)."""
    if label_set is None:
        return SubmissionSpec(tuple(range(len(classes))), None)
    pos = {n: i for i, n in enumerate(label_set.classes)}
    return SubmissionSpec(tuple(pos[n] for n in classes), label_set.no_finding_id)


def _num(x: float, nd: int = 6) -> str:
    s = f"{float(x):.{nd}f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def prediction_string(pred, scale: tuple[float, float], spec: SubmissionSpec) -> str:
    """One image's PredictionString (``pred``: a :class:`~vindr_cli.baseline.train.Prediction`
    in decoded-image pixels; ``scale``: decoded pixels per DICOM pixel, x and y)."""
    sx, sy = (float(v) if v and np.isfinite(v) and v > 0 else 1.0 for v in scale)
    boxes = np.asarray(pred.boxes, dtype=np.float64).reshape(-1, 4) / np.array([sx, sy, sx, sy])
    boxes = np.maximum(boxes, 0.0)
    parts = []
    for b, s, c in zip(boxes, np.asarray(pred.scores).reshape(-1), np.asarray(pred.labels).reshape(-1)):
        parts.append(" ".join([str(spec.class_ids[int(c)]), _num(s), *(_num(v, 2) for v in b)]))
    if spec.no_finding_id is not None:
        abn = pred.abnormal_score if pred.abnormal_score is not None else 0.0
        normal = min(1.0, max(0.0, 1.0 - float(abn)))
        parts.append(f"{spec.no_finding_id} {_num(normal)} 0 0 1 1")
    return " ".join(parts)


def write_submission(path: Path | str, samples: Sequence, preds: Sequence, spec: SubmissionSpec) -> Path:
    """Write the submission atomically (temp name, then rename): one row per sample, in order."""
    path = Path(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for s, p in zip(samples, preds, strict=True):
        w.writerow([s.image_id, prediction_string(p, getattr(s, "scale", (1.0, 1.0)), spec)])
    with atomic_write(path) as f:
        f.write(buf.getvalue().encode("utf-8"))
    return path


def ground_truth_file(release: Path | str) -> Path | None:
    """The release's test ground truth ``vindr evaluate --gt`` takes: the Kaggle form (class
    ids) for a CXR release, else the VinDr layout (SpineXR)."""
    ann = Path(release) / "annotations"
    for name in ("kaggle_test.csv", "annotations_test.csv"):
        if (ann / name).is_file():
            return ann / name
    return None
