"""`vindr audit` with one Tesseract per process (the finder's, shared) against two (before).

Each run is a fresh process (``python -c``) that audits the same anonymized sample tree
(pixels on, with the linkage table) from one checkout or the other, measuring its own CPU
seconds (user + system, ``resource``) and peak RSS. Rounds interleave the two checkouts
(round robin), best of N kept; the load average is recorded before and after. The finding
counts of both must agree (the change is meant to change cost, not results).

    python bench/audit_engine_bench.py --before /work/main --after . --rounds 3 \\
        --out bench/results/audit_engine.json
"""
from __future__ import annotations

import hashlib
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from vindr_cli.deid.audit import audit
out = Path(sys.argv[1])
t = time.perf_counter()
r = audit(out, out.parent / (out.name + ".linkage.parquet"), pixels=True)
wall = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": u.ru_utime + u.ru_stime, "wall_s": wall, "peak_rss_mb": u.ru_maxrss / 1024,
                  "findings": len(r.findings), "files": r.files}))
"""


def tree(work: Path, repo: Path) -> Path:
    """The committed sample export, anonymized once (--burned-in redact)."""
    out = work / "anon"
    keys = work / "keys"
    keys.mkdir(mode=0o700)
    key = keys / "vindr.key"
    key.write_text(hashlib.sha256(b"vindr bench key").hexdigest() + "\n")  # vindr refuses a key of few different bytes
    key.chmod(0o600)
    code = ("import sys; from pathlib import Path; from vindr_cli.deid.batch import anonymize; "
            "from vindr_cli.deid.profile import load_profile; "
            "anonymize(Path(sys.argv[1]), Path(sys.argv[2]), key_path=Path(sys.argv[3]), profile=load_profile(), "
            "workers=1)")
    subprocess.run([sys.executable, "-c", code, str(repo / "sample_dicoms" / "export"), str(out), str(key)],
                   check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(repo)})
    return out


def one(repo: Path, out: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, str(out)], check=True, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(repo), "OMP_THREAD_LIMIT": "1"})
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = tree(Path(d), a.after.resolve())
        load_before = os.getloadavg()
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(a.rounds):
            for name, repo in (("before", a.before), ("after", a.after)):
                runs[name].append(one(repo.resolve(), out))
        load_after = os.getloadavg()
    best = {k: min(v, key=lambda r: r["cpu_s"]) for k, v in runs.items()}
    result = {"rounds": a.rounds, "load_avg_before": load_before, "load_avg_after": load_after,
              "best": best, "runs": runs, "cpu_ratio_after_over_before": best["after"]["cpu_s"] / best["before"]["cpu_s"],
              "same_findings": len({r["findings"] for v in runs.values() for r in v}) == 1}
    print(json.dumps(result, indent=1))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
