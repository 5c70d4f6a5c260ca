"""Translate annotations keyed by the hospital's identifiers (original SOP Instance, Study
and Series UIDs, as labelling tools on PACS see them) into the release's substitutes,
through the custodian's linkage table. Works on the canonical table of
:mod:`vindr_cli.annotations` (read by the one reader), so line numbers are kept and every
later report still points at the annotator's file; an image the release does not hold
(quarantined, failed, unknown) gets a placeholder id instead of its original UID, which
never leaves this step."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vindr_cli.tables import iter_rows

NOT_RELEASED = "(not in the release)"
_LINK_COLUMNS = ("status", "original_sop_uid", "image_id", "original_study_uid", "study_uid",
                 "original_series_uid", "series_uid")


@dataclass
class RemapResult:
    frame: pd.DataFrame
    translated: int
    not_released: int
    already: int = 0               # rows that already named a release image_id (the worklist's)


def linkage_maps(linkage: Path) -> dict[str, dict[str, str]]:
    # only the columns used (and not the PHI of the others), read in batches (tables.iter_rows)
    rows = [r for r in iter_rows(linkage, _LINK_COLUMNS) if r.get("status") == "ok"]
    return {
        "image_id": {r["original_sop_uid"]: r["image_id"] for r in rows if r.get("original_sop_uid")},
        "study_id": {r["original_study_uid"]: r["study_uid"] for r in rows if r.get("original_study_uid")},
        "series_id": {r["original_series_uid"]: r["series_uid"] for r in rows if r.get("original_series_uid")},
    }


def remap_frame(ann: pd.DataFrame, linkage: Path) -> RemapResult:
    """Replace the ids of a canonical annotation table by the release's substitutes."""
    maps = linkage_maps(linkage)
    df = ann.copy()
    df.attrs.update(ann.attrs)
    released = set(maps["image_id"].values())
    ids = df["image_id"].astype(str).str.strip()
    new = ids.map(maps["image_id"])
    keep = ids.isin(released)                      # already a release id
    translated = int(new.notna().sum())
    df["image_id"] = pd.array(new.where(new.notna(), ids.where(keep, NOT_RELEASED)), dtype="string")
    for col in ("study_id", "series_id"):
        if col in df.columns:
            v = df[col].astype("string").str.strip()
            m = v.map(maps[col])
            known = v.isin(set(maps[col].values())) | v.isna()
            df[col] = pd.array(m.where(m.notna(), v.where(known, NOT_RELEASED)), dtype="string")
    df.attrs["images"] = [maps["image_id"].get(i, i if i in released else NOT_RELEASED)
                          for i in ann.attrs.get("images", [])]
    return RemapResult(df, translated, int((df["image_id"] == NOT_RELEASED).sum()), int((keep & new.isna()).sum()))
