"""`vindr split` -> `vindr release` -> `vindr validate` on sample_dicoms, and the validator
catching each planted defect."""
from __future__ import annotations

import json
import shutil

import pandas as pd

from conftest import SAMPLE
from helpers import run_cli, split_file
from test_sample_e2e import _phi_strings

# `pipeline` (anonymize -> decode -> split -> release on sample_dicoms) is a session fixture
# in conftest.py, shared with test_baseline_cli.py.


def test_release_layout_and_validate_clean(pipeline):
    base, release = pipeline
    p = run_cli("validate", release, check=False)
    assert p.returncode == 0 and "no findings" in p.stdout, p.stdout
    images = pd.read_csv(release / "images.csv")
    assert set(images["split"]) == {"train", "test"}
    for r in images.itertuples():
        assert (release / r.dicom).is_file() and (release / r.image).is_file()
        assert (release / r.dicom).stat().st_nlink >= 2          # hard link to the anonymized file
    for side in ("train", "test"):
        for name in (f"annotations_{side}.csv", f"kaggle_{side}.csv", f"coco_{side}.json"):
            assert (release / "annotations" / name).is_file()
        labels = list((release / "yolo" / "labels" / side).glob("*.txt"))
        assert len(labels) == (images["split"] == side).sum()
    sheet = (release / "README.md").read_text()
    assert "Seed 3" in sheet and "profile: basic" in sheet and "| Pleural thickening |" in sheet
    assert json.loads((release / "labels.json").read_text())["classes"][14]["name"] == "No finding"


def test_coco_boxes_follow_the_decoded_images(pipeline):
    _, release = pipeline
    images = pd.read_csv(release / "images.csv").set_index("image_id")
    ann = pd.read_csv(release / "annotations" / "annotations_train.csv").dropna(subset=["x_min"])
    coco = json.loads((release / "annotations" / "coco_train.json").read_text())
    ids = {im["id"]: im["image_id"] for im in coco["images"]}
    first = coco["annotations"][0]
    image_id = ids[first["image_id"]]
    sx, sy = images.at[image_id, "scale_x"], images.at[image_id, "scale_y"]
    cands = ann[ann["image_id"] == image_id]
    x, y, w, h = first["bbox"]
    assert any(abs(r.x_min * sx - x) < 0.02 and abs(r.y_min * sy - y) < 0.02 and abs((r.x_max - r.x_min) * sx - w) < 0.05
               for r in cands.itertuples())
    for im in coco["images"]:
        assert im["width"] == images.at[im["image_id"], "image_cols"]


def test_release_holds_no_phi(pipeline):
    _, release = pipeline
    phi = _phi_strings()
    for p in release.rglob("*"):
        rel = p.relative_to(release).as_posix()
        assert not any(s.lower() in rel.lower() for s in phi)
        if p.is_file() and p.suffix != ".png":
            data = split_file(p)[0] if p.suffix == ".dicom" else p.read_bytes()
            assert not [s for s in phi if s.encode() in data], rel


def test_release_refuses_an_existing_folder(pipeline):
    base, release = pipeline
    p = run_cli("release", base / "anon", "--split", base / "split", "-o", release, check=False)
    assert p.returncode == 2 and "already exists" in p.stderr


def _copy(release, tmp_path):
    dst = tmp_path / "r"
    shutil.copytree(release, dst)
    return dst


def _validate_finds(root, kind):
    p = run_cli("validate", root, check=False)
    assert p.returncode == 1 and kind in p.stdout, p.stdout
    return p.stdout


def test_validate_catches_a_leaked_patient(pipeline, tmp_path):
    r = _copy(pipeline[1], tmp_path)
    images = pd.read_csv(r / "images.csv", dtype=str)
    train_patient = images.loc[images["split"] == "train", "patient_id"].iloc[0]
    images.loc[images.index[images["split"] == "test"][0], "patient_id"] = train_patient
    images.to_csv(r / "images.csv", index=False)
    _validate_finds(r, "leak")


def test_validate_catches_a_duplicate_image(pipeline, tmp_path):
    r = _copy(pipeline[1], tmp_path)
    images = pd.read_csv(r / "images.csv", dtype=str)
    tr = images.index[images["split"] == "train"][0]
    te = images.index[images["split"] == "test"][0]
    (r / images.at[te, "dicom"]).unlink()
    shutil.copy(r / images.at[tr, "dicom"], r / images.at[te, "dicom"])
    images.at[te, "pixel_sha256"] = images.at[tr, "pixel_sha256"]
    images.to_csv(r / "images.csv", index=False)
    _validate_finds(r, "duplicate")


def test_validate_catches_a_box_out_of_bounds(pipeline, tmp_path):
    r = _copy(pipeline[1], tmp_path)
    path = r / "annotations" / "annotations_train.csv"
    ann = pd.read_csv(path, dtype=str, keep_default_na=False)
    i = ann.index[ann["x_max"] != ""][0]
    ann.at[i, "x_max"] = "99999.0"
    ann.to_csv(path, index=False)
    out = _validate_finds(r, "box-bounds")
    assert f"line {i + 2}" in out


def test_validate_catches_an_unknown_class(pipeline, tmp_path):
    r = _copy(pipeline[1], tmp_path)
    path = r / "annotations" / "annotations_test.csv"
    ann = pd.read_csv(path, dtype=str, keep_default_na=False)
    ann.at[0, "class_name"] = "Broken heart"
    ann.to_csv(path, index=False)
    _validate_finds(r, "unknown-class")


def test_validate_catches_schema_and_count_problems(pipeline, tmp_path):
    r = _copy(pipeline[1], tmp_path)
    images = pd.read_csv(r / "images.csv", dtype=str)
    images = images.drop(columns=["pixel_sha256"])
    images.to_csv(r / "images.csv", index=False)
    _validate_finds(r, "schema")
    r2 = tmp_path / "r2"
    shutil.copytree(pipeline[1], r2)
    rep = json.loads((r2 / "split_report.json").read_text())
    rep["counts"]["test"]["images"] += 1
    (r2 / "split_report.json").write_text(json.dumps(rep))
    _validate_finds(r2, "counts")


def test_fused_readers_give_fewer_coco_boxes_with_reader_counts(pipeline, tmp_path):
    base, release = pipeline
    fused = tmp_path / "fused"
    run_cli("release", base / "anon", "--split", base / "split", "--images", base / "images", "-o", fused,
            "--fuse-readers")
    a = json.loads((release / "annotations" / "coco_train.json").read_text())["annotations"]
    b = json.loads((fused / "annotations" / "coco_train.json").read_text())["annotations"]
    assert 0 < len(b) < len(a)
    assert sum(x["readers"] for x in b) == len(a) and max(x["score"] for x in b) >= 2
    assert run_cli("validate", fused, check=False).returncode == 0


def test_image_level_labels_release(pipeline, tmp_path):
    base, _ = pipeline
    images = pd.read_csv(base / "split" / "split.csv")
    labels = pd.DataFrame({"image_id": images["image_id"], "rad_id": "R1",
                           "Lung tumor": [i % 2 for i in range(len(images))], "No finding": [1 - i % 2 for i in range(len(images))]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    split, rel = tmp_path / "split", tmp_path / "rel"
    run_cli("split", tmp_path / "labels.csv", "--meta", base / "anon" / "manifest.parquet", "--test-size", "0.3",
            "--unit", "patients", "-o", split)
    run_cli("release", base / "anon", "--split", split, "-o", rel)
    assert (rel / "annotations" / "image_labels_train.csv").is_file()
    doc = json.loads((rel / "labels.json").read_text())     # the set the labels were read with is recorded
    assert doc["label_set"] == "vindr-cxr" and "Lung tumor" in doc["global_labels"]
    assert doc["classes"][22]["name"] == "No finding" and "physionet.org" in doc["source"]
    assert run_cli("validate", rel, check=False).returncode == 0
    t = pd.read_csv(rel / "annotations" / "image_labels_test.csv", dtype=str)
    t.loc[0, "Lung tumor"] = "7"
    t.to_csv(rel / "annotations" / "image_labels_test.csv", index=False)
    _validate_finds(rel, "schema")


def test_friendly_refusals(pipeline, tmp_path):
    base, _ = pipeline
    p = run_cli("validate", base / "anon", check=False)
    assert p.returncode == 2 and "not a release" in p.stderr
    p = run_cli("split", tmp_path / "nothere.csv", "--meta", base / "anon" / "manifest.parquet",
                "--test-size", "0.3", "-o", tmp_path / "s", check=False)
    assert p.returncode == 2 and "ANNOTATIONS file does not exist" in p.stderr
    p = run_cli("split", SAMPLE / "annotations" / "vindr_cxr_annotations.csv", "--meta",
                base / "anon" / "manifest.parquet", "--test-size", "0.3", "-o", tmp_path / "s", check=False)
    assert p.returncode == 2 and "--linkage" in p.stderr


def _kaggle_form(path, image_ids, first_two, class_id=True):
    """A Kaggle-form (or, without class_id, PhysioNet-form) box file: the first two images get
    the given (name, id) rows, every other image a No finding row per reader."""
    head = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max" if class_id else \
        "image_id,class_name,rad_id,x_min,y_min,x_max,y_max"
    lines = [head]
    for i, image_id in enumerate(image_ids):
        name, cid = first_two[i] if i < 2 else ("No finding", 14)
        box = "" if name == "No finding" else "1,1,5,5"
        box = box or ",,,"
        for r in ("R1", "R2"):
            lines.append(f"{image_id},{name},{cid},{r},{box}" if class_id else f"{image_id},{name},{r},{box}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lower_case_and_non_kaggle_class_give_a_clear_result_and_release_never_crashes(pipeline, tmp_path):
    """Regression: a lower-case VinDr label and "Clavicle fracture" in a Kaggle-form file passed
    split and then crashed release (tuple.index, exit 2)."""
    base, _ = pipeline
    ids = pd.read_csv(base / "split" / "split.csv", dtype=str)["image_id"].tolist()
    ann = _kaggle_form(tmp_path / "train.csv", ids, [("aortic enlargement", 0), ("Clavicle fracture", 14)])
    meta = base / "anon" / "manifest.parquet"
    split, rel = tmp_path / "split", tmp_path / "rel"
    strict = run_cli("split", ann, "--meta", meta, "--test-size", "0.3", "--unit", "patients", "--strict",
                     "-o", tmp_path / "strict", check=False)
    assert strict.returncode == 1                      # bad rows are findings, listed by line
    # the row's own class text is not shown (a class column may hold a name: annotations/badrows.quote);
    # "Clavicle fracture" is no class of vinbigdata, so it is masked, and its line is still named
    assert "line 4: unknown class <value>; label set vinbigdata allows: Aortic enlargement" in strict.stderr
    assert "Clavicle" not in strict.stderr
    assert "Traceback" not in strict.stderr and "tuple.index" not in strict.stderr
    run_cli("split", ann, "--meta", meta, "--test-size", "0.3", "--unit", "patients", "-o", split)
    report = json.loads((split / "split_report.json").read_text())
    assert [r["line"] for r in report["bad_rows"]["rows"]] == [4, 5]      # both readers' Clavicle rows
    assert all("allows:" in r["reason"] and "Pulmonary fibrosis" in r["reason"] for r in report["bad_rows"]["rows"])
    assert report["algorithm"]["label_set"]["name"] == "vinbigdata"
    handed = pd.read_csv(split / "annotations.csv", dtype=str)
    assert "Aortic enlargement" in set(handed["class_name"]) and "aortic enlargement" not in set(handed["class_name"])
    p = run_cli("release", base / "anon", "--split", split, "-o", rel, check=False)
    assert p.returncode == 0, p.stderr
    both = pd.concat([pd.read_csv(rel / "annotations" / f"kaggle_{s}.csv", dtype=str) for s in ("train", "test")])
    assert set(both["class_name"]) == {"Aortic enlargement", "No finding"}
    assert set(both.loc[both["class_name"] == "Aortic enlargement", "class_id"]) == {"0"}
    assert json.loads((rel / "labels.json").read_text())["label_set"] == "vinbigdata"
    assert run_cli("validate", rel, "--no-hash", check=False).returncode == 0


def test_physionet_local_labels_release_with_their_own_ids(pipeline, tmp_path):
    """Without class_id the PhysioNet vocabulary applies: Clavicle fracture is a class, and the
    release's class ids (COCO, Kaggle-form CSV) are positions in that set, recorded in labels.json."""
    base, _ = pipeline
    ids = pd.read_csv(base / "split" / "split.csv", dtype=str)["image_id"].tolist()
    ann = _kaggle_form(tmp_path / "local.csv", ids, [("Clavicle fracture", None), ("rib  FRACTURE", None)],
                       class_id=False)
    split, rel = tmp_path / "split", tmp_path / "rel"
    run_cli("split", ann, "--meta", base / "anon" / "manifest.parquet", "--test-size", "0.3", "--unit", "patients",
            "-o", split)
    assert json.loads((split / "split_report.json").read_text())["bad_rows"]["count"] == 0
    run_cli("release", base / "anon", "--split", split, "-o", rel)
    doc = json.loads((rel / "labels.json").read_text())
    assert doc["label_set"] == "vindr-cxr"
    names = {c["id"]: c["name"] for c in doc["classes"]}
    coco = [json.loads((rel / "annotations" / f"coco_{s}.json").read_text()) for s in ("train", "test")]
    used = {names[a["category_id"]] for c in coco for a in c["annotations"]}
    assert used == {"Clavicle fracture", "Rib fracture"}                # canonical spelling, ids of vindr-cxr
    assert run_cli("validate", rel, "--no-hash", check=False).returncode == 0


def test_labels_option_is_used_and_recorded(pipeline, tmp_path):
    """--labels FILE (a TOML set in the schemas/labels form) at split is recorded and used by release;
    a name outside it is a bad row naming the file's classes; validate --labels checks against it."""
    base, _ = pipeline
    ids = pd.read_csv(base / "split" / "split.csv", dtype=str)["image_id"].tolist()
    toml = tmp_path / "mine.toml"
    toml.write_text('name = "mine"\nsource = "this test"\nclasses = ["Lesion", "No finding"]\n')
    ann = _kaggle_form(tmp_path / "mine.csv", ids, [("lesion", None), ("Nodule/Mass", None)], class_id=False)
    split, rel = tmp_path / "split", tmp_path / "rel"
    run_cli("split", ann, "--meta", base / "anon" / "manifest.parquet", "--test-size", "0.3", "--unit", "patients",
            "--labels", toml, "-o", split)
    report = json.loads((split / "split_report.json").read_text())
    assert {r["reason"] for r in report["bad_rows"]["rows"]} == {      # the row's own value masked
        "unknown class <value>; label set mine allows: Lesion, No finding"}
    run_cli("release", base / "anon", "--split", split, "-o", rel)
    doc = json.loads((rel / "labels.json").read_text())
    assert doc["label_set"] == "mine" and [c["name"] for c in doc["classes"]] == ["Lesion", "No finding"]
    assert run_cli("validate", rel, "--no-hash", check=False).returncode == 0
    p = run_cli("validate", rel, "--no-hash", "--labels", "vindr-spinexr", check=False)
    assert p.returncode == 1 and "unknown-class" in p.stdout
    p = run_cli("release", base / "anon", "--split", split, "-o", tmp_path / "x", "--labels", tmp_path / "no.toml",
                check=False)
    assert p.returncode == 2 and "--labels" in p.stderr and "Traceback" not in p.stderr
