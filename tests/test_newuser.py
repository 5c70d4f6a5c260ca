"""What a new user meets first: a refused request is one line on any terminal and in a log, and
an option that would be silently ignored is refused.

A one-line error is what a log reader greps and what a scheduler's mail shows; Rich wraps at
the terminal's width (80 columns when stderr is a pipe), so a long reason used to break into
several lines, a path cut in two (found walking through the README as a new user).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run_cli

EXPORT = Path(__file__).resolve().parents[1] / "sample_dicoms" / "export"


def _one_line(stderr: str, start: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(start), stderr
    return lines[0]


@pytest.mark.parametrize("columns", ["40", "80"])
def test_a_long_refusal_stays_one_line_at_any_width(tmp_path, columns):
    # decode's --window reason is ~130 characters: wrapped at 40 or 80 columns before the fix
    p = run_cli("decode", EXPORT, tmp_path / "img", "--window", "nonsense", check=False,
                env={"COLUMNS": columns})
    assert p.returncode == 2
    line = _one_line(p.stderr, "error: invalid --window 'nonsense'")
    assert len(line) > int(columns)          # a reason longer than the width, not cut
    assert line.endswith("(window center and width, W >= 1)")


def test_a_library_refusal_stays_one_line(tmp_path):
    # a RequestError raised in the library, printed by cli.main (not by _fail)
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "x"\n[criteria]\nmodalty = ["CT"]\n')
    p = run_cli("select", tmp_path / "no-such-tree", "-o", tmp_path / "sel", "--recipe", recipe,
                check=False, env={"COLUMNS": "40"})
    assert p.returncode == 2
    _one_line(p.stderr, "error: ")


def test_a_long_warning_stays_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_cli("info", empty, "-j", "1", check=False, env={"COLUMNS": "40"})
    assert p.returncode == 0
    warnings = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert warnings and all(ln.startswith("warning: ") for ln in warnings), p.stderr
    p = run_cli("info", empty, "-j", "1", "--strict", check=False, env={"COLUMNS": "40"})
    assert p.returncode == 1


@pytest.mark.parametrize("command", ["info", "anonymize", "decode", "audit", "select"])
def test_scheduler_without_executor_dask_is_refused(tmp_path, command):
    # it was silently ignored: the run went to the local pool while the user thought it ran
    # on the cluster. Refused before anything is read or written (no key created either).
    args = {"info": [EXPORT],
            "anonymize": [EXPORT, tmp_path / "anon", "--key", tmp_path / "k.key"],
            "decode": [EXPORT, tmp_path / "img"],
            "audit": [tmp_path],
            "select": [tmp_path, "-o", tmp_path / "sel"]}[command]
    p = run_cli(command, *args, "--scheduler", "tcp://127.0.0.1:9", check=False, env={"COLUMNS": "40"})
    assert p.returncode == 2, (p.stdout, p.stderr)
    errors = "\n".join(ln for ln in p.stderr.splitlines() if not ln.startswith("warning: "))
    _one_line(errors, "error: --scheduler is only used with --executor dask")
    assert not (tmp_path / "k.key").exists()
    assert not (tmp_path / "anon").exists() and not (tmp_path / "img").exists()


def test_datasheet_says_how_pixels_and_options_were_handled(pipeline):
    """The data custodian signing off a release reads in its README what the anonymizer did to
    the pixels (mode, files masked) and the Annex E options by code, not only option names."""
    import json

    import pandas as pd

    base, release = pipeline
    sheet = json.loads((release / "datasheet.json").read_text())
    deid = sheet["deid"]
    assert deid["burned_in"] == "redact" and deid["allow_burned_in"] is False
    # counted here independently: the released DICOM files' manifest rows
    released = set(pd.read_csv(release / "images.csv", dtype=str)["image_id"].str[:32])
    m = pd.read_parquet(base / "anon" / "manifest.parquet")
    m = m[(m["status"] == "ok") & m["image_id"].isin(released)]
    boxes = [any(isinstance(v, str) and bool(json.loads(v)) for v in (r, b)) for r, b in zip(m["redactions"], m["review_boxes"])]
    rewritten = sum(bool(p) and not x for p, x in zip(m["pixels_modified"].fillna(False), boxes))
    assert deid["pixels_masked"] == {"files": len(released), "masked": sum(boxes), "rewritten": rewritten}
    assert deid["pixels_masked"]["masked"] >= 1          # the sample has burned-in names on released images
    readme = (release / "README.md").read_text()
    assert ("Annex E options applied (CID 7050 code and meaning): 113107 Retain Longitudinal Temporal Information "
            "Modified Dates Option; 113108 Retain Patient Characteristics Option.") in readme
    assert "Burned-in text (`--burned-in redact`)" in readme
    assert f"{deid['pixels_masked']['masked']} of the {len(released)} released DICOM file(s) had pixels masked" in readme
    assert 'quarantined: see "Left out, and why"' in readme


def test_datasheet_files_section_names_what_the_release_holds(pipeline):
    """The researcher's map of the release: every path the Files table names exists (the
    pipeline release is built with --images), and every top-level entry of the release is
    named, so the table cannot drift from the layout."""
    import re

    _, release = pipeline
    readme = (release / "README.md").read_text()
    files = readme.split("## Files", 1)[1]
    named = set()
    for cell in re.findall(r"^\| (.+?) \|", files, re.M):
        for path in re.findall(r"`([^`]+)`", cell):
            m = re.fullmatch(r"(.*)\{train,test\}(.*)", path)
            named |= {m.group(1) + s + m.group(2) for s in ("train", "test")} if m else {path}
    assert len(named) >= 15
    for path in named:
        assert (release / path).exists(), path
    top = {p.name + ("/" if p.is_dir() else "") for p in release.iterdir()}
    assert top <= {p.split("/")[0] + ("/" if "/" in p else "") for p in named} | {"README.md"}, top
    assert "vindr validate RELEASE" in files and "vindr evaluate --gt annotations/kaggle_test.csv" in files


@pytest.mark.parametrize("args", [["info", EXPORT, "-j", "-1"], ["decode", EXPORT, "IMG", "-j", "-2"],
                                  ["decode", EXPORT, "IMG", "--threads", "-1"],
                                  ["anonymize", EXPORT, "IMG", "--key", "KEY", "-j", "-3"],
                                  ["review", EXPORT, "--no-browser", "--port", "70000"],
                                  ["review", EXPORT, "--no-browser", "--spot", "-1"]])
def test_out_of_range_counts_are_refused_with_exit_2(tmp_path, args):
    # -j -2 ran silently in one process; --port 70000 was an internal error (exit 3)
    args = [tmp_path / "out" if a == "IMG" else tmp_path / "k.key" if a == "KEY" else a for a in args]
    p = run_cli(*args, check=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Invalid value for" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "k.key").exists()


def test_a_pool_never_has_more_workers_than_items():
    from vindr_cli.runner.executor import InProcessExecutor, ProcessExecutor, make_executor

    ex = make_executor(2000, 8)
    assert isinstance(ex, ProcessExecutor) and ex.workers == 8
    assert make_executor(3, 100).workers == 3
    assert isinstance(make_executor(2000, 1), InProcessExecutor)


def test_a_selection_of_nothing_says_what_to_do(pipeline, tmp_path):
    # pydicom's CT/MR files under the vindr-cxr preset: 0 selected, and before this a silent exit 0
    base, _ = pipeline
    recipe = tmp_path / "us.toml"
    recipe.write_text('name = "ultrasound"\n[criteria]\nmodality = ["US"]\n')
    p = run_cli("select", base / "anon", "-o", tmp_path / "sel", "--recipe", recipe, "-j", "1", check=False)
    assert p.returncode == 0, p.stderr
    assert "warning: no image was selected (the table counts why)" in p.stderr
    assert "--recipe FILE.toml" in p.stderr
    p = run_cli("select", base / "anon", "-o", tmp_path / "sel2", "-j", "1", check=False)
    assert p.returncode == 0 and "no image was selected" not in p.stderr      # the sample has chest films


def test_anonymize_says_what_quarantine_means_and_what_comes_next(tmp_path):
    from pydicom.data import get_testdata_file

    export = tmp_path / "export"
    export.mkdir()
    for name in ("CT_small.dcm", "SC_rgb_gdcm_KY.dcm"):         # a CT and a Secondary Capture
        (export / name).write_bytes(Path(get_testdata_file(name, download=False)).read_bytes())
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    p = run_cli("anonymize", export, tmp_path / "anon", "--key", keys / "k", "-j", "1", "--burned-in", "off")
    out = " ".join(p.stdout.split())
    assert "quarantined images are not written; --allow-burned-in writes those held back" in out
    assert f"next: vindr audit {tmp_path / 'anon'} --report FILE.json" in out
    p = run_cli("anonymize", export, tmp_path / "anon2", "--key", keys / "k", "-j", "1", "--burned-in", "off",
                "--allow-burned-in")
    assert "quarantined images are not written" not in p.stdout       # nothing held back now
