"""What switching finder rules off changes for the red team's random attacks: the shared loop of
bench/grainband_sweep_diff.py (the ring rule) and bench/textfree2_sweep_diff.py (the speck and
bar-column rules). The cases of bench/redteam3_grain_sweep.py (same generator and seed: names,
initials, IDs, dates at the sides and corners of pydicom-data's MR2 upsampled to 2048, grain
everywhere) are redacted by find_text with the rules as they are and switched off, with and
without header hints. Only a case whose boxes differ is re-read (the sweep's Tesseract judge):
it counts when the text was readable as drawn, and is "worse" when the rules leave it readable
where the old code did not. Counts and drawing parameters only, never text read."""
from __future__ import annotations

import contextlib
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")) if p not in sys.path]

from redteam3_grain_sweep import SIZES, draw  # noqa: E402
from test_pixeltext_precision import HINTS, mr_crop  # noqa: E402
from test_redteam3 import _leaks, _place, _reread  # noqa: E402
from vindr_cli.deid import pixeltext as P  # noqa: E402


@contextlib.contextmanager
def switched_off(off: dict):
    """pixeltext's functions named in ``off`` replaced by their values for the block."""
    saved = {name: getattr(P, name) for name in off}
    for name, fn in off.items():
        setattr(P, name, fn)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(P, name, fn)


def boxes(img, hints, off: dict | None = None) -> list:
    """find_text's non-marker boxes, sorted; with the rules of ``off`` switched off."""
    with switched_off(off or {}):
        return sorted((b.x0, b.y0, b.x1, b.y1) for b in P.find_text(img, hints=hints) if b.kind != "marker")


def sweep(seed: int, draws: int, off: dict, *, sizes=SIZES, unreadable_cases: bool = False) -> tuple[dict, list]:
    """({boxes_differ, differ_and_readable_as_drawn, worse, better, load_after}, cases). A case
    is recorded when its boxes differ and the text was readable as drawn (with
    ``unreadable_cases``, the others too, marked readable_as_drawn False); a worse one is printed."""
    rnd = random.Random(seed)
    differ = readable = worse = better = 0
    cases = []
    for _ in range(draws):
        text, size, blur, fg, view, xy, angle = draw(rnd, sizes)
        img, bb = _place(mr_crop(*view), text, xy, size, fg=fg, blur=blur, angle=angle)
        for hints in (None, HINTS):
            new, old = boxes(img, hints), boxes(img, hints, off)
            if new == old:
                continue
            differ += 1
            case = {"size": size, "blur": blur, "grey": fg, "view": view, "at": xy, "angle": angle, "chars": len(text),
                    "hints": hints is not None}
            if not _leaks(_reread(img, bb, angle), text):
                if unreadable_cases:
                    cases.append({**case, "readable_as_drawn": False})
                continue
            readable += 1
            after = {}
            for name, found in (("new", new), ("old", old)):
                red = img.copy()
                for x0, y0, x1, y1 in found:
                    red[y0:y1, x0:x1] = 0 if fg > 128 else 255
                after[name] = _leaks(_reread(red, bb, angle), text)
            worse += after["new"] and not after["old"]
            better += after["old"] and not after["new"]
            if unreadable_cases:
                case["readable_as_drawn"] = True
            case.update(readable_after_new=after["new"], readable_after_old=after["old"])
            cases.append(case)
            if after["new"] and not after["old"]:
                print("WORSE", case, flush=True)
    return {"boxes_differ": differ, "differ_and_readable_as_drawn": readable, "worse": worse, "better": better,
            "load_after": os.getloadavg()}, cases
