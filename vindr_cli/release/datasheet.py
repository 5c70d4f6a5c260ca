"""The release's README.md: a datasheet a data user can trust without reading code."""
from __future__ import annotations

import datetime as dt


def datasheet(*, summary, counts, classes, split_report, deid, decoded, fused, version) -> str:
    total = {s: summary.images.get(s, 0) for s in ("train", "test")}
    lines = [
        "# Release datasheet",
        "",
        f"Built by vindr {version} on {dt.date.today().isoformat()}.",
        "",
        "## Images",
        "",
        "| split | images | boxes (COCO/YOLO) |",
        "| --- | ---: | ---: |",
    ]
    for s in ("train", "test"):
        lines.append(f"| {s} | {total[s]} | {summary.boxes.get(s, 0)} |")
    lines += ["", "## Images per label and side", "", "| label | train | test |", "| --- | ---: | ---: |"]
    for name in classes:
        c = counts.get(name, {})
        lines.append(f"| {name} | {c.get('train', 0)} | {c.get('test', 0)} |")
    seed = split_report.get("seed", "unknown")
    unit = split_report.get("unit", "unknown")
    lines += [
        "",
        "## Split",
        "",
        f"Seed {seed}; unit {unit}; groups (patients, else studies) never cross sides. "
        "See split_report.json for the per-label distribution and the LD/ED measures.",
        "",
        "## De-identification",
        "",
        f"Tool: {deid.get('tool', 'unknown')}; profile: {deid.get('profile', 'unknown')} "
        f"({deid.get('profile_source', '')}); options: {', '.join(deid.get('options') or []) or 'none'}; "
        f"dates: {deid.get('dates', 'unknown')}; UIDs under {deid.get('uid_root', 'unknown')}.",
        "",
        "## Coordinates",
        "",
        "annotations_*.csv and kaggle_*.csv: DICOM pixel coordinates (as VinDr published them). "
        + ("coco_*.json and yolo/: pixels of the decoded images (images.csv has scale_x/scale_y)."
           if decoded else "coco_*.json and yolo/: DICOM pixel coordinates (no decoded images in this release)."),
        ("Reader boxes are fused per class (weighted boxes fusion, IoU 0.4; score = agreeing readers)."
         if fused else "Every reader's box is kept (one COCO annotation per reader box)."),
        "",
    ]
    return "\n".join(lines)
