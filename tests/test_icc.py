"""Issue 13: the offset-based ICC tag types. An 'mAB ' / 'mBA ' tag (lutAtoBType / lutBtoAType,
ICC.1:2022 10.12 / 10.13) is a header of offsets to curves, a matrix and a CLUT; deid.icc.clean
kept its whole declared size, so bytes between the sub-elements or after the last one (a
hospital's or a person's name in UTF-16) were kept. Now only the header's fields and each
referenced sub-element as far as it is defined are kept; a malformed layout refuses the profile;
'mpet' and 'rcs2' ([icc] refused_types) refuse it. The LUT profiles here are built by hand (no
real profile on this machine holds mAB / mBA: littleCMS's sRGB and LAB, pydicom's crayons.icc and
ghostscript's 15 use XYZ / curv / para / sf32 / chrm / mft1 / mft2 only) and loaded by littleCMS
(Pillow's ImageCms) to show they are real, working profiles before and after cleaning."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vindr_cli.deid import icc

TEXT = "BENH VIEN BACH MAI NGUYEN VAN AN".encode("utf-16-be")


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _para(g: float) -> bytes:
    return b"para" + bytes(4) + struct.pack(">HH", 0, 0) + _s15(g)


def _curv0() -> bytes:
    return b"curv" + bytes(4) + struct.pack(">I", 0)


_MATRIX = b"".join(_s15(v) for v in (0.4361, 0.3851, 0.1431, 0.2225, 0.7169, 0.0606, 0.0139, 0.0971,
                                      0.7141, 0, 0, 0))
_CLUT = (bytes([2, 2, 2]) + bytes(13) + bytes([2]) + bytes(3)
         + b"".join(struct.pack(">HHH", r * 0xFFFF, g * 0xFFFF, b * 0x9FFF)
                    for r in (0, 1) for g in (0, 1) for b in (0, 1)))


def _lut_ab(kind: bytes, gap: bytes = b"", tail: bytes = b"") -> tuple[bytes, list[tuple[int, int]]]:
    """A full 3 -> 3 mAB / mBA (B curves, matrix, M curves, 2x2x2 16-bit CLUT, A curves) with
    ``gap`` after each sub-element set and ``tail`` after the last; and the ranges of the gaps."""
    body = bytearray(32)
    offs, gaps = {}, []
    for name, blob in (("B", b"".join(_pad4(_para(1.0)) for _ in range(3))), ("mat", _MATRIX),
                       ("M", b"".join(_curv0() for _ in range(3))), ("clut", _CLUT),
                       ("A", b"".join(_pad4(_para(2.2)) for _ in range(3)))):
        offs[name] = len(body)
        body.extend(_pad4(blob))
        gaps.append((len(body), len(body) + len(_pad4(gap))))
        body.extend(_pad4(gap))
    gaps.append((len(body), len(body) + len(tail)))
    body.extend(tail)
    body[0:4], body[8:10] = kind, bytes([3, 3])
    body[12:32] = struct.pack(">5I", offs["B"], offs["mat"], offs["M"], offs["clut"], offs["A"])
    return _pad4(bytes(body)), gaps


def _mluc(text: str) -> bytes:
    t = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(t), 28) + t


def _profile(tags: list[tuple[bytes, bytes]]) -> tuple[bytes, list[int]]:
    """A v4.4 RGB display profile (PCS XYZ) of ``tags``; and each tag's offset."""
    off = 128 + 4 + 12 * len(tags)
    table, blobs, where = b"", b"", []
    for sig, data in tags:
        where.append(off + len(blobs))
        table += struct.pack(">4sII", sig, off + len(blobs), len(data))
        blobs += _pad4(data)
    hdr = bytearray(128)
    hdr[8:12] = bytes([4, 0x40, 0, 0])
    hdr[12:24] = b"mntrRGB XYZ "
    hdr[36:40] = b"acsp"
    hdr[68:80] = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    prof = bytearray(bytes(hdr) + struct.pack(">I", len(tags)) + table + blobs)
    prof[0:4] = struct.pack(">I", len(prof))
    return bytes(prof), where


def _lut_profile(gap: bytes = b"", tail: bytes = b""):
    a2b, gaps = _lut_ab(b"mAB ", gap, tail)
    b2a, _ = _lut_ab(b"mBA ", gap, tail)
    prof, where = _profile([(b"desc", _mluc("LUT test")),
                            (b"wtpt", b"XYZ " + bytes(4) + _s15(0.9642) + _s15(1.0) + _s15(0.8249)),
                            (b"A2B0", a2b), (b"B2A0", b2a)])
    return prof, [(where[t] + s, where[t] + e) for t in (2, 3) for s, e in gaps]


def _transforms(prof: bytes) -> tuple[np.ndarray, np.ndarray]:
    """littleCMS through the profile both ways: RGB -> Lab (A2B0) and Lab -> RGB (B2A0)."""
    from PIL import Image, ImageCms

    img = Image.fromarray(np.random.default_rng(13).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    lab = ImageCms.createProfile("LAB")
    p = ImageCms.ImageCmsProfile(io.BytesIO(prof))
    to_lab = ImageCms.applyTransform(img, ImageCms.buildTransform(p, lab, "RGB", "LAB"))
    back = ImageCms.applyTransform(to_lab, ImageCms.buildTransform(lab, p, "LAB", "RGB"))
    return np.asarray(to_lab), np.asarray(back)


def test_text_in_the_gaps_of_an_mab_and_mba_tag_is_gone_and_colours_are_unchanged():
    planted, gaps = _lut_profile(TEXT, TEXT)
    plain, _ = _lut_profile()
    assert planted.count(TEXT) == 12                     # the planted profile really holds the text
    out = icc.clean(planted)
    assert out is not None and len(out) < len(planted)  # written again (icc2): the gaps are gone, not zeroed
    assert TEXT[:8] not in out and TEXT[1:9] not in out
    for _sig, tag in icc.tags(out):
        if tag[:4] in (b"mAB ", b"mBA "):
            assert struct.unpack_from(">5I", tag, 12) == (32, 80, 128, 164, 232)   # packed, no gap
            assert len(tag) == 280                       # nothing after the A curves
    assert icc.clean(out) == out
    for a, b in zip(_transforms(out), _transforms(planted)):
        assert np.array_equal(a, b)
    for a, b in zip(_transforms(out), _transforms(plain)):
        assert np.array_equal(a, b)


def test_reserved_and_unused_grid_bytes_of_an_mab_tag_are_zeroed():
    tag, _ = _lut_ab(b"mAB ")
    tag = bytearray(tag)
    tag[4:8], tag[10:12] = b"NAME", b"AN"                # header reserved and padding
    clut = struct.unpack_from(">I", tag, 24)[0]
    tag[clut + 3:clut + 16] = b"NGUYEN VAN AN"           # grid points of channels that do not exist
    prof, where = _profile([(b"A2B0", bytes(tag))])
    out = icc.clean(prof)
    assert out is not None and b"NAME" not in out and b"NGUYEN" not in out
    new = dict(icc.tags(out))[b"A2B0"]                  # written again (icc2): found by its table entry
    clut = struct.unpack_from(">I", new, 24)[0]
    assert new[4:8] == bytes(4) and new[10:12] == bytes(2)
    assert new[clut:clut + 16] == bytes([2, 2, 2]) + bytes(13)


def _bad(edit) -> bytes:
    tag = bytearray(_lut_ab(b"mAB ")[0])
    edit(tag)
    return _profile([(b"A2B0", bytes(tag))])[0]


@pytest.mark.parametrize("label,edit", [
    ("past the tag", lambda t: t.__setitem__(slice(28, 32), struct.pack(">I", len(t) - 8))),
    ("overlap", lambda t: t.__setitem__(slice(16, 20), t[12:16])),                     # matrix on B curves
    ("inside the header", lambda t: t.__setitem__(slice(12, 16), struct.pack(">I", 16))),
    ("unknown curve", lambda t: t.__setitem__(slice(32, 36), b"text")),
    ("precision", lambda t: t.__setitem__(struct.unpack_from(">I", t, 24)[0] + 16, 3)),
    ("matrix without M", lambda t: t.__setitem__(slice(20, 24), bytes(4))),
    ("no B curves", lambda t: t.__setitem__(slice(12, 16), bytes(4))),
    ("no channels", lambda t: t.__setitem__(8, 0)),
])
def test_a_malformed_mab_layout_refuses_the_profile(label, edit):
    assert icc.clean(_lut_profile()[0]) is not None
    assert icc.clean(_bad(edit)) is None, label


@pytest.mark.parametrize("kind", [b"mpet", b"rcs2"])
def test_a_profile_with_mpet_or_rcs2_is_refused(kind):
    """multiProcessElementsType / responseCurveSet16Type: offsets to elements not bounded here."""
    tag = kind + bytes(4) + struct.pack(">HHI", 3, 3, 1) + struct.pack(">II", 24, 12) + b"cvst" + TEXT
    prof, _ = _profile([(b"wtpt", b"XYZ " + bytes(16)), (b"D2B0", tag)])
    assert icc.clean(prof) is None
    assert icc.clean(_profile([(b"wtpt", b"XYZ " + bytes(16))])[0]) is not None


def test_the_policy_removes_a_profile_with_mpet():
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    from vindr_cli.deid import policy

    prof, _ = _profile([(b"D2B0", b"mpet" + bytes(4) + struct.pack(">HHI", 3, 3, 0) + TEXT)])
    verdict = policy.judge(DataElement(policy.ICC_PROFILE, "OB", prof), trusted_text=False, top=True,
                           siblings=Dataset())
    assert not verdict.ok


def _real_profiles() -> dict[str, bytes]:
    from PIL import ImageCms
    from pydicom.data import get_testdata_file

    found = {"sRGB": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
             "LAB": ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(),
             "crayons.icc": Path(get_testdata_file("crayons.icc", download=False)).read_bytes()}
    for p in sorted(Path("/usr/share/color/icc").glob("*/*.icc")):
        found[p.name] = p.read_bytes()
    return found


def test_no_real_profile_here_is_refused_and_each_cleans_to_a_fixed_point():
    """Which real profiles the change touches: none is refused (none holds mpet / rcs2)."""
    for name, prof in _real_profiles().items():
        out = icc.clean(prof)
        assert out is not None, name
        assert icc.clean(out) == out and icc.pack(out[:128], icc.tags(out)) == out, name


# ------------------------------------------------------------------ Hypothesis: random offsets

@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(offsets=st.tuples(*(st.one_of(st.just(real), st.just(0), st.integers(0, 400))
                           for real in (32, 80, 128, 164, 232))),
       n_in=st.one_of(st.just(3), st.integers(0, 4)), n_out=st.one_of(st.just(3), st.integers(0, 4)),
       size=st.one_of(st.just(420), st.integers(8, 420)), seed=st.integers(0, 2**32 - 1))
@example(offsets=(32, 80, 128, 164, 232), n_in=3, n_out=3, size=420, seed=1)      # all accepted
@example(offsets=(32, 0, 0, 0, 0), n_in=3, n_out=3, size=420, seed=2)             # B curves only
def test_clean_never_keeps_a_byte_outside_a_defined_range(offsets, n_in, n_out, size, seed):
    """A tag of random bytes with random offsets (some pointing at real sub-elements): clean
    keeps it only as its defined sub-elements laid out again (icc2): each sub-element the new
    offsets reach holds the bytes of the defined ranges the old offsets reached, in the same
    order, and nothing else; nothing is kept when it refuses."""
    rng = np.random.default_rng(seed)
    body = bytearray(rng.integers(1, 256, 420, dtype=np.uint8).tobytes())
    # some real sub-elements, so that the accepted paths are reached too
    body[32:48] = _para(1.0)
    body[48:64] = _para(1.0)
    body[64:80] = _para(1.0)
    body[80:128] = _MATRIX
    body[128:140] = _curv0()
    body[140:152] = _curv0()
    body[152:164] = _curv0()
    body[164:164 + len(_CLUT)] = _CLUT                   # ends at 232
    body[232:280] = _para(2.2) * 3
    body[0:4], body[8:10] = b"mAB ", bytes([n_in, n_out])
    body[12:32] = struct.pack(">5I", *offsets)
    tag = bytes(body[:size])
    prof, where = _profile([(b"A2B0", tag)])
    at = where[0]
    out = icc.clean(prof)
    ranges = icc.defined_ranges(prof, at, size)
    if (tuple(offsets), n_in, n_out, size) in (((32, 80, 128, 164, 232), 3, 3, 420), ((32, 0, 0, 0, 0), 3, 3, 420)):
        assert ranges is not None                       # a well-formed layout is kept
    if ranges is None:
        assert out is None
        return
    assert out is not None
    new = dict(icc.tags(out))[b"A2B0"]
    new_ranges = icc.defined_ranges(new, 0, len(new))
    assert new_ranges is not None and icc.clean(out) == out
    inside = np.zeros(len(new), dtype=bool)
    for s, e in new_ranges:
        inside[s:e] = True
    assert not np.frombuffer(new, dtype=np.uint8)[~inside].any()       # reserved, gaps, tail: zeros

    def parts(data, rs):                                # the sub-elements' defined bytes, in any order
        return sorted(data[s:e] for s, e in rs if s >= 32)
    assert new[0:4] == tag[0:4] and new[8:10] == tag[8:10] and parts(new, new_ranges) == parts(tag, ranges)
    offs = [o for o in struct.unpack_from(">5I", new, 12) if o]
    assert offs == sorted(offs) and offs[0] == 32       # canonical: in field order from the header's end


def test_real_rgb_profiles_transform_colours_identically_after_cleaning():
    """littleCMS, RGB -> Lab, before and after: every RGB profile of _real_profiles."""
    from PIL import Image, ImageCms

    img = Image.fromarray(np.random.default_rng(13).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    lab = ImageCms.createProfile("LAB")
    checked = 0
    for name, prof in _real_profiles().items():
        if prof[16:20] != b"RGB ":
            continue
        out = icc.clean(prof)
        assert out is not None, name
        a, b = (np.asarray(ImageCms.applyTransform(img, ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(io.BytesIO(p)), lab, "RGB", "LAB"))) for p in (prof, out))
        assert np.array_equal(a, b), name
        checked += 1
    assert checked >= 2
