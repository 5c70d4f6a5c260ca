"""Red team 9: what the tightened rules remove from real files, and whether the audit changed.

`vindr anonymize --burned-in off --allow-burned-in -j 2` from two trees (``--before``: another
checkout, e.g. main; after: this one) with one throw-away key, on sample_dicoms/export + the DICOM
files pydicom ships + deid-data's (whatever is installed; nothing downloaded); every element of
every written file (any depth, pixel data and DeidentificationMethod aside: its profile fingerprint
changes with the schemas) compared, and `vindr audit --no-pixels` (with the linkage table) of both
outputs counted by kind. Prints and writes counts and attribute names only (no values of the
files: they are test data, but the habit stays). No timing is recorded.

    python bench/redteam9_kept_diff.py --before /work/main [--out bench/results/redteam9_kept_diff.json]
                                       [--profile basic|vindr]     (red team 10: either profile)
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from bench_io import copy_dicom_corpus, corpus_roots  # noqa: E402


def _corpus(dest: Path) -> int:
    """pydicom's and deid-data's DICOM files (not pydicom-data's) and the sample export."""
    return copy_dicom_corpus(dest, corpus_roots(pydicom_data=False))


def _run(tree: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "vindr_cli", *map(str, args)], cwd=tree, env=env,
                          capture_output=True, text=True)


def _flat(ds, pre=""):
    out = {}
    for e in ds:
        if e.VR == "SQ":
            for i, item in enumerate(e.value):
                out.update(_flat(item, f"{pre}{e.keyword}[{i}]."))
        elif e.tag not in (0x7FE00010, 0x00120063):
            out[pre + (e.keyword or str(e.tag))] = repr(e.value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "redteam9_kept_diff.json")
    ap.add_argument("--profile", default="basic")
    a = ap.parse_args()
    import pyarrow.parquet as pq
    import pydicom

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = _corpus(tmp / "in")
        keys = tmp / "keys"
        keys.mkdir(mode=0o700)
        (keys / "k").write_text(hashlib.sha256(b"redteam9 bench").hexdigest())
        (keys / "k").chmod(0o600)
        audits, rows = {}, {}
        for name, tree in (("before", a.before), ("after", REPO)):
            p = _run(tree, "anonymize", tmp / "in", tmp / name, "--key", keys / "k", "--burned-in", "off",
                     "--allow-burned-in", "-j", "2", "--profile", a.profile)
            assert p.returncode == 0, f"{name}: anonymize exit {p.returncode}"
            q = _run(tree, "audit", tmp / name, "--no-pixels", "-j", "2", "--json")
            audits[name] = json.loads(q.stdout)["findings_by_kind"]
            rows[name] = {r["input_key"]: r for r in pq.read_table(tmp / name / "manifest.parquet").to_pylist()}
        changed = collections.Counter()
        status = written = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k, r in rows["before"].items():
                s = rows["after"][k]
                status += r["status"] != s["status"]
                if not (r["output"] and s["output"]):
                    continue
                written += 1
                x = _flat(pydicom.dcmread(tmp / "before" / r["output"]))
                y = _flat(pydicom.dcmread(tmp / "after" / s["output"]))
                for t in set(x) | set(y):
                    if x.get(t) != y.get(t):
                        kind = "removed" if t not in y else "added" if t not in x else "changed"
                        changed[f"{t.split('.')[-1]} {kind}"] += 1
    result = {"profile": a.profile, "inputs": files, "written": written, "status_changes": status,
              "element_changes": dict(changed.most_common()), "audit_findings_by_kind": audits}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
