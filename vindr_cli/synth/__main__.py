"""`python -m vindr_cli.synth OUT_DIR [--seed N]`: build the synthetic export into OUT_DIR."""
from __future__ import annotations

import argparse
from pathlib import Path

from vindr_cli.synth.export import DEFAULT_SEED, build_export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vindr_cli.synth", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    planted = build_export(args.out_dir, seed=args.seed)
    print(f"wrote {args.out_dir}: {len(planted['uids'])} UIDs, {len(planted['strings'])} planted strings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
