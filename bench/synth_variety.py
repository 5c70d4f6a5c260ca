#!/usr/bin/env python3
"""Do synthetic patients look like different people? Pairwise 64-bit pHash distances.

For each kind (frontal chest, lateral chest, lumbar and cervical spine AP), N synthetic
radiographs of N different fake patients are written by vindr_cli.synth
(``write_radiograph``, the same path as bench/select_bench.py and, for the anatomy, as
sample_dicoms/) and hashed the way ``vindr select`` hashes them
(``vindr_cli.pixels.phash.phash_file``: header-windowed display, 256 thumbnail, 64-bit DCT).
Reported per kind: the smallest pairwise distance, how many pairs are within 2 bits (the
threshold of schemas/curate/phash.toml) and within 8 (the loosest a user may raise it to),
and, for the first ``--copies`` images, the distance between the image and the same pixels
stored in another transfer syntax (RLE lossless, JPEG 2000 lossless), which must stay 0-2,
and the pixel QC flags ``vindr select`` gives the films (``curate.look.look_at``; "none"
counts films without a flag): a frontal film flagged ``inverted`` would be excluded.

Usage: python bench/synth_variety.py [--patients 200] [--size 320x288] [--copies 20]
Results: bench/results/synth_variety.json (figures copied by hand into bench/README.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from vindr_cli.curate.look import look_at  # noqa: E402
from vindr_cli.pixels.phash import phash_file  # noqa: E402
from vindr_cli.synth.export import write_radiograph  # noqa: E402

EXPLICIT, RLE, J2K = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"
KINDS = {"chest-pa": ("CHEST", "PA"), "chest-lateral": ("CHEST", "LL"),
         "lspine-ap": ("LSPINE", "AP"), "cspine-ap": ("CSPINE", "AP")}


def _write_hash(tmp: Path, name: str, flags: Counter | None = None, **kw) -> str:
    path = tmp / f"{name}.dcm"
    write_radiograph(path, **kw)
    h = phash_file(path)
    if flags is not None:                      # the pixel QC flags of `vindr select`
        look = look_at(path)
        assert look.phash == h
        flags.update(look.qc_flags or ("none",))
    path.unlink()
    return h


def measure(kind: str, n: int, rows: int, cols: int, copies: int, tmp: Path) -> dict:
    body_part, view = KINDS[kind]
    hashes, flags, copy_distances = [], Counter(), []
    for i in range(n):
        photometric = "MONOCHROME1" if i % 3 == 0 else "MONOCHROME2"
        kw = dict(index=i, rows=rows, cols=cols, photometric=photometric, seed=7 + i, verify=False,
                  body_part=body_part, view=view)
        hashes.append(_write_hash(tmp, f"{kind}-{i}", flags, transfer_syntax=EXPLICIT, **kw))
        if i < copies:
            for ts in (RLE, J2K):
                other = _write_hash(tmp, f"{kind}-{i}-copy", transfer_syntax=ts, **kw)
                copy_distances.append((int(hashes[-1], 16) ^ int(other, 16)).bit_count())
    vals = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    dist = np.bitwise_count(vals[:, None] ^ vals[None, :])
    iu = np.triu_indices(n, 1)
    pairs = dist[iu]
    return {"kind": kind, "patients": n, "pairs": int(pairs.size), "min": int(pairs.min()),
            "p1": float(np.percentile(pairs, 1)), "median": float(np.median(pairs)),
            "pairs_le_2": int((pairs <= 2).sum()), "pairs_le_8": int((pairs <= 8).sum()),
            "identical_hashes": int((pairs == 0).sum()), "qc_flags": dict(sorted(flags.items())),
            "same_pixels_other_syntax_max": max(copy_distances) if copy_distances else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--size", default="320x288", help="ROWSxCOLS (sample_dicoms' chest PA size by default)")
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "synth_variety.json")
    a = ap.parse_args()
    rows, cols = (int(v) for v in a.size.split("x"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in a.kinds.split(","):
            start = time.perf_counter()
            r = measure(kind, a.patients, rows, cols, a.copies, Path(tmp))
            r["size"] = a.size
            r["seconds"] = round(time.perf_counter() - start, 1)
            results.append(r)
            print(json.dumps(r))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2) + "\n")

if __name__ == "__main__":
    main()
