"""digits (issue 13): policy.found_in_digits as it was (tests/test_digits_oracle.py's frozen
reference, 16d50d3) and as it is, CPU seconds (``process_time``) of the same calls in one
process, alternated round robin, best of --rounds; the answers compared on every call.

Cases: the text views of a 65,535-entry OW LUT (16-bit entries 7 x i, review12's) and of 1 MiB
of random OW bytes, for a file's own few terms and for 20,000 peer terms (hostile10: a study of
10,000 files each naming another operator); and 1,000 short IS / LO values against those 20,000.

    PYTHONPATH=. python bench/digits_bench.py --json bench/results/digits_found_in_digits.json
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402

from bench_io import load_summary, write_record  # noqa: E402
from test_digits_oracle import ref_found_in_digits  # noqa: E402
from vindr_cli.deid import policy  # noqa: E402
from vindr_cli.deid.terms import build_terms, value_text, value_views  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rng = random.Random(13)
    own = ["PHAM^THI^KIEU", "40517263", "19790824", "BENH VIEN TAN PHU", "VO^MINH^TRIET"]
    peers = own + [f"{rng.randrange(10**7, 10**9)}" for _ in range(10000)] + [
        f"OP{i}^{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}NGUYEN" for i in range(10000)]
    lut = value_views((np.arange(65535, dtype="<u2") * 7).astype("<u2").tobytes(), "OW")[1]
    noise = value_views(bytes(rng.getrandbits(8) for _ in range(1 << 20)), "OW")[1]
    short = [value_text(str(rng.randrange(10**4, 10**9)), "IS") for _ in range(500)] + [
        f"LUNG {rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}" for _ in range(500)]
    cases = {"lut65535_own": (own, [(lut, "OW")]), "lut65535_20k": (peers, [(lut, "OW")]),
             "random1MiB_own": (own, [(noise, "OW")]), "short1000_20k": (peers, [(v, "IS") for v in short[:500]]
                                                                          + [(v, "LO") for v in short[500:]])}
    out = {"load_before": load_summary(list(os.getloadavg())), "rounds": a.rounds, "cases": {}}
    for name, (values, calls) in cases.items():
        ts = build_terms(values, include_dates=True)
        best = {"before": float("inf"), "after": float("inf")}
        for _ in range(a.rounds):
            for label, f in (("before", ref_found_in_digits), ("after", policy.found_in_digits)):
                t = time.process_time()
                got = [f(ts, text, vr) for text, vr in calls]
                best[label] = min(best[label], time.process_time() - t)
                if label == "before":
                    want = got
                else:
                    assert got == want, name
        out["cases"][name] = {"calls": len(calls), "found": sum(want), **{k: round(v, 4) for k, v in best.items()}}
        print(name, out["cases"][name], flush=True)
    out["load_after"] = load_summary(list(os.getloadavg()))
    if a.json:
        write_record(a.json, out)


if __name__ == "__main__":
    main()
