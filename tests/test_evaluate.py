"""``vindr evaluate`` as a library: ground-truth forms, the No finding convention, reader
fusion, both prediction forms, malformed rows by line number, JSON and table output."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from vindr_cli.evaluate import BadRowsError, EvalInputError, evaluate, read_ground_truth, render, to_json

REPO = Path(__file__).resolve().parent.parent
ANN = REPO / "sample_dicoms" / "annotations"
CXR_HEADER = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
BOX_HEADER = ["image_id", "class_id", "score", "x_min", "y_min", "x_max", "y_max"]


def write(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def kaggle(path: Path, rows: dict[str, str]) -> Path:
    return write(path, ["image_id", "PredictionString"], rows.items())


@pytest.fixture
def gt(tmp_path: Path) -> Path:
    """normal: three readers say No finding; sick: three readers box one nodule, one reader an effusion."""
    return write(tmp_path / "gt.csv", CXR_HEADER, [
        ["normal", "No finding", 14, "R1", "", "", "", ""],
        ["normal", "No finding", 14, "R2", "", "", "", ""],
        ["normal", "No finding", 14, "R3", "", "", "", ""],
        ["sick", "Nodule/Mass", 8, "R1", 100, 100, 140, 140],
        ["sick", "Nodule/Mass", 8, "R2", 102, 98, 142, 138],
        ["sick", "Nodule/Mass", 8, "R3", 98, 101, 139, 142],
        ["sick", "Pleural effusion", 10, "R2", 300, 400, 500, 600],
    ])


def test_no_finding_is_one_box_per_image_and_a_perfect_prediction_scores_1(tmp_path, gt):
    pred = kaggle(tmp_path / "sub.csv", {"normal": "14 1 0 0 1 1", "sick": ""})
    r = evaluate(gt, pred)
    nf = r.per_class["No finding"]
    assert (nf["ap"], nf["n_gt"], nf["n_pred"]) == (1.0, 1, 1)  # one box per image, not one per reader
    assert r.per_class["Nodule/Mass"] == {"ap": 0.0, "n_gt": 3, "n_pred": 0}  # GT, no prediction: 0
    assert r.per_class["Atelectasis"]["ap"] is None  # no GT: not in the mean
    assert r.map == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert r.map_without_no_finding == 0.0
    g, _ = read_ground_truth(gt)
    assert g.images == ["normal", "sick"] and len(g.image) == 5


def test_every_reader_box_is_ground_truth_unless_fused(tmp_path, gt):
    pred = kaggle(tmp_path / "sub.csv", {"normal": "14 0.9 0 0 1 1",
                                         "sick": "8 0.8 100 100 140 140 10 0.7 300 400 500 600"})
    r = evaluate(gt, pred)
    assert r.per_class["Nodule/Mass"]["n_gt"] == 3
    assert r.per_class["Nodule/Mass"]["ap"] == pytest.approx(1 / 3)  # one box found of three readers'
    f = evaluate(gt, pred, fuse_readers=True)
    assert f.per_class["Nodule/Mass"]["n_gt"] == 1
    assert f.per_class["Nodule/Mass"]["ap"] == 1.0
    assert f.map == 1.0 and f.fuse_readers
    g, _ = read_ground_truth(gt, fuse_readers=True)
    nodule = g.boxes[g.cls == 8]
    assert nodule.tolist() == [[100.0, 99.66666666666667, 140.33333333333334, 140.0]]  # plain mean


def test_fusion_keeps_separate_clusters(tmp_path):
    gt = write(tmp_path / "gt.csv", CXR_HEADER, [
        ["a", "Nodule/Mass", 8, "R1", 0, 0, 10, 10],
        ["a", "Nodule/Mass", 8, "R2", 0, 0, 10, 4],      # IoU .4 with R1: joins (>=)
        ["a", "Nodule/Mass", 8, "R3", 50, 50, 60, 60],   # elsewhere: its own box
        ["a", "Calcification", 2, "R3", 0, 0, 10, 10],   # another class is never fused in
    ])
    g, _ = read_ground_truth(gt, fuse_readers=True)
    assert sorted(map(tuple, g.boxes[g.cls == 8].tolist())) == [(0, 0, 10, 7), (50, 50, 60, 60)]
    assert g.boxes[g.cls == 2].tolist() == [[0, 0, 10, 10]]


def test_both_prediction_forms_agree(tmp_path, gt):
    sub = kaggle(tmp_path / "sub.csv", {"normal": "14 0.3 0 0 1 1 8 0.6 100 100 140 140",
                                        "sick": "8 0.9 101 99 141 139 8 0.2 300 400 500 600 14 0.1 0 0 1 1"})
    rows = write(tmp_path / "rows.csv", BOX_HEADER, [
        ["normal", 14, 0.3, 0, 0, 1, 1], ["normal", 8, 0.6, 100, 100, 140, 140],
        ["sick", 8, 0.9, 101, 99, 141, 139], ["sick", 8, 0.2, 300, 400, 500, 600], ["sick", 14, 0.1, 0, 0, 1, 1],
    ])
    named = write(tmp_path / "named.csv", ["image_id", "class_name", "score", "xmin", "ymin", "xmax", "ymax"], [
        ["normal", "No finding", 0.3, "", "", "", ""],  # a No finding row without a box is (0, 0, 1, 1)
        ["normal", "nodule/mass", 0.6, 100, 100, 140, 140],
        ["sick", "Nodule/Mass", 0.9, 101, 99, 141, 139], ["sick", "Nodule/Mass", 0.2, 300, 400, 500, 600],
        ["sick", "No finding", 0.1, 0, 0, 1, 1],
    ])
    a, b, c = (evaluate(gt, p) for p in (sub, rows, named))
    assert a.pred_format == "kaggle" and b.pred_format == "boxes"
    assert a.per_class == b.per_class == c.per_class
    assert not a.bad_rows and not b.bad_rows and not c.bad_rows
    # hand: nodule ranked .9 TP, .6 FP (normal image has no nodule), .2 FP -> AP 1/3 of 3 GT
    assert a.per_class["Nodule/Mass"]["ap"] == pytest.approx(1 / 3)
    # No finding: .3 TP on normal, .1 FP on sick -> AP 1
    assert a.per_class["No finding"]["ap"] == 1.0


def test_prediction_on_an_image_without_that_class_is_a_false_positive(tmp_path, gt):
    pred = kaggle(tmp_path / "sub.csv", {"normal": "10 0.9 300 400 500 600", "sick": "10 0.5 300 400 500 600"})
    assert evaluate(gt, pred).per_class["Pleural effusion"]["ap"] == pytest.approx(0.5)


def test_malformed_rows_reported_by_line(tmp_path, gt):
    pred = tmp_path / "sub.csv"
    pred.write_text(
        "image_id,PredictionString\n"                    # 1
        "normal,14 1 0 0 1 1 8\n"                        # 2 odd tokens
        "\n"                                             # 3 blank, skipped
        "sick,8 0.5 100 100 140 140 99 0.5 0 0 1 1\n"    # 4 unknown class in box 2 -> whole row out
        "sick,8 nan 100 100 140 140\n"                   # 5 repeated image (line 4 named it first)
        "ghost,8 0.5 100 100 140 140\n"                  # 6 not in the ground truth
        "normal,14 1 0 0 1 1\n"                          # 7 repeated: a bad row still names its image
    )
    r = evaluate(gt, pred)
    assert [(b.source, b.line) for b in r.bad_rows] == [("pred", n) for n in (2, 4, 5, 6, 7)]
    reasons = [b.reason for b in r.bad_rows]
    assert "7 tokens" in reasons[0] and "multiple of 6" in reasons[0]
    assert reasons[1].startswith("box 2:") and "unknown class id '99'" in reasons[1]
    assert "repeated" in reasons[2] and "line 4" in reasons[2]
    assert "not in the ground truth" in reasons[3]
    assert reasons[4] == "image_id repeated (first on line 2)"
    assert r.n_predictions == 0 and r.map == 0.0
    with pytest.raises(BadRowsError) as exc:
        evaluate(gt, pred, strict=True)
    assert len(exc.value.bad_rows) == 5 and "line 2" in str(exc.value)


def test_malformed_box_rows(tmp_path, gt):
    pred = write(tmp_path / "rows.csv", BOX_HEADER, [
        ["sick", 8, "nan", 100, 100, 140, 140],     # 2
        ["sick", 8, 0.5, 140, 100, 100, 140],       # 3 inverted
        ["sick", 8, "inf", 100, 100, 140, 140],     # 4
        ["sick", 8, 1.7, 100, 100, 140, 140],       # 5 fine: scores are any finite float
        ["sick", 8, -3, 100, 100, 140, 140],        # 6 fine
        ["sick", "Nodule", 0.5, 100, 100, 140, 140],  # 7 unknown class (not an integer id)
        ["sick", 15, 0.5, 100, 100, 140, 140],      # 8 id out of range
        ["sick", 8, 0.5, 100, 100, "", 140],        # 9 missing coordinate
        ["sick", 8, 0.5, 100, 100, 140],            # 10 short row
        ["", 8, 0.5, 100, 100, 140, 140],           # 11 no image
    ])
    r = evaluate(gt, pred)
    got = {b.line: b.reason for b in r.bad_rows}
    assert sorted(got) == [2, 3, 4, 7, 8, 9, 10, 11]
    assert "score is nan" in got[2] and "inverted box" in got[3] and "score is inf" in got[4]
    assert "unknown class id" in got[7] and "unknown class id" in got[8]
    assert "x_max is empty" in got[9] and "6 fields" in got[10] and "empty image_id" in got[11]
    assert r.per_class["Nodule/Mass"]["n_pred"] == 2


def test_class_id_and_name_must_agree(tmp_path, gt):
    pred = write(tmp_path / "rows.csv", ["image_id", "class_id", "class_name", "score", "x_min", "y_min", "x_max",
                                         "y_max"],
                 [["sick", 8, "Nodule/Mass", 0.5, 100, 100, 140, 140],
                  ["sick", 7, "Nodule/Mass", 0.5, 100, 100, 140, 140]])
    r = evaluate(gt, pred)
    assert [(b.line, b.reason) for b in r.bad_rows] == [(3, "class id 7 is 'Lung Opacity', not 'Nodule/Mass'")]


def test_bad_ground_truth_rows(tmp_path):
    gt = write(tmp_path / "gt.csv", CXR_HEADER, [
        ["a", "Nodule/Mass", 8, "R1", 0, 0, 10, 10],
        ["a", "Nodule/Mass", 8, "R2", "", "", "", ""],   # a finding without a box
        ["a", "Unicorn", 8, "R3", 0, 0, 10, 10],          # unknown name
        ["b", "No finding", 14, "R1", "", "", "", ""],
    ])
    pred = kaggle(tmp_path / "sub.csv", {"a": "8 0.5 0 0 10 10", "b": "14 1 0 0 1 1"})
    r = evaluate(gt, pred)
    assert [(b.source, b.line) for b in r.bad_rows] == [("gt", 3), ("gt", 4)]
    assert r.map == 1.0 and r.n_images == 2
    with pytest.raises(BadRowsError):
        evaluate(gt, pred, strict=True)


def test_spinexr_ground_truth(tmp_path):
    gt = ANN / "vindr_spinexr_annotations.csv"
    g, bad = read_ground_truth(gt)
    with open(gt, newline="") as f:
        raw = list(csv.DictReader(f))
    assert g.format == "spinexr" and not bad and len(g.images) == len({r["image_id"] for r in raw})
    rows = []
    for row in raw:
        box = (0, 0, 1, 1) if row["lesion_type"] == "No finding" else (row["xmin"], row["ymin"], row["xmax"],
                                                                      row["ymax"])
        rows.append([row["image_id"], row["lesion_type"], 0.8, *box])
    pred = write(tmp_path / "rows.csv", ["image_id", "class_name", "score", "x_min", "y_min", "x_max", "y_max"], rows)
    r = evaluate(gt, pred)
    assert r.map == 1.0
    # expectations from the file (regenerating sample_dicoms/ changes the boxes): n_gt per
    # class is its rows (No finding: one per image with such a row); classes without a
    # ground-truth box have no AP
    for name, stats in r.per_class.items():
        if name == "No finding":
            assert stats["n_gt"] == len({x["image_id"] for x in raw if x["lesion_type"] == name}) >= 1
            continue
        n = sum(x["lesion_type"] == name for x in raw)
        assert stats["n_gt"] == n, name
        assert (stats["ap"] is None) == (n == 0), name
    assert any(stats["ap"] is None for stats in r.per_class.values())


def test_sample_annotations_reader_boxes_as_predictions(tmp_path):
    gt = ANN / "vindr_cxr_annotations.csv"
    g, bad = read_ground_truth(gt)
    assert not bad
    rows = [[img, int(c), 1.0 - i / 1000, *b] for i, (img, c, b) in enumerate(zip(g.image, g.cls, g.boxes.tolist()))]
    pred = write(tmp_path / "rows.csv", BOX_HEADER, rows)
    r = evaluate(gt, pred, coco=True)
    assert r.map == 1.0 and r.coco_map == pytest.approx(1.0)
    with open(gt, encoding="utf-8", newline="") as f:
        no_finding = {row["image_id"] for row in csv.DictReader(f) if row["class_id"] == "14"}
    assert r.per_class["No finding"]["n_gt"] == len(no_finding)  # one per image (18 rows, 7 images today)
    fused = evaluate(gt, pred, fuse_readers=True)
    assert fused.n_gt_boxes < r.n_gt_boxes and fused.map < 1.0  # extra reader boxes become duplicates


def test_iou_threshold_is_strict(tmp_path):
    gt = write(tmp_path / "gt.csv", CXR_HEADER, [["a", "Nodule/Mass", 8, "R1", 0, 0, 10, 10]])
    pred = kaggle(tmp_path / "sub.csv", {"a": "8 0.5 0 0 10 4"})  # IoU exactly 0.4
    assert evaluate(gt, pred).map == 0.0
    assert evaluate(gt, pred, iou=0.39).map == 1.0


def test_json_and_table(tmp_path, gt):
    pred = kaggle(tmp_path / "sub.csv", {"normal": "14 1 0 0 1 1", "sick": "8 0.5 100 100 140 140",
                                         "ghost": "3 0.5 0 0 1 1"})
    r = evaluate(gt, pred, coco=True)
    doc = json.loads(to_json(r))
    assert doc["map"] == r.map and doc["per_class"]["No finding"] == 1.0
    assert doc["per_class"]["Atelectasis"] is None
    assert doc["classes"]["Nodule/Mass"] == {"id": 8, "ap": pytest.approx(1 / 3), "n_gt": 3, "n_pred": 1,
                                             "coco_ap": pytest.approx(34 / 101)}  # recall 1/3 reaches points 0 .. .33
    assert doc["bad_rows"] == [{"source": "pred", "line": 4, "reason": "image_id is not in the ground truth"}]
    buf = io.StringIO()
    render(r, Console(file=buf, width=140))
    out = buf.getvalue()
    assert "Nodule/Mass" in out and "mAP" in out and "AP@[.5:.95]" in out and "malformed" in out


def test_unreadable_inputs(tmp_path, gt):
    with pytest.raises(EvalInputError):
        evaluate(tmp_path / "missing.csv", gt)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EvalInputError):
        evaluate(gt, tmp_path / "empty.csv")
    odd = write(tmp_path / "odd.csv", ["image_id", "label"], [["a", "b"]])
    with pytest.raises(EvalInputError):
        evaluate(gt, odd)
    with pytest.raises(EvalInputError):
        evaluate(odd, gt)
    with pytest.raises(EvalInputError):
        evaluate(gt, gt, iou=1.5)


def test_labels_option_replaces_the_vocabulary(tmp_path):
    """A TOML label set: ids are positions in it, names outside it are bad rows naming it."""
    toml = tmp_path / "two.toml"
    toml.write_text('name = "two"\nsource = "test"\nclasses = ["Lesion", "No finding"]\n')
    gt = write(tmp_path / "gt.csv", ["image_id", "class_name", "rad_id", "x_min", "y_min", "x_max", "y_max"],
               [["a", "Lesion", "R1", 0, 0, 10, 10], ["b", "No finding", "R1", "", "", "", ""],
                ["b", "Nodule/Mass", "R2", 0, 0, 10, 10]])
    pred = kaggle(tmp_path / "sub.csv", {"a": "0 0.9 0 0 10 10", "b": "1 0.8 0 0 1 1 8 0.5 0 0 1 1"})
    r = evaluate(gt, pred, labels=toml)
    assert list(r.per_class) == ["Lesion", "No finding"]
    # row b is all or nothing: its unknown id 8 rejects its No finding box too
    assert r.per_class["Lesion"]["ap"] == 1.0 and r.per_class["No finding"] == {"ap": 0.0, "n_gt": 1, "n_pred": 0}
    assert r.class_ids == {"Lesion": 0, "No finding": 1}
    assert [(b.source, b.line) for b in r.bad_rows] == [("gt", 4), ("pred", 3)]
    assert "label set two allows: Lesion, No finding" in r.bad_rows[0].reason
    assert "unknown class id '8'" in r.bad_rows[1].reason


def test_cli_exit_codes(tmp_path, gt):
    from helpers import run_cli

    good = kaggle(tmp_path / "sub.csv", {"normal": "14 1 0 0 1 1", "sick": ""})
    p = run_cli("evaluate", "--gt", gt, "--pred", good, "--json", "--labels", "vinbigdata")
    assert json.loads(p.stdout)["per_class"]["No finding"] == 1.0
    bad = kaggle(tmp_path / "bad.csv", {"normal": "14 1 0 0 1", "sick": ""})
    p = run_cli("evaluate", "--gt", gt, "--pred", bad, "--strict", check=False)
    assert p.returncode == 1 and "pred line 2: 5 tokens" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("evaluate", "--gt", tmp_path / "missing.csv", "--pred", good, check=False)
    assert p.returncode == 2 and "not found" in p.stderr
    p = run_cli("evaluate", "--gt", gt, "--pred", good, "--labels", "no-such-set", check=False)
    assert p.returncode == 2 and "built in: vinbigdata" in p.stderr
