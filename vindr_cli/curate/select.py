"""``vindr select ANON_DIR -o SELECTION``: which images of a de-identified tree go into a release.

Reads ANON_DIR's ``manifest.parquet`` (the output of ``vindr anonymize``; a raw export is
refused) and, for every row with status ``ok``:

1. **scan** (a stage of the one runner, in workers, journaled and resumable): the header
   values selection needs (:mod:`.headers`, PHI-free) and the look of the first frame
   (:func:`.look.look_at`: perceptual hash, QC flags). Keyed by image_id, the manifest's
   pixel hash and the look version, kept in ``SELECTION/.vindr/scan.parquet``: a re-run, with
   this recipe or another, reads only images it has not seen.
2. **criteria** of the recipe (:mod:`.recipe`), each failed one a reason;
3. **QC flags** the recipe excludes (``qc:<flag>``);
4. **near-duplicates** (:func:`.dedup.resolve`): groups over every decodable image that is
   not flat (``blank``, ``near-constant``: they all hash alike) (a group
   spanning patients is a red flag: ``duplicate-across-patients`` for all members unless the
   recipe says ``flag``); within a study or patient, one copy is kept among the images that
   pass 2-3, the others get ``duplicate``;
5. **sampling** (:mod:`.sample`) among what is left: one per study, N, label proportions.

Then, in SELECTION (temp names, then renames; under the output lock): ``selection.parquet``
(every image, every reason, schema ``schemas/tables/selection.json``), ``selection.json``,
``recipe.toml``, ``worklist.csv`` and ``dicom/<image_id>.dcm`` (:mod:`.handoff`).
"""
from __future__ import annotations

import inspect
import json
import re
import stat
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from vindr_cli import __version__
from vindr_cli.atomic import atomic_write
from vindr_cli.curate import dedup, look
from vindr_cli.curate.bodypart import expand
from vindr_cli.curate.handoff import check_outputs, link_dicoms, write_worklist
from vindr_cli.curate.headers import header_fields
from vindr_cli.curate.recipe import Recipe
from vindr_cli.curate.sample import SampleError, read_labels, sample
from vindr_cli.dicomio.pixelstream import file_sha256
from vindr_cli.errors import RequestError
from vindr_cli.runner import paths
from vindr_cli.runner.discover import STATE_DIR
from vindr_cli.runner.executor import Executor
from vindr_cli.runner.faults import named_faults
from vindr_cli.runner.lock import OutputLock
from vindr_cli.runner.sources import Source, enclosing_output, is_within
from vindr_cli.runner.stage import Run, Stage, Table, run_stage, tmp_dir
from vindr_cli.tables import iter_rows, write_table

MANIFEST = "manifest.parquet"
IMAGE_ID = re.compile(r"[0-9a-f]{32}")      # vindr anonymize's image ids (deid/substitutes.py)
ANON_SETTINGS = "anonymize.json"
UNREADABLE = "unreadable"
UNDECODABLE = "undecodable"
DUPLICATE = "duplicate"                         # the contract's reason strings (dedup.resolve gives them)
ACROSS = "duplicate-across-patients"
REVIEW_EXCLUDED = "review-excluded"             # excluded in vindr review (ANON_DIR's or SELECTION's decisions)
WIDE_GROUP = 3                                  # patients in one group beyond which the hash itself is suspect
NO_PICTURE = {"blank", "near-constant"}         # flat images all hash alike: never near-duplicates of each other
# Every reason, in the order a row lists them (qc:<flag> sorted by flag where "qc:" stands).
REASON_ORDER = ("review-excluded", "unreadable", "undecodable", "modality", "sop-class", "body-part", "body-part-unknown", "view",
                "view-unknown", "laterality", "age", "age-unknown", "photometric", "frames", "size", "image-type",
                "presentation-intent", "lossy", "qc:", "duplicate-across-patients", "duplicate", "one-per-study",
                "no-label", "not-sampled")
MANIFEST_CRITERIA = ("modality", "sop-class", "photometric", "size")   # judged from the manifest alone
MISSING = "file named by the manifest is missing, not a regular file, or cannot be read"
HEADER = "header could not be read"
COPIED = ("image_id", "output", "sop_uid", "study_uid", "series_uid", "patient_id", "modality", "sop_class_uid",
          "rows", "columns", "photometric", "transfer_syntax")


class SelectRequestError(RequestError):
    """The request cannot run (one line, exit 2)."""


@dataclass
class SelectSummary:
    images: int = 0
    selected: int = 0
    resumed: int = 0
    reasons: Counter = field(default_factory=Counter)     # reason -> images with it
    table: Path | None = None
    dicoms: dict[str, int] = field(default_factory=dict)
    across_patient_groups: int = 0
    warnings: list[str] = field(default_factory=list)


# --- the scan: one image per worker call --------------------------------------------------

@dataclass(frozen=True)
class ScanConfig:
    look_version: str
    redactions: dict[str, str] = field(default_factory=dict)   # key -> anonymize's boxes, where any were masked


def setup(cfg: ScanConfig) -> ScanConfig:
    from vindr_cli.dicomio.quiet import quiet_pydicom

    quiet_pydicom()
    return cfg


def _look(cfg: ScanConfig, key: str, path: Path) -> look.Look:
    """``look_at``, given anonymize's redaction boxes when the look module takes them
    (``burned-in-large``)."""
    if "redactions" in inspect.signature(look.look_at).parameters:
        return look.look_at(path, frame=0, redactions=cfg.redactions.get(key))
    return look.look_at(path, frame=0)


def scan_one(cfg: ScanConfig, src: Source) -> dict:
    """``{"rows": {"scan": [row]}}`` for one image (``src.rel`` is its key, ``src.path`` its file)."""
    image_id = src.rel.split(".")[0]
    row: dict[str, Any] = {"input_key": src.rel, "image_id": image_id, "status": "failed", "reason": None}
    if src.missing_reason:
        return {"rows": {"scan": [{**row, "reason": src.missing_reason}]}}
    path = Path(src.path)
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError
        import pydicom

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
    except OSError:
        return {"rows": {"scan": [{**row, "reason": MISSING}]}}
    except Exception:               # never the library's text: it may quote the file
        return {"rows": {"scan": [{**row, "reason": HEADER}]}}
    try:
        fields = header_fields(ds, None)
    except Exception:
        return {"rows": {"scan": [{**row, "reason": HEADER}]}}
    seen = _look(cfg, src.rel, path)
    return {"rows": {"scan": [{**row, "status": "ok", "file_bytes": st.st_size, **fields, "qc_flags": list(seen.qc_flags),
                               "phash": seen.phash, "look_reason": seen.reason}]}}


class ScanStage(Stage):
    name = "select"
    task = staticmethod(scan_one)
    setup = staticmethod(setup)
    primary = "scan"

    def __init__(self, output: Path, cfg: ScanConfig, files: dict[str, Path] | None = None):
        self.output = output
        self.cfg = cfg
        self.files = files or {}       # key -> the image's file in ANON_DIR

    def __reduce__(self):
        raise TypeError("ScanStage stays in the driver")

    def config(self) -> ScanConfig:
        return self.cfg

    def settings(self) -> dict[str, Any]:
        return {"table": "selection_scan"}

    def tables(self) -> list[Table]:
        return [Table("scan", "selection_scan", self.output / STATE_DIR / "scan.parquet")]

    def is_done(self, run: Run, key: str) -> bool:
        """Read before, not failed, and the file still has the size it had then."""
        rows = run.done["scan"].get(key)
        if not rows or any(r["status"] != "ok" for r in rows):
            return False
        try:
            return self.files[key].lstat().st_size == rows[0].get("file_bytes")
        except (KeyError, OSError):
            return False

    def place(self, run: Run, src: Source, result: dict):
        return [(src.rel, result["rows"])]


# --- the request ----------------------------------------------------------------------------

def read_manifest(anon_dir: Path) -> list[dict]:
    """The ``ok`` rows of ANON_DIR's anonymize manifest, or a request error."""
    if not anon_dir.is_dir():
        raise SelectRequestError("ANON_DIR does not exist or is not a folder")
    manifest = anon_dir / MANIFEST
    if not manifest.is_file() or not (anon_dir / STATE_DIR / ANON_SETTINGS).is_file():
        raise SelectRequestError("ANON_DIR is not the output of vindr anonymize (no manifest.parquet and "
                                 ".vindr/anonymize.json): select reads only de-identified trees; run vindr anonymize first")
    first, ok = None, []
    try:                          # in batches (tables.iter_rows): only the ok rows are kept
        for r in iter_rows(manifest):
            first = r if first is None else first
            if r.get("status") == "ok":
                ok.append(r)
    except Exception as exc:
        raise SelectRequestError(f"ANON_DIR/manifest.parquet cannot be read ({type(exc).__name__}): "
                                 "re-run vindr anonymize to rebuild it") from None
    need = {"status", "output", "image_id", "study_uid", "patient_id"}
    if first is not None and not need <= set(first):
        raise SelectRequestError("ANON_DIR/manifest.parquet is not a vindr anonymize manifest (columns missing)")
    seen: set[str] = set()
    for r in ok:
        try:
            paths.check_rel(r.get("output") or "")
        except paths.PathViolation:
            raise SelectRequestError("ANON_DIR/manifest.parquet names an output outside ANON_DIR: "
                                     "it is not vindr's; re-run vindr anonymize") from None
        if not isinstance(r.get("image_id"), str) or not IMAGE_ID.fullmatch(r["image_id"]):
            # a hand-edited id would name files of SELECTION/dicom and be copied into every table
            raise SelectRequestError("ANON_DIR/manifest.parquet has an ok row whose image_id is not 32 hex "
                                     "digits: it is not vindr's; re-run vindr anonymize")
        if not r.get("image_id") or r["image_id"] in seen:
            raise SelectRequestError("ANON_DIR/manifest.parquet has an ok row without image_id, or one "
                                     "image_id twice: re-run vindr anonymize")
        seen.add(r["image_id"])
    return ok


def _check_paths(anon_dir: Path, output: Path) -> None:
    if is_within(output, anon_dir) or is_within(anon_dir, output):
        raise SelectRequestError("SELECTION must not be inside ANON_DIR (nor ANON_DIR inside SELECTION)")
    outer = enclosing_output(output)
    if outer is not None:
        raise SelectRequestError("SELECTION must not be inside another vindr output folder")


def scan_key(row: dict, look_version: str) -> str:
    return f"{row['image_id']}.{(row.get('pixel_sha256') or 'none')[:16]}.{look_version}"


def criteria_reasons(row: dict, recipe: Recipe) -> list[str]:
    """Every criterion of the recipe the row fails (scan values merged into manifest values)."""
    c = recipe.criteria
    out: list[str] = []

    def listed(key: str, value) -> bool:
        return key not in c or value in c[key]

    if not listed("modality", row.get("modality")):
        out.append("modality")
    if not listed("sop_class", row.get("sop_class_uid")):
        out.append("sop-class")
    if "body_part" in c:
        if row.get("body_part") is None:
            if c.get("body_part_unknown", "exclude") == "exclude":
                out.append("body-part-unknown")
        elif row["body_part"] not in expand(c["body_part"]):
            out.append("body-part")
    if "view" in c:
        if row.get("view") is None:
            if c.get("view_unknown", "exclude") == "exclude":
                out.append("view-unknown")
        elif row["view"] not in c["view"]:
            out.append("view")
    if not listed("laterality", row.get("laterality")):
        out.append("laterality")
    if "age_min" in c or "age_max" in c:
        age = row.get("age_years")
        if age is None:
            if c.get("age_unknown", "exclude") == "exclude":
                out.append("age-unknown")
        elif age < c.get("age_min", 0) or ("age_max" in c and age > c["age_max"]):
            out.append("age")
    if not listed("photometric", row.get("photometric")):
        out.append("photometric")
    if c.get("multiframe") == "exclude" and (row.get("frames") or 1) > 1:
        out.append("frames")
    if (row.get("rows") or 0) < c.get("min_rows", 0) or (row.get("columns") or 0) < c.get("min_columns", 0):
        out.append("size")
    if "image_type" in c and row.get("image_type"):        # absent ImageType passes (Type 3 in CR)
        if row["image_type"].split("\\")[0] not in c["image_type"]:
            out.append("image-type")
    if "presentation_intent" in c and row.get("presentation_intent"):   # only DX-family headers have it
        if row["presentation_intent"] not in c["presentation_intent"]:
            out.append("presentation-intent")
    if c.get("lossy") == "exclude" and row.get("lossy"):
        out.append("lossy")
    return out


def _order(reasons: list[str]) -> list[str]:
    def rank(r: str) -> tuple[int, str]:
        return (REASON_ORDER.index("qc:") if r.startswith("qc:") else REASON_ORDER.index(r), r)

    return sorted(set(reasons), key=rank)


def decide(rows: list[dict], recipe: Recipe, *, seed: int, n: int | None,
           labels: dict[str, str] | None, excluded: frozenset[str] | set[str] = frozenset()) -> tuple[list[dict], int]:
    """Fill ``reasons``, ``dup_group`` and ``selected`` of every row (merged manifest + scan
    values). Returns (rows, groups spanning patients). A sample that cannot be drawn raises
    :class:`SampleError` with the counts per reason as details. ``excluded``: image ids
    excluded in vindr review (``review-excluded``, judged first: never kept as the copy of a
    near-duplicate group, never sampled)."""
    for r in rows:
        reasons: list[str] = [REVIEW_EXCLUDED] if r["image_id"] in excluded else []
        if r.get("scan_status") != "ok":      # the manifest's own values are still judged
            reasons.append(UNREADABLE)
            reasons += [x for x in criteria_reasons(r, recipe) if x in MANIFEST_CRITERIA]
        else:
            if r.get("look_reason"):
                reasons.append(UNDECODABLE)
            reasons += criteria_reasons(r, recipe)
            reasons += [f"qc:{f}" for f in (r.get("qc_flags") or []) if f in recipe.qc_exclude]
        r["reasons"] = reasons
        r["dup_group"] = None
    hashed = [r for r in rows if r.get("phash") and r.get("scan_status") == "ok"
              and not set(r.get("qc_flags") or ()) & NO_PICTURE]
    groups = dedup.resolve(hashed)
    across = set()
    for r in hashed:
        gid, why = groups.get(r["image_id"], (None, None))
        r["dup_group"] = gid
        if why == ACROSS:
            across.add(gid)
            if recipe.across_patients == "exclude":
                r["reasons"].append(ACROSS)
    if recipe.within == "keep-one":
        pool = [r for r in hashed if not r["reasons"]]
        kept = dedup.resolve(pool)
        for r in pool:
            if kept.get(r["image_id"], (None, None))[1] == DUPLICATE:
                r["reasons"].append(DUPLICATE)
    candidates = [r for r in rows if not r["reasons"]]
    try:
        chosen = sample(candidates, seed=seed, n=n, one_per_study=recipe.one_per_study, labels=labels,
                        proportions=recipe.proportions or None)
    except SampleError as exc:
        counts = Counter(x for r in rows for x in r["reasons"])
        exc.details = [f"  {why}: {k}" for why, k in sorted(counts.items())] + [f"  qualifying: {len(candidates)}"]
        raise
    for r in candidates:
        if chosen.get(r["image_id"]):
            r["reasons"].append(chosen[r["image_id"]])
    for r in rows:
        r["reasons"] = _order(r["reasons"])
        r["selected"] = not r["reasons"]
    return rows, len(across)


def select(anon_dir: Path, output: Path, recipe: Recipe, *, seed: int = 0, n: int | None = None,
           labels_path: Path | None = None, workers: int = 1, console: Console | None = None,
           executor: Executor | None = None, rebuild_state: bool = False, replace: bool = False) -> SelectSummary:
    """Run ``vindr select`` (see the module docstring). ``replace``: allow replacing a selection
    that SELECTION holds from another request (:func:`check_same_request`)."""
    anon_dir, output = anon_dir.resolve(), output.resolve()
    _check_paths(anon_dir, output)
    if n is not None and n < 1:
        raise SelectRequestError("--n must be at least 1")
    n = n if n is not None else recipe.n
    manifest = read_manifest(anon_dir)
    labels_path = labels_path or recipe.labels
    labels = read_labels(labels_path) if labels_path is not None else None
    if recipe.proportions and labels is None:
        raise SelectRequestError("the recipe's sampling.proportions need a labels table: give --labels FILE "
                                 "or sampling.labels")
    if recipe.proportions and n is None:
        raise SelectRequestError("sampling proportions need a sample size: give --n or sampling.n")
    if not replace:
        check_same_request(output, recipe, seed=seed, n=n, labels_path=labels_path)
    version = str(getattr(look, "VERSION", "1"))
    keys = {r["image_id"]: scan_key(r, version) for r in manifest}
    sources = []
    for r in manifest:
        path = anon_dir / r["output"]
        try:
            size = path.lstat().st_size
            missing = None if stat.S_ISREG(path.lstat().st_mode) else MISSING
            if not is_within(path, anon_dir):     # reached through a folder link planted in ANON_DIR
                size, missing = 0, MISSING
        except OSError:
            size, missing = 0, MISSING
        sources.append(Source(path=str(path), rel=keys[r["image_id"]], size=size, missing_reason=missing))
    boxes = {keys[r["image_id"]]: r["redactions"] for r in manifest if r.get("redactions") not in (None, "", "[]")}
    stage = ScanStage(output, ScanConfig(look_version=version, redactions=boxes), {s.rel: Path(s.path) for s in sources})
    stage.rebuild_state = rebuild_state
    result = run_stage(stage, anon_dir, executor=executor, workers=workers, console=console, sources=sources)
    scans = {r["input_key"]: r for r in result.rows["scan"]}
    rows = []
    for m in manifest:
        s = scans.get(keys[m["image_id"]], {})
        row = {k: m.get(k) for k in COPIED}
        row.update({k: s.get(k) for k in ("body_part", "view", "laterality", "sex", "age_years", "frames",
                                          "bits_stored", "pixel_spacing", "manufacturer", "image_type",
                                          "presentation_intent", "lossy", "qc_flags", "phash", "look_reason")})
        row["frames"] = row["frames"] or m.get("frames") or 1
        row["bits_stored"] = row["bits_stored"] or m.get("bits_stored")
        row["scan_status"] = s.get("status")
        rows.append(row)
    rows, across = decide(rows, recipe, seed=seed, n=n, labels=labels, excluded=review_excluded(anon_dir, output))
    summary = SelectSummary(images=len(rows), resumed=result.resumed, table=output / "selection.parquet",
                            across_patient_groups=across)
    for r in rows:
        summary.selected += r["selected"]
        summary.reasons.update(r["reasons"])
    if across:
        summary.warnings.append(f"{across} group{'s' if across != 1 else ''} of near-duplicate images span two or more "
                                "patients (an identity mix-up in the source?): see dup_group in selection.parquet")
        patients: dict[str, set] = {}
        for r in rows:
            if r.get("dup_group"):
                patients.setdefault(r["dup_group"], set()).add(r.get("patient_id"))
        widest = max(len(p) for p in patients.values())
        if widest > WIDE_GROUP:
            summary.warnings.append(f"one near-duplicate group spans {widest} patients: more likely the perceptual hash "
                                    "cannot tell these images apart than that many mix-ups; check a few by eye before "
                                    "trusting the duplicate-across-patients exclusions")
    try:
        with OutputLock(output), named_faults(output):
            _write(output, anon_dir, rows, recipe, summary, seed=seed, n=n, labels_path=labels_path, version=version,
                   across=across)
    except paths.PathViolation:
        raise SelectRequestError("SELECTION/dicom is a symbolic link or a file, or holds a folder: remove it, "
                                 "or use a new SELECTION folder") from None
    return summary


REQUEST_KEYS = ("recipe_sha256", "seed", "n", "labels_sha256")    # what decides the selected set


def check_same_request(output: Path, recipe: Recipe, *, seed: int, n: int | None, labels_path: Path | None) -> None:
    """Refuse (exit 2, one line) to replace a selection SELECTION already holds when it was made
    by another request — another recipe (by SHA-256), seed, N or labels table: its dicom/ and
    worklist.csv may be in the annotators' hands, and a re-run would change them silently. The
    same request re-runs (resume, a grown tree) freely; ``--replace`` allows another one. A
    selection.json that cannot be read is refused alike (what made it is unknown). Nothing of
    the old record is quoted (a recipe name is free text): only the names of the keys that differ."""
    record = output / "selection.json"
    if not record.is_file():
        return
    hint = "pass --replace to replace it (dicom/, worklist.csv and selection.parquet change), or choose another -o folder"
    try:
        old = json.loads(record.read_text(encoding="utf-8"))
        if not isinstance(old, dict):
            raise ValueError
    except (OSError, ValueError):
        raise SelectRequestError(f"SELECTION holds a selection.json that cannot be read: {hint}") from None
    new = {"recipe_sha256": recipe.sha256, "seed": seed, "n": n,
           "labels_sha256": file_sha256(labels_path) if labels_path is not None else None}
    differ = [k.removesuffix("_sha256") for k in REQUEST_KEYS if old.get(k) != new[k]]
    if differ:
        what = "another recipe" if "recipe" in differ else "other settings"
        raise SelectRequestError(f"SELECTION holds a selection made with {what} "
                                 f"({', '.join(differ)} differ{'s' if len(differ) == 1 else ''}): {hint}")


def review_excluded(anon_dir: Path, output: Path) -> set[str]:
    """Image ids whose vindr review verdict is ``exclude``, in ANON_DIR's review or SELECTION's
    own (a review run on an earlier selection into this folder): either one excludes."""
    from vindr_cli.review import decisions

    out: set[str] = set()
    for d in (anon_dir, output):
        if d.is_dir():
            decisions.check_state(d)          # a linked .vindr or review file: refused, never followed
            if decisions.exists(d):
                out |= {i for i, v in decisions.current(d).items() if v == "exclude"}
    return out


def _write(output: Path, anon_dir: Path, rows: list[dict], recipe: Recipe, summary: SelectSummary, *, seed: int,
           n: int | None, labels_path: Path | None, version: str, across: int) -> None:
    """The outputs, each under a temp name then renamed (the caller holds the output lock)."""
    check_outputs(rows, anon_dir)              # a raw file copied over an output is never handed on
    write_table(rows, "selection", output / "selection.parquet")
    with atomic_write(output / "recipe.toml") as f:
        f.write(recipe.text.encode("utf-8"))
    write_worklist(rows, output / "worklist.csv")
    summary.dicoms = link_dicoms(rows, anon_dir, output, tmp_dir(output))
    record = {"recipe": recipe.name, "recipe_sha256": recipe.sha256, "seed": seed, "n": n,
              "multiframe": recipe.multiframe, "one_per_study": recipe.one_per_study,
              "proportions": recipe.proportions or None,
              "labels_sha256": file_sha256(labels_path) if labels_path is not None else None,
              "anon_dir_manifest_sha256": file_sha256(anon_dir / MANIFEST), "images": len(rows),
              "selected": summary.selected, "counts": dict(sorted(summary.reasons.items())),
              "duplicate_groups_across_patients": across, "look_version": version, "vindr_version": __version__}
    with atomic_write(output / "selection.json") as f:
        f.write((json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    tmp = tmp_dir(output)
    if tmp.is_dir() and not any(tmp.iterdir()):
        tmp.rmdir()


__all__ = ["REASON_ORDER", "REVIEW_EXCLUDED", "SelectRequestError", "SelectSummary", "check_same_request",
           "criteria_reasons", "decide",
           "read_manifest", "review_excluded",
           "scan_one", "select"]
