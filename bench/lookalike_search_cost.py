#!/usr/bin/env python3
"""The cost of the name search over kept values (deid.terms: value_views + TermSet.found_in_value,
tokens + found_in / found_wide) before and after issue 13's look-alike search, per value.

Each tree is timed in its own process (PYTHONPATH=TREE), the trees round robin, best of
``--rounds``; inside a process each case is the best of 7 runs of a loop. The load average is
recorded before and after. Cases: a Vietnamese and a Russian patient's terms (as the anonymizer
builds them from a header) searched in a 4096-entry US ramp LUT, 64 KiB of random OW bytes, a 3-value
US array and a short kept text.

Usage: python bench/lookalike_search_cost.py before=TREE after=TREE [--rounds 5] [--json FILE]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CHILD = r'''
import json, time
import numpy as np
from vindr_cli.deid.terms import TermSet, tokens, value_views

def terms(*values):
    ts = TermSet()
    for v in values:
        ts.add(v)
    return ts

people = {"vi": terms("NGUYỄN^THỊ^HƯƠNG", "NGUYỄNTHỊHƯƠNG", "BN0012345", "19850312"),
          "ru": terms("Ivanov^Sergei=Иванов^Сергей", "BN0012345", "19850312")}
rng = np.random.default_rng(5)
values = {"ramp_us_4096": (list(range(0, 65536, 16)), "US"),
          "random_ow_64k": (rng.integers(0, 256, 65536, dtype=np.uint8).tobytes(), "OW"),
          "us_3": ([40, 400, 1200], "US")}
out = {}
for who, ts in people.items():
    for name, (v, vr) in values.items():
        n = 3 if len(v) > 100 else 2000
        best = float("inf")
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(n):
                d, text = value_views(v, vr)
                ts.found_in_value(text, d)
            best = min(best, (time.perf_counter() - t) / n)
        out[f"{who}/{name}"] = best * 1e6
    best = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(2000):
            s = "CT01 STATION Ñ 2"
            ts.found_in(tokens(s)) or ts.found_wide(s)
        best = min(best, (time.perf_counter() - t) / 2000)
    out[f"{who}/text"] = best * 1e6
print(json.dumps(out))
'''


def main() -> None:
    trees = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a and not a.startswith("--"))
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    dest = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    load = [os.getloadavg()[0]]
    best: dict[str, dict[str, float]] = {k: {} for k in trees}
    for _ in range(rounds):
        for label, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=tree)
            p = subprocess.run([sys.executable, "-P", "-c", CHILD], env=env, capture_output=True, text=True, check=True)
            for case, us in json.loads(p.stdout).items():
                best[label][case] = min(best[label].get(case, float("inf")), us)
    load.append(os.getloadavg()[0])
    result = {"unit": "microseconds per value (value_views + found_in_value; text: tokens + found_in/found_wide)",
              "rounds": rounds, "load_1min_before_after": load, "best": best,
              "ratio": {c: round(best[list(trees)[1]][c] / best[list(trees)[0]][c], 3) for c in best[list(trees)[0]]}
              if len(trees) == 2 else None, "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result, indent=1))
    if dest:
        with open(dest, "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
