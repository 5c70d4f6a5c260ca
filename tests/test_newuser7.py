"""New-user walk 7: `vindr baseline` writes the test split's predictions in the form `vindr
evaluate --pred` reads (the chain baseline -> evaluate), and `vindr select` refuses to replace
a SELECTION made with another recipe unless told to."""
from __future__ import annotations

import csv
import json
import os
import shutil
import textwrap

import numpy as np
import pytest

from helpers import run_cli  # noqa: E402


# --- (a) baseline -> evaluate ---------------------------------------------------------------

def _test_samples(release):
    pytest.importorskip("torch")
    from vindr_cli.baseline.release_data import release_samples
    _, test, classes, _ = release_samples(release, cache=release.parent / "unused", size=128)
    return test, classes


def test_predictions_equal_to_the_ground_truth_score_one_in_vindr_evaluate(pipeline, tmp_path):
    """Boxes the model would output in decoded-image pixels (the COCO boxes), written by the
    baseline's writer, are the release's DICOM-pixel boxes with the label set's class ids:
    `vindr evaluate` against kaggle_test.csv gives AP 1 for every finding class. A writer that
    kept decoded pixels (the demo's images are scaled 3.2x) or the baseline's own class
    index would score 0 here."""
    from vindr_cli.baseline.release_data import release_submission
    from vindr_cli.baseline.submission import write_submission
    from vindr_cli.baseline.train import Prediction
    from vindr_cli.evaluate import evaluate

    _, release = pipeline
    test, classes = _test_samples(release)
    assert any(s.scale != (1.0, 1.0) for s in test)              # decoded images are resized
    assert any(len(s.labels) for s in test)                      # something to find
    preds = [Prediction(s.boxes.copy(), np.ones(len(s.labels), np.float32), s.labels.copy(),
                        abnormal_score=float(s.abnormal)) for s in test]
    spec, args = release_submission(release, classes)
    out = write_submission(tmp_path / "test_predictions.csv", test, preds, spec)
    assert "kaggle_test.csv" in args and "labels.json" in args
    res = evaluate(release / "annotations" / "kaggle_test.csv", out, labels=release / "labels.json")
    assert not res.bad_rows
    finding = {n: e["ap"] for n, e in res.per_class.items() if e["n_gt"] and n != "No finding"}
    assert finding and all(ap == pytest.approx(1.0) for ap in finding.values()), finding
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image_id"] for r in rows] == [s.image_id for s in test]
    normal = [r for r, s in zip(rows, test) if not s.abnormal]
    assert normal and all(r["PredictionString"] == "14 1 0 0 1 1" for r in normal)   # VinBigData's form


def test_baseline_writes_test_predictions_that_vindr_evaluate_reads(pipeline, tmp_path):
    pytest.importorskip("torch")
    _, release = pipeline
    out = tmp_path / "bl"
    p = run_cli("baseline", release, "-o", out, "--size", "64", "--epochs", "1", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    sub = out / "test_predictions.csv"
    assert sub.is_file() and not list(out.glob(".test_predictions.csv.*"))    # no temp left
    assert "vindr evaluate" in p.stdout and "test_predictions.csv" in p.stdout
    rep = json.loads((out / "report.json").read_text())
    e = run_cli("evaluate", "--gt", release / "annotations" / "kaggle_test.csv", "--pred", sub,
                "--labels", release / "labels.json", "--json", "--strict", check=False)
    assert e.returncode == 0, e.stdout + e.stderr
    doc = json.loads(e.stdout)
    assert doc["images"] == rep["n_test"] and not doc["bad_rows"] and doc["map"] is not None
    with open(sub, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == rep["n_test"] and all(r["PredictionString"].endswith(" 0 0 1 1") for r in rows)
    # the README's pandas lines for these files run as written
    import re

    from conftest import REPO
    block = re.search(r"In pandas \(names as in \"Your own export\"\):\n\n  ```python\n(.*?)  ```",
                      (REPO / "README.md").read_text(), re.S).group(1)
    (tmp_path / "release").symlink_to(release)
    (tmp_path / "baseline").symlink_to(out)
    names: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(textwrap.dedent(block), "README.md", "exec"), names)
    finally:
        os.chdir(cwd)
    assert len(names["sub"]) == rep["n_test"] and len(names["boxes"]) >= rep["n_test"]
    assert all(len(b) == 6 + 1 for b in names["boxes"]) and set(names["gt"]["image_id"]) <= set(names["im"]["image_id"])
    images = {r["image_id"]: r for r in csv.DictReader(open(release / "images.csv", newline=""))}
    for r in rows:                           # boxes in DICOM pixels: inside the DICOM image
        v = r["PredictionString"].split()
        cols, rws = float(images[r["image_id"]]["columns"]), float(images[r["image_id"]]["rows"])
        for i in range(0, len(v), 6):
            x0, y0, x1, y1 = map(float, v[i + 2:i + 6])
            assert 0 <= x0 <= x1 <= cols + 0.01 and 0 <= y0 <= y1 <= rws + 0.01


# --- (b) select into a SELECTION made with another recipe -----------------------------------

def _tree_hashes(folder):
    from helpers import tree_hashes
    return tree_hashes(folder)


def test_select_refuses_to_replace_another_recipes_selection_unless_replace(pipeline, tmp_path):
    """`vindr select` into a SELECTION made with another recipe replaced its dicom/ and
    worklist.csv — possibly in the annotators' hands — without a word. Now exit 2, one line
    naming --replace, nothing changed; --replace replaces; the same request re-runs freely."""
    base, _ = pipeline
    sel = tmp_path / "sel"
    first = run_cli("select", base / "anon", "-o", sel, "--recipe", "vindr-cxr", "-j", "1", check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    before = _tree_hashes(sel)
    recipe = tmp_path / "any-cr.toml"
    recipe.write_text('name = "any-cr"\n[criteria]\nmodality = ["CR", "DX"]\n')
    for extra in (["--recipe", recipe], ["--recipe", "vindr-cxr", "--seed", "7"]):
        p = run_cli("select", base / "anon", "-o", sel, *extra, "-j", "1", check=False)
        assert p.returncode == 2, p.stdout + p.stderr
        line = p.stderr.strip().splitlines()
        assert len(line) == 1 and "--replace" in line[0] and "Traceback" not in p.stderr
        assert ("another recipe (recipe differs)" in line[0]) == (extra[1] == recipe)
        assert "any-cr" not in p.stderr                              # the old record is never quoted
        assert _tree_hashes(sel) == before                           # nothing replaced
    again = run_cli("select", base / "anon", "-o", sel, "--recipe", "vindr-cxr", "-j", "1", check=False)
    assert again.returncode == 0, again.stderr                      # the same request: a plain re-run
    p = run_cli("select", base / "anon", "-o", sel, "--recipe", recipe, "-j", "1", "--replace", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads((sel / "selection.json").read_text())["recipe"] == "any-cr"


def test_select_refuses_an_unreadable_record_of_what_made_the_selection(pipeline, tmp_path):
    base, _ = pipeline
    sel = tmp_path / "sel"
    run_cli("select", base / "anon", "-o", sel, "-j", "1")
    (sel / "selection.json").write_text('{"recipe": ')                        # truncated by hand
    p = run_cli("select", base / "anon", "-o", sel, "-j", "1", check=False)
    assert p.returncode == 2 and "cannot be read" in p.stderr and "--replace" in p.stderr
    p = run_cli("select", base / "anon", "-o", sel, "-j", "1", "--replace", check=False)
    assert p.returncode == 0, p.stderr
    assert json.loads((sel / "selection.json").read_text())["recipe"] == "vindr-cxr"


# --- Ctrl-C / SIGTERM while a worker holds a long item ---------------------------------------

def _setup(config):
    return config


def _mark_then_hang(folder: str, item):
    """``hang``: notes that it started, then opens a FIFO no one writes (blocks for ever), as a
    worker reading text in every frame of a long cine loop seems to; other items return."""
    import os
    from pathlib import Path
    if item == "hang":
        (Path(folder) / "started").touch()
        with open(Path(folder) / "fifo", "rb") as f:
            return f.read()
    return item, os.getpid()


def _children_alive() -> list[int]:
    import os
    from pathlib import Path
    me, out = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            state, ppid = rest.rsplit(") ", 1)[1].split()[:2]
        except (OSError, ValueError, IndexError):
            continue
        if int(ppid) == me and state != "Z":
            out.append(int(pid))
    return out


def test_a_stopped_run_kills_its_busy_workers_instead_of_waiting_for_them(tmp_path):
    """SIGTERM (handled as Ctrl-C) on `vindr anonymize --allow-burned-in` of deid-data printed
    nothing for 59 s, until killed by hand: the pool's shutdown waited for the items in flight
    (OCR of cine loops on a busy machine), whose results the stopping driver would never journal anyway. Now the
    driver's early end kills the workers: closing the run returns although an item never ends."""
    import os
    import threading
    import time

    from vindr_cli.runner.executor import ProcessExecutor

    os.mkfifo(tmp_path / "fifo")
    gen = ProcessExecutor(2, in_flight=2).run(_mark_then_hang, [1, "hang", 2, 3, 4, 5], setup=_setup,
                                             config=str(tmp_path))
    first = next(gen)
    assert first[0] in (1, 2, 3, 4, 5)
    for _ in range(600):                                     # the hung item is in a worker
        if (tmp_path / "started").exists():
            break
        time.sleep(0.1)
    assert (tmp_path / "started").exists()
    assert _children_alive()
    closer = threading.Thread(target=gen.close, daemon=True)    # what Ctrl-C does to the stage's loop
    closer.start()
    closer.join(120)                     # not a timing bound: before, close() never returned
    assert not closer.is_alive(), "closing the run waits for an item that never ends"
    for _ in range(100):
        if not _children_alive():
            break
        time.sleep(0.1)
    assert _children_alive() == []       # no worker left behind


def test_evaluate_reads_a_releases_ground_truth_with_the_releases_label_set(pipeline, tmp_path):
    """`--gt RELEASE/annotations/annotations_test.csv` (the VinDr layout, no class_id) was read
    with the form's default set, vindr-cxr, while a submission's ids are the release's
    (vinbigdata) positions: a perfect submission scored 0, silently. A ground truth in a
    release's annotations/ now takes the release's labels.json; both test files agree."""
    from vindr_cli.baseline.release_data import release_submission
    from vindr_cli.baseline.submission import write_submission
    from vindr_cli.baseline.train import Prediction
    from vindr_cli.evaluate import evaluate

    _, release = pipeline
    test, classes = _test_samples(release)
    preds = [Prediction(s.boxes.copy(), np.ones(len(s.labels), np.float32), s.labels.copy(),
                        abnormal_score=float(s.abnormal)) for s in test]
    sub = write_submission(tmp_path / "sub.csv", test, preds, release_submission(release, classes)[0])
    got = {}
    for name in ("annotations_test.csv", "kaggle_test.csv"):
        res = evaluate(release / "annotations" / name, sub)
        assert res.labels_from == "the release's labels.json" and res.label_set.name == "vinbigdata"
        got[name] = res.map_without_no_finding
    assert got["annotations_test.csv"] == pytest.approx(1.0) and got["kaggle_test.csv"] == pytest.approx(1.0)
    outside = tmp_path / "gt.csv"                              # outside a release: the form's default, as before
    shutil.copy(release / "annotations" / "annotations_test.csv", outside)
    res = evaluate(outside, sub)
    assert res.label_set.name == "vindr-cxr" and res.labels_from == "the ground truth's form"


def test_decode_says_why_it_counts_more_images_than_inputs(pipeline, tmp_path):
    """`ok (images) 38` over `inputs 36` was unexplained: the sample holds multi-frame files."""
    import re

    base, _ = pipeline
    p = run_cli("decode", base / "anon", tmp_path / "img", "--size", "32", "-j", "1")
    ok = int(re.search(r"ok \(images\)\D+(\d+)", p.stdout).group(1))
    inputs = int(re.search(r"inputs\D+(\d+)", p.stdout).group(1))
    assert ok > inputs and "each frame of a multi-frame file is an image of its own" in p.stdout


def test_the_datasheet_says_what_its_counts_and_codes_are_and_how_to_score(pipeline):
    """A custodian read the `annotations` row of "Left out, and why" as images (it counts
    annotation rows) and met `U` under Laterality unexplained; the scoring line lacked the
    release's label set and did not say where baseline's predictions go."""
    _, release = pipeline
    text = (release / "README.md").read_text()
    assert "annotation rows (not images) for `annotations`" in text
    assert "### Laterality (L left, R right, B both, U unpaired" in text
    assert "--gt annotations/kaggle_test.csv --labels labels.json" in text and "DIR/test_predictions.csv" in text


def test_split_says_what_ld_lpd_ed_measure(pipeline, tmp_path):
    from conftest import SAMPLE
    base, _ = pipeline
    p = run_cli("split", SAMPLE / "annotations" / "vindr_cxr_annotations.csv", "--meta", base / "anon" / "manifest.parquet",
                "--linkage", base / "anon.linkage.parquet", "--test-size", "0.3", "--unit", "patients", "-o", tmp_path / "s")
    assert "LPD" in p.stdout and "0 is perfect" in p.stdout
