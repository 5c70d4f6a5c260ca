"""Evaluation and sanity report of a baseline run.

Metrics come from :mod:`vindr_cli.evaluate.metrics`: VOC all-point AP per class with the
VinBigData matching rule (IoU strictly above the threshold, greedy by score, one match per
ground-truth box) at IoU 0.4 and 0.5; mAP is the mean over the classes with at least one test
box. The image-level abnormality score (the classifier head, or the best detection score when
only the detector is trained) gets AUROC with a stratified bootstrap 95% CI, a threshold chosen
on training images by Youden's J and the test confusion matrix at that threshold.

Sanity checks (the point of ``vindr baseline``: does the release carry learnable signal, and is
the split sound?), each ``ok`` / ``warn`` / ``fail``:

* ``beats_box_prior``: the detector against a trivial, image-blind baseline that puts, on every
  test image, each class's typical training boxes (k-means of its normalised boxes, at most 3)
  scored by the class's image frequency times the cluster's share. ``fail`` when the paired
  bootstrap 95% CI (test images resampled) of ``mAP(model) - mAP(prior)`` at IoU 0.4 reaches 0.
* ``classifier_above_chance``: ``fail`` when the AUROC CI reaches 0.5.
* ``test_positives``: classes without a test box (no AP: ``warn``), a test set without normal
  or abnormal images.
* ``train_test_duplicates``: test images whose decoded pixels hash like a training image's
  (``Sample.pixel_hash`` when given, else SHA-256 of the decoded PNG): ``fail``.
* ``boxes_outside_images``: boxes beyond the image (or empty): ``warn`` with counts.
* ``class_ap_vs_frequency``: a class whose AP is far below what its training frequency predicts
  (a leave-one-out linear fit of AP on ``log(1 + training boxes)`` over the other classes):
  ``warn``; such a class often has a labelling or mapping problem.
"""
from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from vindr_cli.baseline.data import Sample, image_size, letterbox, load_image, pixel_hash
from vindr_cli.evaluate.metrics import auroc, average_precision_per_class, bootstrap_ci, voc_ap

__all__ = ["Report", "RunInfo", "box_prior_predictions", "build_report", "write_report", "youden_threshold"]

IOUS = (0.4, 0.5)


MIN_TEST_FOR_VERDICT = 30      # images; below this the report cannot fail a release
MIN_TRAIN_FOR_VERDICT = 50
STATISTICAL_CHECKS = {"beats_box_prior", "classifier_above_chance", "class_ap_vs_frequency"}


@dataclass
class RunInfo:
    task: str
    device: str
    device_name: str
    seed: int
    size: int
    epochs: int
    epochs_done: int
    steps: int
    total_steps: int
    batch_size: int
    lr: float
    stopped_by_budget: bool
    time_budget_s: float | None
    resumed: bool
    compiled: bool
    deterministic: bool
    train_images_per_s: float | None
    infer_images_per_s: float | None
    train_seconds: float
    n_threads: int
    torch_version: str
    final_losses: dict = field(default_factory=dict)
    model_config: dict = field(default_factory=dict)
    model: str = "tiny"                            # the --model preset (schemas/baseline/models.toml)
    n_params: int | None = None                    # trainable parameters of the model
    loss_history: list = field(default_factory=list)   # per epoch: {"epoch", "step", mean losses}


@dataclass
class Report:
    run: RunInfo
    classes: list[str]
    n_train: int
    n_test: int
    detection: dict | None
    classification: dict | None
    sanity: list[dict]
    verdict: str                                   # "ok", "warn", "inconclusive" or "fail"
    files: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict, repr=False)   # PR / ROC points for the plots (not in JSON)

    @property
    def map40(self) -> float | None:
        return self.detection["map_40"] if self.detection else None

    @property
    def map50(self) -> float | None:
        return self.detection["map_50"] if self.detection else None

    @property
    def auroc(self) -> float | None:
        return self.classification["auroc"] if self.classification else None

    def to_dict(self) -> dict:
        return _plain({"verdict": self.verdict, "run": asdict(self.run), "classes": self.classes,
                       "n_train": self.n_train, "n_test": self.n_test, "detection": self.detection,
                       "classification": self.classification, "sanity": self.sanity, "files": self.files})


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    return x


# ---------------------------------------------------------------------------------------------
# helpers

def _sizes(samples: Sequence[Sample]) -> list[tuple[int, int]]:
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as ex:
        return list(ex.map(lambda s: image_size(s.image_path), samples))


def _hashes(samples: Sequence[Sample]) -> list[str]:
    def one(s: Sample) -> str:
        return s.pixel_hash or pixel_hash(s.image_path)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as ex:
        return list(ex.map(one, samples))


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Centres and member counts (k-means++ initialisation, Lloyd iterations)."""
    k = min(k, len(x))
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        if d.sum() <= 0:
            break
        centres.append(x[rng.choice(len(x), p=d / d.sum())])
    c = np.asarray(centres, dtype=np.float64)
    for _ in range(iters):
        a = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.asarray([x[a == j].mean(0) if np.any(a == j) else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    a = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    return c, np.bincount(a, minlength=len(c))


def box_prior_predictions(train_samples: Sequence[Sample], train_sizes, test_sizes, num_classes: int, *,
                          k: int = 3, seed: int = 0):
    """The image-blind baseline: for every test image, each class's k-means prototype boxes (of
    the training boxes normalised by image size), scored ``image frequency x cluster share``.
    Returns a list of ``(boxes, scores, labels)`` per test image."""
    rng = np.random.default_rng(seed)
    protos = []
    n = max(1, len(train_samples))
    for c in range(num_classes):
        nb, n_img = [], 0
        for s, (w, h) in zip(train_samples, train_sizes):
            m = s.labels == c
            if m.any():
                n_img += 1
                nb.append(s.boxes[m] / np.asarray([w, h, w, h], np.float32))
        if not nb:
            continue
        x = np.concatenate(nb).astype(np.float64)
        centres, counts = _kmeans(x, k, rng)
        for box, cnt in zip(centres, counts):
            if cnt:
                protos.append((box, n_img / n * cnt / counts.sum(), c))
    out = []
    for w, h in test_sizes:
        if protos:
            boxes = np.asarray([p[0] for p in protos]) * np.asarray([w, h, w, h])
            out.append((boxes.astype(np.float32), np.asarray([p[1] for p in protos], np.float32),
                        np.asarray([p[2] for p in protos], np.int64)))
        else:
            out.append((np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)))
    return out


def _columns(per_image):
    """Flat (image index, class, score, box) columns from per-image (boxes, scores, labels)."""
    img, cls, sc, bx = [], [], [], []
    for i, (b, s, l) in enumerate(per_image):
        img.append(np.full(len(s), i, np.int64))
        cls.append(np.asarray(l, np.int64))
        sc.append(np.asarray(s, np.float64))
        bx.append(np.asarray(b, np.float64).reshape(-1, 4))
    if not img:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4))
    return np.concatenate(img), np.concatenate(cls), np.concatenate(sc), np.concatenate(bx)


class _APTable:
    """Official per-class AP (metrics module) plus what a paired image bootstrap needs: each
    detection's image and true-positive flag in ranked order, and ground-truth counts per image."""

    def __init__(self, gt_cols, det_cols, num_classes: int, n_images: int, iou: float):
        gi, gc, gb = gt_cols
        di, dc, ds, db = det_cols
        self.res = average_precision_per_class(gi.tolist(), gc, gb, di.tolist(), dc, ds, db,
                                               classes=list(range(num_classes)), iou_thr=iou, inclusive=False,
                                               matching="voc", interpolation="voc")
        self.ranked = {}
        self.gt_per_image = {}
        for c in range(num_classes):
            m = dc == c
            order = np.argsort(-ds[m], kind="mergesort")  # the metrics module's ranking (stable)
            self.ranked[c] = (di[m][order], np.asarray(self.res[c].tp, dtype=bool))
            self.gt_per_image[c] = np.bincount(gi[gc == c], minlength=n_images).astype(np.float64)

    def ap(self, c: int) -> float | None:
        return self.res[c].ap

    def weighted_ap(self, c: int, weights: np.ndarray) -> float | None:
        """AP when test image ``i`` counts ``weights[i]`` times (a bootstrap resample). Copies of an
        image's detections are adjacent in rank, so a block of ``w`` copies adds ``w`` true or false
        positives at once; the all-point VOC AP is then exactly that of the resampled set."""
        n_gt = float((self.gt_per_image[c] * weights).sum())
        if n_gt <= 0:
            return None
        img, tp = self.ranked[c]
        w = weights[img]
        keep = w > 0
        w, tp = w[keep], tp[keep]
        if not len(w):
            return 0.0
        ctp = np.cumsum(w * tp)
        cfp = np.cumsum(w * ~tp)
        return voc_ap(ctp / n_gt, ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps))

    def weighted_map(self, weights: np.ndarray) -> float | None:
        v = [a for a in (self.weighted_ap(c, weights) for c in self.res) if a is not None]
        return float(np.mean(v)) if v else None

    def map(self) -> float | None:
        v = [r.ap for r in self.res.values() if r.ap is not None]
        return float(np.mean(v)) if v else None


def youden_threshold(labels, scores) -> float:
    """The score threshold maximising sensitivity + specificity - 1 (predict positive when
    ``score >= threshold``), placed midway between the lowest score called positive and the
    highest score below it (the edge itself would be fitted to the training images); 0.5 when
    only one class is present."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or (~y).all():
        return 0.5
    u = np.unique(s)
    best, k = -np.inf, 0
    for i, t in enumerate(u):
        pred = s >= t
        j = pred[y].mean() - pred[~y].mean()
        if j > best:
            best, k = j, i
    return float(u[k] if k == 0 else (u[k] + u[k - 1]) / 2)


def _roc_points(y, s):
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, np.float64)
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tpr = np.r_[0, np.cumsum(ys)[last] / max(1, ys.sum())]
    fpr = np.r_[0, np.cumsum(~ys)[last] / max(1, (~ys).sum())]
    return fpr, tpr


def _check(name: str, status: str, message: str, **details) -> dict:
    return {"check": name, "status": status, "message": message, "details": details}


# ---------------------------------------------------------------------------------------------
# building

def build_report(run: RunInfo, classes: Sequence[str], train_samples: Sequence[Sample], test_samples: Sequence[Sample],
                 test_preds, thr_samples: Sequence[Sample], thr_preds, *, bootstrap: int = 1000,
                 seed: int = 0, det_bootstrap_max: int = 500) -> Report:
    """Metrics and sanity checks of one run (``test_preds`` / ``thr_preds``: lists of
    :class:`~vindr_cli.baseline.train.Prediction` for ``test_samples`` / ``thr_samples``)."""
    classes = list(classes)
    k = len(classes)
    n_test = len(test_samples)
    train_sizes = _sizes(train_samples)
    test_sizes = _sizes(test_samples)
    checks: list[dict] = []
    curves: dict = {}
    rng = np.random.default_rng(seed)

    train_boxes = np.bincount(np.concatenate([s.labels for s in train_samples]) if train_samples else
                              np.zeros(0, np.int64), minlength=k)
    train_imgs = np.zeros(k, np.int64)
    for s in train_samples:
        train_imgs[np.unique(s.labels)] += 1
    test_boxes = np.bincount(np.concatenate([s.labels for s in test_samples]) if test_samples else
                             np.zeros(0, np.int64), minlength=k)

    detection = None
    if run.task in ("detect", "both") and n_test:
        gt_cols = _columns([(s.boxes, np.ones(len(s.labels)), s.labels) for s in test_samples])
        gt_cols = (gt_cols[0], gt_cols[1], gt_cols[3])
        det_cols = _columns([(p.boxes, p.scores, p.labels) for p in test_preds])
        prior = box_prior_predictions(train_samples, train_sizes, test_sizes, k, seed=seed)
        prior_cols = _columns(prior)
        tables = {iou: (_APTable(gt_cols, det_cols, k, n_test, iou), _APTable(gt_cols, prior_cols, k, n_test, iou))
                  for iou in IOUS}
        per_class = {}
        for c, name in enumerate(classes):
            e = {"n_train_boxes": int(train_boxes[c]), "n_train_images": int(train_imgs[c]),
                 "n_test_boxes": int(test_boxes[c]), "n_pred": int(tables[0.4][0].res[c].n_pred)}
            for iou in IOUS:
                tag = f"{int(round(iou * 100))}"
                e[f"ap_{tag}"] = tables[iou][0].ap(c)
                e[f"prior_ap_{tag}"] = tables[iou][1].ap(c)
            per_class[name] = e
        detection = {"per_class": per_class, "matching": "VOC all-point AP, IoU > threshold, mean over classes "
                                                         "with test boxes"}
        nb = min(bootstrap, det_bootstrap_max)
        for iou in IOUS:
            tag = f"{int(round(iou * 100))}"
            mt, pt = tables[iou]
            detection[f"map_{tag}"] = mt.map()
            detection[f"prior_map_{tag}"] = pt.map()
            diffs = []
            for _ in range(nb):
                w = np.bincount(rng.integers(0, n_test, n_test), minlength=n_test).astype(np.float64)
                a, b = mt.weighted_map(w), pt.weighted_map(w)
                if a is not None and b is not None:
                    diffs.append(a - b)
            if diffs:
                lo, hi = np.quantile(diffs, [0.025, 0.975])
                detection[f"map_minus_prior_{tag}_ci95"] = [float(lo), float(hi)]
            else:
                detection[f"map_minus_prior_{tag}_ci95"] = None
        curves["pr"] = {classes[c]: (tables[0.5][0].res[c].recall, tables[0.5][0].res[c].precision)
                        for c in range(k) if tables[0.5][0].res[c].ap is not None}

        # sanity: model vs prior
        m40, p40 = detection["map_40"], detection["prior_map_40"]
        ci = detection["map_minus_prior_40_ci95"]
        if m40 is None:
            checks.append(_check("beats_box_prior", "warn", "no test boxes: mAP undefined"))
        elif ci is None or ci[0] <= 0:
            checks.append(_check("beats_box_prior", "fail",
                                 f"mAP@0.4 {m40:.3f} is indistinguishable from the image-blind box-prior baseline "
                                 f"({p40:.3f}; 95% CI of the difference {_fmt_ci(ci)}): the detector learned "
                                 "nothing beyond where boxes usually are", model=m40, prior=p40, ci95=ci))
        else:
            checks.append(_check("beats_box_prior", "ok",
                                 f"mAP@0.4 {m40:.3f} vs box prior {p40:.3f} (95% CI of the difference "
                                 f"{_fmt_ci(ci)})", model=m40, prior=p40, ci95=ci))
        # sanity: AP vs frequency
        ok = [c for c in range(k) if per_class[classes[c]]["ap_40"] is not None]
        flagged = []
        for c in ok:
            others = [o for o in ok if o != c]
            if len(others) < 2:
                break
            x = np.log1p(train_boxes[others].astype(np.float64))
            y = np.asarray([per_class[classes[o]]["ap_40"] for o in others])
            if len(others) >= 3 and np.ptp(x) > 0:
                slope, icpt = np.polyfit(x, y, 1)
                expected = float(np.clip(icpt + slope * math.log1p(train_boxes[c]), 0, 1))
            else:
                expected = float(y.mean())
            ap = per_class[classes[c]]["ap_40"]
            per_class[classes[c]]["expected_ap_40"] = expected
            if ap < expected - 0.25 and ap < 0.5 * expected:
                flagged.append({"class": classes[c], "ap_40": ap, "expected": expected,
                                "n_train_boxes": int(train_boxes[c])})
        if flagged:
            checks.append(_check("class_ap_vs_frequency", "warn",
                                 "AP far below what the class's training frequency predicts: "
                                 + ", ".join(f"{f['class']} ({f['ap_40']:.3f} vs ~{f['expected']:.3f})"
                                             for f in flagged)
                                 + " (check its labels and class mapping)", classes=flagged))
        else:
            checks.append(_check("class_ap_vs_frequency", "ok", "no class far below its frequency-predicted AP"))

    # classification (the abnormality score exists for every task)
    classification = None
    y_test = np.asarray([s.abnormal for s in test_samples], dtype=np.int64)
    s_test = np.asarray([p.abnormal_score for p in test_preds], dtype=np.float64)
    if n_test:
        source = "classifier head" if run.task in ("classify", "both") else "best detection score"
        y_thr = np.asarray([s.abnormal for s in thr_samples], dtype=np.int64)
        s_thr = np.asarray([p.abnormal_score for p in thr_preds], dtype=np.float64)
        thr = youden_threshold(y_thr, s_thr)
        pred = s_test >= thr
        yb = y_test.astype(bool)
        tp, fp = int((pred & yb).sum()), int((pred & ~yb).sum())
        fn, tn = int((~pred & yb).sum()), int((~pred & ~yb).sum())
        classification = {"score": source, "n_abnormal": int(yb.sum()), "n_normal": int((~yb).sum()),
                          "threshold": thr, "threshold_rule": f"Youden's J on {len(thr_samples)} training images",
                          "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
                          "sensitivity": tp / (tp + fn) if tp + fn else None,
                          "specificity": tn / (tn + fp) if tn + fp else None,
                          "accuracy": (tp + tn) / n_test, "auroc": None, "auroc_ci95": None}
        if yb.any() and (~yb).any():
            ci = bootstrap_ci(auroc, y_test, s_test, n=bootstrap, seed=seed)
            classification["auroc"] = ci.estimate
            classification["auroc_ci95"] = [ci.low, ci.high]
            curves["roc"] = _roc_points(y_test, s_test)
            if ci.low <= 0.5:
                checks.append(_check("classifier_above_chance", "fail",
                                     f"AUROC {ci.estimate:.3f} (95% CI {ci.low:.3f}-{ci.high:.3f}) is "
                                     f"indistinguishable from chance ({source})", auroc=ci.estimate,
                                     ci95=[ci.low, ci.high]))
            else:
                checks.append(_check("classifier_above_chance", "ok",
                                     f"AUROC {ci.estimate:.3f} (95% CI {ci.low:.3f}-{ci.high:.3f})",
                                     auroc=ci.estimate, ci95=[ci.low, ci.high]))

    # test positives
    missing = [classes[c] for c in range(k) if test_boxes[c] == 0]
    no_train = [classes[c] for c in range(k) if train_boxes[c] == 0]
    msgs = []
    if missing:
        msgs.append(f"{len(missing)} class(es) without a test box (no AP): {', '.join(missing)}")
    if no_train:
        msgs.append(f"{len(no_train)} class(es) without a training box: {', '.join(no_train)}")
    if n_test and (y_test.all() or not y_test.any()):
        msgs.append("the test set has only " + ("abnormal" if y_test.all() else "normal") + " images (no AUROC)")
    checks.append(_check("test_positives", "warn" if msgs else "ok", "; ".join(msgs) or
                         "every class has test boxes; normal and abnormal test images",
                         classes_without_test_boxes=missing, classes_without_train_boxes=no_train))

    # duplicates
    h_train = _hashes(train_samples)
    h_test = _hashes(test_samples)
    where = {h: s.image_id for h, s in zip(h_train, train_samples)}
    dups = [(s.image_id, where[h]) for h, s in zip(h_test, test_samples) if h in where]
    if dups:
        checks.append(_check("train_test_duplicates", "fail",
                             f"{len(dups)} test image(s) are pixel-identical to training images "
                             f"(e.g. {dups[0][0]} = {dups[0][1]}): the split leaks",
                             count=len(dups), examples=[{"test": a, "train": b} for a, b in dups[:20]]))
    else:
        checks.append(_check("train_test_duplicates", "ok", "no test image is pixel-identical to a training image",
                             count=0))

    # boxes outside images
    bad = {}
    examples = []
    for split, samples, sizes in (("train", train_samples, train_sizes), ("test", test_samples, test_sizes)):
        n_out = n_empty = 0
        for s, (w, h) in zip(samples, sizes):
            b = s.boxes
            if not len(b):
                continue
            out = (b[:, 0] < -1e-3) | (b[:, 1] < -1e-3) | (b[:, 2] > w + 1e-3) | (b[:, 3] > h + 1e-3)
            empty = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
            n_out += int(out.sum())
            n_empty += int(empty.sum())
            for j in np.flatnonzero(out | empty)[:2]:
                if len(examples) < 10:
                    examples.append({"split": split, "image": s.image_id, "box": b[j].tolist(), "size": [w, h]})
        bad[split] = {"outside": n_out, "empty": n_empty, "boxes": int(sum(len(s.boxes) for s in samples))}
    total_bad = sum(v["outside"] + v["empty"] for v in bad.values())
    checks.append(_check("boxes_outside_images", "warn" if total_bad else "ok",
                         (f"{total_bad} box(es) outside their image or empty: "
                          + ", ".join(f"{k_}: {v['outside']} outside, {v['empty']} empty of {v['boxes']}"
                                      for k_, v in bad.items())) if total_bad else "every box lies within its image",
                         counts=bad, examples=examples))

    if n_test < MIN_TEST_FOR_VERDICT or len(train_samples) < MIN_TRAIN_FOR_VERDICT:
        # too little data to tell a broken release from an unlucky one: say so, do not fail
        checks.append(_check("enough_data", "inconclusive",
                             f"{len(train_samples)} train / {n_test} test images: at least {MIN_TRAIN_FOR_VERDICT} / "
                             f"{MIN_TEST_FOR_VERDICT} are needed before a failing check means a broken release"))
        for c in checks:      # structural failures (duplicates, boxes) stand whatever the size
            if c["status"] == "fail" and c["check"] in STATISTICAL_CHECKS:
                c["status"] = "inconclusive"
    statuses = [c["status"] for c in checks]
    verdict = ("fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses
               else "warn" if "warn" in statuses else "ok")
    return Report(run, classes, len(train_samples), n_test, detection, classification, checks, verdict, {}, curves)


def _fmt_ci(ci) -> str:
    return "n/a" if ci is None else f"{ci[0]:+.3f} to {ci[1]:+.3f}"


def _f(x, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


# ---------------------------------------------------------------------------------------------
# writing

def _model_line(cfg: dict) -> str:
    if not cfg:
        return "-"
    keys = ("widths", "blocks", "fpn_channels", "head_channels", "out_stride", "box_unit")
    return ", ".join(f"{k} {cfg[k]}" for k in keys if k in cfg)


def render_markdown(rep: Report) -> str:
    r = rep.run
    lines = [f"# vindr baseline report: {rep.verdict.upper()}", ""]
    lines += ["## Sanity checks", "", "| check | status | finding |", "|---|---|---|"]
    for c in rep.sanity:
        lines.append(f"| {c['check']} | {c['status']} | {c['message'].replace('|', '/')} |")
    lines += ["", "## Run", "",
              f"- task `{r.task}`, device `{r.device}` ({r.device_name}), torch {r.torch_version}, "
              f"{r.n_threads} CPU threads",
              f"- model `{r.model}`" + (f", {r.n_params / 1e6:.2f} M parameters" if r.n_params else "")
              + ": " + _model_line(r.model_config),
              f"- input {r.size} px, batch {r.batch_size}, lr {r.lr:g}, seed {r.seed}, "
              f"deterministic: {'yes' if r.deterministic else 'no'}, torch.compile: {'yes' if r.compiled else 'no'}",
              f"- epochs {r.epochs_done}/{r.epochs}, steps {r.steps}/{r.total_steps}"
              + (f", stopped by the time budget ({r.time_budget_s:g} s)" if r.stopped_by_budget else "")
              + (", resumed from a checkpoint" if r.resumed else ""),
              f"- training {_f(r.train_seconds, 1)} s, {_f(r.train_images_per_s, 1)} images/s; "
              f"inference {_f(r.infer_images_per_s, 1)} images/s",
              f"- {rep.n_train} training images, {rep.n_test} test images", ""]
    if r.loss_history:
        names = [k for k in ("total", "heat", "box", "cls") if k in r.loss_history[-1]]
        lines += ["Mean training loss per epoch:", "", "| epoch | step | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for h in r.loss_history:
            lines.append(f"| {h.get('epoch')} | {h.get('step')} | "
                         + " | ".join(_f(h.get(k), 4) for k in names) + " |")
        lines.append("")
    d = rep.detection
    if d:
        lines += ["## Detection", "",
                  f"mAP@0.4 **{_f(d['map_40'])}** (box prior {_f(d['prior_map_40'])}, difference 95% CI "
                  f"{_fmt_ci(d['map_minus_prior_40_ci95'])}); mAP@0.5 **{_f(d['map_50'])}** (box prior "
                  f"{_f(d['prior_map_50'])}). {d['matching']}.", "",
                  "| class | AP@0.4 | AP@0.5 | prior AP@0.4 | train boxes | test boxes | predictions |",
                  "|---|---|---|---|---|---|---|"]
        for name, e in d["per_class"].items():
            lines.append(f"| {name.replace('|', '/')} | {_f(e['ap_40'])} | {_f(e['ap_50'])} | {_f(e['prior_ap_40'])} "
                         f"| {e['n_train_boxes']} | {e['n_test_boxes']} | {e['n_pred']} |")
        lines.append("")
    c = rep.classification
    if c:
        cm = c["confusion"]
        lines += ["## Normal / abnormal", "",
                  f"AUROC **{_f(c['auroc'])}** (95% CI {_f(c['auroc_ci95'][0]) if c['auroc_ci95'] else '-'}"
                  f"-{_f(c['auroc_ci95'][1]) if c['auroc_ci95'] else '-'}; score: {c['score']}; "
                  f"{c['n_abnormal']} abnormal, {c['n_normal']} normal test images)", "",
                  f"Threshold {c['threshold']:.4f} ({c['threshold_rule']}): sensitivity {_f(c['sensitivity'])}, "
                  f"specificity {_f(c['specificity'])}, accuracy {_f(c['accuracy'])}", "",
                  "| | predicted abnormal | predicted normal |", "|---|---|---|",
                  f"| abnormal | {cm['tp']} | {cm['fn']} |", f"| normal | {cm['fp']} | {cm['tn']} |", ""]
    if rep.files:
        what = {"report": "this report as JSON", "summary": "this summary",
                "curves": "detection PR curves per class (IoU > 0.5) and the test ROC curve",
                "examples": "test images: ground truth green, predictions (score >= 0.3) red"}
        lines += ["## Files", ""] + [f"- `{v}`: {what.get(k, k)}" for k, v in rep.files.items()]
        lines += ["- `model.json` + `model.safetensors` / `model.pt`: the final weights (state_dict)", ""]
    return "\n".join(lines)


def plot_curves(rep: Report, path: Path) -> bool:
    """PR curves per class (IoU 0.5) and the test ROC curve; False when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(11, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for name, (rec, prec) in rep.curves.get("pr", {}).items():
        if len(rec):
            env = np.maximum.accumulate(np.asarray(prec)[::-1])[::-1]
            last = int(np.argmax(rec)) + 1           # up to the highest recall reached
            rec, env = np.asarray(rec)[:last], env[:last]
            ap = rep.detection["per_class"][name]["ap_50"] if rep.detection else None
            ax1.step(np.r_[0, rec], np.r_[env[0], env], where="post", label=f"{name} ({_f(ap)})")
    ax1.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
            title=f"Detection PR, IoU > 0.5 (mAP {_f(rep.map50)})")
    if ax1.get_legend_handles_labels()[0]:     # no curve drawn (no prediction): no legend, no UserWarning
        ax1.legend(fontsize=7, loc="lower left")
    if "roc" in rep.curves:
        fpr, tpr = rep.curves["roc"]
        ax2.plot(fpr, tpr, label=f"AUROC {_f(rep.auroc)}")
        ax2.legend(loc="lower right")
    ax2.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax2.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate",
            title="Normal / abnormal ROC (test)")
    fig.tight_layout()
    fig.savefig(path)
    return True


def contact_sheet(samples: Sequence[Sample], preds, classes: Sequence[str], path: Path, *, n: int = 12,
                  tile: int = 256, cols: int = 4, score_thr: float = 0.3, seed: int = 0) -> None:
    """Test images with ground truth (green) and predictions scoring >= ``score_thr`` (red)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    ab = [i for i, s in enumerate(samples) if len(s.boxes)]
    no = [i for i, s in enumerate(samples) if not len(s.boxes)]
    pick = list(rng.permutation(ab)[: max(n - min(len(no), n // 4), 0)]) if ab else []
    pick += list(rng.permutation(no)[: n - len(pick)]) if no else []
    pick = sorted(int(i) for i in pick[:n])
    if not pick:
        return
    rows = -(-len(pick) // cols)
    sheet = Image.new("RGB", (cols * tile, rows * (tile + 14)), (0, 0, 0))
    font = ImageFont.load_default()
    for k, i in enumerate(pick):
        s, p = samples[i], preds[i]
        canvas, t = letterbox(load_image(s.image_path), tile)
        im = Image.fromarray((np.clip(canvas, 0, 1) * 255).astype(np.uint8)).convert("RGB")
        d = ImageDraw.Draw(im)
        for b in t.apply(s.boxes):
            d.rectangle([float(v) for v in b], outline=(0, 220, 0), width=2)
        keep = p.scores >= score_thr
        for b, sc, lb in zip(t.apply(p.boxes[keep]), p.scores[keep], p.labels[keep]):
            d.rectangle([float(v) for v in b], outline=(230, 0, 0), width=1)
            label = f"{classes[int(lb)][:14]} {sc:.2f}"
            x0, y0 = float(b[0]), max(0.0, float(b[1]) - 11)
            d.rectangle(d.textbbox((x0, y0), label, font=font), fill=(60, 0, 0))
            d.text((x0, y0), label, fill=(255, 120, 120), font=font)
        r, c = divmod(k, cols)
        sheet.paste(im, (c * tile, r * (tile + 14) + 14))
        ImageDraw.Draw(sheet).text((c * tile + 2, r * (tile + 14) + 1),
                                   f"{str(s.image_id)[-24:]}  abn={_f(p.abnormal_score, 2)}", fill=(220, 220, 220),
                                   font=font)
    sheet.save(path)


def write_report(rep: Report, out_dir: Path | str, test_samples: Sequence[Sample], test_preds) -> Report:
    """Write ``report.json``, ``report.md``, ``pr_curves.png`` and ``examples.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"report": "report.json", "summary": "report.md"}
    if plot_curves(rep, out_dir / "pr_curves.png"):
        files["curves"] = "pr_curves.png"
    if test_samples:
        contact_sheet(test_samples, test_preds, rep.classes, out_dir / "examples.png", seed=rep.run.seed)
        if (out_dir / "examples.png").exists():
            files["examples"] = "examples.png"
    rep.files = files
    (out_dir / "report.json").write_text(json.dumps(rep.to_dict(), indent=2, ensure_ascii=False))
    (out_dir / "report.md").write_text(render_markdown(rep))
    return rep
