"""A fresh clone walked by a new user (new-user walk 6): the rough edges that were behaviour.

* ``vindr anonymize``'s ``pixels:`` line said "51 not scanned" of an export whose DICOMDIR
  files and RT plan have no Pixel Data at all: a custodian read it as 51 images that escaped the
  burned-in text finder. Outputs without Pixel Data are now counted apart ("without Pixel Data,
  nothing to scan"); "not scanned" is left for pixels that were not read (``--burned-in off``);
* ``vindr decode --window-index 5`` on images with one header window used window 0 and said
  nothing, neither did ``--help`` nor the README: both say so now;
* the README said scripts read "the Parquet tables each command names" and never showed how:
  a pandas block now does, and runs as written on real outputs;
* ``vindr select`` run again with another recipe after ``vindr split``: ``vindr release`` wrote
  a release of 0 images, datasheet and all, with exit 0; now exit 2, one line.
"""
from __future__ import annotations

import shutil

import pyarrow.parquet as pq
from pydicom.data import get_testdata_file

from helpers import run_cli


def _with_a_plan(small_export):
    shutil.copy(get_testdata_file("rtplan.dcm"), small_export / "plan.dcm")   # an RT Plan: no Pixel Data
    return small_export


def test_outputs_without_pixel_data_are_not_called_unscanned(tmp_path, small_export, key_file):
    out = tmp_path / "anon"
    p = run_cli("anonymize", _with_a_plan(small_export), out, "--key", key_file, "-j", "1")
    ok = [r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["status"] == "ok"]
    assert len(ok) == 4 and sum(r["pixel_sha256"] is None for r in ok) == 1
    line = next(s for s in p.stdout.splitlines() if s.startswith("pixels: "))
    assert "of 4 written images had boxes masked (burned-in text; 1 without Pixel Data, nothing to scan)" in line
    assert "not scanned" not in line


def test_burned_in_off_still_says_not_scanned(tmp_path, small_export, key_file):
    p = run_cli("anonymize", _with_a_plan(small_export), tmp_path / "anon", "--key", key_file,
                "--burned-in", "off", "-j", "1")
    assert ("pixels: 0 of 4 written images had boxes masked (burned-in text; 1 without Pixel Data, "
            "nothing to scan; 3 not scanned)") in p.stdout


def test_a_window_index_past_the_header_falls_back_to_the_first_as_the_help_says(tmp_path, key_file):
    """``--window-index 5`` on an image with one header window decoded it with window 0 and said
    nothing; the help and README now say so, and images.parquet shows the window used."""
    from conftest import make_cr

    def one_window(ds):
        ds.WindowCenter, ds.WindowWidth = "2000", "4000"

    src = make_cr(tmp_path / "in" / "a.dcm", extra=one_window)
    anon = tmp_path / "anon"
    run_cli("anonymize", src.parent, anon, "--key", key_file, "--burned-in", "off", "-j", "1")
    rows = {}
    for i in (0, 5):
        out = tmp_path / f"img{i}"
        run_cli("decode", anon, out, "--window-index", str(i), "-j", "1")
        (r,) = [r for r in pq.read_table(out / "images.parquet").to_pylist() if r["status"] == "ok"]
        rows[i] = (r["window_kind"], r["window_center"], r["window_width"])
    assert rows[5] == rows[0] == ("window", 2000.0, 4000.0)
    h = run_cli("decode", "--help")
    assert "an image with fewer uses its first" in " ".join(h.stdout.split())


def test_the_readme_pandas_lines_run_on_real_outputs(tmp_path, small_export, key_file, monkeypatch):
    """The README said scripts read "the Parquet tables each command names" but never showed how;
    its pandas block now runs as written on the folders of "Your own export"."""
    import re

    from conftest import REPO as ROOT

    run_cli("anonymize", small_export, tmp_path / "anon", "--key", key_file, "--burned-in", "off", "-j", "1")
    run_cli("select", tmp_path / "anon", "-o", tmp_path / "sel", "--recipe", "vindr-cxr", "-j", "1")
    run_cli("decode", tmp_path / "anon", tmp_path / "images", "--size", "32", "-j", "1")
    text = (ROOT / "README.md").read_text()
    block = re.search(r"the Parquet tables each command names\..*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(block, "README.md", "exec"), names)     # the README's own lines, as a user pastes them
    assert int(names["counts"].sum()) == len(names["m"]) == 5        # 3 images, a text file, an empty file
    assert len(names["s"]) == 3 and len(names["kept"]) == int(names["s"]["selected"].sum())
    assert (names["d"]["status"] == "ok").sum() == 3 and {"scale_x", "scale_y"} <= set(names["d"].columns)


def test_a_release_of_no_image_is_refused(tmp_path, small_export, key_file):
    """The SELECTION made again with another recipe after vindr split: none of the split's images
    was selected any more, and vindr release wrote a release of 0 images with exit 0."""
    import csv

    anon = tmp_path / "anon"
    run_cli("anonymize", small_export, anon, "--key", key_file, "--burned-in", "off", "-j", "1")
    ids = [r["image_id"] for r in pq.read_table(anon / "manifest.parquet").to_pylist() if r["status"] == "ok"]
    ann = tmp_path / "ann.csv"
    with ann.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"])
        w.writerows([i, "No finding", 14, "R1", "", "", "", ""] for i in ids)
    run_cli("split", ann, "--meta", anon / "manifest.parquet", "--test-size", "1", "--unit", "images", "-o", tmp_path / "split")
    run_cli("release", anon, "--split", tmp_path / "split", "-o", tmp_path / "release")      # every image: fine
    assert len(list((tmp_path / "release").rglob("*.dicom"))) == 3
    recipe = tmp_path / "mr.toml"
    recipe.write_text('name = "mr-only"\n[criteria]\nmodality = ["MR"]\n')
    run_cli("select", anon, "-o", tmp_path / "sel", "--recipe", recipe, "-j", "1")
    p = run_cli("release", anon, "--split", tmp_path / "split", "--selection", tmp_path / "sel",
                "-o", tmp_path / "empty", check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        "error: nothing to release: none of split.csv's 3 image(s) would be released (3 not selected); "
        "if the selection changed after vindr split, run vindr split again with --selection SELECTION")
    assert not (tmp_path / "empty").exists() and not list(tmp_path.glob(".empty*"))
