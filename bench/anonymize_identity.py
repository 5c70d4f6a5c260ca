#!/usr/bin/env python3
"""Do two checkouts of vindr write the same bytes? (A speed change must not change a byte.)

Runs ``vindr anonymize`` from this tree and from ``--before TREE`` (e.g. the commit before a
change, ``git archive``d to a folder) with one throw-away key on the same input: every file
of sample_dicoms/export plus pydicom's bundled test files that resolve locally (nothing is
downloaded), for each ``--burned-in`` mode asked. Compares every output file byte for byte,
and the manifest and linkage tables row for row (the linkage holds PHI of the synthetic and
public test files only; nothing of it is printed: only counts and the names of differing
columns). Exit 1 on any difference.

Usage: python bench/anonymize_identity.py --before TREE [--modes off redact] [-j 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def inputs(folder: Path) -> int:
    """sample_dicoms/export and the test files pydicom ships in its package (listed from its
    folder: pydicom's own listing functions would try to download the rest)."""
    import pydicom

    shutil.copytree(ROOT / "sample_dicoms" / "export", folder / "export")
    shipped = Path(pydicom.__file__).parent / "data" / "test_files"
    shutil.copytree(shipped, folder / "pydicom", ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.pyc"))
    return sum(1 for p in (folder / "pydicom").rglob("*") if p.is_file())


def run(tree: Path, src: Path, out: Path, key: Path, mode: str, workers: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(tree)}
    # -P: `python -m` would put the working directory first on sys.path, and a checkout there
    # would be run instead of TREE
    proc = subprocess.run([sys.executable, "-P", "-m", "vindr_cli", "anonymize", str(src), str(out), "--key", str(key),
                           "--burned-in", mode, "-j", str(workers)], env=env, capture_output=True, text=True,
                          cwd=out.parent)
    if f"{tree}/vindr_cli" not in subprocess.run(
            [sys.executable, "-P", "-c", "import vindr_cli; print(vindr_cli.__file__)"], env=env, capture_output=True,
            text=True, cwd=out.parent).stdout:
        sys.exit(f"{tree}: vindr_cli is not imported from this tree")
    if proc.returncode not in (0, 1):
        sys.exit(f"{tree}: vindr anonymize exited {proc.returncode}")


def files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and ".vindr" not in p.parts}


def compare_tables(a: Path, b: Path, label: str) -> int:
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a), pq.read_table(b)
    if ta.schema != tb.schema:
        print(f"{label}: schemas differ")
        return 1
    ra = sorted(ta.to_pylist(), key=lambda r: r["input_key"])
    rb = sorted(tb.to_pylist(), key=lambda r: r["input_key"])
    if len(ra) != len(rb):
        print(f"{label}: {len(ra)} rows against {len(rb)}")
        return 1
    cols = sorted({k for x, y in zip(ra, rb) for k in x if x[k] != y[k]})
    if cols:
        print(f"{label}: rows differ in columns {cols}")
        return 1
    print(f"{label}: {len(ra)} rows identical")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--modes", nargs="+", default=["off", "redact"])
    ap.add_argument("-j", type=int, default=2)
    args = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        src = t / "in"
        n = inputs(src)
        print(f"inputs: sample_dicoms/export + {n} pydicom test files")
        keys = t / "keys"
        keys.mkdir(mode=0o700)
        key = keys / "k"
        for mode in args.modes:
            outs = {}
            for label, tree in (("after", ROOT), ("before", args.before.resolve())):
                outs[label] = t / f"{label}_{mode}"
                run(tree, src, outs[label], key, mode, args.j)
            fa, fb = files(outs["after"]), files(outs["before"])
            same = sum(1 for k in fa if k in fb and fa[k].read_bytes() == fb[k].read_bytes())
            differ = len(set(fa) | set(fb)) - same
            print(f"--burned-in {mode}: {len(fa)} files after, {len(fb)} before, {same} identical, {differ} differ")
            bad += differ
            bad += compare_tables(outs["after"] / "manifest.parquet", outs["before"] / "manifest.parquet",
                                  f"--burned-in {mode} manifest")
            bad += compare_tables(Path(f"{outs['after']}.linkage.parquet"), Path(f"{outs['before']}.linkage.parquet"),
                                  f"--burned-in {mode} linkage")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
