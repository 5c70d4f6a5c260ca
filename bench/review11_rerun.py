#!/usr/bin/env python3
"""The cost of review 11's first pass on a complete re-run (every input done): before, the re-run
read nothing; now it reads every input's header (deid.studyterms) to know whether a done output's
study gained a file. `vindr anonymize EXPORT OUT` is run once per tree, then the re-run is timed,
the trees round robin in their own processes, best of ``--rounds``; load average recorded.

Usage: python bench/review11_rerun.py before=TREE after=TREE [--export DIR] [--rounds 3] [--json FILE]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    trees = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("--"))
    opts = dict(zip(argv[::1], argv[1::1]))
    rounds = int(opts.get("--rounds", 3))
    export = opts.get("--export", str(Path(__file__).resolve().parent.parent / "sample_dicoms" / "export"))
    base = Path(tempfile.mkdtemp(prefix="review11_rerun_"))
    key = base / "keys" / "vindr.key"
    key.parent.mkdir(mode=0o700)       # the key: made by the first run (vindr refuses a non-random one)

    def run(name: str) -> float:
        env = dict(os.environ, PYTHONPATH=trees[name])
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vindr_cli", "anonymize", export, str(base / name), "--key", str(key),
                        "--burned-in", "off", "-j", "2"], env=env, check=True, capture_output=True)
        return time.perf_counter() - t0

    for name in trees:
        run(name)                                   # the first run: every output written
    load0 = os.getloadavg()[0]
    best = {name: min(run(name) for _ in range(1)) for name in trees}
    for _ in range(rounds - 1):
        for name in trees:
            best[name] = min(best[name], run(name))
    load1 = os.getloadavg()[0]
    out = {"unit": "seconds, complete re-run of vindr anonymize -j 2 --burned-in off", "export": export,
           "rounds": rounds, "load_1min_before_after": [load0, load1], "best": best,
           "ratio": round(best["after"] / best["before"], 3) if {"before", "after"} <= set(best) else None,
           "date": time.strftime("%Y-%m-%d")}
    text = json.dumps(out, indent=1)
    print(text)
    if "--json" in opts:
        Path(opts["--json"]).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
