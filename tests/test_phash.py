"""The perceptual hash (vindr_cli.pixels.phash) on real images: the same picture stored
lossless, lossy, resized or J2K-irreversible stays within the threshold; different real
images do not; the hash is the DCT hash it says it is."""
from __future__ import annotations

import itertools

import numpy as np
import pydicom
import pytest
from hypothesis import given, strategies as st

from real_images import LOCAL, real
from near_dup_variants import lossless_copy, lossy_copy, resized_copy, rewindowed_copy, save
from vindr_cli.pixels.phash import dct_hash, hamming, near_pairs, phash_file, settings, thumbnail

BASES = ["examples_overlay.dcm", "693_J2KI.dcm", "CT_small.dcm", "RG1_UNCR.dcm"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("phash")


@pytest.mark.parametrize("name", BASES)
def test_copies_of_one_real_image_stay_within_the_threshold(name, store):
    src = real(name, store)
    ds = pydicom.dcmread(src)
    base = phash_file(src)
    limit = settings()["max_distance"]
    copies = {"rle": lossless_copy(ds), "jpeg q50": lossy_copy(ds, 50), "jpeg q20": lossy_copy(ds, 20),
              "half": resized_copy(ds, 2), "quarter": resized_copy(ds, 4), "mild window": rewindowed_copy(ds, 0.05, 0.9)}
    for what, copy in copies.items():
        p = save(copy, store / "copies" / name / f"{what}.dcm")
        assert hamming(base, phash_file(p)) <= limit, what
    # the RLE copy holds the very same stored values: the same display, the same hash (a J2K
    # original is decoded at a reduced resolution for the thumbnail, so only nearly)
    if not ds.file_meta.TransferSyntaxUID.startswith("1.2.840.10008.1.2.4.9"):
        assert phash_file(store / "copies" / name / "rle.dcm") == base


def test_a_real_lossy_pair_is_within_the_threshold(store):
    a, b = real("RG1_UNCR.dcm", store), real("RG1_J2KI.dcm", store)
    assert hamming(phash_file(a), phash_file(b)) <= settings()["max_distance"]


def test_different_real_images_are_far_apart(store):
    names = list(LOCAL) + ["RG1_UNCR.dcm", "RG3_UNCR.dcm"]
    hashes = {}
    for n in names:
        try:
            hashes[n] = phash_file(real(n, store))
        except pytest.skip.Exception:
            continue
    assert len(hashes) >= 5
    for a, b in itertools.combinations(hashes, 2):       # with a margin of 8 bits over the threshold
        assert hamming(hashes[a], hashes[b]) > settings()["max_distance"] + 8, (a, b)


def test_hash_form_and_brightness_invariance(store):
    img = thumbnail(real("examples_overlay.dcm", store))
    h = dct_hash(img)
    assert len(h) == 16 and int(h, 16) >= 0
    assert bin(int(h, 16)).count("1") == 32           # median split of 63 AC terms + DC
    # a linear contrast change moves every AC coefficient by the same factor: same bits
    assert dct_hash(img.astype(np.float32) * 0.5 + 40) == h
    # a negative flips the sign of every AC term: far away
    assert hamming(dct_hash(255 - img.astype(np.float32)), h) > 48


def test_thumbnail_is_the_header_windowed_display(store):
    img = thumbnail(real("693_J2KI.dcm", store))
    assert img.dtype == np.uint8 and img.shape == (256, 256)
    small = thumbnail(real("CT_small.dcm", store))
    assert small.shape == (128, 128)                  # never enlarged


hashes64 = st.integers(min_value=0, max_value=2**64 - 1).map(lambda v: f"{v:016x}")


@given(st.lists(st.one_of(hashes64, st.none()), min_size=0, max_size=40), st.integers(0, 64))
def test_near_pairs_is_the_brute_force_answer(hs, d):
    want = sorted((i, j, hamming(hs[i], hs[j])) for i, j in itertools.combinations(range(len(hs)), 2)
                  if hs[i] is not None and hs[j] is not None and hamming(hs[i], hs[j]) <= d)
    assert near_pairs(hs, d, block=7) == want
