"""Training samples from a release written by `vindr release`: its decoded images and COCO
files, or — when the release has no decoded images — its DICOM files decoded on the fly
through `vindr decode`'s pipeline into a cache folder."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from vindr_cli.annotations import LabelSet, load_labels, read_labels_json
from vindr_cli.baseline.data import Sample, samples_from_coco
from vindr_cli.errors import RequestError
from vindr_cli.pixels.batch import decode_tree, input_paths
from vindr_cli.pixels.resize import SizeSpec
from vindr_cli.pixels.task import DecodeConfig
from vindr_cli.tables import read_rows

SPLITS = ("train", "test")


class ReleaseDataError(RequestError):
    """A release the baseline cannot read (exit 2, one line)."""


def release_label_set(release: Path, labels=None) -> LabelSet | None:
    """``labels`` (--labels) if given, else the label set the release recorded in labels.json."""
    if labels is not None:
        return load_labels(labels)
    p = Path(release) / "labels.json"
    return read_labels_json(p) if p.is_file() else None


def _check_categories(coco: Path, label_set: LabelSet) -> None:
    names = [c.get("name") for c in json.loads(coco.read_text()).get("categories", [])]
    unknown = [n for n in names if n not in label_set.classes]
    if unknown:
        raise ReleaseDataError(f"{coco.name}: {len(unknown)} categor{'y is' if len(unknown) == 1 else 'ies are'} "
                               f"not in the label set ({label_set.allowed()})")


def _hashes(release: Path) -> dict[str, str]:
    images = pd.read_csv(release / "images.csv", dtype=str)
    return dict(zip(images["image_id"], images["pixel_sha256"]))


def _scales(images: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """images.csv's scale_x/scale_y (decoded pixels per DICOM pixel) per image_id; 1 where absent."""
    if not {"scale_x", "scale_y"} <= set(images.columns):
        return {}
    sx = pd.to_numeric(images["scale_x"], errors="coerce").fillna(1.0)
    sy = pd.to_numeric(images["scale_y"], errors="coerce").fillna(1.0)
    return {i: (float(x), float(y)) for i, x, y in zip(images["image_id"], sx, sy)}


def release_samples(release: Path, *, cache: Path, size: int, workers: int = 1, labels=None
                    ) -> tuple[list[Sample], list[Sample], list[str], str]:
    """(train samples, test samples, classes, where the pixels came from).

    The classes are the release's label set (labels.json, or ``labels``) in its id order,
    "No finding" left out; a COCO category outside the set is a :class:`ReleaseDataError`."""
    release = release.resolve()
    for name in ("images.csv", "annotations/coco_train.json", "annotations/coco_test.json"):
        if not (release / name).is_file():
            raise ReleaseDataError(f"RELEASE has no {name} (is it the output of vindr release?)")
    hashes = _hashes(release)
    images = pd.read_csv(release / "images.csv", dtype=str)
    decoded = images["image"].notna().all() if "image" in images.columns else False
    out: dict[str, list[Sample]] = {}
    label_set = release_label_set(release, labels)
    classes: list[str] | None = None
    if label_set is not None:
        classes = [n for n in label_set.classes if n != label_set.no_finding]
    for split in SPLITS:
        coco = release / "annotations" / f"coco_{split}.json"
        if label_set is not None:
            _check_categories(coco, label_set)
        if decoded:
            samples, classes = samples_from_coco(coco, release / split / "images", classes=classes)
            scales = _scales(images)
            for s in samples:
                s.scale = scales.get(s.image_id, (1.0, 1.0))
        else:
            samples, classes = _decode_on_the_fly(release, split, coco, cache, size, workers, classes)
        for s in samples:
            s.pixel_hash = hashes.get(s.image_id, s.pixel_hash)
        out[split] = samples
    return out["train"], out["test"], list(classes or []), "release images" if decoded else "decoded from DICOM"


def _decode_on_the_fly(release: Path, split: str, coco: Path, cache: Path, size: int, workers: int,
                       classes: list[str] | None) -> tuple[list[Sample], list[str]]:
    target = cache / split
    cfg = DecodeConfig(output=str(target), size=SizeSpec(long_side=size))
    decode_tree(release / split / "dicom", target, cfg, workers=workers)
    rels = input_paths(target, release / split / "dicom")    # not an anonymize OUTPUT: rows named by keyed hashes
    rows = {Path(rels.get(r["input"], r["input"])).stem: r for r in read_rows(target / "images.parquet")
            if r["status"] == "ok"}
    dicom_samples, classes = samples_from_coco(coco, release / split / "dicom", classes=classes)
    samples = []
    for s in dicom_samples:
        r = rows.get(s.image_id)
        if r is None:
            raise ReleaseDataError(f"{split} image {s.image_id} could not be decoded")
        scale = np.array([r["scale_x"], r["scale_y"], r["scale_x"], r["scale_y"]], dtype=np.float32)
        samples.append(Sample(target / r["output"], s.boxes * scale, s.labels, s.abnormal, image_id=s.image_id,
                              scale=(float(r["scale_x"]), float(r["scale_y"]))))
    return samples, classes


def release_submission(release: Path, classes: list[str], labels=None):
    """(the :class:`~vindr_cli.baseline.submission.SubmissionSpec` for the release's label set,
    the ``vindr evaluate`` arguments that score ``test_predictions.csv``: --gt and --labels)."""
    from vindr_cli.baseline.submission import ground_truth_file, submission_spec

    label_set = release_label_set(release, labels)
    spec = submission_spec(label_set, classes)
    gt = ground_truth_file(release)
    lab = labels if labels is not None else (Path(release) / "labels.json" if label_set is not None else None)
    args = (["--gt", str(gt)] if gt else []) + (["--labels", str(lab)] if lab is not None else [])
    return spec, shlex.join(args)     # quoted: a path with a blank pastes as one argument
