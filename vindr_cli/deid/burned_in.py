"""Quarantine policy for images whose pixels may carry burned-in text (``schemas/deid/burned_in.toml``)."""
from __future__ import annotations

import tomllib
from functools import cache

from vindr_cli.resources import schema_path


@cache
def risky_sop_classes() -> dict[str, str]:
    data = tomllib.loads(schema_path("deid", "burned_in.toml").read_text(encoding="utf-8"))
    return dict(data["sop_classes"])


def quarantine_reason(ds) -> str | None:
    """Why this file must not be released as is, or None. The reason holds no PHI."""
    flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES (text burned into the pixels)"
    name = risky_sop_classes().get(str(ds.get("SOPClassUID", "")).strip())
    if name:
        return f"SOP Class {name} commonly carries burned-in or embedded text"
    return None
