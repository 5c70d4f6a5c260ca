"""`vindr split/release --selection` and the multi-frame policy, end to end on sample_dicoms/
plus pydicom's 15-frame `rtdose.dcm`: anonymize -> decode -> a selection.parquet written per
issue 11's contract (what `vindr select` writes) -> split -> release -> validate.

What could go wrong and is checked: an image not selected reaching the split or the release,
an annotation of one silently vanishing (every left-out row is counted, and the count is
computed here independently from the annotation file and the linkage table), a multi-frame
file silently becoming one image (first: one row, frame 0 of 15; every: 15 rows with their
own decoded frame; exclude: none), counts that stop adding up for `vindr validate`, and a
bad request (unreadable selection, disagreeing --multiframe) exiting anything but 2 with one
line."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from conftest import SAMPLE
from helpers import run_cli
from vindr_cli.release.build import MF_EXCLUDED, MF_PER_FRAME, NOT_SELECTED, ReleaseError, build_release
from vindr_cli.release.handoff import run_split
from vindr_cli.release.selection import SelectionError, frame_ids, read_selection
from vindr_cli.release.validate import validate_release

MULTI = get_testdata_file("rtdose.dcm", download=False)   # RT Dose, 15 frames of 10 x 10


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """anonymize + decode of sample_dicoms/export with rtdose.dcm added, and annotations that
    also name the multi-frame file (by its original SOP Instance UID, re-keyed by --linkage)."""
    assert MULTI is not None
    base = tmp_path_factory.mktemp("sel")
    inp = base / "export"
    shutil.copytree(SAMPLE / "export", inp)
    shutil.copy(MULTI, inp / "dose.dcm")
    keys = base / "keys"
    keys.mkdir(mode=0o700)
    run_cli("anonymize", inp, base / "anon", "--key", keys / "k", "-j", "2")
    run_cli("decode", base / "anon", base / "images", "--size", "64", "-j", "2")
    uid = pydicom.dcmread(MULTI, stop_before_pixels=True).SOPInstanceUID
    ann = (SAMPLE / "annotations" / "vindr_cxr_annotations.csv").read_text()
    ann += f"{uid},No finding,14,R1,,,,\n{uid},Nodule/Mass,8,R2,1.0,1.0,5.0,6.0\n"
    (base / "ann.csv").write_text(ann)
    manifest = pd.read_parquet(base / "anon" / "manifest.parquet")
    ok = manifest[manifest["status"] == "ok"].sort_values("image_id").reset_index(drop=True)
    # the sample export has its own multi-frame run; rtdose.dcm is the one with 15 frames
    multi = ok.loc[ok["frames"] == 15, "image_id"].tolist()
    assert len(multi) == 1
    link = pd.read_parquet(base / "anon.linkage.parquet")
    n_multi = int((ok["frames"] > 1).sum())     # rtdose.dcm and the sample's own multi-frame runs
    return {"base": base, "ok": ok, "multi": multi[0], "link": link, "n_multi": n_multi}


def _selection(world, name: str, *, multiframe: str, drop: int = 3) -> Path:
    """SELECTION/ per issue 11's contract: every ok image has a row; the ``drop`` first
    single-frame images that carry annotations are not selected (reason "view")."""
    out = world["base"] / name
    out.mkdir()
    ok = world["ok"]
    annotated = _annotated_ids(world)
    unselected = [i for i in ok["image_id"] if i in annotated and i != world["multi"]][:drop]
    sel = ~ok["image_id"].isin(unselected)
    pd.DataFrame({
        "image_id": ok["image_id"], "output": ok["output"], "sop_uid": ok["sop_uid"], "study_uid": ok["study_uid"],
        "series_uid": ok["series_uid"], "patient_id": ok["patient_id"], "modality": ok["modality"],
        "sop_class_uid": ok["sop_class_uid"], "body_part": ["CHEST" if m in ("CR", "DX") else None for m in ok["modality"]],
        "view": None, "laterality": None, "sex": "F", "age_years": 61.0,
        "rows": ok["rows"].astype(int), "columns": ok["columns"].astype(int), "frames": ok["frames"].astype(int),
        "photometric": ok["photometric"], "bits_stored": ok["bits_stored"].astype(int), "pixel_spacing": None,
        "manufacturer": None, "image_type": None, "lossy": False, "qc_flags": [[] for _ in range(len(ok))],
        "phash": None, "dup_group": None, "selected": sel,
        "reasons": [[] if s else ["view"] for s in sel],
    }).to_parquet(out / "selection.parquet")
    digest = hashlib.sha256((world["base"] / "anon" / "manifest.parquet").read_bytes()).hexdigest()
    (out / "selection.json").write_text(json.dumps({"recipe": "test-recipe", "recipe_sha256": "ab" * 32, "seed": 0,
                                                    "n": None, "multiframe": multiframe,
                                                    "anon_dir_manifest_sha256": digest}))
    (out / "recipe.toml").write_text('name = "test-recipe"\n')
    return out


def _annotated_ids(world) -> dict[str, int]:
    """Annotation rows per anonymized image_id, re-keyed here from the linkage table."""
    link = world["link"]
    link = link[link["status"] == "ok"]
    to_id = dict(zip(link["original_sop_uid"].astype(str), link["image_id"].astype(str)))
    ann = pd.read_csv(world["base"] / "ann.csv", dtype=str)
    return ann["image_id"].map(to_id).dropna().value_counts().to_dict()


def _split(world, name: str, selection: Path | None):
    out = world["base"] / name
    result, notes = run_split(world["base"] / "ann.csv", world["base"] / "anon" / "manifest.parquet", out,
                              linkage=world["base"] / "anon.linkage.parquet", test_size="0.3", unit="patients",
                              seed=1, selection=selection)
    return out, result


def _release(world, name: str, split_dir: Path, **kw):
    out = world["base"] / name
    s = build_release(world["base"] / "anon", split_dir, out, images_dir=world["base"] / "images", **kw)
    return out, s


def test_split_takes_only_selected_images_and_counts_the_rest(world):
    sel_dir = _selection(world, "sel-split", multiframe="first")
    sel = read_selection(sel_dir)
    split_dir, result = _split(world, "split-sel", sel_dir)
    _, plain = _split(world, "split-plain", None)
    ids = set(pd.read_csv(split_dir / "split.csv", dtype=str)["image_id"])
    assert ids and ids <= sel.selected
    annotated = _annotated_ids(world)
    gone = [i for i in annotated if i not in sel.selected]
    assert len(gone) == 3
    info = json.loads((split_dir / "split_report.json").read_text())["algorithm"]["selection"]
    assert info["annotation_rows_not_selected"] == sum(annotated[i] for i in gone) > 0
    assert info["annotated_images_not_selected"] == 3
    assert info["recipe"] == "test-recipe" and info["recipe_sha256"] == "ab" * 32
    assert info["not_selected_by_reason"] == {"view": 3}
    # left-out rows are counted, not reported as bad rows
    assert len(result.bad_rows) == len(plain.bad_rows)
    assert set(plain.images["image_id"]) - ids == set(gone)


def test_release_first_frame_and_datasheet(world):
    sel_dir = _selection(world, "sel-first", multiframe="first")
    split_dir, _ = _split(world, "split-first", sel_dir)
    rel, s = _release(world, "rel-first", split_dir, selection=sel_dir)
    assert validate_release(rel).findings == []
    assert [w for w in s.warnings if "review" not in w] == []   # only the "not reviewed" notice
    images = pd.read_csv(rel / "images.csv", dtype=str)
    row = images[images["image_id"] == world["multi"]]
    assert len(row) == 1 and row["frame"].iloc[0] == "0" and row["frames"].iloc[0] == "15"
    assert set(images["image_id"]) <= read_selection(sel_dir).selected
    sheet = json.loads((rel / "datasheet.json").read_text())
    assert sheet["multiframe"] == {"policy": "first", "source": "selection.json", "images": 1,
                                   "frames_released": 1, "excluded": 0, "excluded_at_split": 0}
    assert sheet["selection"]["recipe"] == "test-recipe" and sheet["excluded"]["selection"] == {"view": 3}
    # the rows vindr split --selection left out are accounted for in the release's datasheet too
    at_split = json.loads((split_dir / "split_report.json").read_text())["algorithm"]["selection"]
    assert sum(sheet["excluded"]["annotation_rows"].values()) == at_split["annotation_rows_not_selected"] > 0
    assert sheet["facts_source"] == "selection.parquet"
    assert sheet["distributions"]["sex"] == {"F": len(images)}
    assert sheet["distributions"]["age"]["60-69"] == len(images)
    readme = (rel / "README.md").read_text()
    assert "test-recipe" in readme and "Policy `first`" in readme


def test_a_hand_edited_recipe_name_is_not_quoted(world):
    """selection.json edited by hand after vindr select: a person's name as the recipe name
    (and text as its hash) reaches neither the split report nor the datasheet."""
    sel_dir = _selection(world, "sel-named", multiframe="first")
    info = json.loads((sel_dir / "selection.json").read_text())
    info.update(recipe="NGUYEN VAN AN", recipe_sha256="Dr Smith")
    (sel_dir / "selection.json").write_text(json.dumps(info))
    split_dir, _ = _split(world, "split-named", sel_dir)
    rel, _ = _release(world, "rel-named", split_dir, selection=sel_dir)
    for path in (split_dir / "split_report.json", rel / "datasheet.json", rel / "README.md"):
        text = path.read_text()
        assert "NGUYEN" not in text and "Smith" not in text, path.name
    sheet = json.loads((rel / "datasheet.json").read_text())
    assert sheet["selection"]["recipe"] == "(custom recipe)" and sheet["selection"]["recipe_sha256"] is None
    assert "(custom recipe)" in (rel / "README.md").read_text()


def test_release_every_frame_is_an_image(world):
    sel_dir = _selection(world, "sel-every", multiframe="every")
    split_dir, _ = _split(world, "split-every", sel_dir)
    rel, s = _release(world, "rel-every", split_dir, selection=sel_dir)
    rep = validate_release(rel)
    assert rep.findings == [], rep.findings
    images = pd.read_csv(rel / "images.csv", dtype=str)
    frames = images[images["image_id"].str.startswith(world["multi"])]
    assert sorted(frames["image_id"]) == sorted(f"{world['multi']}_{k}" for k in range(15))
    assert sorted(frames["frame"].astype(int)) == list(range(15))
    assert frames["dicom"].nunique() == 1 and frames["split"].nunique() == 1
    # each frame is its own decoded image, and they differ (RT dose changes frame to frame)
    digests = {(rel / p).read_bytes() for p in frames["image"]}
    assert len(digests) > 1
    # the two annotation rows of the multi-frame file name no frame: left out and counted
    assert s.dropped_rows[MF_PER_FRAME] == 2
    sheet = json.loads((rel / "datasheet.json").read_text())
    assert sheet["excluded"]["annotation_rows"][MF_PER_FRAME] == 2
    assert sheet["multiframe"]["frames_released"] == 15
    side = frames["split"].iloc[0]
    for rid in frames["image_id"]:
        assert (rel / "yolo" / "labels" / side / f"{rid}.txt").read_text() == ""
    # images.csv counts frames; the split report counts files: validate agrees with both
    assert len(images) == sum(s.images.values()) == len(pd.read_csv(rel / "split.csv")) + 14


def test_release_exclude_leaves_the_multiframe_out(world):
    sel_dir = _selection(world, "sel-excl", multiframe="first")
    split_dir, _ = _split(world, "split-excl", sel_dir)
    rel, s = _release(world, "rel-excl", split_dir, selection=sel_dir, multiframe=None)
    assert world["multi"] in set(pd.read_csv(rel / "images.csv", dtype=str)["image_id"])
    # the same split released without the selection, multi-frame files excluded by option
    rel2, s2 = _release(world, "rel-excl2", split_dir, multiframe="exclude")
    images = pd.read_csv(rel2 / "images.csv", dtype=str)
    assert not images["image_id"].str.startswith(world["multi"]).any()
    assert s2.dropped == {MF_EXCLUDED: 1} and s2.dropped_rows[MF_EXCLUDED] == 2
    assert validate_release(rel2).findings == []
    report = json.loads((rel2 / "split_report.json").read_text())
    assert sum(report["release_dropped"].values()) == 1
    sheet = json.loads((rel2 / "datasheet.json").read_text())
    assert sheet["multiframe"]["source"] == "--multiframe" and sheet["multiframe"]["excluded"] == 1
    assert sheet["selection"] is None and sheet["facts_source"] == "DICOM headers"
    # a selection that says exclude: the split already leaves the file (and its 2 rows) out
    sel_x = _selection(world, "sel-excl3", multiframe="exclude")
    split_x, result = _split(world, "split-excl3", sel_x)
    assert result.info["selection"]["multiframe_excluded"] == world["n_multi"] >= 1
    assert world["multi"] not in set(pd.read_csv(split_x / "split.csv", dtype=str)["image_id"])
    rel3, s3 = _release(world, "rel-excl3", split_x, selection=sel_x)
    sheet = json.loads((rel3 / "datasheet.json").read_text())
    assert sheet["multiframe"]["excluded_at_split"] == world["n_multi"] and sheet["multiframe"]["policy"] == "exclude"
    assert validate_release(rel3).findings == []


def test_release_selection_after_a_plain_split(world):
    """A split made before the selection: the release leaves the unselected images out,
    counts them and their annotation rows, and validate still finds the counts adding up."""
    sel_dir = _selection(world, "sel-late", multiframe="first")
    split_dir, _ = _split(world, "split-late", None)
    rel, s = _release(world, "rel-late", split_dir, selection=sel_dir)
    annotated = _annotated_ids(world)
    gone = [i for i in annotated if i not in read_selection(sel_dir).selected]
    assert s.dropped == {NOT_SELECTED: 3}
    assert s.dropped_rows[NOT_SELECTED] == sum(annotated[i] for i in gone)
    assert validate_release(rel).findings == []
    kept = pd.read_csv(rel / "split.csv", dtype=str)
    assert not set(kept["image_id"]) & set(gone)
    # a planted mismatch is still caught: drop the record of what the release left out
    report = json.loads((rel / "split_report.json").read_text())
    del report["release_dropped"]
    (rel / "split_report.json").write_text(json.dumps(report))
    assert any(f.kind == "counts" for f in validate_release(rel).findings)


def test_bad_requests_exit_2_with_one_line(world, tmp_path):
    sel_dir = _selection(world, "sel-bad", multiframe="every")
    split_dir, _ = _split(world, "split-bad", sel_dir)
    with pytest.raises(ReleaseError, match="disagrees"):
        _release(world, "rel-bad", split_dir, selection=sel_dir, multiframe="first")
    assert not (world["base"] / "rel-bad").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SelectionError, match="no selection.parquet"):
        read_selection(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "selection.parquet").write_bytes(b"PAR1 not really")
    (broken / "selection.json").write_text("{}")
    p = run_cli("release", world["base"] / "anon", "--split", split_dir, "-o", tmp_path / "r", "--selection", broken,
                check=False)
    assert p.returncode == 2 and "selection.parquet cannot be read" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    p = run_cli("split", world["base"] / "ann.csv", "--meta", world["base"] / "anon" / "manifest.parquet",
                "--test-size", "0.3", "-o", tmp_path / "s", "--selection", empty, check=False)
    assert p.returncode == 2 and "no selection.parquet" in p.stderr
    # a selection made from another state of ANON_DIR is used, with a warning
    moved = tmp_path / "moved"
    shutil.copytree(_selection(world, "sel-moved", multiframe="first"), moved)
    info = json.loads((moved / "selection.json").read_text())
    info["anon_dir_manifest_sha256"] = "0" * 64
    (moved / "selection.json").write_text(json.dumps(info))
    split_dir2, _ = _split(world, "split-moved", moved)
    p = run_cli("release", world["base"] / "anon", "--split", split_dir2, "-o", tmp_path / "r3", "--selection", moved)
    assert "another state of ANON_DIR" in p.stderr and (tmp_path / "r3" / "datasheet.json").is_file()


def test_frame_ids_policy():
    assert frame_ids("a" * 32, 1, "every") == [("a" * 32, 0)]
    assert frame_ids("a" * 32, 3, "first") == [("a" * 32, 0)]
    assert frame_ids("a" * 32, 3, "exclude") == []
    assert frame_ids("a" * 32, 3, "every") == [(f"{'a' * 32}_{k}", k) for k in range(3)]
    with pytest.raises(SelectionError):
        frame_ids("a" * 32, 3, "all")
