"""`vindr split` as the CLI runs it: read the annotations (re-keyed through the linkage
table when asked), split, and hand `vindr release` what it needs in DIR: the valid rows
(release ids only, canonical class names) as ``annotations.csv`` in the published layout
of their form, and the label set they were read with as ``labels.json``."""
from __future__ import annotations

import io
from pathlib import Path

from vindr_cli.annotations import to_published, write_labels_json
from vindr_cli.release.split import SplitResult, split_dataset
from vindr_cli.atomic import atomic_write

ANNOTATIONS_CSV = "annotations.csv"
LABELS_JSON = "labels.json"


def run_split(annotations: Path, meta: Path, out_dir: Path, *, linkage: Path | None = None,
              **options) -> tuple[SplitResult, list[str]]:
    notes: list[str] = []
    result = split_dataset(annotations, meta, out_dir=out_dir, linkage=linkage, **options)
    if linkage is not None:
        remap = result.info["remap"]
        notes.append(f"re-keyed {remap['translated']} annotation rows through the linkage table; "
                     + (f"{remap['release_ids']} already named release image ids (as a selection's worklist.csv does; "
                        "--linkage re-keys rows that name the hospital's SOP Instance UIDs); "
                        if remap.get("release_ids") else "")
                     + f"{remap['not_released']} rows refer to images not in the release")
    sel = result.info.get("selection")
    if sel is not None:
        notes.append(f"selection (recipe {sel['recipe'] or 'unnamed'}): {sel['selected']} of {sel['images']} images "
                     f"selected; {sel['annotation_rows_not_selected']} annotation rows of "
                     f"{sel['annotated_images_not_selected']} images not selected were left out"
                     + (f"; {sel['multiframe_excluded']} multi-frame images excluded" if sel["multiframe_excluded"] else ""))
    write_handoff(result, Path(out_dir))
    return result, notes


def write_handoff(result: SplitResult, out_dir: Path) -> None:
    """DIR/annotations.csv (valid rows of split images, published layout) and DIR/labels.json."""
    ann = result.annotations
    keep = ann["image_id"].isin(set(result.images["image_id"]))
    part = ann[keep]
    part.attrs.update(ann.attrs)
    table = to_published(part, ann.attrs["format"], class_id=ann.attrs["format"] == "cxr-boxes")
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    with atomic_write(out_dir / ANNOTATIONS_CSV) as f:
        f.write(buf.getvalue().encode("utf-8"))
    write_labels_json(out_dir / LABELS_JSON, result.label_set)
