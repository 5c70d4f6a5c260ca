#!/usr/bin/env python3
"""The cost of anonymize's first pass (deid.studyterms: every header read for the people of
each study and patient) on a folder, in one run.

Round robin, best of ``--repeat``: ``vindr anonymize`` (CLI, ``-j --workers``) from this tree
and from ``--before TREE`` (a checkout without the pass, e.g. ``git archive`` of the commit
before it), with ``--burned-in off`` and the default ``redact``; and the pass alone (this
tree's ``runner.stage._survey`` through the same local pool, in this process). The load
average is recorded before and after.

Usage: python bench/studyterms_bench.py [--input sample_dicoms/export] --before TREE
                                        [--workers 2] [--repeat 5] [--workdir /tmp/x] [--results NAME]
Results: bench/results/studyterms.json (or NAME; the 2026-11-30 runs: studyterms_sample_*.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_cli(tree: Path, src: Path, out: Path, key: Path, workers: int, burned_in: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.with_name(out.name + ".linkage.parquet").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, "-P", "-m", "vindr_cli", "anonymize", str(src), str(out), "--key", str(key),
           "-j", str(workers), "--burned-in", burned_in]
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=out.parent)
    return time.perf_counter() - t


def pass_alone(src: Path, workers: int) -> tuple[float, int, int]:
    """(seconds, inputs, inputs given peers) of the first pass alone, through the local pool."""
    from vindr_cli.deid import studyterms
    from vindr_cli.runner.discover import discover
    from vindr_cli.runner.executor import make_executor
    from vindr_cli.runner.stage import Survey, _survey

    t = time.perf_counter()
    sources = discover(src)
    people = studyterms.StudyPeople()
    survey = Survey(studyterms.people_of, studyterms.setup, studyterms.PeopleConfig(), sources, people.take)
    _survey(make_executor(workers, len(sources)), survey, None)
    seconds = time.perf_counter() - t
    return seconds, len(sources), sum(1 for s in sources if people.peers(s))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", type=Path, default=ROOT / "sample_dicoms" / "export")
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/studyterms_bench"))
    ap.add_argument("--results", default="studyterms.json")
    a = ap.parse_args()
    work = a.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "keys").mkdir(parents=True, mode=0o700)
    key = work / "keys" / "bench.key"
    trees = {"studyterms": ROOT, "before": a.before.resolve()}
    load = [os.getloadavg()]
    best: dict[str, float] = {}
    runs: dict[str, list[float]] = {}
    for _ in range(a.repeat):
        for mode in ("off", "redact"):
            for name, tree in trees.items():
                label = f"{name} --burned-in {mode}"
                s = run_cli(tree, a.input.resolve(), work / "out", key, a.workers, mode)
                runs.setdefault(label, []).append(round(s, 3))
                best[label] = min(best.get(label, s), s)
        s, n, given = pass_alone(a.input.resolve(), a.workers)
        runs.setdefault("pass alone", []).append(round(s, 3))
        best["pass alone"] = min(best.get("pass alone", s), s)
    load.append(os.getloadavg())
    for mode in ("off", "redact"):
        b, t = best[f"before --burned-in {mode}"], best[f"studyterms --burned-in {mode}"]
        print(f"--burned-in {mode}: before {b:.2f} s, studyterms {t:.2f} s, ratio {t / b:.3f}")
    print(f"pass alone: {best['pass alone']:.3f} s for {n} inputs ({given} given peers)")
    print(f"load average before {load[0]}, after {load[1]}")
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "input": str(a.input), "inputs": n,
           "inputs_given_peers": given, "workers": a.workers, "repeat": a.repeat, "best_s": best, "runs_s": runs,
           "load_before": load[0], "load_after": load[1], "cpus": os.cpu_count(), "python": platform.python_version()}
    out = ROOT / "bench" / "results" / a.results
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
