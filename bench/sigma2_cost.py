"""CPU cost of pixeltext._blurred_rows (branch sigma2, issue 10): each image of a burned-in
corpus through deid.redact.scan (the real finder, every view, the header hints, as
`vindr anonymize` runs it) with the pass on and off (off: _blurred_rows returns no row),
interleaved image by image, the order alternating, best of --rounds per image and variant;
also the boxes of both (must differ only where the pass adds a box) and how many finder calls
ran the pass (textured images). Numbers only, never text.

    PYTHONPATH=. python -P bench/sigma2_cost.py CORPUS [CORPUS ...] [--rounds 2] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pydicom

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from vindr_cli.deid import pixeltext as P  # noqa: E402
from vindr_cli.deid import redact as R  # noqa: E402

ORIG = P._blurred_rows
CALLS = {"pass": 0, "rows": 0}


def counted(maps, taken):
    CALLS["pass"] += 1
    r = ORIG(maps, taken)
    CALLS["rows"] += len(r)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res = {"load_start": os.getloadavg(), "corpora": {}}
    for c in a.corpus:
        truth = json.load(open(f"{c}/truth.json"))
        cpu = {"on": {"with_text": 0.0, "no_text": 0.0}, "off": {"with_text": 0.0, "no_text": 0.0}}
        differ = {"with_text": 0, "no_text": 0}
        n = {"with_text": 0, "no_text": 0}
        for i, rec in enumerate(truth["images"]):
            ds = pydicom.dcmread(f"{c}/{rec['file']}")
            hints = P.hints_from(ds)
            best, boxes = {}, {}
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for _ in range(a.rounds):
                for v in order:
                    P._blurred_rows = counted if v == "on" else (lambda maps, taken: [])
                    t = time.process_time()
                    o = R.scan(ds, P.find_text, hints, large=True)
                    dt = time.process_time() - t
                    best[v] = min(best.get(v, dt), dt)
                    boxes[v] = sorted(o.boxes)
            P._blurred_rows = ORIG
            k = rec["class"]
            n[k] += 1
            for v in ("on", "off"):
                cpu[v][k] += best[v]
            differ[k] += boxes["on"] != boxes["off"]
        tot = sum(n.values())
        res["corpora"][Path(c).name] = {
            "images": n, "boxes_differ": differ,
            "cpu_s_per_image": {v: round((cpu[v]["with_text"] + cpu[v]["no_text"]) / tot, 4) for v in cpu},
            "cpu_s_per_image_by_class": {v: {k: round(cpu[v][k] / max(n[k], 1), 4) for k in n} for v in cpu},
        }
        print(Path(c).name, res["corpora"][Path(c).name], flush=True)
    res["finder_calls_running_the_pass"] = CALLS["pass"] // a.rounds
    res["rows_found"] = CALLS["rows"] // a.rounds
    res["load_end"] = os.getloadavg()
    print(res)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
