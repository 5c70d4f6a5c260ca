"""find_text of two versions of vindr_cli/deid/pixeltext.py on the burned-in corpora,
interleaved (issue 10, red team 3's xfails).

Each image of each corpus (bench/burned_in_corpus.py) is shown as the redactor shows it
(min..max, MONOCHROME1 inverted, header hints) to version A and then version B, alternating
which goes first, in one process; CPU = process time of each find_text call. Counts as
bench/pixeltext_on_corpus.py: an identifying string is covered when >= 90 % of its glyph
pixels lie in a non-marker box, a marker is kept when < 10 % do; text-free images with a
non-marker box; load average at the start and end.

    PYTHONPATH=. python -P bench/pixeltext_ab.py --a OLD_pixeltext.py CORPUS [CORPUS ...]
        [--json bench/results/x.json]

(--b defaults to this checkout's vindr_cli/deid/pixeltext.py.)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_truth import coverage, display, load  # noqa: E402


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod            # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, default=Path(__file__).resolve().parent.parent / "vindr_cli/deid/pixeltext.py")
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    mods = {"A": _load(args.a, "pixeltext_a"), "B": _load(args.b, "pixeltext_b")}
    out = {"a": str(args.a), "b": str(args.b), "load_start": os.getloadavg(), "corpora": {}}
    for corpus in args.corpora:
        imgs, masks = load(corpus)
        res = {k: {"ident": 0, "ident_tot": 0, "markers": 0, "markers_tot": 0, "free_mod": 0, "free": 0,
                   "free_boxes": 0, "cpu_text": [], "cpu_free": []} for k in mods}
        for i, rec in enumerate(imgs):
            ds = pydicom.dcmread(corpus / rec["file"])
            img = display(ds)
            for k in (("A", "B") if i % 2 == 0 else ("B", "A")):
                pt, r = mods[k], res[k]
                hints = pt.hints_from(ds)
                t = time.process_time()
                boxes = pt.find_text(img, hints=hints)
                r["cpu_text" if rec["class"] == "with_text" else "cpu_free"].append(time.process_time() - t)
                red = np.zeros(img.shape, bool)
                for b in boxes:
                    if b.kind != "marker":
                        red[b.y0:b.y1, b.x0:b.x1] = True
                if rec["class"] == "no_text":
                    n = sum(b.kind != "marker" for b in boxes)
                    r["free"] += 1
                    r["free_mod"] += n > 0
                    r["free_boxes"] += n
                for s in rec.get("strings", []):
                    cov = coverage(red, s, masks)
                    if s["identifying"]:
                        r["ident_tot"] += 1
                        r["ident"] += cov >= 0.9
                    else:
                        r["markers_tot"] += 1
                        r["markers"] += cov < 0.1
        for k, r in res.items():
            ct, cf = r.pop("cpu_text"), r.pop("cpu_free")
            r["cpu_all"] = round(float(np.mean(ct + cf)), 3)
            r["cpu_text"] = round(float(np.mean(ct)), 3)
            r["cpu_free"] = round(float(np.mean(cf)), 3)
            r = {q: int(v) if isinstance(v, (np.integer, np.bool_)) else v for q, v in r.items()}
            res[k] = r
            print(corpus.name, k, r, flush=True)
        out["corpora"][corpus.name] = res
    out["load_end"] = os.getloadavg()
    print("load average start", out["load_start"], "end", out["load_end"])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
