"""The custodian's sign-off rests on checked facts (issue 13's brief: three findings of a
fresh-clone walk).

F1 `vindr release --audit-report` took a report of another tree, or one with findings, and
   exited 0. Now the report carries a fingerprint of the tree it audited (runner.fingerprint)
   and release refuses, in one fixed line (exit 2), a report of another tree or of another
   state of ANON_DIR, an older report without a fingerprint, and one with findings unless
   --accept-audit-findings (then recorded in the datasheet with the counts by kind).
F2 the datasheet's "Left out, and why" omitted selected images that `vindr split` did not
   split (no valid annotation): every selected image not released is now in it.
F3 `vindr audit` reported `phi` in `.vindr/anonymize.json` when an original accession's digit
   run equalled a tag number of the settings' ``trusted_tags`` (a false positive): the tag
   lists are read as tags; a real value planted there or elsewhere in the file is still found.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import SAMPLE, make_cr
from helpers import run_cli
from vindr_cli.release.build import NOT_SELECTED, NOT_SPLIT

RERUN = "re-run vindr audit ANON_DIR --report FILE.json"


def _audit(tree: Path, report: Path) -> dict:
    p = run_cli("audit", tree, "--report", report, "--no-pixels", "-j", "1", check=False)
    assert p.returncode in (0, 1), p.stderr
    return json.loads(report.read_text(encoding="utf-8"))


def _release(anon: Path, split: Path, out: Path, *extra):
    return run_cli("release", anon, "--split", split, "-o", out, *extra, check=False)


def _refused(p, out: Path, *words: str) -> None:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, (p.returncode, p.stderr)
    assert all(w in lines[0] for w in words), lines[0]
    assert not out.exists()


@pytest.fixture(scope="module")
def copy_of_tree(pipeline, tmp_path_factory):
    """A copy of the pipeline's anonymized tree (copied with its files' times), audited clean or not."""
    base, _ = pipeline
    root = tmp_path_factory.mktemp("signoff")
    anon = root / "anon"
    shutil.copytree(base / "anon", anon)
    return base, anon, root


# ----------------------------------------------------------------------------------------- F1

def test_release_refuses_an_audit_report_of_another_tree(copy_of_tree, tmp_path, key_file):
    base, anon, _ = copy_of_tree
    other_in = tmp_path / "in"
    other_in.mkdir()
    make_cr(other_in / "a.dcm")
    other = tmp_path / "other"
    run_cli("anonymize", other_in, other, "--key", key_file)
    report = _audit(other, tmp_path / "other.json")
    assert report["audited"]["manifest_sha256"] and report["audited"]["files"] == 1
    p = _release(base / "anon", base / "split", tmp_path / "r", "--audit-report", tmp_path / "other.json",
                 "--accept-audit-findings")       # accepting findings does not accept another tree's report
    _refused(p, tmp_path / "r", "--audit-report", "another tree", RERUN)


def test_release_checks_the_report_is_of_this_tree_and_records_accepted_findings(copy_of_tree, tmp_path):
    base, anon, root = copy_of_tree
    split = base / "split"
    # audited as it is: released when clean (else only with --accept-audit-findings)
    first = _audit(anon, tmp_path / "a.json")
    assert first["audited"]["files"] == sum(1 for p in anon.rglob("*") if p.is_file()
                                            and p.name != "manifest.parquet" and ".vindr" not in p.parts)
    extra = () if first["findings_total"] == 0 else ("--accept-audit-findings",)
    p = _release(anon, split, tmp_path / "r0", "--audit-report", tmp_path / "a.json", *extra)
    assert p.returncode == 0, p.stderr
    sheet = json.loads((tmp_path / "r0" / "datasheet.json").read_text())
    assert sheet["audit"]["tree_fingerprint_checked"] is True
    # the tree changed after the audit (a file added beside the images): the report is refused
    stray = anon / "notes.txt"
    stray.write_text("left by someone\n")
    p = _release(anon, split, tmp_path / "r1", "--audit-report", tmp_path / "a.json")
    _refused(p, tmp_path / "r1", "another state of ANON_DIR", RERUN)
    # audited again: of this tree, with a finding (the stray file): refused unless accepted
    second = _audit(anon, tmp_path / "b.json")
    assert second["findings_by_kind"].get("stray-file") == 1
    p = _release(anon, split, tmp_path / "r2", "--audit-report", tmp_path / "b.json")
    _refused(p, tmp_path / "r2", f"{second['findings_total']} finding(s)", "--accept-audit-findings")
    p = _release(anon, split, tmp_path / "r3", "--audit-report", tmp_path / "b.json", "--accept-audit-findings")
    assert p.returncode == 0, p.stderr
    assert "accepted with --accept-audit-findings" in p.stdout
    sheet = json.loads((tmp_path / "r3" / "datasheet.json").read_text())
    assert sheet["audit"]["status"] == "findings" and sheet["audit"]["findings_accepted"] is True
    assert sheet["audit"]["findings_by_kind"] == second["findings_by_kind"]
    assert "`vindr release --accept-audit-findings`" in (tmp_path / "r3" / "README.md").read_text()
    # state files are not part of the fingerprint (vindr review writes there after the audit)
    (anon / ".vindr" / "review.jsonl").write_text("")
    p = _release(anon, split, tmp_path / "r4", "--audit-report", tmp_path / "b.json", "--accept-audit-findings",
                 "--allow-unreviewed")        # (an empty decisions file makes the review gate apply)
    assert p.returncode == 0, p.stderr
    stray.unlink()
    (anon / ".vindr" / "review.jsonl").unlink()


def test_release_refuses_an_old_report_and_the_option_without_a_report(pipeline, tmp_path):
    base, _ = pipeline
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"files": 3, "dicom_files": 3, "original_values_searched": 10,
                               "linkage_table_used": True, "findings_total": 0, "findings_by_kind": {},
                               "findings": []}))
    p = _release(base / "anon", base / "split", tmp_path / "r", "--audit-report", old)
    _refused(p, tmp_path / "r", "no fingerprint", RERUN)
    p = _release(base / "anon", base / "split", tmp_path / "r", "--accept-audit-findings")
    _refused(p, tmp_path / "r", "--accept-audit-findings needs --audit-report")


# ----------------------------------------------------------------------------------------- F2

def _released_ids(release: Path) -> set[str]:
    return set(pd.read_csv(release / "images.csv", dtype=str)["image_id"].str[:32])


def test_every_selected_image_not_released_is_in_the_datasheet(pipeline, tmp_path):
    """Without --selection every ok image of ANON_DIR; with one, every selected image: released,
    or counted under a reason of the release stage (no valid annotation among them)."""
    base, release = pipeline
    ok = set(pd.read_parquet(base / "anon" / "manifest.parquet").query("status == 'ok'")["image_id"])
    sheet = json.loads((release / "datasheet.json").read_text())
    left = sheet["excluded"]["release"]
    assert left[NOT_SPLIT] >= 1
    assert len(ok) == len(_released_ids(release)) + sum(left.values())
    assert f"| release | {NOT_SPLIT} | {left[NOT_SPLIT]} |" in (release / "README.md").read_text()
    # the walk's case: vindr select, split --selection, release --selection
    sel, split, out = tmp_path / "sel", tmp_path / "split", tmp_path / "rel"
    run_cli("select", base / "anon", "-o", sel, "--recipe", "vindr-cxr")
    p = run_cli("split", SAMPLE / "annotations" / "vindr_cxr_annotations.csv", "--meta", base / "anon" / "manifest.parquet",
                "--linkage", base / "anon.linkage.parquet", "--test-size", "0.3", "--unit", "patients", "--seed", "0",
                "-o", split, "--selection", sel)
    selected = set(pd.read_parquet(sel / "selection.parquet").query("selected")["image_id"])
    unsplit = selected - set(pd.read_csv(split / "split.csv", dtype=str)["image_id"])
    assert unsplit and f"metadata images without a valid annotation (not split): {len(unsplit)}" in p.stdout
    r = _release(base / "anon", split, out, "--selection", sel)
    r.check_returncode()
    left = json.loads((out / "datasheet.json").read_text())["excluded"]["release"]
    assert left[NOT_SPLIT] == len(unsplit)
    # the terminal says so too, not only the datasheet
    assert f"left out: {len(unsplit)} selected image(s) not in the split, {NOT_SPLIT}" in r.stdout
    assert len(selected) == len(_released_ids(out)) + sum(n for r, n in left.items() if r != NOT_SELECTED)
    assert not _released_ids(out) & unsplit
    # select's rows count reasons, not images (new-user walk 5: they summed to more than were left out)
    sheet = json.loads((out / "datasheet.json").read_text())
    not_selected = sheet["selection"]["images"] - sheet["selection"]["selected"]
    assert not_selected == len(pd.read_parquet(sel / "selection.parquet").query("not selected"))
    assert (f"counted under each, so they may add up to more than the {not_selected} image(s) not selected"
            in (out / "README.md").read_text())


# ----------------------------------------------------------------------------------------- F3

def test_audit_reads_the_settings_tag_lists_as_tags_and_still_finds_planted_values(tmp_path, key_file):
    from vindr_cli.deid.audit import audit

    # one run to learn the settings' trusted tags (the profile's, the same for any input)
    (tmp_path / "in0").mkdir()
    make_cr(tmp_path / "in0" / "a.dcm")
    run_cli("anonymize", tmp_path / "in0", tmp_path / "out0", "--key", key_file)
    trusted = json.loads((tmp_path / "out0" / ".vindr" / "anonymize.json").read_text())["settings"]["trusted_tags"]
    tag = next(t for t in trusted if t.isdigit() and not t.startswith("00"))
    # the burned-in bench's accession shape: letters + 8 digits that are a trusted tag's number
    accession, pid = "XQ" + tag, "55443322"          # 5544,3322: not a tag of the dictionary

    def plant(ds):
        ds.AccessionNumber = accession
        ds.PatientID = pid
    (tmp_path / "in").mkdir()
    make_cr(tmp_path / "in" / "a.dcm", extra=plant)
    out = tmp_path / "out"
    run_cli("anonymize", tmp_path / "in", out, "--key", key_file)
    link = tmp_path / "out.linkage.parquet"
    state = out / ".vindr" / "anonymize.json"
    assert tag in state.read_text()
    report = audit(out, link, pixels=False)
    assert report.linkage and report.terms > 0
    assert [f for f in report.findings if f.where.startswith(".vindr/")] == []
    # real values planted into the settings file are still found: in a tag list (an ID that is
    # not a tag; the original accession as written) and elsewhere in the file
    original = state.read_text()
    for where, value in (("trusted_tags", pid), ("removed_tags", accession), ("profile_source", tag)):
        data = json.loads(original)
        if where == "profile_source":
            data["settings"][where] = f"recipe {value}"
        else:
            data["settings"][where].append(value)
        state.write_text(json.dumps(data))
        found = [f for f in audit(out, link, pixels=False).findings if f.kind == "phi"]
        assert [f.where for f in found] == [".vindr/anonymize.json"], where
        assert all(value not in f.where + f.detail for f in found)      # never the value
    state.write_text(original)
