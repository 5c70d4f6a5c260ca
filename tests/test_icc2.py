"""Issue 13 (icc2): what deid.icc.clean still copied of an ICC profile's layout and numbers.

L  Layout. The profile was cleaned in place: the tag table's offsets and sizes, its order, the
   gaps between tag data, an 'mAB ' / 'mBA ' tag's inner offsets and the profile's length were
   copied (the bytes were zeroed, their positions were not). An offset is 32 bits of anything (a
   name two letters a field in its low bytes), the table order is log2(n!) bits, a length or a
   gap another number. Now the profile is written again from the kept tags (icc.pack): a fresh
   header, the table in signature order, the data packed from 4-byte boundaries, data equal byte
   for byte written once, no gap, no tail. So a profile cleans to the same bytes whatever its
   layout was: the tests plant each channel and compare with the clean of the plain profile.
N  Numbers. A 'curv' curve's entries, an 'mft1' / 'mft2' input or output table and a CLUT's
   entries were copied as they were: a name as 16-bit values, or as 8-bit LUT entries, came out
   verbatim. Now a curve must be monotonic, and the bytes of curves, tables and CLUTs must not
   spell words (icc.spells_words: [icc] word_run letters in a row that turn twice).

Each planted profile is a real one (littleCMS's sRGB and LAB, pydicom's crayons.icc,
ghostscript's lab.icc and default_cmyk.icc) edited; every real profile here still cleans, to a
fixed point in canonical layout, and transforms colours identically through littleCMS, both
ways. On main (before icc2) every test of L and N fails (bench/README.md, icc2)."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vindr_cli.deid import icc

HOSPITAL = "BENH VIEN BACH MAI"
NAME = "NGUYEN VAN AN"
GHOSTSCRIPT = Path("/usr/share/color/icc/ghostscript")


def _srgb() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _lab() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


def _crayons() -> bytes:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("crayons.icc", download=False)).read_bytes()


def _table(prof: bytes) -> list[tuple[bytes, int, int]]:
    (count,) = struct.unpack_from(">I", prof, 128)
    return [struct.unpack_from(">4sII", prof, 132 + 12 * i) for i in range(count)]


def _data(prof: bytes) -> dict[bytes, bytes]:
    return {s: prof[o:o + z] for s, o, z in _table(prof)}


def _layout(prof: bytes, order=None, gaps=None, tail: bytes = b"", share: bool = True,
            sizes: dict[bytes, int] | None = None, edit: dict[bytes, bytes] | None = None,
            align: bool = True, extra: dict[bytes, bytes] | None = None) -> bytes:
    """``prof``'s header and tags laid out again: in ``order`` (signatures), ``gaps[i]`` bytes
    before the i-th block, ``tail`` after the last, shared data kept shared or written once a
    tag (``share``), a tag's data extended with zeros to ``sizes[sig]``, or replaced by ``edit``;
    ``align``: each block from a 4-byte boundary (ICC.1 asks it; clean does not rely on it);
    ``extra``: tags added after the profile's own."""
    own = [(s, prof[o:o + z]) for s, o, z in _table(prof)] + list((extra or {}).items())
    data = {s: (edit or {}).get(s, d) for s, d in own}
    data = {s: d + bytes(max(0, (sizes or {}).get(s, 0) - len(d))) for s, d in data.items()}
    sigs = list(order or [s for s, _d in own])
    blocks, where, body = {}, {}, bytearray()
    start = 128 + 4 + 12 * len(sigs)
    for i, s in enumerate(sigs):
        key = data[s] if share else s
        if key not in blocks:
            body += (gaps or {}).get(i, b"")
            body += bytes(-len(body) % 4 if align else 0)
            blocks[key] = start + len(body)
            body += data[s]
        where[s] = blocks[key]
    body += bytes(-len(body) % 4) + tail
    table = struct.pack(">I", len(sigs)) + b"".join(struct.pack(">4sII", s, where[s], len(data[s])) for s in sigs)
    out = bytearray(prof[:128]) + table + body
    out[0:4] = struct.pack(">I", len(out))
    return bytes(out)


def _forms(text: str) -> list[bytes]:
    return [text.encode()[:6], text.encode("utf-16-be")[:10], text.encode("utf-16-le")[:10]]


def _leaks(out: bytes | None, text: str) -> bool:
    return out is not None and any(f in out for f in _forms(text))


def _to_lab_and_back(prof: bytes, mode: str, bands: int) -> list[np.ndarray]:
    """littleCMS: the profile's colour space to Lab, and Lab back where the profile has B2A."""
    from PIL import Image, ImageCms

    pixels = np.random.default_rng(13).integers(0, 256, (24, 24, bands) if bands > 1 else (24, 24), dtype=np.uint8)
    img = Image.fromarray(pixels, mode) if mode in ("CMYK", "LAB") else Image.fromarray(pixels)
    p, lab = ImageCms.ImageCmsProfile(io.BytesIO(prof)), ImageCms.createProfile("LAB")
    there = ImageCms.applyTransform(img, ImageCms.buildTransform(p, lab, mode, "LAB"))
    out = [np.asarray(there)]
    try:
        out.append(np.asarray(ImageCms.applyTransform(there, ImageCms.buildTransform(lab, p, "LAB", mode))))
    except (ImageCms.PyCMSError, OSError):      # no way back (a grey-to-K printer profile): one direction
        pass
    return out


# ------------------------------------------------------------------ L: the layout carries nothing

def _name_offsets(prof: bytes) -> bytes:
    """Gaps sized so that three tags' offsets end in 'NG', 'UY', 'EN' (0x4E47 ...): a name in
    the table's offset fields, two letters a field."""
    sigs = [s for s, _o, _z in _table(prof)]
    out, gaps = _layout(prof, align=False), {}
    for i, want in zip((1, 2, 3), (0x4E47, 0x5559, 0x454E)):
        at = {s: o for s, o, _z in _table(out)}[sigs[i]]
        gaps[i] = bytes(want - at if want > at else 0x10000 + want - at)
        out = _layout(prof, gaps=gaps, align=False)
    assert [o & 0xFFFF for _s, o, _z in _table(out)[1:4]] == [0x4E47, 0x5559, 0x454E]
    return out


LAYOUTS = {
    "offsets spell a name": lambda p: _name_offsets(p),
    "gaps between tag data": lambda p: _layout(p, gaps={2: NAME.encode("utf-16-be"), 5: HOSPITAL.encode()}),
    "bytes after the last tag": lambda p: _layout(p, tail=HOSPITAL.encode("utf-16-le")),
    "table order": lambda p: _layout(p, order=sorted((s for s, _o, _z in _table(p)), reverse=True)),
    "sizes of kept and emptied tags": lambda p: _layout(p, sizes={b"wtpt": 0x4E47, b"desc": 0x5559}),
    "shared data written per tag": lambda p: _layout(p, share=False),
    # which registered tags it holds, of which type: bits of anything, even emptied
    "registered tags added": lambda p: _layout(p, extra={
        s: t + bytes(12) for s, t in ((b"dmnd", b"mluc"), (b"tech", b"sig "), (b"ciis", b"sig "), (b"meas", b"meas"),
                                      (b"vued", b"desc"), (b"dtim", b"dtim"), (b"targ", b"text"))}),
    "description of another type": lambda p: _layout(p, edit={b"desc": b"text" + bytes(4) + NAME.encode() + b"\0"}),
    "no description or copyright": lambda p: _layout(p, order=[s for s, _o, _z in _table(p) if s not in (b"desc", b"cprt")]),
}


@pytest.mark.parametrize("label", sorted(LAYOUTS))
@pytest.mark.parametrize("base", ["sRGB", "crayons"])
def test_a_profile_cleans_to_the_same_bytes_whatever_its_layout(label, base):
    prof = {"sRGB": _srgb, "crayons": _crayons}[base]()
    planted = LAYOUTS[label](prof)
    assert planted != prof and icc.clean(prof) is not None
    out = icc.clean(planted)
    assert out == icc.clean(prof), label                  # nothing of the layout is left
    assert not _leaks(out, HOSPITAL) and not _leaks(out, NAME)
    assert np.array_equal(_to_lab_and_back(out, "RGB", 3)[0], _to_lab_and_back(prof, "RGB", 3)[0])


def test_the_cleaned_layout_is_canonical_and_its_header_size_is_its_length():
    out = icc.clean(_layout(_crayons(), gaps={1: bytes(100)}, tail=bytes(64)))
    table = _table(out)
    assert [s for s, _o, _z in table] == sorted(s for s, _o, _z in table)
    at = 128 + 4 + 12 * len(table)
    seen = {}
    for sig, off, size in table:
        block = out[off:off + size]
        if block in seen:
            assert seen[block] == off                        # equal data written once
            continue
        assert off == at, sig                                # right after the previous block
        seen[block] = off
        at = off + size + (-size % 4)
        assert not out[off + size:at].strip(b"\0")
    assert at == len(out) == struct.unpack_from(">I", out, 0)[0] and len(out) % 4 == 0
    trc = {s: o for s, o, _z in table if s.endswith(b"TRC")}
    assert len(set(trc.values())) == 1                       # crayons' three equal curves: one block


def test_an_mab_with_its_sub_elements_far_apart_cleans_as_the_packed_one():
    """The inner offsets of an 'mAB ' / 'mBA ' (gaps of 0x4E47 bytes: 'NG' in the offset fields)
    are laid out again too."""
    from test_icc import _lut_profile

    plain, _ = _lut_profile()
    far, _ = _lut_profile(gap=bytes(0x4E47 - 16))
    a2b = _data(far)[b"A2B0"]
    assert any(o & 0xFFFF == 0x4E47 or o > 0x4E47 for o in struct.unpack_from(">5I", a2b, 12))
    assert icc.clean(far) == icc.clean(plain) is not None


# ------------------------------------------------------------------ N: curves and CLUTs

def _curve(values) -> bytes:
    return b"curv" + bytes(4) + struct.pack(f">I{len(values)}H", len(values), *values)


def _as_values(text: bytes) -> list[int]:
    text = text + bytes(len(text) % 2)
    return list(struct.unpack(f">{len(text) // 2}H", text))


def _monotonic_with_low_bytes(text: bytes) -> list[int]:
    """A curve that rises every entry (high byte + 1) and hides ``text`` in its low bytes."""
    return [(0x20 + i) << 8 | c for i, c in enumerate(text)]


CURVES = {
    "name as 16-bit values": _as_values(NAME.encode()),
    "utf-16 as 16-bit values": _as_values(HOSPITAL.encode("utf-16-be")),
    "name in the low bytes of a rising curve": _monotonic_with_low_bytes(HOSPITAL.encode()),
    "name after a real ramp": list(range(0, 40000, 4000)) + _as_values(NAME.encode()),
}


@pytest.mark.parametrize("label", sorted(CURVES))
def test_a_curve_that_spells_text_refuses_the_profile(label):
    text = NAME if "NG".encode() in struct.pack(f">{len(CURVES[label])}H", *CURVES[label]) else HOSPITAL
    planted = _layout(_srgb(), edit={b"rTRC": _curve(CURVES[label])})
    packed = struct.pack(f">{len(CURVES[label])}H", *CURVES[label])
    assert text.encode()[:4] in packed or text.encode("utf-16-be")[:8] in packed or label.startswith("name in the low")
    assert icc.clean(planted) is None, label
    real = _layout(_srgb(), edit={b"rTRC": _curve([round(65535 * (i / 255) ** 2.2) for i in range(256)])})
    assert icc.clean(real) is not None                           # a real sampled curve stays


def _mft(prof: bytes, sig: bytes) -> tuple[bytearray, int, int, int, int, int]:
    """(tag data, inputs, outputs, grid, where the CLUT starts, entry width)."""
    tag = bytearray(_data(prof)[sig])
    n_in, n_out, grid = tag[8], tag[9], tag[10]
    if tag[:4] == b"mft1":
        return tag, n_in, n_out, grid, 48 + 256 * n_in, 1
    n_i = struct.unpack_from(">H", tag, 48)[0]
    return tag, n_in, n_out, grid, 52 + 2 * n_i * n_in, 2


def _plant_clut(prof: bytes, sig: bytes, text: bytes) -> bytes:
    tag, *_rest, clut, _w = _mft(prof, sig)
    tag[clut:clut + len(text)] = text
    return _layout(prof, edit={sig: bytes(tag)})


def _plant_input_table(prof: bytes, sig: bytes, text: bytes) -> bytes:
    tag = bytearray(_data(prof)[sig])
    at = 48 if tag[:4] == b"mft1" else 52
    tag[at + 40:at + 40 + len(text)] = text
    return _layout(prof, edit={sig: bytes(tag)})


def _lab_icc() -> bytes:
    return (GHOSTSCRIPT / "lab.icc").read_bytes()


def _lut_ab_clut(text: bytes) -> bytes:
    from test_icc import _lut_ab, _profile

    tag = bytearray(_lut_ab(b"mAB ")[0])
    clut = struct.unpack_from(">I", tag, 24)[0] + 20
    tag[clut:clut + len(text)] = text
    return _profile([(b"A2B0", bytes(tag))])[0]


TABLES = {
    "mft1 CLUT, name as 8-bit entries": lambda: _plant_clut(_lab_icc(), b"A2B0", NAME.encode()),
    "mft2 CLUT, name as 16-bit values": lambda: _plant_clut(_lab(), b"A2B0", HOSPITAL.encode()),
    "mft2 CLUT, UTF-16 as 16-bit values": lambda: _plant_clut(_lab(), b"A2B0", NAME.encode("utf-16-be")),
    "mAB CLUT, name as 16-bit values": lambda: _lut_ab_clut(NAME.encode()[:12]),
    "mft1 input table": lambda: _plant_input_table(_lab_icc(), b"A2B0", HOSPITAL.encode()),
    "mft2 input table": lambda: _plant_input_table(_lab(), b"A2B0", NAME.encode()),
}


@pytest.mark.parametrize("label", sorted(TABLES))
def test_a_lut_whose_entries_spell_text_refuses_the_profile(label):
    planted = TABLES[label]()
    assert any(f in planted for f in _forms(NAME) + _forms(HOSPITAL) + [NAME.encode()[:6]])
    assert icc.clean(planted) is None, label


def test_a_cmyk_printer_profile_with_large_cluts_is_kept_and_transforms_identically():
    """ghostscript's default_cmyk.icc: 'mft2' A2B (9^4 x 3, 16-bit: its a* and b* high bytes are
    lower-case letters) and 'mft1' B2A (33^3 x 4, 8-bit): smooth tables, not words."""
    prof = (GHOSTSCRIPT / "default_cmyk.icc").read_bytes()
    out = icc.clean(prof)
    assert out is not None and icc.clean(out) == out
    for a, b in zip(_to_lab_and_back(out, "CMYK", 4), _to_lab_and_back(prof, "CMYK", 4), strict=True):
        assert np.array_equal(a, b)
    tag, n_in, n_out, grid, clut, width = _mft(prof, b"B2A0")
    assert width == 1 and icc.spells_words(bytes(tag[clut:clut + 16]) + NAME.encode())


# ------------------------------------------------------------------ every real profile here

def _real_profiles() -> dict[str, bytes]:
    """littleCMS's sRGB, LAB and XYZ, pydicom's crayons.icc and its palettes' profile,
    ghostscript's profiles, and the profiles embedded in images of this machine's packages
    (when installed: scikit-learn's sample photos)."""
    import pydicom
    import pydicom.data
    from PIL import Image, ImageCms

    found = {n: ImageCms.ImageCmsProfile(ImageCms.createProfile(n)).tobytes() for n in ("sRGB", "LAB", "XYZ")}
    found["crayons.icc"] = _crayons()
    found["palette pet.dcm"] = bytes(pydicom.dcmread(Path(pydicom.data.__file__).parent / "palettes" / "pet.dcm").ICCProfile)
    for p in sorted(GHOSTSCRIPT.glob("*.icc")):
        found[p.name] = p.read_bytes()
    try:
        import sklearn.datasets
        for p in sorted((Path(sklearn.datasets.__file__).parent / "images").glob("*.jpg")):
            with Image.open(p) as im:
                if im.info.get("icc_profile"):
                    found[p.name] = im.info["icc_profile"]
    except ImportError:
        pass
    return found


MODES = {b"RGB ": ("RGB", 3), b"GRAY": ("L", 1), b"CMYK": ("CMYK", 4), b"Lab ": ("LAB", 3)}


def test_every_real_profile_cleans_canonically_and_transforms_identically_both_ways():
    found = _real_profiles()
    assert len(found) >= 19
    spaces = set()
    for name, prof in found.items():
        out = icc.clean(prof)
        assert out is not None, name
        assert icc.clean(out) == out and icc.pack(out[:128], icc.tags(out)) == out, name
        assert icc.clean(_layout(prof, order=sorted((s for s, _o, _z in _table(prof)), reverse=True),
                                 share=False, tail=bytes(8))) == out, name
        if prof[16:20] not in MODES:
            continue                                        # XYZ data: no Pillow mode
        mode, bands = MODES[prof[16:20]]
        for a, b in zip(_to_lab_and_back(out, mode, bands), _to_lab_and_back(prof, mode, bands), strict=True):
            assert np.array_equal(a, b), name
        spaces.add(mode)
    assert spaces == {"RGB", "L", "CMYK", "LAB"}


# ------------------------------------------------------------------ Hypothesis: pack

SIGS = sorted(s.encode() for s in ("A2B0", "B2A0", "bXYZ", "bTRC", "chad", "chrm", "cprt", "desc", "gXYZ",
                                   "gTRC", "kTRC", "rXYZ", "rTRC", "wtpt", "bkpt", "lumi", "tech", "zPRV"))


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(SIGS), st.sampled_from([b"XYZ " + bytes(16), b"curv" + bytes(8)])
                       | st.binary(min_size=0, max_size=40), max_size=len(SIGS)),
       st.binary(min_size=128, max_size=128))
def test_pack_offsets_are_canonical_never_overlap_and_parse_back(tags, header):
    out = icc.pack(header, list(tags.items()))
    table = _table(out)
    assert struct.unpack_from(">I", out, 0)[0] == len(out) and len(out) % 4 == 0
    assert out[4:128] == header[4:128]
    assert icc.tags(out) == sorted(tags.items())                 # parses back, in signature order
    spans, at = {}, 128 + 4 + 12 * len(table)
    for sig, off, size in table:
        blob = tags[sig]
        assert size == len(blob)
        if blob in spans:
            assert spans[blob] == (off, size)                    # shared only when equal
            continue
        assert off == at and off % 4 == 0                        # packed, in order
        spans[blob] = (off, size)
        at = off + size + (-size % 4)
        assert not out[off + size:at].strip(b"\0")               # zero padding
    assert at == len(out)                                        # no trailing byte
    ends = sorted(spans.values())
    assert all(o0 + s0 <= o1 for (o0, s0), (o1, _s1) in zip(ends, ends[1:]))   # never overlapping
    assert icc.pack(out[:128], icc.tags(out)) == out


LAYOUT_BASES = {"sRGB": _srgb, "LAB": _lab, "crayons": _crayons, "lab.icc": _lab_icc}


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(sorted(LAYOUT_BASES)), order=st.randoms(use_true_random=False),
       gaps=st.dictionaries(st.integers(0, 10), st.binary(max_size=24), max_size=4),
       tail=st.binary(max_size=16), share=st.booleans(), align=st.booleans())
def test_any_layout_of_a_real_profile_cleans_to_the_same_bytes(base, order, gaps, tail, share, align):
    prof = LAYOUT_BASES[base]()
    sigs = [s for s, _o, _z in _table(prof)]
    order.shuffle(sigs)
    planted = _layout(prof, order=sigs, gaps=gaps, tail=tail, share=share, align=align)
    assert icc.clean(planted) == icc.clean(prof) is not None


@settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 65535), min_size=2, max_size=300), st.booleans())
def test_a_monotonic_curve_is_kept_exactly_unless_its_bytes_spell_words(values, falling):
    """Any monotonic curve (rising or falling) keeps its values exactly, so a real one transforms
    as before; it is refused only when its bytes spell words (spells_words), never otherwise."""
    values = sorted(values, reverse=falling)
    planted = _layout(_srgb(), edit={b"rTRC": _curve(values)})
    out = icc.clean(planted)
    spelled = icc.spells_words(struct.pack(f">{len(values)}H", *values), 2)
    assert (out is None) == spelled
    if out is not None:
        assert dict(icc.tags(out))[b"rTRC"] == _curve(values)


# ------------------------------------------------------------------ what the anonymizer and audit judge

def test_the_policy_writes_the_canonical_profile_and_removes_a_curve_that_spells_a_name():
    """deid.policy.judge (the anonymizer's and audit's rule): a profile whose offsets spell a
    name is not kept as it is but as the plain profile's clean bytes; a name as curve values
    removes the element."""
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    from vindr_cli.deid import policy

    def judge(prof: bytes):
        return policy.judge(DataElement(policy.ICC_PROFILE, "OB", prof), trusted_text=False, top=True,
                            siblings=Dataset())

    verdict = judge(_name_offsets(_srgb()))
    assert verdict.ok and bytes(verdict.value) == icc.clean(_srgb())
    assert judge(icc.clean(_srgb())).ok and judge(icc.clean(_srgb())).value is None     # kept as it is
    assert not judge(_layout(_srgb(), edit={b"rTRC": _curve(_as_values(NAME.encode()))})).ok


def test_anonymize_writes_the_canonical_profile_and_audit_finds_an_old_layout(tmp_path):
    """`vindr anonymize` of CT_small carrying sRGB laid out with offsets spelling a name (top
    level) and a name as curve values (optical path item): the first is written as the plain
    profile's clean bytes, the second is removed; `vindr audit` of the output is clean, and
    finds the planted layout when it is put back into the output."""
    import pyarrow.parquet as pq
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from helpers import audit_after_planting, key_file_in, read_quietly, run_cli
    from test_icc_numeric import _file, _profiles_in

    src, out = tmp_path / "export", tmp_path / "anon"
    planted = _name_offsets(_srgb())
    _file(src / "layout.dcm", planted, optical=False, tail=901)
    _file(src / "curve.dcm", _layout(_srgb(), edit={b"rTRC": _curve(_as_values(NAME.encode()))}), optical=True, tail=902)
    run_cli("anonymize", src, out, "--key", key_file_in(tmp_path), "-j", "1")
    linkage = tmp_path / "anon.linkage.parquet"
    links = {Path(r["input_path"]).name: r for r in pq.read_table(linkage).to_pylist()}
    assert {n: r["status"] for n, r in links.items()} == {"layout.dcm": "ok", "curve.dcm": "ok"}
    assert bytes(read_quietly(out / links["layout.dcm"]["output"]).ICCProfile) == icc.clean(_srgb())
    assert _profiles_in(out / links["curve.dcm"]["output"]) == []        # removed

    def plant(ds):
        ds.ICCProfile = planted
        extra = Dataset()
        extra.ICCProfile = planted
        ds.OpticalPathSequence = Sequence([extra])

    report = audit_after_planting(out, links, "layout.dcm", plant, tmp_path / "audit", kind="binary", linkage=linkage)
    assert report.counts().get("binary", 0) >= 2, report.counts()
