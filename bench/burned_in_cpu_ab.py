"""CPU of `vindr anonymize --burned-in redact` for two checkouts, interleaved (issue 10, speed).

For each corpus (bench/burned_in_corpus.py), each round runs `vindr anonymize --burned-in
MODE -j N` on with_text/ and on no_text/ with the code of checkout A, then of checkout B
(the `vindr` entry point of this interpreter's environment, with PYTHONPATH set to the
checkout, so each run imports its own vindr_cli; the script checks it does). CPU = user +
system time of the anonymize process and its workers (getrusage of the children). Per class
the best of the rounds is kept (least disturbed by the other jobs on a shared machine) and
the per-image figure over the corpus is (with_text + no_text) / images. The load average is
recorded at each run.

Usage: python bench/burned_in_cpu_ab.py --a DIR --b DIR CORPUS [CORPUS ...] [--rounds 2]
       [-j 2] [--mode redact] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VINDR = Path(sys.executable).parent / "vindr"


def _env(checkout: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    r = subprocess.run([sys.executable, "-c", "import vindr_cli, pathlib; print(pathlib.Path(vindr_cli.__file__).resolve())"],
                       env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    if not r.stdout.strip().startswith(str(checkout.resolve())):
        raise SystemExit(f"PYTHONPATH={checkout} does not import its own vindr_cli")
    return env


def run(checkout: Path, env: dict, src: Path, work: Path, mode: str, workers: int) -> dict:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    link = work / "out.linkage.parquet"
    link.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([str(VINDR), "anonymize", str(src), str(out), "--key", str(work / "vindr.key"), "-j", str(workers),
                        "--burned-in", mode], env=env, capture_output=True, text=True, cwd=work)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"vindr anonymize failed ({checkout}): rc {r.returncode}")
    files = sum(1 for _ in out.rglob("*.dcm"))
    return {"cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "wall_s": wall,
            "load": load, "written": files}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", type=Path, required=True, help="checkout A (before)")
    ap.add_argument("--b", type=Path, required=True, help="checkout B (after)")
    ap.add_argument("corpus", type=Path, nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument("--mode", default="redact")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    envs = {"A": _env(a.a), "B": _env(a.b)}
    dirs = {"A": a.a, "B": a.b}
    work = Path(tempfile.mkdtemp(prefix="vindr_cpu_ab_"))
    res: dict = {"a": str(a.a), "b": str(a.b), "mode": a.mode, "workers": a.workers, "rounds": a.rounds, "corpora": {}}
    try:
        for corpus in a.corpus:
            c = res["corpora"].setdefault(corpus.name, {"runs": []})
            n = {cls: sum(1 for _ in (corpus / cls).glob("*.dcm")) for cls in ("with_text", "no_text")}
            for rnd in range(a.rounds):
                for which in ("A", "B") if rnd % 2 == 0 else ("B", "A"):
                    for cls in ("no_text", "with_text"):
                        r = run(dirs[which], envs[which], corpus / cls, work, a.mode, a.workers)
                        r.update(code=which, cls=cls, round=rnd)
                        c["runs"].append(r)
                        print(f"{corpus.name} round {rnd} {which} {cls}: {r['cpu_s']:.1f} s CPU, {r['wall_s']:.1f} s wall, "
                              f"load {r['load']:.1f}", file=sys.stderr, flush=True)
            for which in ("A", "B"):
                best = {cls: min(r["cpu_s"] for r in c["runs"] if r["code"] == which and r["cls"] == cls)
                        for cls in ("with_text", "no_text")}
                c[which] = {"cpu_per_image_all": round((best["with_text"] + best["no_text"]) / sum(n.values()), 4),
                            "cpu_per_image_with_text": round(best["with_text"] / n["with_text"], 4),
                            "cpu_per_image_no_text": round(best["no_text"] / n["no_text"], 4)}
            c["ratio_all"] = round(c["B"]["cpu_per_image_all"] / c["A"]["cpu_per_image_all"], 3)
            c["load"] = {"min": min(r["load"] for r in c["runs"]), "max": max(r["load"] for r in c["runs"])}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {k: v for k, v in res["corpora"].items()}
    print(json.dumps({name: {k: v for k, v in c.items() if k != "runs"} for name, c in summary.items()}, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
