"""Annotation exports of a release: VinDr CSV layout, Kaggle train.csv form, COCO JSON,
YOLO txt. Input is the canonical table of :mod:`vindr_cli.annotations` (ids already the
release's, names in the label set's published spelling); class ids are positions in the
release's label set (labels.json). Boxes are in DICOM pixel coordinates and are scaled to
the decoded images (when the release has them) for COCO and YOLO."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vindr_cli.annotations import BOX, LabelSet, to_published
from vindr_cli.evaluate.metrics import weighted_boxes_fusion
from vindr_cli.atomic import atomic_write


@dataclass(frozen=True)
class Layout:
    kind: str                      # "cxr" or "spinexr"
    label: str                     # column holding the class name in the published CSV
    boxes: tuple[str, str, str, str]
    schema: str                    # schemas/release/<schema>.json for the VinDr CSV
    form: str                      # the annotations.read form


CXR = Layout("cxr", "class_name", ("x_min", "y_min", "x_max", "y_max"), "vindr_cxr_annotations", "cxr-boxes")
SPINE = Layout("spinexr", "lesion_type", ("xmin", "ymin", "xmax", "ymax"), "vindr_spinexr_annotations", "spinexr")


def layout_for(form: str) -> Layout:
    return SPINE if form == "spinexr" else CXR


def vindr_csv(ann: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """Canonical rows in the VinDr CSV layout of the form."""
    return to_published(ann, layout.form)


def coco(df: pd.DataFrame, labels: LabelSet, images: pd.DataFrame, *, fuse: bool) -> dict:
    """COCO detection dict. ``images``: image_id, file_name, width, height, scale_x, scale_y
    (the frame the boxes should be in). With ``fuse``, each class's reader boxes in an
    image are fused (WBF, IoU 0.4) and ``score`` = number of agreeing readers."""
    cats = [{"id": i, "name": n} for i, n in enumerate(labels.classes) if n != labels.no_finding]
    out_images, anns = [], []
    index = {}
    for k, r in enumerate(images.itertuples(index=False), start=1):
        index[r.image_id] = (k, r)
        out_images.append({"id": k, "image_id": r.image_id, "file_name": r.file_name,
                           "width": int(r.width), "height": int(r.height)})
    boxed = df[(df["label"] != labels.no_finding) & df["class_id"].notna()].dropna(subset=list(BOX))
    for (image_id, cid), g in boxed.groupby(["image_id", "class_id"], sort=True):
        if image_id not in index:
            continue
        k, r = index[image_id]
        b = g[list(BOX)].to_numpy(dtype=float) * np.array([r.scale_x, r.scale_y, r.scale_x, r.scale_y])
        if fuse:
            fused, _, cluster = weighted_boxes_fusion(b, None, 0.4)
            counts = np.bincount(cluster, minlength=len(fused))
            items = [(fb, int(c)) for fb, c in zip(fused, counts)]
        else:
            items = [(bb, 1) for bb in b]
        for bb, readers in items:
            x0, y0, x1, y1 = (float(v) for v in bb)
            x0, y0 = max(0.0, x0), max(0.0, y0)
            x1, y1 = min(float(r.width), x1), min(float(r.height), y1)
            w, h = max(0.0, x1 - x0), max(0.0, y1 - y0)
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": int(cid),
                         "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                         "area": round(w * h, 2), "iscrowd": 0, "readers": readers,
                         **({"score": readers} if fuse else {})})
    return {"info": {"description": "vindr release", "boxes": "pixels of the listed image files"},
            "images": out_images, "annotations": anns, "categories": cats}


def write_json(obj: dict, path: Path) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(obj, indent=1).encode("utf-8"))


def yolo(coco_dict: dict, labels_dir: Path) -> int:
    """One YOLO txt per image (class cx cy w h, normalised); images with no box get an
    empty file (a negative example). Returns the number of files written."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    by_image: dict[int, list[str]] = {im["id"]: [] for im in coco_dict["images"]}
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco_dict["images"]}
    for a in coco_dict["annotations"]:
        w, h = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        by_image[a["image_id"]].append(
            f"{a['category_id']} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}")
    names = {im["id"]: im["image_id"] for im in coco_dict["images"]}
    for k, lines in by_image.items():
        with atomic_write(labels_dir / f"{names[k]}.txt") as f:
            f.write(("\n".join(lines) + ("\n" if lines else "")).encode())
    return len(by_image)


def yolo_images(images: pd.DataFrame, root: Path, images_dir: Path) -> int:
    """Ultralytics' layout: each decoded image of ``images`` (paths relative to ``root``)
    also at ``images_dir/<image_id><ext>`` (a hard link, else a copy), so that its label is
    found by Ultralytics' rule (the last ``/images/`` made ``/labels/``, suffix ``.txt``)."""
    import os
    import shutil

    images_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for image_id, rel in zip(images["image_id"], images["image"]):
        if not isinstance(rel, str):
            continue
        src = root / rel
        dst = images_dir / f"{image_id}{src.suffix}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        n += 1
    return n


def yolo_label_path(image: str) -> str:
    """Ultralytics' rule (``img2label_paths``): the image path with its last ``/images/``
    replaced by ``/labels/`` and its suffix by ``.txt``."""
    head, sep, tail = image.rpartition("/images/")
    if not sep:
        raise ValueError("not under an images/ folder")
    return f"{head}/labels/{tail.rsplit('.', 1)[0]}.txt"


def data_yaml(labels: LabelSet) -> str:
    """yolo/data.yaml. No ``path:`` key on purpose: Ultralytics then takes the folder of this
    file as the dataset root (a relative ``path`` would be resolved from the working
    directory, an absolute one would break when the release is moved). VinDr releases have
    no validation side, so ``val`` is the test side. Class ids are positions in the label
    set ("No finding" has no boxes and no name here)."""
    names = "".join(f"  {i}: {json.dumps(n, ensure_ascii=False)}\n"
                    for i, n in enumerate(labels.classes) if n != labels.no_finding)
    return ("# vindr release: Ultralytics YOLO dataset; the dataset root is this file's folder\n"
            "train: images/train\nval: images/test\ntest: images/test\nnames:\n" + names)


def write_data_yaml(path: Path, labels: LabelSet) -> None:
    with atomic_write(path) as f:
        f.write(data_yaml(labels).encode("utf-8"))


def read_data_yaml(path: Path) -> dict:
    """The keys vindr writes in data.yaml (train/val/test folders, names), read without a
    YAML library; a line it does not understand is ignored by this reader."""
    out: dict = {"names": {}}
    section = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("  ") and section == "names":
            k, _, v = line.strip().partition(":")
            try:
                out["names"][int(k)] = json.loads(v.strip()) if v.strip().startswith('"') else v.strip()
            except ValueError:
                continue
            continue
        k, _, v = line.partition(":")
        section = k.strip()
        if v.strip():
            out[section] = v.strip()
    return out


def kaggle(df: pd.DataFrame) -> pd.DataFrame:
    """VinDr-CXR rows in the Kaggle train.csv form (class_id = position in the release's label set)."""
    return to_published(df, "cxr-boxes", class_id=True)
