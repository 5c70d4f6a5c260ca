"""Where the burned-in scan's CPU goes, per phase and per transfer syntax (issue 10, speed).

For every image of a burned_in_corpus.py corpus, in one process, the CPU time
(time.process_time) of each phase of `vindr anonymize --burned-in redact`'s pixel path:
read (header + hash of the pixel element, as the task does), dcmread of the whole file,
decode (pixel_array), display (the finder's 8-bit view), find_text (with the header hints)
and, for an image with boxes, re-encode (deid.redact.apply). With --decoders it also times
every available decoding plugin on the same frames, and checks they decode the same values.

Usage: python bench/burned_in_phases.py CORPUS [--limit N] [--decoders] [--json OUT]
The figures depend on the machine's load: note the load average printed with them.
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vindr_cli.deid import pixeltext, redact  # noqa: E402


def _t(fn, *a, **k):
    t0 = time.process_time()
    r = fn(*a, **k)
    return r, time.process_time() - t0


def phases(path: Path) -> dict:
    raw = path.read_bytes()
    out: dict = {}
    ds, out["dcmread"] = _t(lambda: pydicom.dcmread(io.BytesIO(raw)))
    ts = str(ds.file_meta.TransferSyntaxUID)
    hints = pixeltext.hints_from(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (arr, photometric), out["decode"] = _t(redact._frames, ds)
    img, out["display"] = _t(redact.display, arr[0], photometric)
    boxes, out["find_text"] = _t(pixeltext.find_text, img, 0, hints)
    o, out["scan_total"] = _t(redact.scan, pydicom.dcmread(io.BytesIO(raw)), pixeltext.find_text, hints)
    if o.arr is not None:
        d2 = copy.deepcopy(ds)
        _, out["apply"] = _t(redact.apply, d2, o, ts)
    return {"ts": pydicom.uid.UID(ts).name, "boxes": len(o.boxes), "t": out}


def decoders(path: Path) -> dict:
    from pydicom.pixels import get_decoder, pixel_array
    ds = pydicom.dcmread(path)
    ts = ds.file_meta.TransferSyntaxUID
    if not ts.is_compressed:
        return {}
    res, ref = {}, None
    for plugin in get_decoder(ts).available_plugins:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                arr, t = _t(pixel_array, ds, decoding_plugin=plugin)
            except Exception as exc:  # noqa: BLE001
                res[plugin] = f"failed ({type(exc).__name__})"
                continue
        same = True if ref is None else bool(np.array_equal(ref, arr))
        ref = arr if ref is None else ref
        res[plugin] = {"cpu": round(t, 4), "same": same}
    return {"ts": ts.name, "plugins": res}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--decoders", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    files = sorted(a.corpus.glob("*/*.dcm"))
    if a.limit:
        files = files[:a.limit]
    load0 = os.getloadavg()
    rows = [dict(phases(f), cls=f.parent.name) for f in files]
    agg: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for k, v in r["t"].items():
            agg[r["ts"]][k].append(v)
            agg["ALL " + r["cls"]][k].append(v)
            agg["ALL"][k].append(v)
    print(f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f}; {len(rows)} images")
    keys = ["dcmread", "decode", "display", "find_text", "scan_total", "apply"]
    print(f"{'group':45s} n   " + " ".join(f"{k:>10s}" for k in keys))
    for g, d in sorted(agg.items()):
        n = len(d["decode"])
        print(f"{g[:45]:45s} {n:3d} " + " ".join(
            f"{np.mean(d[k]):10.4f}" if d.get(k) else f"{'-':>10s}" for k in keys))
    dec = []
    if a.decoders:
        for f in files:                     # up to 3 images per compressed syntax
            r = decoders(f)
            if r and sum(1 for x in dec if x["ts"] == r["ts"]) < 3:
                dec.append(r)
        for r in dec:
            print(r["ts"][:40], r["plugins"])
    if a.json:
        a.json.write_text(json.dumps({"load": [load0, os.getloadavg()], "rows": rows, "decoders": dec}, indent=1))


if __name__ == "__main__":
    main()
