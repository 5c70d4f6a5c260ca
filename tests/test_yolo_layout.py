"""The YOLO export is laid out so Ultralytics finds every label: its rule
(``ultralytics.data.utils.img2label_paths``) is the image path with the last ``/images/``
replaced by ``/labels/`` and the suffix by ``.txt``; ``data.yaml`` has no ``path`` key, so
its own folder is the dataset root. The rule is written out here as Ultralytics writes it
(not imported from vindr), and data.yaml is read with PyYAML as Ultralytics reads it."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import yaml

from helpers import run_cli
from vindr_cli.release.validate import validate_release

IMG_FORMATS = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"}


def img2label_paths(img_paths: list[str]) -> list[str]:
    """Ultralytics' rule, verbatim in substance."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return [sb.join(x.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt" for x in img_paths]


def _dataset(data_yaml: Path) -> dict:
    data = yaml.safe_load(data_yaml.read_text())
    assert "path" not in data            # a relative path would resolve from the working directory
    root = data_yaml.parent.resolve()    # what Ultralytics uses when there is no path key
    out = {}
    for key in ("train", "val", "test"):
        folder = (root / data[key]).resolve()
        out[key] = sorted(str(p) for p in folder.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)
    out["names"] = data["names"]
    return out


def test_every_image_in_data_yaml_has_its_label_file(pipeline):
    _, release = pipeline
    ds = _dataset(release / "yolo" / "data.yaml")
    images = pd.read_csv(release / "images.csv", dtype=str)
    assert len(ds["train"]) == (images["split"] == "train").sum() > 0
    assert len(ds["val"]) == (images["split"] == "test").sum() > 0
    for key in ("train", "val", "test"):
        for img, label in zip(ds[key], img2label_paths(ds[key])):
            assert Path(label).is_file(), (key, img)
    labels = json.loads((release / "labels.json").read_text())["classes"]
    assert ds["names"] == {c["id"]: c["name"] for c in labels if c["name"] != "No finding"}


def test_label_lines_are_the_coco_boxes_normalised(pipeline):
    _, release = pipeline
    empty = 0
    for side in ("train", "test"):
        coco = json.loads((release / "annotations" / f"coco_{side}.json").read_text())
        by_image = {im["id"]: [] for im in coco["images"]}
        for a in coco["annotations"]:
            by_image[a["image_id"]].append(a)
        for im in coco["images"]:
            img = release / "yolo" / "images" / side / f"{im['image_id']}.png"
            assert img.is_file() and img.read_bytes() == (release / side / "images" / img.name).read_bytes()
            label = Path(img2label_paths([str(img)])[0])
            lines = label.read_text().splitlines()
            anns = by_image[im["id"]]
            assert len(lines) == len(anns)
            empty += not lines
            for line, a in zip(lines, anns):
                cid, cx, cy, w, h = line.split()
                x, y, bw, bh = a["bbox"]
                assert int(cid) == a["category_id"]
                assert abs(float(cx) - (x + bw / 2) / im["width"]) < 1e-5
                assert abs(float(h) - bh / im["height"]) < 1e-5
                assert all(0 <= float(v) <= 1 for v in (cx, cy, w, h))
    # an image with no box (No finding) has an empty label file; which side it lands on follows
    # the split of a fresh key, so count both sides
    assert empty > 0


def test_validate_catches_a_missing_label_and_a_stray_image(pipeline, tmp_path):
    _, release = pipeline
    bad = tmp_path / "r1"
    shutil.copytree(release, bad)
    victim = next((bad / "yolo" / "labels" / "train").glob("*.txt"))
    victim.unlink()
    found = validate_release(bad, check_hashes=False).findings
    assert any(f.kind == "yolo" and "no label file" in f.detail for f in found), found
    stray = tmp_path / "r2"
    shutil.copytree(release, stray)
    png = next((stray / "yolo" / "images" / "test").glob("*.png"))
    shutil.copy(png, stray / "yolo" / "images" / "test" / "0123456789abcdef0123456789abcdef.png")
    found = validate_release(stray, check_hashes=False).findings
    assert any(f.kind == "yolo" and "images/test" in f.where for f in found), found
    broken = tmp_path / "r3"
    shutil.copytree(release, broken)
    label = next(p for p in (broken / "yolo" / "labels" / "train").glob("*.txt") if p.read_text())
    label.write_text("99 0.5 0.5 1.7 0.1\n")
    kinds = {(f.kind, f.detail.split(":")[-1].strip()[:12]) for f in validate_release(broken, check_hashes=False).findings}
    assert ("yolo", "box not 4 nu") in kinds and any(k == "unknown-class" for k, _ in kinds)


def test_release_without_decoded_images_has_labels_and_no_data_yaml(pipeline, tmp_path):
    base, _ = pipeline
    out = tmp_path / "nodecode"
    run_cli("release", base / "anon", "--split", base / "split", "-o", out)
    assert not (out / "yolo" / "data.yaml").exists() and not (out / "yolo" / "images").exists()
    images = pd.read_csv(out / "images.csv", dtype=str)
    for side in ("train", "test"):
        have = {p.stem for p in (out / "yolo" / "labels" / side).glob("*.txt")}
        assert have == set(images.loc[images["split"] == side, "image_id"])
    p = run_cli("validate", out, "--no-hash", check=False)
    assert p.returncode == 0, p.stdout
