"""The boxes `vindr anonymize --burned-in redact` masks on every small image (< 256 px a side) of
pydicom's bundled test files (those on disk; nothing is downloaded) and of sample_dicoms/export, for
one checkout (smallimg2). The export's files are numbered in path order, never named. Runs deid.redact.scan as the anonymize task does (the real finder, the
header's hints, ``large=True``), one process, file order; writes per image the boxes and kind
counts (never text) and the CPU of the scan. Run once per checkout, then compare:

    PYTHONPATH=A python -P bench/smallimg2_sweep.py --json a.json
    PYTHONPATH=B python -P bench/smallimg2_sweep.py --json b.json
    python bench/smallimg2_sweep.py --compare a.json b.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path


def files() -> list[tuple[str, Path]]:
    import pydicom.data

    root = Path(pydicom.data.__file__).parent / "test_files"
    export = Path(__file__).resolve().parent.parent / "sample_dicoms" / "export"
    out = [("pydicom/" + str(p.relative_to(root)), p) for p in sorted(root.rglob("*")) if p.is_file()]
    # the sample export's paths hold its (synthetic) patients' names: numbered, never named
    out += [(f"export/#{i:03d}", p) for i, p in enumerate(p for p in sorted(export.rglob("*")) if p.is_file())]
    return out


def sweep() -> dict:
    import numpy as np
    import pydicom

    import vindr_cli
    from vindr_cli.deid import pixeltext, redact

    pixeltext.find_text(np.zeros((64, 64), np.uint8))
    res = {"checkout": str(Path(vindr_cli.__file__).resolve().parent.parent), "load": [os.getloadavg()[0]],
           "images": {}}
    for name, path in files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
                if "PixelData" not in ds or max(int(ds.Rows), int(ds.Columns)) >= 256:
                    continue
                t = time.process_time()
                o = redact.scan(ds, pixeltext.find_text, pixeltext.hints_from(ds), large=True)
                cpu = time.process_time() - t
            res["images"][name] = {"shape": [int(ds.Rows), int(ds.Columns)], "boxes": [list(b) for b in o.boxes],
                                   "kinds": dict(o.kinds), "markers": o.markers, "cpu": round(cpu, 4)}
        except Exception as exc:        # an unreadable file: its exception's type only
            res["images"][name] = {"error": type(exc).__name__}
    res["load"].append(os.getloadavg()[0])
    return res


def compare(a: dict, b: dict) -> None:
    keys = sorted(set(a["images"]) | set(b["images"]))
    diff = [k for k in keys if {x: y for x, y in a["images"].get(k, {}).items() if x != "cpu"}
            != {x: y for x, y in b["images"].get(k, {}).items() if x != "cpu"}]
    ok = [k for k in keys if "boxes" in a["images"].get(k, {})]
    print(f"small images: {len(ok)} scanned, {len(keys) - len(ok)} unreadable; differing: {len(diff)}")
    for k in diff:
        print(" ", k, a["images"].get(k), "->", b["images"].get(k))
    ca = sum(a["images"][k].get("cpu", 0) for k in ok)
    cb = sum(b["images"].get(k, {}).get("cpu", 0) for k in ok)
    print(f"CPU total {ca:.2f} s -> {cb:.2f} s (ratio {cb / ca:.2f}); load {a['load']} / {b['load']}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--compare", nargs=2)
    args = ap.parse_args()
    if args.compare:
        compare(*(json.loads(Path(p).read_text()) for p in args.compare))
        sys.exit(0)
    r = sweep()
    Path(args.json).write_text(json.dumps(r, indent=1))
    print(len(r["images"]), "images")
