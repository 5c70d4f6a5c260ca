"""The coarse view's gate (issue 10, red team 5) on the burned-in corpus of
bench/burned_in_corpus.py: each image through deid.redact.scan (large=True, the real finder,
the header's hints) as now and as before the change, interleaved image by image with the order
alternating. "Before" is the old gate emulated in the same code: no glyph test (redact._glyphs
finds none, so 3 characters must be read and no box grows along its row) and a coarse box that
crosses a kept marker (padded by PAD) dropped whole instead of cut. Counts: images with a box
(text-free), identifying strings >= 90 % covered, markers kept (< 10 % covered), CPU s per image
(process time of scan). Never prints text.

    PYTHONPATH=. .venv/bin/python bench/coarsegate_views.py CORPUS_DIR [--all] [--json OUT]

Without --all only the images with text are scanned (the gate's changes act only on coarse boxes
that reach it; bench/README.md says how the text-free images were checked).
"""
import json
import os
import sys
import time

import numpy as np
import pydicom

from vindr_cli.deid import pixeltext as pt
from vindr_cli.deid import redact

out = sys.argv[1]
truth = json.load(open(f"{out}/truth.json"))
masks = dict(np.load(f"{out}/truth_masks.npz"))
imgs = [r for r in truth["images"] if "--all" in sys.argv or r["class"] == "with_text"]
GLYPHS, CUT = redact._glyphs, redact._cut


def old_cut(box, holes, thin):
    x0, y0, x1, y1 = box
    return [] if any(x0 < m1 and m0 < x1 and y0 < n1 and n0 < y1 for m0, n0, m1, n1 in holes) else [box]


res = {m: {"fp": 0, "free": 0, "hit": 0, "tot": 0, "mk": 0, "mtot": 0, "boxes": 0, "cpu": []} for m in ("before", "now")}
differ = 0
load = [os.getloadavg()[0]]
for n, rec in enumerate(imgs):
    got = {}
    for mode in (("before", "now") if n % 2 == 0 else ("now", "before")):
        r = res[mode]
        if mode == "before":
            redact._glyphs, redact._cut = (lambda crop: []), old_cut
        try:
            ds = pydicom.dcmread(f"{out}/{rec['file']}")
            hints = pt.hints_from(ds)
            t = time.process_time()
            o = redact.scan(ds, pt.find_text, hints, large=True)
            r["cpu"].append(time.process_time() - t)
        finally:
            redact._glyphs, redact._cut = GLYPHS, CUT
        got[mode] = o.boxes
        r["boxes"] += len(o.boxes)
        red = np.zeros((int(ds.Rows), int(ds.Columns)), bool)
        for _, x0, y0, x1, y1 in o.boxes:
            red[y0:y1, x0:x1] = True
        if rec["class"] == "no_text":
            r["free"] += 1
            r["fp"] += int(bool(o.boxes))
        for s in rec.get("strings", []):
            x0, y0, x1, y1 = s["box"]
            g = masks[s["mask"]].astype(bool)
            cov = red[y0:y1, x0:x1][g].mean() if g.any() else 0
            if s["identifying"]:
                r["tot"] += 1
                r["hit"] += int(cov >= 0.9)
            else:
                r["mtot"] += 1
                r["mk"] += int(cov < 0.1)
    differ += got["before"] != got["now"]
    if n % 10 == 0:
        load.append(os.getloadavg()[0])
for mode, r in res.items():
    c = r.pop("cpu")
    r["cpu_s"] = round(float(np.mean(c)), 3)
result = {"corpus": {"seed": truth.get("seed"), "size": truth.get("size"), "images": len(imgs)},
          "images_whose_boxes_differ": differ, **res,
          "load_average_1min": {"min": round(min(load), 2), "max": round(max(load), 2)}}
print(json.dumps(result))
if "--json" in sys.argv:
    with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
        json.dump(result, f, indent=1)
