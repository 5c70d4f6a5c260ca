"""Read one input's header and describe it as plain, picklable, non-identifying facts.

``probe(ctx, source)`` is the function ``vindr info`` maps over every input. It never
raises. Identifiers (patient, study, series, instance) leave it only as sha256 hashes, so
the caller can count distinct values without ever holding one; every other value is
either a number, a standard UID with its registered name, or a coded string checked
against the DICOM CS repertoire (anything else becomes a fixed placeholder).
"""
from __future__ import annotations

import hashlib
import re

from pydicom.multival import MultiValue
from pydicom.uid import UID

from vindr_cli.dicomio.header import DICOMDIR_CLASS, BadInput, read_header
from vindr_cli.runner.sources import Source

ABSENT = "(absent)"
NONSTANDARD = "(non-standard value)"
UNKNOWN_UID = "(private or unknown UID)"
_CS = re.compile(r"[A-Z0-9 _]{0,16}")
_STANDARD_ROOT = "1.2.840.10008."


def setup(_config: object) -> None:
    """No per-worker state is needed."""
    return None


def _digest(*parts: object) -> str | None:
    if not parts[0]:
        return None
    text = "\x00".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def coded(value: object) -> str:
    """A CS value as a safe label: ABSENT, the value(s) joined by '\\', or NONSTANDARD."""
    if value is None or value == "":
        return ABSENT
    values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    terms = [str(v).strip() for v in values]
    if not all(isinstance(v, str) and _CS.fullmatch(t) for v, t in zip(values, terms)):
        return NONSTANDARD
    return "\\".join(terms) or ABSENT


def standard_uid(value: object) -> tuple[str, str]:
    """(uid, name) for a UID registered in the standard; fixed placeholders otherwise."""
    if value is None or value == "":
        return ("", ABSENT)
    uid = UID(str(value).strip())
    if uid.startswith(_STANDARD_ROOT) and uid.is_valid and uid.name != uid:
        return (str(uid), uid.name)
    return ("", UNKNOWN_UID)


def _int(value: object) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _groups(ds) -> set[int]:
    return {tag >> 16 for tag in ds.keys()}


def describe(ds) -> dict:
    """Facts about a parsed data set (top level only; elements after pixel data unseen)."""
    groups = _groups(ds)
    meta = ds.file_meta
    if meta.get("MediaStorageSOPClassUID") == DICOMDIR_CLASS:
        return {"status": "dicom", "dicomdir": True}
    bits = _int(ds.get("BitsStored"))
    return {
        "status": "dicom",
        "dicomdir": False,
        "patient": _digest(ds.get("PatientID", ""), ds.get("IssuerOfPatientID", "")),
        "study": _digest(ds.get("StudyInstanceUID", "")),
        "series": _digest(ds.get("SeriesInstanceUID", "")),
        "instance": _digest(ds.get("SOPInstanceUID", "")),
        "modality": coded(ds.get("Modality")),
        "sop_class": standard_uid(ds.get("SOPClassUID")),
        "transfer_syntax": standard_uid(meta.get("TransferSyntaxUID")),
        "photometric": coded(ds.get("PhotometricInterpretation")),
        "bits_stored": ABSENT if bits is None else str(bits) if 1 <= bits <= 64 else NONSTANDARD,
        "body_part": coded(ds.get("BodyPartExamined")),
        "charset": coded(ds.get("SpecificCharacterSet")),
        "rows": _int(ds.get("Rows")),
        "columns": _int(ds.get("Columns")),
        "burned_in": coded(ds.get("BurnedInAnnotation")) == "YES",
        "private": any(g % 2 == 1 for g in groups),
        "overlay": any(0x6000 <= g <= 0x60FF and g % 2 == 0 for g in groups),
        "curve": any(0x5000 <= g <= 0x50FF and g % 2 == 0 for g in groups),
    }


def probe(_ctx: object, source: Source) -> dict:
    """Header facts for one input, or {'status': 'not-dicom'|'failed', 'reason': ...}."""
    if source.missing_reason:
        return {"status": "failed", "reason": source.missing_reason}
    try:
        with source.open() as f:
            header = read_header(f, source.size)
        return describe(header.ds)
    except BadInput as exc:
        return {"status": exc.status, "reason": exc.reason}
    except OSError:
        return {"status": "failed", "reason": "could not open or read the file"}
    except Exception as exc:  # never echo the message: it may quote file content
        return {"status": "failed", "reason": f"unexpected error ({type(exc).__name__})"}
