"""What the outer-band ring rule (pixeltext._ring_ratio, issue 10) changes for the red team's
random attacks: the cases of bench/redteam3_grain_sweep.py are redacted by find_text with the
rule as it is and with it off (_ring_ratio -> inf: only one oriented streak is grain in the
outer band, as before), with and without header hints; the loop is bench/sweep_diff.py's. Only a
case whose boxes differ is re-read: it counts when the text was readable as drawn, and is
"worse" when the rule leaves it readable where the old rule did not. Prints counts (and the
drawing parameters of any worse case), never text read.

    python -P bench/grainband_sweep_diff.py [--seed 21] [--draws 220] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_diff import sweep  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--draws", type=int, default=220)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    counts, cases = sweep(a.seed, a.draws, {"_ring_ratio": lambda *x, **k: float("inf")})
    summary = {"seed": a.seed, "draws": a.draws, "hint_modes": 2 * a.draws, **counts}
    print(summary)
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
