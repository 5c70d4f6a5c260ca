"""termcache (issue 13): a file's people are sought as the union of its own terms and its study's
peer terms, the latter built once per worker process and group (deid.engine.file_person_terms,
deid.terms.TermUnion), and a set's scans go through indexes (deid.terms._Needles: terms by their
first characters; found_in: multi-word terms by one word; policy: digit terms listed once a set).
Every answer must be exactly the answer of the code before (139c8d4), frozen in
tests/termcache_ref.py: ``person_terms(own + peers, folds)`` searched with the old TermSet and the
old policy functions. Compared on Hypothesis-generated people (Latin, Vietnamese, look-alike,
CJK and Hebrew names, IDs with and without leading zeros, dates, a name's parts run together)
split between a file and its peers, and values built from them (tokens, text, the bytes and
number-array views of value_views, UTF-16 and Cyrillic code pages, packed decimal, hex, an ID
split across two numbers) or from nothing; the study's peers sought once more from the cache.
"""
from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import termcache_ref as ref
from vindr_cli.deid import engine, policy, terms
from vindr_cli.deid.terms import _Needles, build_terms, tokens, value_text, value_views

LATIN = "ABCDEGHIKLMNOPRSTUVXY"
LOOKS_CYRILLIC = {"A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О",
                  "P": "Р", "T": "Т", "X": "Х", "Y": "У"}

word = st.one_of(st.text(LATIN, min_size=2, max_size=3), st.text(LATIN, min_size=2, max_size=9))   # short: multi-word terms only
viet = st.sampled_from(["NGUYỄN", "TRẦN", "LÊ", "THỊ", "HỒNG", "PHẠM", "ĐỨC", "HOÀNG", "VĂN", "ÁNH"])
other = st.sampled_from(["山田", "太郎", "王小明", "홍길동", "Иванов", "Сергей", "כֹּהֵן", "Παπαδόπουλος", "राजेश"])
digits = st.text("0123456789", min_size=3, max_size=12)


@st.composite
def person_value(draw) -> str:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return "^".join(draw(st.lists(word, min_size=1, max_size=4)))
    if kind == 1:
        return "^".join(draw(st.lists(st.one_of(word, viet), min_size=2, max_size=4)))
    if kind == 2:
        return "^".join(draw(st.lists(st.one_of(word, other), min_size=1, max_size=3)))
    if kind == 3:
        return draw(digits)
    if kind == 4:
        return draw(st.sampled_from(["MRN", "BN ", "ID-", ""])) + draw(digits)
    if kind == 5:
        return f"{draw(st.integers(1900, 2030))}{draw(st.integers(1, 12)):02d}{draw(st.integers(1, 28)):02d}"
    if kind == 6:   # a name spelled partly in look-alike Cyrillic letters
        w = draw(st.text("".join(LOOKS_CYRILLIC), min_size=4, max_size=8))
        return "".join(LOOKS_CYRILLIC[c] if draw(st.booleans()) else c for c in w) + "^" + draw(word)
    return draw(st.sampled_from(["ANON", "UNKNOWN", "N/A", "12", "", "  ", "ANON^MARIA", "Operator^Hoang"]))


def _people(values: list[str], folds: dict[str, str]) -> list[str]:
    """``values`` with a name's parts run together, as person_values gives them (its folds recorded)."""
    out = []
    for v in values:
        out.append(v)
        if "^" in v:
            out.extend(engine.name_forms(v, folds))
    return out


@st.composite
def study(draw):
    own = draw(st.lists(person_value(), min_size=0, max_size=4))
    peers = draw(st.lists(person_value(), min_size=0, max_size=40))
    peers += draw(st.lists(st.sampled_from(own), max_size=len(own))) if own else []      # its own among them
    folds: dict[str, str] = {}
    own_values = _people(own, folds)
    peer_values = tuple(sorted(set(_people(peers, {}))))
    return own_values, folds, peer_values


def _cyrillic_bytes(text: str, enc: str) -> bytes:
    return "".join(LOOKS_CYRILLIC.get(c, c) for c in text.upper()).encode(enc, "ignore")


@st.composite
def query(draw, values: list[str]):
    """A value to search: built from one of ``values`` (or none) in one of the ways a kept value holds it."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    v = draw(st.sampled_from(values)) if values and draw(st.integers(0, 4)) else "".join(
        rnd.choice(LATIN + "0123456789 ^.-") for _ in range(rnd.randint(0, 30)))
    noise = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 40)))
    kind = draw(st.integers(0, 10))
    vr = draw(st.sampled_from(["LO", "IS", "DS", "SH", "UT"]))
    if kind == 0:
        return ("text", f"{rnd.choice(['', 'x ', 'Dr. '])}{v}{rnd.choice(['', ' 12', '.5'])}", vr)
    if kind == 1:
        return ("text", v.replace("^", rnd.choice([" ", "", ",", "-"])), vr)
    if kind == 2:
        return ("bytes", noise[:10] + v.encode(rnd.choice(["latin-1", "utf-8", "utf-16-le", "utf-16-be"]), "ignore")
                + noise[10:], "OB")
    if kind == 3:
        return ("bytes", noise[:7] + _cyrillic_bytes(v, rnd.choice(["cp1251", "koi8_r", "iso8859_5"])) + noise[7:], "OB")
    if kind == 4:      # one character a US number (UTF-16 as LUT entries)
        return ("numbers", [ord(c) & 0xFFFF for c in v] + [rnd.randrange(65536) for _ in range(rnd.randint(0, 20))], "US")
    if kind == 5:      # an ID's digits as two numbers in a row, or whole
        d = "".join(c for c in v if c.isdigit()) or "40517263"
        k = rnd.randint(1, max(1, len(d) - 1))
        parts = [int(d[:k] or 0), int(d[k:] or 0)]
        return ("numbers", [rnd.randrange(60000) for _ in range(rnd.randint(0, 3))] + parts, rnd.choice(["US", "UL", "SL"]))
    if kind == 6:      # packed decimal (BCD) or hex
        d = "".join(c for c in v if c.isdigit()) or "19850312"
        if rnd.random() < 0.5:
            return ("bytes", noise[:5] + bytes.fromhex(d if len(d) % 2 == 0 else "0" + d) + noise[5:], "OB")
        return ("text", rnd.choice(["0x", "", "v "]) + format(int(d), rnd.choice(["X", "x"])), vr)
    if kind == 7:      # digits with separators
        d = "".join(c for c in v if c.isdigit()) or "3006789"
        return ("text", rnd.choice(["", "MRN ", "1."]) + "-".join(d[i:i + 3] for i in range(0, len(d), 3)), vr)
    if kind == 9:      # glued to letters and digits, 7-bit bytes only (no code page's letter): sought inside
        glue = "".join(rnd.choice("QZ07x") for _ in range(rnd.randint(0, 3)))
        return ("bytes", (glue + v.replace("^", "") + glue[::-1]).encode("ascii", "ignore"), "OB")
    if kind == 10:     # ... as US numbers, two characters a number
        data = ("Q" + v.replace("^", "") + "Z7").encode("ascii", "ignore")
        return ("numbers", list(struct.unpack(f"<{len(data) // 2}H", data[:len(data) // 2 * 2])), "US")
    return ("bytes", noise, "OB")


def _answers(ts, find_digits, split, q) -> tuple:
    """Every search the engine makes of a set, on one value."""
    what, value, vr = q
    if what == "text":
        text = value_text(value, vr)
        return (bool(ts), ts.found_in(tokens(text)), ts.found_wide(text), find_digits(ts, text, vr),
                find_digits(ts, text, None))
    numbers, views = value_views(value if what == "bytes" else value, vr)
    out = [bool(ts), ts.found_in_value(views, numbers), find_digits(ts, views, vr)]
    if what == "bytes":
        out.append(ts.found_in(tokens(terms.decode_all(bytes(value)))))
    return tuple(out)


def _elements(values: list[str], rnd: random.Random) -> list:
    """Kept number elements (tag, VR, value), some of them an ID's two halves."""
    out, tag = [], 0x00200013
    for v in values:
        d = "".join(c for c in v if c.isdigit())
        if len(d) >= 6 and rnd.random() < 0.6:
            k = rnd.randint(3, len(d) - 3)
            out += [(tag, "IS", d[:k]), (tag + 1, rnd.choice(["DS", "US", "IS"]), str(int(d[k:]) if d[k:] else 0))]
            tag += 2
    out += [(tag + i, "IS", str(rnd.randrange(1, 10**6))) for i in range(rnd.randint(0, 4))]
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(study(), st.data())
def test_file_person_terms_answer_as_one_set(people, data):
    """The union of a file's own terms and its (cached) peer terms answers every search as
    ``person_terms(own + peers, folds)`` did, also from the cache (the second time)."""
    own, folds, peers = people
    want = ref.ref_person_terms(own + list(peers), folds)
    got, stripped = engine.file_person_terms(own, folds, peers)
    again, _ = engine.file_person_terms(own, folds, peers)
    assert stripped == frozenset(str(v).strip() for v in peers)
    values = own + list(peers)
    for q in data.draw(st.lists(query(values), min_size=4, max_size=8)):
        expected = _answers(want, ref.ref_found_in_digits, ref.ref_split_across, q)
        assert _answers(got, policy.found_in_digits, policy.split_across, q) == expected
        assert _answers(again, policy.found_in_digits, policy.split_across, q) == expected
    rnd = random.Random(data.draw(st.integers(0, 2**32)))
    kept = _elements(values, rnd)
    assert policy.split_across(got, kept) == ref.ref_split_across(want, kept)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(person_value(), min_size=0, max_size=60), st.data())
def test_a_term_set_answers_as_before(values, data):
    """One TermSet (the audit's, the places'), its scans now indexed: the same answers as before,
    on the same values; searched again after more terms are added (the indexes follow)."""
    values = _people(values, {})
    got, want = build_terms(values, include_dates=True), ref.build_terms(values, include_dates=True)
    for round_ in range(2):
        for q in data.draw(st.lists(query(values), min_size=3, max_size=6)):
            assert (_answers(got, policy.found_in_digits, policy.split_across, q)
                    == _answers(want, ref.ref_found_in_digits, ref.ref_split_across, q))
        extra = data.draw(st.lists(person_value(), max_size=20))
        for v in _people(extra, {}):
            got.add(v)
            want.add(v)
        values = values + extra


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("abc01 ", min_size=1, max_size=8), max_size=300), st.text("abc01 \n", max_size=400))
def test_needles_find_what_in_finds(needles, text):
    """terms._Needles (direct or by heads) finds exactly the terms ``in`` finds, str and bytes."""
    for kind in (str, bytes):
        ns = [n if kind is str else n.encode() for n in needles]
        t = text if kind is str else text.encode()
        index = _Needles(ns)
        want = {n for n in ns if n in t}
        assert index.found(t) == bool(want)
        assert set(index.occurring(t)) == want
        assert len(index.occurring(t)) == sum(ns.count(n) for n in want)       # each listed term once
        if index.k:     # the index whatever the sizes (runs of non-space only when no term holds a space)
            assert {n for n in index._candidates(t) if n in t} == want


def test_a_studys_indexes_are_taken():
    """The big study's searches go through the indexes (so the equality tests above cover them):
    1,000 peer names against a short value; and a hit by a name in the middle of the list."""
    peers = tuple(v for i in range(500) for v in (f"OPERATOR{i:05d}^HOANG", f"OPERATOR{i:05d}HOANG"))
    got, _ = engine.file_person_terms(["NGUYEN^VAN^AN"], {}, peers)
    group = got.parts[1]
    assert not group.inside_terms()._direct(40) and len(group.multi) > 40
    assert got.found_in(tokens("by operator00250")) and not got.found_in(tokens("by operator0025 nobody"))
    assert group.found_in({"x", "y"} | set(peers[:0])) is False and len(group.multi) > 2
    numbers, views = value_views("xxOPERATOR00377HOANGxx".encode("utf-16-le"), "OB")
    assert got.found_in_value(views, numbers)
    numbers, views = value_views(b"OPERATOR0O377", "OB")
    assert not got.found_in_value(views, numbers)
    assert engine.peer_terms(peers)[0] is group           # the second file of the group: the cached set
