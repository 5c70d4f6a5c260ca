"""The per-file fast paths (issue 13) give the answers of the code they replaced, on any input:
accent folding, the text-fault scan, the VR-repertoire check of kept values and the
memoised data dictionary. Each reference below is the replaced code, kept here verbatim."""
from __future__ import annotations

import types
import unicodedata

from hypothesis import given, settings, strategies as st
from pydicom.datadict import DicomDictionary, RepeatersDictionary
from pydicom.datadict import dictionary_VM as pydicom_vm, dictionary_VR as pydicom_vr

from vindr_cli.deid.engine import _CHARS, plausible_value
from vindr_cli.deid.terms import fold
from vindr_cli.dicomio.dictionary import dictionary_VM, dictionary_VR
from vindr_cli.dicomio.structure import (ASCII_MAX, CHAR_MAX, REASON_TEXT, REASON_TOO_LONG, SINGLE_VALUED, TEXT_CONTROL,
                                         TEXT_VRS, text_fault)

SETTINGS = settings(deadline=None, max_examples=400)


def fold_before(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D").replace("ð", "d").replace("Ð", "D")
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def text_fault_before(value: bytes, vr: str):
    body = value.rstrip(b"\x00 ")
    if any(b < 0x20 and b not in TEXT_CONTROL for b in body):
        return REASON_TEXT
    parts = [body] if vr in SINGLE_VALUED else body.split(b"\\")
    if vr in ASCII_MAX and any(len(p) > 2 * ASCII_MAX[vr] for p in parts):
        return REASON_TOO_LONG
    if vr in CHAR_MAX and any(len(p) > 4 * CHAR_MAX[vr] for p in parts):
        return REASON_TOO_LONG
    return None


def repertoire_before(value: bytes, vr: str) -> bool:
    """plausible_value's last step before (bytes of a text VR that passed text_fault)."""
    body = bytes(value).rstrip(b"\x00 ")
    allowed = _CHARS.get(vr)
    return all(b < 0x80 for b in body) and (allowed is None or all(b in allowed for b in body.replace(b"\\", b"")))


VRS = sorted(TEXT_VRS)
# text with accents, Vietnamese letters, combining marks, ligatures and full-width forms
TEXT = st.text(alphabet=st.sampled_from("aAzZ09 ^-.\\_đĐðÐéÈỄữƯơÅﬁＡ①\u0301\u0323ßİı\t\x00") | st.characters(),
               max_size=40)
BYTES = st.binary(max_size=80) | st.builds(bytes, st.lists(st.sampled_from(b"AZaz09 ._-+eEDWMY:\\\x00\x1b\x09\x7f\x80\xc3"),
                                                         max_size=80))


@SETTINGS
@given(TEXT)
def test_fold_is_the_same(text):
    assert fold(text) == fold_before(text)


def test_fold_examples_can_differ_from_plain_casefold():
    assert fold("Nguyễn ĐỨC") == "nguyen duc" and fold("ﬁ") == "fi" and fold("ABC") == "abc"
    # a combining mark outside the Basic Multilingual Plane, after a BMP letter, is dropped too
    assert fold("a\U0001D165b") == fold_before("a\U0001D165b") == "ab"


@SETTINGS
@given(st.text(alphabet=st.characters(min_codepoint=0x300, max_codepoint=0x36F) | st.sampled_from("aĐễ\U0001D165\U0001D400"),
               max_size=12))
def test_fold_of_combining_runs_is_the_same(text):
    assert fold(text) == fold_before(text)


@SETTINGS
@given(BYTES, st.sampled_from(VRS))
def test_text_fault_is_the_same(value, vr):
    assert text_fault(value, vr) == text_fault_before(value, vr)


def test_text_fault_examples():
    assert text_fault(b"AB\x01CD", "LO") == REASON_TEXT and text_fault(b"AB\x1bCD\t", "LO") is None
    assert text_fault(b"1" * 40, "IS") == REASON_TOO_LONG


@SETTINGS
@given(BYTES, st.sampled_from(sorted(ASCII_MAX)))
def test_plausible_value_of_ascii_vrs_is_the_same(value, vr):
    raw = types.SimpleNamespace(value=value, tag=0x00081030)
    expected = text_fault_before(bytes(value), vr) is None and repertoire_before(value, vr)
    if value in (b"",):
        expected = True
    assert plausible_value(raw, vr) == expected


def test_plausible_value_refuses_what_it_should():
    ns = types.SimpleNamespace
    assert not plausible_value(ns(value=b"CHEST\xc3", tag=0x00180015), "CS")      # non-ASCII
    assert not plausible_value(ns(value=b"12;3", tag=0x00200011), "IS")          # not in the repertoire
    assert plausible_value(ns(value=b"CHEST\\AP ", tag=0x00180015), "CS")


def _answer(fn, tag):
    try:
        return fn(tag)
    except KeyError:
        return KeyError


TAGS = sorted(DicomDictionary)[::7] + [0x60000010, 0x60223000, 0x50000005, 0x00091010, 0x00090010, 0x7FE00010,
                                       0xFFFFFFFF, 0x00000000, 0x00110010, 0x60011010]


def test_dictionary_is_pydicoms_for_every_listed_tag_and_repeater():
    for tag in TAGS + [int(k.replace("x", "0"), 16) for k in RepeatersDictionary]:
        for _ in range(2):                                   # uncached, then cached
            assert _answer(dictionary_VR, tag) == _answer(pydicom_vr, tag), hex(tag)
            assert _answer(dictionary_VM, tag) == _answer(pydicom_vm, tag), hex(tag)
    assert _answer(dictionary_VR, 0x00091010) is KeyError and dictionary_VR(0x00100010) == "PN"


@SETTINGS
@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_dictionary_is_pydicoms_for_any_tag(tag):
    assert _answer(dictionary_VR, tag) == _answer(pydicom_vr, tag)
    assert _answer(dictionary_VM, tag) == _answer(pydicom_vm, tag)


# person_terms (deid.engine): a name's parts run together take a direct path; the reference is
# deid.terms.build_terms itself, unchanged
WORDS = st.sampled_from(["NGUYEN", "VAN", "An", "ANON", "unknown", "NA", "Test", "P", "AAAA", "0000", "00077123",
                         "77", "MRN0077123", "12345", "0123456", "X1", "ĐỨC", "Dũng", "ß", "ﬁ", "I", "İ", "vindr",
                         "PABCDEFGHIJKLMNO", "ANONABCDEFGHIJKLMNO", "ABCDEFGHIJKLMNO", "19000101", "A.B", "�‚",
                         "①", "½", "\u0301A", "Ａ２", "٣٤٥٦٧", "Nguyễn", "Đặng"])
JOINED = st.lists(WORDS, min_size=1, max_size=4).map("".join)
VALUES = st.lists(JOINED | st.lists(WORDS, min_size=1, max_size=4).map("^".join) | TEXT | st.sampled_from(["", "  "]),
                  max_size=30)


def _same_terms(values):
    from vindr_cli.deid.engine import person_terms
    from vindr_cli.deid.terms import build_terms

    got, want = person_terms(values), build_terms(values, include_dates=True)
    assert got.single == want.single
    assert set(got.multi) == set(want.multi)
    return got


@SETTINGS
@given(VALUES)
def test_person_terms_are_build_terms(values):
    _same_terms(values)


def test_person_terms_examples():
    ts = _same_terms(["NGUYEN^VAN AN", "NGUYENVANAN", "ANNGUYEN", "MRN0077123", "00077123", "ANON", "AAAA", "P" + "A" * 15])
    assert {"nguyenvanan", "annguyen", "mrn0077123", "0077123", "77123", "00077123"} <= ts.single
    assert "anon" not in ts.single and "aaaa" not in ts.single and "p" + "a" * 15 not in ts.single


@SETTINGS
@given(st.lists(TEXT | WORDS, max_size=5))
def test_fold_of_joined_parts_is_the_parts_folded_and_joined(parts):
    """deid.engine._reordered records a joined name's fold as its parts' folds joined."""
    assert fold("".join(parts)) == "".join(fold(p) for p in parts)


@settings(deadline=None, max_examples=150)
@given(st.lists(st.lists(WORDS | TEXT, min_size=1, max_size=5).map("^".join), min_size=1, max_size=3))
def test_person_terms_with_the_folds_of_person_values(names):
    from pydicom.dataset import Dataset

    from vindr_cli.deid.engine import person_terms, person_values
    from vindr_cli.deid.terms import build_terms

    ds = Dataset()
    ds.PatientName = names[0]
    ds.OtherPatientNames = names
    ds.PatientID = "0077123"
    folds: dict[str, str] = {}
    values = person_values(ds, folds)
    assert values == person_values(Dataset(ds))           # the folds change nothing of the values
    assert all(fold(k) == v for k, v in folds.items())
    got, want = person_terms(values, folds), build_terms(values, include_dates=True)
    assert got.single == want.single and set(got.multi) == set(want.multi)


# dicomio.pixelstream: native pixel data copied by the kernel (copy_file_range, then hashed as
# read back from the output) gives the bytes, hash and reasons of the buffered copy
def _element_file(path, value: bytes, length: int | None = None, prefix: bytes = b"HEADER--"):
    import struct

    length = len(value) if length is None else length
    path.write_bytes(prefix + struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, length) + value)
    return len(prefix)


def _copy_both(tmp_path, value: bytes, length: int | None = None):
    import io

    from vindr_cli.dicomio.header import BadInput
    from vindr_cli.dicomio.pixelstream import copy_pixel_element

    src = tmp_path / "src.bin"
    start = _element_file(src, value, length)
    out = {}
    for how in ("kernel", "buffered"):
        dst_path = tmp_path / f"{how}.bin"
        with open(src, "rb") as f, (open(dst_path, "w+b") if how == "kernel" else io.BytesIO()) as dst:
            f.read(3)                                   # a buffered reader part-way through its buffer
            f.seek(start)
            dst.write(b"OUTHEAD")
            try:
                digest = copy_pixel_element(f, dst, implicit=False, little=True)
                after = (f.tell(), dst.tell())
            except BadInput as exc:
                digest, after = exc.reason, None
            if how == "kernel":
                dst.flush()
                data = dst_path.read_bytes()
            else:
                data = dst.getvalue()
        out[how] = (digest, after, data if after else None)
    return out


@settings(deadline=None, max_examples=60)
@given(st.binary(min_size=1, max_size=3000), st.integers(min_value=-40, max_value=40))
def test_kernel_copy_is_the_buffered_copy(tmp_path_factory, value, cut):
    tmp = tmp_path_factory.mktemp("k")
    length = max(1, len(value) + cut) if cut > 0 else None    # a length past the file's end: truncated
    res = _copy_both(tmp, value, length)
    assert res["kernel"] == res["buffered"]


def test_kernel_copy_examples(tmp_path, monkeypatch):
    import hashlib
    import os

    from vindr_cli.dicomio.pixelstream import TRUNCATED

    calls = []
    real = os.copy_file_range
    monkeypatch.setattr(os, "copy_file_range", lambda *a: calls.append(a) or real(*a))
    value = bytes(range(256)) * 5000 + b"x"                # 1.28 MB, odd length
    res = _copy_both(tmp_path, value)
    assert calls                                           # the kernel copied it (same file system)
    assert res["kernel"] == res["buffered"]
    digest, (src_pos, dst_pos), data = res["kernel"]
    assert digest == (hashlib.sha256(value).hexdigest(), 12 + len(value))
    assert data.endswith(value) and dst_pos == len(data) and src_pos == 8 + 12 + len(value)
    assert _copy_both(tmp_path, value[:1000], 5000)["kernel"][0] == TRUNCATED


def test_kernel_copy_falls_back_where_it_cannot_copy(tmp_path):
    """A write-only output (it cannot be read back) and a zip member (no descriptor): the
    buffered copy, same bytes."""
    import io
    import zipfile

    from vindr_cli.dicomio.pixelstream import copy_pixel_element

    src = tmp_path / "src.bin"
    start = _element_file(src, b"\x01\x02" * 4000)
    with open(src, "rb") as f, open(tmp_path / "wo.bin", "wb") as dst:
        f.seek(start)
        assert copy_pixel_element(f, dst, implicit=False, little=True)[1] == 12 + 8000
    assert (tmp_path / "wo.bin").read_bytes() == src.read_bytes()[start:]
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.write(src, "m.bin")
    with zipfile.ZipFile(tmp_path / "z.zip") as z, z.open("m.bin") as f:
        f.seek(start)
        dst = io.BytesIO()
        copy_pixel_element(f, dst, implicit=False, little=True)
    assert dst.getvalue() == src.read_bytes()[start:]
