"""Training samples from a release written by `vindr release`: its decoded images and COCO
files, or — when the release has no decoded images — its DICOM files decoded on the fly
through `vindr decode`'s pipeline into a cache folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vindr_cli.baseline.data import Sample, samples_from_coco
from vindr_cli.errors import RequestError
from vindr_cli.pixels.batch import decode_tree
from vindr_cli.pixels.resize import SizeSpec
from vindr_cli.pixels.task import DecodeConfig
from vindr_cli.tables import read_rows

SPLITS = ("train", "test")


class ReleaseDataError(RequestError):
    """A release the baseline cannot read (exit 2; one line)."""


def _hashes(release: Path) -> dict[str, str]:
    images = pd.read_csv(release / "images.csv", dtype=str)
    return dict(zip(images["image_id"], images["pixel_sha256"]))


def release_samples(release: Path, *, cache: Path, size: int, workers: int = 1
                    ) -> tuple[list[Sample], list[Sample], list[str], str]:
    """(train samples, test samples, classes, where the pixels came from)."""
    release = release.resolve()
    for name in ("images.csv", "annotations/coco_train.json", "annotations/coco_test.json"):
        if not (release / name).is_file():
            raise ReleaseDataError(f"RELEASE has no {name} (is it the output of vindr release?)")
    hashes = _hashes(release)
    images = pd.read_csv(release / "images.csv", dtype=str)
    decoded = images["image"].notna().all() if "image" in images.columns else False
    out: dict[str, list[Sample]] = {}
    classes: list[str] | None = None
    for split in SPLITS:
        coco = release / "annotations" / f"coco_{split}.json"
        if decoded:
            samples, classes = samples_from_coco(coco, release / split / "images", classes=classes)
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
    rows = {Path(r["input"]).stem: r for r in read_rows(target / "images.parquet") if r["status"] == "ok"}
    dicom_samples, classes = samples_from_coco(coco, release / split / "dicom", classes=classes)
    samples = []
    for s in dicom_samples:
        r = rows.get(s.image_id)
        if r is None:
            raise ReleaseDataError(f"{split} image {s.image_id} could not be decoded")
        scale = np.array([r["scale_x"], r["scale_y"], r["scale_x"], r["scale_y"]], dtype=np.float32)
        samples.append(Sample(target / r["output"], s.boxes * scale, s.labels, s.abnormal, image_id=s.image_id))
    return samples, classes
