"""Attribute Types per IOD (``schemas/deid/iod_types.json``) for compound actions."""
from __future__ import annotations

import json
from functools import cache

from pydicom.datadict import tag_for_keyword

from vindr_cli.resources import schema_path


@cache
def _types() -> dict[str, dict[int, int]]:
    data = json.loads(schema_path("deid", "iod_types.json").read_text(encoding="utf-8"))
    out: dict[str, dict[int, int]] = {}
    for uid, iod in data["iods"].items():
        merged: dict[int, int] = {}
        for module in iod["modules"]:
            for kw, t in data["modules"][module].items():
                tag = tag_for_keyword(kw)
                if tag is None:
                    raise ValueError(f"iod_types.json: unknown keyword {kw}")
                merged[tag] = min(t, merged.get(tag, 3))
        out[uid] = merged
    return out


def attribute_type(sop_class: str | None, tag: int) -> int | None:
    """1, 2 or 3 for a top-level attribute of a known IOD; None when unknown."""
    if not sop_class:
        return None
    return _types().get(sop_class, {}).get(tag)


def resolve_compound(action: str, attr_type: int | None) -> str:
    """Pick the simple action of a compound one; unknown type -> the strictest (leftmost)."""
    if "/" not in action:
        return action
    parts = action.split("/")
    if attr_type is None:
        return parts[0]
    if action == "X/Z":
        return "Z" if attr_type in (1, 2) else "X"
    if action == "X/D":
        return "D" if attr_type in (1, 2) else "X"
    if action == "Z/D":
        return "D" if attr_type == 1 else "Z"
    if action == "X/Z/D":
        return {1: "D", 2: "Z"}.get(attr_type, "X")
    if action == "X/Z/U*":
        return {1: "U", 2: "Z"}.get(attr_type, "X")
    return parts[0]
