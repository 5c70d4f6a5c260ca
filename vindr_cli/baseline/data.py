"""Samples, image loading, radiograph-safe augmentation and the training dataset.

A :class:`Sample` is one image: its PNG path, its boxes (``float32[N, 4]``, ``x_min, y_min,
x_max, y_max`` in the image's own pixel coordinates), their class indices (``int64[N]``, into
a class-name list kept beside the samples) and an image-level ``abnormal`` flag.
:func:`samples_from_coco` builds them from a COCO file written by the release.

Images are 8- or 16-bit grayscale PNGs read with Pillow and scaled to [0, 1] by their bit depth
(the detector standardises each image itself, so a 12-bit image stored in 16 bits is fine).

Augmentation (training only), each step safe for radiographs:

* letterbox to ``size x size`` (longest side fitted, aspect kept, zero padding) with a random
  scale in ``Augment.scale`` and a random placement of the image on the canvas;
* horizontal flip only for images whose every box class is in ``flip_ok`` (default: every
  class not laterality-sensitive, see :func:`default_flip_ok`; normal images may flip unless
  ``flip_normal=False``);
* brightness / contrast / gamma jitter; no rotation, no vertical flip, no colour.

Randomness comes from ``numpy.random.default_rng([seed, epoch, index])`` for every item, so an
epoch's augmentation does not depend on the DataLoader's worker count or scheduling.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vindr_cli.baseline.boxes import BoxTransform

__all__ = ["Augment", "DetectionDataset", "EpochBatchSampler", "LATERALITY_SENSITIVE", "Sample", "collate",
           "default_flip_ok", "flip_allowed", "image_size", "letterbox", "load_image", "pixel_hash",
           "samples_from_coco"]

NO_FINDING_NAMES = ("no finding",)

# Classes whose meaning depends on the side of the body (or whose mirror image is anatomically
# implausible: the heart and the aortic knob are on the patient's left). Regular expressions
# matched against whole lower-case words of the class name; override with an explicit ``flip_ok``.
LATERALITY_SENSITIVE = (
    r"aort\w*", r"cardiomegaly", r"heart", r"cardiac", r"dextro\w*", r"situs", r"left", r"right", r"scoliosis",
    r"pacemakers?", r"devices?", r"tubes?", r"catheters?", r"lines?",
)


@dataclass
class Sample:
    """One image and its ground truth (boxes in the image's own pixel coordinates)."""
    image_path: Path
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    abnormal: int = 0
    image_id: str | None = None     # defaults to the file name's stem
    pixel_hash: str | None = None   # optional precomputed hash of the decoded pixels
    scale: tuple[float, float] = (1.0, 1.0)   # image pixels per DICOM pixel (x, y): the release's
    #                                            scale_x/scale_y, to write predictions in DICOM pixels

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.boxes) != len(self.labels):
            raise ValueError(f"{self.image_path}: {len(self.boxes)} boxes but {len(self.labels)} labels")
        self.abnormal = int(self.abnormal)
        if self.image_id is None:
            self.image_id = self.image_path.stem


# ---------------------------------------------------------------------------------------------
# images

def load_image(path: Path | str) -> np.ndarray:
    """Decode a grayscale PNG (8 or 16 bit) to ``float32`` in [0, 1]; colour is converted to L."""
    with Image.open(path) as im:
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            a = np.asarray(im).astype(np.float32) / 65535.0
        elif mode == "I":
            a = np.clip(np.asarray(im).astype(np.float32) / 65535.0, 0.0, 1.0)
        elif mode == "F":
            a = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
        else:
            if mode != "L":
                im = im.convert("L")
            a = np.asarray(im).astype(np.float32) / 255.0
    return np.ascontiguousarray(a)


def pixel_hash(path: Path | str) -> str:
    """SHA-256 of the decoded pixels (shape, dtype and bytes), not of the file: two PNGs of the
    same image written with different compression settings hash the same."""
    with Image.open(path) as im:
        a = np.ascontiguousarray(np.asarray(im))
    h = hashlib.sha256()
    h.update(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def image_size(path: Path | str) -> tuple[int, int]:
    """``(width, height)`` from the PNG header, without decoding."""
    with Image.open(path) as im:
        return im.size


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape == (h, w):
        return img
    # Pillow's BILINEAR widens its support when shrinking, so downscaling is antialiased.
    return np.asarray(Image.fromarray(np.asarray(img, dtype=np.float32)).resize((w, h), Image.BILINEAR))


def letterbox(img: np.ndarray, size: int, *, scale: float = 1.0, offset: tuple[int, int] = (0, 0),
              orig_size: tuple[int, int] | None = None) -> tuple[np.ndarray, BoxTransform]:
    """Fit the image's longest side to ``size * scale``, keep the aspect ratio and paste it at
    ``offset`` (x, y; may be negative, which crops) on a zero ``size x size`` canvas.

    ``orig_size`` = (width, height) of the original image when ``img`` is a pre-shrunk copy of
    it: the returned transform maps original coordinates to the canvas."""
    h, w = img.shape
    ow, oh = orig_size if orig_size is not None else (w, h)
    s = size / max(ow, oh) * scale
    nw, nh = max(1, int(round(ow * s))), max(1, int(round(oh * s)))
    resized = _resize(img, nw, nh)
    canvas = np.zeros((size, size), dtype=np.float32)
    ox, oy = int(offset[0]), int(offset[1])
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + nw, size), min(oy + nh, size)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = resized[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return canvas, BoxTransform(nw / ow, nh / oh, float(ox), float(oy), size, size)


# ---------------------------------------------------------------------------------------------
# flip rules

def default_flip_ok(classes: Sequence[str], sensitive: Iterable[str] = LATERALITY_SENSITIVE) -> frozenset[int]:
    """Indices of the classes that may be mirrored: those with no word matching one of the
    ``sensitive`` patterns ("Central lines" and "Dextrocardia" match, "Linear atelectasis" does not)."""
    import re
    pats = [re.compile(rf"(?<![a-z])(?:{k})(?![a-z])") for k in sensitive]
    return frozenset(i for i, c in enumerate(classes) if not any(p.search(c.lower()) for p in pats))


def flip_allowed(labels: Sequence[int], flip_ok: Iterable[int], *, flip_normal: bool = True) -> bool:
    """An image may be flipped when every one of its box classes is in ``flip_ok`` (and, for an
    image without boxes, when ``flip_normal``)."""
    labels = list(np.asarray(labels).reshape(-1).tolist())
    if not labels:
        return bool(flip_normal)
    ok = set(flip_ok)
    return all(int(c) in ok for c in labels)


@dataclass
class Augment:
    scale: tuple[float, float] = (0.9, 1.1)
    flip_p: float = 0.5
    flip_ok: frozenset[int] | None = None   # None: default_flip_ok(classes)
    flip_normal: bool = True
    brightness: float = 0.08                # additive, +- in [0, 1] units
    contrast: float = 0.15                  # multiplicative around the mean, 1 +- contrast
    gamma: tuple[float, float] = (0.8, 1.25)
    min_visible: float = 0.4                # a box cropped to less than this fraction of its area is dropped


# ---------------------------------------------------------------------------------------------
# dataset

class DetectionDataset(torch.utils.data.Dataset):
    """Letterboxed (and, with ``augment``, augmented) images with their boxes on the canvas.

    Items are addressed by ``index`` or by ``(epoch, index)`` (what :class:`EpochBatchSampler`
    yields) so the augmentation is a pure function of ``(seed, epoch, index)``.

    ``cache_bytes`` keeps decoded images (pre-shrunk to the largest size augmentation needs,
    16-bit) in memory up to that many bytes; with DataLoader workers each worker has its own.
    """

    def __init__(self, samples: Sequence[Sample], size: int, classes: Sequence[str], *,
                 augment: Augment | None = None, seed: int = 0, cache_bytes: int = 0):
        self.samples = list(samples)
        self.size = int(size)
        self.classes = list(classes)
        self.augment = augment
        self.seed = int(seed)
        self.flip_ok = (augment.flip_ok if augment is not None and augment.flip_ok is not None
                        else default_flip_ok(self.classes))
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        self._cached = 0

    def __len__(self) -> int:
        return len(self.samples)

    def _image(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        hit = self._cache.get(i)
        if hit is not None:
            return hit[0].astype(np.float32) / 65535.0, hit[1]
        img = load_image(self.samples[i].image_path)
        h, w = img.shape
        if self.cache_bytes <= 0:
            return img, (w, h)
        # With a cache, every read (cached or not) goes through the same pre-shrunk 16-bit copy,
        # so an item never depends on what happens to be cached (a resumed run sees the same data).
        top = self.augment.scale[1] if self.augment is not None else 1.0
        limit = int(math.ceil(self.size * max(top, 1.0))) + 1
        s = min(1.0, limit / max(w, h))
        small = _resize(img, max(1, int(round(w * s))), max(1, int(round(h * s))))
        small = np.round(np.clip(small, 0.0, 1.0) * 65535.0).astype(np.uint16)
        if self._cached + small.nbytes <= self.cache_bytes:
            self._cache[i] = (small, (w, h))
            self._cached += small.nbytes
        return small.astype(np.float32) / 65535.0, (w, h)

    def __getitem__(self, key):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        s = self.samples[i]
        img, (w, h) = self._image(i)
        boxes = s.boxes.astype(np.float64)
        labels = s.labels
        flip = False
        aug = self.augment
        if aug is None:
            canvas, t = letterbox(img, self.size, orig_size=(w, h))
        else:
            rng = np.random.default_rng([self.seed, int(epoch), int(i)])
            r = float(rng.uniform(*aug.scale))
            base = self.size / max(w, h) * r
            nw, nh = max(1, int(round(w * base))), max(1, int(round(h * base)))
            ox = int(rng.integers(min(0, self.size - nw), max(0, self.size - nw) + 1))
            oy = int(rng.integers(min(0, self.size - nh), max(0, self.size - nh) + 1))
            canvas, t = letterbox(img, self.size, scale=r, offset=(ox, oy), orig_size=(w, h))
            # intensity jitter on the image region only (the padding stays 0)
            region = (slice(max(oy, 0), min(oy + nh, self.size)), slice(max(ox, 0), min(ox + nw, self.size)))
            x = canvas[region]
            g = math.exp(rng.uniform(math.log(aug.gamma[0]), math.log(aug.gamma[1])))
            c = 1.0 + rng.uniform(-aug.contrast, aug.contrast)
            b = rng.uniform(-aug.brightness, aug.brightness)
            x = np.power(np.clip(x, 0.0, 1.0), g)
            m = float(x.mean()) if x.size else 0.0
            canvas[region] = np.clip((x - m) * c + m + b, 0.0, 1.0)
            flip = rng.random() < aug.flip_p and flip_allowed(labels, self.flip_ok, flip_normal=aug.flip_normal)
            if flip:
                canvas = np.ascontiguousarray(canvas[:, ::-1])
                t = BoxTransform(t.sx, t.sy, t.ox, t.oy, t.out_w, t.out_h, True)
        out = t.apply(boxes)
        if len(out):
            clipped = np.clip(out, 0, self.size)
            area = np.clip(out[:, 2] - out[:, 0], 0, None) * np.clip(out[:, 3] - out[:, 1], 0, None)
            carea = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
            min_vis = aug.min_visible if aug is not None else 0.0
            keep = (carea > 0) & (carea >= min_vis * np.maximum(area, 1e-9)) \
                & (clipped[:, 2] - clipped[:, 0] >= 1.0) & (clipped[:, 3] - clipped[:, 1] >= 1.0)
            out, labels = clipped[keep], labels[keep]
        return {
            "image": torch.from_numpy(canvas).unsqueeze(0),
            "boxes": torch.from_numpy(out.astype(np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
            "abnormal": float(s.abnormal),
            "index": int(i),
            "transform": t,
            "orig_size": (int(w), int(h)),
        }


def collate(batch: list[dict]):
    """``(images [B, 1, S, S], targets)``: targets is a dict of lists (boxes, labels, index,
    transform, orig_size = (width, height)) plus the ``abnormal`` tensor."""
    images = torch.stack([b["image"] for b in batch])
    targets = {
        "boxes": [b["boxes"] for b in batch],
        "labels": [b["labels"] for b in batch],
        "abnormal": torch.tensor([b["abnormal"] for b in batch], dtype=torch.float32),
        "index": [b["index"] for b in batch],
        "transform": [b["transform"] for b in batch],
        "orig_size": [b["orig_size"] for b in batch],
    }
    return images, targets


class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)``; the order of epoch ``e`` is a permutation drawn from
    ``torch.Generator().manual_seed(seed * 1_000_003 + e)``, so a resumed run sees the same
    batches as an uninterrupted one. Set ``.epoch`` before iterating."""

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, shuffle: bool = True, drop_last: bool = False):
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch = 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        for k in range(len(self)):
            chunk = order[k * self.batch_size:(k + 1) * self.batch_size]
            yield [(self.epoch, i) for i in chunk]


# ---------------------------------------------------------------------------------------------
# COCO

def samples_from_coco(coco_json: Path | str, image_dir: Path | str, *,
                      no_finding: Sequence[str] = NO_FINDING_NAMES,
                      classes: Sequence[str] | None = None) -> tuple[list[Sample], list[str]]:
    """Samples and class names from a COCO detection file.

    ``images[].file_name`` is relative to ``image_dir``; ``annotations[].bbox`` is ``[x, y, w,
    h]``. Categories are ordered by id; those named like "No finding" (case-insensitive) are
    not detection classes: an image whose only annotations are of that kind is normal.
    ``abnormal`` is ``images[].abnormal`` when the file gives it, else "has a box". Pass
    ``classes`` to fix the class list (e.g. the train file's for the test file); a category not
    in it is an error. ``image_id`` is the file name without its suffix (relative path kept).
    """
    doc = json.loads(Path(coco_json).read_text())
    image_dir = Path(image_dir)
    skip = {n.casefold() for n in no_finding}
    cats = sorted(doc.get("categories", []), key=lambda c: c["id"])
    names = [c["name"] for c in cats if c["name"].casefold() not in skip]
    if classes is None:
        classes = names
    classes = list(classes)
    index = {n: i for i, n in enumerate(classes)}
    cat_class: dict[int, int | None] = {}
    for c in cats:
        if c["name"].casefold() in skip:
            cat_class[c["id"]] = None
        elif c["name"] in index:
            cat_class[c["id"]] = index[c["name"]]
        else:
            raise ValueError(f"{coco_json}: category {c['name']!r} is not among the classes")
    per_image: dict[object, list[tuple[list[float], int]]] = {}
    for a in doc.get("annotations", []):
        k = cat_class.get(a["category_id"], "missing")
        if k == "missing":
            raise ValueError(f"{coco_json}: annotation {a.get('id')} has an unknown category_id {a['category_id']}")
        if k is None:
            per_image.setdefault(a["image_id"], [])
            continue
        x, y, w, h = (float(v) for v in a["bbox"])
        per_image.setdefault(a["image_id"], []).append(([x, y, x + w, y + h], k))
    samples = []
    for im in doc.get("images", []):
        anns = per_image.get(im["id"], [])
        boxes = np.asarray([b for b, _ in anns], dtype=np.float32).reshape(-1, 4)
        labels = np.asarray([k for _, k in anns], dtype=np.int64)
        abnormal = int(im["abnormal"]) if "abnormal" in im else int(len(anns) > 0)
        fn = Path(im["file_name"])
        samples.append(Sample(image_dir / fn, boxes, labels, abnormal,
                              image_id=str(fn.with_suffix("")), pixel_hash=im.get("pixel_hash")))
    return samples, classes
