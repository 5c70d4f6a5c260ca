"""termcache (issue 13): one file's searches against a study's peer terms, as the code was
(tests/termcache_ref.py, 139c8d4: ``person_terms(own + peers)``, the old TermSet and policy) and as
it is (``engine.file_person_terms``: the file's own set joined to the group's cached one, indexed
scans). CPU seconds (``process_time``) of the same calls in one process, alternated round robin,
best of --rounds; the answers compared on every call.

Cases, for P peer values (a study of N files each naming another operator gives ~3N: the name and
its parts run together): building the terms (the first file of a group, then the next); the text
views of a 65,535-entry OW LUT and of 1 MiB of random OW bytes (found_in_value, found_in_digits);
1,000 short LO / IS values (found_in, found_wide, found_in_digits); 1,000 short US arrays.

    PYTHONPATH=. python bench/termcache_scan_bench.py --peers 3000 30000 --json bench/results/termcache_scan.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402

import termcache_ref as ref  # noqa: E402
from vindr_cli.deid import engine, policy  # noqa: E402
from vindr_cli.deid.terms import tokens, value_text, value_views  # noqa: E402


def study(n: int) -> tuple[list[str], dict, tuple[str, ...]]:
    folds: dict[str, str] = {}
    own = ["NGUYEN^VAN^AN", "MRN0077123", "19850312"]
    own += [f for v in own if "^" in v for f in engine.name_forms(v, folds)]
    peers = tuple(sorted({f for i in range(n // 3) for v in [f"OPERATOR{i:05d}^HOANG"]
                          for f in [v, *engine.name_forms(v)]}))
    return own, folds, peers


def cases(rnd: random.Random) -> dict[str, list]:
    lut = np.arange(65535, dtype=np.uint32) * 7 % 65536
    noise = rnd.randbytes(1 << 20)
    short = [rnd.choice(["CHEST PA", "1.5", "OPERATOR0O12 HOANGX", "120", "HEAD^NECK", "SMITH", "3006-7891"])
             + str(rnd.randrange(1000)) for _ in range(1000)]
    arrays = [[rnd.randrange(65536) for _ in range(rnd.randint(2, 16))] for _ in range(1000)]
    return {"lut_64k": [("views", value_views(lut.astype(np.uint16).tobytes(), "OW"), "OW")],
            "random_1mib": [("views", value_views(noise, "OW"), "OW")],
            "short_text_1000": [("text", v, rnd.choice(["LO", "IS"])) for v in short],
            "short_us_1000": [("views", value_views(a, "US"), "US") for a in arrays]}


def answers(ts, digits, items) -> list:
    out = []
    for what, value, vr in items:
        if what == "text":
            text = value_text(value, vr)
            out.append((ts.found_in(tokens(text)), ts.found_wide(text), digits(ts, text, vr)))
        else:
            numbers, views = value
            out.append((ts.found_in_value(views, numbers), digits(ts, views, vr)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, nargs="+", default=[3000, 30000])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rnd = random.Random(13)
    work = cases(rnd)
    res = {"load": os.getloadavg(), "rounds": a.rounds, "cases": {}}
    for n in a.peers:
        own, folds, peers = study(n)
        engine._PEER_TERMS.clear()
        t = time.process_time()
        want = ref.ref_person_terms(own + list(peers), folds)
        build_ref = time.process_time() - t
        t = time.process_time()
        got, _ = engine.file_person_terms(own, folds, peers)
        build_new_first = time.process_time() - t
        t = time.process_time()
        got, _ = engine.file_person_terms(own, folds, peers)
        build_new_next = time.process_time() - t
        row = {"peer_values": len(peers), "build": {"before": round(build_ref, 4), "after_first": round(build_new_first, 4),
                                                    "after_next": round(build_new_next, 4)}}
        for name, items in work.items():
            best = {"before": [], "after": []}
            for _ in range(a.rounds):
                for label, ts, digits in (("before", want, ref.ref_found_in_digits), ("after", got, policy.found_in_digits)):
                    t = time.process_time()
                    out = answers(ts, digits, items)
                    best[label].append(time.process_time() - t)
                    best[label + "_answers"] = out
            assert best["before_answers"] == best["after_answers"], name
            row[name] = {"before": round(min(best["before"]), 4), "after": round(min(best["after"]), 4),
                         "found": sum(any(x) for x in best["after_answers"])}
            print(n, name, row[name], flush=True)
        print(n, "build", row["build"], flush=True)
        res["cases"][str(n)] = row
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
