"""``vindr release``: materialise a release from an anonymized tree and a split.

RELEASE/
  README.md                 datasheet: counts per label and side, split seed, de-identification
  labels.json               the label set: name, source, class names and ids (annotations.labels)
  split.csv, split_report.json
  images.csv                one row per image (schemas/release/images.json)
  train/dicom/<image_id>.dicom   (hard links when on the same file system, else copies)
  train/images/<image_id>.png    (with --images)
  test/...
  annotations/annotations_{train,test}.csv   VinDr layout (DICOM pixel coordinates)
  annotations/kaggle_{train,test}.csv        Kaggle train.csv form (VinDr-CXR only)
  annotations/coco_{train,test}.json         COCO (decoded-image pixels when --images)
  yolo/{train,test}/labels/<image_id>.txt, yolo/data.yaml
The release is built in a hidden folder beside RELEASE and renamed into place at the end.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vindr_cli import __version__
from vindr_cli.annotations import BadRows, LabelSet, load_labels, read_annotations, read_labels_json, \
    to_published, write_labels_json
from vindr_cli.errors import RequestError
from vindr_cli.release import exports
from vindr_cli.release.datasheet import datasheet
from vindr_cli.release.tables import write_csv
from vindr_cli.atomic import atomic_write
from vindr_cli.runner.sources import enclosing_output
from vindr_cli.runner.state import Settings
from vindr_cli.tables import read_rows

SPLITS = ("train", "test")


class ReleaseError(RequestError):
    """A release that cannot be built (exit 2, one line)."""


@dataclass
class ReleaseSummary:
    images: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, int] = field(default_factory=dict)
    linked: int = 0
    copied: int = 0
    path: Path | None = None
    label_set: str = ""
    bad_rows: BadRows = field(default_factory=BadRows)


def _place(src: Path, dst: Path, summary: ReleaseSummary) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        summary.linked += 1
    except OSError:
        shutil.copy2(src, dst)
        summary.copied += 1


def _decoded(images_dir: Path | None) -> dict[str, dict]:
    """Decode rows by the anonymized file they came from (first frame)."""
    if images_dir is None:
        return {}
    table = images_dir / "images.parquet"
    if not table.is_file():
        raise ReleaseError("--images folder has no images.parquet (run vindr decode on the anonymized tree)")
    return {r["input"]: r for r in read_rows(table) if r["status"] == "ok" and (r["frame"] or 0) == 0}


def release_labels(split_dir: Path, labels=None) -> LabelSet | None:
    """The label set of a release: ``labels`` (--labels) if given, else the one `vindr split`
    recorded in DIR/labels.json, else None (the form's default)."""
    if labels is not None:
        return load_labels(labels)
    recorded = Path(split_dir) / "labels.json"
    return read_labels_json(recorded) if recorded.is_file() else None


def build_release(anon_dir: Path, split_dir: Path, out: Path, *, images_dir: Path | None = None,
                  fuse_readers: bool = False, labels=None) -> ReleaseSummary:
    """Build RELEASE (module doc). ``labels``: a label set (name, TOML file) overriding the
    one `vindr split` recorded. Raises :class:`ReleaseError` (exit 2) for a request that
    cannot run; bad annotation rows are left out and listed in ``summary.bad_rows``."""
    anon_dir, split_dir, out = anon_dir.resolve(), split_dir.resolve(), out.resolve()
    if out.exists():
        raise ReleaseError("RELEASE already exists; choose a new folder")
    if enclosing_output(out) is not None:
        raise ReleaseError("RELEASE must not be inside another vindr output folder")
    if not (anon_dir / "manifest.parquet").is_file():
        raise ReleaseError("ANON_DIR has no manifest.parquet (is it the output of vindr anonymize?)")
    if not (split_dir / "split.csv").is_file():
        raise ReleaseError("--split folder has no split.csv (run vindr split first)")
    label_set = release_labels(split_dir, labels)
    manifest = {r["image_id"]: r for r in read_rows(anon_dir / "manifest.parquet") if r["status"] == "ok"}
    split = pd.read_csv(split_dir / "split.csv", dtype=str)
    missing = set(split["image_id"]) - set(manifest)
    if missing:
        raise ReleaseError(f"{len(missing)} image(s) of split.csv are not in the anonymized tree's manifest")
    decoded = _decoded(images_dir)
    if images_dir is not None:
        lacking = [i for i in split["image_id"] if manifest[i]["output"] not in decoded]
        if lacking:
            raise ReleaseError(f"{len(lacking)} image(s) have no decoded image in --images")

    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    summary = ReleaseSummary(path=out)
    try:
        rows = _place_images(split, manifest, decoded, anon_dir, images_dir, stage, summary)
        images = pd.DataFrame(rows)
        write_csv(images, "images", stage / "images.csv")
        ann_path = split_dir / "annotations.csv"
        classes: tuple[str, ...] = ()
        counts = {}
        if ann_path.is_file():
            label_set, classes, counts = _annotations(ann_path, label_set, images, stage, fuse_readers, summary)
        for name in ("split.csv", "split_report.json", "split_report.png"):
            if (split_dir / name).is_file():
                shutil.copy2(split_dir / name, stage / name)
        if label_set is not None:
            write_labels_json(stage / "labels.json", label_set)
            summary.label_set = label_set.name
        else:
            write_labels(stage / "labels.json", classes)
        deid = _deid_settings(anon_dir)
        report = json.loads((split_dir / "split_report.json").read_text()) if (split_dir / "split_report.json").is_file() else {}
        text = datasheet(summary=summary, counts=counts, classes=classes, split_report=report, deid=deid,
                         decoded=images_dir is not None, fused=fuse_readers, version=__version__)
        with atomic_write(stage / "README.md") as f:
            f.write(text.encode("utf-8"))
        os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return summary


def _place_images(split, manifest, decoded, anon_dir, images_dir, stage, summary) -> list[dict]:
    rows = []
    for r in split.itertuples(index=False):
        if r.split not in SPLITS:
            raise ReleaseError("split.csv has a split other than train/test")
        m = manifest[r.image_id]
        dicom = f"{r.split}/dicom/{r.image_id}.dicom"
        _place(anon_dir / m["output"], stage / dicom, summary)
        row = {"image_id": r.image_id, "split": r.split, "study_id": r.study_id, "patient_id": r.patient_id,
               "dicom": dicom, "image": None, "rows": m["rows"], "columns": m["columns"],
               "image_rows": None, "image_cols": None, "scale_x": None, "scale_y": None,
               "pixel_sha256": m["pixel_sha256"]}
        d = decoded.get(m["output"])
        if d is not None:
            ext = Path(d["output"]).suffix
            image = f"{r.split}/images/{r.image_id}{ext}"
            _place(images_dir / d["output"], stage / image, summary)
            row.update(image=image, image_rows=d["out_rows"], image_cols=d["out_cols"],
                       scale_x=d["scale_x"], scale_y=d["scale_y"])
        rows.append(row)
        summary.images[r.split] = summary.images.get(r.split, 0) + 1
    return rows


def _annotations(path, label_set, images, stage, fuse, summary):
    """Split's annotations.csv through the one reader, then every export from the canonical table."""
    ann, bad = read_annotations(path, labels=label_set)
    summary.bad_rows = bad
    label_set = ann.attrs["label_set"]
    form = ann.attrs["format"]
    side = images.set_index("image_id")["split"]
    ann = ann[ann["image_id"].isin(side.index)]
    (stage / "annotations").mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    if form == "cxr-image-labels":
        vocab = ann.attrs["labels"]
        for s in SPLITS:
            part = ann[ann["image_id"].map(side) == s]
            part.attrs.update(ann.attrs)
            write_csv(to_published(part, form), "vindr_cxr_image_labels",
                      stage / "annotations" / f"image_labels_{s}.csv")
            per_label = part.dropna(subset=["label"]).groupby("label")["image_id"].nunique()
            for name in vocab:
                counts.setdefault(name, {})[s] = int(per_label.get(name, 0))
        return label_set, tuple(vocab), counts
    layout = exports.layout_for(form)
    for s in SPLITS:
        part = ann[ann["image_id"].map(side) == s]
        write_csv(exports.vindr_csv(part, layout), layout.schema, stage / "annotations" / f"annotations_{s}.csv")
        if layout.kind == "cxr":
            write_csv(exports.kaggle(part), "kaggle_train", stage / "annotations" / f"kaggle_{s}.csv")
        imgs = images[images["split"] == s]
        frame = pd.DataFrame({
            "image_id": imgs["image_id"],
            "file_name": [f"{i}{Path(p).suffix}" if isinstance(p, str) else f"{i}.dicom"
                          for i, p in zip(imgs["image_id"], imgs["image"])],
            "width": imgs["image_cols"].fillna(imgs["columns"]).astype(int),
            "height": imgs["image_rows"].fillna(imgs["rows"]).astype(int),
            "scale_x": imgs["scale_x"].fillna(1.0).astype(float),
            "scale_y": imgs["scale_y"].fillna(1.0).astype(float),
        })
        c = exports.coco(part, label_set, frame, fuse=fuse)
        exports.write_json(c, stage / "annotations" / f"coco_{s}.json")
        exports.yolo(c, stage / "yolo" / s / "labels")
        summary.boxes[s] = len(c["annotations"])
        per_label = part.groupby("label")["image_id"].nunique()
        for name, n in per_label.items():
            counts.setdefault(name, {})[s] = int(n)
    yaml = "path: ..\ntrain: train/images\nval: test/images\nnames:\n" + "".join(
        f"  {i}: {n}\n" for i, n in enumerate(label_set.classes) if n != label_set.no_finding)
    with atomic_write(stage / "yolo" / "data.yaml") as f:
        f.write(yaml.encode())
    return label_set, label_set.classes, counts


def write_labels(path: Path, classes) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps({"classes": [{"id": i, "name": n} for i, n in enumerate(classes)]}, indent=1).encode())


def _deid_settings(anon_dir: Path) -> dict:
    """What the datasheet says of the de-identification: anonymize's checked settings record
    (``runner.state.Settings``; none, or damaged, → the datasheet says unknown)."""
    try:
        s = Settings(anon_dir, "anonymize").previous() or {}
    except RequestError:
        return {}
    return {k: s.get(k) for k in ("tool", "profile", "profile_source", "options", "dates", "uid_root")}
