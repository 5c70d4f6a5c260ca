"""The burned-in scan, old path against new, on a whole burned_in_corpus.py corpus (issue 10).

For every image, in one process, interleaved (old, new, old, new, ...; best of --rounds):
deid.redact.scan with pixeltext.find_text and the header hints, through
  old: the float display, pydicom's default decoder, scipy.ndimage min/max filters and
       np.percentile/np.median on every candidate region (the code before the speed work,
       kept in tests/test_redact_speed.py as oracles);
  new: the code of this checkout (display lookup table, pylibjpeg for JPEG 2000, numpy
       sliding-window min/max, order-statistic bounds, strided block sums).
It checks both give the same boxes, kinds, markers and masked values, and reports the CPU
time (time.process_time) of each, per class (with_text / no_text). The load average is
printed with the figures (the machine is shared).

Usage: python bench/burned_in_speed_equal.py CORPUS [CORPUS ...] [--rounds 2] [--json OUT]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pydicom

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from vindr_cli.deid import pixeltext, redact  # noqa: E402
from test_redact_speed import (reference_components, reference_display, reference_filt,  # noqa: E402
                               reference_quiet_test, reference_work)


@contextlib.contextmanager
def old_path():
    saved = (redact.display, redact._PREFERRED, pixeltext._filt, pixeltext._quiet_test, pixeltext._work,
             pixeltext._components)
    redact.display, redact._PREFERRED = reference_display, {}
    pixeltext._filt, pixeltext._quiet_test, pixeltext._work = reference_filt, reference_quiet_test, reference_work
    pixeltext._components = reference_components
    try:
        yield
    finally:
        (redact.display, redact._PREFERRED, pixeltext._filt, pixeltext._quiet_test, pixeltext._work,
         pixeltext._components) = saved


def one(raw: bytes):
    ds = pydicom.dcmread(io.BytesIO(raw))
    hints = pixeltext.hints_from(ds)
    t0 = time.process_time()
    out = redact.scan(ds, pixeltext.find_text, hints)
    return time.process_time() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path, nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    load = [os.getloadavg()[0]]
    res = {"images": 0, "different": 0, "cpu": {}}
    for corpus in a.corpus:
        for f in sorted(corpus.glob("*/*.dcm")):
            raw = f.read_bytes()
            best = {"old": 1e9, "new": 1e9}
            outs = {}
            for _ in range(a.rounds):
                for which in ("old", "new"):
                    if which == "old":
                        with old_path():
                            t, o = one(raw)
                    else:
                        t, o = one(raw)
                    best[which] = min(best[which], t)
                    outs[which] = o
            o, n = outs["old"], outs["new"]
            same = (o.boxes == n.boxes and o.kinds == n.kinds and o.markers == n.markers
                    and ((o.arr is None and n.arr is None) or (o.arr is not None and n.arr is not None
                                                               and np.array_equal(o.arr, n.arr))))
            res["images"] += 1
            res["different"] += 0 if same else 1
            for cls in ("all", f.parent.name):
                c = res["cpu"].setdefault(cls, {"n": 0, "old": 0.0, "new": 0.0})
                c["n"] += 1
                c["old"] += best["old"]
                c["new"] += best["new"]
            load.append(os.getloadavg()[0])
            print(f"{res['images']} images, {res['different']} different", file=sys.stderr, flush=True)
    for c in res["cpu"].values():
        c["old"], c["new"] = round(c["old"] / c["n"], 4), round(c["new"] / c["n"], 4)
        c["ratio"] = round(c["new"] / c["old"], 3)
    res["load_average"] = {"min": min(load), "max": max(load), "mean": round(float(np.mean(load)), 2)}
    res["corpora"] = [str(c) for c in a.corpus]
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
