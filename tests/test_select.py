"""`vindr select` (issue 11): recipes, every exclusion's reason, presets, sampling, hand-off.

One de-identified tree is built once per module: radiographs written by the synth module
(distinct fake patients), some of them edited to be a lateral, an 8-year-old, a blank image,
a copy of another image stored in another transfer syntax (same patient and study), and an
image whose pixels are another patient's (an identity mix-up), plus pydicom's real CT_small
and MR_small; all go through the real `vindr anonymize` (basic profile, --burned-in off).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless, generate_uid

from helpers import run_cli, save
from vindr_cli.curate import sample as sampling
from vindr_cli.curate.bodypart import normalise
from vindr_cli.curate.headers import age_years, header_fields
from vindr_cli.curate.recipe import RecipeError, load_recipe, parse_recipe
from vindr_cli.curate.select import SelectRequestError, criteria_reasons, select
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.errors import RequestError
from vindr_cli.runner.executor import InProcessExecutor
from vindr_cli.synth.export import write_radiograph
from vindr_cli.tables import read_rows

EXPLICIT = "1.2.840.10008.1.2.1"
ADULT_PA = [f"pa{i}" for i in range(6)]


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


PLANTED: set[str] = set()       # identifying strings the synth module wrote into the raw files


# The synth module's chest phantoms are, to a perceptual hash, one picture (bench/README.md,
# select_bench): each test patient's film is turned or shifted its own way so that distinct
# patients have distinct pictures (64-bit hashes >= 18 bits apart, measured).
TURNS = [lambda a: a, np.fliplr, np.flipud, lambda a: np.rot90(a, 2), lambda a: np.rot90(a, 1),
         lambda a: np.rot90(a, 3), lambda a: a.T, lambda a: np.rot90(a, 2).T,
         lambda a: np.roll(a, a.shape[1] // 2, axis=1), lambda a: np.roll(a, a.shape[0] // 2, axis=0)]


def _radiograph(raw: Path, name: str, index: int, photometric: str = "MONOCHROME2") -> Path:
    path = raw / f"{name}.dcm"
    phi = write_radiograph(path, index=index, rows=320, cols=288, transfer_syntax=EXPLICIT, photometric=photometric,
                           seed=100 + index)
    PLANTED.update(s for s in phi["strings"] if len(s) >= 4)
    PLANTED.update(phi["uids"])
    ds = _read(path)
    pixels = np.ascontiguousarray(TURNS[index % len(TURNS)](ds.pixel_array))
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
    save(ds, path)
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """(ANON_DIR, {raw name: image_id}) for the planted cases."""
    root = tmp_path_factory.mktemp("select")
    raw = root / "raw"
    raw.mkdir()
    for i, name in enumerate(ADULT_PA):
        _radiograph(raw, name, i, "MONOCHROME1" if i == 5 else "MONOCHROME2")
    ds = _read(_radiograph(raw, "lateral", 6))
    ds.ViewPosition = "LL"
    save(ds, raw / "lateral.dcm")
    ds = _read(_radiograph(raw, "child", 7))
    ds.PatientAge = "008Y"
    save(ds, raw / "child.dcm")
    ds = _read(_radiograph(raw, "blank", 9))
    ds.PixelData = np.full((ds.Rows, ds.Columns), 700, dtype=np.uint16).tobytes()
    save(ds, raw / "blank.dcm")
    ds = _read(raw / "pa0.dcm")                  # the same picture again: same patient and study, RLE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.compress(RLELossless)
    save(ds, raw / "pa0_copy.dcm")
    ds = _read(_radiograph(raw, "mixup", 10))    # patient 10's header, patient 1's pixels
    ds.PixelData = _read(raw / "pa1.dcm").PixelData
    save(ds, raw / "mixup.dcm")
    ds = _read(_radiograph(raw, "multiframe", 8))   # two frames: the picture, then its mirror image
    mirror = ds.pixel_array[:, ::-1].tobytes()
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData + mirror
    save(ds, raw / "multiframe.dcm")
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name, download=False), raw / name)
    anon = root / "anon"
    anonymize(raw, anon, key_path=root / "k.key", profile=load_profile(), workers=1, burned_in="off",
              write_linkage=True, linkage=root / "link.parquet")
    manifest = read_rows(anon / "manifest.parquet")
    link = {r["input_key"]: r for r in read_rows(root / "link.parquet")}
    ids = {}
    for r in manifest:
        assert r["status"] == "ok", r["reason"]
        ids[Path(link[r["input_key"]]["input_path"]).stem] = r["image_id"]
    assert len(ids) == len(ADULT_PA) + 8
    return anon, ids


def cxr():
    """The vindr-cxr preset with only the ``blank`` QC flag excluding. The other pixel flags
    (inverted, saturated, ...) are heuristics of curate.look, tested on their own
    (tests/test_qc.py); on this test's turned synthetic films they need not hold, and the
    criteria, duplicates and sampling are what is checked here."""
    text = load_recipe("vindr-cxr").text
    start = text.index("[qc]\nexclude = [")
    end = text.index("]", start + len("[qc]\nexclude = ["))
    return parse_recipe(text[:start] + '[qc]\nexclude = ["blank"' + text[end:], "cxr-test.toml")


def _by_name(sel: Path, ids: dict) -> dict[str, dict]:
    rows = {r["image_id"]: r for r in read_rows(sel / "selection.parquet")}
    return {name: rows[i] for name, i in ids.items()}


def test_preset_gives_every_reason(tree, tmp_path):
    anon, ids = tree
    summary = select(anon, tmp_path / "sel", cxr())
    rows = _by_name(tmp_path / "sel", ids)
    assert len(read_rows(tmp_path / "sel" / "selection.parquet")) == len(ids)   # every ok image has a row
    # both lossless, same size: the native copy is kept before the RLE one (curate.dedup's rule)
    want_selected = {n for n in ADULT_PA if n != "pa1"}
    assert {n for n, r in rows.items() if r["selected"]} == want_selected
    assert summary.selected == len(want_selected) == 5
    loser = "pa0_copy"
    assert rows[loser]["reasons"] == ["duplicate"]
    assert rows[loser]["dup_group"] == rows["pa0" if loser == "pa0_copy" else "pa0_copy"]["dup_group"] is not None
    assert rows["pa1"]["reasons"] == ["duplicate-across-patients"] == rows["mixup"]["reasons"]
    assert rows["pa1"]["dup_group"] == rows["mixup"]["dup_group"]
    assert rows["lateral"]["reasons"] == ["view"]
    assert rows["multiframe"]["reasons"] == ["frames"] and rows["multiframe"]["frames"] == 2
    assert rows["child"]["reasons"] == ["age"] and rows["child"]["age_years"] == 8.0
    assert rows["blank"]["reasons"] == ["qc:blank"] and rows["blank"]["dup_group"] is None   # flat: never grouped
    for name in ("CT_small", "MR_small"):
        assert {"modality", "sop-class"} <= set(rows[name]["reasons"])
    for r in rows.values():
        assert r["selected"] == (r["reasons"] == [])
        assert r["phash"] is None or len(r["phash"]) == 16
    assert rows["pa2"]["body_part"] == "CHEST" and rows["pa2"]["view"] == "PA" and rows["pa2"]["frames"] == 1
    record = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert record["recipe"] == "vindr-cxr" and record["selected"] == 5 and record["multiframe"] == "exclude"
    assert record["counts"]["duplicate-across-patients"] == 2 and record["duplicate_groups_across_patients"] == 1
    assert (tmp_path / "sel" / "recipe.toml").read_text() == cxr().text
    assert {"blank", "inverted", "saturated"} <= set(load_recipe("vindr-cxr").qc_exclude)
    assert len(summary.warnings) == 1 and "span two or more patients" in summary.warnings[0]   # 2 patients: not "wide"


def test_worklist_and_dicom_links(tree, tmp_path):
    anon, ids = tree
    sel = tmp_path / "sel"
    select(anon, sel, cxr())
    rows = [r for r in read_rows(sel / "selection.parquet") if r["selected"]]
    with open(sel / "worklist.csv", newline="") as f:
        work = list(csv.DictReader(f))
    assert list(work[0]) == ["image_id", "study", "patient", "rows", "columns", "pixel_spacing", "view"]
    assert sorted(w["image_id"] for w in work) == sorted(r["image_id"] for r in rows)
    for w in work:
        r = next(r for r in rows if r["image_id"] == w["image_id"])
        assert (w["study"], w["patient"], int(w["rows"]), int(w["columns"]), w["view"]) == (
            r["study_uid"], r["patient_id"], r["rows"], r["columns"], r["view"])
        assert float(w["pixel_spacing"]) == pytest.approx(r["pixel_spacing"])
    files = sorted(p.name for p in (sel / "dicom").iterdir())
    assert files == sorted(f"{r['image_id']}.dcm" for r in rows)
    for r in rows:
        assert os.path.samefile(sel / "dicom" / f"{r['image_id']}.dcm", anon / r["output"])    # hard links
    # another recipe (replace=True, --replace: refused without it, tests/test_newuser7.py): dicom/
    # follows the new choice exactly (no stale file left)
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "pa-only"\n[criteria]\nmodality = ["DX"]\nview = ["PA"]\n', encoding="utf-8")
    select(anon, sel, load_recipe(recipe), replace=True)
    now = {r["image_id"] for r in read_rows(sel / "selection.parquet") if r["selected"]}
    assert {p.stem for p in (sel / "dicom").iterdir()} == now and now != {r["image_id"] for r in rows}


def test_n_exact_error_and_seed(tree, tmp_path):
    anon, ids = tree
    picks = []
    for seed in range(6):
        select(anon, tmp_path / f"s{seed}", cxr(), n=3, seed=seed)
        rows = read_rows(tmp_path / f"s{seed}" / "selection.parquet")
        chosen = {r["image_id"] for r in rows if r["selected"]}
        assert len(chosen) == 3
        assert sum(r["reasons"] == ["not-sampled"] for r in rows) == 2
        picks.append(frozenset(chosen))
    select(anon, tmp_path / "again", cxr(), n=3, seed=0)
    assert read_rows(tmp_path / "again" / "selection.parquet") == read_rows(tmp_path / "s0" / "selection.parquet")
    assert len(set(picks)) > 1                       # the seed matters
    with pytest.raises(RequestError, match=r"--n 6: only 5 images qualify") as err:
        select(anon, tmp_path / "too_many", cxr(), n=6)
    assert "  view: 1" in err.value.details
    assert not (tmp_path / "too_many" / "selection.parquet").exists()


def test_stratified_by_labels(tree, tmp_path):
    anon, ids = tree
    labels = tmp_path / "labels.csv"
    names = {"pa2": "abnormal", "pa3": "abnormal", "pa4": "normal", "pa5": "normal", "pa0": "normal",
             "pa0_copy": "normal"}
    labels.write_text("image_id,label\n" + "".join(f"{ids[n]},{v}\n" for n, v in names.items()), encoding="utf-8")
    recipe = tmp_path / "strat.toml"
    base = cxr().text
    recipe.write_text(base.replace("[sampling]\n", "[sampling]\nlabels = \"labels.csv\"\n"
                                   "proportions = { normal = 2, abnormal = 1 }\n"), encoding="utf-8")
    select(anon, tmp_path / "sel", load_recipe(recipe), n=3, seed=4)
    rows = _by_name(tmp_path / "sel", ids)
    chosen = [names.get(n) for n, r in rows.items() if r["selected"]]
    assert sorted(chosen) == ["abnormal", "normal", "normal"]
    assert rows["lateral"]["reasons"] == ["view"]                  # criteria still first
    with pytest.raises(RequestError, match=r"needs 2 abnormal, 4 normal images; only 2 abnormal, 3 normal qualify"):
        select(anon, tmp_path / "sel2", load_recipe(recipe), n=6, seed=4)


def test_sampling_rules():
    rows = [{"image_id": "a1", "study_uid": "s1", "view": "LL"}, {"image_id": "a2", "study_uid": "s1", "view": "AP"},
            {"image_id": "a3", "study_uid": "s1", "view": "PA"}, {"image_id": "b1", "study_uid": "s2", "view": "LL"},
            {"image_id": "b2", "study_uid": "s2", "view": "AP"}, {"image_id": "c1", "study_uid": "s3", "view": None}]
    for seed in range(5):
        out = sampling.sample(rows, seed=seed, one_per_study=True)
        assert {k for k, v in out.items() if v is None} == {"a3", "b2", "c1"}       # frontal first: PA > AP > others
        assert out["a1"] == out["a2"] == out["b1"] == "one-per-study"
    assert sampling.quotas(10, {"x": 1, "y": 1, "z": 1}) == {"x": 4, "y": 3, "z": 3}
    assert sampling.quotas(7, {"n": 0.7, "a": 0.3}) == {"n": 5, "a": 2}
    big = [{"image_id": f"{i:04d}", "study_uid": f"{i}", "view": "PA"} for i in range(200)]
    first = sampling.sample(big, seed=1, n=50)
    assert first == sampling.sample(list(reversed(big)), seed=1, n=50)          # input order does not matter
    assert sum(v is None for v in first.values()) == 50


def test_spine_preset_and_custom_recipe(tree, tmp_path):
    anon, ids = tree
    select(anon, tmp_path / "spine", load_recipe("vindr-spinexr"))
    rows = _by_name(tmp_path / "spine", ids)
    assert not any(r["selected"] for r in rows.values())
    assert all("body-part" in rows[n]["reasons"] for n in ADULT_PA)
    recipe = tmp_path / "kids.toml"
    recipe.write_text('[criteria]\nage_max = 17\nmodality = ["DX", "CR"]\n[qc]\nexclude = ["blank"]\n', encoding="utf-8")
    select(anon, tmp_path / "kids", load_recipe(recipe))
    rows = _by_name(tmp_path / "kids", ids)
    assert {n for n, r in rows.items() if r["selected"]} == {"child"}
    frames = tmp_path / "frames.toml"
    frames.write_text(cxr().text.replace('multiframe = "exclude"', 'multiframe = "first"'),
                      encoding="utf-8")
    select(anon, tmp_path / "frames", load_recipe(frames))
    assert _by_name(tmp_path / "frames", ids)["multiframe"]["selected"]
    assert json.loads((tmp_path / "frames" / "selection.json").read_text())["multiframe"] == "first"


def test_rerun_reads_nothing_again(tree, tmp_path):
    anon, ids = tree
    first = select(anon, tmp_path / "sel", cxr())
    assert first.resumed == 0
    before = read_rows(tmp_path / "sel" / "selection.parquet")
    again = select(anon, tmp_path / "sel", cxr())
    assert again.resumed == len(ids)
    assert read_rows(tmp_path / "sel" / "selection.parquet") == before
    assert not list((tmp_path / "sel").rglob("*.vindr-part"))


def test_planted_link_in_selection_is_refused(tree, tmp_path):
    anon, _ = tree
    sel = tmp_path / "sel"
    outside = tmp_path / "outside"
    outside.mkdir()
    sel.mkdir()
    (sel / "dicom").symlink_to(outside)
    with pytest.raises(SelectRequestError, match="SELECTION/dicom is a symbolic link"):
        select(anon, sel, cxr())
    assert list(outside.iterdir()) == []


def test_recipe_checks(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown key 'criteria.colour'"):
        parse_recipe('[criteria]\ncolour = ["RGB"]\n', "r.toml")
    with pytest.raises(RecipeError, match=r"unknown key 'selection'"):
        parse_recipe('[selection]\nn = 1\n', "r.toml")
    with pytest.raises(RecipeError, match=r"criteria.multiframe must be one of first, every, exclude"):
        parse_recipe('[criteria]\nmultiframe = "all"\n', "r.toml")
    with pytest.raises(RecipeError, match=r"criteria.body_part 'KNEECAP' is not a term"):
        parse_recipe('[criteria]\nbody_part = ["kneecap"]\n', "r.toml")
    with pytest.raises(RecipeError, match=r"qc.exclude 'ugly' is not a QC flag"):
        parse_recipe('[qc]\nexclude = ["ugly"]\n', "r.toml")
    with pytest.raises(RecipeError, match=r"not valid TOML"):
        parse_recipe('[criteria\n', "r.toml")
    with pytest.raises(RecipeError, match=r"--recipe must be a preset"):
        load_recipe(tmp_path / "missing.toml")
    for name in ("vindr-cxr", "vindr-spinexr"):
        r = load_recipe(name)
        assert r.name == name and r.source and len(r.sha256) == 64


def test_refuses_raw_export_and_nested_output(tree, tmp_path):
    anon, _ = tree
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), raw / "ct.dcm")
    with pytest.raises(SelectRequestError, match="not the output of vindr anonymize"):
        select(raw, tmp_path / "sel", cxr())
    with pytest.raises(SelectRequestError, match="must not be inside ANON_DIR"):
        select(anon, anon / "sel", cxr())
    assert not (tmp_path / "sel").exists() and not (anon / "sel").exists()


def test_header_values():
    assert normalise("Tórax") == normalise("PECHO") == normalise("chest_pa") == normalise("CXR") == "CHEST"
    assert normalise("c-spine") == "CSPINE" and normalise("L SPINE") == "LSPINE" and normalise("Columna") == "SPINE"
    assert normalise("Dr Nguyen Van A") is None and normalise("") is None and normalise(None) is None
    ds = pydicom.Dataset()
    ds.PatientBirthDate, ds.StudyDate = "19500310", "20000309"        # shifted alike: the difference is true
    assert age_years(ds) == pytest.approx(50.0, abs=0.01)
    ds.PatientAge = "006M"
    assert age_years(ds) == 0.5
    ds.PatientAge = "NGUYEN"                                          # not an Age String: dates again
    assert age_years(ds) == pytest.approx(50.0, abs=0.01)
    ds.ViewPosition, ds.PatientSex, ds.ImageLaterality = "Dr. Smith's view", "Nguyen", "L"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    f = header_fields(ds, "1.2.840.10008.1.2.4.50")
    assert f["view"] is None and f["sex"] is None and f["laterality"] == "L" and f["lossy"] is True
    assert f["image_type"] == "DERIVED\\SECONDARY"
    assert header_fields(ds, "1.2.840.10008.1.2.4.90")["lossy"] is False
    ds.LossyImageCompression = "01"
    assert header_fields(ds, EXPLICIT)["lossy"] is True
    recipe = parse_recipe('[criteria]\nimage_type = ["ORIGINAL"]\nmultiframe = "exclude"\nmin_rows = 512\n'
                          'lossy = "exclude"\n', "r.toml")
    row = {"image_type": "DERIVED\\SECONDARY", "frames": 3, "rows": 256, "columns": 1024, "lossy": True}
    assert criteria_reasons(row, recipe) == ["frames", "size", "image-type", "lossy"]
    every = parse_recipe('[criteria]\nmultiframe = "every"\n', "r.toml")
    assert criteria_reasons(row, every) == [] and every.multiframe == "every"


def test_cli(tree, tmp_path):
    anon, _ = tree
    recipe = tmp_path / "cxr.toml"
    recipe.write_text(cxr().text, encoding="utf-8")
    p = run_cli("select", anon, "-o", tmp_path / "sel", "--recipe", recipe, "-j", "1")
    assert len(PLANTED) > 20
    files = [f for f in (tmp_path / "sel").rglob("*") if f.is_file() and f.parent.name != "dicom"]
    texts = [p.stdout, p.stderr] + [f.read_bytes().decode("latin-1") for f in files if f.suffix != ".parquet"]
    texts += [json.dumps(read_rows(f), default=str) for f in files if f.suffix == ".parquet"]   # values, not compressed bytes
    for text in texts:                    # no identifying value in the output, the tables or the state files
        assert not [s for s in PLANTED if s in text]
    assert "selected" in p.stdout and "qc:blank" in p.stdout and "duplicate-across-patients" in p.stdout
    assert (tmp_path / "sel" / "worklist.csv").is_file()
    p = run_cli("select", anon, "-o", tmp_path / "sel2", "--recipe", recipe, "--n", "50", check=False)
    assert p.returncode == 2 and "only 5 images qualify" in p.stderr and "Traceback" not in p.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[criteria]\nbodypart = ['CHEST']\n", encoding="utf-8")
    p = run_cli("select", anon, "-o", tmp_path / "sel3", "--recipe", bad, check=False)
    assert p.returncode == 2 and "unknown key 'criteria.bodypart'" in p.stderr


def test_bad_files_get_rows_and_the_batch_goes_on(tree, tmp_path):
    anon, ids = tree
    copy = tmp_path / "anon"
    shutil.copytree(anon, copy)
    rows = {r["image_id"]: r for r in read_rows(copy / "manifest.parquet")}
    (copy / rows[ids["pa2"]]["output"]).unlink()                          # gone since anonymize
    cut = copy / rows[ids["pa3"]]["output"]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size - 5000])       # pixel data cut short
    (copy / rows[ids["CT_small"]]["output"]).unlink()                     # the manifest still says CT
    junk = copy / rows[ids["pa4"]]["output"]
    junk.write_bytes(b"\0" * 64)                                          # not DICOM any more
    summary = select(copy, tmp_path / "sel", cxr(), workers=2)
    got = _by_name(tmp_path / "sel", ids)
    assert got["pa2"]["reasons"] == ["unreadable"] and got["pa4"]["reasons"] == ["unreadable"]
    assert got["pa3"]["reasons"] == ["undecodable"] and got["pa3"]["phash"] is None
    assert {n for n, r in got.items() if r["selected"]} == {"pa5", "pa0"}   # pa0 native, its copy RLE
    assert got["CT_small"]["reasons"] == ["unreadable", "modality", "sop-class", "size"]    # 128 x 128
    assert summary.reasons["unreadable"] == 3
    scan = read_rows(tmp_path / "sel" / ".vindr" / "scan.parquet")
    reasons = {r["reason"] for r in scan if r["status"] == "failed"}
    assert reasons <= {"file named by the manifest is missing, not a regular file, or cannot be read",
                       "header could not be read"}
    cut.unlink()              # failed images and changed files are read again on the next run; the others are not
    again = select(copy, tmp_path / "sel", cxr(), workers=1)
    assert again.resumed == len(ids) - 4
    assert _by_name(tmp_path / "sel", ids)["pa3"]["reasons"] == ["unreadable"]


class _StopAfter(InProcessExecutor):
    """The in-process executor, interrupted (as by Ctrl-C) after ``k`` images."""

    def __init__(self, k: int):
        self.k = k

    def run(self, task, items, *, setup, config):
        for i, pair in enumerate(super().run(task, items, setup=setup, config=config)):
            if i == self.k:
                raise KeyboardInterrupt
            yield pair


def test_interrupted_run_resumes(tree, tmp_path):
    anon, ids = tree
    with pytest.raises(KeyboardInterrupt):
        select(anon, tmp_path / "sel", cxr(), executor=_StopAfter(5))
    assert not (tmp_path / "sel" / "selection.parquet").exists()            # nothing half-written
    again = select(anon, tmp_path / "sel", cxr())
    assert again.resumed == 5
    select(anon, tmp_path / "fresh", cxr())
    assert read_rows(tmp_path / "sel" / "selection.parquet") == read_rows(tmp_path / "fresh" / "selection.parquet")


@settings(deadline=None, max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["PA", "AP", "LL", None])), min_size=1, max_size=25),
       st.integers(0, 2**31), st.booleans(), st.data())
def test_sampling_properties(specs, seed, per_study, data):
    rows = [{"image_id": f"{i:08x}", "study_uid": f"s{s}", "view": v} for i, (s, v) in enumerate(specs)]
    out = sampling.sample(rows, seed=seed, one_per_study=per_study)
    pool = [r for r in rows if out[r["image_id"]] is None]
    if per_study:                      # one per study, and it is the most frontal one there
        assert len(pool) == len({r["study_uid"] for r in rows})
        for r in pool:
            others = [o for o in rows if o["study_uid"] == r["study_uid"]]
            assert sampling.VIEW_RANK.get(r["view"], 2) == min(sampling.VIEW_RANK.get(o["view"], 2) for o in others)
    else:
        assert len(pool) == len(rows)
    n = data.draw(st.integers(1, len(rows) + 2))
    if n > len(pool):
        with pytest.raises(sampling.SampleError, match=f"only {len(pool)} image"):
            sampling.sample(rows, seed=seed, n=n, one_per_study=per_study)
    else:
        picked = sampling.sample(rows, seed=seed, n=n, one_per_study=per_study)
        assert picked == sampling.sample(list(reversed(rows)), seed=seed, n=n, one_per_study=per_study)
        assert sum(v is None for v in picked.values()) == n
        assert set(picked) == {r["image_id"] for r in rows}


def test_wide_cross_patient_group_warns(tmp_path):
    """One picture under five patients: beyond WIDE_GROUP patients the warning says the hash
    itself is suspect (what the synth module's phantoms looked like to a 64-bit hash before issue 11 varied them,
    bench/README.md)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(5):
        write_radiograph(raw / f"{i}.dcm", index=40 + i, rows=320, cols=288, transfer_syntax=EXPLICIT,
                         photometric="MONOCHROME2", seed=7)
        ds, first = _read(raw / f"{i}.dcm"), _read(raw / "0.dcm")
        ds.PixelData = first.PixelData                       # one picture, five patients
        ds.WindowCenter, ds.WindowWidth = first.WindowCenter, first.WindowWidth  # shown alike
        save(ds, raw / f"{i}.dcm")
    anonymize(raw, tmp_path / "anon", key_path=tmp_path / "k.key", profile=load_profile(), workers=1,
              burned_in="off", write_linkage=False)
    summary = select(tmp_path / "anon", tmp_path / "sel", cxr())
    assert summary.selected == 0 and summary.reasons["duplicate-across-patients"] == 5
    assert any("spans 5 patients" in w for w in summary.warnings)
