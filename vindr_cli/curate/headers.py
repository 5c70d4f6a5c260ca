"""What selection reads from a de-identified header: a row of checked, PHI-free values.

Coded values are copied only when they are well-formed code strings (view, laterality,
sex, image type; body part through the synonym table), numbers only when they fit, so a
free-text value planted in a coded field never reaches a table. Age is PatientAge when it
is a valid Age String, else the difference between PatientBirthDate and the first of
StudyDate, SeriesDate, AcquisitionDate, ContentDate: anonymize shifts every date of a
patient by one offset, so the difference stays true.
"""
from __future__ import annotations

import datetime as dt
import re

from vindr_cli.curate.bodypart import normalise

# Transfer syntaxes that never lose information; every other compressed syntax counts as
# lossy (JPEG baseline/extended, JPEG-LS near-lossless, JPEG 2000 .91 and Part 2, HTJ2K .203,
# MPEG/HEVC, ...), as anonymize counts them (README: "JPEG 2000 .91 counts as lossy").
LOSSLESS_SYNTAXES = frozenset({
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.110",
    "1.2.840.10008.1.2.5",
})
_CS = re.compile(r"^[A-Z0-9 _]{1,16}$")
_AGE = re.compile(r"^(\d{3})([DWMY])$")
_DATE = re.compile(r"^\d{8}$")
LATERALITY = frozenset({"R", "L", "B", "U"})
SEX = frozenset({"M", "F", "O"})
FIELDS = ("body_part", "view", "laterality", "sex", "age_years", "frames", "bits_stored", "pixel_spacing",
          "manufacturer", "image_type", "presentation_intent", "lossy")


def _cs(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    return text if _CS.match(text) else None


def _values(value) -> list:
    """A value as a list of its values (pydicom's MultiValue, a list, or one value)."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _date(value) -> dt.date | None:
    text = str(value or "").strip()
    if not _DATE.match(text):
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def age_years(ds) -> float | None:
    """Age in years at the study (None when unknown or implausible)."""
    m = _AGE.match(str(ds.get("PatientAge", "") or "").strip().upper())
    if m:
        n = int(m.group(1))
        years = {"Y": n, "M": n / 12, "W": n * 7 / 365.25, "D": n / 365.25}[m.group(2)]
        return float(years) if 0 <= years <= 130 else None
    birth = _date(ds.get("PatientBirthDate"))
    if birth is None:
        return None
    for key in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        day = _date(ds.get(key))
        if day is not None:
            years = (day - birth).days / 365.25
            return round(years, 2) if 0 <= years <= 130 else None
    return None


def _positive_float(value) -> float | None:
    vals = _values(value)
    try:
        x = float(vals[0]) if vals else None
    except (TypeError, ValueError):
        return None
    return x if x is not None and 0 < x < 1000 else None


def _int(value, default=None, high=2**31 - 1) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return default
    return n if 0 <= n <= high else default


def _text(value) -> str | None:
    text = str(value or "").strip()
    if not text or len(text) > 64 or not text.isprintable():
        return None
    return text


def header_fields(ds, transfer_syntax: str | None) -> dict:
    """The selection columns read from a header (stop_before_pixels is enough)."""
    image_type = [_cs(v) for v in _values(ds.get("ImageType"))]
    laterality = _cs(ds.get("ImageLaterality")) or _cs(ds.get("Laterality"))
    sex = _cs(ds.get("PatientSex"))
    ts = str(transfer_syntax or ds.file_meta.get("TransferSyntaxUID", "") or "")
    lossy = str(ds.get("LossyImageCompression", "") or "").strip() == "01" or (bool(ts) and ts not in LOSSLESS_SYNTAXES)
    return {
        "body_part": normalise(ds.get("BodyPartExamined")),
        "view": _cs(ds.get("ViewPosition")),
        "laterality": laterality if laterality in LATERALITY else None,
        "sex": sex if sex in SEX else None,
        "age_years": age_years(ds),
        "frames": _int(ds.get("NumberOfFrames"), 1) or 1,
        "bits_stored": _int(ds.get("BitsStored"), None, 64),
        "pixel_spacing": _positive_float(ds.get("PixelSpacing")) or _positive_float(ds.get("ImagerPixelSpacing")),
        "manufacturer": _text(ds.get("Manufacturer")),
        "image_type": "\\".join(image_type) if image_type and all(image_type) else None,
        "presentation_intent": _cs(ds.get("PresentationIntentType")),
        "lossy": lossy,
    }
