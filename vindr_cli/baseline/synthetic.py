"""A synthetic, release-like detection dataset for tests and benchmarks.

Each image is radiograph-like noise (a smooth gradient, a few broad soft blobs, coarse texture,
fine noise and a slight vignette; the background's level, contrast and polarity vary from image
to image while a lesion keeps its own polarity) with zero to ``max_lesions`` planted lesions.
Lesion classes differ by shape and polarity: bright ellipse, dark ellipse, bright rectangle,
bright ring, bright cross, dark rectangle, dark ring, dark cross (the first ``n_classes``). An
image with no lesion is normal (``abnormal = 0``).

Images are written as grayscale PNGs (8- and 16-bit alternating by default) under
``out_dir/images/{train,test}/`` with COCO files ``out_dir/{train,test}.json`` beside them, and
returned as :class:`~vindr_cli.baseline.data.Sample` lists. Everything is a pure function of
``seed`` on one machine; the float rendering (exp, cos, Pillow's bicubic resize) may round a
pixel to the next grey level on another CPU or numpy build, so tests compare these images only
within a run and judge training on them with thresholds that have margin, never byte for byte
with stored values (unlike ``sample_dicoms/``, whose generator is integer-only). ``leak`` makes that many test images exact pixel copies of train images (for the
duplicate check).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vindr_cli.baseline.data import Sample

__all__ = ["SYNTHETIC_CLASSES", "SyntheticRelease", "make_synthetic_release", "render_image"]

SYNTHETIC_CLASSES = ("Bright nodule", "Dark cyst", "Bright plaque", "Ring lesion", "Cross marker", "Dark block",
                     "Dark ring", "Dark cross")


@dataclass
class SyntheticRelease:
    root: Path
    classes: list[str]
    train: list[Sample]
    test: list[Sample]
    train_json: Path
    test_json: Path


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys /= h
    xs /= w
    theta = rng.uniform(0, 2 * np.pi)
    img = 0.25 * ((np.cos(theta) * xs + np.sin(theta) * ys) - 0.5)
    for _ in range(int(rng.integers(2, 5))):  # broad soft blobs ("lung fields", "mediastinum")
        cx, cy = rng.uniform(0.1, 0.9, 2)
        sx, sy = rng.uniform(0.12, 0.35, 2)
        img += rng.uniform(-0.2, 0.2) * np.exp(-((xs - cx) ** 2 / (2 * sx * sx) + (ys - cy) ** 2 / (2 * sy * sy)))
    img -= 0.15 * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2)  # vignette
    # coarse texture: upsampled low-resolution noise
    small = rng.normal(0, 1, (max(2, h // 8), max(2, w // 8))).astype(np.float32)
    coarse = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))
    img += 0.025 * coarse
    return img.astype(np.float32)


def _lesion(kind: int, h: int, w: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """Signed intensity pattern (peak +-1) of one lesion whose bounding box is ``box``."""
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys += 0.5
    xs += 0.5
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    r = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    soft = np.clip((1.0 - r) / 0.25, 0, 1)               # ellipse with a soft rim
    rect = ((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).astype(np.float32)
    if kind == 0:      # bright ellipse
        return soft
    if kind == 1:      # dark ellipse
        return -soft
    if kind == 2:      # bright rectangle
        return rect
    if kind == 3:      # ring
        return np.clip(1.0 - np.abs(r - 0.8) / 0.2, 0, 1)
    if kind == 4:      # cross
        bx, by = max(rx * 0.3, 1.0), max(ry * 0.3, 1.0)
        return rect * ((np.abs(xs - cx) < bx) | (np.abs(ys - cy) < by)).astype(np.float32)
    if kind == 5:      # dark rectangle
        return -rect
    if kind in (6, 7):  # dark ring, dark cross
        return -_lesion(kind - 3, h, w, box)
    raise ValueError(f"unknown lesion kind {kind}")


# relative lesion sizes (fraction of the image side), per class
_SIZES = {0: (0.10, 0.22), 1: (0.10, 0.22), 2: (0.09, 0.20), 3: (0.14, 0.26), 4: (0.12, 0.22), 5: (0.09, 0.20),
          6: (0.14, 0.26), 7: (0.12, 0.22)}


def render_image(rng: np.random.Generator, h: int, w: int, n_classes: int, n_lesions: int, *,
                 noise: float = 0.03, amplitude: tuple[float, float] = (0.22, 0.35)):
    """One image in [0, 1] and its ``(boxes, labels)``."""
    img = _background(rng, h, w)
    # site-to-site variation of the background only (a lesion keeps its polarity): sign, gain
    if rng.random() < 0.25:
        img = -img
    img = rng.uniform(0.7, 1.1) * (img - img.mean())
    boxes, labels = [], []
    for _ in range(n_lesions):
        kind = int(rng.integers(0, n_classes))
        lo, hi = _SIZES[kind]
        for _try in range(20):
            bw = rng.uniform(lo, hi) * w
            bh = bw * rng.uniform(0.7, 1.4)
            bh = min(bh, 0.3 * h)
            x0 = rng.uniform(0.05 * w, 0.95 * w - bw)
            y0 = rng.uniform(0.05 * h, 0.95 * h - bh)
            b = (float(x0), float(y0), float(x0 + bw), float(y0 + bh))
            if all(b[2] + 2 < o[0] or o[2] + 2 < b[0] or b[3] + 2 < o[1] or o[3] + 2 < b[1] for o in boxes):
                break
        else:
            continue
        img += rng.uniform(*amplitude) * _lesion(kind, h, w, b)
        boxes.append(b)
        labels.append(kind)
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    img = np.clip(img + rng.uniform(0.4, 0.6), 0.0, 1.0)   # level
    return img, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def _write_png(path: Path, img: np.ndarray, bits: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if bits == 16:
        Image.fromarray(np.round(img * 65535).astype(np.uint16)).save(path, compress_level=1)
    else:
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path, compress_level=1)


def _coco(samples: list[Sample], classes: list[str], root: Path, sizes: list[tuple[int, int]]) -> dict:
    images, anns = [], []
    for i, (s, (w, h)) in enumerate(zip(samples, sizes)):
        images.append({"id": i + 1, "file_name": s.image_path.relative_to(root / "images").as_posix(),
                       "width": w, "height": h})
        for b, c in zip(s.boxes.tolist(), s.labels.tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1]),
                         "iscrowd": 0})
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(classes)]
    return {"images": images, "annotations": anns, "categories": cats}


def _render_one(job: tuple) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Render and write one image: ``(boxes, labels, width, height)``. A pure function of the
    job, so images are the same whichever process renders them."""
    path, seed, split_no, i, size, n_classes, p_normal, max_lesions, bits, noise = job
    r = np.random.default_rng([seed, split_no, i])
    if isinstance(size, tuple):
        w, h = size
    else:
        w = size
        h = int(round(size * r.uniform(0.9, 1.1)))
    n_les = 0 if r.random() < p_normal else int(r.integers(1, max_lesions + 1))
    img, boxes, labels = render_image(r, h, w, n_classes, n_les, noise=noise)
    b = 16 if bits == "16" or (bits == "mixed" and i % 2) else 8
    _write_png(path, img, b)
    return boxes, labels, w, h


def make_synthetic_release(out_dir: Path | str, *, n_train: int = 300, n_test: int = 150,
                           size: int | tuple[int, int] = 160, n_classes: int = 5, seed: int = 0,
                           p_normal: float = 0.4, max_lesions: int = 3, bits: str = "mixed", leak: int = 0,
                           noise: float = 0.03, workers: int = 1) -> SyntheticRelease:
    """Write a synthetic release under ``out_dir`` (see the module doc) and return its samples.

    ``size`` is the image width; the height varies by +-10% per image to exercise the letterbox
    (pass ``(width, height)`` for a fixed shape). ``bits`` is ``"8"``, ``"16"`` or ``"mixed"``.
    ``workers`` > 1 renders the images in that many processes (the same images as with one)."""
    if not 1 <= n_classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(f"n_classes must be 1..{len(SYNTHETIC_CLASSES)}")
    root = Path(out_dir)
    classes = list(SYNTHETIC_CLASSES[:n_classes])
    rng = np.random.default_rng(seed)
    counts = {"train": n_train, "test": n_test}
    jobs = []
    for split_no, (split, n) in enumerate(counts.items()):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            if split == "test" and i < leak and n_train:
                continue                                   # copied from a train image below
            path = root / "images" / split / f"{split}_{i:05d}.png"
            jobs.append((path, seed, split_no, i, size, n_classes, p_normal, max_lesions, bits, noise))
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=workers) as ex:
            rendered = dict(zip((j[0] for j in jobs), ex.map(_render_one, jobs, chunksize=8)))
    else:
        rendered = {j[0]: _render_one(j) for j in jobs}
    splits: dict[str, tuple[list[Sample], list[tuple[int, int]]]] = {}
    for split, n in counts.items():
        samples, sizes = [], []
        for i in range(n):
            path = root / "images" / split / f"{split}_{i:05d}.png"
            if path in rendered:
                boxes, labels, w, h = rendered[path]
            else:                                           # a leaked test image
                j = int(rng.integers(0, len(splits["train"][0])))
                src = splits["train"][0][j]
                path.write_bytes(src.image_path.read_bytes())  # a byte-identical copy
                boxes, labels = src.boxes, src.labels
                w, h = splits["train"][1][j]
            samples.append(Sample(path, boxes, labels, int(len(boxes) > 0), image_id=f"{split}_{i:05d}"))
            sizes.append((w, h))
        splits[split] = (samples, sizes)
    paths = {}
    for split, (samples, sizes) in splits.items():
        p = root / f"{split}.json"
        p.write_text(json.dumps(_coco(samples, classes, root, sizes)))
        paths[split] = p
    return SyntheticRelease(root, classes, splits["train"][0], splits["test"][0], paths["train"], paths["test"])
