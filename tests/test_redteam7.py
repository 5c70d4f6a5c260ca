"""Red team 7: identifying values in what the policy keeps because it is "only numbers" or
"only a colour profile" — attacked with real files (pydicom's CT_small, a real ICC profile made
by littleCMS through Pillow), run through ``vindr anonymize`` (the CLI, default profile and
``--burned-in redact``), the OUTPUT and what was printed searched for every planted value as
written, folded, hex, base64, URL-encoded, UTF-16 (both byte orders) and UTF-32.

Found and fixed here:
1. A number array the policy keeps (VR US/SS/UL/SL/FL/FD/AT: numbers were never judged) holding
   the patient's name or ID one character per number: LUTData as US is the name in UTF-16,
   DimensionIndexValues (UL) the ID in UTF-32. A kept binary value (LUTData as OW, an ICC
   profile) holding it as UTF-16 bytes was read only as Latin-1 and UTF-8. The file's person
   values (deid.engine.person_values) are now also searched in numbers (as digits, as one
   character each, as their bytes) and in bytes read as UTF-16, anywhere inside the value, not
   only as a whole token (deid.engine._as_text, deid.terms.TermSet.found_inside).
2. An ICC profile (ICCProfile, kept by the basic profile for colour images) whose description
   and copyright tags name the hospital and a doctor (UTF-16 'mluc', v4) was kept as it was:
   only the text of people of the same file could be caught, never the hospital's name. The
   profile is now written with its numbers only (deid/icc.py, [icc] of
   schemas/deid/safe_attributes.toml): text tags, unused bytes, the reserved header bytes and
   the profile ID are zeros; the profile still loads and transforms colour the same. `vindr
   audit` reports a profile with text in an output (kind ``binary``).

Held (tests below keep them so): a linear LUT of a patient whose ID is a run of consecutive
digits ("12345", also characters 0x30-0x39 of the LUT) is kept byte for byte; code items whose
meaning was a name are written with the code's own meaning; what `vindr anonymize` printed.
"""
from __future__ import annotations

import base64
import io
import shutil
import struct
import unicodedata
import urllib.parse
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import key_file_in, run_cli
from test_safe_default import real

NAME, PID, BIRTH = "NGUYỄN^THỊ^HƯƠNG", "BN7734561", "19850312"
HOSPITAL, DOCTOR = "BV BACH MAI 3", "Dr TRAN VAN KHOA 0912345"   # same lengths as the profile's own text
PLANTED = ["NGUYEN THI HUONG", "NGUYỄN THỊ HƯƠNG", "HUONG", "NGUYEN", PID, "7734561", BIRTH,
           HOSPITAL, "BACH MAI", "TRAN VAN KHOA", "0912345"]


def _fold(s: str) -> str:
    s = unicodedata.normalize("NFKD", s.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in s if not unicodedata.combining(c))


def _forms(values) -> set[bytes]:
    out = set()
    for v in values:
        for f in {v, _fold(v), v.replace(" ", ""), _fold(v).replace(" ", "")}:
            for g in (f.upper(), f.lower()):
                out |= {g.encode(), g.encode("utf-16-le"), g.encode("utf-16-be"), g.encode("utf-32-le"),
                        g.encode().hex().encode(), urllib.parse.quote(g).encode()}
        out.add(base64.b64encode(v.encode()).rstrip(b"=")[:-2])
    return {x for x in out if len(x) >= 5}


def _leaks(root: Path, values, text: str = "") -> list[str]:
    forms = _forms(values)
    hits = []
    for p in sorted(root.rglob("*")):
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        name = str(p.relative_to(root)).encode()
        hits += [f"{p.relative_to(root)}: {f!r}" for f in forms if f in data or f in name]
    hits += [f"printed: {f!r}" for f in forms if f in text.encode()]
    return hits


def _icc(desc: str | None = None, cprt: str | None = None) -> bytes:
    """littleCMS's own sRGB profile (v4: text as UTF-16 'mluc'), its description and copyright
    replaced by text of the same length."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    for old, new in (("sRGB built-in", desc), ("No copyright, use freely", cprt)):
        if new is not None:
            o, n = old.encode("utf-16-be"), new.encode("utf-16-be")
            assert len(o) == len(n)
            i = icc.index(o)
            icc[i:i + len(o)] = n
    return bytes(icc)


def _lut(data_elem: DataElement) -> Sequence:
    item = Dataset()
    item.LUTDescriptor = [16, 0, 16]
    item.add(data_elem)
    return Sequence([item])


def _codes(ds: Dataset) -> None:
    """The name written as a code's meaning (a code that exists, DCM 121071 "Finding")."""
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = "121071", "DCM", "NGUYEN THI HUONG"
    ds.AnatomicRegionSequence = Sequence([c])


def _frame_index(ds: Dataset) -> None:
    fc = Dataset()
    fc.DimensionIndexValues = [ord(c) for c in PID]                  # UTF-32 in the file
    item = Dataset()
    item.FrameContentSequence = Sequence([fc])
    ds.PerFrameFunctionalGroupsSequence = Sequence([item])


ATTACKS = {
    "lut_us": lambda ds: setattr(ds, "VOILUTSequence", _lut(DataElement(0x00283006, "US", [ord(c) for c in "NGUYEN THI HUONG"]))),
    "lut_ow": lambda ds: setattr(ds, "VOILUTSequence", _lut(DataElement(0x00283006, "OW", f" {PID} {BIRTH} ".encode("utf-16-le")))),
    "frame_index": _frame_index,
    "icc_person": lambda ds: setattr(ds, "ICCProfile", _icc("HUONG 7734561", "NGUYEN THI HUONG 7734561")),
    "icc_place": lambda ds: setattr(ds, "ICCProfile", _icc(HOSPITAL, DOCTOR)),
    "code_meaning": _codes,
}


def _file(path: Path, attack, *, name=NAME, pid=PID, uid_tail: int) -> None:
    ds = real("CT_small.dcm")
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, pid, BIRTH
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstitutionName = HOSPITAL
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.543.77.{uid_tail}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    attack(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)


RAMP = np.arange(4096, dtype="<u2")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every attack as its own file (one patient), plus a linear LUT of a patient whose ID is
    "0012345", anonymized once by the CLI."""
    base = tmp_path_factory.mktemp("redteam7")
    key = key_file_in(base)
    src = base / "export"
    for i, (label, attack) in enumerate(ATTACKS.items()):
        _file(src / f"{label}.dcm", attack, uid_tail=i + 1)
    _file(src / "ramp.dcm", lambda ds: setattr(ds, "VOILUTSequence", _lut(DataElement(0x00283006, "US", RAMP.tolist()))),
          name="ABCD^EFGH", pid="0012345", uid_tail=99)
    out = base / "anon"
    p = run_cli("anonymize", src, out, "--key", key, "-j", "1")
    links = {r["input_path"]: r for r in pq.read_table(base / "anon.linkage.parquet").to_pylist()}
    assert all(r["status"] == "ok" for r in links.values()), [(k, r["status"]) for k, r in links.items()]
    return {"base": base, "out": out, "printed": p.stdout + p.stderr, "links": links, "key": key}


def _output(world, label: str) -> Path:
    return world["out"] / world["links"][f"{label}.dcm"]["output"]


def _read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


# ------------------------------------------------------------------ 1. numbers and UTF-16 bytes

@pytest.mark.parametrize("label", ["lut_us", "lut_ow", "frame_index", "icc_person"])
def test_a_name_or_id_as_numbers_or_utf16_bytes_is_not_in_the_output(world, label):
    """Leaked: LUTData as US (the name in UTF-16), as OW (the ID and birth date in UTF-16
    bytes), DimensionIndexValues as UL (the ID in UTF-32), an ICC profile's text (UTF-16)."""
    assert _leaks(_output(world, label).parent, PLANTED) == []


def test_the_whole_output_and_what_was_printed_hold_no_planted_value(world):
    assert _leaks(world["out"], PLANTED, world["printed"]) == []


def test_a_linear_lut_is_kept_whatever_the_patient_s_id(world):
    """Held: the search inside numbers skips runs of consecutive characters, which every ramp
    holds ("12345" is characters 0x31-0x35 of a linear LUT): no false alarm removes the LUT."""
    lut = _read(_output(world, "ramp")).VOILUTSequence[0].LUTData
    assert list(lut) == RAMP.tolist()


def test_a_code_meaning_that_is_a_name_is_written_as_the_code_s_own(world):
    item = _read(_output(world, "code_meaning")).AnatomicRegionSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == ("121071", "DCM", "Finding")


# ------------------------------------------------------------------ 2. ICC profiles: numbers only

def test_an_icc_profile_keeps_its_numbers_and_loses_its_text(world):
    """Leaked: the hospital's name and a doctor's name and phone in the description and
    copyright of a kept ICC profile. Now those tags are empty, and the profile still loads and
    transforms colour exactly as the original."""
    from PIL import Image, ImageCms

    from vindr_cli.deid import icc

    kept = bytes(_read(_output(world, "icc_place")).ICCProfile)
    original = _icc(HOSPITAL, DOCTOR)
    assert len(kept) == len(original) and kept != original
    assert icc.clean(kept) == kept                         # cleaning again changes nothing
    profile = ImageCms.ImageCmsProfile(io.BytesIO(kept))
    assert ImageCms.getProfileDescription(profile).strip() == ""
    img = Image.fromarray(np.random.default_rng(7).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    lab = ImageCms.createProfile("LAB")

    def through(p):
        return np.asarray(ImageCms.applyTransform(img, ImageCms.buildTransform(p, lab, "RGB", "LAB")))

    assert np.array_equal(through(profile), through(ImageCms.ImageCmsProfile(io.BytesIO(original))))


def test_a_profile_that_is_no_profile_is_refused():
    from vindr_cli.deid import icc

    good = _icc()
    assert icc.clean(good) is not None
    broken = bytearray(good)
    struct.pack_into(">I", broken, 128 + 4 + 4, len(good) + 100)       # first tag's offset past the end
    assert icc.clean(bytes(broken)) is None
    assert icc.clean(b"\0" * 36 + b"acsp" + b"\0" * 90) is None        # no tag table


def test_audit_reports_a_profile_with_text_planted_in_an_output(world, tmp_path):
    from vindr_cli.deid.audit import audit

    out = tmp_path / "anon"
    shutil.copytree(world["out"], out)
    assert audit(out).counts().get("binary", 0) == 0
    target = out / world["links"]["icc_place.dcm"]["output"]
    ds = _read(target)
    ds.ICCProfile = _icc(HOSPITAL, DOCTOR)
    ds.save_as(target)
    report = audit(out)
    assert report.counts().get("binary") == 1
    assert _leaks(tmp_path / "none", PLANTED, str(report.counts()) + repr([f for f in report.findings])) == []
