"""Regenerate the committed sample export: `python sample_dicoms/generate.py` (from the repo root).

Deletes and rewrites sample_dicoms/export, sample_dicoms/annotations and
sample_dicoms/planted_phi.json. Output is byte-for-byte deterministic.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from vindr_cli.synth.export import DEFAULT_SEED, build_export  # noqa: E402


def main() -> int:
    for name in ("export", "annotations"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    planted = build_export(HERE, seed=DEFAULT_SEED)
    print(f"sample_dicoms regenerated: {len(planted['uids'])} UIDs, {len(planted['strings'])} planted strings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
