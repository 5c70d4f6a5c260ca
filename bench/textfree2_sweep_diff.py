"""What the speck and bar-column rules (pixeltext._speck, pixeltext._bar_column; issue 10,
branch textfree2) change for the red team's random attacks: the cases of
bench/redteam3_grain_sweep.py (same generator: names, initials, IDs, dates, 10-24 px, blurred,
grey, turned, at the sides and corners of pydicom-data's MR2 upsampled to 2048, grain everywhere)
plus, with --small, only the smallest of them (10-12 px, the sizes a speck could be), are
redacted by find_text with the rules as they are and with both off (_speck -> False,
_bar_column -> False), with and without header hints. Only a case whose boxes differ is re-read
(the sweep's Tesseract judge): it counts when the text was readable as drawn, and is "worse"
when the rules leave it readable where the old code did not. Prints counts (and the drawing
parameters of any worse case), never text read.

    python -P bench/textfree2_sweep_diff.py [--seed 21] [--draws 220] [--small] [--json FILE]
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


def _boxes(img, hints, rules: bool):
    speck, bar = P._speck, P._bar_column
    if not rules:
        P._speck = lambda *a, **k: False
        P._bar_column = lambda *a, **k: False
    try:
        return sorted((b.x0, b.y0, b.x1, b.y1) for b in P.find_text(img, hints=hints) if b.kind != "marker")
    finally:
        P._speck, P._bar_column = speck, bar


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--draws", type=int, default=220)
    ap.add_argument("--small", action="store_true", help="10-12 px text only")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    differ = readable = worse = better = 0
    cases = []
    for _ in range(a.draws):
        text, size, blur = rnd.choice(TEXTS), rnd.choice([10, 12] if a.small else [10, 12, 14, 16, 20, 24]), rnd.choice([0, 0.8, 1.2, 1.8])
        fg, view, xy, angle = rnd.choice([255, 220, 180, 0]), rnd.choice(VIEWS), rnd.choice(PLACES), rnd.choice([0, 0, 0, 90, 20])
        img, bb = _place(mr_crop(*view), text, xy, size, fg=fg, blur=blur, angle=angle)
        for hints in (None, HINTS):
            new, old = _boxes(img, hints, True), _boxes(img, hints, False)
            if new == old:
                continue
            differ += 1
            case = {"size": size, "blur": blur, "grey": fg, "view": view, "at": xy, "angle": angle, "chars": len(text),
                    "hints": hints is not None}
            if not _leaks(_reread(img, bb, angle), text):
                cases.append({**case, "readable_as_drawn": False})
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
            case.update(readable_as_drawn=True, readable_after_new=after["new"], readable_after_old=after["old"])
            cases.append(case)
            if after["new"] and not after["old"]:
                print("WORSE", case, flush=True)
    summary = {"seed": a.seed, "draws": a.draws, "small": a.small, "hint_modes": 2 * a.draws, "boxes_differ": differ,
               "differ_and_readable_as_drawn": readable, "worse": worse, "better": better, "load_after": os.getloadavg()}
    print(summary)
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
