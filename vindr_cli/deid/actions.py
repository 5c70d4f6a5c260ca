"""The Annex E actions on one element's value: dummy (D), empty (Z), UID (U), clean (C).

Remove (X) and keep (K) need no value work; the walk does them. Every function here
returns the new value for a pydicom DataElement of the given VR.
"""
from __future__ import annotations

import tomllib
from functools import cache

from vindr_cli.deid.substitutes import Substitutes, shift_da, shift_dt
from vindr_cli.resources import schema_path

TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"}
NUMBER_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"}
BYTES_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
DUMMY = {
    "DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000D",
    "IS": "0", "DS": "0", "PN": "ANONYMOUS", "UR": "", "CS": "ANONYMOUS",
}
REGISTRY_ROOT = "1.2.840.10008."


def is_registry_uid(value: str) -> bool:
    """A UID of the DICOM registry (SOP class, transfer syntax, coding scheme...): it
    identifies no one. Only UIDs pydicom knows count; anything else under the root could be
    an instance UID dressed up, and is replaced."""
    from pydicom._uid_dict import UID_dictionary

    return value in UID_dictionary


def empty_value(vr: str):
    """Z: a zero-length value."""
    return [] if vr == "SQ" else None


def dummy_value(vr: str):
    """D without a keyed substitute: a non-empty value valid for the VR."""
    if vr in DUMMY:
        return DUMMY[vr]
    if vr in TEXT_VRS:
        return "ANONYMOUS"
    if vr in NUMBER_VRS:
        return 0
    if vr in BYTES_VRS:
        return b"\x00\x00"
    return None


def _values(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _one_or_many(values: list):
    return values[0] if len(values) == 1 else values


def remap_uids(value, subs: Substitutes):
    """U: every UID in a (multi-)value replaced by its keyed substitute. UIDs of the DICOM
    registry (SOP classes, transfer syntaxes, coding schemes...) identify no one and stay."""
    out = []
    for v in _values(value):
        s = str(v).strip().rstrip("\x00")
        if not s:
            out.append(s)
        elif is_registry_uid(s):
            out.append(s)
        else:
            out.append(subs.uid(s))
    return _one_or_many(out) if out else None


def shift_dates(value, vr: str, days: int):
    """C for DA/DT under Retain Modified Dates; None when any value is not a valid date."""
    shift = shift_da if vr == "DA" else shift_dt
    out = []
    for v in _values(value):
        s = shift(str(v), days)
        if s is None:
            return None
        out.append(s)
    return _one_or_many(out) if out else ""


@cache
def safe_descriptors() -> frozenset[str]:
    data = tomllib.loads(schema_path("deid", "clean_descriptors.toml").read_text(encoding="utf-8"))
    return frozenset(v.upper() for v in data["values"])


def is_clean_descriptor(value) -> bool:
    """C for descriptors: kept only when every value is in the safe vocabulary."""
    vals = [str(v).strip().upper() for v in _values(value)]
    return bool(vals) and all(v in safe_descriptors() for v in vals)
