"""Unit tests of the baseline detector's pieces: losses, box coding, NMS, letterbox and
augmentation geometry, flip rules, checkpoints and resume, determinism, report checks."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vindr_cli.baseline import report as report_mod  # noqa: E402
from vindr_cli.baseline import train as train_mod  # noqa: E402
from vindr_cli.baseline.boxes import (  # noqa: E402
    batched_nms, decode_ltrb, encode_ltrb, generalized_box_iou, nms,
)
from vindr_cli.baseline.data import (  # noqa: E402
    Augment, DetectionDataset, Sample, default_flip_ok, flip_allowed, letterbox, load_image, pixel_hash,
    samples_from_coco,
)
from vindr_cli.baseline.losses import gaussian_focal_loss, giou_loss, ttf_targets  # noqa: E402
from vindr_cli.evaluate.metrics import average_precision_per_class  # noqa: E402
from vindr_cli.baseline.model import Detector, ModelConfig, decode_detections  # noqa: E402
from vindr_cli.baseline.report import _APTable, _columns, build_report, youden_threshold  # noqa: E402
from vindr_cli.baseline.synthetic import make_synthetic_release  # noqa: E402
from vindr_cli.baseline.train import Prediction, load_weights, save_weights, train_baseline  # noqa: E402

CXR = ["Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
       "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion", "Pleural thickening",
       "Pneumothorax", "Pulmonary fibrosis"]
TINY = {"widths": (8, 8, 16, 16, 16), "fpn_channels": 8, "head_channels": 8}


# ---------------------------------------------------------------------------------------------
# losses

def test_focal_loss_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=g) * 2
    target = torch.rand(2, 3, 4, 5, generator=g) * 0.9
    target[0, 1, 2, 3] = 1.0
    target[1, 0, 0, 0] = 1.0
    target[1, 2, 3, 4] = 1.0
    alpha, beta = 2.0, 4.0
    total, n_pos = 0.0, 0
    for x, y in zip(logits.flatten().tolist(), target.flatten().tolist()):
        p = 1 / (1 + math.exp(-x))
        if y == 1.0:
            total += -((1 - p) ** alpha) * math.log(p)
            n_pos += 1
        else:
            total += -((1 - y) ** beta) * (p ** alpha) * math.log(1 - p)
    got = gaussian_focal_loss(logits, target, alpha=alpha, beta=beta)
    assert got.item() == pytest.approx(total / n_pos, rel=1e-5)
    assert gaussian_focal_loss(logits, target, reduction="sum").item() == pytest.approx(total, rel=1e-5)
    # no positive: divided by 1
    assert gaussian_focal_loss(logits, target * 0.5).item() == pytest.approx(
        gaussian_focal_loss(logits, target * 0.5, reduction="sum").item(), rel=1e-6)
    # stable for extreme logits
    big = gaussian_focal_loss(torch.tensor([80.0, -80.0]), torch.tensor([1.0, 0.0]))
    assert torch.isfinite(big) and big.item() < 1e-6


def test_giou_loss_hand_cases():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    assert giou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    # disjoint: IoU 0, union 2, enclosing box [0,0,3,1] of area 3 -> GIoU = -1/3
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0]])
    assert giou_loss(a, b).item() == pytest.approx(1 + 1 / 3, rel=1e-6)
    # overlapping: inter 1, union 7, enclosing 9
    c, d = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    assert giou_loss(c, d).item() == pytest.approx(1 - (1 / 7 - 2 / 9), rel=1e-6)
    # far apart: tends to 2
    e = torch.tensor([[1000.0, 1000.0, 1001.0, 1001.0]])
    assert giou_loss(a, e).item() == pytest.approx(2.0, abs=1e-5)
    # weighted mean
    both = giou_loss(torch.cat([a, c]), torch.cat([a, d]), torch.tensor([3.0, 1.0]))
    assert both.item() == pytest.approx((0 * 3 + (1 - (1 / 7 - 2 / 9)) * 1) / 4, rel=1e-6)
    assert generalized_box_iou(c, d).item() == pytest.approx(1 / 7 - 2 / 9, rel=1e-6)


def test_ttf_targets_peak_and_regression_cells():
    boxes = torch.tensor([[8.0, 8.0, 40.0, 32.0], [44.0, 40.0, 60.0, 60.0]])
    labels = torch.tensor([1, 0])
    heat, box, w = ttf_targets(boxes, labels, 3, 16, 16, 4)
    assert heat.shape == (3, 16, 16) and box.shape == (16, 16, 4) and w.shape == (16, 16)
    assert heat[1, 5, 6].item() == 1.0          # centre (24, 20) / 4
    assert heat[0, 12, 13].item() == 1.0        # centre (52, 50) / 4
    assert heat[2].max().item() == 0.0
    assert (heat <= 1).all() and (heat >= 0).all()
    assert torch.equal(box[5, 6], boxes[0]) and w[5, 6] > 0
    assert torch.equal(box[12, 13], boxes[1]) and w[12, 13] > 0
    # every regression cell's centre lies inside its box
    ys, xs = torch.nonzero(w > 0, as_tuple=True)
    px, py = (xs + 0.5) * 4, (ys + 0.5) * 4
    b = box[ys, xs]
    assert ((px > b[:, 0]) & (px < b[:, 2]) & (py > b[:, 1]) & (py < b[:, 3])).all()
    # per box, the weights sum to log(area)
    m0 = (box == boxes[0]).all(-1) & (w > 0)
    assert w[m0].sum().item() == pytest.approx(math.log(32 * 24), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# boxes

def test_box_coding_round_trip():
    g = torch.Generator().manual_seed(1)
    pts = torch.rand(50, 2, generator=g) * 100
    xy = torch.rand(50, 2, generator=g) * 100
    wh = torch.rand(50, 2, generator=g) * 50 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    for norm in (1.0, 16.0):
        enc = encode_ltrb(pts, boxes, norm)
        assert torch.allclose(decode_ltrb(pts, enc, norm), boxes, atol=1e-4)
    # a point inside its box has non-negative distances
    inside = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    assert (encode_ltrb(inside, boxes) > 0).all()


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_nms(boxes, scores, classes, thr):
    """Brute force: per class, best first, keep a box unless a kept box overlaps it (IoU > thr)."""
    keep = []
    for c in sorted(set(classes)):
        idx = sorted((i for i in range(len(boxes)) if classes[i] == c), key=lambda i: -scores[i])
        kept_c = []
        for i in idx:
            if all(_iou(boxes[i], boxes[j]) <= thr for j in kept_c):
                kept_c.append(i)
        keep += kept_c
    return sorted(keep, key=lambda i: -scores[i])


@pytest.mark.parametrize("seed", range(6))
def test_batched_nms_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    xy = rng.uniform(-20, 200, (n, 2))
    wh = rng.uniform(1, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.permutation(n) / n + rng.uniform(0, 1e-3, n)   # distinct
    classes = rng.integers(0, 4, n)
    thr = float(rng.choice([0.3, 0.5, 0.7]))
    got = batched_nms(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32),
                      torch.tensor(classes), thr).tolist()
    assert got == _reference_nms(boxes.tolist(), scores.tolist(), classes.tolist(), thr)


def test_nms_classes_do_not_suppress_each_other():
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    s = torch.tensor([0.9, 0.8, 0.7])
    assert nms(b, s, 0.5).tolist() == [0]
    assert sorted(batched_nms(b, s, torch.tensor([0, 1, 0]), 0.5).tolist()) == [0, 1]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).numel() == 0


def test_decode_detections_finds_a_planted_peak():
    heat = torch.full((1, 2, 8, 8), -10.0)
    heat[0, 1, 3, 5] = 5.0
    ltrb = torch.zeros(1, 4, 8, 8)
    ltrb[0, :, 3, 5] = torch.tensor([1.0, 0.5, 2.0, 1.0])   # units of 8 px
    (boxes, scores, labels), = decode_detections(heat, ltrb, 4, 8.0)
    assert labels.tolist() == [1]
    assert scores[0].item() == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())
    cx, cy = 5.5 * 4, 3.5 * 4
    assert boxes[0].tolist() == pytest.approx([cx - 8, cy - 4, cx + 16, cy + 8])


# ---------------------------------------------------------------------------------------------
# letterbox, augmentation geometry, flip rules

@pytest.mark.parametrize("flip", [False, True])
def test_box_transform_round_trip(flip):
    rng = np.random.default_rng(3)
    img = rng.random((37, 53)).astype(np.float32)
    canvas, t = letterbox(img, 64, scale=0.9, offset=(3, -2))
    assert canvas.shape == (64, 64)
    if flip:
        t = dataclasses.replace(t, flip=True)
    boxes = np.c_[rng.uniform(0, 20, (10, 2)), rng.uniform(25, 50, (10, 2))][:, [0, 1, 2, 3]]
    out = t.apply(boxes)
    assert np.all(out[:, 2] >= out[:, 0]) and np.all(out[:, 3] >= out[:, 1])
    assert np.allclose(t.inverse(out), boxes, atol=1e-9)


def _marked_image(tmp_path, w=90, h=70, box=(20, 15, 50, 40)):
    img = np.full((h, w), 40, np.uint8)
    img[box[1]:box[3], box[0]:box[2]] = 255
    from PIL import Image
    p = tmp_path / "marked.png"
    Image.fromarray(img).save(p)
    return Sample(p, [box], [0], 1)


def _bright_bbox(canvas, thr=0.75):
    ys, xs = np.nonzero(canvas > thr)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def test_augmented_boxes_follow_the_pixels(tmp_path):
    s = _marked_image(tmp_path)
    ds = DetectionDataset([s], 64, ["Nodule"], augment=Augment(flip_p=0.5, brightness=0, contrast=0,
                                                               gamma=(1, 1)), seed=0)
    flips = 0
    for epoch in range(12):
        item = ds[(epoch, 0)]
        flips += item["transform"].flip
        canvas = item["image"][0].numpy()
        assert np.allclose(item["boxes"][0].numpy(), _bright_bbox(canvas), atol=1.5)
        # the inverse maps back to the original box
        assert np.allclose(item["transform"].inverse(item["boxes"].numpy()), s.boxes, atol=2.0)
    assert 0 < flips < 12
    plain = DetectionDataset([s], 64, ["Nodule"])[0]
    assert np.allclose(plain["boxes"][0].numpy(), _bright_bbox(plain["image"][0].numpy()), atol=1.0)
    assert not plain["transform"].flip and plain["transform"].ox == 0 and plain["transform"].oy == 0


def test_flip_rules(tmp_path):
    ok = default_flip_ok(CXR)
    names = {CXR[i] for i in ok}
    assert "Aortic enlargement" not in names and "Cardiomegaly" not in names
    assert {"Nodule/Mass", "Pleural effusion", "Atelectasis", "Pneumothorax"} <= names
    extra = default_flip_ok(["Linear atelectasis", "Central lines", "Left lower lobe opacity", "Dextrocardia"])
    assert extra == frozenset({0})
    assert flip_allowed([], ok) and not flip_allowed([], ok, flip_normal=False)
    assert flip_allowed([8, 10], ok) and not flip_allowed([8, 3], ok)
    # in the dataset: a laterality-sensitive box never flips, an allowed one does
    s = _marked_image(tmp_path)
    for label, expect in ((3, False), (8, True)):
        ds = DetectionDataset([dataclasses.replace(s, labels=np.array([label]))], 64, CXR,
                              augment=Augment(flip_p=0.5), seed=1)
        assert any(ds[(e, 0)]["transform"].flip for e in range(16)) is expect
    # configurable: an explicit flip_ok overrides the default
    ds = DetectionDataset([dataclasses.replace(s, labels=np.array([3]))], 64, CXR,
                          augment=Augment(flip_p=1.0, flip_ok=frozenset({3})), seed=1)
    assert ds[(0, 0)]["transform"].flip


def test_load_image_bit_depths_and_pixel_hash(tmp_path):
    from PIL import Image
    a16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(a16).save(tmp_path / "a.png")
    Image.fromarray(a16).save(tmp_path / "b.png", compress_level=9)
    Image.fromarray((a16 >> 8).astype(np.uint8)).save(tmp_path / "c.png")
    x = load_image(tmp_path / "a.png")
    assert x.dtype == np.float32 and np.allclose(x, a16 / 65535.0)
    assert np.allclose(load_image(tmp_path / "c.png"), (a16 >> 8) / 255.0)
    assert pixel_hash(tmp_path / "a.png") == pixel_hash(tmp_path / "b.png") != pixel_hash(tmp_path / "c.png")


def test_samples_from_coco_round_trip(tmp_path):
    rel = make_synthetic_release(tmp_path / "rel", n_train=12, n_test=4, size=48, seed=5)
    samples, classes = samples_from_coco(rel.train_json, rel.root / "images")
    assert classes == rel.classes
    assert [s.image_path for s in samples] == [s.image_path for s in rel.train]
    for a, b in zip(samples, rel.train):
        assert np.allclose(a.boxes, b.boxes, atol=1e-4) and np.array_equal(a.labels, b.labels)
        assert a.abnormal == b.abnormal
    # "No finding" is not a class; an image with only that annotation is normal
    doc = json.loads(rel.train_json.read_text())
    doc["categories"].append({"id": 99, "name": "No finding"})
    normal = next(s for s in rel.train if not s.abnormal)
    img_id = next(im["id"] for im in doc["images"] if rel.root / "images" / im["file_name"] == normal.image_path)
    doc["annotations"].append({"id": 10_000, "image_id": img_id, "category_id": 99, "bbox": [0, 0, 1, 1]})
    p = tmp_path / "nf.json"
    p.write_text(json.dumps(doc))
    samples2, classes2 = samples_from_coco(p, rel.root / "images")
    assert classes2 == rel.classes
    assert sum(s.abnormal for s in samples2) == sum(s.abnormal for s in rel.train)


# ---------------------------------------------------------------------------------------------
# checkpoints, resume, determinism

@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory):
    return make_synthetic_release(tmp_path_factory.mktemp("tiny"), n_train=24, n_test=8, size=64, seed=11,
                                  n_classes=3)


def _train(rel, out, **kw):
    opts = dict(task="both", size=64, epochs=2, batch_size=8, seed=7, out_dir=out, model_config=TINY,
                bootstrap=50, write_files=False)
    opts.update(kw)
    return train_baseline(rel.train, rel.test, rel.classes, **opts)


def _weights(out):
    info = json.loads((out / "model.json").read_text())
    return load_weights(out / info["weights"])


def test_save_and_load_weights_round_trip(tmp_path):
    m = Detector(ModelConfig(3, **TINY))
    p = save_weights(m.state_dict(), tmp_path / "w")
    assert p.exists() and not list(tmp_path.glob(".*tmp*"))
    back = load_weights(p)
    m2 = Detector(ModelConfig(3, **TINY))
    m2.load_state_dict(back)
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k


def test_determinism_same_seed_same_weights(tiny_release, tmp_path):
    _train(tiny_release, tmp_path / "a", epochs=1)
    _train(tiny_release, tmp_path / "b", epochs=1)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    _train(tiny_release, tmp_path / "c", epochs=1, seed=8)
    wc = _weights(tmp_path / "c")
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_interrupted_run_resumes_to_the_same_weights(tiny_release, tmp_path):
    full = tmp_path / "full"
    _train(tiny_release, full)

    class Stop(Exception):
        pass

    def stop_after_first(epoch, meta):
        if epoch == 1:
            raise Stop

    part = tmp_path / "part"
    with pytest.raises(Stop):
        _train(tiny_release, part, on_epoch_end=stop_after_first)
    meta = json.loads((part / "checkpoints" / "checkpoint.json").read_text())
    assert meta["epoch"] == 1 and not meta["done"]
    # the checkpoint's weights reload into an equal state
    ck_w = load_weights(part / "checkpoints" / meta["model_file"])
    m = Detector(ModelConfig(3, **TINY))
    m.load_state_dict(ck_w)
    assert all(torch.equal(m.state_dict()[k], ck_w[k]) for k in ck_w)

    logs = []
    rep = _train(tiny_release, part, progress=logs.append)
    assert rep.run.resumed and any("resuming" in m for m in logs)
    wf, wp = _weights(full), _weights(part)
    assert all(torch.equal(wf[k], wp[k]) for k in wf)
    # a finished run only re-evaluates (and writes the report files)
    rep2 = _train(tiny_release, part, write_files=True)
    assert rep2.run.resumed and rep2.run.steps == rep.run.steps
    assert all(torch.equal(wf[k], v) for k, v in _weights(part).items())
    for name in ("report.json", "report.md", "pr_curves.png", "examples.png", "model.json"):
        assert (part / name).stat().st_size > 0, name
    doc = json.loads((part / "report.json").read_text())
    assert doc["run"]["resumed"] and doc["files"]["examples"] == "examples.png"
    model, classes = train_mod.load_model(part)
    assert classes == tiny_release.classes and model.cfg.widths == TINY["widths"]
    # other options: refused
    with pytest.raises(train_mod.CheckpointMismatch):
        _train(tiny_release, part, size=96)


def test_time_budget_stops_and_marks_the_run(tiny_release, tmp_path):
    rep = _train(tiny_release, tmp_path / "tb", epochs=500, time_budget_s=1.0)
    assert rep.run.stopped_by_budget or rep.run.steps < 500 * 3
    assert rep.run.total_steps < 500 * 3
    meta = json.loads((tmp_path / "tb" / "checkpoints" / "checkpoint.json").read_text())
    assert meta["done"]
    # a budget spent within the first step: one step, and the schedule says so
    rep = _train(tiny_release, tmp_path / "tb0", epochs=500, time_budget_s=1e-6)
    assert rep.run.stopped_by_budget and rep.run.steps == 1 and rep.run.total_steps == 1


# ---------------------------------------------------------------------------------------------
# report

def _fake_preds(samples, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        b = s.boxes + rng.normal(0, jitter, s.boxes.shape).astype(np.float32)
        out.append(Prediction(b, np.full(len(b), 0.9, np.float32), s.labels.copy(), 0.9 if s.abnormal else 0.1))
    return out


def test_weighted_ap_equals_the_metrics_module():
    rng = np.random.default_rng(0)
    gt, det = [], []
    for i in range(30):
        n = int(rng.integers(0, 4))
        xy = rng.uniform(0, 80, (n, 2))
        b = np.c_[xy, xy + rng.uniform(5, 20, (n, 2))]
        gt.append((b, np.ones(n), rng.integers(0, 3, n)))
        m = int(rng.integers(0, 5))
        xy2 = rng.uniform(0, 80, (m, 2))
        d = np.r_[b + rng.normal(0, 2, b.shape), np.c_[xy2, xy2 + 10]]
        det.append((d, rng.random(len(d)), rng.integers(0, 3, len(d))))
    gi, gc, _, gb = _columns(gt)
    dcols = _columns(det)
    t = _APTable((gi, gc, gb), dcols, 3, 30, 0.4)
    ref = average_precision_per_class(gi.tolist(), gc, gb, dcols[0].tolist(), *dcols[1:], classes=[0, 1, 2],
                                      iou_thr=0.4)
    for c in range(3):
        assert t.weighted_ap(c, np.ones(30)) == pytest.approx(ref[c].ap, abs=1e-12)
    # duplicating every image leaves AP unchanged; dropping images changes the ground truth count
    assert t.weighted_map(np.full(30, 2.0)) == pytest.approx(t.map(), abs=1e-12)


def test_report_sanity_checks(tmp_path, monkeypatch):
    rel = make_synthetic_release(tmp_path / "rel", n_train=40, n_test=20, size=64, seed=3, n_classes=3, leak=2)
    train = list(rel.train)
    train[0] = dataclasses.replace(train[0], boxes=np.array([[-5.0, 2, 30, 30]], np.float32), labels=np.array([0]),
                                   abnormal=1)   # a box outside its image
    run = report_mod.RunInfo(
        task="both", device="cpu", device_name="cpu", seed=0, size=64, epochs=1, epochs_done=1, steps=1,
        total_steps=1, batch_size=1, lr=1e-3, stopped_by_budget=False, time_budget_s=None, resumed=False,
        compiled=False, deterministic=True, train_images_per_s=1.0, infer_images_per_s=1.0, train_seconds=1.0,
        n_threads=1, torch_version=torch.__version__)
    good = build_report(run, rel.classes, train, rel.test, _fake_preds(rel.test, 0.5), train, _fake_preds(train),
                        bootstrap=100)
    status = {c["check"]: c["status"] for c in good.sanity}
    assert good.map40 > 0.9 and good.auroc == 1.0
    assert status["beats_box_prior"] == "ok" and status["classifier_above_chance"] == "ok"
    assert status["train_test_duplicates"] == "fail" and good.verdict == "fail"
    dup = next(c for c in good.sanity if c["check"] == "train_test_duplicates")
    assert dup["details"]["count"] >= 2
    assert status["boxes_outside_images"] == "warn"
    assert good.classification["confusion"] == {"tp": sum(s.abnormal for s in rel.test), "fp": 0, "fn": 0,
                                                "tn": sum(1 - s.abnormal for s in rel.test)}
    # predictions that are just the box prior: indistinguishable -> fail
    from vindr_cli.baseline.report import _sizes, box_prior_predictions
    prior = box_prior_predictions(train, _sizes(train), _sizes(rel.test), 3)
    pp = [Prediction(b, s, l, 0.5) for b, s, l in prior]
    rep = build_report(run, rel.classes, train, rel.test, pp, train, [Prediction(*p, 0.5) for p in
                       box_prior_predictions(train, _sizes(train), _sizes(train), 3)], bootstrap=100)
    status = {c["check"]: c["status"] for c in rep.sanity}
    # 40 train / 20 test images are too few to call a statistical failure: inconclusive
    assert status["beats_box_prior"] == "inconclusive" and status["enough_data"] == "inconclusive"
    assert rep.auroc == 0.5 and status["classifier_above_chance"] == "inconclusive"
    monkeypatch.setattr(report_mod, "MIN_TEST_FOR_VERDICT", 10)
    monkeypatch.setattr(report_mod, "MIN_TRAIN_FOR_VERDICT", 10)
    rep = build_report(run, rel.classes, train, rel.test, pp, train, [Prediction(*p, 0.5) for p in
                       box_prior_predictions(train, _sizes(train), _sizes(train), 3)], bootstrap=100)
    status = {c["check"]: c["status"] for c in rep.sanity}
    assert status["beats_box_prior"] == "fail" and status["classifier_above_chance"] == "fail"
    # the report files
    report_mod.write_report(good, tmp_path / "out", rel.test, _fake_preds(rel.test))
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["verdict"] == "fail" and doc["detection"]["map_40"] > 0.9
    assert (tmp_path / "out" / "examples.png").stat().st_size > 0
    assert "train_test_duplicates" in (tmp_path / "out" / "report.md").read_text()


def test_youden_threshold():
    # J = 0.5 first reached at 0.35: midway to the next lower score
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.225)
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.6, 0.7, 0.8]
    assert youden_threshold(y, s) == pytest.approx(0.45)
    assert youden_threshold([1, 0, 1], [0.9, 0.95, 0.1]) == pytest.approx(0.1)   # lowest score: all positive
    assert youden_threshold([1, 1], [0.2, 0.3]) == 0.5
