"""Reading a burned-in text corpus of bench/burned_in_corpus.py: its truth, the redactor's
display of an image, and how much of a string's glyphs a redaction mask covers. One loader
for bench/pixeltext_on_corpus.py, pixeltext_ab.py, redteam4_views.py, coarsegate_views.py and
grainband_probe.py, and their A/B of the scan (scan_ab)."""
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


def scan_ab(corpus, imgs: list[dict], masks: dict[str, np.ndarray], modes: dict) -> tuple[dict, list[float], int]:
    """An A/B of deid.redact.scan on corpus images: each image read, its header's hints taken and
    scanned with the real finder once per mode, the modes interleaved image by image (their order
    alternating, so both see the same load). ``modes``: {name: (setup, large)}, ``setup`` a
    context-manager factory that switches the mode's code in (and back), ``large`` scan's own
    argument. Returns ({mode: counts}, 1-min load samples, images whose boxes differ between the
    modes); counts: text-free images (free) and those with a box (fp), identifying strings (tot)
    >= 90 % covered (hit), markers (mtot) < 10 % covered (mk), boxes, and the CPU s (process
    time of scan) of each image by class (cpu: {with_text: [...], no_text: [...]})."""
    import os
    import time

    import pydicom

    from vindr_cli.deid import pixeltext as pt
    from vindr_cli.deid import redact

    names = list(modes)
    res = {m: {"fp": 0, "free": 0, "hit": 0, "tot": 0, "mk": 0, "mtot": 0, "boxes": 0,
               "cpu": {"with_text": [], "no_text": []}} for m in names}
    load, differ = [os.getloadavg()[0]], 0
    for n, rec in enumerate(imgs):
        got = {}
        for mode in (names if n % 2 == 0 else names[::-1]):
            r = res[mode]
            setup, large = modes[mode]
            with setup():
                ds = pydicom.dcmread(f"{corpus}/{rec['file']}")
                hints = pt.hints_from(ds)
                t = time.process_time()
                o = redact.scan(ds, pt.find_text, hints, large=large)
                r["cpu"][rec["class"]].append(time.process_time() - t)
            got[mode] = o.boxes
            r["boxes"] += len(o.boxes)
            red = np.zeros((int(ds.Rows), int(ds.Columns)), bool)
            for _, x0, y0, x1, y1 in o.boxes:
                red[y0:y1, x0:x1] = True
            if rec["class"] == "no_text":
                r["free"] += 1
                r["fp"] += int(bool(o.boxes))
            for s in rec.get("strings", []):
                cov = coverage(red, s, masks)
                if s["identifying"]:
                    r["tot"] += 1
                    r["hit"] += int(cov >= 0.9)
                else:
                    r["mtot"] += 1
                    r["mk"] += int(cov < 0.1)
        differ += len({tuple(b) for b in got.values()}) > 1
        if n % 10 == 0:
            load.append(os.getloadavg()[0])
    return res, load, differ
