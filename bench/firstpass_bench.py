#!/usr/bin/env python3
"""The first pass's own cost per header: ``people_of`` with the raw walk (deid.peoplescan) and
without it (pydicom's read, the old pass), alternately, in one process, CPU seconds.

For each folder: every input once untimed (warm), then ``--repeat`` rounds of (old, new) over
all inputs, each round's CPU time (``time.process_time``; the walk's memo of converted
elements emptied before each round, as a run's pass sees each file once), the best kept; also how many inputs
the walk answered itself and whether both give the same answers (they must).

Usage: python bench/firstpass_bench.py FOLDER... [--repeat 5] [--results firstpass_pass.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--results", default=None, help="file name under bench/results/")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import vindr_cli.deid.peoplescan as peoplescan
    from vindr_cli.deid.studyterms import PeopleConfig, people_of, setup
    from vindr_cli.runner.discover import discover

    new, old = setup(PeopleConfig()), PeopleConfig(scan=False)
    out = {"load_start": os.getloadavg(), "repeat": args.repeat, "folders": {}}
    for folder in args.folders:
        sources = discover(folder)
        walked = 0
        real = peoplescan.scan
        for src in sources:
            try:
                with src.open() as f:
                    if src.member is None:
                        real(f, src.size, "normalised", [])
                        walked += 1
            except Exception:
                pass
        same = all(people_of(new, s) == people_of(old, s) for s in sources)
        rounds = {"old": [], "new": []}
        for _ in range(args.repeat):
            for name, cfg in (("old", old), ("new", new)):
                getattr(peoplescan, "_MEMO", {}).clear()     # each round one pass: a value seen once more is not free
                t = time.process_time()
                for s in sources:
                    people_of(cfg, s)
                rounds[name].append(time.process_time() - t)
        n = len(sources)
        row = {"inputs": n, "walked": walked, "same_answers": same,
               "old_ms_per_input": round(min(rounds["old"]) / n * 1000, 3),
               "new_ms_per_input": round(min(rounds["new"]) / n * 1000, 3),
               "rounds_s": {k: [round(v, 4) for v in vs] for k, vs in rounds.items()}}
        out["folders"][str(folder)] = row
        print(folder, {k: v for k, v in row.items() if k != "rounds_s"}, flush=True)
    out["load_end"] = os.getloadavg()
    if args.results:
        (ROOT / "bench" / "results" / args.results).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
