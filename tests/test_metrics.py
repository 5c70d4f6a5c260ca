"""Metrics: IoU, VOC/COCO AP on hand-computed cases, agreement with pycocotools, WBF, AUROC."""
from __future__ import annotations

import contextlib
import io
import itertools

import numpy as np
import pytest

from vindr_cli.evaluate.metrics import (
    average_precision, average_precision_per_class, auroc, bootstrap_ci, box_iou, coco_ap,
    coco_average_precision, rankdata, voc_ap, weighted_boxes_fusion,
)

A = (0.0, 0.0, 10.0, 10.0)
FAR = (100.0, 100.0, 110.0, 110.0)


def ap(gt, dets, **kw):
    """gt: {image: [box, ...]}; dets: [(image, score, box), ...] in input order."""
    images = [d[0] for d in dets]
    scores = [d[1] for d in dets]
    boxes = np.array([d[2] for d in dets], dtype=float).reshape(-1, 4)
    return average_precision({k: np.array(v, dtype=float) for k, v in gt.items()}, images, scores, boxes, **kw)


# --------------------------------------------------------------------------- IoU

def test_box_iou_hand_cases():
    iou = box_iou([A, (5, 0, 15, 10), FAR, (0, 0, 10, 4)], [A])
    assert iou.shape == (4, 1)
    np.testing.assert_allclose(iou[:, 0], [1.0, 50 / 150, 0.0, 0.4])
    assert box_iou([(3, 3, 3, 3)], [(3, 3, 3, 3)])[0, 0] == 0.0  # zero-area union
    assert box_iou(np.zeros((0, 4)), [A]).shape == (0, 1)


def test_box_iou_matches_a_loop():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 50, (30, 2))
    a = np.c_[xy, xy + rng.uniform(1, 30, (30, 2))]
    b = a[::-1][:17] + rng.normal(0, 3, (17, 4))
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 0.5)
    got = box_iou(a, b)
    for i, j in itertools.product(range(30), range(17)):
        iw = max(0.0, min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]))
        ih = max(0.0, min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]))
        inter = iw * ih
        union = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1]) + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]) - inter
        assert got[i, j] == pytest.approx(inter / union, abs=1e-12)


# --------------------------------------------------------------------------- AP

def test_voc_ap_all_point():
    # envelope 1 up to recall .5, then 2/3 up to 1
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert voc_ap([], []) == 0.0
    assert voc_ap([0.25, 0.5], [1.0, 1.0]) == pytest.approx(0.5)


def test_coco_ap_101_points():
    # recall .5 reached at precision 1, recall 1 at precision .5: 51 points at 1, 50 at .5
    assert coco_ap([0.5, 1.0], [1.0, 0.5]) == pytest.approx((51 + 25) / 101)
    assert coco_ap([], []) == 0.0


def test_duplicates_are_false_positives():
    gt = {"i1": [A], "i2": [FAR]}
    r = ap(gt, [("i1", 0.9, A), ("i1", 0.8, (0, 0, 10, 9)), ("i2", 0.7, FAR)])
    # TP, FP (duplicate), TP: recall .5 .5 1, precision 1 .5 2/3
    assert r.tp.tolist() == [True, False, True]
    assert r.ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert (r.n_gt, r.n_pred) == (2, 3)


def test_score_ties_keep_input_order():
    gt = {"i1": [A]}
    fp, tp = ("i1", 0.5, FAR), ("i1", 0.5, A)
    assert ap(gt, [fp, tp]).ap == pytest.approx(0.5)  # FP ranked first: precision 1/2 at recall 1
    assert ap(gt, [tp, fp]).ap == pytest.approx(1.0)


def test_prediction_on_image_without_ground_truth_is_a_false_positive():
    gt = {"i1": [A]}
    assert ap(gt, [("i1", 0.5, A)]).ap == 1.0
    assert ap(gt, [("i2", 0.9, A), ("i1", 0.5, A)]).ap == pytest.approx(0.5)
    assert ap(gt, [("i2", 0.1, A), ("i1", 0.5, A)]).ap == pytest.approx(1.0)  # ranked after the TP


def test_class_with_gt_but_no_prediction_is_zero_and_class_without_gt_is_none():
    r = average_precision_per_class(["i1", "i1"], ["a", "b"], [A, FAR], ["i1", "i3"], ["a", "c"], [0.9, 0.9],
                                    [A, A])
    assert r["a"].ap == 1.0
    assert (r["b"].ap, r["b"].n_gt, r["b"].n_pred) == (0.0, 1, 0)
    assert (r["c"].ap, r["c"].n_gt, r["c"].n_pred) == (None, 0, 1)


def test_iou_threshold_strict_or_inclusive():
    gt = {"i1": [A]}
    det = [("i1", 0.9, (0, 0, 10, 4))]  # IoU exactly 0.4
    assert ap(gt, det, iou_thr=0.4).ap == 0.0  # VOC / VinBigData: IoU > 0.4
    assert ap(gt, det, iou_thr=0.4, inclusive=True).ap == 1.0  # pycocotools: IoU >= thr


def test_voc_and_coco_matching_differ_on_a_taken_box():
    # two GT boxes side by side; both detections overlap the left one best, the second also
    # overlaps the right one above the threshold.
    left, right = (0, 0, 10, 10), (6, 0, 16, 10)
    d1 = (0, 0, 10, 10)
    d2 = (2, 0, 12, 10)  # IoU(left) = 80/120 = .667, IoU(right) = 60/140 = .43
    gt = {"i1": [left, right]}
    dets = [("i1", 0.9, d1), ("i1", 0.8, d2)]
    voc = ap(gt, dets, iou_thr=0.4, matching="voc")
    coco = ap(gt, dets, iou_thr=0.4, matching="coco", inclusive=True, interpolation="voc")
    assert voc.tp.tolist() == [True, False]  # the devkit: best box is taken -> duplicate
    assert coco.tp.tolist() == [True, True]  # pycocotools: falls back to the best free box
    assert voc.ap == pytest.approx(0.5) and coco.ap == pytest.approx(1.0)


def test_max_dets_keeps_the_best_per_image():
    gt = {"i1": [A]}
    dets = [("i1", 0.9, FAR), ("i1", 0.8, FAR), ("i1", 0.7, A)]
    assert ap(gt, dets, max_dets=2).ap == 0.0
    assert ap(gt, dets).ap == pytest.approx(1 / 3)


def test_no_detection_and_no_gt():
    assert ap({"i1": [A]}, []).ap == 0.0
    r = ap({}, [("i1", 0.5, A)])
    assert r.ap is None and r.n_pred == 1


# --------------------------------------------------------------------------- pycocotools

def _random_case(seed: int, n_images=25, n_classes=3):
    rng = np.random.default_rng(seed)
    gt, det = [], []  # (image, class, box[, score])
    for img in range(n_images):
        for c in range(n_classes):
            k = int(rng.integers(0, 4))
            xy = rng.uniform(0, 400, (k, 2))
            wh = rng.uniform(10, 120, (k, 2))
            boxes = np.c_[xy, xy + wh]
            gt += [(img, c, b) for b in boxes]
            for b, size in zip(boxes, wh):  # detections near the truth, sometimes twice
                for _ in range(int(rng.integers(0, 3))):
                    jitter = rng.normal(0, 0.15, 4) * np.r_[size, size]
                    d = b + jitter
                    d[2:] = np.maximum(d[2:], d[:2] + 1)
                    det.append((img, c, d, float(rng.uniform(0.3, 1.0))))
            n_fp = 120 if (img == 3 and c == 0) else int(rng.integers(0, 4))  # one image over 100 dets
            xy = rng.uniform(0, 400, (n_fp, 2))
            for b in np.c_[xy, xy + rng.uniform(10, 120, (n_fp, 2))]:
                det.append((img, c, b, float(rng.uniform(0.0, 0.7))))
    return gt, det


def _coco_eval(gt, det, iou_thrs, n_images, n_classes, as_xywh=True):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def conv(b):
        b = [float(v) for v in b]
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]] if as_xywh else b  # as_xywh=False: the community bug

    anns = []
    for i, (img, c, b) in enumerate(gt):
        bb = conv(b)
        anns.append({"id": i + 1, "image_id": img, "category_id": c, "bbox": bb, "area": bb[2] * bb[3],
                     "iscrowd": 0})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": [{"id": i} for i in range(n_images)], "annotations": anns,
                        "categories": [{"id": c, "name": str(c)} for c in range(n_classes)]}
        coco.createIndex()
        res = coco.loadRes([{"image_id": img, "category_id": c, "bbox": conv(b), "score": s}
                            for img, c, b, s in det])
        e = COCOeval(coco, res, "bbox")
        e.params.iouThrs = np.asarray(iou_thrs, dtype=float)
        e.evaluate()
        e.accumulate()
    prec = e.eval["precision"][:, :, :, 0, -1]  # area "all", maxDets 100: [T, R, K]
    return {c: float(np.mean(prec[:, :, c])) if np.all(prec[:, :, c] > -1) else None for c in range(n_classes)}


def _ours(gt, det, **kw):
    return average_precision_per_class([g[0] for g in gt], [g[1] for g in gt], np.array([g[2] for g in gt]),
                                       [d[0] for d in det], [d[1] for d in det], [d[3] for d in det],
                                       np.array([d[2] for d in det]), classes=range(3), **kw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pycocotools_at_iou_05(seed):
    pytest.importorskip("pycocotools")
    gt, det = _random_case(seed)
    ref = _coco_eval(gt, det, [0.5], 25, 3)
    ours = _ours(gt, det, iou_thr=0.5, inclusive=True, matching="coco", interpolation="coco101", max_dets=100)
    for c in range(3):
        assert ours[c].ap == pytest.approx(ref[c], abs=1e-12), c
    # and the AP@[.5:.95] helper agrees with pycocotools' 10 thresholds
    ref10 = _coco_eval(gt, det, np.linspace(0.5, 0.95, 10), 25, 3)
    for c in range(3):
        m = [g[1] == c for g in gt]
        by_image: dict = {}
        for g, keep in zip(gt, m):
            if keep:
                by_image.setdefault(g[0], []).append(g[2])
        dc = [d for d in det if d[1] == c]
        got = coco_average_precision({k: np.array(v) for k, v in by_image.items()}, [d[0] for d in dc],
                                     [d[3] for d in dc], np.array([d[2] for d in dc]))
        assert got == pytest.approx(ref10[c], abs=1e-12)


def test_feeding_xyxy_as_xywh_changes_the_result():
    """The widely copied VinBigData scorer passes x_min, y_min, x_max, y_max as COCO [x, y, w, h]."""
    pytest.importorskip("pycocotools")
    # hand case: true IoU 64/136 = .47 (a miss at .5); read as xywh the boxes grow and overlap .58
    gt = [(0, 0, np.array([10.0, 10, 20, 20]))]
    det = [(0, 0, np.array([12.0, 12, 22, 22]), 0.9)]
    assert box_iou([12, 12, 22, 22], [10, 10, 20, 20])[0, 0] == pytest.approx(64 / 136)
    assert _coco_eval(gt, det, [0.5], 1, 1)[0] == 0.0
    assert _coco_eval(gt, det, [0.5], 1, 1, as_xywh=False)[0] == pytest.approx(1.0)
    # random data: the bug changes AP, ours follows the correct conversion
    gt, det = _random_case(0)
    good = _coco_eval(gt, det, [0.5], 25, 3)
    buggy = _coco_eval(gt, det, [0.5], 25, 3, as_xywh=False)
    ours = _ours(gt, det, iou_thr=0.5, inclusive=True, matching="coco", interpolation="coco101", max_dets=100)
    assert any(abs(good[c] - buggy[c]) > 1e-3 for c in range(3))
    assert all(ours[c].ap == pytest.approx(good[c], abs=1e-12) for c in range(3))


# --------------------------------------------------------------------------- WBF

def test_wbf_identical_boxes_fuse_to_one():
    fused, scores, cluster = weighted_boxes_fusion([A, A, A])
    np.testing.assert_allclose(fused, [A])
    assert cluster.tolist() == [0, 0, 0] and scores.tolist() == [1.0]


def test_wbf_threshold_is_inclusive_and_far_boxes_stay_apart():
    fused, _, cluster = weighted_boxes_fusion([A, (0, 0, 10, 4), FAR], iou_thr=0.4)  # IoU exactly .4
    assert cluster.tolist() == [0, 0, 1]
    np.testing.assert_allclose(fused, [(0, 0, 10, 7), FAR])
    fused, _, _ = weighted_boxes_fusion([A, (0, 0, 10, 3.9)], iou_thr=0.4)
    assert len(fused) == 2


def test_wbf_matches_the_running_fused_box_and_weights_by_score():
    # c overlaps a by .33 only, but the fused box of a and b (1, 0, 11, 10) by .43
    a, b, c = (0, 0, 10, 10), (2, 0, 12, 10), (5, 0, 15, 10)
    fused, _, cluster = weighted_boxes_fusion([a, b, c])
    assert cluster.tolist() == [0, 0, 0]
    np.testing.assert_allclose(fused, [(7 / 3, 0, 37 / 3, 10)])
    # score-weighted mean: weights 3 and 1
    fused, scores, _ = weighted_boxes_fusion([a, b], [0.75, 0.25])
    np.testing.assert_allclose(fused, [(0.5, 0, 10.5, 10)])
    assert scores.tolist() == [0.5]
    # order by score: the high-scored box starts the cluster, so it is the one compared first
    _, _, cluster = weighted_boxes_fusion([FAR, A], [0.1, 0.9])
    assert cluster.tolist() == [1, 0]
    assert len(weighted_boxes_fusion(np.zeros((0, 4)))[0]) == 0


# --------------------------------------------------------------------------- AUROC

def _auroc_pairs(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def test_rankdata_averages_ties():
    assert rankdata([10, 20, 20, 5, 20]).tolist() == [2.0, 4.0, 4.0, 1.0, 4.0]


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pairwise_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = rng.integers(0, 6, n).astype(float) + y * rng.uniform(0, 2)  # many ties
    assert auroc(y, s) == pytest.approx(_auroc_pairs(y, s), abs=1e-12)


def test_auroc_edge_cases():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auroc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert auroc([True, False, True], [0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(ValueError):
        auroc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError):
        auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        auroc([0, 1], [0.1, float("nan")])


def test_bootstrap_ci():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    s = rng.normal(0, 1, 100) + y
    ci = bootstrap_ci(auroc, y, s, n=300, seed=7)
    assert ci.estimate == auroc(y, s)
    assert ci.low < ci.estimate < ci.high and ci.n == 300 and ci.skipped == 0
    assert bootstrap_ci(auroc, y, s, n=300, seed=7) == ci  # reproducible
    lo, hi = bootstrap_ci(auroc, y, s, n=300, seed=7, alpha=0.5)[1:3]
    assert ci.low <= lo <= hi <= ci.high
    # unstratified on tiny data: single-class resamples are skipped and counted
    tiny = bootstrap_ci(auroc, [0, 1, 0], [0.1, 0.9, 0.2], n=200, seed=1, stratified=False)
    assert tiny.skipped > 0 and tiny.n + tiny.skipped == 200
