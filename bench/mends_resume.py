"""mends: a resume with nothing new, before (every header read again by the first pass) and after
(deid.unchanged: the pass skipped when no input changed since a completed run).

For each checkout (``--before``, then this one), one full `vindr anonymize -j J --burned-in off`
into its own OUTPUT, then ``--rounds`` resumes of the same command, the checkouts alternating
(round robin); CPU seconds (user+sys of the run and its workers, RUSAGE_CHILDREN) and wall per
resume. Inputs: ``--sample N`` copies of sample_dicoms/export, or ``--study N``: the studyscale
bench's study of N files, each naming another operator (hostile10's generator, kept in
/tmp/studyscale-in-N). Checks that both OUTPUTs hold the same files (their SHA-256, .vindr
aside) and that every resume resumed every input. Writes counts and times only.

    python bench/mends_resume.py --before /tmp/mends_before --sample 10 --rounds 5 --json bench/results/mends_resume_sample10.json
    python bench/mends_resume.py --before /tmp/mends_before --study 600 --rounds 5 --json bench/results/mends_resume_study600.json
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
from bench_io import write_record  # noqa: E402


def run(code: Path, inp: Path, out: Path, key: Path, workers: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), COLUMNS="200")
    env.pop("VINDR_PROGRESS", None)
    t0, ru0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "-m", "vindr_cli", "anonymize", str(inp), str(out), "--key", str(key),
                        "-j", str(workers), "--burned-in", "off"], capture_output=True, text=True, env=env, cwd=code)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in (0, 1):
        sys.exit(f"{code}: exit {p.returncode}\n{p.stderr[-1500:]}")
    m = re.search(r"resumed\D{0,40}?(\d+)", p.stdout)
    return {"wall_s": round(time.monotonic() - t0, 2),
            "cpu_s": round(ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime, 2),
            "resumed": int(m.group(1)) if m else None}


def outputs(out: Path) -> str:
    return hashlib.sha256("".join(sorted(
        f"{p.relative_to(out)} {hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in out.rglob("*")
        if p.is_file() and ".vindr" not in p.relative_to(out).parts)).encode()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--study", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    from helpers import key_file_in

    work = Path(tempfile.mkdtemp(prefix="mends-resume-"))
    try:
        if a.study:
            inp = Path(tempfile.gettempdir()) / f"studyscale-in-{a.study}"     # studyscale_bench's folder
            if not inp.is_dir():
                from hostile10_bench import materialise
                materialise(inp, {f"f{i:05d}.dcm": ("distinct", i) for i in range(a.study)},
                            Path(tempfile.mkdtemp(prefix="studyscale-build-")))
            label = f"study of {a.study} files"
        else:
            inp = work / "in"
            for i in range(a.sample):
                shutil.copytree(REPO / "sample_dicoms" / "export", inp / f"copy{i:03d}")
            label = f"sample_dicoms/export x {a.sample}"
        files = sum(1 for p in inp.rglob("*") if p.is_file())
        key = key_file_in(work)
        trees = {"before": a.before.resolve(), "after": REPO}
        res: dict = {"inputs": label, "files": files, "workers": a.workers, "before": str(a.before),
                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "first": {}, "resume": {k: [] for k in trees},
                     "load_1min": []}
        for name, code in trees.items():
            res["first"][name] = run(code, inp, work / name, key, a.workers)
        for r in range(a.rounds):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                res["load_1min"].append(round(os.getloadavg()[0], 2))
                res["resume"][name].append(run(trees[name], inp, work / name, key, a.workers))
        res["same_outputs"] = outputs(work / "before") == outputs(work / "after")
        res["record_after"] = (work / "after" / ".vindr" / "anonymize_firstpass.json").is_file()
        for name in trees:
            cpu = sorted(x["cpu_s"] for x in res["resume"][name])
            res[f"{name}_cpu_best_median"] = [cpu[0], cpu[len(cpu) // 2]]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(res)
    if a.json:
        write_record(Path(a.json), res)


if __name__ == "__main__":
    main()
