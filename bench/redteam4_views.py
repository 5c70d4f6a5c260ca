"""The finder's extra views of red team 4 (deid.redact.views / coarse) on the burned-in
corpus of bench/burned_in_corpus.py: each image through deid.redact.scan with the real finder
and the header's hints, once as vindr anonymize scans now (large=True: colour channels, the
clipped window, the coarse view) and once with the first view only (as before red team 4),
interleaved image by image (the order of the two alternating), so both see the same load.
Counts: text-free images modified (any box), identifying strings covered >= 90 %, markers
kept (< 10 % covered), CPU s per image by class (process time). Prints counts only, never text.

    PYTHONPATH=. .venv/bin/python bench/redteam4_views.py CORPUS_DIR [--limit N] [--save]
"""
import contextlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_truth import load, scan_ab  # noqa: E402

from vindr_cli.deid import redact

out = sys.argv[1]
limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
imgs, masks = load(out)
truth = json.load(open(f"{out}/truth.json"))      # its seed and size, for the record
imgs = imgs[:limit] if limit else imgs
ALL_VIEWS = redact.views


def first_view_only(frame, photometric, lum=None, rgb_lut=None):
    return ALL_VIEWS(frame, photometric, lum, rgb_lut)[:1]


@contextlib.contextmanager
def first_view():
    redact.views = first_view_only
    try:
        yield
    finally:
        redact.views = ALL_VIEWS


res, load, _ = scan_ab(out, imgs, masks, {"before": (first_view, False), "now": (contextlib.nullcontext, True)})
for mode, r in res.items():
    c = r.pop("cpu")
    r.pop("boxes")
    r["cpu_s_with_text"] = round(float(np.mean(c["with_text"])), 3) if c["with_text"] else None
    r["cpu_s_no_text"] = round(float(np.mean(c["no_text"])), 3) if c["no_text"] else None
    r["cpu_s_all"] = round(float(np.mean(c["with_text"] + c["no_text"])), 3)
res["load_average_1min"] = {"min": round(min(load), 2), "max": round(max(load), 2)}
res["images"] = len(imgs)
res["corpus"] = {"seed": truth.get("seed"), "size": truth.get("size")}
print(json.dumps(res))
if "--save" in sys.argv:
    with open("bench/results/redteam4_views.json", "w") as f:
        json.dump(res, f, indent=1)
