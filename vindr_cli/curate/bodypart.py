"""Body part names as data (``schemas/curate/body_parts.toml``): a BodyPartExamined value,
however written, to its normalised term, or None when it is not a known synonym (a free-text
value is never copied through)."""
from __future__ import annotations

import re
import tomllib
import unicodedata
from functools import cache

from vindr_cli.resources import schema_path

_NON_ALNUM = re.compile(r"[^A-Z0-9]+")


def normalise_text(value: str) -> str:
    """Accents removed, upper case, runs of other characters one space, trimmed."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(c for c in text if not unicodedata.combining(c)).upper().replace("Đ", "D")
    return _NON_ALNUM.sub(" ", text).strip()


@cache
def _table() -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    data = tomllib.loads(schema_path("curate", "body_parts.toml").read_text(encoding="utf-8"))
    synonyms: dict[str, str] = {}
    for term, spec in data["parts"].items():
        for s in [term, *spec["synonyms"]]:
            key = normalise_text(s)
            if synonyms.setdefault(key, term) != term:
                raise RuntimeError(f"body_parts.toml: {key!r} is a synonym of two terms")
    groups = {g: frozenset(members) for g, members in data.get("groups", {}).items()}
    return synonyms, groups


def known_terms() -> frozenset[str]:
    synonyms, groups = _table()
    return frozenset(synonyms.values()) | frozenset(groups)


def expand(terms) -> frozenset[str]:
    """Recipe terms with groups replaced by their members."""
    _, groups = _table()
    out: set[str] = set()
    for t in terms:
        out |= groups.get(t, {t})
    return frozenset(out)


def normalise(value) -> str | None:
    """The normalised term for a BodyPartExamined value (str or multi-value), else None."""
    if value is None:
        return None
    text = "\\".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    key = normalise_text(text)
    if not key:
        return None
    synonyms, _ = _table()
    return synonyms.get(key) or synonyms.get(key.replace(" ", ""))
