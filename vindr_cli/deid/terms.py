"""Matching identifying values (from the linkage table) against output text, without
search-and-patch: values are normalised (case, accents, Vietnamese đ) and split into
tokens; a value is found when all its tokens occur in the text's tokens."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[^\W_]+(?:\.[^\W_]+)*")     # letters/digits of any script, dotted runs kept whole
DATE_TERM = re.compile(r"^\d{8}$")


def fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def tokens(text: str) -> set[str]:
    """Tokens of a text; a dotted token (a UID) also yields its prefixes at each dot, so
    an original UID with something appended is still found."""
    out = set(_TOKEN.findall(fold(text)))
    for t in [t for t in out if t.count(".") >= 3]:
        parts = t.split(".")
        out.update(".".join(parts[:i]) for i in range(3, len(parts)))
    return out


@dataclass
class TermSet:
    """Terms to look for. A multi-token term matches when all its tokens are present."""
    single: set[str] = field(default_factory=set)
    multi: list[frozenset[str]] = field(default_factory=list)

    def add(self, value: str) -> None:
        toks = [t for t in _TOKEN.findall(fold(value)) if len(set(t)) > 1]  # drop '0000', '----'-like filler
        if not toks:
            return
        if len(toks) == 1:
            if len(toks[0]) >= 3 or not toks[0].isascii():
                self.single.add(toks[0])
            return
        self.multi.append(frozenset(toks))
        if "^" in value:  # a person name: its components on their own (surname, given names)
            self.single.update(t for t in toks if len(t) >= 4 and not t.isdigit())

    def found_in(self, text_tokens: set[str]) -> bool:
        if self.single & text_tokens:
            return True
        return any(m <= text_tokens for m in self.multi)

    def __bool__(self) -> bool:
        return bool(self.single or self.multi)


def build_terms(values, *, include_dates: bool) -> TermSet:
    ts = TermSet()
    for v in values:
        if not v:
            continue
        v = str(v).strip()
        if not include_dates and DATE_TERM.match(v):
            continue
        ts.add(v)
    return ts


def decode_all(data: bytes) -> str:
    """Bytes as text under the encodings a header may use (for token search)."""
    return data.decode("utf-8", "ignore") + "\n" + data.decode("latin-1")
