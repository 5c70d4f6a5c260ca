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
            "model_families": frozenset(w.upper() for w in data["model_families"]),
            "titles": frozenset(w.upper() for w in data["titles"]),
            "model_max_digits": int(data["model_max_digits"])}


_VENDOR_CHARS = re.compile(r"[A-Za-z0-9 .,&()/+_'-]{1,64}")
_MODEL_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .+/_-]{0,63}")
_MODEL_SPLIT = re.compile(r"[ ._/-]+")
_LETTERS = re.compile(r"[A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")
_WORD = re.compile(r"[^ ._/-]+|[ ._/-]+")
_CODE = re.compile(r"[A-Z]{2,4}")       # a vendor code, as written: SSD-4000, ADC_5146, FV-DR


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
    digits and . + / _ - only; every letters-only word a product word, a listed model family
    or one vendor code (2-4 capitals joined by - or _ to the next word); no run of 5+ letters
    inside a word of letters and digits that is not listed, nor two unlisted runs of 2+ letters
    there; no title (Dr, Mr, BS...) followed
    by a letters-only word; no digit run longer than ``model_max_digits`` (an ID, a date). The
    maker beside it is checked by the caller (``safe_text`` with ``siblings``).

    Red team 5: a name run together ("NGUYENVANAN", "AnNguyen", "NguyenVanAn-1985") is one
    letters-only word; the rule is told no header values, so an unlisted word is not kept."""
    if not _MODEL_CHARS.fullmatch(s):
        return False
    data = _vendors()
    if any(len(d) > data["model_max_digits"] for d in _DIGITS.findall(s)):
        return False
    listed = data["model_words"] | data["model_families"]
    parts = _WORD.findall(s)                      # words and the separators between them
    words, plain, codes = [], [], 0
    for i, w in enumerate(parts):
        if _MODEL_SPLIT.fullmatch(w):
            continue
        up = w.upper()
        is_plain = bool(_LETTERS.fullmatch(w))
        if is_plain and up not in listed:
            joined = i + 2 < len(parts) and parts[i + 1] in ("-", "_")
            codes += 1                            # one code at most: two would be two name parts
            if codes > 1 or not (joined and _CODE.fullmatch(w)):
                return False
        else:
            runs = [r for r in _LETTERS.findall(w) if r.upper() not in listed]
            # no unlisted run of 5+ letters, and at most one unlisted run of 2+ letters: two
            # are two name parts around a number ("Tran1Van", "Le85An"; review of red team 5)
            if any(len(r) >= 5 for r in runs) or sum(len(r) >= 2 for r in runs) > 1:
                return False
        words.append(up)
        plain.append(is_plain)
    return not any(w in data["titles"] and plain[i + 1] and words[i + 1] not in data["model_words"]
                   for i, w in enumerate(words[:-1]))
