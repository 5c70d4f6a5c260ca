"""Is a file of ANON_DIR the de-identified output its ``manifest.parquet`` row describes?

One check, shared by every stage that takes files out of a `vindr anonymize` OUTPUT
(``release``, ``curate.handoff``, ``pixels`` for ``vindr decode``): PatientIdentityRemoved
YES and the row's substitute PatientID and SOP Instance UID. A raw export's file copied
over an output (or any file put there by hand) has neither; its pixel data may still match
the row's ``pixel_sha256`` (an image anonymize left unchanged), so the hash alone cannot
tell (red team 6). Nothing of the file is ever shown: the answer is a bool.

An output's PatientID may also be empty where the row has a substitute: the ``vindr``
profile empties it (Type 2, not on VinDr's keep-list), and an input without a PatientID
keeps it empty, while the manifest names the patient by its keyed pseudonym. Such a file
must carry vindr's own mark instead (DeidentificationMethod naming a key fingerprint,
written by ``vindr anonymize`` after the walk); without this, select, decode and release
refused every output of ``--profile vindr`` as "a file was replaced" (new-user walk 4).
"""
from __future__ import annotations

from pathlib import Path

TAGS = ["PatientIdentityRemoved", "PatientID", "SOPInstanceUID", "DeidentificationMethod"]
KEY_MARK = "vindr key fingerprint "     # the anonymizer writes it (deid.engine.KEY_MARK is this one), read here as data


def _vindr_marked(ds) -> bool:
    raw = ds.get("DeidentificationMethod")
    values = [] if raw is None else ([raw] if isinstance(raw, str) else list(raw))
    return any(str(v).startswith(KEY_MARK) for v in values)


def matches_row(ds, row: dict) -> bool:
    """Whether the data set ``ds`` (a header already read) is the output ``row`` describes."""
    try:
        return (str(ds.get("PatientIdentityRemoved", "") or "").strip().upper() == "YES"
                and (str(ds.get("PatientID", "")) == str(row.get("patient_id"))
                     or (str(ds.get("PatientID", "") or "") == "" and _vindr_marked(ds)))
                and str(ds.get("SOPInstanceUID", "")) == str(row.get("sop_uid")))
    except Exception:      # a value that cannot be read: not a vindr output
        return False


def is_vindr_output(path: Path, row: dict) -> bool:
    """Whether the file at ``path`` is the de-identified file its manifest row describes."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=TAGS)
    except Exception:      # unreadable: not a vindr output (its content is never shown)
        return False
    return matches_row(ds, row)
