"""Copy only safe values from an input into tables and reports.

Coded values must be defined terms (``schemas/dicom/defined_terms.toml``), UIDs must be
registry UIDs known to pydicom, numbers must fit their column. Anything else becomes a
fixed placeholder: a real export may hold a name in any field.
"""
from __future__ import annotations

import tomllib
from functools import cache

from pydicom.multival import MultiValue

from vindr_cli.resources import schema_path

ABSENT = "(absent)"
NONSTANDARD = "(non-standard value)"
UNKNOWN_UID = "(private or unknown UID)"
INT32_MAX = 2**31 - 1


@cache
def _terms() -> dict[str, frozenset[str]]:
    data = tomllib.loads(schema_path("dicom", "defined_terms.toml").read_text(encoding="utf-8"))
    return {k: frozenset(v) for k, v in data.items()}


def coded(value: object, kind: str, *, absent: str | None = ABSENT) -> str | None:
    """A CS value of the given kind ('modality', 'photometric', 'body_part', 'charset',
    'burned_in') as a safe label; several values are joined by '\\'."""
    if value is None or value == "":
        return absent
    values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    terms = [str(v).strip().upper() for v in values]
    allowed = _terms()[kind]
    if not terms or not all(t in allowed for t in terms if t):
        return NONSTANDARD
    return "\\".join(terms) or absent


def registry_uid(value: object) -> tuple[str | None, str]:
    """(uid, name) for a UID of the DICOM registry; (None, placeholder) otherwise."""
    from pydicom._uid_dict import UID_dictionary

    if value is None or value == "":
        return None, ABSENT
    uid = str(value).strip().rstrip("\x00")
    entry = UID_dictionary.get(uid)
    if entry is None:
        return None, UNKNOWN_UID
    return uid, entry[0]


def small_int(value: object, *, low: int = 0, high: int = INT32_MAX) -> int | None:
    """An integer within [low, high], else None."""
    try:
        n = int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n is not None and low <= n <= high else None
