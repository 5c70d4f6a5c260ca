"""Read one input's header and describe it as plain, picklable, non-identifying facts.

``probe(ctx, source)`` is the function ``vindr info`` maps over every input. It never
raises. Identifiers (patient, study, series, instance) leave it only as sha256 hashes, so
the caller can count distinct values without ever holding one; every other value is
either a number, a standard UID with its registered name, or a coded string checked
against the DICOM CS repertoire (anything else becomes a fixed placeholder).
"""
from __future__ import annotations

import hashlib

from vindr_cli.dicomio.header import DICOMDIR_CLASS, BadInput, read_header
from vindr_cli.dicomio.quiet import quiet_pydicom
from vindr_cli.dicomio.safe import ABSENT, NONSTANDARD, coded, registry_uid, small_int
from vindr_cli.runner.discover import os_reason
from vindr_cli.runner.sources import Source

def setup(_config: object) -> None:
    """No per-worker state; keep pydicom from printing values."""
    quiet_pydicom()


def _digest(*parts: object) -> str | None:
    if not parts[0]:
        return None
    text = "\x00".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _int(value: object) -> int | None:
    return small_int(value)


def _uid(value: object) -> tuple[str, str]:
    uid, name = registry_uid(value)
    return (uid or "", name)


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
        "modality": coded(ds.get("Modality"), "modality"),
        "sop_class": _uid(ds.get("SOPClassUID")),
        "transfer_syntax": _uid(meta.get("TransferSyntaxUID")),
        "photometric": coded(ds.get("PhotometricInterpretation"), "photometric"),
        "bits_stored": ABSENT if bits is None else str(bits) if 1 <= bits <= 64 else NONSTANDARD,
        "body_part": coded(ds.get("BodyPartExamined"), "body_part"),
        "charset": coded(ds.get("SpecificCharacterSet"), "charset"),
        "rows": _int(ds.get("Rows")),
        "columns": _int(ds.get("Columns")),
        "burned_in": "YES" in coded(ds.get("BurnedInAnnotation"), "burned_in").split("\\"),
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
    except OSError as exc:    # a fixed reason by errno (the text holds the path)
        return {"status": "failed", "reason": os_reason(exc, "could not open or read the file")}
    except Exception as exc:  # never echo the message: it may quote file content
        return {"status": "failed", "reason": f"unexpected error ({type(exc).__name__})"}
