"""``vindr evaluate``: score detection predictions against VinDr ground truth.

Ground truth and predictions are read by :mod:`vindr_cli.annotations` (one reader, one
canonical table, the same row checks and label sets as ``vindr split``: a ground-truth box
must have x_min < x_max, y_min < y_max and no negative coordinate). Ground truth (the
form is chosen by the header):

* VinDr-CXR / Kaggle ``train.csv``: ``image_id, class_name, class_id, rad_id, x_min, y_min,
  x_max, y_max`` (class_name or class_id may be missing; when both are there they must
  agree). Every reader's box is a ground-truth box, as in the VinBigData competition, unless
  ``fuse_readers``: then the readers' boxes of one class in one image are fused by weighted
  boxes fusion (IoU >= 0.4, every box weighing 1) and each cluster is one box.
* VinDr-SpineXR: ``image_id, study_id, series_id, rad_id, lesion_type, xmin, ymin, xmax, ymax``.

"No finding" (id 14 in ``vinbigdata``, 22 in ``vindr-cxr``, 7 in ``vindr-spinexr``) follows the competition: an
image that any reader called "No finding" gets ONE ground-truth box (0, 0, 1, 1) of that
class, however many readers said so (the competition's ground truth had one such box per
image). Coordinates on a No finding row are ignored. An image where one reader said
"No finding" and another drew a box keeps both. A correct "No finding" prediction is
``14 <score> 0 0 1 1``.

Metric: PASCAL VOC 2010+ all-point AP per class, a detection matching when ``IoU > iou``
(strictly, as the devkit's ``ov > ovthresh`` and the competition's "IoU > 0.4"); greedy by
descending score, each ground-truth box matched once, duplicates false positives, score ties
in input order. mAP is the mean over the classes that have at least one ground-truth box
(a class with boxes but no prediction scores 0; a class without boxes has no AP).
``coco=True`` adds the pycocotools-style AP@[.5:.95] (101 points, ``>=``, 100 per image).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vindr_cli.annotations import (NO_FINDING, NO_FINDING_BOX, AnnotationInputError, BadRow, BadRowsError,
                                   LabelSet, load_labels, read_annotations, read_predictions)
from vindr_cli.evaluate.metrics import average_precision_per_class, coco_average_precision, weighted_boxes_fusion
from vindr_cli.reasons import label_set_extra, shown_masked

__all__ = ["BadRowsError", "EvalInputError", "EvalResult", "GroundTruth", "evaluate", "read_ground_truth",
           "render", "to_json"]

FUSE_IOU = 0.4
EvalInputError = AnnotationInputError   # a file that cannot be evaluated at all (exit 2)


@dataclass
class GroundTruth:
    format: str                      # "cxr" or "spinexr"
    vocab: LabelSet
    images: list[str]                # every image named in the file, first-seen order
    image: list[str] = field(default_factory=list)
    cls: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    reader_boxes: int = 0            # boxes read (before fusion, No finding deduplicated)
    multi_reader: int = 0            # (image, class) pairs boxed by more than one reader


def read_ground_truth(path: Path, *, labels: "LabelSet | str | Path | None" = None, fuse_readers: bool = False,
                      fuse_iou: float = FUSE_IOU) -> tuple[GroundTruth, list[BadRow]]:
    """Read VinDr-CXR (Kaggle train.csv / PhysioNet) or VinDr-SpineXR ground truth through
    :func:`vindr_cli.annotations.read_annotations`; see the module doc."""
    ann, bad_rows = read_annotations(Path(path), labels=load_labels(labels))
    fmt = {"cxr-boxes": "cxr", "spinexr": "spinexr"}.get(ann.attrs["format"])
    if fmt is None:
        raise EvalInputError(f"{Path(path).name}: image-level labels have no boxes to score detections against; "
                             "give a VinDr-CXR/Kaggle box table or a VinDr-SpineXR table")
    vocab: LabelSet = ann.attrs["label_set"]
    bad = [BadRow(b.line, b.reason, "gt") for b in bad_rows]
    nf = vocab.no_finding_id
    cls = ann["class_id"].to_numpy(dtype=np.int64)
    images_all = ann["image_id"].astype(str).to_numpy()
    is_nf = cls == nf if nf is not None else np.zeros(len(cls), bool)
    normal = list(dict.fromkeys(images_all[is_nf].tolist()))
    boxes_all = ann[["x_min", "y_min", "x_max", "y_max"]].to_numpy(dtype=np.float64)
    groups: dict[tuple[str, int], list[np.ndarray]] = {}
    for img, c, b in zip(images_all[~is_nf], cls[~is_nf], boxes_all[~is_nf]):
        groups.setdefault((img, int(c)), []).append(b)
    readers = ann["reader"].astype(str).to_numpy() if "reader" in ann.columns else np.zeros(len(ann), dtype=object)
    by_pair: dict[tuple[str, int], set] = {}
    for img, c, r in zip(images_all[~is_nf], cls[~is_nf], readers[~is_nf]):
        by_pair.setdefault((img, int(c)), set()).add(r)
    out_img: list[str] = []
    out_cls: list[int] = []
    out_box: list[np.ndarray] = []
    reader_boxes = len(normal)
    for (img, c), boxes in groups.items():
        b = np.asarray(boxes, dtype=np.float64)
        reader_boxes += len(b)
        if fuse_readers and len(b) > 1:
            b, _, _ = weighted_boxes_fusion(b, None, fuse_iou)
        out_img += [img] * len(b)
        out_cls += [c] * len(b)
        out_box.append(b)
    for img in normal:
        out_img.append(img)
        out_cls.append(nf)  # type: ignore[arg-type]
        out_box.append(np.asarray([NO_FINDING_BOX]))
    gt = GroundTruth(fmt, vocab, list(ann.attrs["images"]), out_img, np.asarray(out_cls, dtype=np.int64),
                     np.concatenate(out_box) if out_box else np.zeros((0, 4)), reader_boxes,
                     sum(len(r) > 1 for r in by_pair.values()))
    return gt, bad


@dataclass
class EvalResult:
    map: float | None                        # VOC mAP over classes with ground truth
    per_class: dict[str, dict]               # name -> {"ap", "n_gt", "n_pred"[, "coco_ap"]}
    coco_map: float | None = None            # AP@[.5:.95] (coco=True)
    bad_rows: list[BadRow] = field(default_factory=list)
    iou: float = 0.4
    gt_format: str = ""
    pred_format: str = ""
    fuse_readers: bool = False
    n_images: int = 0
    n_gt_boxes: int = 0
    n_predictions: int = 0
    map_without_no_finding: float | None = None  # the same mean, "No finding" left out
    multi_reader: int = 0                    # GT (image, class) pairs boxed by several readers
    class_ids: dict[str, int] = field(default_factory=dict)
    label_set: LabelSet | None = None        # the ground truth's (its listed names may be quoted)
    labels_from: str = ""                    # --labels, the release's labels.json, or the GT form's default

    def shown_bad_rows(self) -> list[BadRow]:
        """The bad rows as evaluate shows them (table and --json): each reason in vindr's words,
        the row's quoted values masked, as split_report.json (reasons.shown_masked; a listed
        name of the label set or a short plain number may stay), else "(other reason)"."""
        extra = label_set_extra(self.label_set) if self.label_set is not None else None
        return [BadRow(b.line, shown_masked("prediction_rows" if b.source == "pred" else "annotation_rows",
                                            b.reason, extra), b.source) for b in self.bad_rows]


class _Preds:
    """Arrays of a canonical prediction table, as the metrics take them."""

    def __init__(self, df):
        self.image = df["image_id"].astype(str).tolist()
        self.cls = df["class_id"].to_numpy(dtype=np.int64)
        self.score = df["score"].to_numpy(dtype=np.float64)
        self.boxes = df[["x_min", "y_min", "x_max", "y_max"]].to_numpy(dtype=np.float64).reshape(-1, 4)
        self.format = {"kaggle-submission": "kaggle", "pred-boxes": "boxes"}.get(df.attrs.get("format"), "")

    def __len__(self) -> int:
        return len(self.image)


def _mean(values) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def evaluate(gt_path: Path, pred_path: Path, *, iou: float = 0.4, fuse_readers: bool = False, coco: bool = False,
             strict: bool = False, labels: "LabelSet | str | Path | None" = None,
             fuse_iou: float = FUSE_IOU) -> EvalResult:
    """Score ``pred_path`` against ``gt_path`` (see the module doc for formats and rules).

    Malformed rows (either file) are listed in ``bad_rows`` and left out; with ``strict``
    they raise ``BadRowsError`` (exit 1). A file that cannot be read raises ``EvalInputError``
    (exit 2). ``labels`` (a label set, built-in name or TOML file) replaces the form's
    default vocabulary (index = class id).
    """
    if not 0.0 <= iou <= 1.0:
        raise EvalInputError("the IoU threshold must be within [0, 1]")
    labels_from = "--labels" if labels is not None else "the ground truth's form"
    if labels is None and (release_labels := _release_labels(Path(gt_path))) is not None:
        labels, labels_from = release_labels, "the release's labels.json"
    gt, bad = read_ground_truth(Path(gt_path), labels=labels, fuse_readers=fuse_readers, fuse_iou=fuse_iou)
    pred_df, bad_pred = read_predictions(Path(pred_path), gt.vocab, known_images=set(gt.images))
    preds = _Preds(pred_df)
    bad = bad + bad_pred
    if strict and bad:
        raise BadRowsError(bad, "evaluate", names=gt.vocab.all_labels)

    ids = list(range(len(gt.vocab)))
    voc = average_precision_per_class(gt.image, gt.cls, gt.boxes, preds.image, preds.cls, preds.score, preds.boxes,
                                      classes=ids, iou_thr=iou, inclusive=False, matching="voc",
                                      interpolation="voc")
    per_class: dict[str, dict] = {}
    for c in ids:
        r = voc[c]
        entry = {"ap": r.ap, "n_gt": r.n_gt, "n_pred": r.n_pred}
        if coco:
            gm, dm = gt.cls == c, preds.cls == c
            by_image: dict[str, list] = {}
            for k, b in zip(np.asarray(gt.image, dtype=object)[gm], gt.boxes[gm]):
                by_image.setdefault(k, []).append(b)
            entry["coco_ap"] = coco_average_precision({k: np.stack(v) for k, v in by_image.items()},
                                                      np.asarray(preds.image, dtype=object)[dm].tolist(),
                                                      preds.score[dm], preds.boxes[dm])
        per_class[gt.vocab.names[c]] = entry
    return EvalResult(
        map=_mean(e["ap"] for e in per_class.values()),
        per_class=per_class,
        coco_map=_mean(e["coco_ap"] for e in per_class.values()) if coco else None,
        bad_rows=bad, iou=iou, gt_format=gt.format, pred_format=preds.format, fuse_readers=fuse_readers,
        n_images=len(gt.images), n_gt_boxes=len(gt.image), n_predictions=len(preds),
        map_without_no_finding=_mean(e["ap"] for n, e in per_class.items() if n != NO_FINDING),
        class_ids={n: i for i, n in enumerate(gt.vocab.names)}, label_set=gt.vocab,
        multi_reader=gt.multi_reader, labels_from=labels_from,
    )


def _release_labels(gt_path: Path) -> Path | None:
    """``RELEASE/labels.json`` when the ground truth is a release's ``annotations/*.csv``: its
    label set is the one the release's class ids and names follow. Without it, the VinDr layout
    (``annotations_test.csv``, no class_id) was read with the ``vindr-cxr`` set while a
    submission's ids were ``vinbigdata`` positions — every class silently scored 0 (new-user walk 7)."""
    folder = Path(gt_path).resolve().parent
    release = folder.parent
    if folder.name == "annotations" and (release / "labels.json").is_file() and (release / "images.csv").is_file():
        return release / "labels.json"
    return None


def to_json(result: EvalResult) -> str:
    """``{"map", "per_class": {name: ap}}`` plus the details (counts, COCO AP, bad rows)."""
    doc = {
        "map": result.map,
        "per_class": {n: e["ap"] for n, e in result.per_class.items()},
        "map_without_no_finding": result.map_without_no_finding,
        "coco_map": result.coco_map,
        "iou": result.iou,
        "match": "iou > threshold",
        "gt_format": result.gt_format,
        "pred_format": result.pred_format,
        "fuse_readers": result.fuse_readers,
        "label_set": result.label_set.name if result.label_set is not None else None,
        "labels_from": result.labels_from,
        "images": result.n_images,
        "gt_boxes": result.n_gt_boxes,
        "predictions": result.n_predictions,
        "classes": {n: {"id": result.class_ids.get(n), **e} for n, e in result.per_class.items()},
        "bad_rows": [{"source": b.source, "line": b.line, "reason": b.reason} for b in result.shown_bad_rows()],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def render(result: EvalResult, console: Console, *, max_bad_rows: int = 20) -> None:
    """Per-class table (id, class, AP, COCO AP, boxes, predictions), mAP, then the bad rows."""
    coco = result.coco_map is not None or any("coco_ap" in e for e in result.per_class.values())
    t = Table(title=f"vindr evaluate: VOC AP at IoU > {result.iou:g}"
                    + (" (readers fused)" if result.fuse_readers else ""))
    t.add_column("id", justify="right")
    t.add_column("class")
    t.add_column("AP", justify="right")
    if coco:
        t.add_column("AP@[.5:.95]", justify="right")
    t.add_column("GT boxes", justify="right")
    t.add_column("predictions", justify="right")
    for name, e in result.per_class.items():
        cells = [str(result.class_ids.get(name, "")), Text(name), _fmt(e["ap"])]
        if coco:
            cells.append(_fmt(e.get("coco_ap")))
        t.add_row(*cells, str(e["n_gt"]), str(e["n_pred"]))
    t.add_section()
    cells = ["", "[bold]mAP", f"[bold]{_fmt(result.map)}"]
    if coco:
        cells.append(f"[bold]{_fmt(result.coco_map)}")
    t.add_row(*cells, str(result.n_gt_boxes), str(result.n_predictions))
    if NO_FINDING in result.per_class:
        cells = ["", f"mAP without {NO_FINDING}", _fmt(result.map_without_no_finding)]
        t.add_row(*cells, *([""] * (len(t.columns) - len(cells))))
    console.print(t)
    console.print(f"{result.n_images} images ({result.gt_format} ground truth), "
                  f"predictions as {result.pred_format or '-'}"
                  + (f"; label set {result.label_set.name} ({result.labels_from})"
                     if result.label_set is not None and result.labels_from else ""), highlight=False)
    if result.multi_reader and not result.fuse_readers:
        # a perfect prediction scored AP 0.33 against three readers' boxes (new-user walk 5)
        console.print(f"{result.multi_reader} image/class pair(s) of the ground truth hold boxes of several readers: "
                      "each reader's box is one to find (VinBigData's scoring); --fuse-readers fuses them first",
                      highlight=False)
    if result.bad_rows:
        b = Table(title=f"{len(result.bad_rows)} malformed row(s) left out")
        b.add_column("file")
        b.add_column("line", justify="right")
        b.add_column("reason")
        for r in result.shown_bad_rows()[:max_bad_rows]:
            b.add_row(r.source, str(r.line), Text(r.reason))
        console.print(b)
        if len(result.bad_rows) > max_bad_rows:
            console.print(f"... and {len(result.bad_rows) - max_bad_rows} more (--json lists them all)")
