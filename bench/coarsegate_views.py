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
import contextlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_truth import scan_ab  # noqa: E402

from vindr_cli.deid import redact

out = sys.argv[1]
truth = json.load(open(f"{out}/truth.json"))
masks = dict(np.load(f"{out}/truth_masks.npz"))
imgs = [r for r in truth["images"] if "--all" in sys.argv or r["class"] == "with_text"]
GLYPHS, CUT = redact._glyphs, redact._cut


def old_cut(box, holes, thin):
    x0, y0, x1, y1 = box
    return [] if any(x0 < m1 and m0 < x1 and y0 < n1 and n0 < y1 for m0, n0, m1, n1 in holes) else [box]


@contextlib.contextmanager
def old_gate():
    redact._glyphs, redact._cut = (lambda crop: []), old_cut
    try:
        yield
    finally:
        redact._glyphs, redact._cut = GLYPHS, CUT


res, load, differ = scan_ab(out, imgs, masks, {"before": (old_gate, True), "now": (contextlib.nullcontext, True)})
for mode, r in res.items():
    c = r.pop("cpu")
    r["cpu_s"] = round(float(np.mean(c["with_text"] + c["no_text"])), 3)
result = {"corpus": {"seed": truth.get("seed"), "size": truth.get("size"), "images": len(imgs)},
          "images_whose_boxes_differ": differ, **res,
          "load_average_1min": {"min": round(min(load), 2), "max": round(max(load), 2)}}
print(json.dumps(result))
if "--json" in sys.argv:
    with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
        json.dump(result, f, indent=1)
