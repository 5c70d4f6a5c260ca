"""`vindr split` vs iterstrat and scikit-multilearn: time and stratification quality, one run.

Data (generated, seeded): 100,000 images of 40,000 patients (1-15 images each, studies of
1-2 images), 20 labels (19 VinDr-CXR local findings with image prevalence 12 % ... 0.2 %,
correlated within a patient, + "No finding"), 3 readers per image who each see a present
finding with p = 0.8, one box per mark: ~ 390,000 rows in the VinDr-CXR (PhysioNet) CSV
form, plus a metadata CSV (image_id, study_id, patient_id, rows, columns).

Contenders, all asked for 20,000 test images (20 %):
* vindr: ``split_dataset`` end to end (read + validate CSV, group, split, write split.csv,
  split_report.json and .png), and ``make_split`` alone on the in-memory matrix.
  Whole patients on each side, exact size.
* iterstrat 0.1.9 ``MultilabelStratifiedShuffleSplit`` (first order, per image: it has no
  notion of groups).
* scikit-multilearn 0.2.0 ``iterative_train_test_split`` (second order by default, per
  image, no groups). Fast enough here to run on the full table (no subsample).

Quality on the same image x label presence matrix: LD, LPD (scikit-multilearn's
definitions, vectorised in vindr_cli.release.measures), ED in images, and how many
patients end up on both sides. Times: best of --repeat runs (default 3).

    python bench/split_bench.py [--repeat 3] [--out bench/results/split.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vindr_cli.annotations.labels import builtin  # noqa: E402

VINDR_CXR_LOCAL = builtin("vindr-cxr").classes
from vindr_cli.release.measures import (example_distribution, label_distribution,  # noqa: E402
                                        label_pair_distribution)
from vindr_cli.release.split import group_images, make_split, split_dataset  # noqa: E402

N_IMAGES, N_PATIENTS, TEST = 100_000, 40_000, 20_000
FINDINGS = [c for c in VINDR_CXR_LOCAL if c != "No finding"][:19]


def generate(tmp: Path, seed: int = 0) -> tuple[Path, Path, dict]:
    rng = np.random.default_rng(seed)
    sizes = 1 + rng.multinomial(N_IMAGES - N_PATIENTS, rng.dirichlet(np.full(N_PATIENTS, 0.8)))
    patient = np.repeat(np.arange(N_PATIENTS), sizes)
    local = np.arange(N_IMAGES) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    study = patient * 64 + local // 2
    L = len(FINDINGS)
    prev = np.geomspace(0.12, 0.002, L)
    prone = rng.random((N_PATIENTS, L)) < 2 * prev          # patient-level propensity
    truth = prone[patient] & (rng.random((N_IMAGES, L)) < 0.5)
    marks = truth[:, None, :] & (rng.random((N_IMAGES, 3, L)) < 0.8)
    img, rad, lab = np.nonzero(marks)
    nf_img, nf_rad = np.nonzero(~marks.any(axis=2))
    ids = np.array([f"{(1 << 100) + int(v):032x}" for v in rng.permutation(N_IMAGES)], dtype=object)
    readers = np.array(["R1", "R2", "R3"], dtype=object)
    x0, y0 = rng.uniform(0, 1700, len(img)).round(1), rng.uniform(0, 1700, len(img)).round(1)
    w, h = rng.uniform(10, 300, len(img)).round(1), rng.uniform(10, 300, len(img)).round(1)
    boxes = pd.DataFrame({"image_id": ids[img], "rad_id": readers[rad],
                          "class_name": np.array(FINDINGS, dtype=object)[lab],
                          "x_min": x0, "y_min": y0, "x_max": x0 + w, "y_max": y0 + h, "_o": img})
    none = pd.DataFrame({"image_id": ids[nf_img], "rad_id": readers[nf_rad], "class_name": "No finding",
                         "x_min": np.nan, "y_min": np.nan, "x_max": np.nan, "y_max": np.nan, "_o": nf_img})
    ann = pd.concat([boxes, none]).sort_values(["_o", "rad_id"], kind="stable").drop(columns="_o")
    meta = pd.DataFrame({"image_id": ids, "study_id": [f"2.25.{s}" for s in study],
                         "patient_id": [f"P{p:07d}" for p in patient], "rows": 2048, "columns": 2048})
    a, m = tmp / "annotations.csv", tmp / "meta.csv"
    ann.to_csv(a, index=False)
    meta.to_csv(m, index=False)
    return a, m, {"rows": len(ann), "images": N_IMAGES, "patients": N_PATIENTS, "labels": L + 1,
                  "studies": int(len(np.unique(study)))}


def quality(y: np.ndarray, test: np.ndarray, patient: np.ndarray) -> dict:
    crossing = pd.Series(test).groupby(patient).nunique()
    return {"test_images": int(test.sum()), "ld": label_distribution(y, test), "lpd": label_pair_distribution(y, test),
            "ed_images": example_distribution([int((~test).sum()), int(test.sum())], [len(y) - TEST, TEST]),
            "labels_without_test_positive": int((y.any(0) & ~y[test].any(0)).sum()),
            "patients_on_both_sides": int((crossing > 1).sum())}


def best_of(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "split.json")
    args = ap.parse_args()
    load0 = list(os.getloadavg())   # other work on the machine inflates every time below alike
    tmp = Path(tempfile.mkdtemp(prefix="vindr-split-bench-"))
    t = time.perf_counter()
    a, m, data = generate(tmp)
    print(f"data: {data} (generated in {time.perf_counter() - t:.1f} s)")

    results: dict[str, dict] = {}
    t_e2e, r = best_of(lambda: split_dataset(a, m, test_size=TEST, unit="images", seed=0, out_dir=tmp / "out"),
                       args.repeat)
    # the same presence matrix for everyone, in split.csv order
    image_ids = r.images["image_id"]
    meta = pd.read_csv(m, dtype=str).set_index("image_id").loc[image_ids]
    patient = pd.factorize(meta["patient_id"])[0]
    ann = pd.read_csv(a, usecols=["image_id", "class_name"], dtype=str)
    y = np.zeros((len(image_ids), len(r.labels)), dtype=bool)
    y[pd.Index(image_ids).get_indexer(ann["image_id"]), pd.Index(r.labels).get_indexer(ann["class_name"])] = True
    test_e2e = (r.images["split"] == "test").to_numpy()
    results["vindr split_dataset (end to end)"] = {"seconds": t_e2e, "phases": r.info["seconds"], **quality(y, test_e2e, patient)}

    groups = group_images(meta["study_id"].to_numpy(), meta["patient_id"].to_numpy())
    t_core, test = best_of(lambda: make_split(groups, y, TEST, unit="images", seed=0), args.repeat)
    results["vindr make_split (algorithm only)"] = {"seconds": t_core, **quality(y, test, patient)}
    t_o2, test2 = best_of(lambda: make_split(groups, y, TEST, unit="images", seed=0, order=2), 1)
    results["vindr make_split order=2 (algorithm only)"] = {"seconds": t_o2, **quality(y, test2, patient)}

    try:
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        def iterstrat():
            s = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=TEST, random_state=0)
            _, te = next(s.split(np.zeros(len(y)), y.astype(np.int8)))
            mask = np.zeros(len(y), dtype=bool)
            mask[te] = True
            return mask
        t_it, mask = best_of(iterstrat, args.repeat)
        results["iterstrat MultilabelStratifiedShuffleSplit"] = {"seconds": t_it, **quality(y, mask, patient)}
    except ImportError as exc:
        results["iterstrat MultilabelStratifiedShuffleSplit"] = {"skipped": str(exc)}

    try:
        from skmultilearn.model_selection import iterative_train_test_split

        def skml():
            np.random.seed(0)
            X = np.arange(len(y))[:, None]
            _, _, X_test, _ = iterative_train_test_split(X, y.astype(np.int8), test_size=TEST / len(y))
            mask = np.zeros(len(y), dtype=bool)
            mask[X_test[:, 0]] = True
            return mask
        t_sk, mask = best_of(skml, args.repeat)
        results["scikit-multilearn iterative_train_test_split"] = {"seconds": t_sk, **quality(y, mask, patient)}
    except ImportError as exc:
        results["scikit-multilearn iterative_train_test_split"] = {"skipped": str(exc)}

    ref = results["vindr split_dataset (end to end)"]
    core = results["vindr make_split (algorithm only)"]
    print(f"\n{'method':47s} {'s':>7s} {'LD':>10s} {'LPD':>10s} {'ED':>6s} {'x time':>7s} {'x LD':>7s} {'pat. both':>9s}")
    for name, v in results.items():
        if "skipped" in v:
            print(f"{name:47s} skipped: {v['skipped']}")
            continue
        v["time_vs_vindr_make_split"] = v["seconds"] / core["seconds"]
        v["ld_vs_vindr"] = v["ld"] / ref["ld"] if ref["ld"] else None
        print(f"{name:47s} {v['seconds']:7.2f} {v['ld']:10.3e} {v['lpd']:10.3e} {v['ed_images']:6.1f} "
              f"{v['time_vs_vindr_make_split']:7.2f} {v['ld_vs_vindr']:7.2f} {v['patients_on_both_sides']:9d}")
    out = {"date": time.strftime("%Y-%m-%d"), "machine": {"python": platform.python_version(),
                                                          "cpus": os.cpu_count(), "platform": platform.platform(),
                                                          "load_average_at_start": load0,
                                                          "load_average_at_end": list(os.getloadavg())},
           "data": data, "test_images": TEST, "repeat": args.repeat, "results": results,
           "notes": "times are best of `repeat` (order=2: one run); ratios: time / vindr make_split, "
                    "LD / vindr end-to-end LD; iterstrat and scikit-multilearn split images, not patients"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
