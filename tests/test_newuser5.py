"""A fresh clone walked by a new user (new-user walk 5): the rough edges that were behaviour.

* an OUTPUT that held one vindr-marked file first (in sorted order) among files vindr did not
  write was taken for a vindr OUTPUT whose state was lost: ``check_foreign_output`` judged it
  by its first ``.dcm`` only, so a hospital's own files, a notes file or a link beside that one
  file were let in, unlisted, among the de-identified ones; now every file must be a
  vindr output of one key;
* a fresh file system's mount point (holding only its empty ``lost+found``) was refused as
  "a folder that already holds files vindr did not write";
* ``vindr info X >&-`` (stdout closed: Python's ``sys.stdout`` is None, and rich and Click
  drop every line) printed nothing and exited 0, as did every other command: now exit 2 with
  one line on the stream still open, before anything is read or written;
* ``vindr anonymize``'s summary did not say how many written images had burned-in text masked
  (``scripts/demo.sh`` computed it from the manifest): now a ``pixels:`` line, from the manifest;
* ``vindr review FILE`` said "DIR/.vindr ... is a symbolic link": now "DIR is not a folder";
* ``vindr audit RELEASE`` (or a SELECTION) gave dozens of stray-file/unreadable findings with no
  word of why: a warning now says what the folder is and what to audit instead (exit still 1).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE
from helpers import VINDR, run_cli


def _anon(tmp_path, small_export, key_file, name="anon"):
    out = tmp_path / name
    run_cli("anonymize", small_export, out, "--key", key_file, "--burned-in", "off", "-j", "1")
    return out


def _state_lost_copy(src, dst):
    """A copy of a vindr OUTPUT whose state folder and manifest were lost."""
    shutil.copytree(src, dst)
    shutil.rmtree(dst / ".vindr")
    (dst / "manifest.parquet").unlink()
    return dst


@pytest.mark.parametrize("foreign", ["notes", "hospital-dcm", "link"])
def test_one_vindr_file_first_does_not_make_a_foreign_folder_vindrs(tmp_path, small_export, key_file, foreign):
    anon = _anon(tmp_path, small_export, key_file)
    out = _state_lost_copy(anon, tmp_path / "out")
    first = sorted(p for p in out.rglob("*.dcm"))[0]
    if foreign == "notes":
        (out / "zz_notes.txt").write_text("notes\n")
    elif foreign == "hospital-dcm":              # an identified file sorted after the marked one
        shutil.copy(small_export / "NGUYEN VAN AN_PID0001" / "a.dcm", first.parent / "zz_raw.dcm")
    else:
        (first.parent / "zz_link.dcm").symlink_to(first)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    p = run_cli("anonymize", small_export, out, "--key", key_file, "--burned-in", "off", check=False)
    assert p.returncode == 2 and "did not write" in p.stderr, p.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before      # nothing written


def test_a_tree_whose_state_was_lost_is_still_known_as_vindrs(tmp_path, small_export, key_file):
    anon = _anon(tmp_path, small_export, key_file)
    out = _state_lost_copy(anon, tmp_path / "out")
    p = run_cli("anonymize", small_export, out, "--key", key_file, "--burned-in", "off", "--rebuild-state",
                check=False)
    assert "did not write" not in p.stderr, p.stderr
    assert p.returncode == 0, p.stderr


def test_a_folder_holding_only_an_empty_lost_and_found_is_an_empty_output(tmp_path, small_export, key_file):
    out = tmp_path / "mnt"
    (out / "lost+found").mkdir(parents=True)
    p = run_cli("anonymize", small_export, out, "--key", key_file, "--burned-in", "off", "-j", "1", check=False)
    assert p.returncode == 0, p.stderr
    assert (out / "manifest.parquet").exists() and list((out / "lost+found").iterdir()) == []
    audit = run_cli("audit", out, check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_a_lost_and_found_holding_files_is_content(tmp_path, small_export, key_file):
    out = tmp_path / "mnt"
    (out / "lost+found").mkdir(parents=True)
    (out / "lost+found" / "#1234").write_bytes(b"recovered by fsck")
    p = run_cli("anonymize", small_export, out, "--key", key_file, "--burned-in", "off", check=False)
    assert p.returncode == 2 and "did not write" in p.stderr, p.stderr


def _closed(fd: int):
    return lambda: os.close(fd)


@pytest.mark.parametrize("args", [["info", "{export}"], ["info", "{export}", "--json"], ["--version"],
                                  ["anonymize", "{export}", "{out}", "--key", "{key}"]],
                         ids=["info", "info-json", "version", "anonymize"])
def test_a_closed_stdout_is_a_request_that_cannot_run(tmp_path, small_export, key_file, args):
    out = tmp_path / "anon"
    argv = [a.format(export=small_export, out=out, key=key_file) for a in args]
    p = subprocess.run([*VINDR, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       preexec_fn=_closed(1), timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: stdout is closed") and len(p.stderr.splitlines()) == 1
    assert not out.exists()                       # refused before anything was written


def test_a_closed_stderr_is_refused_too(tmp_path, small_export):
    p = subprocess.run([*VINDR, "info", str(small_export)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True, preexec_fn=_closed(2), timeout=120)
    assert p.returncode == 2 and p.stdout == ""


def test_stdout_to_dev_null_still_runs(small_export):
    p = subprocess.run([*VINDR, "info", str(small_export)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_the_anonymize_summary_counts_the_images_with_masked_text(tmp_path, key_file):
    out = tmp_path / "anon"
    p = run_cli("anonymize", SAMPLE / "export", out, "--key", key_file, "-j", "2")
    ok = [r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["status"] == "ok"]
    masked = sum(r["redactions"] not in (None, "[]") for r in ok)
    rewritten = sum(bool(r["pixels_modified"]) for r in ok)
    assert masked >= 1                              # the sample has text burned into some images
    assert (f"pixels: {masked} of {len(ok)} written images had boxes masked (burned-in text); {rewritten} had "
            "their Pixel Data rewritten (manifest: redactions, pixels_modified)") in p.stdout.splitlines()


def test_the_summary_says_when_images_were_not_scanned(tmp_path, small_export, key_file):
    p = run_cli("anonymize", small_export, tmp_path / "anon", "--key", key_file, "--burned-in", "off", "-j", "1")
    assert "pixels: 0 of 3 written images had boxes masked (burned-in text; 3 not scanned)" in p.stdout


def test_review_of_a_file_says_it_is_not_a_folder(tmp_path):
    f = tmp_path / "manifest.parquet"
    f.write_bytes(b"PAR1")
    for target, says in ((f, "DIR is not a folder"), (tmp_path / "missing", "DIR does not exist")):
        p = run_cli("review", target, "--no-browser", check=False, timeout=60)
        assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith(f"error: {says}: "), p.stderr
        assert "symbolic link" not in p.stderr


@pytest.mark.parametrize("kind,files", [("a vindr release", ("images.csv", "datasheet.json")),
                                        ("a vindr select output", ("selection.json", "selection.parquet"))])
def test_audit_of_a_release_or_selection_says_what_to_audit(tmp_path, kind, files):
    folder = tmp_path / "rel"
    folder.mkdir()
    for name in files:
        (folder / name).write_text("x\n")
    p = run_cli("audit", folder, check=False)
    assert p.returncode == 1                        # still findings: nothing is waved through
    assert f"warning: OUTPUT is {kind}, not a vindr anonymize OUTPUT: audit the tree it was made from" in p.stderr


def test_audit_of_a_tree_has_no_such_warning(tmp_path, small_export, key_file):
    out = _anon(tmp_path, small_export, key_file)
    p = run_cli("audit", out, check=False)
    assert "not a vindr anonymize OUTPUT" not in p.stderr and p.returncode == 0, p.stdout + p.stderr


def test_baseline_progress_lines_do_not_name_a_source_line():
    from vindr_cli.cli import console

    with console.capture() as cap:
        console.log("epoch 1/3 step 1/3", markup=False, highlight=False)
    assert "epoch 1/3" in cap.get() and "cli.py" not in cap.get() and ".py:" not in cap.get()


def test_pr_curves_without_any_curve_warn_nothing(tmp_path):
    """A short run with no prediction on a test class drew no curve, and matplotlib printed a
    UserWarning (with its source path) about an empty legend to the user's terminal."""
    import warnings
    from types import SimpleNamespace

    from vindr_cli.baseline.report import plot_curves

    rep = SimpleNamespace(curves={"pr": {"Aortic enlargement": ([], [])}, "roc": ([0.0, 1.0], [0.0, 1.0])},
                          detection={"per_class": {"Aortic enlargement": {"ap_50": 0.0}}}, map50=0.0, auroc=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_curves(rep, tmp_path / "pr.png")
    assert (tmp_path / "pr.png").stat().st_size > 0


def test_split_says_how_many_rows_already_named_release_ids(tmp_path, small_export, key_file):
    """The README's chain passes --linkage with annotations keyed as sel/worklist.csv is (release
    image ids): split said "re-keyed 0 annotation rows through the linkage table", as if none matched."""
    out = _anon(tmp_path, small_export, key_file)
    links = [r for r in pq.read_table(tmp_path / "anon.linkage.parquet").to_pylist() if r["status"] == "ok"]
    by_release = [r["image_id"] for r in links[:2]]
    by_uid = [r["original_sop_uid"] for r in links[2:]]
    ann = tmp_path / "ann.csv"
    ann.write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                   + "".join(f"{i},No finding,14,R1,,,,\n" for i in by_release + by_uid))
    p = run_cli("split", ann, "--meta", out / "manifest.parquet", "--linkage", tmp_path / "anon.linkage.parquet",
                "--test-size", "1", "--unit", "patients", "-o", tmp_path / "split")
    assert (f"re-keyed {len(by_uid)} annotation rows through the linkage table; {len(by_release)} already named "
            "release image ids") in p.stdout, p.stdout
    assert by_uid and not any(u in p.stdout for u in by_uid)      # the hospital's UIDs are never printed


def _broken_export(tmp_path, small_export):
    """Only damaged DICOM files and a text file: nothing in it can be read."""
    root = tmp_path / "broken"
    root.mkdir()
    data = (small_export / "NGUYEN VAN AN_PID0001" / "a.dcm").read_bytes()
    (root / "truncated.dcm").write_bytes(data[:700])
    (root / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 300)
    (root / "notes.txt").write_text("notes\n")
    return root


def test_info_strict_fails_on_a_failed_input_as_readme_and_help_say(tmp_path, small_export):
    whole = run_cli("info", small_export, "--strict", check=False)       # holds an empty .dcm: not-dicom, no failure
    assert whole.returncode == 0, whole.stderr
    broken = _broken_export(tmp_path, small_export)
    (broken / "ok.dcm").write_bytes((small_export / "NGUYEN VAN AN_PID0001" / "a.dcm").read_bytes())
    p = run_cli("info", broken, "--strict", check=False)
    assert p.returncode == 1 and "Failed" in p.stdout
    assert run_cli("info", broken, check=False).returncode == 0        # without --strict: a summary, exit 0


@pytest.mark.parametrize("command", ["info", "anonymize"])
def test_an_export_where_nothing_could_be_read_says_so(tmp_path, small_export, key_file, command):
    broken = _broken_export(tmp_path, small_export)
    extra = [tmp_path / "anon", "--key", key_file] if command == "anonymize" else []
    p = run_cli(command, broken, *extra, check=False)
    assert p.returncode == 0
    assert "warning: none of the 3 inputs could be read: 2 failed, 1 not DICOM" in p.stderr, p.stderr
    strict = run_cli(command, broken, *extra, "--strict", check=False)
    assert strict.returncode == 1


def test_evaluate_says_when_readers_boxes_are_each_a_box_to_find(tmp_path):
    """A perfect prediction of a box three readers drew scored AP 0.33 with no word of why."""
    gt = tmp_path / "gt.csv"
    img = "0" * 32
    gt.write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                  + "".join(f"{img},Aortic enlargement,0,R{r},10,10,60,60\n" for r in (1, 2, 3))
                  + f"{'1' * 32},Cardiomegaly,3,R1,5,5,50,50\n{'1' * 32},Cardiomegaly,3,R1,60,60,90,90\n")
    pred = tmp_path / "pred.csv"
    pred.write_text(f"image_id,PredictionString\n{img},0 0.9 10 10 60 60\n{'1' * 32},3 0.8 5 5 50 50\n")
    plain = run_cli("evaluate", "--gt", gt, "--pred", pred)
    # one pair boxed by three readers; the two boxes of one reader are not "several readers"
    assert ("1 image/class pair(s) of the ground truth hold boxes of several readers: each reader's box is one "
            "to find (VinBigData's scoring); --fuse-readers fuses them first") in plain.stdout
    fused = run_cli("evaluate", "--gt", gt, "--pred", pred, "--fuse-readers")
    assert "several readers" not in fused.stdout
