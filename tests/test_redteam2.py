"""Red-team regressions of today's surfaces (select, push, review): each test is an attack
that worked once. The committed sample export is anonymized and selected for real; the
hostile parts are planted by hand, as an intruder with write access to the folders would:
a hand-edited ANON_DIR/manifest.parquet, a folder link planted in the anonymized tree, a
link planted in SELECTION/dicom. The "original" planted outside carries a fake name
(QXNAME^SECRET) that must never be handed on, rendered, or quoted."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
import pytest

from conftest import SAMPLE
from helpers import key_file_in
from vindr_cli.curate import push as push_mod
from vindr_cli.curate.recipe import load_recipe
from vindr_cli.curate.select import select
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.review.queues import ReviewDirError, build_queues
from vindr_cli.review.server import ReviewApp

SECRET = "QXNAME^SECRET"


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("redteam2")
    key = key_file_in(base)
    anon, sel = base / "anon", base / "selection"
    anonymize(SAMPLE / "export", anon, key_path=key, profile=load_profile(), workers=1)
    select(anon, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    return anon, sel


def _rows(anon: Path) -> list[dict]:
    return pq.read_table(anon / "manifest.parquet").to_pylist()


def _selected(sel: Path) -> list[str]:
    return sorted(r["image_id"] for r in pq.read_table(sel / "selection.parquet").to_pylist() if r["selected"])


def _edit_manifest(anon: Path, edit) -> None:
    t = pq.read_table(anon / "manifest.parquet")
    rows = t.to_pylist()
    edit([r for r in rows if r["status"] == "ok"])
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), anon / "manifest.parquet")


def _plant_original(de_identified: Path, dest: Path) -> Path:
    """A copy of a de-identified file made identifying again: the 'original' outside the tree."""
    ds = pydicom.dcmread(de_identified)
    ds.PatientName = SECRET
    ds.PatientID = "QXID0042"
    ds.PatientIdentityRemoved = "NO"
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


@pytest.fixture
def hostile(trees, tmp_path):
    anon, _ = trees
    h = tmp_path / "anon"
    shutil.copytree(anon, h)
    return h


# ------------------------------------------------------------------ review: hand-edited manifest

@pytest.mark.parametrize("how", ["absolute", "traversal"])
def test_review_refuses_a_manifest_output_outside_the_tree(hostile, tmp_path, how):
    """Leaked: review rendered (and served over HTTP) the pixels of any DICOM file a
    hand-edited manifest named, e.g. an original outside the tree."""
    ok = [r for r in _rows(hostile) if r["status"] == "ok"]
    original = _plant_original(hostile / ok[0]["output"], tmp_path / SECRET / "orig.dcm")
    target = str(original) if how == "absolute" else f"../{SECRET}/orig.dcm"
    assert (hostile / target).resolve() == original.resolve()

    def edit(rows):
        rows[0]["output"] = target
    _edit_manifest(hostile, edit)
    with pytest.raises(ReviewDirError) as e:
        build_queues(hostile, spot=100)
    assert "QXNAME" not in str(e.value) and SECRET not in str(e.value) and "orig.dcm" not in str(e.value)


def test_review_refuses_an_image_id_with_slashes(hostile, tmp_path):
    """Bypassed: an image_id such as ../../../../X named the thumbnail cache file, so the
    prefetch thread wrote PNGs outside DIR (parents made on the way)."""
    def edit(rows):
        rows[0]["image_id"] = "../../../../PWNED"
    _edit_manifest(hostile, edit)
    with pytest.raises(ReviewDirError):
        build_queues(hostile, spot=100)
    assert not list(tmp_path.rglob("PWNED*"))


def test_review_never_renders_through_a_folder_link_planted_in_the_tree(hostile, tmp_path):
    """Leaked: a folder of the tree replaced by a link to a folder of originals was
    followed, and the original's pixels rendered for the page."""
    ok = [r for r in _rows(hostile) if r["status"] == "ok"]
    victim, other = ok[0], ok[1]
    out = hostile / victim["output"]
    outside = tmp_path / f"outside_{SECRET}"
    shutil.copytree(out.parent, outside)
    _plant_original(out, outside / out.name)
    shutil.rmtree(out.parent)
    os.symlink(outside, out.parent)
    app = ReviewApp(build_queues(hostile, spot=100))
    assert app.image(other["image_id"], "thumb", "header", 0)[:8] == b"\x89PNG\r\n\x1a\n"   # the rest still shows
    with pytest.raises(OSError) as e:
        app.image(victim["image_id"], "thumb", "header", 0)
    assert SECRET not in str(e.value) and "outside_" not in str(e.value)
    cache = list((hostile / ".vindr" / "review" / "cache").glob(f"{victim['image_id']}_*"))
    assert cache == []


# ------------------------------------------------------------------ select: folder link in ANON_DIR

def test_select_never_hands_on_a_file_reached_through_a_folder_link(trees, hostile, tmp_path):
    """Leaked: a folder of ANON_DIR replaced by a link to a folder of originals passed
    select's regular-file check (lstat of the file, not of its folders); the original was
    selected and hard-linked into SELECTION/dicom for the annotators."""
    _, sel0 = trees
    iid = _selected(sel0)[0]
    row = next(r for r in _rows(hostile) if r.get("image_id") == iid)
    out = hostile / row["output"]
    outside = tmp_path / f"outside_{SECRET}"
    shutil.copytree(out.parent, outside)
    _plant_original(out, outside / out.name)
    shutil.rmtree(out.parent)
    os.symlink(outside, out.parent)
    sel = tmp_path / "selection"
    select(hostile, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    assert iid not in _selected(sel)
    assert not (sel / "dicom" / f"{iid}.dcm").exists()
    assert len(_selected(sel)) == len(_selected(sel0)) - 1           # the others are still handed on
    for f in (sel / "dicom").iterdir():
        assert b"QXNAME" not in f.read_bytes()
    for f in sel.rglob("*"):
        if f.is_file():
            assert b"QXNAME" not in f.read_bytes() and b"outside_" not in f.read_bytes(), f.name


# ------------------------------------------------------------------ push: link in SELECTION/dicom

def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_push_refuses_a_link_planted_in_selection_dicom(trees, tmp_path):
    """Bypassed: push followed a symbolic link planted in SELECTION/dicom out of the
    selection; only the header gate (PatientIdentityRemoved, SOPInstanceUID) stood between
    an outside file that claims both and the server. Now the link itself is refused,
    before any network (the server here is a closed port)."""
    _, sel0 = trees
    sel = tmp_path / "selection"
    shutil.copytree(sel0, sel)
    ids = _selected(sel)
    victim = sel / "dicom" / f"{ids[0]}.dcm"
    ds = pydicom.dcmread(victim)
    ds.PatientName = SECRET                  # lies: still says PatientIdentityRemoved YES, same SOP UID
    outside = tmp_path / f"outside_{SECRET}" / "x.dcm"
    outside.parent.mkdir()
    ds.save_as(outside)
    victim.unlink()
    os.symlink(outside, victim)
    summary = push_mod.push_selection(sel, f"http://127.0.0.1:{_closed_port()}/dicom-web", timeout=5)
    rows = {r["image_id"]: r for r in pq.read_table(summary.table).to_pylist()}
    assert rows[ids[0]]["status"] == "failed" and rows[ids[0]]["reason"] == push_mod.R_LINK
    assert all(rows[i]["reason"] != push_mod.R_LINK for i in ids[1:])    # real files pass the gate
    assert b"QXNAME" not in summary.table.read_bytes() and b"outside_" not in summary.table.read_bytes()


def test_push_refuses_a_dicom_folder_that_is_a_link(trees, tmp_path):
    _, sel0 = trees
    sel = tmp_path / "selection"
    shutil.copytree(sel0, sel)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(sel / "dicom", elsewhere)
    os.symlink(elsewhere, sel / "dicom")
    summary = push_mod.push_selection(sel, f"http://127.0.0.1:{_closed_port()}/dicom-web", timeout=5)
    rows = pq.read_table(summary.table).to_pylist()
    assert rows and all(r["reason"] == push_mod.R_LINK for r in rows)


# ------------------------------------------------------------------ release datasheet: hand-edited inputs

def test_datasheet_never_quotes_a_finding_kind_of_a_hand_edited_audit_report(tmp_path):
    """Leaked: audit_status copied every key of the report's findings_by_kind into
    datasheet.json and README.md, so a hand-edited --audit-report put any text there."""
    from vindr_cli.release import datasheet as sheet_mod

    report = tmp_path / "audit.json"
    report.write_text(json.dumps({"files": 3, "dicom_files": 3, "findings_total": 3, "linkage_table_used": False,
                                  "findings_by_kind": {SECRET: 2, "private": 1}, "findings": []}))
    status = sheet_mod.audit_status(report)
    assert status["findings_by_kind"] == {"(other)": 2, "private": 1}
    assert SECRET not in json.dumps(status)


def test_datasheet_audit_kinds_cover_every_kind_vindr_audit_writes():
    """The datasheet's list of audit kinds (release may not import deid) is the audit's own."""
    import re

    from vindr_cli.deid import audit, policy
    from vindr_cli.release.datasheet import AUDIT_KINDS

    src = Path(audit.__file__).read_text(encoding="utf-8")
    literal = set(re.findall(r'report\.add\("([a-z-]+)"', src))
    refusals = {policy.VR_MISMATCH, policy.URL, policy.BINARY_KIND, policy.GRAMMAR, policy.UNSAFE_TEXT,
                policy.IDENTIFYING}
    assert len(literal) >= 20
    assert literal | refusals <= AUDIT_KINDS


def test_datasheet_never_quotes_a_hand_edited_manifest_reason():
    """Leaked: release quoted the reason strings of ANON_DIR/manifest.parquet's non-ok rows
    verbatim, so a hand-edited reason reached datasheet.json/README.md. Now a reason is shown
    only when it is in the vocabulary of reasons vindr writes (schemas/tables/reasons.json)."""
    from vindr_cli.deid.burned_in import quarantine_reason
    from vindr_cli.release import datasheet as sheet_mod

    sc = pydicom.Dataset()
    sc.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    real = quarantine_reason(sc)
    rows = [{"status": "quarantined", "reason": f"patient {SECRET} born 19700101"},
            {"status": "quarantined", "reason": f"SOP Class {SECRET} commonly carries burned-in or embedded text"},
            {"status": "failed", "reason": f"unexpected error ({SECRET})"},
            {"status": SECRET, "reason": real},
            {"status": "quarantined", "reason": real}, {"status": "ok", "reason": None}]
    out = sheet_mod.anonymize_exclusions(rows)
    assert SECRET not in json.dumps(out) and "QXNAME" not in json.dumps(out)
    assert out == {"quarantined": {"(other reason)": 2, real: 1}, "failed": {"(other reason)": 1},
                   "(other status)": {real: 1}}


# ------------------------------------------------------------------ audit: a stray file's own name

def test_audit_never_quotes_an_identifying_name_of_a_stray_file(hostile, tmp_path):
    """Leaked: vindr audit showed a stray file's path as it is unless a component matched a
    linkage-table value, so an identifying folder or file name not in the linkage table (here
    no linkage table at all) was quoted in the findings. Now a component vindr could not have
    written is shown as <name N>; the real path is only in memory, for --locate."""
    from vindr_cli.deid.audit import audit

    ok = [r for r in _rows(hostile) if r["status"] == "ok"]
    _plant_original(hostile / ok[0]["output"], hostile / f"{SECRET}_19700101" / "QXID0042.dcm")
    inside = Path(ok[1]["output"]).parent / "QXID0042 notes.txt"
    (hostile / inside).write_text("x")
    report = audit(hostile, pixels=False)
    strays = {f.where for f in report.findings if f.kind == "stray-file"}
    where = {v: k for k, v in report.locations()}              # real path -> shown
    planted, notes = where[f"{SECRET}_19700101/QXID0042.dcm"], where[inside.as_posix()]
    assert strays == {planted, notes}
    assert re.fullmatch(r"<name \d+>/<name \d+>\.dcm", planted)
    assert re.fullmatch(re.escape(inside.parent.as_posix()) + r"/<name \d+>\.txt", notes)   # vindr's folders shown
    text = json.dumps(report.to_dict()) + report.to_tsv()
    assert "QXNAME" not in text and "QXID0042" not in text


# ------------------------------------------------------------------ release: hand-edited manifest

@pytest.mark.parametrize("how", ["absolute", "traversal", "folder-link"])
def test_release_never_places_a_file_from_outside_anon_dir(pipeline, tmp_path, how):
    """Leaked: release linked ANON_DIR / manifest ``output`` into RELEASE as given, so a
    hand-edited manifest (an absolute path, ../) or a folder link planted in ANON_DIR put an
    original from outside the tree into the release."""
    from vindr_cli.errors import RequestError
    from vindr_cli.release.build import build_release

    base, _ = pipeline
    anon = tmp_path / "anon"
    shutil.copytree(base / "anon", anon)
    split_ids = {line.split(",")[0] for line in (base / "split" / "split.csv").read_text().splitlines()[1:]}
    ok = [r for r in _rows(anon) if r["status"] == "ok" and r["image_id"] in split_ids]
    victim = ok[0]
    original = _plant_original(anon / victim["output"], tmp_path / f"outside_{SECRET}" / Path(victim["output"]).name)
    if how == "folder-link":
        folder = (anon / victim["output"]).parent
        shutil.rmtree(original.parent)
        shutil.copytree(folder, original.parent)
        _plant_original(anon / victim["output"], original)
        shutil.rmtree(folder)
        os.symlink(original.parent, folder)
    else:
        target = str(original) if how == "absolute" else os.path.relpath(original, anon)

        def edit(rows):
            next(r for r in rows if r["image_id"] == victim["image_id"])["output"] = target
        _edit_manifest(anon, edit)
    out = tmp_path / "release"
    with pytest.raises(RequestError) as exc:
        build_release(anon, base / "split", out)
    assert SECRET not in str(exc.value) and "outside_" not in str(exc.value)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]   # nothing half-made


# ------------------------------------------------------------------ review: links planted in DIR/.vindr

@pytest.mark.parametrize("planted", ["review", "review.jsonl"])
def test_review_never_writes_through_a_link_planted_in_its_state_folder(hostile, tmp_path, planted):
    """Bypassed: DIR/.vindr/review (the rendering cache's folder) or DIR/.vindr/review.jsonl
    (the decisions journal) made a link sent the thumbnails and the decisions outside DIR."""
    state = hostile / ".vindr"
    for name in ("review", "review.jsonl", "review.parquet", "review.lock"):
        p = state / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere if planted == "review" else elsewhere / "j.jsonl", state / planted)
    from vindr_cli.review.decisions import DecisionError, record

    with pytest.raises(DecisionError) as e:
        build_queues(hostile, spot=3)                 # the server never starts
    assert str(tmp_path) not in str(e.value)
    iid = next(r["image_id"] for r in _rows(hostile) if r["status"] == "ok")
    with pytest.raises(DecisionError):
        record(hostile, iid, "spot-check", "accept", box=None, reviewer=None, shape=(10, 10, 1))
    assert list(elsewhere.rglob("*")) == []


def test_select_refuses_a_hand_edited_image_id(hostile, tmp_path):
    """Leaked: select took any image_id of the manifest, so a hand-edited one (a name, a
    path) was copied into selection.parquet and worklist.csv and named a file of
    SELECTION/dicom; now refused with a fixed line (review and push refuse it too)."""
    from vindr_cli.curate.select import SelectRequestError

    def edit(rows):
        rows[0]["image_id"] = f"{SECRET}/x"
    _edit_manifest(hostile, edit)
    sel = tmp_path / "selection"
    with pytest.raises(SelectRequestError) as e:
        select(hostile, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    assert SECRET not in str(e.value)
    assert not [f for f in (sel.rglob("*") if sel.exists() else []) if f.is_file() and b"QXNAME" in f.read_bytes()]
