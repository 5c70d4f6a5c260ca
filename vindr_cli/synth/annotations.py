"""Findings drawn into the images and the VinDr-CXR / VinDr-SpineXR style CSVs.

Boxes are in original pixel coordinates; image_id / study_id / series_id are
the hospital-side (original) UIDs, as in a raw labelling export. Like the pixels,
everything is drawn with integer arithmetic (``Generator.integers``), so the CSVs are
the same on every machine.
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

# class id -> (anatomical region, relative size range in thousandths, or None for the whole region)
_CXR_PLACEMENT = {
    0: ("aortic_knob", None), 3: ("heart", None), 10: ("bases", None), 11: ("apices", (400, 700)),
    12: ("apices", (500, 900)), 2: ("lungs", (80, 140)), 8: ("lungs", (120, 250)),
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
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, x1 = sorted((min(max(x0, 0), cols - 2), min(max(x1, 1), cols - 1)))
    y0, y1 = sorted((min(max(y0, 0), rows - 2), min(max(y1, 1), rows - 1)))
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


def _sub_box(region: NormBox, size: tuple[int, int] | None, rng: np.random.Generator) -> NormBox:
    if size is None:
        return region
    x0, y0, x1, y1 = region
    fw, fh = (int(rng.integers(size[0], size[1] + 1)) for _ in range(2))
    w, h = (x1 - x0) * fw // 1000, (y1 - y0) * fh // 1000
    left, top = x0 + int(rng.integers(0, (x1 - x0) - w + 1)), y0 + int(rng.integers(0, (y1 - y0) - h + 1))
    return (left, top, left + w, top + h)


def plan_chest_findings(phantom: Phantom, rng: np.random.Generator) -> list[Finding]:
    rows, cols = phantom.shape
    findings = []
    for class_id in sorted(set(rng.choice(NO_FINDING_ID, size=int(rng.choice([0, 1, 1, 2, 2, 3]))).tolist())):
        region_name, size = _CXR_PLACEMENT.get(class_id, ("lungs", (250, 550)))
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
        w, h = (x1 - x0) * 35 // 100, (y1 - y0) * 45 // 100
        left = x0 - w * 4 // 10 if rng.integers(2) == 0 else x1 - w * 6 // 10
        return (left, y1 - h * 7 // 10, left + w, y1 + h * 3 // 10)
    if kind == "pair":
        return (x0 + (x1 - x0) // 10, y0, x1 - (x1 - x0) // 10, vertebrae[i + 1][3])
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
            draw_lesion(phantom, finding.box, -80, rng)
        else:
            draw_lesion(phantom, finding.box, int(rng.integers(70, 141)), rng)


def _jitter(box: PixelBox, rng: np.random.Generator, rows: int, cols: int) -> tuple[int, int, int, int]:
    """Another reader's box, in tenths of a pixel: each side moved by up to 8% of the box size
    (so two readers practically never draw the very same box)."""
    x0, y0, x1, y1 = (10 * v for v in box)
    sx, sy = max((x1 - x0) * 8 // 100, 1), max((y1 - y0) * 8 // 100, 1)
    dx0, dx1 = (int(rng.integers(-sx, sx + 1)) for _ in range(2))
    dy0, dy1 = (int(rng.integers(-sy, sy + 1)) for _ in range(2))
    x0, x1 = sorted((min(max(x0 + dx0, 0), 10 * cols - 20), min(max(x1 + dx1, 10), 10 * cols - 10)))
    y0, y1 = sorted((min(max(y0 + dy0, 0), 10 * rows - 20), min(max(y1 + dy1, 10), 10 * rows - 10)))
    return (x0, y0, max(x1, x0 + 10), max(y1, y0 + 10))


def _fmt(box: PixelBox | None, tenths: bool = False) -> list[str]:
    """Pixel coordinates with one decimal (from integers: pixels, or tenths of a pixel)."""
    if box is None:
        return ["", "", "", ""]
    return [f"{v // 10}.{v % 10}" if tenths else f"{v}.0" for v in box]


def cxr_rows(image_id: str, findings: list[Finding], shape: tuple[int, int],
             rng: np.random.Generator) -> list[list[str]]:
    """Three readers; each misses a finding with p=0.15; nothing seen -> 'No finding'."""
    rows = []
    for reader in READERS:
        seen = [f for f in findings if rng.integers(100) < 85]
        if not seen:
            rows.append([image_id, CXR_CLASSES[NO_FINDING_ID], str(NO_FINDING_ID), reader, *_fmt(None)])
        for f in seen:
            rows.append([image_id, f.label, str(f.class_id), reader, *_fmt(_jitter(f.box, rng, *shape), tenths=True)])
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
