"""The digit and hex searches (policy.found_in_digits, policy._hex_number_found) and the text
functions they read (terms.fold, terms.lookalike, terms.tokens) answer exactly as they did before
they were made fast on big values (issue 13, branch digits): the code as it was at 16d50d3 is
frozen here as the reference, and the new code is compared with it on Hypothesis-generated term
sets (IDs, dates, names with digits, short and long, leading zeros) and values (LUT-like digit
strings with separators, hex words, numbers, the text views of bytes and number arrays, any
text), on one TermSet searched again after terms were added, and on the values of every file
in pydicom's bundled test_files folder (listed on disk).
"""
from __future__ import annotations

import random
import re
import unicodedata
import warnings
from functools import cache
from pathlib import Path

import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vindr_cli.deid import policy, terms
from vindr_cli.deid.terms import TermSet, build_terms, value_text, value_views

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


# ---------------------------------------------------------------- the reference (frozen at 16d50d3)

@cache
def _ref_bmp_combining() -> dict[int, None]:
    return dict.fromkeys(c for c in range(0x10000) if unicodedata.combining(chr(c)))


def ref_fold(text: str) -> str:
    if text.isascii():
        return text.casefold()
    text = text.replace("đ", "d").replace("Đ", "D").replace("ð", "d").replace("Ð", "D")
    text = unicodedata.normalize("NFKD", text)
    if not text or max(text) < "\U00010000":
        return text.translate(_ref_bmp_combining()).casefold()
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


_REF_TOKEN = re.compile(r"[^\W_]+(?:\.[^\W_]+)*")
_REF_MATH_GREEK = "\U0001D6A8"


def ref_lookalike(text: str) -> str:
    return unicodedata.normalize("NFKD", text).translate(terms._lookalikes()[0])


def ref_has_lookalike(text: str) -> bool:
    if text.isascii():
        return False
    if terms._lookalikes()[1].search(text):
        return True
    return max(text) >= _REF_MATH_GREEK and bool(terms._lookalikes()[1].search(unicodedata.normalize("NFKD", text)))


def ref_tokens(text: str) -> set[str]:
    out = set(_REF_TOKEN.findall(ref_fold(text)))
    if ref_has_lookalike(text):
        out.update(t for t in _REF_TOKEN.findall(ref_fold(ref_lookalike(text))) if t.isascii())
    for t in [t for t in out if t.count(".") >= 3]:
        parts = t.split(".")
        out.update(".".join(parts[:i]) for i in range(3, len(parts)))
    return out


def ref_consecutive(term: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(term, term[1:])}
    return steps in ({1}, {-1})


def ref_digit_terms(ts, least: int) -> list[str]:
    return [t for t in ts.single if len(t) >= least and t.isdigit() and not ref_consecutive(t)]


def ref_found_in(ts, text_tokens: set[str]) -> bool:
    if ts.single & text_tokens:
        return True
    return any(m <= text_tokens for m in ts.multi)


_REF_HEX_TOKEN = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?([0-9A-Fa-f]*[A-Fa-f][0-9A-Fa-f]*)(?![0-9A-Za-z])")
_REF_DIGIT_GAP = re.compile(r"(?<=[0-9])[ ./-](?=[0-9])")
_REF_DIGITS_ONLY = re.compile(r"[0-9]+")


def ref_hex_number_found(ts, text: str) -> bool:
    if not any(c in text for c in "ABCDEFabcdef"):
        return False
    numbers = {str(int(h, 16)) for h in _REF_HEX_TOKEN.findall(text) if 5 <= len(h) <= 16 and any(c.isdigit() for c in h)}
    return bool(numbers) and any(t in numbers for t in ts.single if len(t) >= 6 and t.isdigit())


def ref_found_in_digits(ts, text: str, vr: str | None) -> bool:
    if ref_hex_number_found(ts, text):
        return True
    joined = _REF_DIGIT_GAP.sub("", text)
    runs = _REF_DIGITS_ONLY.findall(text) + (_REF_DIGITS_ONLY.findall(joined) if joined != text else [])
    if runs and any(t in r for t in ref_digit_terms(ts, 7) for r in runs):
        return True
    if vr in ("IS", "DS") or joined == text:
        return False
    return ref_found_in(ts, ref_tokens(joined))


# ---------------------------------------------------------------- generated terms and values

_WORDS = ["NGUYEN", "Nguyễn", "VAN", "THỊ", "Hoà", "LE", "PHAM", "TRAN", "Đặng", "Иванов", "НАТАLIА",
          "ΡΗΑΜ", "山田", "太郎", "MÜLLER", "Ａｎｎ", "BN", "MRN", "ab", "x"]
_SEPS = [" ", "-", ".", "/", "\\", "^", "_", ",", "  ", "\n", " - ", ":", ""]

_digits = st.text(alphabet="0123456789", min_size=1, max_size=16)


def _grouped(d: str, cuts: list[int], seps: list[str]) -> str:
    """``d`` cut at ``cuts`` with a separator between the pieces (3006-7891, 1985.03.12)."""
    pieces, last = [], 0
    for c in sorted(set(c % (len(d) + 1) for c in cuts)):
        pieces.append(d[last:c])
        last = c
    pieces.append(d[last:])
    out = pieces[0]
    for i, p in enumerate(pieces[1:]):
        out += seps[i % len(seps)] + p
    return out


term_value = st.one_of(
    _digits,                                                                   # IDs, short and long
    _digits.map(lambda d: "00" + d),                                           # leading zeros
    st.dates().map(lambda d: d.strftime("%Y%m%d")),                            # dates
    st.tuples(st.sampled_from(["MRN", "BN", "ID", "Hồ", ""]), _digits).map("".join),    # names with digits
    st.tuples(_digits, st.lists(st.integers(0, 16), max_size=3), st.lists(st.sampled_from(_SEPS), min_size=1, max_size=3))
    .map(lambda a: _grouped(*a)),                                              # "3006 7891"
    st.lists(st.sampled_from(_WORDS), min_size=1, max_size=4).map("^".join),   # person names
    st.from_regex(r"[0-9]{3,9}\.[0-9]{1,4}(\.[0-9]{1,5}){0,4}", fullmatch=True),       # UID-like
    st.text(max_size=12),                                                      # anything
)


@st.composite
def term_sets(draw) -> tuple[TermSet, list[str]]:
    values = draw(st.lists(term_value, min_size=0, max_size=12))
    ts = build_terms(values, include_dates=draw(st.booleans()))
    return ts, values


def _int_text(n: int, draw) -> str:
    """A number as a value may write it: decimal, hex (upper / lower, 0x), with separators."""
    form = draw(st.integers(0, 4))
    if form == 0:
        return str(n)
    if form == 1:
        return format(n, "X")
    if form == 2:
        return "0x" + format(n, "x")
    if form == 3:
        return "0X" + format(n, "X")
    s = str(n)
    return _grouped(s, draw(st.lists(st.integers(0, 16), max_size=3)), draw(st.lists(st.sampled_from(_SEPS), min_size=1, max_size=2)))


@st.composite
def values(draw, values_of_terms: list[str]) -> str:
    """A value to search: LUT-like digit strings, hex words, numbers and text, in places built
    from the terms' digits (so that some are found), or the text views of bytes / numbers."""
    kind = draw(st.integers(0, 5))
    if kind == 5:          # the text views of bytes or of a number array, as engine and audit search them
        if draw(st.booleans()):
            return value_views(draw(st.binary(max_size=600)), draw(st.sampled_from(["OW", "OB", "UN"])))[1]
        nums = draw(st.lists(st.integers(0, 65535), max_size=80))
        return value_views(nums, "US")[1]
    pieces = []
    digit_terms = [re.sub(r"\D", "", v) for v in values_of_terms]
    digit_terms = [d for d in digit_terms if d]
    for _ in range(draw(st.integers(1, 12))):
        which = draw(st.integers(0, 5))
        if which == 0 and digit_terms:
            d = draw(st.sampled_from(digit_terms))
            n = int(d)
            pieces.append(_int_text(n, draw) if draw(st.booleans()) else
                          _grouped(d, draw(st.lists(st.integers(0, 16), max_size=3)),
                                   draw(st.lists(st.sampled_from(_SEPS), min_size=1, max_size=2))))
        elif which == 1:
            pieces.append(_int_text(draw(st.integers(0, 2 ** 40)), draw))
        elif which == 2 and values_of_terms:
            pieces.append(draw(st.sampled_from(values_of_terms)))
        elif which == 3:
            pieces.append(draw(st.text(max_size=20)))
        elif which == 4:
            pieces.append(draw(st.sampled_from(_WORDS)))
        else:
            pieces.append(draw(_digits))
    seps = draw(st.lists(st.sampled_from(_SEPS), min_size=1, max_size=3))
    out = pieces[0]
    for i, p in enumerate(pieces[1:]):
        out += seps[i % len(seps)] + p
    if kind == 4:           # a LUT-like listing: many numbers, a term's digits among them
        out = " ".join(str(7 * i) for i in range(draw(st.integers(0, 400)))) + " " + out
    return out


_VRS = st.sampled_from([None, "LO", "SH", "IS", "DS", "OW", "OB", "US", "UN", "PN"])


def _same(ts: TermSet, text: str, vr) -> None:
    assert policy._hex_number_found(ts, text) == ref_hex_number_found(ts, text)
    assert policy.found_in_digits(ts, text, vr) == ref_found_in_digits(ts, text, vr)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_found_in_digits_answers_as_the_reference(data):
    ts, vals = data.draw(term_sets())
    for _ in range(3):
        text = data.draw(values(vals))
        _same(ts, text, data.draw(_VRS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_a_term_set_searched_again_after_terms_are_added(data):
    """The per-TermSet lists (digit and hex terms) follow the set as it grows."""
    ts, vals = data.draw(term_sets())
    for _ in range(4):
        text = data.draw(values(vals))
        vr = data.draw(_VRS)
        _same(ts, text, vr)
        more = data.draw(st.lists(term_value, max_size=3))
        for v in more:
            ts.add(v)
        vals = vals + more
        _same(ts, text, vr)


_ANY_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(min_codepoint=0x10000), max_size=20),      # beyond the BMP
    st.lists(st.sampled_from(_WORDS + ["é", "\u0301", "\u0308", "𝚴𝐆𝐔𝐘𝐄𝐍", "Ⅻ", "①", "½", "ǅ", "ß", "İ", "ﬁ",
                                       "\U0001D16E", "\U000101FD", "\u0345", "Ω", "Ａ", "\n", " ", ".", "1"]),
             max_size=30).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(_ANY_TEXT)
def test_fold_lookalike_and_tokens_answer_as_the_reference(text):
    assert terms.fold(text) == ref_fold(text)
    assert terms.lookalike(text) == ref_lookalike(text)
    assert terms.tokens(text) == ref_tokens(text)


def test_the_views_of_random_bytes_and_tables_fold_as_the_reference():
    """Big values: the text views of random bytes (UTF-16 reads give characters beyond the BMP,
    Latin-1 combining accents) and of a 65,535-entry LUT, found or not."""
    rng = random.Random(13)
    ts = build_terms(["NGUYEN^VAN^ANH", "40517263", "0077123", "19790824", "Иванов"], include_dates=True)
    import numpy as np
    lut = (np.arange(65535, dtype="<u2") * 7).astype("<u2").tobytes()
    for data in [bytes(rng.getrandbits(8) for _ in range(20000)) for _ in range(3)] + [lut]:
        views = value_views(data, "OW")[1]
        joined = _REF_DIGIT_GAP.sub("", views)
        assert terms.fold(joined) == ref_fold(joined)
        assert terms.tokens(joined) == ref_tokens(joined)
        for vr in ("OW", "LO", "IS"):
            _same(ts, views, vr)
        planted = views + " 4051-7263 0x26A3E8F"
        assert ref_found_in_digits(ts, planted, "OW")       # the plant is found by both
        _same(ts, planted, "OW")


def test_every_value_of_pydicom_s_test_files_answers_as_the_reference():
    """Every element value of every file in pydicom's bundled test_files folder (the Pixel Data
    and values over 256 KiB aside), searched for a term set of the file's own digit runs of 6-12
    digits (so that values are found) and a made-up patient: the same answer."""
    warnings.simplefilter("ignore")
    seen = found = 0
    for path in sorted(PYDICOM_FILES.iterdir()):
        try:
            ds = pydicom.dcmread(path, force=True)
            elems = list(ds.iterall())
        except Exception:
            continue
        vals = []
        for elem in elems:
            if elem.tag in (0x7FE00010, 0x7FE00008, 0x7FE00009) or elem.VR == "SQ":
                continue
            try:
                v = elem.value
                if isinstance(v, (bytes, bytearray)) and len(v) > 262144:
                    continue
                vals.append((elem.VR, v))
            except Exception:
                continue
        own = {r for vr, v in vals if isinstance(v, str) for r in re.findall(r"[0-9]{6,12}", v)}
        ts = build_terms(sorted(own)[:40] + ["PHAM^THI^KIEU", "40517263", "19790824"], include_dates=True)
        for vr, v in vals:
            try:
                text = value_views(v, vr)[1] if (vr in terms.NUMBER_FORMATS or vr in policy.BINARY) else value_text(v, vr)
            except Exception:
                continue
            got = policy.found_in_digits(ts, text, vr)
            assert got == ref_found_in_digits(ts, text, vr), (path.name, vr)
            seen += 1
            found += got
    assert seen > 5000 and found > 50
