#!/usr/bin/env python3
"""False positives of the look-alike / Indic / code-page / places search (issue 13, lookalike):
does this tree remove anything more than ``--before TREE`` on clean public files?

Runs ``vindr anonymize --burned-in off`` (with its linkage table) and ``vindr audit --no-pixels``
from both trees with one throw-away key on sample_dicoms/export, pydicom's bundled test files
(listed from its folder: nothing is downloaded) and deid-data's files (its installed package),
then prints, per input, each action count that differs between the trees (the manifest's
``actions``), and each tree's audit counts. Only counts and the corpus' own file names are printed.

Usage: python bench/lookalike_fp.py --before TREE [-j 2] [--json bench/results/lookalike_fp.json]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anonymize_identity import inputs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def vindr(tree: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-P", "-m", "vindr_cli", *args], env=env, capture_output=True, text=True,
                          cwd=cwd)


def manifest(out: Path, linkage: Path) -> dict[str, dict]:
    import pyarrow.parquet as pq

    names = {r["output"]: r["input_path"] for r in pq.read_table(linkage).to_pylist() if r.get("output")}
    rows = {}
    for r in pq.read_table(out / "manifest.parquet").to_pylist():
        rows[names.get(r["output"], r["input_key"])] = {"status": r["status"], "reason": r["reason"],
                                                         **json.loads(r["actions"] or "{}")}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lookalike_fp_") as tmp:
        tmp = Path(tmp)
        src = tmp / "in"
        n = inputs(src)
        import deid_data

        shutil.copytree(Path(deid_data.__file__).parent / "data", src / "deid_data",
                        ignore=shutil.ignore_patterns("*.py", "*.pyc", "__pycache__", "*.md"))
        keys = tmp / "keys"
        keys.mkdir(mode=0o700)
        key = keys / "k.key"
        key.write_text(secrets.token_hex(32) + "\n")
        key.chmod(0o600)
        result = {"inputs": sum(1 for p in src.rglob("*") if p.is_file()), "pydicom_files": n}
        rows = {}
        for label, tree in (("before", a.before.resolve()), ("after", ROOT)):
            out = tmp / f"out_{label}"
            p = vindr(tree, "anonymize", str(src), str(out), "--key", str(key), "--burned-in", "off",
                      "-j", str(a.j), cwd=tmp)
            if p.returncode not in (0, 1):
                sys.exit(f"{label}: vindr anonymize exited {p.returncode}")
            rows[label] = manifest(out, tmp / f"out_{label}.linkage.parquet")
            rep = tmp / f"audit_{label}.json"
            p = vindr(tree, "audit", str(out), "--no-pixels", "--report", str(rep), cwd=tmp)
            counts = json.loads(rep.read_text()).get("findings_by_kind", {}) if rep.exists() else {"exit": p.returncode}
            result[f"audit_{label}"] = counts
        diffs = {}
        for name in sorted(set(rows["before"]) | set(rows["after"])):
            b, f = rows["before"].get(name, {}), rows["after"].get(name, {})
            d = {k: [b.get(k), f.get(k)] for k in sorted(set(b) | set(f)) if b.get(k) != f.get(k)}
            if d:
                diffs[str(Path(name).relative_to(src)) if name.startswith(str(src)) else name] = d
        result["files_compared"] = len(rows["after"])
        result["files_differing"] = diffs
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
