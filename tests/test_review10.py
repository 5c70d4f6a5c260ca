"""Review 10: the confirmed findings of the privacy review of the merged diff 43d3e57..cec8add,
each held by a test that failed before its fix (or a strict xfail where the fix is another's).

W1 (red team 8's wide search, incomplete) ``TermSet.wide`` held a person name's words in another
   script only RUN TOGETHER (ИвановСергей): a surname alone (Иванов, حداد, สมชาย, Παπαδόπουλος)
   written into a kept LUTData as UTF-16 bytes or one character per US number was copied to the
   output, and `vindr audit` passed it. Each word of two characters or more is a term now.
W2 A name in DICOM's own one-byte character sets of other scripts (ISO_IR 144 Cyrillic, 127
   Arabic, 126 Greek; and the cp1251 / KOI8-R code pages) in such bytes read as Latin-1 noise:
   copied. ``found_wide`` decodes those too (only for files whose people have such names).
W3 A name whose accents are COMBINING marks (NFD, as macOS and some vendors write it) in UTF-16
   bytes: the terms were NFC only. Their NFD forms are terms too.
"""
from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import audit_after_planting, key_file_in, run_cli
from test_redteam8 import _file, _leaks, _read, _voi_lut
from vindr_cli.deid.terms import TermSet, value_views

RU = "Ivanov^Sergei=Иванов^Сергей"
AR = "Haddad^Omar=حداد^عمر"
TH = "Somchai^Jaidee=สมชาย^ใจดี"
EL = "Papadopoulos^Nikos=Παπαδόπουλος^Νίκος"

# label: (PatientName, SpecificCharacterSet, what LUTData holds, the word planted); each was
# written unchanged by `vindr anonymize` on cec8add
WIDE = {
    "ru_utf16": (RU, "ISO_IR 192", ("OW", " Иванов ".encode("utf-16-le")), "Иванов"),
    "ru_us": (RU, "ISO_IR 192", ("US", [ord(c) for c in "Иванов"]), "Иванов"),
    "ru_iso8859_5": (RU, "ISO_IR 144", ("OW", " Иванов ".encode("iso8859_5")), "Иванов"),
    "ru_cp1251": (RU, "ISO_IR 192", ("OW", " Иванов ".encode("cp1251")), "Иванов"),
    "ru_koi8": (RU, "ISO_IR 192", ("OW", " Иванов ".encode("koi8_r")), "Иванов"),
    "ar_utf16": (AR, "ISO_IR 192", ("OW", " حداد ".encode("utf-16-le")), "حداد"),
    "ar_iso8859_6": (AR, "ISO_IR 127", ("OW", " حداد ".encode("iso8859_6")), "حداد"),
    "th_utf16": (TH, "ISO_IR 192", ("OW", " สมชาย ".encode("utf-16-le")), "สมชาย"),
    "el_iso8859_7": (EL, "ISO_IR 126", ("OW", " Παπαδόπουλος ".encode("iso8859_7")), "Παπαδόπουλος"),
    "el_utf16_nfd": (EL, "ISO_IR 192", ("OW", unicodedata.normalize("NFD", " Παπαδόπουλος ").encode("utf-16-le")),
                     "Παπαδόπουλος"),
}


@pytest.mark.parametrize("label", list(WIDE))
def test_one_word_of_a_name_in_another_script_is_a_term_inside_bytes_and_numbers(label):
    """The search the anonymizer and the audit share (value_views + found_in_value)."""
    name, _cs, (vr, planted), _word = WIDE[label]
    ts = TermSet()
    ts.add(name)
    digits, text = value_views(planted, vr)
    assert ts.found_in_value(text, digits), label


def test_a_random_lut_is_kept_for_a_cyrillic_named_patient():
    """The new terms are words as written: 64 KiB of random bytes (a seeded LUT) hold none."""
    ts = TermSet()
    ts.add(RU)
    data = np.random.default_rng(10).integers(0, 256, 65536, dtype=np.uint8).tobytes()
    assert not ts.found_in_value(*reversed(value_views(data, "OW")))


@pytest.fixture(scope="module")
def wide_world(tmp_path_factory):
    base = tmp_path_factory.mktemp("review10_wide")
    key = key_file_in(base)
    src = base / "export"
    for i, (label, (name, charset, lut, _)) in enumerate(WIDE.items()):
        _file(src / f"{label}.dcm", name, charset, lut, 100 + i)
    out = base / "anon"
    p = run_cli("anonymize", src, out, "--key", key, "-j", "2")
    links = {Path(r["input_path"]).stem: r for r in pq.read_table(base / "anon.linkage.parquet").to_pylist()}
    assert all(r["status"] == "ok" for r in links.values()), [(k, r["status"]) for k, r in links.items()]
    return {"base": base, "out": out, "printed": p.stdout + p.stderr, "links": links}


@pytest.mark.parametrize("label", list(WIDE))
def test_a_word_of_the_name_in_another_script_is_not_written(wide_world, label):
    out = wide_world["out"] / wide_world["links"][label]["output"]
    vr, planted = WIDE[label][2]
    kept = _read(out).VOILUTSequence[0].get("LUTData")
    assert kept is None or (list(np.atleast_1d(kept)) if vr == "US" else bytes(kept)) != planted
    assert _leaks(out.parent, [WIDE[label][3]]) == []


@pytest.mark.parametrize("label", ["ru_utf16", "ar_iso8859_6", "el_utf16_nfd"])
def test_audit_finds_a_word_of_the_name_planted_in_an_output(wide_world, label, tmp_path):
    vr, planted = WIDE[label][2]
    links = {f"{k}.dcm": v for k, v in wide_world["links"].items()}

    def plant(ds):
        ds.VOILUTSequence = _voi_lut(vr, planted)

    report = audit_after_planting(wide_world["out"], links, f"{label}.dcm", plant, tmp_path,
                                  linkage=wide_world["base"] / "anon.linkage.parquet")
    assert report.counts().get("phi") == 1
    assert _leaks(tmp_path / "none", [WIDE[label][3]], repr(report.findings)) == []
