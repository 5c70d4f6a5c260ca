"""Pixel QC flags (vindr_cli.curate.qc via curate.look.look_at): each flag fires on a case
built from a real image and not on the real images that should pass it; undecodable files
get a fixed reason, never a value from the file."""
from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from conftest import SAMPLE
from real_images import real
from near_dup_variants import resized_copy, save
from vindr_cli.curate import qc
from vindr_cli.curate.look import UNREADABLE, look_at

PIXEL_FLAGS = ("blank", "near-constant", "saturated", "clipped", "inverted")
# real images that must pass every pixel flag (and the size flags where said)
PASS_ALL = ["examples_overlay.dcm", "693_J2KI.dcm", "RG1_UNCR.dcm", "RG1_J2KI.dcm", "RG3_UNCR.dcm"]
CHEST_PA = SAMPLE / "export" / "TRAN THI BICH_20023456" / "20240219_CHEST_SH2402190004" / "S01_DX_PA" / "IMG_TranThiBich_0003.dcm"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("qc")


def _native(ds, arr: np.ndarray):
    """ds with its pixel data replaced by arr (same dtype class), native little endian."""
    out = copy.deepcopy(ds)
    if out.file_meta.TransferSyntaxUID.is_compressed:
        out.decompress()
    arr = np.ascontiguousarray(arr.astype(ds.pixel_array.dtype))
    out.Rows, out.Columns = arr.shape
    out.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return out


def _flags(ds, path, **kw):
    look = look_at(save(ds, path), **kw)
    assert look.reason is None and look.phash is not None
    return look.qc_flags


@pytest.mark.parametrize("name", PASS_ALL)
def test_real_images_pass(name, store):
    look = look_at(real(name, store))
    assert look.reason is None and len(look.phash) == 16
    assert look.qc_flags == (), look.qc_flags


def test_size_and_aspect_fire_on_real_images_that_have_them(store):
    assert look_at(real("CT_small.dcm", store)).qc_flags == ("small",)          # 128 x 128
    assert look_at(real("JPEG2000.dcm", store)).qc_flags == ("aspect",)         # whole-body NM, 1024 x 256


def test_blank_and_near_constant(store):
    ds = pydicom.dcmread(real("examples_overlay.dcm", store))
    arr = ds.pixel_array
    assert _flags(_native(ds, np.zeros_like(arr)), store / "blank.dcm") == ("blank",)
    faint = _native(ds, arr)                           # the real image under a window 20x too wide:
    width = int(arr.std() * 255 / 4)                   # a display standard deviation of ~4 levels
    faint.WindowCenter, faint.WindowWidth = int(arr.mean()), width
    flags = _flags(faint, store / "faint.dcm")
    assert "near-constant" in flags and "blank" not in flags
    assert "near-constant" not in _flags(_native(ds, arr), store / "same.dcm")


def test_saturated(store):
    ds = pydicom.dcmread(real("693_J2KI.dcm", store))
    ds.decompress()
    burnt = copy.deepcopy(ds)
    burnt.WindowCenter, burnt.WindowWidth = -1100, 100      # everything above air is white
    assert "saturated" in _flags(burnt, store / "burnt.dcm")
    assert "saturated" not in _flags(ds, store / "ct.dcm")


def test_clipped(store):
    ds = pydicom.dcmread(real("examples_overlay.dcm", store))
    arr = ds.pixel_array
    lo, hi = np.percentile(arr, (5, 95))
    levels = np.digitize(arr, np.linspace(lo, hi, 4)).astype(arr.dtype) * (int(hi) // 4)   # 5 values
    posterised = _native(ds, levels)
    posterised.WindowCenter, posterised.WindowWidth = int(levels.max()) // 2, int(levels.max()) + 1
    assert _flags(posterised, store / "post.dcm") == ("clipped",)


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "CHEST_PA"])
def test_inverted_fires_on_a_mislabelled_chest_film_only(name, store):
    src = CHEST_PA if name == "CHEST_PA" else real(name, store)
    ds = pydicom.dcmread(src)
    assert _flags(ds, store / f"{name}-asis.dcm") == ()
    flipped = copy.deepcopy(ds)
    flipped.PhotometricInterpretation = ("MONOCHROME2" if ds.PhotometricInterpretation == "MONOCHROME1"
                                         else "MONOCHROME1")
    assert _flags(flipped, store / f"{name}-flipped.dcm") == ("inverted",)
    lateral = copy.deepcopy(flipped)
    lateral.ViewPosition = "LL"                   # the rule does not judge laterals
    assert _flags(lateral, store / f"{name}-lateral.dcm") == ()
    knee = copy.deepcopy(flipped)
    knee.BodyPartExamined = "KNEE"                # nor other body parts
    assert _flags(knee, store / f"{name}-knee.dcm") == ()


def test_small_and_aspect_on_resized_and_cropped_copies(store):
    ds = pydicom.dcmread(real("693_J2KI.dcm", store))
    assert _flags(resized_copy(ds, 4), store / "small.dcm") == ("small",)
    ds.decompress()
    strip = _native(ds, ds.pixel_array[200:328, :])        # 128 x 512: 4:1
    assert set(_flags(strip, store / "strip.dcm")) >= {"aspect"}


def test_burned_in_large_from_the_redaction_boxes(store):
    p = real("examples_overlay.dcm", store)            # 300 rows x 484 columns
    assert look_at(p, redactions="[]").qc_flags == ()
    assert look_at(p, redactions="[[0, 10, 10, 60, 30]]").qc_flags == ()          # 1000 px: 0.7 %
    assert look_at(p, redactions="[[0, 0, 0, 242, 150]]").qc_flags == ("burned-in-large",)   # 25 %
    # overlapping boxes count once: two copies of a 7 % box are 7 %
    assert look_at(p, redactions=[[0, 0, 0, 100, 100], [0, 0, 0, 100, 100]]).qc_flags == ()
    assert look_at(p, redactions="not json").qc_flags == ("burned-in-large",)     # unreadable: safe side
    assert qc.redacted_fraction(None, 300, 484) == 0.0


def test_burned_in_large_counts_the_central_field(store):
    """A console's label band outside the lungs' field is normal (issue 11): only redactions
    over the central field (schemas/curate/qc.toml) make the flag."""
    p = real("examples_overlay.dcm", store)            # 300 rows x 484 columns
    band = "[[0, 0, 240, 484, 300]]"                    # the bottom fifth: 20 % of the image
    assert qc.redacted_fraction(band, 300, 484) == pytest.approx(0.2)
    assert look_at(p, redactions=band).qc_flags == ()
    over_lungs = "[[0, 150, 100, 250, 200]]"            # 100 x 100 in the middle: 7 % of the image
    assert look_at(p, redactions=over_lungs).qc_flags == ("burned-in-large",)
    assert qc.redacted_fraction("[[0, 0, 0, 50, 100]]", 100, 100, region=(0, 0, 500, 1000)) == 1.0


def test_undecodable_files_get_a_fixed_reason(store, tmp_path):
    truncated = look_at(real("MR_truncated.dcm", store))
    assert truncated.phash is None and truncated.reason == "truncated pixel data"
    assert truncated.qc_flags == ("small",)            # the header still tells the size
    junk = tmp_path / "Nguyen Van An.dcm"
    junk.write_bytes(b"not a dicom file at all")
    look = look_at(junk)
    assert look == type(look)(None, (), UNREADABLE) and "Nguyen" not in look.reason


def test_thresholds_are_data_with_every_flag():
    t = qc.thresholds()
    assert set(t) == set(qc.FLAGS)
    assert qc.ordered(["small", "blank", "small"]) == ("blank", "small")


def test_mutated_files_never_raise_and_give_fixed_reasons(store, tmp_path):
    """Seeded mutations (tests/fuzzing.py) of real files with a planted name: look_at never
    raises; an undecodable mutant gets no hash and a one-line reason without the name."""
    import random

    from fuzzing import mutate

    marker = "ZZPLANTEDNAMEZZ"
    rng = random.Random(11)
    sources = []
    for name in ("examples_overlay.dcm", "CT_small.dcm", "693_J2KI.dcm", "MR_small.dcm"):
        ds = pydicom.dcmread(real(name, store))
        ds.PatientName = marker
        sources.append(save(ds, tmp_path / f"{marker}-{name}").read_bytes())
    reasons = set()
    for i in range(120):
        kind = ("bitflip", "vr", "length", "truncate", "swap", "random-bytes")[i % 6]
        p = tmp_path / f"{marker}_{i}.dcm"
        p.write_bytes(mutate(sources[i % len(sources)], rng, kind))
        look = look_at(p)
        if look.reason is None:
            assert look.phash is not None and len(look.phash) == 16
        else:
            assert look.phash is None
            reasons.add(look.reason)
    assert reasons                                     # some mutants were undecodable
    for reason in reasons:
        assert "\n" not in reason and len(reason) < 160 and marker not in reason and "tmp" not in reason


def test_redacted_fraction_is_bounded_and_exact_on_small_images():
    assert qc.redacted_fraction("[[0, 0, 0, 50, 100]]", 100, 100) == 0.5
    # a declared 65535 x 65535 image is counted on a 1024 px grid, not a 4 GiB mask
    assert qc.redacted_fraction("[[0, 0, 0, 32768, 65535]]", 65535, 65535) == pytest.approx(0.5, abs=0.01)
