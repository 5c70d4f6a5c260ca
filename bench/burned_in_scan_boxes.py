"""The boxes `vindr anonymize --burned-in redact` masks, per image, for one checkout (issue 10, speed).

Runs `deid.redact.scan` exactly as the anonymize task does (the real finder, the header's hints,
the coarse view: ``large=True``) on every image of one or more burned_in_corpus.py corpora, in
file order, in one process, and writes per image: the boxes (frame, x0, y0, x1, y1), the kind
counts, the markers kept and the CPU (process time) of the scan. Run it once per checkout
(``PYTHONPATH=CHECKOUT``; the checkout imported is recorded), then compare:

    PYTHONPATH=A python -P bench/burned_in_scan_boxes.py CORPUS... --json a.json
    PYTHONPATH=B python -P bench/burned_in_scan_boxes.py CORPUS... --json b.json
    python bench/burned_in_scan_boxes.py --compare a.json b.json

Boxes, never text, are written. A speed change that claims "the same boxes" must show no image
differing here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def scan_all(corpora: list[Path]) -> dict:
    import numpy as np
    import pydicom

    import vindr_cli
    from vindr_cli.deid import pixeltext, redact

    pixeltext.find_text(np.zeros((64, 64), np.uint8))       # the engine's start-up is not counted
    out = {"checkout": str(Path(vindr_cli.__file__).resolve().parent.parent), "load": [os.getloadavg()[0]],
           "images": {}}
    for corpus in corpora:
        for cls in ("with_text", "no_text"):
            for path in sorted((corpus / cls).glob("*.dcm")):
                ds = pydicom.dcmread(path)
                hints = pixeltext.hints_from(ds)
                t0 = time.process_time()
                res = redact.scan(ds, pixeltext.find_text, hints, large=True)
                cpu = time.process_time() - t0
                out["images"][f"{corpus.name}/{cls}/{path.name}"] = {
                    "class": cls, "boxes": [list(b) for b in res.boxes], "kinds": dict(res.kinds),
                    "markers": res.markers, "cpu_s": round(cpu, 4)}
    out["load"].append(os.getloadavg()[0])
    return out


def compare(a: dict, b: dict) -> int:
    diff = [k for k in a["images"] if k in b["images"] and
            (a["images"][k]["boxes"], a["images"][k]["kinds"], a["images"][k]["markers"])
            != (b["images"][k]["boxes"], b["images"][k]["kinds"], b["images"][k]["markers"])]
    for name, d in (("A", a), ("B", b)):
        imgs = d["images"].values()
        cpu = {c: [v["cpu_s"] for v in imgs if v["class"] == c] for c in ("with_text", "no_text")}
        allc = cpu["with_text"] + cpu["no_text"]
        print(f"{name} {d['checkout']}: {len(allc)} images, scan CPU s per image all / with text / text-free "
              f"{sum(allc) / max(1, len(allc)):.4f} / {sum(cpu['with_text']) / max(1, len(cpu['with_text'])):.4f} / "
              f"{sum(cpu['no_text']) / max(1, len(cpu['no_text'])):.4f} (load {d['load']})")
    print(f"images compared {len(set(a['images']) & set(b['images']))}; differing (boxes, kinds or markers): {len(diff)}")
    for k in diff:
        print(" ", k, a["images"][k]["boxes"], a["images"][k]["kinds"], "->", b["images"][k]["boxes"], b["images"][k]["kinds"])
    return 1 if diff else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="*", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--compare", nargs=2, type=Path)
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*(json.loads(p.read_text()) for p in args.compare)))
    res = scan_all(args.corpus)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "images"}))


if __name__ == "__main__":
    main()
