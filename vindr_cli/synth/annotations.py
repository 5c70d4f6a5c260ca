"""Findings drawn into the images and the VinDr-CXR / VinDr-SpineXR style CSVs.

Boxes are in original pixel coordinates; image_id / study_id / series_id are
the hospital-side (original) UIDs, as in a raw labelling export.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vindr_cli.synth.radiograph import NormBox, Phantom, PixelBox, draw_implant, draw_lesion, to_pixel_box

CXR_CLASSES = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
    "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
    "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "No finding",
)
NO_FINDING_ID = 14
SPINE_LESIONS = (
    "Osteophytes", "Spondylolysthesis", "Disc space narrowing", "Vertebral collapse",
    "Foraminal stenosis", "Surgical implant", "Other lesions",
)
READERS = ("R1", "R2", "R3")
CXR_HEADER = ("image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max")
SPINE_HEADER = ("image_id", "study_id", "series_id", "rad_id", "lesion_type", "xmin", "ymin", "xmax", "ymax")

# class id -> (anatomical region, relative size range or None for the whole region)
_CXR_PLACEMENT = {
    0: ("aortic_knob", None), 3: ("heart", None), 10: ("bases", None), 11: ("apices", (0.4, 0.7)),
    12: ("apices", (0.5, 0.9)), 2: ("lungs", (0.08, 0.14)), 8: ("lungs", (0.12, 0.25)),
}
_SPINE_PLACEMENT = {
    "Osteophytes": "corner", "Spondylolysthesis": "vertebrae", "Disc space narrowing": "discs",
    "Vertebral collapse": "vertebrae", "Foraminal stenosis": "posterior",
    "Surgical implant": "pair", "Other lesions": "vertebrae",
}


@dataclass(frozen=True)
class Finding:
    label: str
    box: PixelBox
    class_id: int | None = None


def _clip_box(box: PixelBox, rows: int, cols: int) -> PixelBox:
    x0, y0, x1, y1 = box
    x0, x1 = sorted((min(max(x0, 0.0), cols - 2.0), min(max(x1, 1.0), cols - 1.0)))
    y0, y1 = sorted((min(max(y0, 0.0), rows - 2.0), min(max(y1, 1.0), rows - 1.0)))
    return (round(x0, 1), round(y0, 1), round(max(x1, x0 + 1), 1), round(max(y1, y0 + 1), 1))


def _sub_box(region: NormBox, size: tuple[float, float] | None, rng: np.random.Generator) -> NormBox:
    if size is None:
        return region
    x0, y0, x1, y1 = region
    fw, fh = rng.uniform(*size), rng.uniform(*size)
    w, h = (x1 - x0) * fw, (y1 - y0) * fh
    left, top = x0 + rng.uniform(0, (x1 - x0) - w), y0 + rng.uniform(0, (y1 - y0) - h)
    return (left, top, left + w, top + h)


def plan_chest_findings(phantom: Phantom, rng: np.random.Generator) -> list[Finding]:
    rows, cols = phantom.shape
    findings = []
    for class_id in sorted(set(rng.choice(NO_FINDING_ID, size=int(rng.choice([0, 0, 1, 1, 2, 3]))).tolist())):
        region_name, size = _CXR_PLACEMENT.get(class_id, ("lungs", (0.25, 0.55)))
        regions = phantom.regions[region_name]
        norm = _sub_box(regions[int(rng.integers(len(regions)))], size, rng)
        box = _clip_box(to_pixel_box(norm, rows, cols), rows, cols)
        findings.append(Finding(CXR_CLASSES[class_id], box, class_id))
    return findings


def _spine_region(phantom: Phantom, kind: str, rng: np.random.Generator) -> NormBox:
    vertebrae = phantom.regions["vertebrae"]
    i = int(rng.integers(len(vertebrae) - 1))
    x0, y0, x1, y1 = vertebrae[i]
    if kind == "corner":
        w, h = (x1 - x0) * 0.35, (y1 - y0) * 0.45
        left = x0 - w * 0.4 if rng.random() < 0.5 else x1 - w * 0.6
        return (left, y1 - h * 0.7, left + w, y1 + h * 0.3)
    if kind == "pair":
        return (x0 + 0.1 * (x1 - x0), y0, x1 - 0.1 * (x1 - x0), vertebrae[i + 1][3])
    options = phantom.regions.get(kind) or vertebrae
    return options[min(i, len(options) - 1)]


def plan_spine_findings(phantom: Phantom, rng: np.random.Generator) -> list[Finding]:
    rows, cols = phantom.shape
    count = int(rng.choice([0, 1, 1, 2, 3]))
    labels = sorted(set(rng.choice(len(SPINE_LESIONS), size=count).tolist()))
    findings = []
    for index in labels:
        label = SPINE_LESIONS[index]
        norm = _spine_region(phantom, _SPINE_PLACEMENT[label], rng)
        findings.append(Finding(label, _clip_box(to_pixel_box(norm, rows, cols), rows, cols)))
    return findings


def draw_findings(phantom: Phantom, findings: list[Finding], rng: np.random.Generator) -> None:
    """Make the pixels agree with the labels: a faint lesion inside each box."""
    for finding in findings:
        if finding.label == "Surgical implant":
            draw_implant(phantom, finding.box)
        elif finding.label == "Pneumothorax":
            draw_lesion(phantom, finding.box, -0.08, rng)
        else:
            draw_lesion(phantom, finding.box, float(rng.uniform(0.07, 0.14)), rng)


def _jitter(box: PixelBox, rng: np.random.Generator, rows: int, cols: int) -> PixelBox:
    x0, y0, x1, y1 = box
    sx, sy = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    noisy = (x0 + rng.normal(0, sx), y0 + rng.normal(0, sy), x1 + rng.normal(0, sx), y1 + rng.normal(0, sy))
    return _clip_box(noisy, rows, cols)


def _fmt(box: PixelBox | None) -> list[str]:
    return ["", "", "", ""] if box is None else [f"{v:.1f}" for v in box]


def cxr_rows(image_id: str, findings: list[Finding], shape: tuple[int, int],
             rng: np.random.Generator) -> list[list[str]]:
    """Three readers; each misses a finding with p=0.15; nothing seen -> 'No finding'."""
    rows = []
    for reader in READERS:
        seen = [f for f in findings if rng.random() < 0.85]
        if not seen:
            rows.append([image_id, CXR_CLASSES[NO_FINDING_ID], str(NO_FINDING_ID), reader, *_fmt(None)])
        for f in seen:
            rows.append([image_id, f.label, str(f.class_id), reader, *_fmt(_jitter(f.box, rng, *shape))])
    return rows


def spine_rows(ids: tuple[str, str, str], reader: str, findings: list[Finding]) -> list[list[str]]:
    """One reader per image, as in VinDr-SpineXR."""
    if not findings:
        return [[*ids, reader, "No finding", *_fmt(None)]]
    return [[*ids, reader, f.label, *_fmt(f.box)] for f in findings]


def write_csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
