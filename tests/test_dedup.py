"""Near-duplicate rules (vindr_cli.curate.dedup.resolve) on real images stored differently,
and `vindr validate` catching a near-duplicate planted across the split."""
from __future__ import annotations

import shutil

import pandas as pd
import pydicom
import pytest
from hypothesis import given, strategies as st

from real_images import real
from near_dup_variants import lossless_copy, lossy_copy, resized_copy, save
from vindr_cli.curate.dedup import ACROSS_PATIENTS, DUPLICATE, group_id, keep_order, resolve
from vindr_cli.curate.look import look_at
from vindr_cli.release.validate import validate_release

BASES = ["RG1_UNCR.dcm", "examples_overlay.dcm", "693_J2KI.dcm"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("dedup")


def _stored_copies(name, store):
    """The same real image as explicit LE (or as it came), RLE, lossy JPEG and half size."""
    src = real(name, store)
    ds = pydicom.dcmread(src)
    d = store / "copies" / name
    files = {"original": src, "rle": save(lossless_copy(ds), d / "rle.dcm"),
             "lossy": save(lossy_copy(ds, 75), d / "lossy.dcm"), "half": save(resized_copy(ds, 2), d / "half.dcm")}
    rows = []
    for i, (what, p) in enumerate(files.items()):
        look = look_at(p)
        h = pydicom.dcmread(p, stop_before_pixels=True)
        rows.append({"image_id": f"{i:x}{what:>31}".replace(" ", "0")[:32], "what": what, "phash": look.phash,
                     "patient_id": "P1", "study_uid": "1.2.3", "rows": int(h.Rows), "columns": int(h.Columns),
                     "lossy": what == "lossy" or name.endswith("J2KI.dcm"),
                     "transfer_syntax": str(h.file_meta.TransferSyntaxUID), "image_type": "ORIGINAL\\PRIMARY"})
    return rows


@pytest.mark.parametrize("name", BASES)
def test_one_image_stored_four_ways_is_one_group_keeping_the_lossless_full_size(name, store):
    rows = _stored_copies(name, store)
    out = resolve(rows)
    groups = {g for g, _ in out.values()}
    assert len(groups) == 1 and None not in groups
    kept = [r["what"] for r in rows if out[r["image_id"]][1] is None]
    assert len(kept) == 1
    if name.endswith("J2KI.dcm"):          # every copy is lossy (the source was): the largest
        assert kept[0] in ("original", "rle")
    else:                                  # lossless, full size; original and RLE tie: smallest id
        assert kept == ["original"]
    assert sorted(reason for _, reason in out.values() if reason) == [DUPLICATE] * 3


def test_the_same_picture_under_two_patients_is_a_red_flag(store):
    rows = _stored_copies("examples_overlay.dcm", store)
    rows[2] = {**rows[2], "patient_id": "P2", "study_uid": "9.9"}
    out = resolve(rows)
    assert {reason for _, reason in out.values()} == {ACROSS_PATIENTS}
    # no patient id: the study stands for it, and another study is another identity
    rows = _stored_copies("examples_overlay.dcm", store)
    rows[1] = {**rows[1], "patient_id": None, "study_uid": "7.7"}
    assert {reason for _, reason in resolve(rows).values()} == {ACROSS_PATIENTS}


def test_different_real_images_form_no_group(store):
    rows = []
    for i, name in enumerate(["examples_overlay.dcm", "693_J2KI.dcm", "CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm",
                              "RG1_UNCR.dcm", "RG3_UNCR.dcm"]):
        try:
            p = real(name, store)
        except pytest.skip.Exception:
            continue
        rows.append({"image_id": f"{i:032x}", "phash": look_at(p).phash, "patient_id": "P1", "study_uid": "1"})
    assert len(rows) >= 5
    assert set(resolve(rows).values()) == {(None, None)}


def test_keep_rule_order():
    base = {"image_id": "b" * 32, "rows": 100, "columns": 100, "lossy": False, "image_type": "ORIGINAL\\PRIMARY"}
    assert keep_order(base) < keep_order({**base, "lossy": True, "rows": 1000})                     # lossless first
    assert keep_order(base) < keep_order({**base, "transfer_syntax": "1.2.840.10008.1.2.4.50"})    # lossy syntax
    assert keep_order({**base, "rows": 200}) < keep_order(base)                                    # larger first
    assert keep_order(base) < keep_order({**base, "image_type": "DERIVED\\SECONDARY"})             # ORIGINAL first
    j2k = {**base, "transfer_syntax": "1.2.840.10008.1.2.4.90"}                                    # lossless JPEG 2000
    assert keep_order({**base, "transfer_syntax": "1.2.840.10008.1.2.1"}) < keep_order({**j2k, "image_id": "a" * 32})  # native first
    assert keep_order({**base, "image_id": "a" * 32}) < keep_order(base)                           # then smallest id


def test_no_hash_no_group():
    rows = [{"image_id": "a", "phash": None, "patient_id": "P"}, {"image_id": "b", "phash": None, "patient_id": "P"}]
    assert resolve(rows) == {"a": (None, None), "b": (None, None)}


hashes = st.sampled_from(["0f0f0f0f0f0f0f0f", "0f0f0f0f0f0f0f0e", "0f0f0f0f0f0f0ff0", "f0f0f0f0f0f0f0f0",
                          "ffffffff00000000", "00000000ffffffff"])


@given(st.lists(st.tuples(hashes, st.sampled_from(["P1", "P2", None]), st.booleans(), st.integers(1, 3)),
                min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_resolve_is_order_free_and_keeps_at_most_one_per_group(items, rnd):
    rows = [{"image_id": f"{i:032x}", "phash": h, "patient_id": p, "study_uid": p or f"s{i}", "lossy": lossy,
             "rows": n, "columns": n} for i, (h, p, lossy, n) in enumerate(items)]
    out = resolve(rows)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    assert resolve(shuffled) == out
    by_group: dict = {}
    for image_id, (g, reason) in out.items():
        if g is not None:
            by_group.setdefault(g, []).append(reason)
        else:
            assert reason is None
    for g, reasons in by_group.items():
        assert len(reasons) >= 2
        if ACROSS_PATIENTS in reasons:
            assert set(reasons) == {ACROSS_PATIENTS}
        else:
            assert reasons.count(None) == 1 and reasons.count(DUPLICATE) == len(reasons) - 1
    assert group_id(["b", "a"]) == group_id(["a", "b"]) and group_id(["a"]).startswith("dup-")


def test_validate_reports_a_near_duplicate_planted_across_the_split(pipeline, tmp_path):
    """A lossy copy of a train image replacing a test image: different pixel bytes (the exact
    check misses it), the same picture (the perceptual check finds this very pair)."""
    r = tmp_path / "r"
    shutil.copytree(pipeline[1], r)
    images = pd.read_csv(r / "images.csv", dtype=str)
    tr = images.index[images["split"] == "train"][0]
    te = images.index[images["split"] == "test"][0]
    target = r / images.at[te, "dicom"]
    target.unlink()
    save(lossy_copy(pydicom.dcmread(r / images.at[tr, "dicom"]), 60), target)
    pair = ", ".join(sorted((images.at[tr, "image_id"], images.at[te, "image_id"])))

    exact = validate_release(r, check_hashes=False, near_duplicates=False)
    assert not [f for f in exact.findings if pair in f.detail]
    rep = validate_release(r, check_hashes=False)              # the check is on by default
    assert rep.perceptual_hashes == len(images)
    assert [f.kind for f in rep.findings if pair in f.detail] == ["near-duplicate"]
