"""`vindr split`: grouped multi-label stratification with exact sizes, on VinDr-shaped tables.

The synthetic tables are generated here, deterministically:

* VinDr-CXR-like: 18,000 images, 1-2 images per patient, 3 readers per image, Kaggle
  train.csv class frequencies (No finding ~47 % of rows down to Pneumothorax ~0.3 %).
* VinDr-SpineXR-like: 5,000 studies of 1-3 images (~2), one reader per image, 7 lesion
  types + No finding; a few patients with two studies.

The baseline is iterstrat's ``MultilabelStratifiedShuffleSplit`` (a test-only dependency).
It splits *images* and knows nothing of patients, so it solves an easier problem; its LD
is computed on its own image split, ours on our grouped split, both over the same
image x label presence matrix (a label is present on an image when any reader marked it).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from vindr_cli.annotations import BadRowsError, read_annotations
from vindr_cli.release.measures import (example_distribution, label_distribution, label_pair_distribution,
                                        folds_labels_without_positives)
from vindr_cli.release.split import (group_images, make_split, parse_test_size, split_dataset,
                                     stratify_groups, unit_sizes)
from vindr_cli.release.split_report import render_split_report

KAGGLE = ("Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
          "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
          "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis")
# rows per class in the Kaggle VinBigData train.csv (No finding: 31,818 of 67,914 rows)
KAGGLE_ROWS = (7162, 279, 960, 5427, 556, 1000, 1247, 2483, 2580, 2203, 2476, 4842, 226, 4655)
SPINE = ("Osteophytes", "Disc space narrowing", "Surgical implant", "Foraminal stenosis", "Spondylolysthesis",
         "Vertebral collapse", "Other lesions")
SPINE_WEIGHTS = (0.55, 0.12, 0.06, 0.1, 0.07, 0.07, 0.03)


def _box(rng, n):
    x0 = rng.uniform(0, 1800, n)
    y0 = rng.uniform(0, 2000, n)
    w, h = rng.uniform(20, 300, n), rng.uniform(20, 300, n)
    return np.round(np.stack([x0, y0, x0 + w, y0 + h], axis=1), 1)


def make_cxr(tmp: Path, n_images: int = 18_000, seed: int = 7) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    per_patient = rng.choice([1, 2], size=n_images, p=[0.72, 0.28])
    patient = np.repeat(np.arange(n_images), per_patient)[:n_images]
    ids = np.array([f"{i:032x}" for i in rng.permutation(n_images) + 10**6], dtype=object)
    w = np.asarray(KAGGLE_ROWS, dtype=float) / sum(KAGGLE_ROWS)
    abnormal = rng.random(n_images) < 0.3
    img, cls, rad = [], [], []
    for i in range(n_images):
        found = np.unique(rng.choice(14, size=1 + rng.poisson(1.0), p=w)) if abnormal[i] else ()
        for r in ("R8", "R9", "R10"):
            seen = [c for c in found if rng.random() < 0.8]
            if not seen:
                img.append(i), cls.append(14), rad.append(r)
            for c in seen:
                k = 1 + rng.poisson(0.6)
                img += [i] * k
                cls += [c] * k
                rad += [r] * k
    img, cls = np.asarray(img), np.asarray(cls)
    box = _box(rng, len(img)).astype(object)
    box[cls == 14] = ""
    names = np.array(KAGGLE + ("No finding",), dtype=object)
    ann = pd.DataFrame({"image_id": ids[img], "class_name": names[cls], "class_id": cls, "rad_id": rad,
                        "x_min": box[:, 0], "y_min": box[:, 1], "x_max": box[:, 2], "y_max": box[:, 3]})
    meta = pd.DataFrame({"image_id": ids, "study_id": [f"2.25.{10**9 + i}" for i in range(n_images)],
                         "patient_id": [f"P{p:07d}" for p in patient], "rows": 2400, "columns": 2200})
    a, m = tmp / "cxr.csv", tmp / "cxr_meta.csv"
    ann.to_csv(a, index=False)
    meta.to_csv(m, index=False)
    return a, m


def make_spine(tmp: Path, n_studies: int = 5_000, seed: int = 11) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    per_study = rng.choice([1, 2, 3], size=n_studies, p=[0.1, 0.8, 0.1])
    study = np.repeat(np.arange(n_studies), per_study)
    n = len(study)
    pat_of_study = np.arange(n_studies)
    twice = rng.random(n_studies) < 0.1
    pat_of_study[twice] = np.maximum(np.flatnonzero(twice) - 1, 0)   # a few patients with two studies
    ids = np.array([f"2.25.{3 * 10**9 + i}" for i in range(n)], dtype=object)
    series = np.array([f"2.25.{4 * 10**9 + i}" for i in range(n)], dtype=object)
    study_uid = np.array([f"2.25.{5 * 10**9 + s}" for s in range(n_studies)], dtype=object)
    sick = rng.random(n_studies) < 0.5
    rows = []
    for i in range(n):
        s = study[i]
        reader = f"R{1 + rng.integers(5)}"
        found = np.unique(rng.choice(7, size=1 + rng.poisson(1.2), p=SPINE_WEIGHTS)) \
            if sick[s] and rng.random() < 0.85 else ()
        if len(found) == 0:
            rows.append((ids[i], study_uid[s], series[i], reader, "No finding", "", "", "", ""))
        for c in found:
            for b in _box(rng, 1 + rng.poisson(0.8)):
                rows.append((ids[i], study_uid[s], series[i], reader, SPINE[c], *b))
    ann = pd.DataFrame(rows, columns=["image_id", "study_id", "series_id", "rad_id", "lesion_type",
                                      "xmin", "ymin", "xmax", "ymax"])
    meta = pd.DataFrame({"image_id": ids, "study_id": study_uid[study],
                         "patient_id": [f"P{p:06d}" for p in pat_of_study[study]]})
    a, m = tmp / "spine.csv", tmp / "spine_meta.csv"
    ann.to_csv(a, index=False)
    meta.to_csv(m, index=False)
    return a, m


@pytest.fixture(scope="module")
def cxr(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cxr")
    a, m = make_cxr(tmp)
    r = split_dataset(a, m, preset="vindr-cxr", seed=0, out_dir=tmp / "out")
    return a, m, tmp / "out", r


@pytest.fixture(scope="module")
def spine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spine")
    a, m = make_spine(tmp)
    r = split_dataset(a, m, preset="vindr-spinexr", seed=0, out_dir=tmp / "out")
    return a, m, tmp / "out", r


def _presence(ann_path: Path, image_ids: pd.Series, labels: list[str]) -> np.ndarray:
    ann, _ = read_annotations(ann_path)
    pos = pd.Index(image_ids).get_indexer(ann["image_id"])
    lab = pd.Index(labels).get_indexer(ann["label"])
    y = np.zeros((len(image_ids), len(labels)), dtype=bool)
    y[pos, lab] = True
    return y


def _iterstrat_ld(y: np.ndarray, test_size, seed: int = 0) -> float:
    ml = pytest.importorskip("iterstrat.ml_stratifiers", exc_type=ImportError)
    splitter = ml.MultilabelStratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    _, test = next(splitter.split(np.zeros(len(y)), y.astype(int)))
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    return label_distribution(y, mask)


def _check_common(out: Path, r, ann_path: Path):
    split = pd.read_csv(out / "split.csv", dtype=str, keep_default_na=False)
    assert list(split.columns) == ["image_id", "study_id", "patient_id", "split"]
    assert set(split["split"]) == {"train", "test"}
    # no group crosses sides
    assert (split.groupby("patient_id")["split"].nunique() == 1).all()
    assert (split.groupby("study_id")["split"].nunique() == 1).all()
    # every label held by >= 2 groups has positives on both sides
    d = r.per_label
    multi = d[d["groups"] >= 2]
    assert (multi["test"] > 0).all() and (multi["train"] > 0).all()
    assert r.labels_without_test == []
    report = json.loads((out / "split_report.json").read_text())
    assert report["measures"]["ld"] == pytest.approx(r.measures["ld"])
    assert report["bad_rows"]["count"] == 0
    assert (out / "split_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.vindr-part"))
    y = _presence(ann_path, split["image_id"], r.labels)
    assert label_distribution(y, (split["split"] == "test").to_numpy()) == pytest.approx(r.measures["ld"])
    return split, y


def test_cxr_preset_exact_grouped_stratified(cxr):
    a, m, out, r = cxr
    assert r.counts["train"]["images"] == 15_000 and r.counts["test"]["images"] == 3_000
    assert r.measures["ed"] == 0
    assert len(r.labels) == 15 and r.labels[-1] == "No finding"
    _check_common(out, r, a)
    rows = pd.read_csv(a)
    share = rows["class_name"].value_counts(normalize=True)
    assert 0.42 < share["No finding"] < 0.52 and share["Pneumothorax"] < 0.006    # shaped like Kaggle


@pytest.mark.parametrize("preset,iterstrat_test", [("cxr", 3_000), ("spine", 0.2)])
def test_ld_not_worse_than_iterstrat(request, preset, iterstrat_test):
    """iterstrat splits images (no groups), a looser problem; its LD is taken on its own split
    (CXR: the preset's 3,000 test images; SpineXR: the same 20 % share, counted in images)."""
    a, _, out, r = request.getfixturevalue(preset)
    split = pd.read_csv(out / "split.csv", dtype=str, keep_default_na=False)
    y = _presence(a, split["image_id"], r.labels)
    assert r.measures["ld"] <= _iterstrat_ld(y, iterstrat_test)


def test_spinexr_preset_exact_grouped_stratified(spine):
    a, m, out, r = spine
    assert r.counts["train"]["studies"] == 4_000 and r.counts["test"]["studies"] == 1_000
    assert r.unit == "studies" and r.measures["ed"] == 0
    assert len(r.labels) == 8
    split, _ = _check_common(out, r, a)
    assert split.groupby("study_id").ngroups == 5_000


def test_render_report(cxr):
    _, _, _, r = cxr
    buf = io.StringIO()
    render_split_report(r, Console(file=buf, width=120, color_system=None))
    text = buf.getvalue()
    assert "Pneumothorax" in text and "LD" in text and "15000" in text and "labels with no test positive: none" in text


def test_determinism_and_seed(cxr, tmp_path):
    a, m, out, _ = cxr
    again = split_dataset(a, m, preset="vindr-cxr", seed=0, out_dir=tmp_path / "same")
    assert (tmp_path / "same" / "split.csv").read_bytes() == (out / "split.csv").read_bytes()
    other = split_dataset(a, m, preset="vindr-cxr", seed=1, out_dir=tmp_path / "other")
    assert (tmp_path / "other" / "split.csv").read_bytes() != (out / "split.csv").read_bytes()
    assert other.counts["test"]["images"] == 3_000
    assert not again.images["split"].equals(other.images["split"])


def test_preset_the_data_cannot_meet(spine, tmp_path):
    a, m, _, _ = spine
    with pytest.raises(ValueError, match=r"preset vindr-cxr needs 18000 images \(15000 train \+ 3000 test\); "
                                         r"the data has \d+$"):
        split_dataset(a, m, preset="vindr-cxr", out_dir=tmp_path)
    assert not (tmp_path / "split.csv").exists()
    small = pd.read_csv(m).iloc[:4000]
    small.to_csv(tmp_path / "small.csv", index=False)
    with pytest.raises(ValueError, match="needs 5000 studies"):
        split_dataset(a, tmp_path / "small.csv", preset="vindr-spinexr")
    with pytest.raises(ValueError, match="unknown preset"):
        split_dataset(a, m, preset="vindr-mammo")
    with pytest.raises(ValueError, match="either --preset or --test-size"):
        split_dataset(a, m, preset="vindr-cxr", test_size=10)
    with pytest.raises(ValueError, match="splits by studies"):
        split_dataset(a, m, preset="vindr-spinexr", unit="images")


def test_test_size_fraction_and_units(spine):
    a, m, _, _ = spine
    r = split_dataset(a, m, test_size="0.25", unit="patients", seed=3)
    total = r.counts["train"]["patients"] + r.counts["test"]["patients"]
    assert r.counts["test"]["patients"] == round(0.25 * total)
    r = split_dataset(a, m, test_size=1234, unit="images", seed=3)
    assert r.counts["test"]["images"] == 1234
    assert parse_test_size("0.1") == 0.1 and parse_test_size("300") == 300 and parse_test_size(2.0) == 2
    for bad in ("0", "1.5", "-3", "abc", "0.0"):
        with pytest.raises(ValueError):
            parse_test_size(bad)


def test_bad_rows_skipped_or_fatal(tmp_path):
    ann = tmp_path / "a.csv"
    lines = ["image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max"]
    ids = [f"i{k:03d}" for k in range(40)]
    for k, i in enumerate(ids):
        lines.append(f"{i},{'Cardiomegaly,3' if k % 3 == 0 else 'No finding,14'},R1,"
                     + ("10,10,50,50" if k % 3 == 0 else ",,,"))
    lines.append("i001,Cardiomegaly,3,R2,10,10,5000,50")   # line 42: outside the 100x100 image
    lines.append("zzz,Cardiomegaly,3,R2,10,10,50,50")      # line 43: image not in the metadata
    lines.append("i002,Cardiomegaly,3,R2,50,10,10,50")     # line 44: inverted
    ann.write_text("\n".join(lines) + "\n")
    meta = tmp_path / "m.csv"
    pd.DataFrame({"image_id": ids, "study_id": [f"s{k}" for k in range(40)], "patient_id": [f"p{k // 2}" for k in range(40)],
                  "rows": 100, "columns": 100}).to_csv(meta, index=False)
    r = split_dataset(ann, meta, test_size=10, seed=0, out_dir=tmp_path / "out")
    assert [(b.line, b.reason) for b in r.bad_rows] == [
        (42, "box outside the image (beyond columns/rows)"), (43, "image not in the metadata"),
        (44, "inverted or empty box (max <= min)")]
    assert r.counts["test"]["images"] == 10
    rep = json.loads((tmp_path / "out" / "split_report.json").read_text())
    assert [b["line"] for b in rep["bad_rows"]["rows"]] == [42, 43, 44]
    buf = io.StringIO()
    render_split_report(r, Console(file=buf, width=120, color_system=None))
    assert "image not in the metadata" in buf.getvalue()
    with pytest.raises(BadRowsError, match="3 bad rows: line 42"):
        split_dataset(ann, meta, test_size=10, seed=0, strict=True, out_dir=tmp_path / "strict")
    assert not (tmp_path / "strict" / "split.csv").exists()


def test_no_annotation_matches_metadata(tmp_path):
    ann = tmp_path / "a.csv"
    ann.write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\nq,No finding,14,R1,,,,\n")
    meta = tmp_path / "m.csv"
    meta.write_text("image_id,study_id\nother,s\n")
    with pytest.raises(ValueError, match="no valid annotation row refers to an image in the metadata"):
        split_dataset(ann, meta, test_size=1)


def test_group_images_components():
    study = ["s1", "s1", "s2", "s3", "s4", None]
    patient = ["p1", None, "p2", "p1", None, None]
    g = group_images(study, patient)
    assert g[0] == g[1] == g[3]               # s1 joins p1; p1's other study s3
    assert len({g[0], g[2], g[4], g[5]}) == 4  # p2 alone; study-only s4; image without study alone
    assert unit_sizes(g, "studies", study).tolist() == [2, 1, 1, 1]
    assert unit_sizes(g, "patients", None, patient).tolist() == [1, 1, 1, 1]
    # a study shared by two patients joins them
    g = group_images(["a", "a", "b"], ["p1", "p2", "p2"])
    assert len(set(g)) == 1


def test_make_split_exact_and_infeasible():
    rng = np.random.default_rng(0)
    n = 3000
    groups = np.repeat(np.arange(1000), 3)
    y = (rng.random((n, 5)) < [0.3, 0.1, 0.05, 0.01, 0.002]).astype(int)
    m = make_split(groups, y, 600, unit="images", seed=1)
    assert m.sum() == 600
    assert (pd.Series(m).groupby(groups).nunique() == 1).all()
    with pytest.raises(ValueError, match="no set of whole groups has exactly 601 units"):
        make_split(groups, y, 601, unit="images")
    # sizes 2 and 3 only: a gap of 1 needs a two-group move
    sizes = np.array([2, 3] * 50)
    Y = rng.integers(0, 2, size=(100, 4))
    for target in (37, 101, 4):
        t, _ = stratify_groups(Y, sizes, target, seed=5)
        assert sizes[t].sum() == target


def test_order2_and_readers_count(spine):
    a, m, _, base = spine
    r = split_dataset(a, m, preset="vindr-spinexr", seed=0, order=2, count="readers")
    assert r.counts["test"]["studies"] == 1_000 and r.info["order"] == 2
    assert r.labels_without_test == []


def test_measures_match_scikit_multilearn():
    measures = pytest.importorskip("skmultilearn.model_selection.measures", exc_type=ImportError)
    rng = np.random.default_rng(2)
    y = (rng.random((300, 6)) < [0.05, 0.1, 0.3, 0.5, 0.02, 0.7]).astype(int)
    test = rng.random(300) < 0.25
    folds = [np.flatnonzero(~test), np.flatnonzero(test)]
    assert label_distribution(y, test) == pytest.approx(measures.label_combination_distribution(y, folds, 1))
    assert label_pair_distribution(y, test) == pytest.approx(measures.label_combination_distribution(y, folds, 2))
    y[test, 4] = 0       # one label absent from the test fold
    assert folds_labels_without_positives(y, test) == sum(
        int(not y[f, k].any()) for f in folds for k in range(6) if y[:, k].any())
    assert example_distribution([len(folds[0]), len(folds[1])], [225, 75]) == \
        sum(abs(len(f) - d) for f, d in zip(folds, [225, 75])) / 2


def test_split_from_anonymize_manifest_with_image_labels(tmp_path):
    """Metadata straight from `vindr anonymize`'s manifest.parquet: only status 'ok' rows count."""
    from vindr_cli.tables import write_table

    rng = np.random.default_rng(5)
    rows, lines = [], ["image_id,rad_id,Lung tumor,Pneumonia,Tuberculosis,No finding"]
    for i in range(400):
        status = "ok" if i % 50 else "quarantined"
        image_id = f"{i:032x}"
        rows.append({"input_key": f"k{i}", "status": status, "image_id": image_id, "study_uid": f"2.25.{i // 2}",
                     "patient_id": f"P{i // 4:03d}" if i % 7 else None, "rows": 512, "columns": 512})
        for r in ("R1", "R2"):
            v = (rng.random(3) < [0.2, 0.1, 0.03]).astype(int)
            lines.append(f"{image_id},{r},{v[0]},{v[1]},{v[2]},{int(not v.any())}")
    rows.append({"input_key": "kf", "status": "failed", "image_id": None, "study_uid": None, "patient_id": None})
    write_table(rows, "anonymize_manifest", tmp_path / "manifest.parquet")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    r = split_dataset(tmp_path / "labels.csv", tmp_path / "manifest.parquet", test_size=0.2, unit="studies",
                      seed=2, out_dir=tmp_path / "out")
    assert r.annotation_format == "cxr-image-labels"
    assert len(r.images) == 392 and not r.images["image_id"].isin([f"{i:032x}" for i in range(0, 400, 50)]).any()
    # the quarantined images' rows (2 readers each) are reported, with their line numbers
    assert [b.line for b in r.bad_rows] == [2 + 2 * i + k for i in range(0, 400, 50) for k in (0, 1)]
    assert {b.reason for b in r.bad_rows} == {"image not in the metadata"}
    total = r.counts["train"]["studies"] + r.counts["test"]["studies"]
    assert r.counts["test"]["studies"] == round(0.2 * total)
    split = pd.read_csv(tmp_path / "out" / "split.csv", dtype=str, keep_default_na=False)
    assert (split.groupby("study_id")["split"].nunique() == 1).all()
    with_patient = split[split["patient_id"] != ""]
    assert (with_patient.groupby("patient_id")["split"].nunique() == 1).all()
