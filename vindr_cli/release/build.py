"""``vindr release``: materialise a release from an anonymized tree and a split.

RELEASE/
  README.md, datasheet.json, datasheet.png   the datasheet (release/datasheet.py)
  labels.json               the label set: name, source, class names and ids (annotations.labels)
  split.csv, split_report.json   (split.csv: the released images of the split; split_report.json
                            gains ``release_dropped`` {side: n} when the release left split images out)
  images.csv                one row per released image (schemas/release/images.json)
  train/dicom/<image_id>.dicom   (hard links when on the same file system, else copies)
  train/images/<id>.png     (with --images; <id> = image_id, or <image_id>_<frame> under --multiframe every)
  test/...
  annotations/annotations_{train,test}.csv   VinDr layout (DICOM pixel coordinates)
  annotations/kaggle_{train,test}.csv        Kaggle train.csv form (VinDr-CXR only)
  annotations/coco_{train,test}.json         COCO (decoded-image pixels when --images)
  yolo/labels/{train,test}/<id>.txt          YOLO boxes (an image with no box: an empty file)
  yolo/images/{train,test}/<id>.png, yolo/data.yaml   (with --images) Ultralytics' layout: a
                            label path is the image path with the last /images/ made /labels/
                            and the suffix .txt
With ``selection`` (a ``vindr select`` output) only selected images are released; split images
not selected, and multi-frame images excluded by the policy (release/selection.py), are left
out and counted (datasheet, summary), as are their annotation rows.
The release is built in a hidden folder beside RELEASE and renamed into place at the end.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vindr_cli import __version__
from vindr_cli.annotations import BadRows, LabelSet, load_labels, read_annotations, read_labels_json, \
    to_published, write_labels_json
from vindr_cli.errors import RequestError
from vindr_cli.release import datasheet as sheet_mod
from vindr_cli.release import exports
from vindr_cli.release.selection import MULTIFRAME, Selection, SelectionError, frame_ids, read_selection, \
    shown_recipe
from vindr_cli.release.tables import write_csv
from vindr_cli.review import gate as review_gate
from vindr_cli.atomic import atomic_write
from vindr_cli.dicomio.provenance import is_vindr_output
from vindr_cli.dicomio.pixelstream import file_sha256
from vindr_cli.runner.sources import enclosing_output, is_within
from vindr_cli.runner.state import Settings
from vindr_cli.tables import iter_rows

SPLITS = ("train", "test")


class ReleaseError(RequestError):
    """A release that cannot be built (exit 2, one line)."""


@dataclass
class ReleaseSummary:
    images: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, int] = field(default_factory=dict)
    linked: int = 0
    copied: int = 0
    path: Path | None = None
    label_set: str = ""
    bad_rows: BadRows = field(default_factory=BadRows)
    dropped: Counter = field(default_factory=Counter)            # split images not released, by reason
    dropped_rows: Counter = field(default_factory=Counter)       # annotation rows left out, by reason
    multiframe: dict = field(default_factory=dict)               # policy, source, images, frames, excluded
    audit: str = "not audited"
    not_split: Counter = field(default_factory=Counter)         # images selected but not in split.csv, by reason
    review: dict = field(default_factory=lambda: {"status": "not reviewed"})   # review/gate.py
    warnings: list[str] = field(default_factory=list)
    licence: str = sheet_mod.NOT_SET


OUTSIDE_TREE = ("{what} names a file outside its folder, or one reached through a link (it is not vindr's; "
                "re-run the stage that wrote it): nothing of it is released")


def _place(src: Path, dst: Path, summary: ReleaseSummary, root: Path, what: str) -> None:
    """Link (else copy) ``src`` to ``dst``; ``src`` must be a regular file whose real path is
    inside ``root`` (a hand-edited table or a link planted in the tree never brings a file
    from outside into the release)."""
    if not is_within(src, root) or src.is_symlink() or not src.is_file():
        raise ReleaseError(OUTSIDE_TREE.format(what=what))
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        summary.linked += 1
    except OSError:
        shutil.copy2(src, dst)
        summary.copied += 1


NOT_DEIDENTIFIED = ("{n} file(s) of ANON_DIR are not the de-identified output their manifest.parquet row describes "
                    "(PatientIdentityRemoved is not YES, or the patient or instance id differs, or the file cannot be "
                    "read): a file was replaced or copied in; nothing is released. Re-run vindr anonymize into ANON_DIR")


_is_vindr_output = is_vindr_output     # the check shared with curate.handoff and decode (dicomio.provenance)


STALE_DECODE = ("{n} decoded image(s) in --images were made before their DICOM file was re-written with the boxes "
                "drawn in vindr review: they still show what the boxes mask. Run vindr decode again into a new folder "
                "(a re-run into the same folder keeps them) and pass that")


def _decoded_before_review(image: Path, dicom: Path, m: dict) -> bool:
    """Whether the decoded ``image`` is older than ``dicom``, an output `vindr anonymize`
    re-wrote with review boxes (manifest ``review_boxes``): the image was made from the pixels
    before the boxes were masked (red team 6). Only such outputs are compared (no other output
    is ever re-written in place), so a copy that reset modification times cannot refuse others."""
    if not m.get("review_boxes") or m.get("review_boxes") == "[]":
        return False
    try:
        return image.stat().st_mtime_ns < dicom.stat().st_mtime_ns
    except OSError:
        return False              # a missing file is _place's to refuse


def _decoded(images_dir: Path | None) -> dict[tuple[str, int], dict]:
    """Decode rows by (the anonymized file they came from, frame)."""
    if images_dir is None:
        return {}
    table = images_dir / "images.parquet"
    if not table.is_file():
        raise ReleaseError("--images folder has no images.parquet (run vindr decode on the anonymized tree)")
    return {(r["input"], int(r["frame"] or 0)): r for r in iter_rows(table, _DECODED_COLUMNS) if r["status"] == "ok"}


# What the release reads of the tables it is given (iter_rows: a million-row table is read in
# batches, and only these columns): the anonymize manifest's ok rows, the counts of the others
# (datasheet: anonymize_exclusions), and images.parquet's ok rows. The manifest's keyed ids are
# read for _is_vindr_output (patient_id, sop_uid), _tree_ids (study_uid, patient_id) and
# _decoded_before_review (review_boxes): a column left out here reads as None there, which
# refuses every file or silently skips a check (tests/test_release.py, test_redteam6_review.py).
_MANIFEST_COLUMNS = ("image_id", "status", "reason", "output", "rows", "columns", "pixel_sha256", "frames",
                     "patient_id", "sop_uid", "study_uid", "review_boxes", "pixels_modified", "redactions")
_DECODED_COLUMNS = ("input", "frame", "status", "output", "out_rows", "out_cols", "scale_x", "scale_y")


def _read_manifest(path: Path) -> tuple[dict[str, dict], list[dict]]:
    """({image_id: ok row}, the rows that are not ok) of the anonymize manifest."""
    ok, others = {}, []
    for r in iter_rows(path, _MANIFEST_COLUMNS):
        if r["status"] == "ok":
            ok[r["image_id"]] = r
        else:
            others.append(r)
    return ok, others


NOT_SELECTED = "not selected"
MF_EXCLUDED = "multi-frame (policy exclude)"
# selected images (every ok image of ANON_DIR without --selection) that are not in split.csv,
# so never released: counted in the datasheet's "Left out, and why" (_not_split)
NOT_SPLIT = "no valid annotation (not split by vindr split)"
MF_EXCLUDED_AT_SPLIT = "multi-frame (policy exclude, left out by vindr split --selection)"
MF_PER_FRAME = "multi-frame image released per frame (the annotation names no frame)"


def _policy(sel: Selection | None, multiframe: str | None) -> tuple[str, str]:
    """(multi-frame policy, where it came from): the selection's, else --multiframe, else first."""
    if multiframe is not None and multiframe not in MULTIFRAME:
        raise ReleaseError(f"--multiframe must be one of {', '.join(MULTIFRAME)}")
    if sel is not None and "multiframe" in sel.info:
        if multiframe is not None and multiframe != sel.multiframe:
            raise ReleaseError(f"--multiframe {multiframe} disagrees with the selection's multiframe "
                               f"{sel.multiframe} (leave the option out, or select again)")
        return sel.multiframe, "selection.json"
    if multiframe is not None:
        return multiframe, "--multiframe"
    return "first", "default"


def _frames(m: dict) -> int:
    f = m.get("frames")
    try:
        return max(1, int(f)) if f is not None and f == f else 1
    except (TypeError, ValueError):
        return 1


def release_labels(split_dir: Path, labels=None) -> LabelSet | None:
    """The label set of a release: ``labels`` (--labels) if given, else the one `vindr split`
    recorded in DIR/labels.json, else None (the form's default)."""
    if labels is not None:
        return load_labels(labels)
    recorded = Path(split_dir) / "labels.json"
    return read_labels_json(recorded) if recorded.is_file() else None


def build_release(anon_dir: Path, split_dir: Path, out: Path, *, images_dir: Path | None = None,
                  fuse_readers: bool = False, labels=None, selection: Path | None = None,
                  multiframe: str | None = None, audit_report: Path | None = None,
                  licence: str | None = None, review: Path | None = None,
                  allow_unreviewed: bool = False, accept_audit_findings: bool = False) -> ReleaseSummary:
    """Build RELEASE (module doc). ``labels``: a label set (name, TOML file) overriding the
    one `vindr split` recorded. ``selection``: a ``vindr select`` output; ``multiframe``:
    first | every | exclude (default: the selection's, else first); ``audit_report``: the
    JSON of ``vindr audit --report``, refused unless it is of ANON_DIR as it is now (its
    fingerprint) and clean, or ``accept_audit_findings`` (recorded in the datasheet);
    ``licence``: the licence text the datasheet states.
    Raises :class:`ReleaseError` (exit 2) for a request that cannot run; bad annotation
    rows are left out and listed in ``summary.bad_rows``, rows and images the selection or
    the multi-frame policy leave out are counted in ``summary.dropped_rows``/``dropped``.
    ``review``/``allow_unreviewed``: the `vindr review` decisions that gate the release
    (review/gate.py: undecided flagged images refuse it, excluded ones are left out)."""
    anon_dir, split_dir, out = anon_dir.resolve(), split_dir.resolve(), out.resolve()
    if out.exists():
        raise ReleaseError("RELEASE already exists; choose a new folder")
    if enclosing_output(out) is not None:
        raise ReleaseError("RELEASE must not be inside another vindr output folder")
    if not (anon_dir / "manifest.parquet").is_file():
        raise ReleaseError("ANON_DIR has no manifest.parquet (is it the output of vindr anonymize?)")
    if not (split_dir / "split.csv").is_file():
        raise ReleaseError("--split folder has no split.csv (run vindr split first)")
    try:
        sel = read_selection(Path(selection)) if selection is not None else None
    except SelectionError as exc:
        raise ReleaseError(str(exc)) from None
    policy, policy_source = _policy(sel, multiframe)
    if audit_report is not None:
        if not Path(audit_report).is_file():
            raise ReleaseError("--audit-report file does not exist")
        try:
            sheet_mod.check_audit_report(Path(audit_report))
            # of ANON_DIR as it is now, and clean unless the custodian accepts its findings
            sheet_mod.check_audit_tree(Path(audit_report), anon_dir, accept_findings=accept_audit_findings)
        except ValueError as exc:
            raise ReleaseError(str(exc)) from None
    elif accept_audit_findings:
        raise ReleaseError("--accept-audit-findings needs --audit-report")
    if licence is not None and not licence.strip():
        raise ReleaseError("--licence must not be empty")
    label_set = release_labels(split_dir, labels)
    manifest, manifest_rows = _read_manifest(anon_dir / "manifest.parquet")   # ok rows; the others (datasheet)
    split = pd.read_csv(split_dir / "split.csv", dtype=str)
    missing = set(split["image_id"]) - set(manifest)
    if missing:
        raise ReleaseError(f"{len(missing)} image(s) of split.csv are not in the anonymized tree's manifest")
    summary = ReleaseSummary(path=out, licence=" ".join(licence.split()) if licence else sheet_mod.NOT_SET)
    split, foreign_ids = _tree_ids(split, manifest)
    if foreign_ids:
        summary.warnings.append(FOREIGN_IDS.format(n=foreign_ids))
    if sel is not None and sel.info.get("anon_dir_manifest_sha256"):
        digest = file_sha256(anon_dir / "manifest.parquet")
        if digest != sel.info["anon_dir_manifest_sha256"]:
            summary.warnings.append("the selection was made from another state of ANON_DIR (its manifest.parquet "
                                    "changed since vindr select ran); images it does not list are not released")
    entries, left_out = _entries(split, manifest, sel, policy, summary)
    summary.not_split.update(_not_split(split, manifest, sel).values())
    gate = review_gate.check(anon_dir, {e[0].image_id for e in entries}, selection=selection, review=review,
                             audit_report=audit_report, allow_unreviewed=allow_unreviewed)
    entries = [e for e in entries if e[0].image_id not in gate.left_out]
    left_out.update(gate.left_out)
    summary.dropped.update(gate.left_out.values())
    summary.review = gate.sheet()
    if not entries:
        # a release of no image was written with exit 0 (new-user walk 6: the SELECTION was made again
        # with another recipe after vindr split, and none of the split's images was still selected)
        why = ", ".join(f"{n} {reason}" for reason, n in Counter(left_out.values()).most_common())
        raise ReleaseError(f"nothing to release: none of split.csv's {len(split)} image(s) would be released"
                           + (f" ({why})" if why else "") + "; if the selection changed after vindr split, "
                           "run vindr split again with --selection SELECTION")
    if gate.status == "not reviewed":
        summary.warnings.append("no vindr review decisions found: the datasheet says the release was not reviewed")
    summary.multiframe.update(policy=policy, source=policy_source)
    decoded = _decoded(images_dir)
    if images_dir is not None:
        lacking = [e for e in entries if (manifest[e[0].image_id]["output"], e[2]) not in decoded]
        if lacking:
            raise ReleaseError(f"{len(lacking)} image(s) have no decoded image in --images")

    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        rows = _place_images(entries, manifest, decoded, anon_dir, images_dir, stage, summary)
        images = pd.DataFrame(rows, columns=["image_id", "split", "study_id", "patient_id", "dicom", "image", "rows",
                                             "columns", "image_rows", "image_cols", "scale_x", "scale_y",
                                             "pixel_sha256", "frame", "frames"])
        write_csv(images, "images", stage / "images.csv")
        ann_path = split_dir / "annotations.csv"
        classes: tuple[str, ...] = ()
        counts = {}
        if ann_path.is_file():
            label_set, classes, counts = _annotations(ann_path, label_set, images, stage, fuse_readers, summary,
                                                      left_out, decoded=images_dir is not None)
        _copy_split(split_dir, stage, split, left_out, rewrite=bool(foreign_ids))
        if label_set is not None:
            write_labels_json(stage / "labels.json", label_set)
            summary.label_set = label_set.name
        else:
            write_labels(stage / "labels.json", classes)
        report = json.loads((split_dir / "split_report.json").read_text()) if (split_dir / "split_report.json").is_file() else {}
        _write_datasheet(stage, summary, images, manifest_rows, sel, anon_dir, counts, classes, report,
                         audit_report, decoded=images_dir is not None, fused=fuse_readers, manifest=manifest,
                         accept_audit_findings=accept_audit_findings)
        os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return summary


def _entries(split, manifest, sel, policy, summary) -> tuple[list[tuple], dict[str, str]]:
    """(split row, released id, frame) per image to release, and {image_id: reason} of the
    split's images left out (not selected, multi-frame excluded)."""
    entries, left_out = [], {}
    mf = {"images": 0, "frames_released": 0, "excluded": 0}
    for r in split.itertuples(index=False):
        if r.split not in SPLITS:
            raise ReleaseError("split.csv has a split other than train/test")
        if sel is not None and r.image_id not in sel.selected:
            left_out[r.image_id] = NOT_SELECTED
            continue
        frames = _frames(manifest[r.image_id])
        ids = frame_ids(r.image_id, frames, policy)
        if frames > 1:
            mf["images"] += 1
            mf["frames_released"] += len(ids)
            if not ids:
                mf["excluded"] += 1
                left_out[r.image_id] = MF_EXCLUDED
        entries += [(r, rid, k) for rid, k in ids]
    summary.multiframe.update(mf)
    summary.dropped.update(left_out.values())
    return entries, left_out


def _not_split(split, manifest, sel) -> dict[str, str]:
    """{image_id: reason} of the images selected (with no selection: every ok image of
    ANON_DIR) that split.csv does not hold, so that are never released: a multi-frame image
    the selection's ``exclude`` policy left out at `vindr split --selection`, else an image
    with no valid annotation row (`vindr split` prints "metadata images without a valid
    annotation (not split)")."""
    pool = set(sel.selected) if sel is not None else set(manifest)
    missing = pool - set(split["image_id"])
    multi = ({i for i, f in sel.frames().items() if f > 1} if sel is not None and sel.multiframe == "exclude"
             else set())
    return {i: MF_EXCLUDED_AT_SPLIT if i in multi else NOT_SPLIT for i in sorted(missing)}


def _place_images(entries, manifest, decoded, anon_dir, images_dir, stage, summary) -> list[dict]:
    rows = []
    foreign = stale = 0
    for r, rid, frame in entries:
        m = manifest[r.image_id]
        dicom = f"{r.split}/dicom/{r.image_id}.dicom"
        if not (stage / dicom).exists():           # frames of one file share it
            _place(anon_dir / m["output"], stage / dicom, summary, anon_dir, "ANON_DIR/manifest.parquet")
            foreign += not _is_vindr_output(stage / dicom, m)    # the placed file (a link: the same inode)
        row = {"image_id": rid, "split": r.split, "study_id": r.study_id, "patient_id": r.patient_id,
               "dicom": dicom, "image": None, "rows": m["rows"], "columns": m["columns"],
               "image_rows": None, "image_cols": None, "scale_x": None, "scale_y": None,
               "pixel_sha256": m["pixel_sha256"], "frame": frame, "frames": _frames(m)}
        d = decoded.get((m["output"], frame))
        if d is not None:
            stale += _decoded_before_review(images_dir / d["output"], anon_dir / m["output"], m)
            ext = Path(d["output"]).suffix
            image = f"{r.split}/images/{rid}{ext}"
            _place(images_dir / d["output"], stage / image, summary, images_dir, "--images folder's images.parquet")
            row.update(image=image, image_rows=d["out_rows"], image_cols=d["out_cols"],
                       scale_x=d["scale_x"], scale_y=d["scale_y"])
        rows.append(row)
        summary.images[r.split] = summary.images.get(r.split, 0) + 1
    if foreign:
        raise ReleaseError(NOT_DEIDENTIFIED.format(n=foreign))
    if stale:
        raise ReleaseError(STALE_DECODE.format(n=stale))
    return rows


FOREIGN_IDS = ("{n} study or patient id(s) of split.csv are not the anonymized tree's substitutes (a --meta table "
               "with the hospital's own ids?): the release gives each image its tree's ids instead")


def _tree_ids(split: pd.DataFrame, manifest: dict) -> tuple[pd.DataFrame, int]:
    """split.csv with every study and patient id that is not the image's own in ANON_DIR's
    manifest (``study_uid``, ``patient_id``: keyed substitutes) replaced by it, and how many
    were. `vindr split --meta` takes any table; one holding the hospital's own ids (the
    linkage table's original ones) must not put them into images.csv and split.csv (red team
    6). An empty id stays empty."""
    split = split.copy()
    n = 0
    for col, key in (("study_id", "study_uid"), ("patient_id", "patient_id")):
        if col not in split.columns:
            continue
        own = split["image_id"].map(lambda i: manifest[i].get(key))
        differs = split[col].notna() & (split[col] != own)
        n += int(differs.sum())
        split.loc[differs, col] = own[differs]
    return split, n


def _copy_split(split_dir: Path, stage: Path, split: pd.DataFrame, left_out: dict[str, str], *,
                rewrite: bool = False) -> None:
    """The split's files; split.csv without the images left out, and split_report.json with
    ``release_dropped`` (images per side left out) so the counts still add up. ``rewrite``:
    split.csv is written from ``split`` (its ids were replaced by the tree's) even when no
    image was left out."""
    if (split_dir / "split_report.png").is_file():
        shutil.copy2(split_dir / "split_report.png", stage / "split_report.png")
    if not left_out and not rewrite:
        for name in ("split.csv", "split_report.json"):
            if (split_dir / name).is_file():
                shutil.copy2(split_dir / name, stage / name)
        return
    kept = split[~split["image_id"].isin(set(left_out))]
    with atomic_write(stage / "split.csv") as f:
        f.write(kept.to_csv(index=False).encode("utf-8"))
    if (split_dir / "split_report.json").is_file():
        report = json.loads((split_dir / "split_report.json").read_text())
        gone = split[split["image_id"].isin(set(left_out))]["split"].value_counts()
        report["release_dropped"] = {s: int(gone.get(s, 0)) for s in SPLITS}
        with atomic_write(stage / "split_report.json") as f:
            f.write(json.dumps(report, indent=2).encode("utf-8"))


READER_ID = re.compile(r"R[1-9][0-9]{0,3}")
READERS_RENAMED = ("{n} reader id(s) (rad_id) were not of the published form R<n> (a name, a login, an e-mail "
                   "address?) and were replaced by pseudonyms R<n> in the release")


def pseudonymous_readers(readers: pd.Series, marks: pd.DataFrame | None = None) -> tuple[pd.Series, int]:
    """The readers (rad_id) as the release may publish them: an id of VinDr's form ``R<n>`` is
    kept, any other value (free text: a radiologist's name, login or e-mail address) is
    replaced by ``R<k>``, k counting on after the largest kept number; null stays null. Returns
    (readers, values replaced).

    The order of the new numbers must say nothing about the real values (numbered in sorted
    order, R5 < R6 told the names' alphabetical order) and be the same on every run of the same
    inputs. So each replaced reader is ranked by what is published anyway: the sorted list of
    its marks (``marks``: the rows of the canonical table beside ``readers``, without the reader
    and the line; image ids are already keyed), then by its first row. Readers whose marks are
    all alike are told apart by row order only, and their published rows are then the same
    whichever number each gets. Without ``marks`` the first row alone decides."""
    vals = readers.astype("string")
    present = vals.dropna()
    kept = [v for v in present.unique() if READER_ID.fullmatch(str(v))]
    other = [v for v in present.unique() if not READER_ID.fullmatch(str(v))]     # first-row order
    if marks is not None and other:
        cols = [c for c in marks.columns if c not in ("reader", "line")]
        table = marks[cols].astype(object)
        table = table.where(marks[cols].notna(), None)
        rows: dict[str, list] = {}
        for v, row in zip(vals.astype(object), table.itertuples(index=False, name=None)):
            if isinstance(v, str):
                rows.setdefault(v, []).append(tuple(("", "") if x is None else (type(x).__name__, repr(x))
                                                    for x in row))
        first = {v: i for i, v in enumerate(other)}
        other.sort(key=lambda v: (sorted(rows[v]), first[v]))
    start = max((int(str(v)[1:]) for v in kept), default=0)
    names = {str(v): f"R{start + i + 1}" for i, v in enumerate(other)}
    return pd.Series(pd.array([names.get(v, v) if isinstance(v, str) else v for v in vals.astype(object)],
                              dtype="string"), index=readers.index), len(other)


def _annotations(path, label_set, images, stage, fuse, summary, left_out, *, decoded):
    """Split's annotations.csv through the one reader, then every export from the canonical table."""
    ann, bad = read_annotations(path, labels=label_set)
    summary.bad_rows = bad
    attrs = dict(ann.attrs)
    ann["reader"], renamed = pseudonymous_readers(ann["reader"], ann)      # rad_id is free text: never published as given
    if renamed:     # rows in the order of the (keyed) image and the new number, not the hospital's order of names
        number = pd.to_numeric(ann["reader"].str[1:], errors="coerce").fillna(-1)
        ann = ann.assign(_n=number).sort_values(["image_id", "_n"], kind="stable").drop(columns="_n")
    ann.attrs.update(attrs)
    if renamed:
        summary.warnings.append(READERS_RENAMED.format(n=renamed))
    label_set = ann.attrs["label_set"]
    form = ann.attrs["format"]
    attrs = dict(ann.attrs)
    side = images.set_index("image_id")["split"]
    per_frame = set(images.loc[images["image_id"].str.len() > 32, "image_id"].str[:32])
    why = ann["image_id"].map(lambda i: left_out.get(i) or (MF_PER_FRAME if i in per_frame else None))
    summary.dropped_rows.update(why.dropna())
    ann = ann[ann["image_id"].isin(side.index)]
    ann.attrs.update(attrs)
    (stage / "annotations").mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    if form == "cxr-image-labels":
        vocab = ann.attrs["labels"]
        for s in SPLITS:
            part = ann[ann["image_id"].map(side) == s]
            part.attrs.update(ann.attrs)
            write_csv(to_published(part, form), "vindr_cxr_image_labels",
                      stage / "annotations" / f"image_labels_{s}.csv")
            per_label = part.dropna(subset=["label"]).groupby("label")["image_id"].nunique()
            for name in vocab:
                counts.setdefault(name, {})[s] = int(per_label.get(name, 0))
        return label_set, tuple(vocab), counts
    layout = exports.layout_for(form)
    for s in SPLITS:
        part = ann[ann["image_id"].map(side) == s]
        write_csv(exports.vindr_csv(part, layout), layout.schema, stage / "annotations" / f"annotations_{s}.csv")
        if layout.kind == "cxr":
            write_csv(exports.kaggle(part), "kaggle_train", stage / "annotations" / f"kaggle_{s}.csv")
        imgs = images[images["split"] == s]
        frame = pd.DataFrame({
            "image_id": imgs["image_id"],
            "file_name": [f"{i}{Path(p).suffix}" if isinstance(p, str) else Path(d).name
                          for i, p, d in zip(imgs["image_id"], imgs["image"], imgs["dicom"])],
            "width": imgs["image_cols"].fillna(imgs["columns"]).astype(int),
            "height": imgs["image_rows"].fillna(imgs["rows"]).astype(int),
            "scale_x": imgs["scale_x"].fillna(1.0).astype(float),
            "scale_y": imgs["scale_y"].fillna(1.0).astype(float),
        })
        c = exports.coco(part, label_set, frame, fuse=fuse)
        exports.write_json(c, stage / "annotations" / f"coco_{s}.json")
        exports.yolo(c, stage / "yolo" / "labels" / s)
        if decoded:
            exports.yolo_images(imgs, stage, stage / "yolo" / "images" / s)
        summary.boxes[s] = len(c["annotations"])
        per_label = part.groupby("label")["image_id"].nunique()
        for name, n in per_label.items():
            counts.setdefault(name, {})[s] = int(n)
    if decoded:
        exports.write_data_yaml(stage / "yolo" / "data.yaml", label_set)
    return label_set, label_set.classes, counts


def write_labels(path: Path, classes) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps({"classes": [{"id": i, "name": n} for i, n in enumerate(classes)]}, indent=1).encode())


def _deid_settings(anon_dir: Path, released_rows=()) -> dict:
    """What the datasheet says of the de-identification: anonymize's checked settings record
    (``runner.state.Settings``; none, or damaged, → the datasheet says unknown), with the
    burned-in text mode (a fixed word, else left out) and how many released DICOM files had
    pixels masked (``released_rows``: their manifest rows; ``pixels_modified``)."""
    try:
        s = Settings(anon_dir, "anonymize").previous() or {}
    except RequestError:
        return {}
    out = {k: s.get(k) for k in ("tool", "profile", "profile_source", "options", "dates", "uid_root")}
    out["profile_source"] = _shown_profile_source(out["profile_source"])
    if s.get("burned_in") in BURNED_IN_MODES:
        out["burned_in"] = s["burned_in"]
        out["allow_burned_in"] = s.get("allow_burned_in") is True
    rows = list(released_rows)
    if rows and all("pixels_modified" in r for r in rows):
        # masked: boxes were masked (redactions, review_boxes); a frame only stripped of its
        # metadata or an overlay's bits cleared rewrote the pixel data without masking (review 8)
        masked = [_has_boxes(r.get("redactions")) or _has_boxes(r.get("review_boxes")) for r in rows]
        out["pixels_masked"] = {"files": len(rows), "masked": sum(masked),
                                "rewritten": sum(r["pixels_modified"] is True and not m for r, m in zip(rows, masked))}
    return out


def _has_boxes(value) -> bool:
    """A manifest's JSON list of boxes (redactions, review_boxes) holds at least one."""
    if not value or not isinstance(value, str):
        return False
    try:
        return bool(json.loads(value))
    except ValueError:
        return False


BURNED_IN_MODES = ("redact", "quarantine", "off")      # vindr anonymize --burned-in (deid/batch.py)


def _shown_profile_source(source) -> str | None:
    """anonymize.json's ``profile_source`` as the datasheet may quote it: a recipe's file name is
    free text (``recipe deid_NGUYEN_VAN_AN.toml on built-in profile basic``), so it is shown by
    the rule of selection recipe names (``shown_recipe``: a plain slug of known words, else
    ``(custom recipe)``); anything but vindr's two forms is left out (red team 6)."""
    if source is None:
        return None
    m = re.fullmatch(r"built-in profile ([a-z]+)|recipe (.+?) on built-in profile ([a-z]+)", str(source))
    if m is None:
        return None
    if m.group(1):
        return str(source)
    stem = m.group(2)[:-5] if m.group(2).endswith(".toml") else m.group(2)
    return f"recipe {shown_recipe(stem)} on built-in profile {m.group(3)}"


def _write_datasheet(stage, summary, images, manifest_rows, sel, anon_dir, counts, classes, report, audit_report,
                     *, decoded, fused, manifest=None, accept_audit_findings=False) -> None:
    """datasheet.json, datasheet.png and README.md (release/datasheet.py)."""
    files = images.drop_duplicates("dicom")
    base_ids = files["image_id"].str[:32]
    facts, source = sheet_mod.image_facts(dict(zip(base_ids, (stage / d for d in files["dicom"]))),
                                          sel.rows if sel is not None else None)
    dist = sheet_mod.distributions(facts)
    sel_reasons = sel.reason_counts() if sel is not None else {}
    anon_ex = sheet_mod.anonymize_exclusions(manifest_rows)
    chart = sheet_mod.CHART if sheet_mod.write_chart(dist, stage / sheet_mod.CHART) else None
    audit = sheet_mod.audit_status(Path(audit_report) if audit_report is not None else None,
                                   accepted=accept_audit_findings)
    summary.audit = audit["status"] + (" (accepted with --accept-audit-findings)" if audit.get("findings_accepted") else "")
    at_split = (report.get("algorithm") or {}).get("selection") or {}
    multiframe = dict(summary.multiframe)
    multiframe["excluded_at_split"] = int(at_split.get("multiframe_excluded", 0))
    rows_left = dict(summary.dropped_rows)
    if at_split.get("annotation_rows_not_selected"):
        rows_left[f"{NOT_SELECTED} (left out by vindr split --selection)"] = int(at_split["annotation_rows_not_selected"])
    sheet = sheet_mod.build_sheet(
        version=__version__,
        images={s: summary.images.get(s, 0) for s in SPLITS},
        boxes={s: summary.boxes.get(s, 0) for s in SPLITS},
        labels=[{"label": n, "train": counts.get(n, {}).get("train", 0), "test": counts.get(n, {}).get("test", 0)}
                for n in classes],
        facts_source=source, distributions=dist, multiframe=multiframe,
        excluded={"anonymize": anon_ex, "selection": sel_reasons,
                  "duplicates": {"anonymize": sum(anon_ex.get("duplicate", {}).values()),
                                 "selection": sel_reasons.get("duplicate", 0),
                                 "across_patients": sel_reasons.get("duplicate-across-patients", 0)},
                  # every selected image not released, by fixed reason: the split's images left out
                  # here (selection, multi-frame policy, vindr review's gate) and those never split
                  "release": {NOT_SELECTED: summary.dropped.get(NOT_SELECTED, 0),
                              MF_EXCLUDED: summary.dropped.get(MF_EXCLUDED, 0), **dict(summary.dropped),
                              **{r: summary.not_split.get(r, 0) for r in (NOT_SPLIT, MF_EXCLUDED_AT_SPLIT)}},
                  "annotation_rows": rows_left},
        selection=sel.summary() if sel is not None else None, audit=audit, deid=_deid_settings(anon_dir, [manifest[i] for i in dict.fromkeys(base_ids) if i in manifest]
                                                    if manifest is not None else ()),
        split={"seed": report.get("seed"), "unit": report.get("unit"), "preset": report.get("preset")},
        licence=summary.licence, coordinates=sheet_mod.coordinates(decoded, fused), chart=chart,
        review=summary.review)
    with atomic_write(stage / "datasheet.json") as f:
        f.write(json.dumps(sheet, indent=1, ensure_ascii=False).encode("utf-8"))
    with atomic_write(stage / "README.md") as f:
        f.write(sheet_mod.render_markdown(sheet).encode("utf-8"))
