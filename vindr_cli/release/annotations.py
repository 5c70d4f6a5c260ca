"""Annotation tables in the published VinDr formats: read, detect, validate, normalise.

Three formats are recognised from the header (column names are matched without regard
to case or surrounding blanks; extra columns are ignored):

``cxr-boxes``
    VinDr-CXR / Kaggle: ``image_id, class_name, [class_id], rad_id, x_min, y_min, x_max,
    y_max``. "No finding" rows (class 14) have empty box fields. With ``class_id`` the
    vocabulary is the 15 Kaggle classes and the id must agree with the name; without it,
    the 22 local labels of the VinDr-CXR PhysioNet release + "No finding".
``cxr-image-labels``
    VinDr-CXR ``image_labels_*.csv``: ``image_id, [rad_id], <one 0/1 column per label>``;
    the header is the vocabulary.
``spinexr``
    VinDr-SpineXR: ``image_id, study_id, series_id, rad_id, lesion_type, xmin, ymin, xmax,
    ymax``; 7 lesion types + "No finding" (empty box).

Every data row is checked; a bad row is reported with its line number (1-based, the
header is line 1) and a one-line reason, and left out of the normalised table. Checks
that need the image metadata (image known, box inside the image) are in
:func:`check_against_meta`.

The normalised table has one row per (image, reader, label) mark: ``line, image_id,
reader, label, x_min, y_min, x_max, y_max`` (boxes NaN where there is none; for SpineXR
also ``study_id, series_id``). An image_labels row with every label 0 gives one row with a
null label ("read, nothing marked"), so the image still counts as annotated.
"""
from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NO_FINDING = "No finding"
BOX = ("x_min", "y_min", "x_max", "y_max")

#: Kaggle "VinBigData Chest X-ray Abnormalities Detection" classes, by class_id.
KAGGLE_CXR_CLASSES = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
    "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
    "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", NO_FINDING,
)
#: Local labels of the VinDr-CXR 1.0.0 release (PhysioNet), + "No finding".
VINDR_CXR_LOCAL = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture",
    "Consolidation", "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung cavity",
    "Lung cyst", "Lung Opacity", "Mediastinal shift", "Nodule/Mass", "Other lesion",
    "Pleural effusion", "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "Rib fracture",
    NO_FINDING,
)
#: VinDr-SpineXR lesion types (the published spelling "Spondylolysthesis" is kept).
SPINEXR_CLASSES = (
    "Osteophytes", "Disc space narrowing", "Surgical implant", "Foraminal stenosis",
    "Spondylolysthesis", "Vertebral collapse", "Other lesions", NO_FINDING,
)
_ALIASES = {"interstitial lung disease": "ILD", "spondylolisthesis": "Spondylolysthesis",
            "no findings": NO_FINDING}

FORMATS = ("cxr-boxes", "cxr-image-labels", "spinexr")
_MAX_SHOWN = 40  # longest value quoted in a reason


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class BadRows:
    """Rows left out, each with its line number (header = line 1) and a one-line reason."""
    rows: list[BadRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[BadRow]:
        return iter(self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def extend(self, other: Iterable[BadRow]) -> None:
        self.rows.extend(other)
        self.rows.sort(key=lambda r: r.line)

    def by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.reason] = out.get(r.reason, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def lines(self) -> list[int]:
        return [r.line for r in self.rows]

    def summary(self, limit: int = 5) -> str:
        shown = "; ".join(str(r) for r in self.rows[:limit])
        more = f" (+{len(self.rows) - limit} more)" if len(self.rows) > limit else ""
        return f"{len(self.rows)} bad row{'s' if len(self.rows) != 1 else ''}: {shown}{more}"


class BadRowsError(ValueError):
    """Raised in strict mode when any input row is bad; ``.bad`` holds all of them."""

    def __init__(self, bad: BadRows, what: str = "annotation"):
        self.bad = bad
        super().__init__(f"{what}: {bad.summary()}")


def _quote(value: str) -> str:
    value = re.sub(r"\s+", " ", str(value))
    return repr(value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "...")


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", str(name)).strip().lower()


# --------------------------------------------------------------------------- CSV reading

@dataclass
class _Csv:
    header: list[str]
    data: pd.DataFrame        # all columns as str, '' for empty
    lines: np.ndarray         # 1-based line number of each data row
    bad: list[BadRow]


def _read_csv(path: Path) -> _Csv:
    """Read every field as text with its line number; blank lines are skipped silently."""
    if not Path(path).is_file():
        raise ValueError(f"annotation file not found: {Path(path).name}")
    raw = Path(path).read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        raise ValueError("annotation file is empty")
    fast = _read_fast(raw)
    return fast if fast is not None else _read_slow(raw)


def _read_fast(raw: bytes) -> _Csv | None:
    """pandas' C parser; None when line numbers cannot be trusted (ragged or multi-line rows)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            df = pd.read_csv(io.BytesIO(raw), dtype=str, na_filter=False, index_col=False,
                             skip_blank_lines=False, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, ValueError, Warning):
        return None
    physical = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    if len(df) != physical - 1 or any(str(c).startswith("Unnamed: ") for c in df.columns):
        return None
    lines = np.arange(2, len(df) + 2, dtype=np.int64)
    blank = (df == "").all(axis=1).to_numpy()
    if blank.any():
        df, lines = df.loc[~blank].reset_index(drop=True), lines[~blank]
    return _Csv([str(c) for c in df.columns], df, lines, [])


def _read_slow(raw: bytes) -> _Csv:
    text = raw.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    n = len(header)
    rows, lines, bad = [], [], []
    start = reader.line_num + 1
    for row in reader:
        line, start = start, reader.line_num + 1
        if not row or all(not v.strip() for v in row):
            continue
        if len(row) > n:
            bad.append(BadRow(line, f"{len(row)} fields, the header has {n}"))
            continue
        rows.append(row + [""] * (n - len(row)))
        lines.append(line)
    df = pd.DataFrame(rows, columns=_dedupe(header), dtype=object) if rows else \
        pd.DataFrame({c: pd.Series([], dtype=object) for c in _dedupe(header)})
    return _Csv(list(df.columns), df, np.asarray(lines, dtype=np.int64), bad)


def _dedupe(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in header:
        k = seen.get(h, 0)
        out.append(h if k == 0 else f"{h}.{k}")
        seen[h] = k + 1
    return out


# --------------------------------------------------------------------------- detection

def detect_format(header: Sequence[str]) -> str:
    """The annotation format named by a CSV header (see the module doc)."""
    keys = {_key(h) for h in header}
    if "image_id" not in keys:
        raise ValueError("annotation header has no image_id column: not a VinDr annotation table")
    if "lesion_type" in keys:
        need = {"xmin", "ymin", "xmax", "ymax"}
        if need - keys:
            raise ValueError(f"SpineXR header lacks {', '.join(sorted(need - keys))}")
        return "spinexr"
    if "class_name" in keys:
        need = set(BOX)
        if need - keys:
            raise ValueError(f"VinDr-CXR header lacks {', '.join(sorted(need - keys))}")
        return "cxr-boxes"
    if keys & (set(BOX) | {"xmin", "ymin", "xmax", "ymax", "class_id"}):
        raise ValueError("annotation header has box columns but no class_name or lesion_type column")
    if len(keys - {"image_id", "rad_id"}) == 0:
        raise ValueError("annotation header has no label column")
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


def _vocabulary(names: Sequence[str]) -> dict[str, str]:
    voc = {_key(n): n for n in names}
    for alias, canonical in _ALIASES.items():
        if canonical in names:
            voc.setdefault(alias, canonical)
    return voc


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


def _normalise_boxes(csvt: _Csv, fmt: str, classes: Sequence[str] | None) -> tuple[pd.DataFrame, list[BadRow]]:
    n = len(csvt.data)
    chk = _Checker(n)
    image_id = _col(csvt, "image_id")
    reader = _col(csvt, "rad_id")
    if reader is None:
        reader = pd.Series([""] * n, dtype="string")
    label_col = "class_name" if fmt == "cxr-boxes" else "lesion_type"
    names = _col(csvt, label_col)
    class_id = _col(csvt, "class_id") if fmt == "cxr-boxes" else None
    if classes is not None:
        vocab_names = tuple(classes)
    elif fmt == "spinexr":
        vocab_names = SPINEXR_CLASSES
    else:
        vocab_names = KAGGLE_CXR_CLASSES if class_id is not None else VINDR_CXR_LOCAL
    vocab = _vocabulary(vocab_names)

    chk.fail((image_id == "").to_numpy(dtype=bool), "empty image_id")
    codes, uniq = pd.factorize(names)
    uniq = [str(u) for u in uniq]
    canonical = np.array([vocab.get(_key(u)) for u in uniq] + [None], dtype=object)[codes]
    unknown = pd.isna(canonical)
    names_np = names.to_numpy(dtype=object)
    chk.fail(unknown & (names_np == ""), f"empty {label_col}")
    chk.fail(unknown, lambda i: f"unknown class {_quote(names_np[i])}")
    canonical = np.where(unknown, "", canonical).astype(object)
    if class_id is not None and classes is None:
        ids = _to_float(class_id)
        kaggle_id = {c: float(i) for i, c in enumerate(KAGGLE_CXR_CLASSES)}
        expected = np.array([kaggle_id.get(vocab.get(_key(u)), np.nan) for u in uniq] + [np.nan])[codes]
        cid = class_id.to_numpy(dtype=object)
        chk.fail(np.isnan(ids) | (ids != np.round(ids)), lambda i: f"class_id {_quote(cid[i])} is not an integer")
        chk.fail(ids != expected, lambda i: f"class_id {_quote(cid[i])} does not match class {_quote(canonical[i])}")
    is_none = canonical == NO_FINDING
    box_names = BOX if fmt == "cxr-boxes" else ("xmin", "ymin", "xmax", "ymax")
    boxes = _check_boxes(chk, [_col(csvt, b) for b in box_names], is_none)
    ok = chk.ok
    out = pd.DataFrame({
        "line": csvt.lines[ok],
        "image_id": image_id[ok].astype("string").reset_index(drop=True),
        "reader": _null_empty(reader[ok]).reset_index(drop=True),
        "label": pd.array(canonical[ok], dtype="string"),
    })
    for j, b in enumerate(BOX):
        out[b] = boxes[ok, j]
    if fmt == "spinexr":
        for extra in ("study_id", "series_id"):
            col = _col(csvt, extra)
            out[extra] = _null_empty(col[ok]).reset_index(drop=True) if col is not None else \
                pd.array([None] * int(ok.sum()), dtype="string")
    return out, chk.bad_rows(csvt.lines)


def _normalise_image_labels(csvt: _Csv) -> tuple[pd.DataFrame, list[BadRow]]:
    n = len(csvt.data)
    chk = _Checker(n)
    image_id = _col(csvt, "image_id")
    reader = _col(csvt, "rad_id")
    if reader is None:
        reader = pd.Series([""] * n, dtype="string")
    label_cols = [c for c in csvt.header if _key(c) not in ("image_id", "rad_id")]
    labels = [re.sub(r"\s+", " ", c).strip() for c in label_cols]
    chk.fail((image_id == "").to_numpy(dtype=bool), "empty image_id")
    values = np.zeros((n, len(label_cols)), dtype=bool)
    for j, c in enumerate(label_cols):
        text = _col(csvt, _key(c)) if labels.count(labels[j]) == 1 else \
            csvt.data[c].astype("string").fillna("").str.strip().reset_index(drop=True)
        num = _to_float(text)
        tnp = text.to_numpy(dtype=object)
        chk.fail(~((num == 0) | (num == 1)),
                 lambda i, c=c, tnp=tnp: f"label {_quote(c)} is {_quote(tnp[i]) if tnp[i] else 'empty'}, not 0 or 1")
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
    for b in BOX:
        out[b] = np.nan
    out.attrs["labels"] = labels
    return out, chk.bad_rows(csvt.lines)


def read_annotations(path: str | Path, *, strict: bool = False,
                     classes: Sequence[str] | None = None) -> tuple[pd.DataFrame, BadRows]:
    """Read a VinDr annotation CSV in any published format (detected from the header).

    Returns the normalised table (module doc; ``df.attrs['format']`` and
    ``df.attrs['labels']``, the vocabulary in its canonical order) and the bad rows.
    ``classes`` replaces the format's vocabulary (and turns off the class_id check).
    With ``strict`` any bad row raises :class:`BadRowsError`.
    """
    csvt = _read_csv(Path(path))
    fmt = detect_format(csvt.header)
    if fmt == "cxr-image-labels":
        df, bad = _normalise_image_labels(csvt)
        vocab = list(df.attrs["labels"])
    else:
        df, bad = _normalise_boxes(csvt, fmt, classes)
        if classes is not None:
            vocab = list(classes)
        elif fmt == "spinexr":
            vocab = list(SPINEXR_CLASSES)
        else:
            vocab = list(KAGGLE_CXR_CLASSES if _col(csvt, "class_id") is not None else VINDR_CXR_LOCAL)
    bad_rows = BadRows(sorted(csvt.bad + bad, key=lambda r: r.line))
    df.attrs["format"] = fmt
    df.attrs["labels"] = vocab
    if strict and bad_rows:
        raise BadRowsError(bad_rows)
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
        raise ValueError(f"metadata file not found: {path.name}")
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    df.columns = [_key(c) for c in df.columns]
    if "status" in df.columns:
        df = df.loc[df["status"].astype("string").fillna("") == "ok"]
    if "study_id" not in df.columns and "study_uid" in df.columns:
        df = df.rename(columns={"study_uid": "study_id"})
    if "image_id" not in df.columns:
        raise ValueError("metadata has no image_id column")
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
        raise ValueError(f"metadata lists {int(out.loc[dup, 'image_id'].nunique())} image_id(s) more than once "
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
