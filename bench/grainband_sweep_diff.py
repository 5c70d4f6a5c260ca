"""What the outer-band ring rule (pixeltext._ring_ratio, issue 10) changes for the red team's
random attacks: the cases of bench/redteam3_grain_sweep.py (same generator and seed: names,
initials, IDs, dates at the sides and corners of pydicom-data's MR2 upsampled to 2048, grain
everywhere) are redacted by find_text with the rule as it is and with it off (_ring_ratio ->
inf: only one oriented streak is grain in the outer band, as before), with and without header
hints. Only a case whose boxes differ is re-read (the sweep's Tesseract judge): it counts when
the text was readable as drawn, and is "worse" when the rule leaves it readable where the old
rule did not. Prints counts (and the drawing parameters of any worse case), never text read.

    python -P bench/grainband_sweep_diff.py [--seed 21] [--draws 220] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from redteam3_grain_sweep import PLACES, TEXTS, VIEWS  # noqa: E402
from test_pixeltext_precision import HINTS, mr_crop  # noqa: E402
from test_redteam3 import _leaks, _place, _reread  # noqa: E402
from vindr_cli.deid import pixeltext as P  # noqa: E402


def _boxes(img, hints, rule: bool):
    ratio = P._ring_ratio
    if not rule:
        P._ring_ratio = lambda *a, **k: float("inf")
    try:
        return sorted((b.x0, b.y0, b.x1, b.y1) for b in P.find_text(img, hints=hints) if b.kind != "marker")
    finally:
        P._ring_ratio = ratio


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--draws", type=int, default=220)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    differ = readable = worse = better = 0
    cases = []
    for _ in range(a.draws):
        text, size, blur = rnd.choice(TEXTS), rnd.choice([10, 12, 14, 16, 20, 24]), rnd.choice([0, 0.8, 1.2, 1.8])
        fg, view, xy, angle = rnd.choice([255, 220, 180, 0]), rnd.choice(VIEWS), rnd.choice(PLACES), rnd.choice([0, 0, 0, 90, 20])
        img, bb = _place(mr_crop(*view), text, xy, size, fg=fg, blur=blur, angle=angle)
        for hints in (None, HINTS):
            new, old = _boxes(img, hints, True), _boxes(img, hints, False)
            if new == old:
                continue
            differ += 1
            if not _leaks(_reread(img, bb, angle), text):
                continue
            readable += 1
            after = {}
            for name, boxes in (("new", new), ("old", old)):
                red = img.copy()
                for x0, y0, x1, y1 in boxes:
                    red[y0:y1, x0:x1] = 0 if fg > 128 else 255
                after[name] = _leaks(_reread(red, bb, angle), text)
            worse += after["new"] and not after["old"]
            better += after["old"] and not after["new"]
            case = {"size": size, "blur": blur, "grey": fg, "view": view, "at": xy, "angle": angle, "chars": len(text),
                    "hints": hints is not None, "readable_after_new": after["new"], "readable_after_old": after["old"]}
            cases.append(case)
            if after["new"] and not after["old"]:
                print("WORSE", case, flush=True)
    summary = {"seed": a.seed, "draws": a.draws, "hint_modes": 2 * a.draws, "boxes_differ": differ,
               "differ_and_readable_as_drawn": readable, "worse": worse, "better": better, "load_after": os.getloadavg()}
    print(summary)
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
