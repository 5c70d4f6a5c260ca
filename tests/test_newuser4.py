"""A fresh clone walked by a new user (new-user walk 4): the rough edges that were behaviour.

* ``vindr info X | head -1`` exited 1 (rich's closed-pipe handler; Click's for ``--json``),
  the findings' code: a closed pipe now ends the command quietly with 141 (128 + SIGPIPE),
  what ``cat`` or ``grep`` give;
* every output of ``vindr anonymize --profile vindr`` (PatientID emptied: Type 2, not on
  VinDr's keep-list), and any output of an input without a PatientID, was refused by
  ``vindr select``, ``decode`` and ``release`` as "a file was replaced": the manifest names
  the patient by its keyed pseudonym, the file has none. Such a file now passes when it
  carries vindr's own mark (DeidentificationMethod naming a key fingerprint); a file with
  neither the substitute nor the mark is still refused;
* ``vindr review SELECTION`` queued every image of the tree (the sample's QC queue: 7 images,
  none selected): now the selected ones, those the review excluded, and a selected image's
  near-duplicates in that queue; ``--whole-tree`` for the old view; the release gate reads all;
* SIGTERM killed a run without a word (exit -15): it now stops as Ctrl-C does, exit 143;
* ``vindr select`` on a ``--profile vindr`` tree said "write a recipe" for adult chest CRs
  whose BodyPartExamined and ViewPosition the profile had removed: it now says that;
* an OUTPUT that is a file was refused as "OUTPUT/.vindr is not a real folder";
* ``vindr --help`` listed the commands in cli.py's order (info ninth): now the pipeline's;
* paths printed after a run were folded mid-word at 80 columns on a non-terminal.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.dataset import Dataset

from helpers import VINDR, run_cli
from vindr_cli.dicomio.provenance import matches_row
from vindr_cli.errors import EXIT_CLOSED_PIPE


def _with_closed_stdout(*args) -> subprocess.CompletedProcess:
    """Run vindr with a stdout pipe whose reader has already gone (deterministic EPIPE)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([*VINDR, *map(str, args)], stdout=w, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "COLUMNS": "120"}, timeout=120)
    finally:
        os.close(w)
    return p


@pytest.mark.parametrize("json_out", [False, True], ids=["rich-table", "json"])
def test_a_closed_pipe_ends_quietly_with_the_status_of_a_unix_tool(small_export, json_out):
    p = _with_closed_stdout("info", small_export, *(["--json"] if json_out else []))
    assert p.returncode == EXIT_CLOSED_PIPE == 141, p.stderr
    assert p.stderr == ""                     # no traceback, no "Exception ignored" at exit


def test_an_open_pipe_still_gets_the_whole_output_and_exit_0(small_export):
    p = run_cli("info", small_export, "--json")
    assert p.returncode == 0 and p.stdout.lstrip().startswith("{") and '"files"' in p.stdout


def test_anonymize_stopped_by_a_closed_pipe_leaves_a_tree_a_rerun_completes(tmp_path, small_export, key_file):
    out = tmp_path / "anon"
    p = _with_closed_stdout("anonymize", small_export, out, "--key", key_file, "-j", "1")
    assert p.returncode == 141 and p.stderr == ""
    assert not [q for q in tmp_path.rglob("*") if ".partial" in q.name or q.name.endswith(".tmp")]
    again = run_cli("anonymize", small_export, out, "--key", key_file, "-j", "1")
    assert again.returncode == 0
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert sorted(r["status"] for r in rows).count("ok") == 3 and len(rows) == 5


def _marked(pid: str, mark: bool) -> Dataset:
    ds = Dataset()
    ds.PatientIdentityRemoved = "YES"
    ds.PatientID = pid
    ds.SOPInstanceUID = "2.25.1234"
    if mark:
        ds.DeidentificationMethod = ["vindr 0.1.0", "profile vindr", "vindr key fingerprint 3aa0790a4aae"]
    return ds


@pytest.mark.parametrize("pid,mark,ok", [
    ("PSUBSTITUTE00001", False, True),     # the row's substitute
    ("", True, True),                      # emptied by the profile, vindr's mark present
    ("", False, False),                    # empty and no mark: not known to be vindr's output
    ("20012345", True, False),             # another PatientID (a raw file given the mark): refused
])
def test_an_empty_patient_id_passes_only_with_vindrs_mark(pid, mark, ok):
    row = {"patient_id": "PSUBSTITUTE00001", "sop_uid": "2.25.1234"}
    assert matches_row(_marked(pid, mark), row) is ok
    assert matches_row(_marked(pid, mark), {**row, "sop_uid": "2.25.999"}) is False


def test_profile_vindr_outputs_are_decoded_and_selected(tmp_path, small_export, key_file):
    anon = tmp_path / "anon"
    run_cli("anonymize", small_export, anon, "--key", key_file, "--profile", "vindr", "-j", "1")
    rows = [r for r in pq.read_table(anon / "manifest.parquet").to_pylist() if r["status"] == "ok"]
    assert len(rows) == 3
    assert all(pydicom.dcmread(anon / r["output"], stop_before_pixels=True).get("PatientID", "") == ""
               for r in rows)         # the premise: the vindr profile empties PatientID
    img = tmp_path / "img"
    run_cli("decode", anon, img, "--size", "32", "-j", "1")
    decoded = pq.read_table(img / "images.parquet").to_pylist()
    assert sorted(r["status"] for r in decoded) == ["ok"] * 3, [r["reason"] for r in decoded]
    recipe = tmp_path / "cr.toml"
    recipe.write_text('name = "cr"\n[criteria]\nmodality = ["CR"]\n[duplicates]\nwithin = "keep-all"\n')
    sel = tmp_path / "sel"
    p = run_cli("select", anon, "-o", sel, "--recipe", recipe, "-j", "1", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(list((sel / "dicom").iterdir())) == sum(
        r["selected"] for r in pq.read_table(sel / "selection.parquet").to_pylist()) > 0


# ------------------------------------------------------------------ vindr review SELECTION

@pytest.fixture(scope="module")
def sample_selection(tmp_path_factory):
    """(tree, SELECTION beside it) of the committed sample export, vindr-cxr preset."""
    from conftest import SAMPLE
    from helpers import key_file_in
    from vindr_cli.curate.recipe import load_recipe
    from vindr_cli.curate.select import select
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    base = tmp_path_factory.mktemp("nu4review")
    anon, sel = base / "anon", base / "selection"
    anonymize(SAMPLE / "export", anon, key_path=key_file_in(base), profile=load_profile(), workers=1)
    select(anon, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    return anon, sel


def test_review_of_a_selection_queues_its_selected_images(sample_selection):
    """Before: `vindr review SELECTION` queued every image of the tree (the sample's QC queue:
    7 images, none selected, so none the release asks about). Now the selected ones; a
    selected image's near-duplicates stay beside it in the duplicates queue only."""
    from vindr_cli.review.queues import build_queues

    _, sel = sample_selection
    srows = {r["image_id"]: r for r in pq.read_table(sel / "selection.parquet").to_pylist()}
    chosen = {i for i, r in srows.items() if r["selected"]}
    q = build_queues(sel, spot=100)
    whole = build_queues(sel, spot=100, whole_tree=True)
    assert whole.queues["qc"] and not set(whole.queues["qc"]) & chosen      # the premise, on the sample
    for name in ("redacted", "residual-text", "qc", "spot-check"):
        assert set(q.queues[name]) <= chosen, name
    assert q.queues["qc"] == sorted(i for i in chosen if srows[i]["qc_flags"])
    assert set(q.queues["spot-check"]) == chosen - q.flagged() - {i for i in chosen if q.images[i].modified}
    assert set(q.queues["redacted"]) == {i for i in chosen if whole.images[i].modified}
    groups = {srows[i]["dup_group"] for i in chosen if srows[i]["dup_group"]}
    assert groups                                                            # the sample has one
    assert set(q.queues["duplicates"]) == {i for i, r in srows.items() if r["dup_group"] in groups}
    assert set(q.queues["duplicates"]) - chosen                              # its excluded copy, beside it


def test_an_image_the_review_excluded_stays_on_the_page_and_the_gate_still_sees_all(sample_selection, tmp_path):
    import shutil

    from vindr_cli.curate.recipe import load_recipe
    from vindr_cli.curate.select import select
    from vindr_cli.review import decisions
    from vindr_cli.review.queues import build_queues

    anon, sel0 = sample_selection
    sel = anon.parent / "selection-excluded"          # beside the tree: found by its manifest hash
    shutil.copytree(sel0, sel, ignore=shutil.ignore_patterns("dicom"), symlinks=True)
    before = build_queues(sel, spot=100)
    iid = before.queues["spot-check"][0]
    decisions.record(sel, iid, "spot-check", "exclude")
    select(anon, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    row = next(r for r in pq.read_table(sel / "selection.parquet").to_pylist() if r["image_id"] == iid)
    assert not row["selected"] and "review-excluded" in row["reasons"]
    after = build_queues(sel, spot=100)
    assert iid in after.images and iid in after.queues["spot-check"]      # seen, and can be undone
    # the release gate reads every image of the table, whatever the page showed
    from vindr_cli.review import gate
    srows = pq.read_table(sel / "selection.parquet").to_pylist()
    everything = {r["image_id"] for r in srows}
    hidden_qc = {r["image_id"] for r in srows if r["qc_flags"] and not r["selected"]}
    assert hidden_qc and not hidden_qc & set(after.images)
    with pytest.raises(gate.Unreviewed):
        gate.check(anon, everything, review=sel)


def test_review_help_names_the_whole_tree_option():
    out = run_cli("review", "--help").stdout
    assert "--whole-tree" in out and "SELECTION" in out


# ------------------------------------------------------------------ SIGTERM mid-run, then resume

def test_sigterm_mid_anonymize_stops_like_ctrl_c_and_a_rerun_gives_the_uninterrupted_tree(tmp_path):
    """Before: SIGTERM (kill PID, a scheduler's time limit) ended the process at once, exit
    -15/143 without a word, its lock and temporary files left. Now it stops as Ctrl-C does:
    the "interrupted ... resume" line, exit 143 (128 + SIGTERM); the re-run finishes and the
    tree equals one made in a single run with the same key."""
    import signal
    import time

    from conftest import make_cr
    from helpers import key_file_in, tree_hashes

    export = tmp_path / "export"
    n = 30
    for i in range(n):
        make_cr(export / f"p{i % 6}" / f"img {i}.dcm", pid=f"PID{i % 6:04d}", name=f"Patient^N{i % 6}",
                study=f"1.2.826.0.1.3680043.10.543.{i % 6 + 1}", series=f"1.2.826.0.1.3680043.10.543.{i % 6 + 1}.1",
                sop=f"1.2.826.0.1.3680043.10.543.{i % 6 + 1}.1.{i + 1}", rows=256, cols=224, seed=i)
    key = key_file_in(tmp_path)
    out = tmp_path / "anon"
    journal = out / ".vindr" / "anonymize.journal.jsonl"
    proc = subprocess.Popen([*VINDR, "anonymize", str(export), str(out), "--key", str(key), "-j", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 120          # a bound for a busy machine, not a timing assertion
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_text(errors="replace").count("\n") >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    done = journal.read_text(errors="replace").count("\n")
    assert proc.returncode == 143, err[-800:]
    assert "interrupted" in err and "resume" in err and "Traceback" not in err
    assert done < n + 1                          # stopped mid-run, not after it
    assert not (out / "manifest.parquet").exists() or done < n
    again = run_cli("anonymize", export, out, "--key", key, "-j", "1")
    assert "resumed:" in again.stdout
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(rows) == n and {r["status"] for r in rows} == {"ok"}
    once = tmp_path / "once"
    run_cli("anonymize", export, once, "--key", key, "-j", "1")
    skip = (".vindr", "manifest.parquet")
    assert tree_hashes(out, skip) == tree_hashes(once, skip) and len(tree_hashes(once, skip)) == n
    assert not [p for p in out.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]


def test_main_called_in_process_leaves_the_sigterm_handler_as_it_was(monkeypatch):
    import signal
    import sys

    from vindr_cli import cli

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(sys, "argv", ["vindr", "--version"])
    with pytest.raises(SystemExit):
        cli.main()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_preset_on_a_vindr_profile_tree_says_why_nothing_was_selected(tmp_path, key_file):
    """Before: "the presets take adult chest or spine CR/DX radiographs; for other images
    write a recipe", on adult chest CRs whose BodyPartExamined and ViewPosition the vindr
    profile had removed."""
    from conftest import make_cr

    def pa(ds):
        ds.ViewPosition = "PA"

    export = tmp_path / "export"
    for i in range(2):
        make_cr(export / f"{i}.dcm", sop=f"1.2.826.0.1.3680043.10.543.1.1.{i + 1}", rows=640, cols=560, seed=i,
                extra=pa)
    anon = tmp_path / "anon"
    run_cli("anonymize", export, anon, "--key", key_file, "--profile", "vindr", "-j", "1")
    p = run_cli("select", anon, "-o", tmp_path / "sel", "--recipe", "vindr-cxr", "-j", "1")
    warn = [ln for ln in p.stderr.splitlines() if ln.startswith("warning: no image was selected")]
    assert len(warn) == 1 and "the vindr profile removes both" in warn[0] and "--profile basic" in warn[0], p.stderr
    basic = tmp_path / "anon-basic"
    run_cli("anonymize", export, basic, "--key", key_file, "-j", "1")
    q = run_cli("select", basic, "-o", tmp_path / "sel-basic", "--recipe", "vindr-cxr", "-j", "1")
    rows = pq.read_table(tmp_path / "sel-basic" / "selection.parquet").to_pylist()
    assert not any({"body-part-unknown", "view-unknown"} & set(r["reasons"]) for r in rows)   # kept by basic
    assert "vindr profile removes both" not in q.stderr


@pytest.mark.parametrize("command", ["anonymize", "decode", "select"])
def test_an_output_that_is_a_file_is_named_as_such(tmp_path, small_export, key_file, command):
    """Before: "OUTPUT/.vindr is not a real folder (a symbolic link or a file)"."""
    afile = tmp_path / "out.txt"
    afile.write_bytes(b"mine")
    if command == "select":
        anon = tmp_path / "anon"
        run_cli("anonymize", small_export, anon, "--key", key_file, "-j", "1")
        args = ["select", anon, "-o", afile, "--recipe", "vindr-cxr"]
    else:
        args = {"anonymize": ["anonymize", small_export, afile, "--key", key_file],
                "decode": ["decode", small_export, afile, "--allow-identified"]}[command]
    p = run_cli(*args, check=False)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and lines[-1] == "error: OUTPUT is a file, not a folder: name a folder (a missing one is made)"
    assert afile.read_bytes() == b"mine"


def test_help_lists_the_commands_in_the_order_a_release_runs_them():
    from vindr_cli.cli import PIPELINE

    out = run_cli("--help").stdout
    listed = [ln.split()[0] for ln in out.split("Commands:")[1].splitlines() if ln.startswith("  ") and ln.split()]
    assert listed == list(PIPELINE)            # every command, none left out, in the README's order
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "**141**" in readme and "**143**" in readme        # the exit codes of a closed pipe and SIGTERM


def test_printed_paths_are_never_folded_mid_word(tmp_path, small_export, key_file):
    """Before, on a non-terminal (80 columns): `manifest: ` then the path cut in two lines."""
    deep = tmp_path / ("a_long_folder_name_of_a_hospital_export_" * 2) / "anon"
    p = subprocess.run([*VINDR, "anonymize", str(small_export), str(deep), "--key", str(key_file), "-j", "1"],
                       capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert f"manifest: {deep / 'manifest.parquet'}" in lines
    assert any(ln.endswith(f": {deep.parent / 'anon.linkage.parquet'}") for ln in lines)
    assert f"next: vindr audit {deep} --report FILE.json (before anything leaves the hospital)" in lines
    assert any(ln.startswith("┏") and len(ln) <= 80 for ln in lines)       # tables keep the 80-column layout


def test_a_non_empty_folder_that_is_not_vindrs_is_refused_as_output(tmp_path, small_export, key_file):
    """An OUTPUT holding files vindr did not write (found by new-user walk 4: exit 0, the file
    left among the de-identified ones, unlisted): refused before anything is written; an empty
    folder and a vindr OUTPUT re-run are still accepted."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "stuff.txt").write_text("notes\n")
    p = run_cli("anonymize", small_export, out, "--key", key_file, "--burned-in", "off", check=False)
    assert p.returncode == 2 and "did not write" in p.stderr, p.stderr
    assert sorted(x.name for x in out.iterdir()) == ["stuff.txt"]     # nothing written
    empty = tmp_path / "empty"
    empty.mkdir()
    first = run_cli("anonymize", small_export, empty, "--key", key_file, "--burned-in", "off")
    assert first.returncode == 0, first.stderr
    again = run_cli("anonymize", small_export, empty, "--key", key_file, "--burned-in", "off")
    assert again.returncode == 0, again.stderr
