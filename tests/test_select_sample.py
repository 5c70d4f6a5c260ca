"""`vindr select --recipe vindr-cxr` end to end on the committed sample export (issue 11):
anonymize sample_dicoms/export, select, map every selection row back to its original
SOPInstanceUID through the linkage table, and compare with the generator's truth
(sample_dicoms/selection_truth.json, written by vindr_cli.synth from what it planted)."""
from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE
from helpers import run_cli

TRUTH = json.loads((SAMPLE / "selection_truth.json").read_text(encoding="utf-8"))
# the reason each excluded category must carry (the list)
REASON = {"ct": "modality", "mr": "modality", "lateral": "view", "pediatric": "age", "blank": "qc:blank",
          "multiframe": "frames"}


@pytest.fixture(scope="module")
def selection(tmp_path_factory):
    base = tmp_path_factory.mktemp("select_sample")
    keys = base / "keys"
    keys.mkdir(mode=0o700)
    anon = base / "anon"
    run_cli("anonymize", SAMPLE / "export", anon, "--key", keys / "k", "-j", "2")
    run_cli("select", anon, "-o", base / "sel", "--recipe", "vindr-cxr", "-j", "2")
    linkage = pq.read_table(base / "anon.linkage.parquet").to_pylist()
    original = {r["output"]: r["original_sop_uid"] for r in linkage if r["status"] == "ok"}
    rows = pq.read_table(base / "sel" / "selection.parquet").to_pylist()
    return {original[r["output"]]: r for r in rows}


def _uids(category: str) -> list[str]:
    return [uid for uid, v in TRUTH.items() if v["category"].split(":")[0] == category]


def test_every_written_instance_has_one_row(selection):
    held = set(_uids("secondary-capture") + _uids("truncated"))   # quarantined / failed by anonymize
    assert set(selection) == set(TRUTH) - held
    assert len(held) == 2


def _pair() -> tuple[str, str]:
    """(native, copy) of the sample's duplicate: one picture stored twice in one series."""
    [copy] = _uids("duplicate-of")
    return TRUTH[copy]["category"].split(":", 1)[1], copy


def test_selected_set_is_exactly_the_truth(selection):
    """Exactly the truth's expect_selected set: of the duplicate pair (both lossless, the same
    size) curate.dedup's keep rule takes the native copy over the JPEG 2000 one."""
    selected = {uid for uid, r in selection.items() if r["selected"]}
    expected = {uid for uid, v in TRUTH.items() if v["expect_selected"]}
    assert len(expected) == 14 and _pair()[0] in expected and _pair()[1] not in expected
    assert selected == expected
    for uid in selected:
        assert selection[uid]["reasons"] == [], uid


def test_no_two_patients_share_a_picture(selection):
    reasons = Counter(x for r in selection.values() for x in r["reasons"])
    assert reasons["duplicate-across-patients"] == 0
    assert not any(flag.startswith("burned-in") for r in selection.values() if r["selected"]
                   for flag in r["qc_flags"] or [])


def test_the_duplicate_pair_keeps_one(selection):
    native, copy = _pair()
    assert TRUTH[native]["category"] == "adult-frontal-chest"
    a, b = selection[native], selection[copy]
    assert a["dup_group"] is not None and a["dup_group"] == b["dup_group"]
    assert a["phash"] == b["phash"]                      # identical pixels, two transfer syntaxes
    kept, dropped = (a, b) if a["selected"] else (b, a)
    assert kept["selected"] and kept["reasons"] == []
    assert not dropped["selected"] and dropped["reasons"] == ["duplicate"]
    assert kept is a                                     # the documented keep rule: native before encapsulated


@pytest.mark.parametrize("category", sorted(REASON))
def test_each_exclusion_has_its_reason(selection, category):
    uids = _uids(category)
    assert uids
    for uid in uids:
        r = selection[uid]
        assert not r["selected"] and REASON[category] in r["reasons"], (category, r["reasons"])


def test_spine_films_are_excluded_as_another_body_part(selection):
    for uid in _uids("spine"):
        assert not selection[uid]["selected"] and "body-part" in selection[uid]["reasons"]
