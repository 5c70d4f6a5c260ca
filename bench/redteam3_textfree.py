"""Cost of redteam3's turned glyph-row check (pixeltext._turned_glyphs) on text-free images:
random crops of pydicom-data's MR2 (24 views: position, 0.6-0.95 of the image, flipped or
not) upsampled to 2048 x 2048, each through pixeltext.find_text with and without header
hints, once with the grain test as it is and once without the turned check (as before
redteam3). Counts the (view, hints) pairs that got any non-marker box (a text-free image
modified). Not a timing: no load figure needed, printed anyway.

    python bench/redteam3_textfree.py [--seed 11] [--views 24]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_pixeltext_precision import HINTS, mr_crop  # noqa: E402
from vindr_cli.deid import pixeltext as P  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--views", type=int, default=24)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    views = [(rnd.random(), rnd.random(), rnd.uniform(0.6, 0.95), rnd.random() < 0.5) for _ in range(a.views)]
    turned = P._turned_glyphs
    res = {"without_turned": 0, "with_turned": 0}
    for v in views:
        img = mr_crop(*v)
        for mode in res:
            P._turned_glyphs = turned if mode == "with_turned" else (lambda crop: 0)
            for hints in (None, HINTS):
                res[mode] += bool([b for b in P.find_text(img, hints=hints) if b.kind != "marker"])
    P._turned_glyphs = turned
    print({"seed": a.seed, "pairs": 2 * len(views), **res, "load": os.getloadavg()})


if __name__ == "__main__":
    main()
