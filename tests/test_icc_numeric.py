"""Issue 13, the ICC leftovers: what deid.icc.clean kept of a profile that was not proven safe.

N1 Numeric array tags ('ui08', 'ui16', 'ui32', 'ui64', 'uf32', 'sf32') kept all their bytes: a
   ui08 array carried "BENH VIEN BACH MAI" verbatim, a ui16 array its UTF-16. ICC.1 gives an array
   type to one tag only ('chad', nine s15Fixed16), so an array is kept only as 'chad', and its
   numbers must not read as text (4+ printable ASCII / UTF-16 characters: the profile is refused)
   nor hold the file's own person values (the anonymizer's and audit's person search).
N2 Tag data overlapping other than an exact share: an emptied text tag was zeroed after the kept
   tags were copied, damaging a kept one (a curve inside a description lost its entries). Such a
   profile is now refused; an exact share (rTRC = gTRC = bTRC) stays as it was.
R  Review of the rest: the tag table was copied as it was (private tag signatures are four
   characters each), and so was the header (maker, model, creator, CMM and platform signatures,
   the creation date); the reserved bytes of 'para' and 'mft1'/'mft2', and a 'sig ' / 'clro' /
   'dtim' tag's data, were kept. Now only registered signatures stay in the table, the header keeps
   its numbers and listed signatures, and those bytes are zeros. In 'mAB ' / 'mBA ' a 'para'
   curve kept its reserved bytes, and a matrix or curve parameters could hold text; an 'mft2'
   with no input channel was kept. (A sub-element inside another, a grid overflowing the tag,
   an offset past it, 16 channels were already refused: those tests guard it.)

Every attack is a real profile (littleCMS's sRGB, pydicom's crayons.icc) with tags added or
edited, then a real DICOM file (pydicom's CT_small) carrying it in ICCProfile at the top level and
inside OpticalPathSequence, through `vindr anonymize` in the three --burned-in modes and `vindr
audit` of a planted output. Real profiles still transform colours identically (test_icc.py)."""
from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import key_file_in, run_cli
from test_safe_default import real
from vindr_cli.deid import icc

HOSPITAL = "BENH VIEN BACH MAI"
PID, NAME = "BN7734561", "NGUYEN^THI^HUONG"
ID_NUMBER = 7734561                          # the ID's digits, written as one s15Fixed16 number


def _srgb() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _crayons() -> bytes:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("crayons.icc", download=False)).read_bytes()


def _tags(prof: bytes) -> list[tuple[bytes, int, int]]:
    (count,) = struct.unpack_from(">I", prof, 128)
    return [struct.unpack_from(">4sII", prof, 132 + 12 * i) for i in range(count)]


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _rebuild(prof: bytes, extra: list[tuple[bytes, bytes]] = (), header: dict[int, bytes] | None = None) -> bytes:
    """``prof`` laid out again with ``extra`` tags (signature, data) after its own; shared data
    stays shared; ``header``: bytes written at header offsets."""
    own = _tags(prof)
    blocks: dict[tuple[int, int], bytes] = {}
    entries = [(sig, (off, size)) for sig, off, size in own]
    for off, size in dict.fromkeys(k for _s, k in entries):
        blocks[(off, size)] = prof[off:off + size]
    for i, (sig, data) in enumerate(extra):
        blocks[("x", i)] = data
        entries.append((sig, ("x", i)))
    start = 128 + 4 + 12 * len(entries)
    where, body = {}, b""
    for k, data in blocks.items():
        where[k] = (start + len(body), len(data))
        body += _pad4(data)
    hdr = bytearray(prof[:128])
    for at, b in (header or {}).items():
        hdr[at:at + len(b)] = b
    table = b"".join(struct.pack(">4sII", sig, *where[k]) for sig, k in entries)
    out = bytearray(bytes(hdr) + struct.pack(">I", len(entries)) + table + body)
    out[0:4] = struct.pack(">I", len(out))
    return bytes(out)


def _lab(prof: bytes) -> np.ndarray:
    """littleCMS: RGB -> Lab through ``prof``."""
    from PIL import Image, ImageCms

    img = Image.fromarray(np.random.default_rng(13).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return np.asarray(ImageCms.applyTransform(img, ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(prof)), ImageCms.createProfile("LAB"), "RGB", "LAB")))


def _forms(text: str) -> list[bytes]:
    return [text.encode()[:8], text.encode("utf-16-be")[:12], text.encode("utf-16-le")[:12]]


def _has(out: bytes, text: str) -> bool:
    return any(f in out for f in _forms(text))


def _chad(values) -> bytes:
    return b"sf32" + bytes(4) + struct.pack(">9i", *values)


# ------------------------------------------------------------------ N1: numeric array tags

ARRAYS = {
    "ui08 private": (b"zHOS", b"ui08" + bytes(4) + HOSPITAL.encode()),
    "ui08 registered": (b"tech", b"ui08" + bytes(4) + HOSPITAL.encode()),
    "ui16 utf-16": (b"ciis", b"ui16" + bytes(4) + HOSPITAL.encode("utf-16-be")),
    "ui32 utf-16 le": (b"vued", b"ui32" + bytes(4) + _pad4(HOSPITAL.encode("utf-16-le"))),
    "ui64": (b"devs", b"ui64" + bytes(4) + HOSPITAL.encode().ljust(24)),
    "uf32": (b"lumi", b"uf32" + bytes(4) + _pad4(HOSPITAL.encode())),
    "sf32 not chad": (b"bkpt", b"sf32" + bytes(4) + _pad4(HOSPITAL.encode())),
}


@pytest.mark.parametrize("label", sorted(ARRAYS))
def test_a_numeric_array_tag_other_than_chad_loses_its_bytes_and_colours_stay(label):
    sig, data = ARRAYS[label]
    planted = _rebuild(_srgb(), [(sig, data)])
    assert _has(planted, HOSPITAL)
    out = icc.clean(planted)
    assert out is not None and not _has(out, HOSPITAL), label
    assert icc.clean(out) == out
    assert np.array_equal(_lab(out), _lab(planted))


def _with_chad(chad: bytes) -> bytes:
    """littleCMS's sRGB with its 'chad' replaced by ``chad``."""
    own = [(s, _srgb()[o:o + z]) for s, o, z in _tags(_srgb()) if s != b"chad"]
    return _rebuild(bytes(_srgb()[:128]) + struct.pack(">I", 0), own + [(b"chad", chad)])


def _srgb_chad() -> tuple[int, ...]:
    off = {s: o for s, o, _ in _tags(_srgb())}[b"chad"]
    return struct.unpack_from(">9i", _srgb(), off + 8)


def test_chad_keeps_its_nine_numbers_only():
    values = _srgb_chad()
    prof = _with_chad(_chad(values) + HOSPITAL.encode("utf-16-be"))
    out = icc.clean(prof)
    assert out is not None and not _has(out, HOSPITAL)
    chad = {s: o for s, o, _ in _tags(out)}[b"chad"]
    assert struct.unpack_from(">9i", out, chad + 8) == values
    assert np.array_equal(_lab(out), _lab(_srgb()))
    assert icc.clean(_with_chad(_chad(values)[:40])) is None          # fewer than nine numbers


@pytest.mark.parametrize("text", [b"NGUYEN VAN A", "BACH MAI".encode("utf-16-be"), "BACH MAI".encode("utf-16-le")])
def test_chad_numbers_that_read_as_text_refuse_the_profile(text):
    values = list(struct.unpack(">9i", text.ljust(36, b" ")[:36]))
    assert icc.clean(_with_chad(_chad(values))) is None
    assert icc.clean(_with_chad(_chad(_srgb_chad()))) is not None


@pytest.mark.parametrize("where", ["wtpt", "chrm", "rTRC"])
def test_text_in_other_fixed_numbers_refuses_the_profile(where):
    """XYZ values, chromaticities, parametric curve parameters: 12 bytes of a name fit in one."""
    prof = bytearray(_rebuild(_srgb()))
    off = {s: o for s, o, _ in _tags(prof)}[where.encode()]
    at = off + {"wtpt": 8, "chrm": 12, "rTRC": 12}[where]
    prof[at:at + 4] = b"BACH"
    assert icc.clean(bytes(prof)) is None


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(at=st.integers(0, 600), wide=st.sampled_from(["ascii", "utf-16-be", "utf-16-le"]))
def test_text_planted_anywhere_in_a_real_profile_never_comes_out(at, wide):
    """A hospital's name written over any bytes of littleCMS's sRGB (header, tag table, any tag):
    the cleaned profile is refused, or holds no four characters of it in a row."""
    text = HOSPITAL.encode() if wide == "ascii" else HOSPITAL.encode(wide)
    prof = bytearray(_srgb())
    at = min(at, len(prof) - len(text))
    prof[at:at + len(text)] = text
    out = icc.clean(bytes(prof))
    if out is None:
        return
    step = 1 if wide == "ascii" else 2
    windows = {text[i:i + 4 * step] for i in range(0, len(text) - 4 * step + 1, step)}
    assert not any(w in out for w in windows), (at, wide)
    assert icc.clean(out) == out


# ------------------------------------------------------------------ N2: overlapping tag data

def test_a_text_tag_overlapping_a_kept_curve_refuses_the_profile_and_an_exact_share_stays():
    """crayons.icc's curves (curv, 4096 entries): a 'desc' whose data starts inside the red curve
    had its range zeroed after the curve was copied, so the kept curve lost entries."""
    prof = bytearray(_crayons())
    tags = _tags(prof)
    r_off = next(o for s, o, _ in tags if s == b"rTRC")
    i = next(i for i, (s, _o, _z) in enumerate(tags) if s == b"desc")
    struct.pack_into(">4sII", prof, 132 + 12 * i, b"desc", r_off + 100, 64)
    assert icc.clean(bytes(prof)) is None
    shared = [(s, o, z) for s, o, z in tags if s in (b"rTRC", b"gTRC", b"bTRC")]
    assert len({(o, z) for _s, o, z in shared}) == 1          # crayons shares one curve exactly
    assert icc.clean(_crayons()) is not None


def test_tag_data_on_the_tag_table_or_partly_shared_refuses_the_profile():
    prof = bytearray(_srgb())
    tags = _tags(prof)
    w = next(i for i, (s, _o, _z) in enumerate(tags) if s == b"wtpt")
    _s, off, size = tags[w]
    struct.pack_into(">4sII", prof, 132 + 12 * w, b"wtpt", off + 4, size)     # inside the next data or this one
    assert icc.clean(bytes(prof)) is None
    g = next(i for i, (s, _o, _z) in enumerate(tags) if s == b"gTRC")
    _s, off, size = tags[g]
    again = bytearray(_srgb())
    struct.pack_into(">4sII", again, 132 + 12 * g, b"gTRC", off, size - 4)   # same start, other size
    assert icc.clean(bytes(again)) is None


def test_a_signature_twice_refuses_the_profile():
    prof = bytearray(_srgb())
    tags = _tags(prof)
    i = next(i for i, (s, _o, _z) in enumerate(tags) if s == b"gXYZ")
    struct.pack_into(">4s", prof, 132 + 12 * i, b"rXYZ")
    assert icc.clean(bytes(prof)) is None


# ------------------------------------------------------------------ R: table, header, reserved bytes

def _private_signatures() -> bytes:
    """The hospital's name as private tag signatures, each pointing at an empty text."""
    name = _pad4(HOSPITAL.encode()).replace(b"\0", b" ")
    empty = b"mluc" + bytes(4) + struct.pack(">II", 0, 12)
    return _rebuild(_srgb(), [(name[i:i + 4], empty) for i in range(0, len(name), 4)])


def _header_text() -> bytes:
    return _rebuild(_srgb(), header={4: b"BACH", 40: b"MAI ", 48: b"BENH", 52: b"VIEN", 80: b"HUON",
                                     24: struct.pack(">6H", 1985, 3, 12, 9, 30, 0)})


def test_private_tag_signatures_are_dropped_from_the_table():
    planted = _private_signatures()
    out = icc.clean(planted)
    assert out is not None and not any(s.startswith(b"BENH")for s, _o, _z in _tags(out))
    assert b"BENH" not in out and b"BACH" not in out
    assert {s for s, _o, _z in _tags(out)} == {s for s, _o, _z in _tags(_srgb())}
    assert np.array_equal(_lab(out), _lab(planted)) and icc.clean(out) == out


def test_the_header_keeps_numbers_and_listed_signatures_only():
    planted = _header_text()
    out = icc.clean(planted)
    assert out is not None
    for word in (b"BACH", b"MAI ", b"BENH", b"VIEN", b"HUON"):
        assert word not in out[:128]
    assert out[24:36] == bytes(12)                          # the creation date
    assert out[8:10] == planted[8:10] and out[12:24] == planted[12:24] and out[68:80] == planted[68:80]
    assert np.array_equal(_lab(out), _lab(_srgb()))
    odd = icc.clean(_rebuild(_srgb(), header={8: b"NG"}))     # no ICC.1 version: two bytes of anything
    assert odd is not None and odd[8:10] == bytes(2)


def test_reserved_bytes_of_para_and_mft2_and_sig_data_are_zeroed():
    prof = bytearray(_rebuild(_srgb(), [(b"tech", b"sig " + bytes(4) + b"HUON")]))
    tags = {s: o for s, o, _ in _tags(prof)}
    prof[tags[b"rTRC"] + 10:tags[b"rTRC"] + 12] = b"AN"        # para reserved
    prof[tags[b"rTRC"] + 4:tags[b"rTRC"] + 8] = b"NGUY"        # every type's reserved
    out = icc.clean(bytes(prof))
    assert out is not None
    for word in (b"AN", b"NGUY", b"HUON"):
        assert word not in out[tags[b"rTRC"]:tags[b"rTRC"] + 12] + out[tags[b"tech"]:tags[b"tech"] + 12]
    from PIL import ImageCms

    lab = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes())
    a2b = {s: o for s, o, _ in _tags(lab)}[b"A2B0"]
    lab[a2b + 11] = ord("X")                                    # mft2 padding byte
    out = icc.clean(bytes(lab))
    assert out is not None and out[a2b + 11] == 0 and icc.clean(out) == out


# ------------------------------------------------------------------ the CLI: anonymize and audit

def _chad_id() -> bytes:
    """A profile clean in every other way whose 'chad' holds the patient ID's digits as a number."""
    return icc.clean(_with_chad(_chad([ID_NUMBER, 0, 0, 0, 65536, 0, 0, 0, 65536])))


def _overlap() -> bytes:
    """crayons.icc with the hospital's name (UTF-16) written into its red curve and 'desc'
    pointing at it: text inside a kept tag's range."""
    prof = bytearray(_crayons())
    tags = _tags(prof)
    r_off = next(o for s, o, _ in tags if s == b"rTRC")
    text = HOSPITAL.encode("utf-16-be")
    prof[r_off + 100:r_off + 100 + len(text)] = text
    i = next(i for i, (s, _o, _z) in enumerate(tags) if s == b"desc")
    struct.pack_into(">4sII", prof, 132 + 12 * i, b"desc", r_off + 100, len(text))
    return bytes(prof)


ATTACKS = {
    "overlap": _overlap,
    "ui08": lambda: _rebuild(_srgb(), [ARRAYS["ui08 private"]]),
    "ui16": lambda: _rebuild(_srgb(), [ARRAYS["ui16 utf-16"]]),
    "signatures": _private_signatures,
    "header": _header_text,
    "chad_id": _chad_id,
}
TEXTS = [HOSPITAL, "BACH", "BENH", "VIEN", "HUON"]


def _on_clean(extra=(), header=None) -> bytes:
    """The attack on littleCMS's sRGB as the anonymizer writes it (text tags empty), so that the
    attack is all an audit could find in it."""
    return _rebuild(icc.clean(_srgb()), list(extra), header)


PLANTED = {
    "overlap": _overlap,
    "ui08": lambda: _on_clean([ARRAYS["ui08 private"]]),
    "ui16": lambda: _on_clean([ARRAYS["ui16 utf-16"]]),
    "signatures": lambda: _on_clean([(n, b"mluc" + bytes(4) + struct.pack(">II", 0, 12))
                                     for n in (b"BENH", b" VIE", b"N BA", b"CH M", b"AI  ")]),
    "header": lambda: _on_clean(header={4: b"BACH", 40: b"MAI ", 48: b"BENH", 52: b"VIEN", 80: b"HUON",
                                        24: struct.pack(">6H", 1985, 3, 12, 9, 30, 0)}),
    "chad_id": _chad_id,
}


def _file(path: Path, prof: bytes, *, optical: bool, tail: int) -> None:
    ds = real("CT_small.dcm")
    ds.PatientName, ds.PatientID = NAME, PID
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.543.13.{tail}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if optical:                      # where a slide microscopy image keeps its profile
        item = Dataset()
        item.OpticalPathIdentifier = "1"
        item.ICCProfile = prof
        ds.OpticalPathSequence = Sequence([item])
    else:
        ds.ICCProfile = prof
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)


def _profiles_in(path: Path) -> list[bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
    found = [bytes(ds.ICCProfile)] if "ICCProfile" in ds else []
    for item in ds.get("OpticalPathSequence", []):
        if "ICCProfile" in item:
            found.append(bytes(item.ICCProfile))
    return found


def _id_in(prof: bytes) -> bool:
    return struct.pack(">i", ID_NUMBER) in prof


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    base = tmp_path_factory.mktemp("iccnum")
    src = base / "export"
    for i, (label, make) in enumerate(ATTACKS.items()):
        prof = make()
        assert prof is not None and (_has(prof, HOSPITAL) or _id_in(prof) or b"BENH" in prof), label
        _file(src / f"{label}.dcm", prof, optical=False, tail=2 * i + 1)
        _file(src / f"{label}_optical.dcm", prof, optical=True, tail=2 * i + 2)
    return base, src, key_file_in(base)


def _anonymized(export, mode: str) -> Path:
    """The export through `vindr anonymize --burned-in MODE` (once a module)."""
    base, src, key = export
    out = base / f"anon_{mode}"
    if not out.exists():
        run_cli("anonymize", src, out, "--key", key, "-j", "2", "--burned-in", mode)
    return out


@pytest.mark.parametrize("mode", ["off", "redact", "quarantine"])
def test_anonymize_writes_no_planted_profile_text_or_id(export, mode):
    base = export[0]
    out = _anonymized(export, mode)
    links = {r["input_path"]: r for r in pq.read_table(base / f"anon_{mode}.linkage.parquet").to_pylist()}
    assert len(links) == 2 * len(ATTACKS) and all(r["status"] == "ok" for r in links.values())
    leaks = []
    for name, row in sorted(links.items()):
        for prof in _profiles_in(out / row["output"]):
            leaks += [f"{name}: {t}" for t in TEXTS if _has(prof, t)] + [f"{name}: id"] * _id_in(prof)
            assert icc.clean(prof) == prof
            assert not name.startswith("overlap"), "a profile with overlapping tag data is removed"
    for p in out.rglob("*"):
        if p.is_file():
            leaks += [f"{p.name}: {t}" for t in (HOSPITAL, "BENH VIEN") if _has(p.read_bytes(), t)]
    assert leaks == [], mode


@pytest.mark.parametrize("label", sorted(ATTACKS))
def test_audit_finds_each_planted_profile(export, label, tmp_path):
    """An OUTPUT audited clean, then one output given the attack profile (top level and in the
    optical path item): audit reports it (the profile would be rewritten or refused, or it holds
    the patient's ID as a number)."""
    from helpers import audit_after_planting

    base = export[0]
    out = _anonymized(export, "off")
    links = {Path(r["input_path"]).name: r for r in pq.read_table(base / "anon_off.linkage.parquet").to_pylist()}
    prof = PLANTED[label]()

    def plant(ds):
        ds.ICCProfile = prof
        item = Dataset()
        item.ICCProfile = prof
        ds.OpticalPathSequence = Sequence([item])

    kind = "phi" if label == "chad_id" else "binary"
    report = audit_after_planting(out, links, f"{label}.dcm", plant, tmp_path, kind=kind,
                                  linkage=base / "anon_off.linkage.parquet")
    assert report.counts().get(kind, 0) >= 2, (label, report.counts())
    shown = repr(report.findings)
    assert not any(t in shown for t in TEXTS) and str(ID_NUMBER) not in shown


def test_every_real_profile_transforms_colours_identically_after_cleaning():
    """littleCMS, the profile's colour space to Lab, before and after cleaning: every real profile
    here (RGB, grey, CMYK and Lab ones; test_icc checks the RGB ones only)."""
    from PIL import Image, ImageCms

    from test_icc import _real_profiles

    rng = np.random.default_rng(17)
    modes = {b"RGB ": ("RGB", 3), b"GRAY": ("L", 1), b"CMYK": ("CMYK", 4), b"Lab ": ("LAB", 3)}
    checked = set()
    for name, prof in _real_profiles().items():
        mode, bands = modes[prof[16:20]]
        pixels = rng.integers(0, 256, (16, 16, bands) if bands > 1 else (16, 16), dtype=np.uint8)
        img = Image.fromarray(pixels, mode) if mode in ("CMYK", "LAB") else Image.fromarray(pixels)
        out = icc.clean(prof)
        assert out is not None, name
        a, b = (np.asarray(ImageCms.applyTransform(img, ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(io.BytesIO(p)), ImageCms.createProfile("LAB"), mode, "LAB"))) for p in (prof, out))
        assert np.array_equal(a, b), name
        checked.add(mode)
    assert checked == {"RGB", "L", "CMYK", "LAB"}


# ------------------------------------------------------------------ R: mAB / mBA and mft parsing

def _lut_tag(edit=None) -> tuple[bytes, int]:
    """test_icc's full 3 -> 3 'mAB ' (B curves para, matrix, M curves, 2x2x2 CLUT, A curves
    para) in a profile, after ``edit(tag)``; and the tag's offset."""
    from test_icc import _lut_ab, _profile

    tag = bytearray(_lut_ab(b"mAB ")[0])
    if edit:
        edit(tag)
    prof, where = _profile([(b"A2B0", bytes(tag))])
    return prof, where[0]


def test_text_in_the_reserved_bytes_of_an_mab_curve_is_zeroed():
    """A 'para' curve inside an 'mAB ' kept its 2 reserved bytes (10-11)."""
    def edit(tag):
        b = struct.unpack_from(">I", tag, 12)[0]
        tag[b + 10:b + 12] = b"NG"
        tag[b + 4:b + 8] = b"UYEN"
    prof, at = _lut_tag(edit)
    out = icc.clean(prof)
    assert out is not None
    b = struct.unpack_from(">I", prof, at + 12)[0]
    new = dict(icc.tags(out))[b"A2B0"]                  # written again (icc2): found by its table entry
    nb = struct.unpack_from(">I", new, 12)[0]
    assert new[nb:nb + 4] == b"para"
    assert new[nb + 4:nb + 8] == bytes(4) and new[nb + 10:nb + 12] == bytes(2)
    assert new[nb + 8:nb + 10] == prof[at + b + 8:at + b + 10]                  # the function type stays
    assert b"NG" not in out and b"UYEN" not in out and icc.clean(out) == out


@pytest.mark.parametrize("label,edit", [
    # A curves pointing into the CLUT's table: two sub-elements on the same bytes
    ("a curves in the clut", lambda t: t.__setitem__(slice(28, 32), struct.pack(">I", struct.unpack_from(">I", t, 24)[0] + 20))),
    # grid points 255 x 255 x 255: a table of 195 MB in a tag of 300 bytes
    ("grid overflow", lambda t: t.__setitem__(slice(struct.unpack_from(">I", t, 24)[0],
                                                    struct.unpack_from(">I", t, 24)[0] + 3), bytes([255, 255, 255]))),
    # a matrix offset past the tag's end
    ("matrix past the tag", lambda t: t.__setitem__(slice(16, 20), struct.pack(">I", 0xFFFFFFF0))),
    # parametric curve parameters that read as text
    ("para as text", lambda t: t.__setitem__(slice(struct.unpack_from(">I", t, 12)[0] + 12,
                                                   struct.unpack_from(">I", t, 12)[0] + 16), b"BACH")),
    # the matrix as text
    ("matrix as text", lambda t: t.__setitem__(slice(struct.unpack_from(">I", t, 16)[0],
                                                     struct.unpack_from(">I", t, 16)[0] + 12), b"NGUYEN VAN A")),
])
def test_a_hostile_mab_layout_is_refused(label, edit):
    assert icc.clean(_lut_tag()[0]) is not None
    assert icc.clean(_lut_tag(edit)[0]) is None, label


@pytest.mark.parametrize("label,at,value", [("no inputs", 8, 0), ("16 outputs", 9, 16), ("grid overflow", 10, 255)])
def test_a_hostile_mft2_layout_is_refused(label, at, value):
    """littleCMS's LAB profile: its 'mft2' A2B0 with a channel count or grid size edited."""
    from PIL import ImageCms

    prof = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes())
    a2b = {s: o for s, o, _ in _tags(prof)}[b"A2B0"]
    assert prof[a2b:a2b + 4] == b"mft2" and icc.clean(bytes(prof)) is not None
    prof[a2b + at] = value
    assert icc.clean(bytes(prof)) is None, label
