"""Translate annotations keyed by the hospital's identifiers (original SOP Instance, Study
and Series UIDs, as labelling tools on PACS see them) into the release's substitutes,
through the custodian's linkage table. Line numbers are kept, so every later report still
points at the annotator's file; an image the release does not hold (quarantined, failed,
unknown) gets a placeholder id instead of its original UID, which never leaves this step."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vindr_cli.tables import read_rows

NOT_RELEASED = "(not in the release)"


@dataclass
class RemapResult:
    frame: pd.DataFrame
    translated: int
    not_released: int


def linkage_maps(linkage: Path) -> dict[str, dict[str, str]]:
    rows = [r for r in read_rows(linkage) if r.get("status") == "ok"]
    return {
        "image_id": {r["original_sop_uid"]: r["image_id"] for r in rows if r.get("original_sop_uid")},
        "study_id": {r["original_study_uid"]: r["study_uid"] for r in rows if r.get("original_study_uid")},
        "series_id": {r["original_series_uid"]: r["series_uid"] for r in rows if r.get("original_series_uid")},
    }


def remap_annotations(path: Path, linkage: Path) -> RemapResult:
    """Read an annotation CSV (any VinDr form) and replace its ids by the substitutes."""
    maps = linkage_maps(linkage)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "image_id" not in df.columns:
        raise ValueError(f"{path.name}: no image_id column")
    released = set(maps["image_id"].values())
    ids = df["image_id"].str.strip()
    new = ids.map(maps["image_id"])
    keep = ids.isin(released)                      # already a release id
    translated = int(new.notna().sum())
    df["image_id"] = new.where(new.notna(), ids.where(keep, NOT_RELEASED))
    for col in ("study_id", "series_id"):
        if col in df.columns:
            v = df[col].str.strip()
            m = v.map(maps[col])
            df[col] = m.where(m.notna(), v.where(v.isin(set(maps[col].values())) | (v == ""), NOT_RELEASED))
    return RemapResult(df, translated, int((df["image_id"] == NOT_RELEASED).sum()))


def write_remapped(result: RemapResult, out: Path) -> None:
    from vindr_cli.runner.atomic import atomic_write

    buf = io.StringIO()
    result.frame.to_csv(buf, index=False)
    with atomic_write(out) as f:
        f.write(buf.getvalue().encode("utf-8"))
