"""Reading a burned-in text corpus of bench/burned_in_corpus.py: its truth, the redactor's
display of an image, and how much of a string's glyphs a redaction mask covers. One loader
for bench/pixeltext_on_corpus.py, pixeltext_ab.py, redteam4_views.py and grainband_probe.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def load(corpus) -> tuple[list[dict], dict[str, np.ndarray]]:
    """(the image records of truth.json, the glyph masks of truth_masks.npz by name)."""
    corpus = Path(corpus)
    truth = json.loads((corpus / "truth.json").read_text())
    images = truth["images"] if "images" in truth else truth[list(truth)[0]]
    return images, dict(np.load(corpus / "truth_masks.npz"))


def display(ds) -> np.ndarray:
    """The redactor's display: min..max of the stored values to 0..255, MONOCHROME1 inverted."""
    a = ds.pixel_array.astype(np.float64)
    a = (a - a.min()) / max(a.max() - a.min(), 1) * 255
    if ds.PhotometricInterpretation == "MONOCHROME1":
        a = 255 - a
    return a.astype(np.uint8)


def coverage(red: np.ndarray, string: dict, masks: dict[str, np.ndarray]) -> float:
    """The share of a truth string's glyph pixels inside the redaction mask ``red``."""
    x0, y0, x1, y1 = string["box"]
    g = masks[string["mask"]].astype(bool)
    return red[y0:y1, x0:x1][g].mean() if g.any() else 0
