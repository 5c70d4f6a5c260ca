"""The finder's extra views of red team 4 (deid.redact.views / coarse) on the burned-in
corpus of bench/burned_in_corpus.py: each image through deid.redact.scan with the real finder
and the header's hints, once as vindr anonymize scans now (large=True: colour channels, the
clipped window, the coarse view) and once with the first view only (as before red team 4),
interleaved image by image (the order of the two alternating), so both see the same load.
Counts: text-free images modified (any box), identifying strings covered >= 90 %, markers
kept (< 10 % covered), CPU s per image by class (process time). Prints counts only, never text.

    PYTHONPATH=. .venv/bin/python bench/redteam4_views.py CORPUS_DIR [--limit N] [--save]
"""
import json
import os
import sys
import time

import numpy as np
import pydicom

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_truth import coverage, load  # noqa: E402

from vindr_cli.deid import pixeltext as pt
from vindr_cli.deid import redact

out = sys.argv[1]
limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
imgs, masks = load(out)
truth = json.load(open(f"{out}/truth.json"))      # its seed and size, for the record
imgs = imgs[:limit] if limit else imgs
ALL_VIEWS = redact.views


def first_view_only(frame, photometric, lum=None, rgb_lut=None):
    return ALL_VIEWS(frame, photometric, lum, rgb_lut)[:1]


res = {m: {"fp": 0, "free": 0, "hit": 0, "tot": 0, "mk": 0, "mtot": 0, "cpu": {"with_text": [], "no_text": []}}
       for m in ("before", "now")}
load = [os.getloadavg()[0]]
for n, rec in enumerate(imgs):
    for mode in (("before", "now") if n % 2 == 0 else ("now", "before")):
        r = res[mode]
        redact.views = first_view_only if mode == "before" else ALL_VIEWS
        try:
            ds = pydicom.dcmread(f"{out}/{rec['file']}")
            hints = pt.hints_from(ds)
            t = time.process_time()
            o = redact.scan(ds, pt.find_text, hints, large=(mode == "now"))
            r["cpu"][rec["class"]].append(time.process_time() - t)
        finally:
            redact.views = ALL_VIEWS
        red = np.zeros((int(ds.Rows), int(ds.Columns)), bool)
        for _, x0, y0, x1, y1 in o.boxes:
            red[y0:y1, x0:x1] = True
        if rec["class"] == "no_text":
            r["free"] += 1
            r["fp"] += int(bool(o.boxes))
        for s in rec.get("strings", []):
            cov = coverage(red, s, masks)
            if s["identifying"]:
                r["tot"] += 1
                r["hit"] += int(cov >= 0.9)
            else:
                r["mtot"] += 1
                r["mk"] += int(cov < 0.1)
    if n % 10 == 0:
        load.append(os.getloadavg()[0])
for mode, r in res.items():
    c = r.pop("cpu")
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
