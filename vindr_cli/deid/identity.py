"""Which files are the same patient: the patient key that the date shift, the substitute
PatientID and PatientName and the patient folder are derived from (keyed, in
``deid/substitutes.py``).

The key is computed from each file alone (workers run in parallel, runs resume), so two
files are one patient exactly when their keys are equal. Two ways to compare
(``vindr anonymize --patient-match``):

- ``normalised`` (default): one patient per normalised PatientID — surrounding spaces
  trimmed, inner runs of white space made one space, Unicode compatibility forms folded
  (NFKC), case folded, leading zeros stripped (``0077123`` = ``77123``; ``000`` = ``0``).
  IssuerOfPatientID is not part of the key: a file without an issuer is the same patient
  as a file with one, and so (computed per file, it cannot be otherwise) are two files
  whose issuers differ. Without a usable PatientID (empty, or a placeholder word such as
  ``UNKNOWN``, ``ANON`` or ``N/A``: ``schemas/deid/placeholders.toml``; numbers count as
  IDs): the PatientName, normalised
  the same way and with accents folded (``Nguyễn^Văn  An`` = ``NGUYEN^VAN AN``, trailing empty
  components dropped), with the birth date; without a usable name either: the study.
- ``strict``: the PatientID exactly as stored (trimmed) with IssuerOfPatientID; else the
  name as stored with the birth date; else the study (vindr's behaviour before
  normalisation: outputs made then keep their substitutes in strict mode).

The key holds PHI: it is only an HMAC input and never written anywhere.
"""
from __future__ import annotations

import re
import unicodedata

from pydicom.dataset import Dataset

from vindr_cli.deid.terms import fold, is_generic_placeholder

PATIENT_MATCH = ("normalised", "strict")
DEFAULT_PATIENT_MATCH = "normalised"
_SPACE = re.compile(r"\s+")


def _text(ds: Dataset, keyword: str) -> str:
    try:
        v = ds.get(keyword)
    except Exception:          # an element pydicom cannot decode: no value to match on
        return ""
    return "" if v is None else str(v).strip()


def normalise_id(value: str) -> str:
    """PatientID as compared in ``normalised`` mode: trimmed (also NUL padding), NFKC, white space runs made
    one space, case folded, leading zeros stripped (all zeros: ``0``)."""
    v = _SPACE.sub(" ", unicodedata.normalize("NFKC", value).strip(" \t\r\n\x00")).casefold()
    stripped = v.lstrip("0")
    if v and (not stripped or stripped[0] == " "):
        stripped = "0" + stripped
    return stripped


def normalise_name(value: str) -> str:
    """PatientName as compared in ``normalised`` mode: the first non-empty component group
    (alphabetic, else ideographic, else phonetic), accents and case folded (Vietnamese đ
    too), white space runs made one space, spaces around ``^`` and trailing empty
    components dropped."""
    groups = [g for g in value.split("=") if g.strip(" ^")]
    v = fold(unicodedata.normalize("NFKC", groups[0] if groups else ""))
    parts = [_SPACE.sub(" ", p).strip() for p in v.split("^")]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def patient_key(ds: Dataset, match: str = DEFAULT_PATIENT_MATCH) -> str:
    """What makes two files the same patient (see the module's docstring)."""
    if match == "strict":
        pid = _text(ds, "PatientID")
        if pid:
            return "id:" + pid + "|" + _text(ds, "IssuerOfPatientID")
        name, dob = _text(ds, "PatientName"), _text(ds, "PatientBirthDate")
        if name:
            return "name:" + name + "|" + dob
        return "study:" + _text(ds, "StudyInstanceUID")
    if match != "normalised":
        raise ValueError(f"patient match must be one of {', '.join(PATIENT_MATCH)}")
    pid = _text(ds, "PatientID")
    if pid and not is_generic_placeholder(pid):
        return "nid:" + normalise_id(pid)
    name = _text(ds, "PatientName")
    if normalise_name(name) and not is_generic_placeholder(name):
        return "nname:" + normalise_name(name) + "|" + _text(ds, "PatientBirthDate")
    return "study:" + _text(ds, "StudyInstanceUID")
