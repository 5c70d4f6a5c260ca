"""Red team 11: what the pixel rules (RLE frames walked, bits above Bits Stored cleared under
--burned-in off, video refused under off) change on real files, what they cost, and what the
audit says.

`vindr anonymize --burned-in off --allow-burned-in -j 2` from two trees (``--before``: another
checkout, e.g. main; after: this one) with one throw-away key, on sample_dicoms/export + the DICOM
files pydicom, pydicom-data and deid-data ship (whatever is installed, files under 20 MB; nothing
downloaded), ``--rounds`` times, alternating which tree goes first; CPU seconds (user + sys of the
run and its workers) per run. Then every input's manifest row compared between the trees (status,
reason, pixels_modified, pixel_sha256, overlay_pixels_zeroed, transfer_syntax) and `vindr audit
--no-pixels` (with the linkage table) of both outputs counted by kind. Prints and writes counts
and file base names of public test files only (no values).

    python bench/redteam11_pixel_diff.py --before /work/main [--rounds 3]
                                          [--out bench/results/redteam11_pixel_diff.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from bench_io import copy_dicom_corpus, corpus_roots  # noqa: E402
FIELDS = ("status", "reason", "pixels_modified", "pixel_sha256", "overlay_pixels_zeroed", "transfer_syntax")


def _corpus(dest: Path) -> int:
    """pydicom's, pydicom-data's and deid-data's DICOM files, one folder a root, and the sample
    export (the walk red team 9's bench shares: bench_io.copy_dicom_corpus)."""
    return copy_dicom_corpus(dest, corpus_roots(), lambda k, root: f"{k}_{root.name}")


def _run(tree: Path, *args) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=str(tree), COLUMNS="200")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "-m", "vindr_cli", *map(str, args)], cwd=tree, env=env,
                       capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return p, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _rows(out: Path) -> dict:
    import pyarrow.parquet as pq

    link = {r["input_key"]: r["input_path"] for r in pq.read_table(f"{out}.linkage.parquet").to_pylist()}
    return {link[r["input_key"]]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "redteam11_pixel_diff.json")
    a = ap.parse_args()
    trees = {"before": a.before.resolve(), "after": REPO}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = _corpus(tmp / "in")
        keys = tmp / "keys"
        keys.mkdir(mode=0o700)
        key = keys / "k"
        key.write_text(os.urandom(32).hex() + "\n")
        key.chmod(0o600)
        cpu: dict = {k: [] for k in trees}
        loads = []
        for r in range(a.rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for label in order:
                out = tmp / f"{label}_{r}"
                loads.append(os.getloadavg()[0])
                p, secs = _run(trees[label], "anonymize", tmp / "in", out, "--key", key, "--burned-in", "off",
                               "--allow-burned-in", "-j", "2")
                if p.returncode != 0:
                    sys.exit(f"{label}: exit {p.returncode}\n{p.stderr[-2000:]}")
                cpu[label].append(round(secs, 2))
        rows = {label: _rows(tmp / f"{label}_0") for label in trees}
        changed = collections.Counter()
        examples: dict = collections.defaultdict(list)
        for path, b in rows["before"].items():
            x = rows["after"].get(path)
            for f in FIELDS:
                if x is None or b.get(f) != x.get(f):
                    changed[f] += 1
                    if len(examples[f]) < 10:
                        examples[f].append({"file": Path(path).name, "before": str(b.get(f))[:80],
                                            "after": str((x or {}).get(f))[:80]})
        audits = {}
        for label in trees:
            out = tmp / f"{label}_0"
            p, _ = _run(REPO, "audit", out, "--linkage", f"{out}.linkage.parquet", "--no-pixels", "--json", "-j", "2")
            audits[label] = json.loads(p.stdout)["findings_by_kind"]
    status = {label: dict(collections.Counter(r["status"] for r in rows[label].values())) for label in trees}
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "inputs": n + 0, "before": str(a.before),
              "status": status, "changed_fields": dict(changed), "examples": examples,
              "audit_by_this_tree": audits, "cpu_s": cpu, "load_1min": [round(x, 2) for x in loads]}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_suffix(".json.part")
    tmp_out.write_text(json.dumps(result, indent=1))
    tmp_out.rename(a.out)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
