"""Matching identifying values (from the linkage table) against output text, without
search-and-patch: values are normalised (case, accents, Vietnamese đ) and split into
tokens; a value is found when all its tokens occur in the text's tokens.

Values that identify no one are never searched for (``schemas/deid/placeholders.toml``):
generic placeholders ("ANON", "UNKNOWN", "N/A", 1-2 digit numbers, dummy dates) and the
values vindr writes itself (its substitutes ``ANON^…``, ``P…``, ``A…``, ``S…``, its dummies
and marks), so that an input already stamped "ANON" by another tool does not make every
output "leak" into vindr's own ``ANON^…`` substitute. Matching stays by whole token: a real
name that merely contains such a word ("ANONA^MARIA") is still searched for.

Names disguised by script (issue 13): text and terms are also compared by their Latin skeleton
(:func:`lookalike`: Cyrillic / Greek letters that look Latin, ``schemas/deid/confusables.toml``);
Indic marks are optional as Hebrew and Arabic vowel marks are; a Vietnamese name of short words
is sought in the one-byte code pages as a whole (:meth:`TermSet._add_skeletons`).
"""
from __future__ import annotations

import itertools
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import cache, lru_cache

from vindr_cli.resources import schema_path

_TOKEN = re.compile(r"[^\W_]+(?:\.[^\W_]+)*")     # letters/digits of any script, dotted runs kept whole
DATE_TERM = re.compile(r"^\d{8}$")
_DIGITS = re.compile(r"\d{5,}")                  # a digit run long enough to be an ID on its own
_SEPARATORS = re.compile(r"[\s^=.,\-/_\\]+")
# The keyed substitutes of deid/substitutes.py: a prefix and 15 upper-case base32 characters.
OWN_SUBSTITUTE = re.compile(r"^(?:ANON\^|[PAS])[A-Z2-7]{15}$")


def fold(text: str) -> str:
    if text.isascii():      # NFKD leaves ASCII as it is and no ASCII character is combining
        return text.casefold()
    # Vietnamese đ/Đ, and Ð/ð (U+00D0/F0), which Latin-1 exports write for Đ: no combining form
    text = text.replace("đ", "d").replace("Đ", "D").replace("ð", "d").replace("Ð", "D")
    text = _bmp_combining().sub("", unicodedata.normalize("NFKD", text))
    text = _ASTRAL.sub(_drop_combining, text)      # beyond the Basic Multilingual Plane: tested one by one
    return text.casefold()


_ASTRAL = re.compile("[\U00010000-\U0010FFFF]+")


def _drop_combining(m: re.Match) -> str:
    return "".join(c for c in m.group() if not unicodedata.combining(c))


@cache
def _bmp_combining() -> re.Pattern:
    """A pattern of the combining characters of the Basic Multilingual Plane (the per-character
    test, once per process, about 10 ms), as ranges: deleted with ``re.sub``, 3-6x the speed of
    ``str.translate`` (or of the test per character) on the 450,000 characters of a 64K LUT's
    text views (digits, 2026-12-01); the few characters beyond the BMP are tested one by one."""
    codes = [c for c in range(0x10000) if unicodedata.combining(chr(c))]
    ranges, start = [], 0
    for i in range(1, len(codes) + 1):
        if i == len(codes) or codes[i] != codes[i - 1] + 1:
            ranges.append((codes[start], codes[i - 1]))
            start = i
    return re.compile("[" + "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "")
                                    for a, b in ranges) + "]+")


def tokens(text: str) -> set[str]:
    """Tokens of a text; a dotted token (a UID) also yields its prefixes at each dot, so
    an original UID with something appended is still found."""
    out = set(_TOKEN.findall(fold(text)))
    if _has_lookalike(text):   # NGUYЕN with a Cyrillic Е: also as "nguyen"
        out.update(t for t in _TOKEN.findall(fold(lookalike(text))) if t.isascii())
    for t in [t for t in out if t.count(".") >= 3]:
        parts = t.split(".")
        out.update(".".join(parts[:i]) for i in range(3, len(parts)))
    return out


@cache
def _lookalikes() -> tuple[dict[int, str], re.Pattern]:
    """(str.translate table: each letter of another script that looks like a Latin one -> that
    Latin letter, a pattern finding any of them), from ``schemas/deid/confusables.toml`` (Unicode
    TR39's confusables, its source recorded there)."""
    data = tomllib.loads(schema_path("deid", "confusables.toml").read_text(encoding="utf-8"))
    table = {ord(k): v for k, v in data["letters"].items()}
    # review 11: the letterlike forms of the Basic Multilingual Plane whose compatibility form
    # (NFKD) is a listed letter, listed as it (found by the search of the raw text)
    for c in range(0x1D00, 0x2150):
        base = unicodedata.normalize("NFKD", chr(c))
        if c not in table and len(base) == 1 and ord(base) in table:
            table[c] = table[ord(base)]
    return table, re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(table)) + "]")


def _has_lookalike(text: str) -> bool:
    """``text`` holds a letter of :func:`_lookalikes` (a mathematical Greek 𝚴 among them: review 11)."""
    if text.isascii():
        return False
    if _lookalikes()[1].search(text):
        return True
    # a mathematical Greek letter (𝚴 is Greek Ν once NFKD made it so): normalized only then, as a
    # character class of letters beyond the BMP is searched item by item (2-4x the cost of a LUT's search)
    return max(text) >= _MATH_GREEK and bool(_lookalikes()[1].search(unicodedata.normalize("NFKD", text)))


_MATH_GREEK = "\U0001D6A8"      # MATHEMATICAL BOLD CAPITAL ALPHA, the first mathematical Greek letter


def _latin_word(word: str) -> str:
    """``word``'s Latin skeleton (:func:`lookalike`) when every letter of it becomes Latin, else ``word``."""
    latin = lookalike(word)
    return latin if all(t.isascii() for t in _TOKEN.findall(fold(latin))) else word


def lookalike(text: str) -> str:
    """``text`` (NFKD: fullwidth and mathematical letters as plain ones) with every letter of
    another script that looks like a Latin letter replaced by it (Cyrillic Е, Greek Ε -> E):
    the Latin skeleton of a mixed-script spoof. Compared in addition to the text as written
    (:func:`tokens`, :meth:`TermSet.add`, the search inside numbers and bytes), never instead."""
    table, pattern = _lookalikes()      # only the letters found (str.translate: 15x slower on a LUT's text)
    return pattern.sub(lambda m: table[ord(m.group())], unicodedata.normalize("NFKD", text))


@cache
def _placeholders() -> tuple[frozenset[str], frozenset[str], int]:
    """(placeholder values and dummy dates, words vindr writes itself, most digits of a
    placeholder number), folded, from ``schemas/deid/placeholders.toml``."""
    data = tomllib.loads(schema_path("deid", "placeholders.toml").read_text(encoding="utf-8"))
    values = frozenset(_compact(v) for v in [*data["values"], *data["dates"]])
    own = frozenset(fold(w) for w in data["own_words"])
    return values, own, int(data["max_number_digits"])


def _compact(value: str) -> str:
    return _SEPARATORS.sub("", fold(value))


def is_placeholder(value: str) -> bool:
    """True when ``value`` identifies no one: empty or only separators, a generic placeholder
    or dummy date (after folding case and accents and removing separators: "N/A" = "na"), a
    number of at most 4 digits (placeholders.toml), a value made only of the words vindr writes itself, or one
    of vindr's own keyed substitutes."""
    value = str(value).strip()
    values, own, digits = _placeholders()
    c = _compact(value)
    if not c or c in values or (c.isdigit() and len(c) <= digits) or OWN_SUBSTITUTE.match(value):
        return True
    words = _TOKEN.findall(fold(value))
    return bool(words) and all(w in own or w in values or (w.isdigit() and len(w) <= digits) for w in words)


def is_generic_placeholder(value: str) -> bool:
    """True when ``value`` is only a generic placeholder word ("UNKNOWN", "ANON", "N/A"...,
    after folding and removing separators): narrower than :func:`is_placeholder` (numbers,
    dates and vindr's own substitutes are not), for values that name an identity."""
    c = _compact(str(value))
    return bool(c) and c in _placeholders()[0] and not c.isdigit()


def own_word(token: str) -> bool:
    """A (folded) token that vindr writes itself or that is a placeholder: never searched
    for on its own as a part of a longer value."""
    values, own, _ = _placeholders()
    return token in own or token in values


SPLIT_PART = 3      # each part of an ID split across two numbers: this many significant digits or more


def split_parts(digits: str) -> list[tuple[str, str]]:
    """The ways the digit string ``digits`` reads as two numbers, each written as a number is
    (no leading zero: 40510263 as 4051 and 263, never 0263) with :data:`SPLIT_PART` digits or
    more (red team 10: found_split in one array, policy.split_across over two elements)."""
    out = []
    for k in range(SPLIT_PART, len(digits) - SPLIT_PART + 1):
        head, tail = digits[:k], digits[k:].lstrip("0")
        if not head.startswith("0") and len(tail) >= SPLIT_PART:
            out.append((head, tail))
    return out


@dataclass
class TermSet:
    """Terms to look for. A multi-token term matches when all its tokens are present."""
    single: set[str] = field(default_factory=set)
    multi: list[frozenset[str]] = field(default_factory=list)
    _skeleton: tuple | None = field(default=None, repr=False, compare=False)    # (len(skeletons), their pattern)
    _inside: tuple | None = field(default=None, repr=False, compare=False)    # (len(single), the terms found_in_value seeks inside)
    _packed: tuple | None = field(default=None, repr=False, compare=False)    # (len(single), found_packed's byte strings)
    _phrases: tuple | None = field(default=None, repr=False, compare=False)   # (sizes, found_one_byte_lookalike's pattern)
    _splits: tuple | None = field(default=None, repr=False, compare=False)    # (len(single), found_split's parts)
    _digits: tuple | None = field(default=None, repr=False, compare=False)    # ((len(single), least), digit_terms)
    _seven: tuple | None = field(default=None, repr=False, compare=False)     # (len(wide), found_seven_bit's byte strings)
    _hexes: tuple | None = field(default=None, repr=False, compare=False)     # (len(single), hex_terms)
    _words: tuple | None = field(default=None, repr=False, compare=False)     # (len(multi), found_in's index of multi)
    _long: tuple | None = field(default=None, repr=False, compare=False)      # (len(single), split_terms)
    _wide: tuple | None = field(default=None, repr=False, compare=False)      # (len(wide), wide_terms)
    wide: set[str] = field(default_factory=set)     # single terms in other scripts as written (NFC), for found_wide
    # Latin words with letters beyond ASCII (NGUYỄN) as bytes with one unknown byte for each of those:
    # how a one-byte Vietnamese code page (VISCII, TCVN 5712, VPS) writes them (review 10)
    skeletons: set[bytes] = field(default_factory=set)

    def add(self, value: str) -> None:
        if is_placeholder(value):
            return
        if _has_lookalike(value):
            latin = lookalike(value)        # NGUYЕN^VАN^АN (Cyrillic Е, А) is NGUYEN^VAN^AN too
            if all(t.isascii() for t in _TOKEN.findall(fold(latin))):  # not a genuine Cyrillic/Greek word's part-skeleton
                self.add(latin)
            else:       # a genuine word beside spoofed ones (Иванов^NАТАLIА): the spoofed words as Latin (review 11)
                partly = _TOKEN.sub(lambda m: _latin_word(m.group()), value)
                if partly != value:
                    self.add(partly)
        groups = [g for g in value.split("=") if g.strip()] if "=" in value else []
        if len(groups) > 1:     # a person name's alphabetic, ideographic and phonetic groups: each on its own (red team 8)
            for g in groups:
                self.add(g)
        toks = [t for t in _TOKEN.findall(fold(value)) if len(set(t)) > 1]  # drop '0000', '----'-like filler
        self._add_skeletons(value)
        self._add_marked(value)
        # what identifies: not a placeholder word, not a word vindr writes itself (the "ANON"
        # of "ANON^MARIA" is in every output's substitute name), not a 1-2 digit number
        informative = [t for t in toks if not own_word(t) and not (t.isdigit() and len(t) <= _placeholders()[2])]
        if not informative:
            return
        if len(toks) == 1:
            if len(toks[0]) >= 3 or not toks[0].isascii():
                self.single.add(toks[0])
                self._add_wide(value, toks)
                t = toks[0]
                if "." not in t and not t.isdigit():     # MRN0077123: its number is written alone elsewhere
                    for run in _DIGITS.findall(t):
                        self.single.add(run)
                        if len(run.lstrip("0")) >= 5:
                            self.single.add(run.lstrip("0"))
                elif t.isdigit() and t.startswith("0") and len(t.lstrip("0")) > _placeholders()[2]:
                    self.single.add(t.lstrip("0"))     # 0077123 is written 77123 elsewhere (deid.identity)
            return
        self.multi.append(frozenset(toks))      # every word: as specific as the value
        if "^" in value and len(toks) >= 3:     # LE^THI^HOA is also written "LE HOA" (surname, given name)
            self.multi.append(frozenset({toks[0], toks[-1]}))
        if "^" in value:  # a person name: its components on their own (surname, given names)
            self.single.update(t for t in informative if len(t) >= 4 and not t.isdigit())
            # run together: 山田^太郎 as 山田太郎 (no separator between CJK/Hangul words), TRAN^VAN^BINH
            # as TRANVANBINH, as the anonymizer's person_values writes it (audit's linkage terms: red team 8)
            joined = "".join(toks)
            if not joined.isascii() or len(joined) >= 6:
                self.single.add(joined)
                self._add_wide(value, [joined])
            # each word in another script on its own too (Иванов of Иванов^Сергей, 山田 of 山田^太郎):
            # found_wide reads only ``wide``, and a surname alone in UTF-16 bytes was written (review 10)
            for raw in _TOKEN.findall(unicodedata.normalize("NFC", value)):
                if not own_word(fold(raw)):
                    self._add_wide(raw, [fold(raw)])

    @property
    def parts(self) -> tuple[TermSet, ...]:
        """The sets whose answers are OR-ed (:class:`TermUnion`): this one."""
        return (self,)

    def found_in(self, text_tokens: set[str]) -> bool:
        if not self.single.isdisjoint(text_tokens):
            return True
        if len(self.multi) <= len(text_tokens):
            return any(m <= text_tokens for m in self.multi)
        # more multi-word terms than the text has tokens (a study's 1,000s of peer names): only the
        # terms whose indexed word is one of the text's (a term is in the text only with all its words)
        always, words = self._multi_index()
        return always or any(m <= text_tokens for w in text_tokens for m in words.get(w, ()))

    def _multi_index(self) -> tuple[bool, dict[str, list[frozenset[str]]]]:
        """(an empty multi-word term is there: found in anything, {a word -> the multi-word terms
        indexed by it: each by its longest word}), once per size of :attr:`multi`."""
        if self._words is None or self._words[0] != len(self.multi):
            words: dict[str, list[frozenset[str]]] = {}
            for m in self.multi:
                if m:
                    words.setdefault(min(m, key=lambda w: (-len(w), w)), []).append(m)
            self._words = (len(self.multi), (any(not m for m in self.multi), words))
        return self._words[1]

    def found_in_value(self, text: str, numbers: set[str] = frozenset()) -> bool:
        """For numbers and bytes (:func:`value_views`): a term as a whole token (or number), or a
        single term anywhere inside, not only as a whole token, since such "words" have no
        separators to split at (red team 7). Terms shorter than 5 (which a megabyte of samples
        may hold by chance), or a run of consecutive characters ("12345", "abcde": a linear LUT's
        entries as characters), are only sought as tokens. Only digits and Latin letters (with
        Vietnamese accents) are read: anything else separates (a long value is read in C)."""
        return _found_in_value((self,), text, numbers)

    def inside_terms(self) -> _Needles:
        """The single terms :meth:`found_in_value` seeks inside (5 characters or more, no run of
        consecutive characters), once per size of the set."""
        if self._inside is None or self._inside[0] != len(self.single):      # terms added since
            self._inside = (len(self.single), _Needles([t for t in self.single if len(t) >= 5 and not _consecutive(t)]))
        return self._inside[1]

    def found_split(self, values) -> bool:
        """An ID or date of 7 digits or more as two numbers in a row of one array, each part 3
        significant digits or more (40517263 as the LUT entries 4051, 7263: a listing of the
        values shows it; red team 10); in a table of more than 16 numbers only parts more than
        :data:`_SPLIT_TABLE_GAP` apart. ``values``: the array's integers (:func:`value_views`)."""
        if len(values) < 2:
            return False
        if self._splits is None or self._splits[0] != len(self.single):
            heads: dict[int, set[int]] = {}
            for t in self.single:
                if t.isdigit() and len(t) >= 7 and not _consecutive(t):
                    for head, tail in split_parts(t):
                        heads.setdefault(int(head), set()).add(int(tail))
            self._splits = (len(self.single), heads)
        heads = self._splits[1]
        if not heads or heads.keys().isdisjoint(values):
            return False
        # in a table (a LUT: smooth, each entry near the one before), only parts far apart: the ID
        # 10001001 is any ramp's 1000, 1001
        near = _SPLIT_TABLE_GAP if len(values) > _MAX_NUMBERS else 0
        return any(v in heads and (w := values[i + 1]) in heads[v] and abs(w - v) > near
                   for i, v in enumerate(values[:-1]))

    def found_packed(self, text: str) -> bool:
        """An ID or date of :data:`_PACKED_DIGITS` digits or more as packed decimal (BCD: two digits
        a byte, 40517263 as the bytes 40 51 72 63) in the bytes ``text`` was read from
        (:func:`value_views`: a value's bytes, or numbers' bytes in either order, so an AT value
        (4051,7263) or the US values 0x4051 0x7263 too): a hex dump of the value shows the ID
        (red team 10). One chance in 2^24 a byte offset for six digits in random bytes."""
        data = getattr(text, "data", b"")
        if len(data) < 3:
            return False
        if self._packed is None or self._packed[0] != len(self.single):
            self._packed = (len(self.single), _Needles([bytes.fromhex(t if len(t) % 2 == 0 else "0" + t)
                                                        for t in self.single if t.isdigit() and len(t) >= _PACKED_DIGITS
                                                        and not _consecutive(t) and len(set(t)) > 2]))
        return self._packed[1].found(data)

    def found_one_byte_lookalike(self, text: str) -> bool:
        """A Latin name spelled with Greek or Cyrillic letters that look like Latin ones, in the
        bytes ``text`` was read from, written in a one-byte code page of those scripts (ISO 8859-7
        ΡΗΑΜ ΤΗΙ, ISO 8859-5 / Windows-1251 / KOI8-R РНАМ: DICOM's ISO_IR 126 and 144 and what
        Russian exports use; red team 10: such a name in a LUT's bytes was kept): each byte read as
        its Latin look-alike letter (``bytes.translate``), then a term of 5 letters or more sought
        inside, as in Latin-1, or a name's words in a row (1-3 other bytes between them). Its
        words alone are not sought: half of those code pages' bytes read as a Latin letter here, and
        a 4-letter word was in 1 of 100 random 64 KiB values."""
        return _found_one_byte_lookalike((self,), text)

    def lookalike_terms(self) -> tuple[_Needles, _Needles, dict[bytes, list[tuple[re.Pattern, int]]]]:
        """:meth:`found_one_byte_lookalike`'s terms: (the ASCII single terms of 5 letters or more
        sought inside, the phrases' anchors (a phrase's longest word), anchor -> [(the phrase's
        pattern, its reach)]), once per size of the set."""
        if self._phrases is None or self._phrases[0] != (len(self.single), len(self.multi)):
            inside = [t.encode() for t in self.single if t.isascii() and len(t) >= 5 and not _consecutive(t)]
            phrases: dict[bytes, list[tuple[re.Pattern, int]]] = {}
            for m in self.multi:
                if 2 <= len(m) <= _PHRASE_WORDS and all(w.isascii() for w in m) and sum(map(len, m)) >= _LOOKALIKE_PHRASE_LETTERS:
                    words = sorted(w.encode() for w in m)
                    pattern = re.compile(b"|".join(b"(?<![a-z0-9])" + b"[^a-z0-9]{1,3}".join(map(re.escape, order))
                                                   + b"(?![a-z0-9])" for order in itertools.permutations(words)))
                    reach = sum(map(len, words)) + 3 * len(words)
                    phrases.setdefault(max(words, key=len), []).append((pattern, reach))
            self._phrases = ((len(self.single), len(self.multi)), (_Needles(inside), _Needles(phrases), phrases))
        return self._phrases[1]

    def digit_terms(self, least: int) -> list[str]:
        """The terms of ``least`` digits or more and nothing else, no run of consecutive digits
        (what policy.found_in_digits seeks inside numbers), listed once per size of the set
        (hostile10: a study of 10,000 files each naming another operator gave every kept value of
        every file a pass over all 20,000 terms)."""
        return self.digit_index(least)[0]

    def digit_index(self, least: int) -> tuple[list[str], frozenset[str], frozenset[int]]:
        """(:meth:`digit_terms`, the same as a set, their lengths), once per size of the set."""
        if self._digits is None or self._digits[0] != (len(self.single), least):
            listed = [t for t in self.single if len(t) >= least and t.isdigit() and not _consecutive(t)]
            self._digits = ((len(self.single), least), (listed, frozenset(listed), frozenset(map(len, listed))))
        return self._digits[1]

    def split_terms(self, least: int) -> list[str]:
        """The terms of ``least`` digits or more and nothing else (policy.split_across splits
        them in two), once per size of the set."""
        if self._long is None or self._long[0] != (len(self.single), least):
            self._long = ((len(self.single), least), [t for t in self.single if t.isdigit() and len(t) >= least])
        return self._long[1]

    def hex_terms(self) -> frozenset[str]:
        """The terms of 6 digits or more and nothing else (policy._hex_number_found compares the
        hex words of a value read as numbers with them), listed once per size of the set."""
        if self._hexes is None or self._hexes[0] != len(self.single):
            self._hexes = (len(self.single), frozenset(t for t in self.single if len(t) >= 6 and t.isdigit()))
        return self._hexes[1]

    def _add_marked(self, value: str) -> None:
        """Words of a script whose letters take combining marks inside the word (Devanagari
        राजेश, Thai สมศักดิ์): _TOKEN splits them at each mark (not a letter to ``re``), and
        :func:`fold` drops the marks, so राजेश gave only one-letter tokens and no term at all
        (review 10). Each such word as written, marks included, and the words run together are
        :attr:`wide` terms (:meth:`found_wide`; also sought in text by the anonymizer and audit)."""
        nfc = unicodedata.normalize("NFC", value)
        if nfc.isascii():
            return
        words = [w for w in _WORD_GAPS.split(nfc) if w]
        for w in words + (["".join(words)] if len(words) > 1 else []):
            if (any(unicodedata.category(c)[0] == "M" for c in w) and sum(c.isalpha() for c in w) >= 2
                    and not _LATIN_ONLY.fullmatch(fold(w) or "-") and not _consecutive(w)):
                forms = {w, w.lower(), w.upper()}
                self._wide_forms(forms)

    def _add_skeletons(self, value: str) -> None:
        """Each word of ``value`` in Latin letters with some beyond ASCII (NGUYỄN, HOÀNG: five
        characters or more, four ASCII letters or more, as found_in_value seeks a word inside
        from five: shorter ones, HƯƠNG, TRẦN, match random bytes too often) as a bytes pattern:
        its ASCII letters, and one byte of a code page's letters (0x01-0x1F, 0x80-0xFF) for each other."""
        if value.isascii():
            return
        words = _TOKEN.findall(unicodedata.normalize("NFC", value))
        sought = any(w.isascii() and len(w) >= 5 for w in words)       # found_in_value seeks it inside anything
        for raw in words:
            if (len(raw) >= 5 and not raw.isascii() and _LATIN_ONLY.fullmatch(fold(raw) or "-")
                    and sum(c.isascii() and c.isalpha() for c in raw) >= 4):
                self.skeletons.add(_code_page_word(raw))
                sought = True
        # a name of short words (LÊ^THỊ^HỒNG: none is sought alone) as a whole: its words in order, or
        # its first and last, with up to 3 separator bytes between them, when they hold 5 ASCII
        # letters or more (issue 13; a lone THỊ or LÊ is in 1 MiB of random bytes). Only when no
        # word of it is sought alone (as a skeleton, or an ASCII word of 5+), and of 2 to 5 words:
        # each pattern costs the file's regex compile (found_skeleton), ~0.3 ms a phrase, and an
        # address is no name of short words.
        if (sought or "=" in value or not 2 <= len(words) <= _PHRASE_WORDS
                or not all(_LATIN_ONLY.fullmatch(t) for t in _TOKEN.findall(fold(value)))):
            return
        for seq in {tuple(words), (words[0], words[-1])}:
            if (not all(w.isascii() for w in seq)
                    and sum(c.isascii() and c.isalpha() for w in seq for c in w) >= _PHRASE_ASCII_LETTERS):
                self.skeletons.add(_PHRASE_GAP.join(_code_page_word(w) for w in seq))

    def found_skeleton(self, text: str) -> bool:
        """A :attr:`skeletons` word in the bytes ``text`` was read from (:func:`value_views`),
        ASCII case ignored: a Vietnamese name in VISCII or TCVN bytes reads as Latin-1 with
        control characters where its accented letters are, which :meth:`found_in_value` drops."""
        data = getattr(text, "data", b"")
        if not self.skeletons or not data or max(data) < 0x80 and min(data) >= 0x20:
            return False
        if self._skeleton is None or self._skeleton[0] != len(self.skeletons):
            self._skeleton = (len(self.skeletons), re.compile(b"|".join(sorted(self.skeletons)), re.IGNORECASE))
        return self._skeleton[1].search(data) is not None

    def _add_wide(self, value: str, folded: list[str]) -> None:
        """A single term in a script other than Latin (its fold ``folded[0]``, two characters
        or more, no run of consecutive code points): its words run together as written, in NFC,
        as is and in either case (:meth:`found_wide` searches the text unfolded)."""
        if len(folded[0]) < 2 or _LATIN_ONLY.fullmatch(folded[0]) or _consecutive(folded[0]):
            return
        raw = "".join(_TOKEN.findall(unicodedata.normalize("NFC", value)))
        if len(raw) >= 2 and not _consecutive(raw):
            forms = {raw, raw.lower(), raw.upper()}
            # and decomposed (Παπαδόπουλος with its accents as combining marks: review 10)
            self._wide_forms(forms)

    def _wide_forms(self, forms: set[str]) -> None:
        """``forms`` as wide terms, also decomposed (NFD) and without the optional vowel marks of
        Hebrew and Arabic (כֹּהֵן is also written כהן, أَحْمَد أحمد: review 10)."""
        forms = forms | {unicodedata.normalize("NFD", f) for f in forms}
        self.wide.update(forms | {b for f in forms if len(b := _VOWEL_MARKS.sub("", f)) >= 2
                                  and (len(b) >= _BARE_INDIC_MIN or not _INDIC.search(b))})

    def _in(self, text: str) -> bool:
        """A wide term in ``text``, or in ``text`` without Hebrew / Arabic vowel marks or Indic marks."""
        wide = self.wide_terms()
        if wide.found(text):
            return True
        return _VOWEL_MARKS.search(text) is not None and wide.found(_VOWEL_MARKS.sub("", text))

    def wide_terms(self) -> _Needles:
        """:attr:`wide` as :meth:`_in` seeks them, once per size of the set."""
        if self._wide is None or self._wide[0] != len(self.wide):
            self._wide = (len(self.wide), _Needles(self.wide))
        return self._wide[1]

    def found_wide(self, text: str) -> bool:
        """A term in a script other than Latin (山田太郎, 王小明, 홍길동, やまだたろう: ``wide``, as
        written) anywhere inside ``text``: bytes and numbers read as such text have no
        separators, and :meth:`found_in_value` reads only Latin letters and digits (red team 8).
        Only a file whose people have such names pays for it (the East Asian decodes)."""
        return _found_wide((self,), text)

    def found_seven_bit(self, data: bytes) -> bool:
        """A wide term as the 7-bit codes of its two-byte character set without the escape
        sequences that announce them (ISO 2022 IR 87 / IR 159 / IR 149 / IR 58 as stored in a
        file's text, the escapes dropped: 山田太郎 as ';3ED6@O:'): printable ASCII to every other
        reader, so no decode finds it (red team 11: such a name in a LUT of another file of the
        study was copied). Only forms of 4 bytes or more (two characters), sought as bytes."""
        if self._seven is None or self._seven[0] != len(self.wide):
            forms = set()
            for w in self.wide:
                for enc in ("iso2022_jp_2", "euc_kr", "gb2312"):
                    try:
                        b = w.encode(enc)
                    except (UnicodeError, LookupError):
                        continue
                    b = _ISO2022_ESCAPE.sub(b"", b) if enc.startswith("iso2022") else \
                        (bytes(x & 0x7F for x in b) if min(b) >= 0xA1 else b"")
                    if len(b) >= 4 and len(b) % 2 == 0:
                        forms.add(b)
            self._seven = (len(self.wide), _Needles(forms))
        return self._seven[1].found(data)

    def __bool__(self) -> bool:
        return bool(self.single or self.multi)


class TermUnion:
    """TermSets searched as one (termcache, issue 13): a file's own person terms and its study's
    peer terms, the latter built once per worker process and group (deid.engine.peer_terms)
    instead of once per file. Every answer is the OR of the parts' answers, which is the answer
    of one TermSet of all their values: ``TermSet.add`` only adds (a value's terms do not depend
    on the others'), and each search is an OR over terms (tests/test_termcache_oracle.py checks
    it against the code before). A text is read (folded, decoded, translated) once for all parts."""

    def __init__(self, *parts: TermSet):
        self.parts = parts

    def __bool__(self) -> bool:
        return any(map(bool, self.parts))

    def found_in(self, text_tokens: set[str]) -> bool:
        return any(p.found_in(text_tokens) for p in self.parts)

    def found_in_value(self, text: str, numbers: set[str] = frozenset()) -> bool:
        return _found_in_value(self.parts, text, numbers)

    def found_wide(self, text: str) -> bool:
        return _found_wide(self.parts, text)


def _found_in_value(parts, text: str, numbers) -> bool:
    """:meth:`TermSet.found_in_value` of the union of ``parts``."""
    folded = _latin_folded(text)
    if any(p.inside_terms().found(folded) for p in parts):
        return True
    toks = set(_ASCII_TOKEN.findall(folded)) | numbers
    if any(p.found_in(toks) for p in parts) or _found_wide(parts, text):
        return True
    if any(p.found_skeleton(text) for p in parts) or any(p.found_packed(text) for p in parts):
        return True
    if _found_one_byte_lookalike(parts, text):
        return True
    numbers_of = getattr(text, "numbers", ())
    return any(p.found_split(numbers_of) for p in parts)


def _found_wide(parts, text: str) -> bool:
    """:meth:`TermSet.found_wide` of the union of ``parts``: each decoding made once."""
    parts = [p for p in parts if p.wide]
    if not parts:
        return False
    if any(p._in(text) for p in parts):
        return True
    data = getattr(text, "data", b"")
    if data and max(data) >= 0x80:       # DICOM's one-byte character sets of other scripts (review 10)
        for enc in _ONE_BYTE:
            decoded = data.decode(enc, "ignore")
            if any(p._in(decoded) for p in parts):
                return True
    if data and max(data) >= 0x80 or b"\x1b" in data:       # bytes in the East Asian encodings too
        for enc in _LEGACY:
            for d in (data, data[1:]):
                decoded = d.decode(enc, "ignore")
                if any(p._in(decoded) for p in parts):
                    return True
    return bool(data) and any(p.found_seven_bit(data) for p in parts)


def _found_one_byte_lookalike(parts, text: str) -> bool:
    """:meth:`TermSet.found_one_byte_lookalike` of the union of ``parts``: each translation made once."""
    data = getattr(text, "data", b"")
    if not data or max(data) < 0xA0:
        return False
    sought = [p.lookalike_terms() for p in parts]
    for table in _one_byte_latin():
        latin = data.translate(table)
        for inside, anchors, phrases in sought:
            if inside.found(latin):
                return True
            # the longest word found first (C), the phrase then; a phrase whose anchor is not in
            # the text is not (its pattern holds the anchor)
            for anchor in anchors.occurring(latin):
                for pattern, reach in phrases[anchor]:
                    i = latin.find(anchor)
                    while i >= 0:
                        if pattern.search(latin[max(0, i - reach):i + reach]):
                            return True
                        i = latin.find(anchor, i + 1)
    return False


class _Needles:
    """Terms (str or bytes) sought anywhere inside a text (termcache, issue 13): each term with
    ``in`` (C) while the terms are few for the text's size; else each of the text's substrings
    of :attr:`k` characters (the shortest term's length, at most :data:`_HEAD`) looked up among
    the terms' first ``k`` characters, and only the terms of a head found sought with ``in``;
    when no term holds a space (``\\s``), only the substrings inside the text's runs of ``k`` or
    more other characters (found in C: a term is inside one). Both find exactly the terms that
    are in the text: a term in it has its head in it."""

    __slots__ = ("terms", "k", "_heads", "_runs")

    def __init__(self, terms):
        self.terms = tuple(terms)
        self.k = min(_HEAD, min(map(len, self.terms), default=0))
        self._heads: dict | None = None
        self._runs = None           # the pattern of the runs a term can be inside, or None: the whole text

    def __bool__(self) -> bool:
        return bool(self.terms)

    def _direct(self, size: int) -> bool:
        # ~50 ns a term plus its scan in C, against ~100 ns a position of the text in Python
        return self.k < 1 or len(self.terms) * (128 + size) <= 256 * size

    def found(self, text) -> bool:
        """Some term is in ``text``."""
        if not self.terms:
            return False
        if self._direct(len(text)):
            return any(t in text for t in self.terms)
        return any(t in text for t in self._candidates(text))

    def occurring(self, text) -> list:
        """The terms that are in ``text``, in no particular order."""
        if not self.terms:
            return []
        if self._direct(len(text)):
            return [t for t in self.terms if t in text]
        return [t for t in self._candidates(text) if t in text]

    def _index(self) -> dict:
        if self._heads is None:
            heads: dict = {}
            for t in self.terms:
                heads.setdefault(t[:self.k], []).append(t)
            space = re.compile(rb"\s" if isinstance(self.terms[0], bytes) else r"\s")
            if not any(space.search(t) for t in self.terms):
                self._runs = re.compile((rb"\S{%d,}" % self.k) if isinstance(self.terms[0], bytes) else r"\S{%d,}" % self.k)
            self._heads = heads
        return self._heads

    def _candidates(self, text):
        heads, k, seen = self._index(), self.k, set()
        spans = ((m.start(), m.end()) for m in self._runs.finditer(text)) if self._runs is not None else ((0, len(text)),)
        grams: set = set()
        for a, b in spans:
            for start in range(a, b - k + 1, _CHUNK):       # a megabyte's heads a chunk at a time (memory)
                grams.update(text[i:i + k] for i in range(start, min(start + _CHUNK, b - k + 1)))
                if len(grams) >= _CHUNK:
                    yield from _hits(heads, grams, seen)
                    grams = set()
        yield from _hits(heads, grams, seen)


def _hits(heads: dict, grams: set, seen: set):
    """The terms of ``heads`` whose head is in ``grams`` (each head's once: ``seen``)."""
    for h in grams:
        got = heads.get(h)
        if got is not None and h not in seen:
            seen.add(h)
            yield from got


_HEAD = 5       # _Needles: a term's first characters looked up (a name's ID-like terms are 5 or more)
_CHUNK = 1 << 16    # _Needles: the text's heads gathered this many at a time


_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
# Hebrew points and cantillation, Arabic harakat and Quranic marks, and the marks of the Indic
# scripts (Devanagari to Sinhala, U+0900-0DFF: vowel signs, virama, nukta, anusvara, visarga):
# written or not, the same name (राजेश typed without its vowel signs is रजश: issue 13)
_INDIC = re.compile("[\u0900-\u0DFF]")
_VOWEL_MARKS = re.compile("[\u0591-\u05C7\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED"
                          + "".join(chr(c) for c in range(0x900, 0xE00) if unicodedata.category(chr(c)) in ("Mn", "Mc"))
                          + "]")
_BARE_INDIC_MIN = 3     # राम without its marks is रम, two letters that much Hindi text holds: not sought bare
_WORD_GAPS = re.compile(r"[\s^=,;:/\\()\[\]{}\"'<>|_.\-]+")     # between the words of a value (_add_marked)
_LATIN_ONLY = re.compile(r"[0-9a-z.\u00C0-\u024F\u1E00-\u1EFF]+")   # a folded term of digits and Latin letters
_NOT_LATIN = re.compile(r"[^0-9A-Za-z\u00C0-\u024F\u0300-\u036F\u1E00-\u1EFF]+")


@cache
def _not_latin() -> re.Pattern:
    """What :func:`_latin_folded` makes a space: not a digit or Latin letter (with its marks), not
    a fullwidth or mathematical letter or digit (NFKD makes them ASCII), not a letter of another
    script that looks like a Latin one (:func:`lookalike`)."""
    keep = _NOT_LATIN.pattern[2:-2] + r"\uFF10-\uFF19\uFF21-\uFF3A\uFF41-\uFF5A\U0001D400-\U0001D7FF"
    return re.compile("[^" + keep + "".join(re.escape(chr(c)) for c in sorted(_lookalikes()[0])) + "]+")


def _latin_folded(text: str) -> str:
    """``text`` as :func:`fold` writes its digits and Latin letters (accents dropped, đ as d,
    lower case), letters that look Latin (:func:`lookalike`) as those; everything else a space."""
    latin = _not_latin().sub(" ", text)
    if latin.isascii():
        return latin.lower()
    table, pattern = _lookalikes()
    if max(latin) >= _MATH_GREEK:   # a mathematical Greek 𝚴 as Greek Ν, then N (review 11)
        latin = unicodedata.normalize("NFKD", latin)
    if pattern.search(latin):       # only those letters (str.translate of the whole text: 13x slower on a LUT)
        latin = pattern.sub(lambda m: table[ord(m.group())], latin)
    for a, b in (("đ", "d"), ("Đ", "D"), ("ð", "d"), ("Ð", "D")):
        latin = latin.replace(a, b)
    return unicodedata.normalize("NFKD", latin).encode("ascii", "ignore").decode("ascii").lower()


_PHRASE_ASCII_LETTERS = 5
_PHRASE_WORDS = 5
_PHRASE_GAP = rb"[\x00 ^,._\-]{0,3}"     # between a name's words in a code page's bytes: separators, or none


@lru_cache(maxsize=4096)      # a file's ~200 person values repeat the same few words
def _code_page_word(word: str) -> bytes:
    """A Latin word as a one-byte Vietnamese code page (VISCII, TCVN 5712, VPS) writes it: its
    ASCII letters, and one byte of a code page's letters (0x01-0x1F, 0x80-0xFF) for each other."""
    return b"".join(re.escape(c.encode()) if c.isascii() else rb"[\x01-\x1f\x80-\xff]" for c in word.upper())


def _consecutive(term: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(term, term[1:])}
    return steps in ({1}, {-1})


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


# the multi-byte encodings of DICOM's character sets (GB18030/GBK, ISO 2022 IR 87/159, IR 149) and
# of vendors' East Asian exports (Shift_JIS, EUC-JP, Big5), read only when the file's people have names in such scripts
_LEGACY = ("gb18030", "iso2022_jp_2", "shift_jis", "euc_jp", "euc_kr", "big5")
# an ISO 2022 escape sequence (ESC, intermediates 0x20-0x2F, a final byte), for found_seven_bit
_ISO2022_ESCAPE = re.compile(rb"\x1b[\x20-\x2f]+[\x30-\x7e]")
# DICOM's one-byte character sets of scripts other than Latin (PS3.3 C.12.1.1.2: ISO_IR 144
# Cyrillic, 127 Arabic, 126 Greek, 138 Hebrew, 166 Thai) and the Windows / KOI8 code pages that
# vendors' Cyrillic and Arabic exports use: a name in these bytes reads as Latin-1 noise (review 10)
_PACKED_DIGITS = 6      # an ID or date sought as packed decimal bytes from this many digits (found_packed)
_LOOKALIKE_PHRASE_LETTERS = 7   # a name of shorter words is in random bytes read so (1 of 100 64 KiB values for LE AN)
# the one-byte code pages of the scripts with Latin look-alike letters (found_one_byte_lookalike)
_LOOKALIKE_CODE_PAGES = ("iso8859_5", "iso8859_7", "cp1251", "koi8_r")


@cache
def _one_byte_latin() -> tuple[bytes, ...]:
    """For each of :data:`_LOOKALIKE_CODE_PAGES`, a ``bytes.translate`` table: an ASCII letter or
    digit as itself (lower case), a byte whose letter looks like a Latin one (:func:`lookalike`)
    as that Latin letter, anything else a space. Only the tables that make some byte a letter
    Latin-1 does not already read as one are kept (Latin-1's own view is searched already)."""
    out = []
    for cp in _LOOKALIKE_CODE_PAGES:
        table = bytearray(b" " * 256)
        for b in range(256):
            c = bytes([b]).decode(cp, "ignore")
            if c.isascii() and c.isalnum():
                table[b] = ord(c.lower())
            elif c and not c.isascii():
                latin = lookalike(c)
                if len(latin) == 1 and latin.isascii() and latin.isalpha():
                    table[b] = ord(latin.lower())
        out.append(bytes(table))
    return tuple(out)


_ONE_BYTE = ("iso8859_5", "iso8859_6", "iso8859_7", "iso8859_8", "tis_620", "cp1251", "koi8_r", "cp1256")


class Views(str):
    """:func:`value_views`' text, with the bytes it was read from (``data``), which
    :meth:`TermSet.found_wide` also reads in the East Asian encodings, and the integers it was
    made from (``numbers``, :meth:`TermSet.found_split`)."""
    data: bytes = b""
    numbers: tuple = ()


def decode_all(data: bytes) -> str:
    """Bytes as text under the encodings a header may use (for token search)."""
    return data.decode("utf-8", "ignore") + "\n" + data.decode("latin-1")


# Numbers as their bytes in the file (little endian): a name can be written as LUT entries or
# index values, one character per number (UTF-16 as US, UTF-32 as UL) or two per number (red team 7)
_LONG_DIGITS = 6       # |v| >= 100000: beyond any US/SS table entry, searched in any array
_LONG_DIGITS_WIDE = 5  # ... in a UL/SL/UV/SV array from |v| >= 10000: no DICOM table is of those VRs (review 9)
_SPLIT_TABLE_GAP = 1024   # found_split: two table entries this close are a smooth curve's, not an ID's parts
_MAX_NUMBERS = 16      # numbers of an attribute (not a table) each read as a whole number: an ID, a birth date
NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "UV": "Q", "SV": "q", "FL": "f", "FD": "d", "AT": "HH"}


def _values(value) -> list:
    if value is None or value == "" or value == b"":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def value_text(value, vr: str | None = None) -> str:
    """An element's value as text to search for identifying values (text VRs; deid.engine)."""
    return " ".join(str(v) for v in _values(value))


def value_views(value, vr: str | None = None) -> tuple[set[str], str]:
    """Numbers and bytes as what they can spell: (the numbers as digit tokens, text views). Bytes
    are read as Latin-1, UTF-8 and UTF-16 (either byte order, either alignment); numbers as
    their bytes in the file (little endian) read as Latin-1 (two characters a US value) and one
    character a number (UTF-16 for US/SS, UTF-32 for UL/SL): a name written as LUT entries
    or index values (red team 7)."""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        views = Views("\n".join((decode_all(data), *(d.decode(enc, "ignore") for d in (data, data[1:])
                                                      for enc in ("utf-16-le", "utf-16-be")))))
        views.data = data
        return set(), views
    import math
    import struct

    values = _values(value)
    fmt = NUMBER_FORMATS.get(vr or "", "")
    packed = [h for v in values for h in (int(v) >> 16, int(v) & 0xFFFF)] if vr == "AT" else values
    try:
        data = struct.pack(f"<{len(packed)}{fmt[0]}", *packed) if fmt else b""
    except (struct.error, TypeError, ValueError, OverflowError):
        data = b""
    if vr in ("FL", "FD"):
        digits = {str(int(v)) if math.isfinite(v) and v.is_integer() else str(v) for v in values}
    else:
        digits = set(map(str, values))
    if len(values) > _MAX_NUMBERS:
        # a table: a LUT holds every number of its range (red team 7), so its small numbers are
        # read only as bytes; a number of six digits or more (no US/SS entry holds one) is still
        # an ID or a date in a long array (review 8, P2); five digits in a 32/64-bit integer
        # array (an ID such as 0077123, review 9 T1)
        least = _LONG_DIGITS_WIDE if vr in ("UL", "SL", "UV", "SV") else _LONG_DIGITS
        digits = {d for d in digits if len(d.lstrip("-").split(".")[0]) >= least}
    wide = {"H": "utf-16-le", "h": "utf-16-le", "I": "utf-32-le", "i": "utf-32-le"}.get(fmt)
    # and each number's bytes in the other order: 'NG' as one US 0x4E47, a character in the high
    # byte (UTF-16-BE, 0x4E00): written by a big-endian writer, they read as nothing here (review 10)
    try:
        swapped = struct.pack(f">{len(packed)}{fmt[0]}", *packed) if fmt and struct.calcsize(fmt[0]) > 1 else b""
    except (struct.error, TypeError, ValueError, OverflowError):
        swapped = b""
    views = Views("\n".join((data.decode("latin-1"), data.decode(wide, "ignore") if wide else "",
                             swapped.decode("latin-1"), swapped.decode(wide, "ignore") if wide and swapped else "")))
    views.data = data + b"\0" + swapped if swapped else data
    if vr not in ("FL", "FD", "AT"):
        views.numbers = tuple(int(v) for v in values if isinstance(v, int))
    return digits, views
