"""Red team of the burned-in finder's grain test (issue 10; tests/test_redteam3.py).

Random identifying strings (names, initials, IDs, dates; 10-24 px, blurred 0-1.8, white, grey
or black, level, turned 20 degrees or vertical) drawn on pydicom-data's MR2 upsampled to
2048 x 2048 (three crops: grain everywhere, the grain test is on), at the image's sides and
corners. A case counts when Tesseract reads it as drawn (4-character runs, or the whole of a
shorter string, both polarities, 1-3x, page modes 6/7/8/11). Each case is redacted by
pixeltext.find_text with the grain test as it is and with it off (_is_grain -> False), with
and without header hints, and re-read. Prints the cases readable after redaction and the
totals; nothing downloaded (pydicom-data's MR2 must be there).

    python bench/redteam3_grain_sweep.py [--seed 21] [--cases 150] [--without-turned] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_pixeltext_precision import HINTS, mr_crop  # noqa: E402
from test_redteam3 import _leaks, _place, _reread  # noqa: E402
from vindr_cli.deid import pixeltext as P  # noqa: E402

VIEWS = [(0.5, 0.5, 0.9, True), (0.1, 0.9, 0.85, False), (0.9, 0.2, 0.8, False)]
TEXTS = ["AN", "A42", "1985", "XQ21", "03/85", "NVA", "0042", "BN 42", "12.03.85", "NGUYEN", "VAN AN"]
PLACES = [(20, 20), (60, 1950), (1800, 30), (1750, 1960), (30, 1000), (1900, 900)]
SIZES = [10, 12, 14, 16, 20, 24]


def draw(rnd: random.Random, sizes=SIZES) -> tuple:
    """One case's drawing parameters (text, size, blur, grey, view, place, angle), drawn in the
    order every sweep of this family draws them (so a seed gives the same cases in each)."""
    text, size, blur = rnd.choice(TEXTS), rnd.choice(sizes), rnd.choice([0, 0.8, 1.2, 1.8])
    fg, view, xy, angle = rnd.choice([255, 220, 180, 0]), rnd.choice(VIEWS), rnd.choice(PLACES), rnd.choice([0, 0, 0, 90, 20])
    return text, size, blur, fg, view, xy, angle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--cases", type=int, default=150)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--without-turned", action="store_true",
                    help="the grain test as before redteam3 (no turned glyph-row check)")
    a = ap.parse_args()
    if a.without_turned:
        P._turned_glyphs = lambda crop: 0
    rnd = random.Random(a.seed)
    grain = P._is_grain
    n, out = 0, []
    while n < a.cases:
        text, size, blur, fg, view, xy, angle = draw(rnd)
        img, bb = _place(mr_crop(*view), text, xy, size, fg=fg, blur=blur, angle=angle)
        if not _leaks(_reread(img, bb, angle), text):
            continue
        n += 1
        res = {}
        for mode in ("grain", "off"):
            P._is_grain = grain if mode == "grain" else (lambda c, i, **k: False)
            for hints in (None, HINTS):
                red = img.copy()
                for b in P.find_text(img, hints=hints):
                    if b.kind != "marker":
                        red[b.y0:b.y1, b.x0:b.x1] = 0 if fg > 128 else 255
                res[f"{mode}_{'hints' if hints else 'none'}"] = _leaks(_reread(red, bb, angle), text)
        P._is_grain = grain
        if any(res.values()):
            case = {"text": text, "size": size, "blur": blur, "grey": fg, "view": view, "at": xy, "angle": angle, **res}
            out.append(case)
            print(case, flush=True)
    summary = {"seed": a.seed, "cases": n, "turned_check": not a.without_turned, "readable_after": len(out),
               "readable_with_grain_test_off_too": sum(1 for c in out if c["off_none"] or c["off_hints"]),
               "only_with_grain_test": sum(1 for c in out if not (c["off_none"] or c["off_hints"])),
               "load_after": os.getloadavg()}
    print(summary)
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "readable": out}, indent=1))


if __name__ == "__main__":
    main()
