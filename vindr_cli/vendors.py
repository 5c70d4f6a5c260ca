"""Equipment vendors and model names that may be shown (``schemas/deid/vendors.toml``).

A shared leaf (like ``reasons.py``): the anonymizer and ``vindr audit`` (through
``deid.policy``) keep Manufacturer and the model name only when these say so, and the
release datasheet counts a manufacturer under its own name only when it names a listed
vendor (a hand-edited selection table is free text). Pure functions; the data is read once.
"""
from __future__ import annotations

import re
import tomllib
import unicodedata
from functools import cache

from vindr_cli.resources import schema_path


@cache
def _vendors() -> dict:
    """schemas/deid/vendors.toml, normalised: vendor names, suffixes (as word tuples), model rule."""
    data = tomllib.loads(schema_path("deid", "vendors.toml").read_text(encoding="utf-8"))
    if not data.get("source") or not data.get("model_source"):
        raise ValueError("vendors.toml needs a source and a model_source")
    return {"names": frozenset(_vendor_words(n) for names in data["vendors"].values() for n in names),
            "suffixes": tuple(_vendor_words(x) for x in data["suffixes"]),
            "model_words": frozenset(w.upper() for w in data["model_words"]),
            "titles": frozenset(w.upper() for w in data["titles"]),
            "model_max_digits": int(data["model_max_digits"])}


_VENDOR_CHARS = re.compile(r"[A-Za-z0-9 .,&()/+_'-]{1,64}")
_MODEL_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .+/_-]{0,63}")
_MODEL_SPLIT = re.compile(r"[ ._/-]+")
_LETTERS = re.compile(r"[A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")


def _vendor_words(s: str) -> tuple[str, ...]:
    s = unicodedata.normalize("NFKC", s).upper().replace(".", "").replace("'", "")
    return tuple(re.sub(r"[^A-Z0-9]+", " ", s).split())


def vendor_ok(s: str) -> bool:
    """A Manufacturer value names a listed vendor, with or without its trailing legal-form /
    division words (schemas/deid/vendors.toml): "FUJI PHOTO FILM CO. LTD." yes, "Dr Smith
    Medical Systems" no."""
    if not _VENDOR_CHARS.fullmatch(s):
        return False
    data = _vendors()
    words = _vendor_words(s)
    while words:
        if words in data["names"]:
            return True
        for suffix in data["suffixes"]:
            if len(suffix) < len(words) and words[-len(suffix):] == suffix:
                words = words[:-len(suffix)]
                break
        else:
            return False
    return False


def model_ok(s: str) -> bool:
    """A model name that cannot be a person's name (schemas/deid/vendors.toml): letters,
    digits and . + / _ - only; at most one letters-only word that is not a product word; no
    title (Dr, Mr, BS...) followed by a letters-only word; no digit run longer than
    ``model_max_digits`` (an ID, a date). The maker beside it is checked by
    the caller (``safe_text`` with ``siblings``)."""
    if not _MODEL_CHARS.fullmatch(s):
        return False
    data = _vendors()
    if any(len(d) > data["model_max_digits"] for d in _DIGITS.findall(s)):
        return False
    words = [w.upper() for w in _MODEL_SPLIT.split(s) if w]
    plain = [bool(_LETTERS.fullmatch(w)) for w in words]
    if sum(1 for w, p in zip(words, plain) if p and w not in data["model_words"]) > 1:
        return False
    return not any(w in data["titles"] and plain[i + 1] and words[i + 1] not in data["model_words"]
                   for i, w in enumerate(words[:-1]))
