"""How much of each drawn string that bench/redteam3_grain_sweep.py reports as readable after
redaction the boxes cover (issue 10, red team 3). A short string ("AN") is "readable" when any
of Tesseract's 24 re-reads of the region contains it -- also when the region is one black box
and the re-read is noise ("want", "sans"). For each case in the sweep's --json: the share of
the drawn layer's ink (alpha > 0.25) inside non-marker boxes of pixeltext.find_text, without
and with hints; a case covered 100 % both ways is the judge's noise, not a leak.

    python bench/redteam3_sweep_coverage.py SWEEP.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_pixeltext_precision import HINTS, mr_crop  # noqa: E402
from test_redteam3 import _place  # noqa: E402
from vindr_cli.deid import pixeltext as P  # noqa: E402


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())["readable"]
    leaks = 0
    for c in cases:
        base = mr_crop(*c["view"])
        img, bb = _place(base, c["text"], tuple(c["at"]), c["size"], fg=c["grey"], blur=c["blur"], angle=c["angle"])
        white, _ = _place(np.zeros_like(base), c["text"], tuple(c["at"]), c["size"], fg=255, blur=c["blur"],
                          angle=c["angle"])
        ink = white > 64
        cov = []
        for hints in (None, HINTS):
            red = np.zeros(img.shape, bool)
            for b in P.find_text(img, hints=hints):
                if b.kind != "marker":
                    red[b.y0:b.y1, b.x0:b.x1] = True
            cov.append(float(red[ink].mean()) if ink.any() else 1.0)
        leak = min(cov) < 1.0
        leaks += leak
        print({k: c[k] for k in ("text", "size", "blur", "grey", "at", "angle")},
              "ink covered (none, hints): %.2f %.2f" % tuple(cov), "LEAK" if leak else "judge noise", flush=True)
    print({"cases": len(cases), "ink_not_fully_covered": leaks})


if __name__ == "__main__":
    main()
