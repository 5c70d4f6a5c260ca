#!/usr/bin/env python3
"""Best wall and best CPU of shell commands run round robin (startup3, issue 13).

Each round runs every command once, in the order given; CPU = user + system of the command
and its children (RUSAGE_CHILDREN), which a busy machine distorts far less than wall time.
``--pre CMD`` runs before each command (e.g. removing the previous output); the load average
is recorded before and after. A command that fails is reported with its exit code and the end
of its stderr, and the script exits 1.

Usage: python bench/roundrobin.py [--rounds 9] [--pre CMD] [--results FILE.json] label=COMMAND ...
Example (a one-file run from two trees; see bench/README.md, "Start-up, startup3"):
  python bench/roundrobin.py --rounds 15 --pre 'rm -rf /tmp/o_*' \
    "main=PYTHONPATH=/tmp/ab_main python -P -m vindr_cli anonymize one /tmp/o_a --key k --burned-in off" \
    "tree=PYTHONPATH=$PWD python -P -m vindr_cli anonymize one /tmp/o_b --key k --burned-in off"
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("commands", nargs="+", help="label=COMMAND (run by the shell)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--pre", help="shell command run before each timed one (not timed)")
    ap.add_argument("--results", type=Path, help="write the figures here as JSON")
    args = ap.parse_args()
    commands = [c.split("=", 1) for c in args.commands]
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in commands}
    load = [round(x, 2) for x in os.getloadavg()]
    failed = False
    for _ in range(args.rounds):
        for label, cmd in commands:
            if args.pre:
                subprocess.run(args.pre, shell=True, check=False)
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            p = subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if p.returncode:
                failed = True
                print(f"{label}: exit {p.returncode}: {p.stderr.decode(errors='replace')[-300:]}", file=sys.stderr)
            runs[label].append((wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)))
    after = [round(x, 2) for x in os.getloadavg()]
    out = {label: {"best_wall_s": round(min(w for w, _ in r), 3), "best_cpu_s": round(min(c for _, c in r), 3),
                   "cpu_s": sorted(round(c, 3) for _, c in r)} for label, r in runs.items()}
    print(f"load average {load[0]} -> {after[0]}, {args.rounds} rounds")
    for label, r in out.items():
        print(f"{label:30s} wall {r['best_wall_s']:.3f}  cpu {r['best_cpu_s']:.3f}")
    if args.results:
        args.results.write_text(json.dumps({"runs": out, "commands": dict(commands), "rounds": args.rounds,
                                            "load_average": [load, after], "cpus": os.cpu_count(),
                                            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
                                           indent=1) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
