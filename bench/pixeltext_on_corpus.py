"""find_text on the burned-in text corpus of bench/burned_in_corpus.py (branch btcorpus:
real CR/MR/CT/NM radiographs from pydicom and pydicom-data, 2048 x 2048, 1 in 5 with
text, truth boxes and glyph masks). The display is the redactor's: min..max of the stored
values, MONOCHROME1 inverted. Prints counts only.

    PYTHONPATH=. .venv/bin/python bench/pixeltext_on_corpus.py CORPUS_DIR [--hints]

A glyph is "covered" when a non-marker box holds it; an identifying string counts when
>= 90 % of its glyph pixels are covered, a marker is kept when < 10 % are.
"""
import os, sys, time
import numpy as np, pydicom
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_truth import coverage, display, load
from vindr_cli.deid import pixeltext as pt
out = sys.argv[1]
imgs, masks = load(out)
use_hints = "--hints" in sys.argv[2:]
cpu = {"with_text": [], "no_text": []}
hit = tot = mk = mtot = 0; fp_img = fp_box = 0; area = []; miss_kinds = {}
for rec in imgs:
    ds = pydicom.dcmread(f"{out}/{rec['file']}")
    img = display(ds)
    h = pt.hints_from(ds) if use_hints else None
    t = time.process_time(); boxes = pt.find_text(img, hints=h); cpu[rec["class"]].append(time.process_time() - t)
    red = np.zeros(img.shape, bool); kept = np.zeros(img.shape, bool)
    for b in boxes:
        (kept if b.kind == "marker" else red)[b.y0:b.y1, b.x0:b.x1] = True
    if rec["class"] == "no_text":
        fp_img += bool(boxes); fp_box += len(boxes); area.append(red.mean())
    for s in rec.get("strings", []):
        covered = coverage(red, s, masks)
        if s["identifying"]:
            tot += 1; ok = covered >= 0.9; hit += ok
            if not ok: miss_kinds[(s["kind"], s["size"], s["style"])] = round(float(covered), 2)
        else:
            mtot += 1; mk += covered < 0.1
print(f"hints={use_hints} identifying glyphs covered>=90%: {hit}/{tot}; markers kept: {mk}/{mtot}; "
      f"no-text images with boxes {fp_img}/{len(cpu['no_text'])} ({fp_box} boxes, mean area {100*np.mean(area):.3f}%); "
      f"CPU s/img all {np.mean(cpu['with_text']+cpu['no_text']):.3f} text {np.mean(cpu['with_text']):.3f} free {np.mean(cpu['no_text']):.3f}")
print("misses (kind,size,style)->coverage:", miss_kinds)
