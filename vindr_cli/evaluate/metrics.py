"""Detection and classification metrics in plain numpy: IoU, VOC/COCO average precision,
weighted boxes fusion, AUROC and a bootstrap confidence interval.

Conventions (the reasons are in the docstrings below):

* Boxes are ``x_min, y_min, x_max, y_max`` in continuous pixel-edge coordinates; area is
  ``(x_max - x_min) * (y_max - y_min)`` (no VOC ``+1``), as in pycocotools and the VinDr CSVs.
  Two boxes whose union has zero area have IoU 0.
* ``matching="voc"`` (PASCAL VOC devkit): detections are taken by descending score; each one
  is compared with the ground-truth box of highest IoU in its image (first on IoU ties); it is
  a true positive if that IoU passes the threshold and that box is not matched yet, otherwise
  a false positive (a duplicate). ``matching="coco"`` (pycocotools): each detection takes the
  highest-IoU ground-truth box *not matched yet* (last on IoU ties, as pycocotools).
* ``inclusive=False`` tests ``iou > thr`` (VOC devkit ``ov > ovthresh``, and the VinBigData
  rule "IoU > 0.4"); ``inclusive=True`` tests ``iou >= thr`` (pycocotools).
* Score ties keep input order: every sort is stable (mergesort) on the order the detections
  were given in.
* ``interpolation="voc"``: VOC 2010+ all-point interpolated AP (area under the precision
  envelope). ``interpolation="coco101"``: the mean of the precision envelope at 101 recall
  points, exactly as pycocotools ``accumulate``.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

Matching = Literal["voc", "coco"]
Interpolation = Literal["voc", "coco101"]

# pycocotools' thresholds, built with the same expressions so the floats are identical.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
COCO_MAX_DETS = 100


# ---------------------------------------------------------------------------------------------
# boxes

def _as_boxes(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 4)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {a.shape}")
    return a


def box_iou(a, b) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy: an (N, M) array.

    Area is width * height (continuous coordinates); a zero-area union gives IoU 0.
    """
    a, b = _as_boxes(a), _as_boxes(b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def weighted_boxes_fusion(boxes, scores=None, iou_thr: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted boxes fusion (Solovyev et al. 2021) of boxes of one class in one image.

    Boxes are taken by descending score (stable: input order on ties). Each joins the
    cluster whose current fused box has the highest IoU with it if that IoU is ``>= iou_thr``
    (first cluster on ties), else starts a new cluster. A fused box is the score-weighted
    mean of its members' coordinates, recomputed after every join. (The ``ensemble_boxes``
    package joins on ``iou > thr``; ``>=`` is this project's choice.)

    Returns ``(fused_boxes (K, 4), fused_scores (K,) = mean member score, cluster (N,))``,
    with clusters numbered in creation order and ``cluster[i]`` the cluster of input ``i``.
    With ``scores=None`` every box weighs 1 (reader boxes), so a fused box is the plain mean.
    """
    b = _as_boxes(boxes)
    n = len(b)
    s = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != n:
        raise ValueError("boxes and scores differ in length")
    if n and np.any(s <= 0):
        raise ValueError("weighted boxes fusion needs positive scores (they are the weights)")
    cluster = np.full(n, -1, dtype=np.int64)
    sums: list[np.ndarray] = []  # weighted coordinate sums
    weights: list[float] = []
    fused = np.zeros((0, 4))
    for i in np.argsort(-s, kind="mergesort"):
        if len(fused):
            ious = box_iou(b[i], fused)[0]
            k = int(np.argmax(ious))
            if ious[k] >= iou_thr:
                sums[k] = sums[k] + s[i] * b[i]
                weights[k] += s[i]
                fused[k] = sums[k] / weights[k]
                cluster[i] = k
                continue
        sums.append(s[i] * b[i])
        weights.append(float(s[i]))
        fused = np.vstack([fused, b[i][None, :]])
        cluster[i] = len(fused) - 1
    counts = np.bincount(cluster, minlength=len(fused)) if n else np.zeros(0, dtype=np.int64)
    fused_scores = np.asarray(weights) / np.maximum(counts, 1) if n else np.zeros(0)
    return fused, fused_scores, cluster


# ---------------------------------------------------------------------------------------------
# average precision

def voc_ap(recall, precision) -> float:
    """PASCAL VOC 2010+ all-point interpolated AP.

    ``recall`` / ``precision`` are the cumulative values at each ranked detection. The
    precision envelope (max precision at any recall >= r) is integrated over recall, as
    ``voc_ap(use_07_metric=False)`` in the VOC devkit. No detection gives 0.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if len(rec) != len(prec):
        raise ValueError("recall and precision differ in length")
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def coco_ap(recall, precision) -> float:
    """COCO 101-point interpolated AP, exactly as pycocotools ``COCOeval.accumulate``.

    The precision envelope is sampled at recall 0, 0.01, ..., 1 (first detection whose
    recall reaches the point, ``searchsorted(side="left")``); unreachable points count 0.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if len(rec) != len(prec):
        raise ValueError("recall and precision differ in length")
    if not len(rec):
        return 0.0
    env = np.maximum.accumulate(prec[::-1])[::-1]
    idx = np.searchsorted(rec, COCO_RECALL_THRESHOLDS, side="left")
    q = np.where(idx < len(rec), env[np.minimum(idx, len(rec) - 1)], 0.0)
    return float(np.mean(q))


@dataclass
class ClassAP:
    """AP of one class; ``ap`` is None when the class has no ground-truth box."""
    ap: float | None
    n_gt: int
    n_pred: int
    recall: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    precision: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    tp: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=bool))  # per ranked detection


def _match_image(det_boxes: np.ndarray, gt_boxes: np.ndarray, iou_thr: float, inclusive: bool,
                 matching: Matching) -> np.ndarray:
    """True-positive flags for one image's detections, already in rank order."""
    d, g = len(det_boxes), len(gt_boxes)
    tp = np.zeros(d, dtype=bool)
    if not d or not g:
        return tp
    ious = box_iou(det_boxes, gt_boxes)
    if matching == "voc":
        j = np.argmax(ious, axis=1)  # first box on IoU ties, as the devkit
        best = ious[np.arange(d), j]
        ok = np.flatnonzero(best >= iou_thr if inclusive else best > iou_thr)
        # the first detection (in rank order) claiming a box wins; later claims are duplicates
        _, first = np.unique(j[ok], return_index=True)
        tp[ok[first]] = True
        return tp
    if matching != "coco":
        raise ValueError(f"matching must be 'voc' or 'coco', not {matching!r}")
    thr = min(iou_thr, 1 - 1e-10) if inclusive else iou_thr  # pycocotools caps at 1 - 1e-10
    taken = np.zeros(g, dtype=bool)
    for i in range(d):
        row = np.where(taken, -np.inf, ious[i])
        m = g - 1 - int(np.argmax(row[::-1]))  # last box on IoU ties, as pycocotools
        if (row[m] >= thr) if inclusive else (row[m] > thr):
            taken[m] = True
            tp[i] = True
            if taken.all():
                break
    return tp


def average_precision(gt_boxes: Mapping[Hashable, object], det_images: Sequence[Hashable], det_scores,
                      det_boxes, *, iou_thr: float = 0.4, inclusive: bool = False, matching: Matching = "voc",
                      interpolation: Interpolation = "voc", max_dets: int | None = None) -> ClassAP:
    """AP of one class.

    ``gt_boxes`` maps an image to its ground-truth boxes (K, 4); images with no box may be
    left out. Detection ``i`` is on image ``det_images[i]`` with ``det_scores[i]`` and
    ``det_boxes[i]``; a detection on an image without ground truth is a false positive.
    ``max_dets`` keeps only the best-scored detections per image (pycocotools: 100).
    """
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    boxes = _as_boxes(det_boxes)
    images = list(det_images)
    n = len(scores)
    if len(images) != n or len(boxes) != n:
        raise ValueError("det_images, det_scores and det_boxes differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("detection scores must be finite")
    gts = {k: _as_boxes(v) for k, v in gt_boxes.items()}
    n_gt = int(sum(len(v) for v in gts.values()))
    if interpolation not in ("voc", "coco101"):
        raise ValueError(f"interpolation must be 'voc' or 'coco101', not {interpolation!r}")

    codes: dict[Hashable, int] = {}
    img = np.fromiter((codes.setdefault(k, len(codes)) for k in images), dtype=np.int64, count=n)
    keys = list(codes)
    idx = np.arange(n)
    # per image: descending score, input order on ties
    order = np.lexsort((idx, -scores, img))
    tp = np.zeros(n, dtype=bool)
    kept = np.ones(n, dtype=bool)
    starts = np.flatnonzero(np.r_[True, img[order][1:] != img[order][:-1]]) if n else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts, ends):
        rows = order[s:e]
        if max_dets is not None and len(rows) > max_dets:
            kept[rows[max_dets:]] = False
            rows = rows[:max_dets]
        g = gts.get(keys[img[rows[0]]])
        if g is not None and len(g):
            tp[rows] = _match_image(boxes[rows], g, iou_thr, inclusive, matching)

    ranked = idx[kept][np.argsort(-scores[kept], kind="mergesort")]
    tps = tp[ranked]
    ctp = np.cumsum(tps).astype(np.float64)
    cfp = np.cumsum(~tps).astype(np.float64)
    if n_gt == 0:
        return ClassAP(None, 0, n, np.zeros(0), np.zeros(0), tps)
    recall = ctp / n_gt
    if interpolation == "voc":
        precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        ap = voc_ap(recall, precision)
    else:
        precision = ctp / (ctp + cfp + np.spacing(1))  # as pycocotools
        ap = coco_ap(recall, precision)
    return ClassAP(ap, n_gt, n, recall, precision, tps)


def average_precision_per_class(gt_images: Sequence[Hashable], gt_classes, gt_boxes,
                                det_images: Sequence[Hashable], det_classes, det_scores, det_boxes, *,
                                classes: Sequence[Hashable] | None = None, iou_thr: float = 0.4,
                                inclusive: bool = False, matching: Matching = "voc",
                                interpolation: Interpolation = "voc",
                                max_dets: int | None = None) -> dict[Hashable, ClassAP]:
    """AP for every class, from flat ground-truth and detection columns.

    Ground truth row ``i``: image ``gt_images[i]``, class ``gt_classes[i]``, box
    ``gt_boxes[i]``; detection row ``j`` likewise plus ``det_scores[j]``. ``classes`` fixes
    which classes are reported (default: every class seen in either table, sorted). A class
    without ground truth gets ``ap=None``; one with ground truth but no detection gets 0.
    """
    gi = np.asarray(list(gt_images), dtype=object)
    gc = np.asarray(list(gt_classes), dtype=object)
    gb = _as_boxes(gt_boxes)
    di = np.asarray(list(det_images), dtype=object)
    dc = np.asarray(list(det_classes), dtype=object)
    ds = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    db = _as_boxes(det_boxes)
    if not (len(gi) == len(gc) == len(gb)):
        raise ValueError("ground-truth columns differ in length")
    if not (len(di) == len(dc) == len(ds) == len(db)):
        raise ValueError("detection columns differ in length")
    if classes is None:
        classes = sorted(set(gc.tolist()) | set(dc.tolist()))
    out: dict[Hashable, ClassAP] = {}
    for c in classes:
        gm = gc == c
        by_image: dict[Hashable, list[np.ndarray]] = {}
        for k, box in zip(gi[gm], gb[gm]):
            by_image.setdefault(k, []).append(box)
        dm = dc == c
        out[c] = average_precision({k: np.stack(v) for k, v in by_image.items()}, di[dm].tolist(), ds[dm],
                                   db[dm], iou_thr=iou_thr, inclusive=inclusive, matching=matching,
                                   interpolation=interpolation, max_dets=max_dets)
    return out


def coco_average_precision(gt_boxes: Mapping[Hashable, object], det_images: Sequence[Hashable], det_scores,
                           det_boxes, *, iou_thresholds=COCO_IOU_THRESHOLDS,
                           max_dets: int | None = COCO_MAX_DETS) -> float | None:
    """COCO AP@[.5:.95] of one class: the mean over IoU thresholds of the 101-point AP with
    pycocotools matching (``>=``, best unmatched box) and at most 100 detections per image."""
    aps = [average_precision(gt_boxes, det_images, det_scores, det_boxes, iou_thr=float(t), inclusive=True,
                             matching="coco", interpolation="coco101", max_dets=max_dets).ap
           for t in iou_thresholds]
    return None if aps[0] is None else float(np.mean(aps))


# ---------------------------------------------------------------------------------------------
# classification

def rankdata(x) -> np.ndarray:
    """1-based ranks with ties given their average rank (scipy's ``rankdata(method="average")``)."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    bounds = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
    avg = (bounds[:-1] + 1 + bounds[1:]) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(a))
    ranks[order] = np.repeat(avg, np.diff(bounds))
    return ranks


def _binary(labels) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if y.dtype == bool:
        return y
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be binary (0/1 or bool)")
    return y.astype(bool)


def auroc(labels, scores) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U / (n_pos * n_neg)).

    Ties in score count one half (average ranks), so it equals the probability that a random
    positive scores above a random negative, plus half the probability of a tie. Needs both
    classes and finite scores, else ``ValueError``.
    """
    y = _binary(labels)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(y) != len(s):
        raise ValueError("labels and scores differ in length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative label")
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


class BootstrapCI(NamedTuple):
    estimate: float
    low: float
    high: float
    n: int          # resamples used
    skipped: int    # resamples where the metric was undefined (ValueError)


def bootstrap_ci(metric: Callable[[np.ndarray, np.ndarray], float], labels, scores, n: int = 1000,
                 seed: int | None = 0, *, alpha: float = 0.05, stratified: bool = True) -> BootstrapCI:
    """Percentile bootstrap confidence interval of ``metric(labels, scores)``.

    Cases are resampled with replacement ``n`` times from ``numpy.random.default_rng(seed)``;
    ``stratified=True`` (pROC's default for AUROC) resamples within each label value so every
    resample keeps the class counts. A resample on which the metric raises ``ValueError``
    (e.g. a single class, possible only unstratified) is skipped and counted. Returns the
    estimate on the full data and the ``alpha/2``, ``1 - alpha/2`` quantiles.
    """
    y = np.asarray(labels)
    s = np.asarray(scores)
    if len(y) != len(s):
        raise ValueError("labels and scores differ in length")
    if n < 1:
        raise ValueError("n must be at least 1")
    estimate = float(metric(y, s))
    rng = np.random.default_rng(seed)
    if stratified:
        groups = [np.flatnonzero(y == v) for v in np.unique(y)]
    else:
        groups = [np.arange(len(y))]
    values = []
    skipped = 0
    for _ in range(n):
        idx = np.concatenate([g[rng.integers(0, len(g), size=len(g))] for g in groups])
        try:
            values.append(float(metric(y[idx], s[idx])))
        except ValueError:
            skipped += 1
    if not values:
        raise ValueError("the metric was undefined on every resample")
    low, high = np.quantile(np.asarray(values), [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(estimate, float(low), float(high), len(values), skipped)
