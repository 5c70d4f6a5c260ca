"""Probe for issue 10's outer-band grain discriminator: collects every candidate of a textured
image's outer band that reaches the grain test (unreadable or < 3 letters read, no hint, no
marker), with the full image, its box and its features, from (a) the text-free images of a
burned_in_corpus.py corpus and (b) identifying strings drawn as the red team draws them
(bench/redteam3_grain_sweep.py's texts, sizes, blurs, greys, places, angles; another seed).
Writes an .npz of crops + a JSON of rows (label: grain for text-free images, text when the
box overlaps the drawn string). Prints counts only; no text is printed.

    python -P bench/grainband_probe.py OUT.json [--corpus C ...] [--drawn N --seed S]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
sys.path.insert(0, str(ROOT / "bench"))
from classify_hook import hook_classify  # noqa: E402
from corpus_truth import display, load  # noqa: E402

from vindr_cli.deid import pixeltext as P  # noqa: E402

ROWS: list[dict] = []
CTX: dict = {}


def _record(orig, ratio, res, image, box, bright, hints, inner, stacked, textured, central):
    if ratio is not None:     # an outer-band candidate of a textured image
        whole = orig(image, box, bright, hints, inner, stacked, textured, True)
        streak = orig(image, box, bright, hints, inner, stacked, textured, False)
        if streak[3] and not whole[3]:    # the whole grain test drops it, the streak test does not
            ROWS.append({**{k: v for k, v in CTX.items() if k != "images"}, "box": list(map(int, box)),
                         "bright": bool(bright), "inner": list(map(int, inner)), "ratio": ratio,
                         "dropped": not res[3], "idx": len(ROWS)})
            CTX["images"][CTX["key"]] = image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--corpus", nargs="*", default=[])
    ap.add_argument("--drawn", type=int, default=0)
    ap.add_argument("--seed", type=int, default=31)
    a = ap.parse_args()
    hook_classify(_record)
    images: dict = {}
    CTX["images"] = images
    import pydicom
    for c in a.corpus:
        for rec in load(c)[0]:
            if rec["class"] != "no_text":
                continue
            ds = pydicom.dcmread(f"{c}/{rec['file']}")
            img = display(ds)
            CTX.update(key=f"{Path(c).name}/{rec['file']}", label="grain", src="corpus", drawn=None)
            n0 = len(ROWS)
            boxes = P.find_text(img, hints=P.hints_from(ds))
            for r in ROWS[n0:]:
                r["in_output"] = any(b.kind != "marker" and b.x0 <= r["box"][0] + 2 and b.x1 >= r["box"][2] - 2
                                     and b.y0 <= r["box"][1] + 2 and b.y1 >= r["box"][3] - 2 for b in boxes)
    if a.drawn:
        from test_pixeltext_precision import HINTS, mr_crop
        from test_redteam3 import _place
        sys.path.insert(0, str(ROOT / "bench"))
        from redteam3_grain_sweep import draw
        rnd = random.Random(a.seed)
        for i in range(a.drawn):
            text, size, blur, fg, view, xy, angle = draw(rnd)
            img, bb = _place(mr_crop(*view), text, xy, size, fg=fg, blur=blur, angle=angle)
            for hints in (None, HINTS):
                CTX.update(key=f"drawn{i}", src="drawn", drawn=list(map(int, bb)), label=None)
                n0 = len(ROWS)
                P.find_text(img, hints=hints)
                for r in ROWS[n0:]:
                    b = r["box"]
                    ix = max(0, min(b[2], bb[2]) - max(b[0], bb[0])) * max(0, min(b[3], bb[3]) - max(b[1], bb[1]))
                    r["label"] = "text" if ix > 0.2 * (b[2] - b[0]) * (b[3] - b[1]) else "grain"
                    r["hints"] = hints is not None
                    r["case"] = dict(size=size, blur=blur, fg=fg, angle=angle, n=len(text))
    np.savez_compressed(a.out.with_suffix(".npz"), **{k.replace("/", "__"): v for k, v in images.items()})
    a.out.write_text(json.dumps(ROWS, indent=0))
    from collections import Counter
    print(Counter((r["src"], r["label"]) for r in ROWS))


if __name__ == "__main__":
    main()
