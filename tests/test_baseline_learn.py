"""Learnability check of the baseline on a synthetic release with planted lesions.

The same short CPU training run on true and on shuffled labels:

* true labels: it must find the lesions (mAP@0.5 >= 0.5) and separate normal from abnormal
  images (AUROC >= 0.9); it reaches about 0.8 and 1.0.
* box classes permuted across all training boxes and abnormal flags permuted across images: the
  detector can still find lesions (the boxes stay on them) but not tell their classes apart, so
  mAP@0.5 stays near chance (8 balanced classes: about 1/8; bound 0.25).
* abnormal flags permuted, classifier only: AUROC within 0.5 +- 0.15.

Why the AUROC control is a classifier-only run: in the permuted ``both`` run the shared backbone
still learns real lesion features from the (unmoved) boxes, and a head fitted to random flags is
a random projection of those features, so its AUROC lands anywhere in about 0.33-0.67 depending
on the permutation (measured over four); that is signal leaking through the detector task, not
noise around 0.5. Without the detector the permuted-flag AUROC measured 0.51-0.55.

A pipeline that leaked test labels or scored wrongly would pass the first run and fail the
controls. Each run is capped by ``time_budget_s`` (the schedule shrinks to fit on a slow machine);
on an idle 2-core CPU the three take about 25, 25 and 15 s.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vindr_cli.baseline.synthetic import make_synthetic_release  # noqa: E402
from vindr_cli.baseline.train import train_baseline  # noqa: E402

SIZE = 128
EPOCHS = 14
MODEL = {"fpn_channels": 32, "head_channels": 32}
SEED = 3


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_synthetic_release(tmp_path_factory.mktemp("learn"), n_train=320, n_test=200, size=SIZE,
                                  n_classes=8, seed=SEED)


def _shuffled(samples, seed, *, boxes=True, flags=True):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([s.labels for s in samples])
    labels = rng.permutation(labels) if boxes else labels
    abnormal = np.asarray([s.abnormal for s in samples])
    abnormal = rng.permutation(abnormal) if flags else abnormal
    out, k = [], 0
    for s, a in zip(samples, abnormal):
        n = len(s.labels)
        out.append(dataclasses.replace(s, labels=labels[k:k + n], abnormal=int(a)))
        k += n
    return out


def _run(train, release, out_dir, *, task="both", budget_s):
    t0 = time.perf_counter()
    rep = train_baseline(train, release.test, release.classes, task=task, size=SIZE, epochs=EPOCHS,
                         batch_size=16, seed=SEED, out_dir=out_dir, time_budget_s=budget_s, resume=False,
                         model_config=MODEL, bootstrap=200, write_files=False)
    r = rep.run
    m40 = "-" if rep.map40 is None else f"{rep.map40:.3f}"
    m50 = "-" if rep.map50 is None else f"{rep.map50:.3f}"
    print(f"\n{out_dir.name}: mAP@0.4 {m40} mAP@0.5 {m50} AUROC {rep.auroc:.3f}; {r.steps}/{r.total_steps} steps, "
          f"{r.train_seconds:.1f} s training, {r.train_images_per_s:.0f} img/s, "
          f"{time.perf_counter() - t0:.1f} s in all; verdict {rep.verdict}")
    return rep


def test_learns_planted_lesions(release, tmp_path):
    rep = _run(release.train, release, tmp_path / "real", budget_s=100.0)
    assert rep.map50 >= 0.5
    assert rep.auroc >= 0.9
    checks = {c["check"]: c["status"] for c in rep.sanity}
    assert checks["beats_box_prior"] == "ok"
    assert checks["classifier_above_chance"] == "ok"
    assert checks["train_test_duplicates"] == "ok" and checks["boxes_outside_images"] == "ok"


def test_shuffled_box_classes_stay_near_chance(release, tmp_path):
    rep = _run(_shuffled(release.train, SEED + 100), release, tmp_path / "shuffled", budget_s=60.0)
    assert rep.map50 < 0.25


def test_shuffled_abnormal_flags_stay_near_chance(release, tmp_path):
    rep = _run(_shuffled(release.train, SEED + 100, boxes=False), release, tmp_path / "shuffled_cls",
               task="classify", budget_s=45.0)
    assert abs(rep.auroc - 0.5) <= 0.15
    assert rep.detection is None
