"""Property (issue 9, safe by default): an identifying string that the profile does not know
about never leaves, and `vindr audit` sees it when it is put back into an output.

Hypothesis draws a random identifying string (letters, with or without Vietnamese
diacritics), an attribute that Table E.1-1 does not list and vindr does not allowlist (a
standard keyword of a text or binary VR, or an unknown even-group tag of a random VR), a
depth of 0-3 sequence levels (sequences Table E.1-1 does not list either) and a transfer
syntax (implicit, explicit little endian, deflated, explicit big endian), and plants the
string there in a real file (pydicom's CT_small.dcm, or MR_small_bigendian.dcm for big
endian). After `vindr anonymize` (library call, one worker), no output byte outside the pixel
data value may hold it (accent-folded, case-insensitive, deflated data sets inflated first).
Then the same element is written into the output and `vindr audit` (given the linkage table)
must report a finding for that file, where it reported none before.
"""
from __future__ import annotations

import io
import json
import string
import tempfile
import tomllib
import unicodedata
import warnings
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.datadict import DicomDictionary, dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from rich.console import Console

from helpers import key_hex
from vindr_cli.deid.audit import audit
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile

REPO = Path(__file__).resolve().parent.parent
TEXT_VRS = ("LO", "SH", "LT", "ST", "UT", "UC", "PN", "UR", "AE")
BINARY_VRS = ("OB", "UN")
# Attributes that are obviously safe and kept by design, used when the curated allowlist
# (schemas/deid/safe_attributes.toml) is not there yet.
BUILTIN_SAFE = {"Manufacturer", "ManufacturerModelName", "SoftwareVersions", "SpecificCharacterSet",
                "DeidentificationMethod", "PatientIdentityRemoved", "LossyImageCompressionMethod",
                "ConversionType", "RescaleType", "LUTExplanation", "BodyPartExamined", "ImageType",
                "PhotometricInterpretation", "Modality", "PatientSex", "PatientAge"}
# groups that are not an attribute's to play with: command, file meta, directory, pixel data,
# items and delimiters, digital signatures and padding
SKIP_GROUPS = {0x0000, 0x0002, 0x0004, 0x7FE0, 0xFFFE, 0xFFFA, 0xFFFC}


def _listed() -> set[int]:
    rows = json.loads((REPO / "schemas" / "deid" / "ps3.15-table-e1-1.json").read_text())["rows"]
    out = set()
    for r in rows:
        t = r["tag"].lower()
        if len(t) == 8 and "x" not in t:
            out.add(int(t, 16))
    return out


def _allowlisted() -> set[str]:
    """Every dictionary keyword named anywhere in safe_attributes.toml (keys or values), or
    the built-in set when the file does not exist."""
    path = REPO / "schemas" / "deid" / "safe_attributes.toml"
    if not path.exists():
        return set(BUILTIN_SAFE)
    found = set(BUILTIN_SAFE)

    def visit(x):
        if isinstance(x, dict):
            for k, v in x.items():
                visit(k)
                visit(v)
        elif isinstance(x, list):
            for v in x:
                visit(v)
        elif isinstance(x, str) and tag_for_keyword(x) is not None:
            found.add(x)
    visit(tomllib.loads(path.read_text()))
    return found


LISTED = _listed()
SAFE = _allowlisted()
VINDR_KEEP = set(tomllib.loads((REPO / "schemas" / "deid" / "profiles" / "vindr.toml").read_text()).get("keep", []))
CANDIDATES = sorted(
    v[4] for t, v in DicomDictionary.items()
    if v[0] in TEXT_VRS + BINARY_VRS and v[4] and t not in LISTED and v[4] not in SAFE
    and (t >> 16) not in SKIP_GROUPS and v[3] == "")          # not retired: retired ones are tried via unknown tags
SEQUENCES = sorted(
    v[4] for t, v in DicomDictionary.items()
    if v[0] == "SQ" and v[4] and t not in LISTED and (t >> 16) not in SKIP_GROUPS and v[3] == "")
SYNTAXES = {"implicit": ImplicitVRLittleEndian, "explicit": ExplicitVRLittleEndian,
            "deflated": DeflatedExplicitVRLittleEndian, "big endian": None}
DIACRITIC = "ăâđêôơưáàảãạấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"


def fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


@st.composite
def secrets(draw, ascii_only: bool = False) -> str:
    letters = string.ascii_letters if ascii_only else string.ascii_letters + DIACRITIC + DIACRITIC.upper()
    word = st.text(alphabet=letters, min_size=4, max_size=7)
    parts = draw(st.lists(word, min_size=2, max_size=2).filter(lambda ps: len(set(fold("".join(ps)))) >= 6))
    return f"{parts[0]}Q{parts[1]}"          # >= 9 letters, >= 6 distinct: no accidental match


@st.composite
def plantings(draw):
    if draw(st.integers(0, 4)) == 0:                                      # an unknown public tag
        group = draw(st.integers(0x0009, 0x7FDF).map(lambda g: g & ~1).filter(lambda g: g not in SKIP_GROUPS))
        tag = (group << 16) | draw(st.integers(0x1000, 0xFFFF))
        if tag in DicomDictionary:
            tag = (0x0018 << 16) | 0xFFF0                                   # known to be unknown
        vr = draw(st.sampled_from(TEXT_VRS + BINARY_VRS))
        where = f"unknown ({tag >> 16:04X},{tag & 0xFFFF:04X})"
    else:
        keyword = draw(st.sampled_from(CANDIDATES))
        tag, vr, where = tag_for_keyword(keyword), dictionary_VR(keyword), keyword
    depth = draw(st.integers(0, 3))
    seqs = [draw(st.sampled_from(SEQUENCES)) for _ in range(depth)]
    syntax = draw(st.sampled_from(sorted(SYNTAXES)))
    secret = draw(secrets(ascii_only=vr in ("AE", "UR")))
    return {"tag": tag, "vr": vr, "where": where, "sequences": seqs, "syntax": syntax, "secret": secret}


def _value(vr: str, secret: str):
    if vr in BINARY_VRS:
        b = secret.encode("utf-8")
        return b + b" " * (len(b) % 2)
    if vr == "PN":
        return secret[:5] + "^" + secret[5:]
    if vr == "UR":
        return f"https://{secret.lower()}.example/x"
    if vr == "AE":
        return secret[:16]
    return secret


def _plant(ds: Dataset, case: dict) -> None:
    target = ds
    for kw in case["sequences"]:
        item = Dataset()
        setattr(target, kw, Sequence([item]))
        target = item
    target.add_new(case["tag"], case["vr"], _value(case["vr"], case["secret"]))


def _base(case: dict) -> Dataset:
    name = "MR_small_bigendian.dcm" if case["syntax"] == "big endian" else "CT_small.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file(name, download=False))
    if SYNTAXES[case["syntax"]] is not None:
        ds.file_meta.TransferSyntaxUID = SYNTAXES[case["syntax"]]
    ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def _save(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)


def _outside_pixels(path: Path) -> bytes:
    """Every byte of a DICOM file but its pixel data value; a deflated data set inflated."""
    data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
    if ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        start = data.find(b"DICM")
        body = start + 16 + int.from_bytes(data[start + 12:start + 16], "little")
        d = zlib.decompressobj(-15)
        data = data[:body] + d.decompress(data[body:]) + d.unused_data
    if "PixelData" in ds:
        pv = bytes(ds.PixelData)
        at = data.find(pv)
        if at >= 0:
            data = data[:at] + data[at + len(pv):]
    return data


def leaked(out: Path, secret: str) -> list[str]:
    """Output files (relative paths) holding the secret outside the pixel data, or in a path."""
    needle = fold(secret)
    hits = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if needle in fold(rel):
            hits.append(rel)
        if not p.is_file():
            continue
        data = _outside_pixels(p) if p.suffix in (".dcm", ".dicom") else p.read_bytes()
        if needle in fold(data.decode("utf-8", "ignore")) or needle in fold(data.decode("latin-1")):
            hits.append(rel)
    return hits


def run_case(case: dict, work: Path, key: Path) -> dict:
    """Anonymize a real file with the planting; plant it again into the output and audit."""
    src, out, link = work / "in", work / "out", work / "out.linkage.parquet"
    ds = _base(case)
    _plant(ds, case)
    _save(ds, src / "a.dcm")
    anonymize(src, out, key_path=key, profile=load_profile(), workers=1, console=Console(file=io.StringIO()))
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    result = {"status": rows[0]["status"], "leaks": leaked(out, case["secret"]), "audit_before": None,
              "audit_after": None}
    if rows[0]["status"] != "ok":
        return result
    rel = rows[0]["output"]
    result["audit_before"] = [f.kind for f in audit(out, linkage=link).findings if f.where == rel]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        o = pydicom.dcmread(out / rel)
    _plant(o, case)
    o.save_as(out / rel)
    result["audit_after"] = [f.kind for f in audit(out, linkage=link).findings if f.where == rel]
    return result


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    d.chmod(0o700)
    p = d / "vindr.key"
    p.write_text(key_hex("cd") + "\n")
    p.chmod(0o600)
    return p


# No shrink phase: each example is a full anonymize + two audits, and shrinking the several
# distinct failures today's main has took minutes; the examples are small as drawn.
@settings(max_examples=30, derandomize=True, phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
@given(case=plantings())
def test_unlisted_identifying_string_never_leaves_and_audit_sees_it(case, key):
    with tempfile.TemporaryDirectory() as tmp:
        r = run_case(case, Path(tmp), key)
    assert r["status"] == "ok", r["status"]          # removed, not a failed file
    assert r["leaks"] == [], f"{case['where']} {case['vr']} depth {len(case['sequences'])} {case['syntax']}"
    # more findings for this file once the element is back than before (today's audit can
    # already report this file for other reasons, e.g. a substitute matching a linkage term)
    assert len(r["audit_after"]) > len(r["audit_before"]), \
        f"audit missed {case['where']} {case['vr']} depth {len(case['sequences'])}"


def test_the_checker_sees_a_planted_string(tmp_path):
    """The instrument itself: a string planted in a file (deflated, 2 levels deep) is found,
    one outside it is not, and pixel data bytes are ignored."""
    case = {"tag": tag_for_keyword("DeviceID"), "vr": "LO", "where": "DeviceID",
            "sequences": ["ContributingEquipmentSequence", "AnatomicRegionSequence"], "syntax": "deflated",
            "secret": "Đặngthiq Bảoxyz"}
    ds = _base(case)
    _plant(ds, case)
    pix = bytearray(ds.PixelData)
    pix[:9] = b"Zyxwvutsq"
    ds.PixelData = bytes(pix)
    _save(ds, tmp_path / "t" / "a.dcm")
    assert (tmp_path / "t" / "a.dcm").read_bytes().find("Bảoxyz".encode()) == -1      # really deflated
    assert leaked(tmp_path / "t", "DANGTHIQ BAOXYZ") == ["a.dcm"]
    assert leaked(tmp_path / "t", "Zyxwvutsq") == []
    assert leaked(tmp_path / "t", "Nowhereq Tobefound") == []
