"""The release's datasheet: ``datasheet.json`` (schema ``schemas/release/datasheet.json``),
``README.md`` rendered from it, and ``datasheet.png`` (age by sex, images per view).

What a data user needs before trusting a release (issue 11): what is in it (modality, body
part, view, laterality, sex, age bins, manufacturers, image sizes, bit depths — counted per
released DICOM file), what was left out and why (anonymize's quarantine/failure rows by
reason, the selection's reasons, duplicates, images dropped by the release itself, and
annotation rows left out), the audit status, the de-identification profile and options,
the split seed, the multi-frame policy, and the licence.

Per-image facts come from ``selection.parquet`` when the release was built with
``--selection`` (``vindr select`` normalised body part and view), else from the anonymized
headers (pydicom, ``stop_before_pixels``). Only coded values that look like codes are shown
(``CODE``: one token of A-Z, 0-9 and _, at most 16 characters, as CS defined terms are — so a
phrase such as a name stored in BodyPartExamined is not), and for modality, body part, view and
laterality only a listed term (``schemas/release/datasheet_terms.toml``: an ID or a name run
together is code-shaped too); anything else is counted as ``(other)`` — a datasheet never quotes free text (a manufacturer is shown only when it names a
vendor of ``schemas/deid/vendors.toml``, the anonymizer's rule).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import Counter
from functools import cache
from pathlib import Path

import jsonschema
import pandas as pd

from vindr_cli.reasons import shown as shown_reason
from vindr_cli.dicomio.pixelstream import file_sha256
from vindr_cli.release.tables import release_schema
from vindr_cli.resources import schema_path
from vindr_cli.vendors import vendor_ok

AGE_BINS = ("<18", "18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+", "unknown")
CODE = re.compile(r"[A-Z0-9][A-Z0-9_]{0,15}")
OTHER, UNKNOWN = "(other)", "unknown"
NOT_SET = "not set"
LICENCE_NOTE = "not set: the data custodian must choose a licence before this release is shared"
CHART = "datasheet.png"
FACTS = ("modality", "body_part", "view", "laterality", "sex", "age_years", "manufacturer", "rows", "columns",
         "bits_stored", "frames")


# --- per-image facts ---------------------------------------------------------------------------

def _code(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return UNKNOWN
    s = str(v).strip().upper()
    if not s:
        return UNKNOWN
    return s if CODE.fullmatch(s) else OTHER


@cache
def _terms() -> dict[str, frozenset[str]]:
    """The coded values a datasheet may quote, per fact (schemas/release/datasheet_terms.toml,
    schemas/dicom/defined_terms.toml, the part names of schemas/curate/body_parts.toml)."""
    import tomllib

    load = lambda *p: tomllib.loads(schema_path(*p).read_text(encoding="utf-8"))  # noqa: E731
    own, dicom, parts = load("release", "datasheet_terms.toml"), load("dicom", "defined_terms.toml"), \
        load("curate", "body_parts.toml")
    return {"modality": frozenset(dicom["modality"]),
            "body_part": frozenset(dicom["body_part"]) | frozenset(parts.get("parts", {}))
            | frozenset(parts.get("groups", {})),
            "view": frozenset(own["view"]), "laterality": frozenset(own["laterality"])}


def _term(v, kind: str) -> str:
    """``_code`` of a value, shown only when it is a listed term of ``kind`` (``_terms``):
    a code-shaped token (an ID, a name run together) kept in a CS attribute is ``(other)``."""
    s = _code(v)
    return s if s in (UNKNOWN, OTHER) or s in _terms()[kind] else OTHER


def _maker(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return UNKNOWN
    s = " ".join(str(v).split())
    if not s:
        return UNKNOWN
    return s if vendor_ok(s) else OTHER          # a listed vendor (schemas/deid/vendors.toml), else free text


def age_years(value) -> float | None:
    """PatientAge (``nnnD|W|M|Y``) in years; None when absent or malformed."""
    m = re.fullmatch(r"(\d{3})([DWMY])", str(value or "").strip().upper())
    if not m:
        return None
    n = int(m.group(1))
    return {"D": n / 365.25, "W": n * 7 / 365.25, "M": n / 12, "Y": float(n)}[m.group(2)]


def age_bin(years) -> str:
    if years is None or (isinstance(years, float) and math.isnan(years)) or years < 0:
        return "unknown"
    if years < 18:
        return "<18"
    if years >= 80:
        return "80+"
    lo = 18 if years < 30 else int(years // 10) * 10
    return "18-29" if lo == 18 else f"{lo}-{lo + 9}"


def header_facts(path: Path) -> dict:
    """Facts of one anonymized file from its header (never the pixel data)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:   # an unreadable file is counted, its content never shown
        return {"unreadable": True}
    g = lambda k: ds.get(k, None)  # noqa: E731
    return {"modality": g("Modality"), "body_part": g("BodyPartExamined"), "view": g("ViewPosition"),
            "laterality": g("ImageLaterality") or g("Laterality"), "sex": g("PatientSex"),
            "age_years": age_years(g("PatientAge")), "manufacturer": g("Manufacturer"),
            "rows": g("Rows"), "columns": g("Columns"), "bits_stored": g("BitsStored"),
            "frames": g("NumberOfFrames")}


def image_facts(dicom_paths: dict[str, Path], selection_rows: pd.DataFrame | None) -> tuple[pd.DataFrame, str]:
    """One row of facts per image_id (the released DICOM files), and where they came from."""
    if selection_rows is not None:
        rows = selection_rows.set_index("image_id")
        out = []
        for image_id in dicom_paths:
            r = rows.loc[image_id] if image_id in rows.index else None
            out.append({"image_id": image_id, **{k: (r[k] if r is not None and k in rows.columns else None)
                                                  for k in FACTS}})
        return pd.DataFrame(out, columns=["image_id", *FACTS]), "selection.parquet"
    out = [{"image_id": i, **header_facts(p)} for i, p in dicom_paths.items()]
    return pd.DataFrame(out, columns=["image_id", *FACTS, "unreadable"]), "DICOM headers"


def _counts(values) -> dict[str, int]:
    c = Counter(values)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def distributions(facts: pd.DataFrame) -> dict:
    def num(v):
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(f) else int(f)

    sizes = [f"{num(r)}x{num(c)}" if num(r) and num(c) else UNKNOWN for r, c in zip(facts["rows"], facts["columns"])]
    sex = [s if s in ("M", "F", "O") else UNKNOWN for s in map(_code, facts["sex"])]
    ages = [age_bin(None if a is None or pd.isna(a) else float(a)) for a in facts["age_years"]]
    return {
        "modality": _counts(_term(v, "modality") for v in facts["modality"]),
        "body_part": _counts(_term(v, "body_part") for v in facts["body_part"]),
        "view": _counts(_term(v, "view") for v in facts["view"]),
        "laterality": _counts(_term(v, "laterality") for v in facts["laterality"]),
        "sex": _counts(sex),
        "age": {b: ages.count(b) for b in AGE_BINS},
        "age_by_sex": {s: {b: sum(1 for a, x in zip(ages, sex) if a == b and x == s) for b in AGE_BINS}
                       for s in ("F", "M", "O", UNKNOWN)},
        "manufacturer": _counts(map(_maker, facts["manufacturer"])),
        "size": _counts(sizes),
        "bits_stored": _counts(str(num(b)) if num(b) else UNKNOWN for b in facts["bits_stored"]),
        "unreadable": int(facts["unreadable"].eq(True).sum()) if "unreadable" in facts else 0,
    }


# --- exclusions, audit -------------------------------------------------------------------------

@cache
def _manifest_statuses() -> frozenset[str]:
    spec = json.loads(schema_path("tables", "anonymize_manifest.json").read_text(encoding="utf-8"))
    return frozenset(next(f for f in spec["fields"] if f["name"] == "status")["enum"])


def anonymize_exclusions(manifest_rows: list[dict]) -> dict[str, dict[str, int]]:
    """Rows of manifest.parquet that are not ``ok``: per status, per fixed reason. A status
    outside the manifest schema's enum, or a reason outside the vocabulary of the reasons
    vindr anonymize writes (``schemas/tables/reasons.json``: a hand-edited manifest), is
    counted as ``(other status)`` / ``(other reason)``, never quoted."""
    out: dict[str, Counter] = {}
    for r in manifest_rows:
        if r.get("status") == "ok":
            continue
        status = r.get("status") if r.get("status") in _manifest_statuses() else "(other status)"
        reason = r.get("reason")
        out.setdefault(status, Counter())["(no reason)" if reason is None else
                                          shown_reason("anonymize_manifest", reason)] += 1
    return {s: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for s, c in sorted(out.items())}


# The finding kinds vindr audit writes (deid/audit.py report.add, deid/policy.py refusal kinds;
# tests/test_redteam2.py keeps the two in step): a key of a report's findings_by_kind that is
# not one of them (a hand-edited report) is counted as "(other)", never quoted.
AUDIT_KINDS = frozenset({
    "code-meaning", "file-meta", "group-length", "link", "manifest", "missing-output", "not-audited", "not-kept", "not-marked",
    "overlay-curve", "phi", "phi-bytes", "phi-path", "pixel-data", "pixel-hash", "pixel-mask", "pixel-scan",
    "pixel-text", "post-pixel", "private", "removed-tag", "state", "stray-file", "table", "unknown-tag",
    "unreadable", "vr-mismatch", "url", "binary", "vr-grammar", "unsafe-text", "identifying-value"})


def _audit_kinds(by_kind) -> dict[str, int]:
    out: Counter = Counter()
    for k, v in (by_kind.items() if isinstance(by_kind, dict) else ()):
        out[str(k) if str(k) in AUDIT_KINDS else OTHER] += int(v)
    return dict(out)


def audit_status(report: Path | None, *, accepted: bool = False) -> dict:
    """What ``vindr audit --report FILE.json`` says (counts only), or ``not audited``.
    ``accepted``: the custodian passed ``--accept-audit-findings`` (recorded when there are
    findings; :func:`check_audit_tree` has checked the report is of ANON_DIR)."""
    if report is None:
        return {"status": "not audited"}
    data = json.loads(report.read_text(encoding="utf-8"))
    total = int(data.get("findings_total", len(data.get("findings", []))))
    out = {"status": "clean" if total == 0 else "findings", "findings_total": total,
           "findings_by_kind": _audit_kinds(data.get("findings_by_kind") or {}),
           "files": data.get("files"), "dicom_files": data.get("dicom_files"),
           "linkage_table_used": data.get("linkage_table_used"),
           "report_sha256": file_sha256(report)}
    if isinstance(data.get("audited"), dict):
        out["tree_fingerprint_checked"] = True
    if total and accepted:
        out["findings_accepted"] = True          # --accept-audit-findings
    return out


AUDIT_RERUN = "re-run vindr audit ANON_DIR --report FILE.json"
AUDIT_OLD = f"--audit-report holds no fingerprint of the tree it audited (an older vindr wrote it): {AUDIT_RERUN}"
AUDIT_OTHER_MANIFEST = (f"--audit-report is of another tree: its manifest.parquet is not ANON_DIR's "
                        f"(another output, or anonymize ran again since the audit): {AUDIT_RERUN}")
AUDIT_OTHER_FILES = (f"--audit-report is of another state of ANON_DIR: files were added, removed or changed "
                     f"since the audit: {AUDIT_RERUN}")
AUDIT_FINDINGS = ("--audit-report has {n} finding(s): fix them and {rerun}, or pass --accept-audit-findings "
                  "to release anyway (the datasheet records it with their counts by kind)")


def check_audit_tree(path: Path, anon_dir: Path, *, accept_findings: bool = False) -> None:
    """Refuse (ValueError, one fixed line) an audit report that is not of ``anon_dir`` as it
    is now (its ``audited`` fingerprint, runner.fingerprint, recomputed here), one without a
    fingerprint (an older report), and one with findings unless ``accept_findings``."""
    from vindr_cli.runner.fingerprint import VERSION, tree_fingerprint

    data = json.loads(path.read_text(encoding="utf-8"))
    recorded = data.get("audited")
    if not isinstance(recorded, dict) or recorded.get("version") != VERSION:
        raise ValueError(AUDIT_OLD)
    now = tree_fingerprint(anon_dir)
    if recorded.get("manifest_sha256") != now["manifest_sha256"]:
        raise ValueError(AUDIT_OTHER_MANIFEST)
    if (recorded.get("files"), recorded.get("listing_sha256")) != (now["files"], now["listing_sha256"]):
        raise ValueError(AUDIT_OTHER_FILES)
    total = data.get("findings_total")
    if not isinstance(total, int) or total < 0:
        raise ValueError("--audit-report is not a JSON file written by vindr audit --report FILE.json")
    if total and not accept_findings:
        raise ValueError(AUDIT_FINDINGS.format(n=total, rerun=AUDIT_RERUN))


def check_audit_report(path: Path) -> None:
    """Refuse (ValueError with a one-line reason) a file that is not an audit JSON report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise ValueError("--audit-report is not a JSON file written by vindr audit --report FILE.json") from None
    if not isinstance(data, dict) or "findings_total" not in data or "findings_by_kind" not in data:
        raise ValueError("--audit-report is not a JSON file written by vindr audit --report FILE.json")


# --- the sheet ---------------------------------------------------------------------------------

def build_sheet(**parts) -> dict:
    """datasheet.json's content, checked against schemas/release/datasheet.json."""
    sheet = {"vindr_version": parts["version"], "built": dt.date.today().isoformat(), **
             {k: parts[k] for k in ("images", "boxes", "labels", "facts_source", "distributions", "multiframe",
                                    "excluded", "selection", "audit", "deid", "split", "licence", "coordinates",
                                    "chart")}}
    sheet["review"] = parts.get("review") or {"status": "not reviewed"}     # vindr review (review/gate.py)
    jsonschema.validate(sheet, release_schema("datasheet"))
    return sheet


def _table(title: str, counts: dict, head: str = "value") -> list[str]:
    lines = [f"### {title}", "", f"| {head} | images |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()] or ["| (none) | 0 |"]
    return lines + [""]


def render_markdown(sheet: dict) -> str:
    im, boxes = sheet["images"], sheet["boxes"]
    lines = ["# Release datasheet", "",
             f"Built by vindr {sheet['vindr_version']} on {sheet['built']}. The same facts as JSON: "
             "`datasheet.json` (schema `schemas/release/datasheet.json`).", "",
             "## Images", "", "| split | images | boxes (COCO/YOLO) |", "| --- | ---: | ---: |"]
    for s in ("train", "test"):
        lines.append(f"| {s} | {im.get(s, 0)} | {boxes.get(s, 0)} |")
    lines += ["", "## Images per label and side", "", "| label | train | test |", "| --- | ---: | ---: |"]
    lines += [f"| {r['label']} | {r['train']} | {r['test']} |" for r in sheet["labels"]]
    d = sheet["distributions"]
    lines += ["", "## What is in it", "",
              f"Counted per released DICOM file; facts from {sheet['facts_source']}. Coded values that do not "
              f"look like codes are counted as `{OTHER}`."
              + (f" {d['unreadable']} file(s) had a header that could not be read." if d.get("unreadable") else ""),
              ""]
    if sheet.get("chart"):
        lines += [f"![age by sex and images per view]({sheet['chart']})", ""]
    for key, title in (("modality", "Modality"), ("body_part", "Body part"), ("view", "View position"),
                       ("laterality", "Laterality (L left, R right, B both, U unpaired: e.g. a chest film)"),
                       ("sex", "Sex"), ("age", "Age (years)"),
                       ("manufacturer", "Manufacturer"), ("size", "Image size (rows x columns)"),
                       ("bits_stored", "Bits stored")):
        lines += _table(title, d[key])
    mf = sheet["multiframe"]
    lines += ["## Multi-frame images", "",
              f"Policy `{mf['policy']}` ({mf['source']}): {mf['images']} multi-frame image(s); "
              f"{mf['frames_released']} frame(s) released as images; {mf['excluded']} excluded"
              + (f" ({mf['excluded_at_split']} more left out by `vindr split --selection`)"
                 if mf.get("excluded_at_split") else "") + ". "
              "`first`: frame 0 only (the DICOM file keeps every frame); `every`: each frame is an image "
              "`<image_id>_<frame>`; `exclude`: not released.", ""]
    ex = sheet["excluded"]
    lines += ["## Left out, and why", "",
              "Counts are input files for `anonymize`, images for `select` and `release`, and annotation rows "
              "(not images) for `annotations`.", ""]
    lines += ["| stage | reason | count |", "| --- | --- | ---: |"]
    rows = []
    for status, reasons in ex["anonymize"].items():
        rows += [f"| anonymize ({status}) | {r} | {n} |" for r, n in reasons.items()]
    rows += [f"| select | {r} | {n} |" for r, n in ex["selection"].items()]
    rows += [f"| release | {r} | {n} |" for r, n in ex["release"].items() if n]
    rows += [f"| annotations | {r} | {n} |" for r, n in ex["annotation_rows"].items() if n]
    lines += rows or ["| - | nothing left out | 0 |"]
    sel = sheet["selection"]
    if ex["selection"] and sel:
        # select counts each reason of an image: the rows add up to more than the images left out
        lines += ["", f"The `select` rows count reasons: an image `vindr select` left out for several reasons is "
                      f"counted under each, so they may add up to more than the {sel['images'] - sel['selected']} "
                      f"image(s) not selected ({sel['selected']} of {sel['images']} selected)."]
    dup = ex["duplicates"]
    lines += ["", f"Duplicates: {dup['anonymize']} exact copies (anonymize, same SOP instance), "
                  f"{dup['selection']} near-duplicates within a study or patient and {dup['across_patients']} "
                  f"across patients (select).", ""]
    lines += ["## Selection", ""]
    lines += ([f"Recipe `{sel['recipe'] or 'unnamed'}` (SHA-256 `{sel['recipe_sha256'] or 'unknown'}`): "
               f"{sel['selected']} of {sel['images']} images selected."] if sel else
              ["No `vindr select` output was given: every image of the split was released."])
    a = sheet["audit"]
    lines += ["", "## Audit", ""]
    if a["status"] == "not audited":
        lines.append("Not audited: no `vindr audit --report FILE.json` was given to `vindr release --audit-report`.")
    else:
        kinds = ", ".join(f"{k} {v}" for k, v in a["findings_by_kind"].items()) or "none"
        lines.append(f"`vindr audit`: {a['status']} — {a['findings_total']} finding(s) ({kinds}) over "
                     f"{a.get('files')} file(s); linkage table searched: {a.get('linkage_table_used')}; "
                     f"report SHA-256 `{a['report_sha256']}`."
                     + (" The report was checked to be of this release's de-identified tree (its fingerprint)."
                        if a.get("tree_fingerprint_checked") else "")
                     + (" **Released with these findings accepted by the data custodian "
                        "(`vindr release --accept-audit-findings`).**" if a.get("findings_accepted") else ""))
    rv = sheet.get("review") or {"status": "not reviewed"}
    lines += ["", "## Review", ""]
    if rv["status"] == "not reviewed":
        lines.append("Not reviewed: no `vindr review` decisions were found for this release.")
    else:
        lines.append(f"`vindr review`: {rv['decided']} flagged image(s) decided, {rv['undecided']} undecided"
                     + (" (released with --allow-unreviewed)" if rv["undecided"] else "")
                     + f"; {rv['excluded']} excluded and {rv['more_redaction']} marked for more redaction, "
                     "left out.")
    deid, sp = sheet["deid"], sheet["split"]
    lines += ["", "## Split", "",
              f"Seed {sp.get('seed', 'unknown')}; unit {sp.get('unit', 'unknown')}; groups (patients, else studies) "
              "never cross sides. See split_report.json for the per-label distribution and the LD/ED measures.",
              "", "## De-identification", "",
              f"Tool: {deid.get('tool') or 'unknown'}; profile: {deid.get('profile') or 'unknown'} "
              f"({deid.get('profile_source') or ''}); options: {', '.join(deid.get('options') or []) or 'none'}; "
              f"dates: {deid.get('dates') or 'unknown'}; UIDs under {deid.get('uid_root') or 'unknown'}.",
              *_deid_explained(deid),
              "", "## Licence", "", sheet["licence"] if sheet["licence"] != NOT_SET else LICENCE_NOTE,
              "", "## Coordinates", "", *sheet["coordinates"], "", *FILES_SECTION, ""]
    return "\n".join(lines)


@cache
def _annex_e_options() -> dict[str, tuple[str, str]]:
    """{option name: (CID 7050 code, meaning)} from schemas/deid/options.toml."""
    import tomllib

    data = tomllib.loads(schema_path("deid", "options.toml").read_text(encoding="utf-8"))
    return {name: (str(o["code"]), str(o["meaning"])) for name, o in data.get("options", {}).items()}


_BURNED_IN = {
    "redact": "text burned into the pixels was looked for by OCR in every frame and the identifying text masked "
              "(allowed markers such as L, R, PA kept; schemas/deid/burned_in_allowlist.toml)",
    "quarantine": "an image with identifying text found by OCR in its pixels was held back, not released",
    "off": "the pixels were not scanned for burned-in text (only the SOP-class / header quarantine applied)",
}


def _deid_explained(deid: dict) -> list[str]:
    """The de-identification in words a data custodian can check: each Annex E option by its
    code and meaning, the burned-in text mode, and how many released files had pixels masked.
    Only fixed words and counts (option names outside options.toml are not quoted)."""
    lines = []
    known = _annex_e_options()
    opts = deid.get("options") or []
    if opts:
        lines += ["", "PS3.15 Annex E options applied (CID 7050 code and meaning): "
                  + "; ".join(f"{known[o][0]} {known[o][1]}" if o in known else "(other option)" for o in opts) + "."]
    mode = deid.get("burned_in")
    if mode in _BURNED_IN:
        text = f"Burned-in text (`--burned-in {mode}`): {_BURNED_IN[mode]}."
        pm = deid.get("pixels_masked")
        if isinstance(pm, dict):
            text += f" {pm.get('masked', 0)} of the {pm.get('files', 0)} released DICOM file(s) had pixels masked."
            if pm.get("rewritten"):
                text += (f" {pm['rewritten']} had their pixel data rewritten without masking (frame metadata or "
                         "overlay bits removed).")
        text += (" Images of SOP classes that usually carry text (Secondary Capture, Ultrasound, ...) or marked "
                 "BurnedInAnnotation YES were " + ("scanned like the others (`--allow-burned-in`)."
                                                   if deid.get("allow_burned_in") else
                                                   "quarantined: see \"Left out, and why\"."))
        lines += ["", text]
    lines += ["", "Each attribute listed in PS3.15 Table E.1-1 got the profile's action (removed, emptied, dummied, "
              "or replaced by a keyed substitute; dates shifted per patient under `dates: shift`); private elements "
              "were removed; an attribute the table does not list was kept only when known to be safe "
              "(schemas/deid/safe_attributes.toml), else removed. The Audit section above says whether "
              "`vindr audit` checked the de-identified files; `vindr validate` checks this release."]
    return lines


# What each file of a release is and how to check and use it: for the researcher who
# receives the release and reads only this README (fixed text, the same for every release).
FILES_SECTION = [
    "## Files", "",
    "| path | what it holds |", "| --- | --- |",
    "| `train/dicom/`, `test/dicom/` | the de-identified DICOM files, `<image_id>.dicom` |",
    "| `train/images/`, `test/images/` | decoded images (PNG), when the release was built with `--images` |",
    "| `images.csv` | one row per released image: side, study and patient (substitute ids), `dicom` and `image` "
    "paths, DICOM `rows`/`columns`, decoded `image_rows`/`image_cols`, `scale_x`/`scale_y` (multiply a DICOM "
    "pixel coordinate by them for the decoded image), pixel data SHA-256, `frame`/`frames` |",
    "| `split.csv` | image, study, patient and side (train or test); a patient is never on both sides |",
    "| `annotations/annotations_{train,test}.csv` | one row per reader's box (VinDr-CXR layout, DICOM pixels); "
    "a row without coordinates is an image-level label such as No finding |",
    "| `annotations/kaggle_{train,test}.csv` | chest (VinDr-CXR) releases: the same rows in the VinBigData Kaggle "
    "layout, with `class_id` |",
    "| `annotations/coco_{train,test}.json`, `yolo/` | COCO and Ultralytics YOLO forms (see Coordinates) |",
    "| `labels.json` | the label set: class names and ids, its source |",
    "| `split_report.json`, `split_report.png` | labels per side and the split's balance measures |",
    "| `datasheet.json`, `datasheet.png` | the facts of this README as JSON, and its chart |",
    "",
    "Check the release as received: `vindr validate RELEASE` (schemas, files, boxes, pixel hashes, "
    "near-duplicates across sides; exit 1 on any finding). Score predictions on the test side: "
    "`vindr evaluate --gt annotations/kaggle_test.csv --labels labels.json --pred SUBMISSION.csv` (Kaggle "
    "`image_id,PredictionString`, DICOM pixel coordinates; a spine release: `--gt annotations/annotations_test.csv`). "
    "A learnability check: `vindr baseline RELEASE -o DIR`, which writes such a file of its test predictions, "
    "`DIR/test_predictions.csv`.",
]


def coordinates(decoded: bool, fused: bool) -> list[str]:
    return [
        "annotations_*.csv and kaggle_*.csv: DICOM pixel coordinates (as VinDr published them). "
        + ("coco_*.json and yolo/: pixels of the decoded images (images.csv has scale_x/scale_y)."
           if decoded else "coco_*.json and yolo/labels: DICOM pixel coordinates (no decoded images in this "
                           "release, so yolo/ has no images/ and no data.yaml)."),
        ("Reader boxes are fused per class (weighted boxes fusion, IoU 0.4; score = agreeing readers)."
         if fused else "Every reader's box is kept (one COCO annotation per reader box)."),
    ]


def write_chart(dist: dict, path: Path) -> bool:
    """Age bins by sex (stacked bars) and images per view, as one PNG. False without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return False
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    bottom = [0] * len(AGE_BINS)
    for sex, colour in (("F", "#c0504d"), ("M", "#4f81bd"), ("O", "#9bbb59"), (UNKNOWN, "#a5a5a5")):
        vals = [dist["age_by_sex"][sex][b] for b in AGE_BINS]
        ax1.bar(AGE_BINS, vals, bottom=bottom, label=sex, color=colour)
        bottom = [a + b for a, b in zip(bottom, vals)]
    ax1.set_title("images by age (years) and sex")
    ax1.legend()
    ax1.tick_params(axis="x", labelrotation=45)
    views = dist["view"]
    ax2.bar(list(views) or ["(none)"], list(views.values()) or [0], color="#4f81bd")
    ax2.set_title("images per view position")
    from matplotlib.ticker import MaxNLocator
    for ax in (ax1, ax2):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    from vindr_cli.atomic import atomic_write
    with atomic_write(path) as f:
        fig.savefig(f, format="png")
    return True
