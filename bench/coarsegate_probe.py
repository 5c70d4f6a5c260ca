"""Every coarse box that reaches the coarse view's gate (deid.redact._large_text) on a burned-in
corpus (bench/burned_in_corpus.py): the image's class, the box's size and kind, whether the gate
counts it, how many letters/digits Tesseract reads in it (confidence >= the finder's, >= 30, any;
the better polarity) and the share of its pixels at an extreme of the display. Counts only,
never the text read. Used to choose the glyph test of issue 10's coarse gate (bench/README.md).

    PYTHONPATH=. .venv/bin/python bench/coarsegate_probe.py CORPUS_DIR OUT.json
"""
import json, re, sys
import numpy as np, pydicom
from vindr_cli.deid import pixeltext as pt, redact

out = sys.argv[1]
truth = json.load(open(f"{out}/truth.json"))
imgs = truth["images"]
orig = redact._large_text
rec = []
cur = {}
def probe(image, b):
    r = orig(image, b)
    crop = np.ascontiguousarray(image[max(0, int(b.y0)):int(b.y1), max(0, int(b.x0)):int(b.x1)])
    best = [0, 0, 0]  # chars conf>=CONF, chars conf>=30, chars any
    for c in (crop, 255 - crop):
        words = pt._read(np.ascontiguousarray(c))
        for i, th in enumerate((pt._CONF, 30, -1)):
            best[i] = max(best[i], sum(len(re.sub(r"\W", "", t)) for t, conf, _ in words if conf >= th))
    # contrast: share of crop pixels at the extremes of the image
    ext = float(((crop >= 250) | (crop <= 5)).mean()) if crop.size else 0
    rec.append(dict(file=cur["f"], cls=cur["c"], kind=str(b.kind), w=int(b.x1-b.x0), h=int(b.y1-b.y0), shape=list(image.shape),
                    passed=bool(r), read=best, ext=round(ext, 3)))
    return r
redact._large_text = probe
for rr in imgs:
    cur["f"], cur["c"] = rr["file"], rr["class"]
    ds = pydicom.dcmread(f"{out}/{rr['file']}")
    o = redact.scan(ds, pt.find_text, pt.hints_from(ds), large=True)
json.dump(rec, open(sys.argv[2], "w"), indent=0)
print(len(rec), "coarse boxes at the gate")
