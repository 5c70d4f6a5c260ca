"""Read and validate every annotation and prediction form into one canonical table.

Forms, detected from the header (column names matched without case or surrounding blanks;
extra columns are ignored):

``cxr-boxes``
    VinDr-CXR / Kaggle ``train.csv``: ``image_id, class_name and/or class_id, rad_id, x_min,
    y_min, x_max, y_max``; "No finding" rows have empty box fields. With ``class_id`` the
    default label set is ``vinbigdata`` (Kaggle's 15, the id must be the class's position);
    without it ``vindr-cxr`` (the PhysioNet local labels).
``cxr-image-labels``
    VinDr-CXR ``image_labels_*.csv``: ``image_id, [rad_id], <one 0/1 column per label>``;
    every label column must be a label (local or global) of the set (``vindr-cxr``).
``spinexr``
    VinDr-SpineXR: ``image_id, study_id, series_id, rad_id, lesion_type, xmin, ymin, xmax,
    ymax``; label set ``vindr-spinexr``.
``kaggle-submission`` / ``pred-boxes``
    predictions, read by :func:`vindr_cli.annotations.predictions.read_predictions`.

**The canonical table** (one row per mark, whatever the form)::

    line      int     the line of the input the mark comes from (header = line 1)
    image_id  string
    reader    string  rad_id; null when the file has none
    label     string  the class in its published spelling (labels.py); null on an
                      image_labels row with every label 0 ("read, nothing marked")
    class_id  Int64   position of the label in the label set's classes (null for an
                      image-level-only label)
    score     float   NaN for annotations; the prediction's score for predictions
    x_min, y_min, x_max, y_max   float, NaN where there is no box
    [study_id, series_id]        SpineXR only

``df.attrs``: ``format``, ``label_set`` (the :class:`LabelSet` used), ``labels`` (the
vocabulary: box classes, or the image_labels columns in their canonical spelling),
``images`` (every non-empty image_id of the file in first-seen order, bad rows included).

Every data row is checked; a bad row is reported with its line number and a one-line reason
and left out. Class names: see :meth:`LabelSet.match` (published spelling; case/blank-
insensitive and aliases by design); an unknown one is a bad row whose reason names the
allowed classes. Checks that need the image metadata (image known, box inside the image)
are in :func:`check_against_meta`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vindr_cli.annotations.badrows import AnnotationInputError, BadRow, BadRows, BadRowsError, closest, quote
from vindr_cli.annotations.csvfile import CsvText, read_csv_text
from vindr_cli.annotations.labels import NO_FINDING, LabelSet, default_for, fold, load_labels

BOX = ("x_min", "y_min", "x_max", "y_max")
SPINE_BOX = ("xmin", "ymin", "xmax", "ymax")
FORMATS = ("cxr-boxes", "cxr-image-labels", "spinexr")
COLUMNS = ("line", "image_id", "reader", "label", "class_id", "score", *BOX)

_Csv = CsvText


def _key(name: str) -> str:
    return fold(name).lower()


# --------------------------------------------------------------------------- detection

def detect_format(header: Sequence[str]) -> str:
    """The annotation form named by a CSV header (see the module doc)."""
    keys = {_key(h) for h in header}
    if "image_id" not in keys:
        raise AnnotationInputError("annotation header has no image_id column: not a VinDr annotation table")
    if "lesion_type" in keys:
        need = set(SPINE_BOX)
        if need - keys:
            raise AnnotationInputError(f"SpineXR header lacks {', '.join(sorted(need - keys))}")
        return "spinexr"
    if "class_name" in keys or ("class_id" in keys and set(BOX) <= keys):
        need = set(BOX)
        if need - keys:
            raise AnnotationInputError(f"VinDr-CXR header lacks {', '.join(sorted(need - keys))}")
        return "cxr-boxes"
    if "predictionstring" in keys or "score" in keys:
        raise AnnotationInputError("this is a prediction table (PredictionString or score column), "
                                   "not ground-truth annotations")
    if keys & (set(BOX) | set(SPINE_BOX) | {"class_id"}):
        raise AnnotationInputError("annotation header has box columns but no class_name or lesion_type column")
    if len(keys - {"image_id", "rad_id"}) == 0:
        raise AnnotationInputError("annotation header has no label column")
    return "cxr-image-labels"


# --------------------------------------------------------------------------- validation

class _Checker:
    """Vectorised row checks: the first failing check of a row gives its reason."""

    def __init__(self, n: int):
        self.reason = np.full(n, None, dtype=object)

    def fail(self, mask: np.ndarray, reason) -> None:
        mask = np.asarray(mask, dtype=bool) & (self.reason == None)  # noqa: E711
        if not mask.any():
            return
        if callable(reason):
            idx = np.flatnonzero(mask)
            self.reason[idx] = [reason(i) for i in idx]
        else:
            self.reason[mask] = reason

    @property
    def ok(self) -> np.ndarray:
        return self.reason == None  # noqa: E711

    def bad_rows(self, lines: np.ndarray) -> list[BadRow]:
        idx = np.flatnonzero(~self.ok)
        return [BadRow(int(lines[i]), str(self.reason[i])) for i in idx]


def _to_float(text: pd.Series) -> np.ndarray:
    """Stripped text -> float64 (NaN for empty or not a number); Arrow's parser, pandas' on failure."""
    arr = pa.array(text.astype("string"))
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    try:
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _check_boxes(chk: _Checker, cols: list[pd.Series], is_none: np.ndarray) -> np.ndarray:
    """Box text -> float array (n, 4); 'No finding' must have no box, findings a full one."""
    n = len(is_none)
    empty = np.zeros((n, 4), dtype=bool)
    literal_nan = np.zeros((n, 4), dtype=bool)
    nums = np.full((n, 4), np.nan)
    for j, c in enumerate(cols):
        empty[:, j] = (c == "").to_numpy(dtype=bool)
        literal_nan[:, j] = c.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy(dtype=bool)
        nums[:, j] = _to_float(c)
    chk.fail(is_none & ~empty.all(axis=1), f"{NO_FINDING} with a box")
    finding = ~is_none
    chk.fail(finding & empty.all(axis=1), "finding without a box")
    chk.fail(finding & empty.any(axis=1), "incomplete box (empty coordinate)")
    chk.fail(finding & literal_nan.any(axis=1), "NaN in box")
    chk.fail(finding & (np.isnan(nums) & ~empty).any(axis=1), "box coordinate is not a number")
    chk.fail(finding & np.isinf(nums).any(axis=1), "infinite box coordinate")
    with np.errstate(invalid="ignore"):
        chk.fail(finding & ((nums[:, 2] <= nums[:, 0]) | (nums[:, 3] <= nums[:, 1])),
                 "inverted or empty box (max <= min)")
        chk.fail(finding & (nums < 0).any(axis=1), "box outside the image (negative coordinate)")
    nums[is_none] = np.nan
    return nums


def _col(csvt: _Csv, name: str) -> pd.Series | None:
    """A column (matched without case) as stripped text."""
    for c in csvt.header:
        if _key(c) == name:
            return csvt.data[c].astype("string").fillna("").str.strip().reset_index(drop=True)
    return None


def _null_empty(s: pd.Series) -> pd.Series:
    return s.astype("string").mask(s == "")


def _start(csvt: CsvText) -> tuple[int, _Checker, pd.Series, pd.Series]:
    """Row count, a checker with empty image_ids failed, the image_id and rad_id columns."""
    n = len(csvt.data)
    chk = _Checker(n)
    image_id = _col(csvt, "image_id")
    reader = _col(csvt, "rad_id")
    if reader is None:
        reader = pd.Series([""] * n, dtype="string")
    chk.fail((image_id == "").to_numpy(dtype=bool), "empty image_id")
    return n, chk, image_id, reader


def _normalise_boxes(csvt: CsvText, fmt: str, labels: LabelSet) -> tuple[pd.DataFrame, list[BadRow]]:
    n, chk, image_id, reader = _start(csvt)
    shown = labels.all_labels        # a value a reason may quote: a listed name (badrows.quote)
    label_col = "class_name" if fmt == "cxr-boxes" else "lesion_type"
    names = _col(csvt, label_col)
    class_id = _col(csvt, "class_id") if fmt == "cxr-boxes" else None
    ids = _to_float(class_id) if class_id is not None else None
    cid = class_id.to_numpy(dtype=object) if class_id is not None else None
    if ids is not None:
        chk.fail(np.isnan(ids) | (ids != np.round(ids)), lambda i: f"class_id {quote(cid[i], shown)} is not an integer")
    if names is not None:
        codes, uniq = pd.factorize(names)
        canonical_u = [labels.match(str(u)) for u in uniq]
        canonical = np.array(canonical_u + [None], dtype=object)[codes]
        unknown = pd.isna(canonical)
        names_np = names.to_numpy(dtype=object)
        chk.fail(unknown & (names_np == ""), f"empty {label_col}")
        # the listed class nearest an unknown name (only the label set's own words are shown)
        near = np.array([closest(u, labels.classes) if c is None else None
                         for u, c in zip(uniq, canonical_u)] + [None], dtype=object)[codes]
        chk.fail(unknown, lambda i: f"unknown class {quote(names_np[i], shown)}; closest listed class: "
                                    f"{quote(near[i], shown)}; {labels.allowed()}" if near[i] else
                                    f"unknown class {quote(names_np[i], shown)}; {labels.allowed()}")
        canonical = np.where(unknown, "", canonical).astype(object)
        if ids is not None:
            expected = np.array([labels.class_id(c) if c else -1 for c in canonical], dtype=float)
            chk.fail(ids != expected, lambda i: f"class_id {quote(cid[i], shown)} does not match class {quote(canonical[i], shown)} "
                                                f"(id {labels.class_id(canonical[i])} in label set {labels.name})")
    else:   # class_id only
        known = np.isfinite(ids) & (ids >= 0) & (ids < len(labels))
        chk.fail(~known, lambda i: f"unknown class_id {quote(cid[i], shown)}; {labels.allowed()} (ids 0..{len(labels) - 1})")
        canonical = np.array([labels.names[int(v)] if ok else "" for v, ok in zip(ids, known)], dtype=object)
    is_none = canonical == labels.no_finding
    box_names = BOX if fmt == "cxr-boxes" else SPINE_BOX
    boxes = _check_boxes(chk, [_col(csvt, b) for b in box_names], is_none)
    ok = chk.ok
    out = pd.DataFrame({
        "line": csvt.lines[ok],
        "image_id": image_id[ok].astype("string").reset_index(drop=True),
        "reader": _null_empty(reader[ok]).reset_index(drop=True),
        "label": pd.array(canonical[ok], dtype="string"),
        "class_id": pd.array([labels.class_id(c) for c in canonical[ok]], dtype="Int64"),
        "score": np.full(int(ok.sum()), np.nan),
    })
    for j, b in enumerate(BOX):
        out[b] = boxes[ok, j]
    if fmt == "spinexr":
        for extra in ("study_id", "series_id"):
            col = _col(csvt, extra)
            out[extra] = _null_empty(col[ok]).reset_index(drop=True) if col is not None else \
                pd.array([None] * int(ok.sum()), dtype="string")
    return out, chk.bad_rows(csvt.lines)


def _normalise_image_labels(csvt: CsvText, labels: LabelSet) -> tuple[pd.DataFrame, list[BadRow]]:
    n, chk, image_id, reader = _start(csvt)
    label_cols = [c for c in csvt.header if _key(c) not in ("image_id", "rad_id")]
    unknown = [c for c in label_cols if labels.match(c, image_level=True) is None]
    if unknown:
        where = [f"column {csvt.header.index(c) + 1}" + (f" (closest listed label: {quote(near, labels.all_labels)})"
                                                          if (near := closest(c, labels.all_labels)) else "")
                 for c in unknown[:5]]       # a header's own text is not shown (badrows.quote)
        raise AnnotationInputError(f"image label {', '.join(where)} not in the label set; "
                                   f"{labels.allowed(image_level=True)}")
    label_set, labels = labels, [labels.match(c, image_level=True) for c in label_cols]
    values = np.zeros((n, len(label_cols)), dtype=bool)
    for j, c in enumerate(label_cols):
        text = _col(csvt, _key(c)) if labels.count(labels[j]) == 1 else \
            csvt.data[c].astype("string").fillna("").str.strip().reset_index(drop=True)
        num = _to_float(text)
        tnp = text.to_numpy(dtype=object)
        chk.fail(~((num == 0) | (num == 1)),
                 lambda i, name=labels[j], tnp=tnp: f"label {quote(name, label_set.all_labels)} is "
                                                     f"{quote(tnp[i]) if tnp[i] else 'empty'}, not 0 or 1")
        values[:, j] = num == 1
    ok = chk.ok
    rows_idx, lab_idx = np.nonzero(values & ok[:, None])
    empty_rows = np.flatnonzero(ok & ~values.any(axis=1))
    r = np.concatenate([rows_idx, empty_rows])
    lab = np.concatenate([np.asarray(labels, dtype=object)[lab_idx] if len(labels) else np.array([], dtype=object),
                          np.full(len(empty_rows), None, dtype=object)])
    order = np.lexsort((np.concatenate([lab_idx, np.full(len(empty_rows), -1)]), r))
    r, lab = r[order], lab[order]
    out = pd.DataFrame({
        "line": csvt.lines[r],
        "image_id": image_id.iloc[r].astype("string").reset_index(drop=True),
        "reader": _null_empty(reader.iloc[r]).reset_index(drop=True),
        "label": pd.array(lab, dtype="string"),
    })
    out["class_id"] = pd.array([label_set.class_id(x) if isinstance(x, str) else None for x in lab], dtype="Int64")
    out["score"] = np.nan
    for b in BOX:
        out[b] = np.nan
    out.attrs["labels"] = labels
    return out, chk.bad_rows(csvt.lines)


def read_annotations(path: str | Path, *, strict: bool = False,
                     labels: "LabelSet | str | Path | None" = None) -> tuple[pd.DataFrame, BadRows]:
    """Read a ground-truth annotation CSV in any published form (detected from the header).

    Returns the canonical table (module doc) and the bad rows. ``labels`` (a
    :class:`LabelSet`, a built-in name or a TOML file) replaces the form's default set
    (:func:`default_for`). With ``strict`` any bad row raises :class:`BadRowsError` (exit 1);
    a file that is no annotation table raises :class:`AnnotationInputError` (exit 2).
    """
    csvt = read_csv_text(Path(path))
    fmt = detect_format(csvt.header)
    label_set = load_labels(labels) or default_for(fmt, has_class_id=_col(csvt, "class_id") is not None)
    if fmt == "cxr-image-labels":
        df, bad = _normalise_image_labels(csvt, label_set)
        vocab = list(df.attrs["labels"])
    else:
        df, bad = _normalise_boxes(csvt, fmt, label_set)
        vocab = list(label_set.names)
    bad_rows = BadRows(sorted(csvt.bad + bad, key=lambda r: r.line))
    ids = _col(csvt, "image_id")
    df.attrs["format"] = fmt
    df.attrs["labels"] = vocab
    df.attrs["label_set"] = label_set
    df.attrs["images"] = [i for i in pd.unique(ids) if i] if ids is not None else []
    if strict and bad_rows:
        raise BadRowsError(bad_rows, names=label_set.all_labels)
    return df, bad_rows


# --------------------------------------------------------------------------- metadata

def read_meta(path: str | Path) -> pd.DataFrame:
    """Image metadata: ``image_id, study_id, patient_id, rows, columns`` (ids as strings).

    Either the anonymize manifest (``manifest.parquet``: ``image_id, study_uid,
    patient_id, rows, columns, status``; only ``status == 'ok'`` rows are kept) or a
    CSV/Parquet with ``image_id, study_id`` (or ``study_uid``), optionally ``patient_id``,
    ``rows``, ``columns``. Empty ids become null. Repeated identical rows are merged; an
    image_id listed twice with different values is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationInputError(f"metadata file not found: {path.name}")
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        df = read_csv_text(path, "metadata").data
    df.columns = [_key(c) for c in df.columns]
    if "status" in df.columns:
        df = df.loc[df["status"].astype("string").fillna("") == "ok"]
    if "study_id" not in df.columns and "study_uid" in df.columns:
        df = df.rename(columns={"study_uid": "study_id"})
    if "image_id" not in df.columns:
        raise AnnotationInputError("metadata has no image_id column")
    out = pd.DataFrame(index=range(len(df)))
    for c in ("image_id", "study_id", "patient_id"):
        if c in df.columns:
            v = df[c].astype("string").str.strip().reset_index(drop=True)
            out[c] = v.mask(v.fillna("") == "")
        else:
            out[c] = pd.Series([None] * len(df), dtype="string")
    for c in ("rows", "columns"):
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan) if c in df.columns \
            else np.full(len(df), np.nan)
        good = np.isfinite(v) & (v > 0) & (v == np.round(v))
        out[c] = pd.array(np.where(good, v, 0).astype(np.int64), dtype="Int64")
        out.loc[~good, c] = pd.NA
    out = out.loc[out["image_id"].notna()].drop_duplicates().reset_index(drop=True)
    dup = out["image_id"].duplicated(keep=False)
    if dup.any():
        raise AnnotationInputError(f"metadata lists {int(out.loc[dup, 'image_id'].nunique())} image_id(s) more than once "
                         "with different study, patient or size")
    return out


def check_against_meta(ann: pd.DataFrame, meta: pd.DataFrame, *, strict: bool = False) -> tuple[pd.DataFrame, BadRows]:
    """Drop rows whose image is not in the metadata or whose box leaves the image."""
    idx = pd.Index(meta["image_id"]).get_indexer(ann["image_id"])
    n = len(ann)
    chk = _Checker(n)
    chk.fail(idx < 0, "image not in the metadata")
    safe = np.where(idx < 0, 0, idx)
    if len(meta):
        rows = meta["rows"].to_numpy(dtype=float, na_value=np.nan)[safe]
        cols = meta["columns"].to_numpy(dtype=float, na_value=np.nan)[safe]
    else:
        rows = cols = np.full(n, np.nan)
    x1 = ann["x_max"].to_numpy(dtype=float)
    y1 = ann["y_max"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        chk.fail((x1 > cols) | (y1 > rows), "box outside the image (beyond columns/rows)")
    lines = ann["line"].to_numpy()
    # an image_labels line gives one row per label: the whole line goes, reported once
    ok = chk.ok
    bad_lines = np.unique(lines[~ok])
    ok &= ~np.isin(lines, bad_lines)
    out = ann.loc[ok].reset_index(drop=True)
    out.attrs.update(ann.attrs)
    seen: set[int] = set()
    rows = []
    for r in chk.bad_rows(lines):
        if r.line not in seen:
            seen.add(r.line)
            rows.append(r)
    bad = BadRows(rows)
    if strict and bad:
        raise BadRowsError(bad)
    return out, bad
