#!/usr/bin/env python3
"""Red team 10: the CPU share of the new searches (TermSet.found_packed, found_one_byte_lookalike,
found_split) in found_in_value, in one process (process_time, best of 7 loops), so a loaded
machine distorts the ratio far less than two trees timed apart. Cases as bench/lookalike_search_cost.py:
a Vietnamese and a Russian patient's terms; a 4096-entry US ramp LUT, 64 KiB of random OW bytes,
a 3-value US array.

Usage: PYTHONPATH=. python bench/redteam10_search_parts.py [--json FILE]
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from vindr_cli.deid.terms import build_terms, value_views

PEOPLE = {"vi": ["NGUYỄN^VĂN^THÀNH", "0077123", "19850312", "TRẦN^THỊ^HOA", "BENH VIEN BACH MAI"],
          "ru": ["Иванов^Сергей", "0077123", "19850312", "Петрова^Анна", "ГОРОДСКАЯ БОЛЬНИЦА"]}
rng = np.random.default_rng(10)
VALUES = {"ramp_us_4096": (list(range(0, 65536, 16)), "US"),
          "random_ow_64k": (rng.integers(0, 256, 65536, dtype=np.uint8).tobytes(), "OW"),
          "us_3": ([512, 512, 16], "US")}


def best(fn, n: int) -> float:
    out = []
    for _ in range(7):
        t = time.process_time()
        for _ in range(n):
            fn()
        out.append((time.process_time() - t) / n * 1e6)
    return min(out)


def main() -> None:
    res = {"unit": "microseconds of CPU per value", "load_1min_before": os.getloadavg()[0]}
    for who, people in PEOPLE.items():
        ts = build_terms(people, include_dates=True)
        for name, (value, vr) in VALUES.items():
            n = 3 if len(value) > 100 else 2000
            nums, views = value_views(value, vr)
            whole = best(lambda: ts.found_in_value(views, nums), n)
            new = best(lambda: (ts.found_packed(views), ts.found_one_byte_lookalike(views),
                                ts.found_split(views.numbers)), n)
            res[f"{who}/{name}"] = {"found_in_value": round(whole, 1), "new_parts": round(new, 1),
                                    "share": round(new / whole, 3)}
    res["load_1min_after"] = os.getloadavg()[0]
    text = json.dumps(res, indent=1)
    print(text)
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
