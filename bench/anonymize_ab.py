#!/usr/bin/env python3
"""CPU of whole `vindr anonymize --burned-in off -j 2` runs from several trees, interleaved.

One run per tree per round, round robin; CPU = user + system of the run and its workers
(RUSAGE_CHILDREN), which a busy machine distorts far less than wall time. Each tree is run as
``python -P -m vindr_cli`` with PYTHONPATH=TREE (see anonymize_identity.py for why -P).

Usage: python bench/anonymize_ab.py DATA label=TREE [label=TREE ...] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("trees", nargs="+", help="label=TREE")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.trees)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "keys").mkdir(mode=0o700)
        for r in range(args.rounds):
            for name, tree in trees.items():
                out = tmp / "out"
                shutil.rmtree(out, ignore_errors=True)
                (tmp / "out.linkage.parquet").unlink(missing_ok=True)
                r0, w = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                p = subprocess.run([sys.executable, "-P", "-m", "vindr_cli", "anonymize", str(args.data), str(out), "--key",
                                    str(tmp / "keys" / "k"), "--burned-in", "off", "-j", "2"],
                                   env=dict(os.environ, PYTHONPATH=str(Path(tree).resolve())), cwd=tmp, capture_output=True)
                w, r1 = time.perf_counter() - w, resource.getrusage(resource.RUSAGE_CHILDREN)
                user, sys_ = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
                print(f"{name} round {r + 1} rc {p.returncode} load {os.getloadavg()[0]:.1f}: CPU {user + sys_:.2f} s "
                      f"(user {user:.2f} sys {sys_:.2f}) wall {w:.2f}", flush=True)
                best[name] = min(best.get(name, 1e9), user + sys_)
    print("best CPU", {k: round(v, 2) for k, v in best.items()})


if __name__ == "__main__":
    main()
