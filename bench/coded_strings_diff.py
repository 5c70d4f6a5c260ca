#!/usr/bin/env python3
"""Which coded strings (VR CS) does this tree write differently from ``--before TREE``?

Runs ``vindr anonymize --burned-in off`` from both trees with one throw-away key on every file of
sample_dicoms/export and pydicom's bundled test files (listed from its folder: nothing is
downloaded), for each profile asked, then lists, per CS attribute, each value kept by one tree
and not the other (by attribute and value, counted over files and depths). The values printed
are coded strings of synthetic and public test files only.

Usage: python bench/coded_strings_diff.py --before TREE [--profiles basic vindr] [-j 2] [--allow-burned-in]
"""
from __future__ import annotations

import argparse
import collections
import json
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anonymize_identity import inputs  # noqa: E402

import os, subprocess  # noqa: E402,E401


def run(tree: Path, src: Path, out: Path, key: Path, profile: str, workers: int, allow: bool = False) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-P", "-m", "vindr_cli", "anonymize", str(src), str(out), "--key", str(key),
                           "--burned-in", "off", "--profile", profile, "-j", str(workers), "--no-linkage",
                           *(["--allow-burned-in"] if allow else [])],
                          env=env, capture_output=True, text=True, cwd=out.parent)
    if proc.returncode not in (0, 1):
        sys.exit(f"{tree}: vindr anonymize exited {proc.returncode}")


def coded(root: Path) -> collections.Counter:
    import pydicom
    from pydicom.datadict import keyword_for_tag

    seen: collections.Counter = collections.Counter()

    def walk(ds):
        for el in ds:
            if el.VR == "SQ":
                for it in el.value or []:
                    walk(it)
            elif el.VR == "CS":
                v = el.value
                vals = list(v) if isinstance(v, (list, pydicom.multival.MultiValue)) else [v]
                seen[(keyword_for_tag(el.tag) or f"{el.tag:08X}", "\\".join(str(x) for x in vals))] += 1

    for p in sorted(root.rglob("*.dcm")):
        if ".vindr" not in p.parts:
            walk(pydicom.dcmread(p))
    return seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--profiles", nargs="+", default=["basic", "vindr"])
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--allow-burned-in", action="store_true", help="also write SC/US/... (quarantined by default)")
    a = ap.parse_args()
    here = Path(__file__).resolve().parent.parent
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = inputs(tmp / "in")
        key = tmp / "k.key"
        key.write_text(secrets.token_hex(32) + "\n")
        key.chmod(0o600)
        for profile in a.profiles:
            counts = {}
            for label, tree in (("before", a.before.resolve()), ("after", here)):
                out = tmp / f"{label}-{profile}"
                run(tree, tmp / "in", out, key, profile, a.j, a.allow_burned_in)
                counts[label] = coded(out)
            b, c = counts["before"], counts["after"]
            gone = sorted(k for k in b if b[k] > c.get(k, 0))
            new = sorted(k for k in c if c[k] > b.get(k, 0))
            print(f"== profile {profile}: {n} pydicom files + sample export; "
                  f"{sum(b.values())} CS elements before, {sum(c.values())} after")
            for k in gone:
                print(f"  only before: {k[0]} = {k[1]!r} x{b[k] - c.get(k, 0)}")
            for k in new:
                print(f"  only after:  {k[0]} = {k[1]!r} x{c[k] - b.get(k, 0)}")
            result[profile] = {"before_total": sum(b.values()), "after_total": sum(c.values()),
                               "only_before": [[*k, b[k] - c.get(k, 0)] for k in gone],
                               "only_after": [[*k, c[k] - b.get(k, 0)] for k in new]}
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
