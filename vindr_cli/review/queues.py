"""Which images need a person's look, built from plain files of DIR (no server needed).

DIR is a de-identified tree (``vindr anonymize``'s OUTPUT, with manifest.parquet) or a
SELECTION folder (``vindr select``'s output): its tree is ``--tree``, else found by following
the folder beside SELECTION whose manifest.parquet has the SHA-256 that selection.json
records. Queues, in this order:

redacted       manifest ``pixels_modified``: the output with its masked boxes outlined
residual-text  pixel findings (pixel-text, pixel-mask) of ``vindr audit --report FILE.json``
qc             selection.parquet ``qc_flags`` not empty
duplicates     selection.parquet ``dup_group``: members of a group side by side
spot-check     a seeded random sample of the images in no other queue and not modified

Of a SELECTION, the queues hold the images it selected (those ``vindr release --selection``
releases and asks the review about), the images this review excluded (``review-excluded``
once ``vindr select`` ran again: kept so that a decision can be seen and undone) and, in the
duplicates queue only, the other members of a selected image's near-duplicate group, side by
side with it. ``whole_tree=True`` (``vindr review --whole-tree``; always for the release gate)
takes every image of the selection table, the excluded ones too, as before new-user walk 4,
where the QC queue of the sample's selection held 7 images, none of them selected.

Only ids, shapes, masked boxes (from the manifest), QC flag names and group ids leave this
module: no path, no header value, no text.
"""
from __future__ import annotations

import json
import random
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from vindr_cli.errors import RequestError
from vindr_cli.dicomio.pixelstream import file_sha256
from vindr_cli.resources import schema_path
from vindr_cli.review.decisions import QUEUES, check_state
from vindr_cli.runner import paths
from vindr_cli.tables import read_rows

IMAGE_ID = re.compile(r"[0-9a-f]{32}")
HOSTILE_MANIFEST = ("the tree's manifest.parquet names an output outside the tree or an image_id that is not "
                    "32 hex digits: it is not vindr's; re-run vindr anonymize")

HOSTILE_SELECTION = ("selection.parquet is not vindr select's (an image_id that is not 32 hex digits, or "
                     "qc_flags, dup_group, selected or reasons of another kind): re-run vindr select")
UNREADABLE_TABLE = "{} cannot be read as a Parquet table (damaged, or not vindr's): re-run {}"
DUP_GROUP = re.compile(r"dup-[0-9a-f]{12}")     # curate.dedup.group_id (data, not an import)

PIXEL_FINDINGS = ("pixel-text", "pixel-mask")
REVIEW_EXCLUDED = "review-excluded"     # curate.select's reason for an image this review excluded (data, not an import)
# where a pixel-text finding is (deid.audit writes "... in frame F, box x X0-X1, y Y0-Y1"): numbers only
FINDING_BOX = re.compile(r"in frame (\d+), box x (\d+)-(\d+), y (\d+)-(\d+)")


class ReviewDirError(RequestError):
    """DIR is neither a de-identified tree nor a selection whose tree can be found (one line)."""


@dataclass
class Image:
    image_id: str
    output: str                     # path relative to the tree (never sent to the page)
    rows: int | None
    cols: int | None
    frames: int
    redactions: list[list[int]] = field(default_factory=list)
    qc_flags: list[str] = field(default_factory=list)
    dup_group: str | None = None
    residual: int = 0                # pixel findings of the audit report
    findings: list[list[int]] = field(default_factory=list)   # their boxes [frame, x0, y0, x1, y1], when given
    modified: bool = False           # manifest pixels_modified
    pixel_sha256: str = ""           # of the output's pixel data: names its cached renderings
    applied: set = field(default_factory=set)   # (seq, time) of review boxes vindr anonymize masked in it

    def public(self) -> dict:
        """What the page may see: no path, no value."""
        return {"rows": self.rows, "cols": self.cols, "frames": self.frames, "redactions": self.redactions,
                "qc_flags": self.qc_flags, "dup_group": self.dup_group, "residual": self.residual,
                "findings": self.findings}


@dataclass
class Queues:
    review_dir: Path
    tree: Path
    images: dict[str, Image]
    queues: dict[str, list[str]]     # queue -> image ids, in display order

    def counts(self) -> dict[str, int]:
        return {q: len(ids) for q, ids in self.queues.items()}

    def flagged(self) -> set[str]:
        return {i for q in ("redacted", "residual-text", "qc", "duplicates") for i in self.queues.get(q, [])}

    def applied(self) -> dict[str, set]:
        """{image_id: {(seq, time)}}: the review boxes the tree's outputs already carry (the
        manifest's review_boxes), for decisions.current_by_queue(..., applied)."""
        return {i: img.applied for i, img in self.images.items() if img.applied}


def _int(v) -> int | None:
    try:
        return None if v is None or v != v else int(v)
    except (TypeError, ValueError):
        return None


NOT_A_FOLDER = ("DIR {}: name a de-identified tree (vindr anonymize OUTPUT) or a selection "
                "(vindr select output)")


def find_tree(review_dir: Path, tree: Path | None = None) -> tuple[Path, Path | None]:
    """(anonymized tree, selection.parquet or None) for DIR."""
    review_dir = Path(review_dir)
    if tree is not None:
        tree = Path(tree)
        if not (tree / "manifest.parquet").is_file():
            raise ReviewDirError("--tree is not a de-identified tree (no manifest.parquet)")
    if (review_dir / "manifest.parquet").is_file() and (tree is None or tree.resolve() == review_dir.resolve()):
        return review_dir.resolve(), None        # (vindr release passes --tree = ANON_DIR for a review of ANON_DIR)
    sel = review_dir / "selection.parquet"
    if not sel.is_file():
        raise ReviewDirError("DIR is neither a de-identified tree (manifest.parquet) nor a selection "
                             "(selection.parquet)")
    if tree is not None:
        return tree.resolve(), sel
    try:
        info = json.loads((review_dir / "selection.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    want = info.get("anon_dir_manifest_sha256") if isinstance(info, dict) else None   # hostile10: "[]" crashed
    if want:
        # selection.json records the tree's manifest hash, not its path: look beside SELECTION
        # (the usual layout, e.g. demo/anon and demo/selection) for the tree with that manifest
        for m in sorted(review_dir.resolve().parent.glob("*/manifest.parquet")):
            if file_sha256(m) == want:
                return m.parent, sel
    raise ReviewDirError("cannot find the de-identified tree of this selection: give it with --tree ANON_DIR")


def _audit_findings(report: Path, by_output: dict[str, str]) -> dict[str, list[list[int] | None]]:
    """{image_id: [box or None per pixel finding]} from an audit report; only the numbers of
    a finding's place are read, never its text."""
    try:
        data = json.loads(Path(report).read_text(encoding="utf-8"))
        findings = data["findings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ReviewDirError("--audit-report is not the JSON of vindr audit --report") from None
    out: dict[str, list] = {}
    for f in findings if isinstance(findings, list) else []:
        if isinstance(f, dict) and f.get("kind") in PIXEL_FINDINGS:
            iid = by_output.get(str(f.get("where", "")))
            if iid:
                m = FINDING_BOX.search(str(f.get("detail", "")))
                fr, x0, x1, y0, y1 = (int(v) for v in m.groups()) if m else (0, 0, 0, 0, 0)
                out.setdefault(iid, []).append([fr, x0, y0, x1, y1] if m and x1 > x0 and y1 > y0 else None)
    return out


@cache
def _qc_flags() -> frozenset[str]:
    """The QC flag names vindr select writes: the sections of schemas/curate/qc.toml (data, not
    an import of curate/)."""
    return frozenset(tomllib.loads(schema_path("curate", "qc.toml").read_text(encoding="utf-8")))


def _table(path: Path, what: str, run: str) -> list[dict]:
    try:
        return read_rows(path)
    except Exception:          # a damaged or foreign file: pyarrow's text names the path
        raise ReviewDirError(UNREADABLE_TABLE.format(what, run)) from None


def _selection_rows(path: Path) -> list[dict]:
    """selection.parquet's rows, each as vindr select writes it (hostile10: a row without an
    image_id, a list where a string goes crashed the review; a QC flag or group id of any text
    went to the page): else :data:`HOSTILE_SELECTION`."""
    rows = _table(path, "selection.parquet", "vindr select")
    flags = _qc_flags()
    for s in rows:
        iid, qc, dup, why = s.get("image_id"), s.get("qc_flags") or [], s.get("dup_group"), s.get("reasons") or []
        if (not isinstance(iid, str) or not IMAGE_ID.fullmatch(iid)
                or not isinstance(qc, list) or not all(isinstance(f, str) and f in flags for f in qc)
                or not (dup is None or isinstance(dup, str) and DUP_GROUP.fullmatch(dup))
                or not isinstance(why, list) or not all(isinstance(r, str) for r in why)
                or not isinstance(s.get("selected", False), (bool, type(None)))):
            raise ReviewDirError(HOSTILE_SELECTION)
    return rows


def _review_boxes(text) -> tuple[list[list[int]], set]:
    """(the boxes, {(seq, time)}) of a manifest row's ``review_boxes`` (vindr anonymize masked
    them after a review); only numbers and the decision's seq and time are read."""
    try:
        entries = json.loads(text or "[]")
        boxes = [[int(v) for v in e["box"]][:5] for e in entries]
        marks = {(int(e["seq"]), str(e["time"])) for e in entries}
    except (ValueError, TypeError, KeyError, AttributeError):
        return [], set()
    return [b for b in boxes if len(b) == 5], marks


def build_queues(review_dir: Path, *, tree: Path | None = None, audit_report: Path | None = None,
                 spot: int = 20, seed: int = 0, whole_tree: bool = False) -> Queues:
    """The review queues of DIR (see the module text)."""
    review_dir = Path(review_dir)
    if not review_dir.is_dir():    # before the link check, which called a file DIR "a symbolic link"
        raise ReviewDirError(NOT_A_FOLDER.format("is not a folder" if review_dir.exists() else "does not exist"))
    check_state(review_dir)        # journal and rendering cache: never written through a planted link
    tree_dir, sel_path = find_tree(review_dir, tree)
    images: dict[str, Image] = {}
    context: set[str] = set()      # near-duplicates of a selected image, not selected: duplicates queue only
    for r in _table(tree_dir / "manifest.parquet", "the tree's manifest.parquet", "vindr anonymize"):
        if r.get("status") != "ok" or not r.get("image_id") or not r.get("output"):
            continue
        # a hand-edited manifest must not point the server (reads, cache writes) out of its folders
        if not isinstance(r["image_id"], str) or not IMAGE_ID.fullmatch(r["image_id"]):
            raise ReviewDirError(HOSTILE_MANIFEST)
        try:
            paths.check_rel(r["output"])
        except paths.PathViolation:
            raise ReviewDirError(HOSTILE_MANIFEST) from None
        try:
            boxes = [list(map(int, b)) for b in json.loads(r.get("redactions") or "[]")]
        except (ValueError, TypeError):
            boxes = []
        drawn, applied = _review_boxes(r.get("review_boxes"))
        images[r["image_id"]] = Image(r["image_id"], r["output"], _int(r.get("rows")), _int(r.get("columns")),
                                      _int(r.get("frames")) or 1, (boxes + drawn) if r.get("pixels_modified") else [],
                                      modified=bool(r.get("pixels_modified")),
                                      pixel_sha256=str(r.get("pixel_sha256") or ""), applied=applied)
    if sel_path is not None:
        sel_rows = _selection_rows(sel_path)
        keep = {}
        for s in sel_rows:
            img = images.get(s["image_id"])
            if img is None:
                continue
            img.qc_flags = [str(x) for x in (s.get("qc_flags") or [])]
            img.dup_group = s.get("dup_group") or None
            keep[img.image_id] = img
        images = keep
        if not whole_tree:
            wanted = {s["image_id"] for s in sel_rows
                      if s.get("selected") or REVIEW_EXCLUDED in (s.get("reasons") or [])} & set(images)
            groups = {images[i].dup_group for i in wanted if images[i].dup_group}
            context = {i for i, img in images.items() if i not in wanted and img.dup_group in groups}
            images = {i: img for i, img in images.items() if i in wanted or i in context}
    main = {i: img for i, img in images.items() if i not in context}
    if audit_report is not None:
        for iid, boxes in _audit_findings(audit_report, {i.output: i.image_id for i in main.values()}).items():
            images[iid].residual = len(boxes)
            images[iid].findings = [b for b in boxes if b is not None]
    ids = sorted(main)
    queues = {q: [] for q in QUEUES}
    queues["redacted"] = [i for i in ids if images[i].modified]
    queues["residual-text"] = [i for i in ids if images[i].residual]
    queues["qc"] = [i for i in ids if images[i].qc_flags]
    queues["duplicates"] = sorted((i for i in images if images[i].dup_group), key=lambda i: (images[i].dup_group, i))
    flagged = {i for q in ("redacted", "residual-text", "qc", "duplicates") for i in queues[q]}
    pool = [i for i in ids if i not in flagged and not images[i].modified]
    queues["spot-check"] = sorted(random.Random(seed).sample(pool, min(max(spot, 0), len(pool))))
    return Queues(review_dir, tree_dir, images, queues)
