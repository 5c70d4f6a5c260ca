"""What the speck and bar-column rules (pixeltext._speck, pixeltext._bar_column; issue 10,
branch textfree2) change for the red team's random attacks: the cases of
bench/redteam3_grain_sweep.py (same generator: names, initials, IDs, dates, 10-24 px, blurred,
grey, turned, at the sides and corners of pydicom-data's MR2 upsampled to 2048, grain everywhere)
plus, with --small, only the smallest of them (10-12 px, the sizes a speck could be), are
redacted by find_text with the rules as they are and with both off (_speck -> False,
_bar_column -> False), with and without header hints; the loop is bench/sweep_diff.py's. Only a
case whose boxes differ is re-read (the sweep's Tesseract judge): it counts when the text was
readable as drawn, and is "worse" when the rules leave it readable where the old code did not.
Prints counts (and the drawing parameters of any worse case), never text read.

    python -P bench/textfree2_sweep_diff.py [--seed 21] [--draws 220] [--small] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_diff import SIZES, sweep  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--draws", type=int, default=220)
    ap.add_argument("--small", action="store_true", help="10-12 px text only")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    off = {"_speck": lambda *x, **k: False, "_bar_column": lambda *x, **k: False}
    counts, cases = sweep(a.seed, a.draws, off, sizes=[10, 12] if a.small else SIZES, unreadable_cases=True)
    summary = {"seed": a.seed, "draws": a.draws, "small": a.small, "hint_modes": 2 * a.draws, **counts}
    print(summary)
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
