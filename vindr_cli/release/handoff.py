"""`vindr split` as the CLI runs it: re-key annotations through the linkage table when
asked, split, and leave the valid annotation rows (release ids only) in DIR/annotations.csv
for `vindr release`."""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pandas as pd

from vindr_cli.release.remap import remap_annotations
from vindr_cli.release.split import SplitResult, split_dataset
from vindr_cli.runner.atomic import atomic_write


def run_split(annotations: Path, meta: Path, out_dir: Path, *, linkage: Path | None = None,
              **options) -> tuple[SplitResult, list[str]]:
    notes: list[str] = []
    source = annotations
    with tempfile.TemporaryDirectory() as tmp:
        if linkage is not None:
            remapped = remap_annotations(annotations, linkage)
            source = Path(tmp) / annotations.name
            remapped.frame.to_csv(source, index=False)
            notes.append(f"re-keyed {remapped.translated} annotation rows through the linkage table; "
                         f"{remapped.not_released} rows refer to images not in the release")
        try:
            result = split_dataset(source, meta, out_dir=out_dir, **options)
        except ValueError as exc:
            if linkage is None and "no valid annotation row refers to an image" in str(exc):
                raise ValueError(f"{exc}. If the annotations name images by the hospital's original "
                                 "SOP Instance UIDs, pass --linkage with the anonymize linkage table.") from None
            raise
        _write_valid(source, result, out_dir / "annotations.csv")
    return result, notes


def _write_valid(source: Path, result: SplitResult, out: Path) -> None:
    """The annotation rows that passed every check and whose image is in the split."""
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)
    lines = pd.Series(range(2, len(raw) + 2), index=raw.index)
    bad = {r.line for r in result.bad_rows}
    keep = ~lines.isin(bad) & raw["image_id"].isin(set(result.images["image_id"]))
    buf = io.StringIO()
    raw[keep].to_csv(buf, index=False)
    with atomic_write(out) as f:
        f.write(buf.getvalue().encode("utf-8"))
