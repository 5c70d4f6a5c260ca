"""Quarantine policy for images whose pixels may carry burned-in text (``schemas/deid/burned_in.toml``)."""
from __future__ import annotations

import tomllib
from functools import cache

from vindr_cli.resources import schema_path


@cache
def _policy() -> dict:
    return tomllib.loads(schema_path("deid", "burned_in.toml").read_text(encoding="utf-8"))


def risky_sop_classes() -> dict[str, str]:
    return dict(_policy()["sop_classes"])


def _says_yes(value) -> bool:
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    return any(str(v or "").strip().upper() == "YES" for v in values)


def quarantine_reason(ds) -> str | None:
    """Why this file must not be released as is, or None. The reason holds no PHI."""
    if _says_yes(ds.get("BurnedInAnnotation", "")):
        return "BurnedInAnnotation is YES (text burned into the pixels)"
    if _says_yes(ds.get("RecognizableVisualFeatures", "")):
        return "RecognizableVisualFeatures is YES (a face or other recognisable feature)"
    sop = str(ds.get("SOPClassUID", "")).strip()
    name = risky_sop_classes().get(sop)
    if name:
        return f"SOP Class {name} commonly carries burned-in or embedded text"
    for prefix, family in _policy().get("sop_class_prefixes", {}).items():
        if sop.startswith(prefix):
            return f"SOP Class family {family} carries free text, names or annotations in its content"
    return None
