"""Which text-free corpus images does the pipeline's scan modify, and why (issue 10)? For every
no_text image of a burned_in_corpus.py corpus: deid.redact.scan with the real finder and the
header hints (as vindr anonymize runs it: every view, the coarse one too); for each box that
survives, the view it came from and, for the finder's calls, every candidate it classified as
text-like with the features of the grain test (textured, central, ring ratio, coherence,
sharpness, glyph counts, inner size, letters read). Prints/writes numbers and boxes only, never
text.

    PYTHONPATH=. python -P bench/textfree_probe.py CORPUS [CORPUS ...] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pydicom

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from classify_hook import hook_classify  # noqa: E402
from vindr_cli.deid import pixeltext as P  # noqa: E402
from vindr_cli.deid import redact as R  # noqa: E402

LOG: list[dict] = []
CTX: dict = {}


def _record(orig, ratio, res, image, box, bright, hints, inner, stacked, textured, central):
    if res[3] and res[0] != "marker":
        crop = P._stretch(image, box, bright)
        LOG.append(dict(view=CTX.get("view"), box=list(map(int, box)), bright=bool(bright),
                        inner=list(map(int, inner)), stacked=bool(stacked), textured=bool(textured),
                        central=bool(central), ratio=ratio, kind=res[0], matched=res[1], confident=res[2],
                        alnum=sum(ch.isalnum() for ch in res[4]),
                        coh=round(P._coherence(crop), 3), sharp=round(P._sharpness(crop), 3),
                        glyphs=P._line_glyphs(crop), turned=P._turned_glyphs(crop),
                        shape=image.shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="+")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--all", action="store_true", help="also with_text images")
    a = ap.parse_args()
    hook_classify(_record)

    def finder(img, frame=0, hints=None, min_side=0):
        CTX["view"] = f"{img.shape[0]}x{img.shape[1]}:{int(img.mean())}"
        return P.find_text(img, frame=frame, hints=hints, min_side=min_side)
    out = []
    for c in a.corpus:
        truth = json.load(open(f"{c}/truth.json"))
        for rec in truth["images"]:
            if rec["class"] != "no_text" and not a.all:
                continue
            ds = pydicom.dcmread(f"{c}/{rec['file']}")
            LOG.clear()
            o = R.scan(ds, finder, P.hints_from(ds), large=True)
            if o.boxes:
                row = dict(corpus=Path(c).name, file=rec["file"], source=rec.get("source"), boxes=o.boxes,
                           cands=list(LOG))
                out.append(row)
                print(row["corpus"], row["file"], row["source"], "boxes", o.boxes)
                for L in LOG:
                    print("   ", {k: v for k, v in L.items() if k != "shape"})
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
