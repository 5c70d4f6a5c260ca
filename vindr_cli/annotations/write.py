"""The canonical table back to the published CSV layouts (what split hands to release and
release publishes): names always in the label set's published spelling."""
from __future__ import annotations

import numpy as np
import pandas as pd

from vindr_cli.annotations.read import BOX, SPINE_BOX


def to_published(df: pd.DataFrame, form: str, *, class_id: bool = False) -> pd.DataFrame:
    """Canonical rows -> the VinDr layout of ``form`` (cxr-boxes, spinexr, cxr-image-labels).

    cxr-boxes: ``image_id, rad_id, class_name[, class_id], x_min, y_min, x_max, y_max``;
    spinexr: ``image_id, study_id, series_id, rad_id, lesion_type, xmin, ymin, xmax, ymax``;
    cxr-image-labels: ``image_id, rad_id, <label columns of df.attrs['labels']>`` (0/1), one
    row per input line."""
    if form == "cxr-image-labels":
        return _image_labels(df)
    if form == "spinexr":
        out = pd.DataFrame({"image_id": df["image_id"], "study_id": df.get("study_id"),
                            "series_id": df.get("series_id"), "rad_id": df["reader"], "lesion_type": df["label"]})
        for b, s in zip(BOX, SPINE_BOX):
            out[s] = df[b].to_numpy()
        return out.reset_index(drop=True)
    out = pd.DataFrame({"image_id": df["image_id"], "rad_id": df["reader"], "class_name": df["label"]})
    if class_id:
        out["class_id"] = df["class_id"]
    for b in BOX:
        out[b] = df[b].to_numpy()
    return out.reset_index(drop=True)


def _image_labels(df: pd.DataFrame) -> pd.DataFrame:
    labels = list(df.attrs.get("labels", []))
    rows = df.drop_duplicates("line")[["line", "image_id", "reader"]].sort_values("line").reset_index(drop=True)
    pos = pd.Index(rows["line"]).get_indexer(df["line"])
    values = np.zeros((len(rows), len(labels)), dtype=np.int64)
    lab = pd.Index(labels).get_indexer(df["label"].astype(object).where(df["label"].notna(), None))
    marked = lab >= 0
    values[pos[marked], lab[marked]] = 1
    out = pd.DataFrame({"image_id": rows["image_id"], "rad_id": rows["reader"]})
    for j, name in enumerate(labels):
        out[name] = values[:, j]
    return out
