"""Malformed structure never passes (issue #9): an element whose VR or length was damaged
swallows the elements after it, a header cut short before its pixel data, a data set
without SOP identity, zips inside zips. Every case is built from a real pydicom test file
(``get_testdata_file(name, download=False)``: shipped with pydicom, never downloaded) with
identifying values planted after the damaged element: the file fails with a fixed reason,
nothing is written, and no planted value reaches a table, stdout or stderr."""
from __future__ import annotations

import io
import struct
import warnings
import zipfile
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from helpers import run_cli, split_file
from vindr_cli.dicomio import structure
from vindr_cli.dicomio.header import MISSING_SOP_CLASS, BadInput, read_header
from vindr_cli.runner import discover as disc
from vindr_cli.tables import read_rows

SEEDS = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "ExplVR_BigEnd.dcm",
         "MR_small_implicit.dcm", "MR_small_bigendian.dcm")
PLANTED = {"PatientName": "Zqxplanted^Secretname", "PatientID": "PLANTEDID7731",
           "PatientTelephoneNumbers": "+84-555-0199-77", "ReferringPhysicianName": "Drplanted^Referrer",
           "StudyID": "PLSTUDY9"}
NEEDLES = [v.encode() for v in PLANTED.values()] + [b"Zqxplanted", b"Secretname", b"Drplanted"]
STUDY_DATE, STUDY_UID, ROWS, PIXELS = 0x00080020, 0x0020000D, 0x00280010, 0x7FE00010


def planted(name: str, n: int) -> bytes:
    """The real file ``name`` with identifying values planted (all after StudyDate, the
    element the mutations damage) and its own SOP Instance UID ``n``, in its own transfer syntax."""
    ds = pydicom.dcmread(get_testdata_file(name, download=False))
    ds.StudyDate = "20200101"
    for k, v in PLANTED.items():
        setattr(ds, k, v)
    uid = f"1.2.826.0.1.3680043.8.498.77.{n}"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def locate(data: bytes, tag: int) -> tuple[int, int, int]:
    """(start, length field position, length field size) of the top-level element ``tag``."""
    ts = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID
    little, explicit = ts.is_little_endian, not ts.is_implicit_VR
    (glen,) = struct.unpack("<L", data[140:144])
    start = data.index(struct.pack("<HH" if little else ">HH", tag >> 16, tag & 0xFFFF), 144 + glen)
    if not explicit:
        return start, start + 4, 4
    if data[start + 4:start + 6] in (b"OB", b"OW", b"SQ", b"SV", b"UN", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV", b"UV"):
        return start, start + 8, 4
    return start, start + 6, 2


def explicit_vr(data: bytes) -> bool:
    return not pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID.is_implicit_VR


def with_vr(data: bytes, vr: bytes) -> bytes:
    start, _, _ = locate(data, STUDY_DATE)
    return data[:start + 4] + vr + data[start + 6:]


def plus_length(data: bytes, tag: int, delta: int) -> bytes:
    _, at, size = locate(data, tag)
    little = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID.is_little_endian
    fmt = ("<" if little else ">") + ("H" if size == 2 else "L")
    (n,) = struct.unpack(fmt, data[at:at + size])
    return data[:at] + struct.pack(fmt, (n + delta) % (1 << (8 * size))) + data[at + size:]


def mutants() -> dict[str, tuple[bytes, str]]:
    """{file name: (bytes, the reason it must fail with)}."""
    out, n = {}, 0
    for name in SEEDS:
        stem = name.removesuffix(".dcm")
        for kind in ("vr-nul", "vr-2020", "length+1000", "cut-mid-header", "cut-before-pixels"):
            n += 1
            data = planted(name, n)
            if kind.startswith("vr") and not explicit_vr(data):
                continue                                  # implicit VR: no VR bytes to damage
            if kind == "vr-nul":
                out[f"{stem}_{kind}.dcm"] = (with_vr(data, b"\x00\x00"), structure.REASON_VR)
            elif kind == "vr-2020":
                out[f"{stem}_{kind}.dcm"] = (with_vr(data, b"  "), structure.REASON_VR)
            elif kind == "length+1000":
                out[f"{stem}_{kind}.dcm"] = (plus_length(data, STUDY_DATE, 1000), structure.REASON_TEXT)
            elif kind == "cut-mid-header":
                start, _, _ = locate(data, STUDY_UID)
                out[f"{stem}_{kind}.dcm"] = (data[:start + 11], structure.REASON_TRUNCATED)
            elif b"\x28\x00\x10\x00" in data or b"\x00\x28\x00\x10" in data:
                try:
                    start, _, _ = locate(data, PIXELS)
                except ValueError:
                    continue
                out[f"{stem}_{kind}.dcm"] = (data[:start], structure.REASON_NO_PIXELS)
    return out


def _reason(data: bytes) -> str | None:
    try:
        read_header(io.BytesIO(data), len(data))
    except BadInput as exc:
        return exc.reason
    return None


def test_every_seed_is_read_whole_before_it_is_damaged():
    for n, name in enumerate(SEEDS):
        data = planted(name, n)
        assert _reason(data) is None, name
        assert all(needle in data for needle in NEEDLES), name      # the planted values are there to leak


def test_damaged_real_files_fail_with_a_fixed_reason_and_nothing_is_written(tmp_path, key_file):
    cases = mutants()
    assert len(cases) >= 25
    src = tmp_path / "in"
    src.mkdir()
    for rel, (data, _) in cases.items():
        (src / rel).write_bytes(data)
    out = tmp_path / "anon"
    p = run_cli("anonymize", src, out, "--key", key_file, "-j", "2", check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    manifest = read_rows(out / "manifest.parquet")
    linkage = {r["input_key"]: r["input_path"] for r in read_rows(tmp_path / "anon.linkage.parquet")}
    assert len(manifest) == len(cases)
    got = {linkage[r["input_key"]]: (r["status"], r["reason"], r["output"]) for r in manifest}
    assert got == {rel: ("failed", reason, None) for rel, (_, reason) in cases.items()}
    assert not [q for q in out.rglob("*") if q.is_file() and q.suffix in (".dcm", ".dicom", ".tmp")]
    text = (p.stdout + p.stderr + repr(manifest)).encode()
    assert not [n for n in NEEDLES if n in text]


def test_the_same_reasons_without_pydicom_first():
    """check_structure alone (the raw walk) refuses each mutant, for the reason expected."""
    for rel, (data, reason) in mutants().items():
        if reason == structure.REASON_NO_PIXELS:
            continue                    # found at the end of the walk: same function, covered above
        with pytest.raises(structure.Malformed) as err:
            structure.check_structure(io.BytesIO(data), len(data))
        assert str(err.value) == reason, rel


@pytest.fixture
def anon_ctx(tmp_path, key_file):
    from vindr_cli.deid.keyfile import read_key
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.deid.substitutes import Substitutes
    from vindr_cli.deid.task import AnonConfig, setup

    fp = Substitutes(read_key(key_file)).fingerprint()
    out = tmp_path / "out"
    out.mkdir()
    return setup(AnonConfig(str(out), str(key_file), fp, load_profile()))


def _anon_bytes(ctx, tmp_path: Path, data: bytes, name: str = "x.dcm") -> tuple[dict, bytes | None]:
    from vindr_cli.deid.task import anonymize_one
    from vindr_cli.runner.sources import Source

    path = tmp_path / name
    path.write_bytes(data)
    result = anonymize_one(ctx, Source(str(path), name, len(data)))
    tmp = result["tmp"]
    if tmp is None:
        return result["manifest"], None
    header, _ = split_file(Path(tmp))
    Path(tmp).unlink()
    return result["manifest"], header


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm")),
       which=st.integers(0, 1000), kind=st.sampled_from(("vr", "length", "length-random")),
       vr=st.binary(min_size=2, max_size=2), delta=st.integers(1, 5000))
def test_property_a_damaged_vr_or_length_never_lets_planted_values_out(anon_ctx, tmp_path, seed, which, kind, vr, delta):
    """Damage one element before the planted values (its VR bytes, or its length by +delta
    or to a random value): either the file fails, or no planted value is in the output
    header. Hypothesis shrinks a counterexample to the element and bytes that leak."""
    data = planted(seed, 1)
    ts = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    before = [e.tag for e in ds if e.tag < 0x00100010 and e.VR != "SQ"]   # top level, before PatientName
    tag = before[which % len(before)]
    if kind == "vr" and not ts.is_implicit_VR:
        start, _, _ = locate(data, tag)
        bad = data[:start + 4] + vr + data[start + 6:]
    else:
        _, at, size = locate(data, tag)
        fmt = ("<" if ts.is_little_endian else ">") + ("H" if size == 2 else "L")
        (n,) = struct.unpack(fmt, data[at:at + size])
        new = (n + delta) if kind != "length-random" else int.from_bytes(vr * 2, "little")
        bad = data[:at] + struct.pack(fmt, new % (1 << (8 * size))) + data[at + size:]
    row, header = _anon_bytes(anon_ctx, tmp_path, bad)
    if row["status"] == "ok":
        assert header is not None
        assert not [nd for nd in NEEDLES if nd in header], (seed, hex(tag), kind)
    else:
        assert row["status"] in ("failed", "quarantined") and row["reason"]
        assert not [nd for nd in NEEDLES if nd in row["reason"].encode()]


def test_a_data_set_without_sop_class_uid_fails_with_a_fixed_reason(anon_ctx, tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    del ds.SOPClassUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    row, header = _anon_bytes(anon_ctx, tmp_path, buf.getvalue())
    assert (row["status"], row["reason"], header) == ("failed", MISSING_SOP_CLASS, None)


def test_a_value_pydicom_cannot_convert_is_refused():
    """check_values decodes every standard element (any depth): one pydicom cannot convert
    (here Rows re-stored as a 3-byte SQ) is refused; the real file as read is not."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False), stop_before_pixels=True)
        structure.check_values(ds)
        bad = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False), stop_before_pixels=True)
    bad._dict[Tag(ROWS)] = RawDataElement(Tag(ROWS), "SQ", 3, b"\x01\x02\x03", 0, False, True)
    with pytest.raises(structure.Malformed) as err:
        structure.check_values(bad)
    assert str(err.value) == structure.REASON_UNREADABLE


# --- every file pydicom ships: only the really malformed ones are refused -----------------------

ENCODING = "the transfer syntax in the file meta does not match how the data set is encoded"
# pydicom's own deliberately damaged (or incomplete) test files, each checked by hand with dcmdump:
KNOWN_MALFORMED = {
    "test_files/SC_rgb_jpeg.dcm": ENCODING,                      # dcmdump: non-standard VR '  ', then garbage
    "test_files/rtplan_truncated.dcm": structure.REASON_TRUNCATED,   # dcmdump: premature end of stream
    "test_files/dicomdirtests/DICOMDIR-nooffset": structure.REASON_TRUNCATED,  # elements removed, item length not
    "palettes/winter.dcm": structure.REASON_ORDER,               # (0008,0018) twice (dcmdump: found twice)
    "charset_files/chrJapMulti.dcm": structure.REASON_NO_PIXELS,     # MR images whose pixel data was stripped
    "charset_files/chrJapMultiExplicitIR6.dcm": structure.REASON_NO_PIXELS,
    "charset_files/chrKoreanMulti.dcm": structure.REASON_NO_PIXELS,
}


def test_every_local_pydicom_file_passes_unless_really_malformed():
    root = Path(pydicom.data.__file__).parent
    refused, read = {}, 0
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        with open(p, "rb") as f:
            f.seek(128)
            if f.read(4) != b"DICM":
                continue
            f.seek(0)
            try:
                read_header(f, p.stat().st_size)
                read += 1
            except BadInput as exc:
                if exc.reason.startswith(("damaged header", ENCODING)):
                    refused[p.relative_to(root).as_posix()] = exc.reason
    assert refused == KNOWN_MALFORMED
    assert read >= 150


def test_swallowed_elements_in_a_binary_value_are_found():
    """A binary value (OB) whose length grew by exactly the size of the next elements ends in a
    run of well-formed element headers: the scan finds it; real binary values do not trip it."""
    elems = b"\x10\x00\x10\x00PN\x0a\x00Doe^John  " + b"\x10\x00\x20\x00LO\x06\x00ID0042"
    assert structure.holds_elements(b"\x01\x02\x03\x04" * 4 + elems, explicit=True, little=True)
    assert not structure.holds_elements(bytes(range(256)) * 4, explicit=True, little=True)
    assert not structure.holds_elements(b"\x00" * 4096, explicit=True, little=True)


# --- zips in zips ------------------------------------------------------------------------------

def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def _nest(depth: int, leaf: list[tuple[str, bytes]]) -> bytes:
    """A zip ``depth`` archives deep: level k holds 'l{k}.zip' and a text file 'note{k}.txt'."""
    members = leaf
    for k in range(depth - 1, 0, -1):
        members = [(f"l{k}.zip", _zip(members)), (f"note{k}.txt", b"text")]
    return _zip(members)


def test_nested_zips_two_and_three_deep_are_read_five_deep_gets_a_row(tmp_path, key_file):
    ct = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    mr = Path(get_testdata_file("MR_small.dcm", download=False)).read_bytes()
    rt = Path(get_testdata_file("rtplan.dcm", download=False)).read_bytes()
    src = tmp_path / "in"
    src.mkdir()
    (src / "two.zip").write_bytes(_nest(2, [("a/ct.dcm", ct)]))
    (src / "three.zip").write_bytes(_nest(3, [("mr.dcm", mr)]))
    (src / "five.zip").write_bytes(_nest(5, [("rt.dcm", rt)]))
    (src / "broken.zip").write_bytes(_zip([("inner.zip", _zip([("x.dcm", ct)])[:-30])]))   # no end record
    out = tmp_path / "anon"
    p = run_cli("anonymize", src, out, "--key", key_file, "-j", "2", check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    linkage = {r["input_path"]: (r["status"], r["output"]) for r in read_rows(tmp_path / "anon.linkage.parquet")}
    manifest = {r["input_key"]: r for r in read_rows(out / "manifest.parquet")}
    assert linkage["two.zip!l1.zip!a/ct.dcm"][0] == "ok"
    assert linkage["three.zip!l1.zip!l2.zip!mr.dcm"][0] == "ok"
    for rel in ("two.zip!note1.txt", "three.zip!note1.txt", "three.zip!l1.zip!note2.txt"):
        assert linkage[rel][0] == "not-dicom"
    assert linkage["five.zip!l1.zip!l2.zip!l3.zip"][0] == "failed"
    assert "broken.zip!inner.zip" in linkage                   # a zip that is not whole: read as a file, a row
    assert not [r for r in linkage if r.startswith("five.zip!l1.zip!l2.zip!l3.zip!")]
    reasons = {r["reason"] for r in manifest.values() if r["status"] == "failed"}
    assert disc.ZIP_DEEP in reasons
    for rel in ("two.zip!l1.zip!a/ct.dcm", "three.zip!l1.zip!l2.zip!mr.dcm"):
        assert (out / linkage[rel][1]).is_file()
        pydicom.dcmread(out / linkage[rel][1])

    p = run_cli("info", src, "--json", check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert '"dicom": 2' in p.stdout and disc.ZIP_DEEP in p.stdout


def test_a_nested_zip_over_the_inflate_limit_or_unreadable_gets_a_row(tmp_path):
    ct = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    outer = tmp_path / "o.zip"
    outer.write_bytes(_zip([("big.zip", _zip([("x.dcm", ct)])), ("ok.dcm", ct)]))
    rows = {s.rel: s for s in disc._zip_members(outer, "o.zip", max_inflate=1000)}
    assert rows["o.zip!big.zip"].missing_reason == disc.ZIP_REASON
    assert rows["o.zip!ok.dcm"].missing_reason is None
    rows = {s.rel: s for s in disc._zip_members(outer, "o.zip")}
    assert rows["o.zip!big.zip!x.dcm"].inner == (0,)
    with rows["o.zip!big.zip!x.dcm"].open() as f:
        assert f.read() == ct
    inner = _zip([("x.dcm", ct)])
    damaged = inner.replace(b"PK\x01\x02", b"PK\x01\x03")      # end record intact, central directory not
    assert zipfile.is_zipfile(io.BytesIO(damaged))
    outer.write_bytes(_zip([("damaged.zip", damaged)]))
    rows = {s.rel: s for s in disc._zip_members(outer, "o.zip")}
    assert rows == {"o.zip!damaged.zip": rows["o.zip!damaged.zip"]}
    assert rows["o.zip!damaged.zip"].missing_reason == disc.ZIP_UNREADABLE


def test_a_deflated_data_set_is_walked_after_inflating_it(anon_ctx, tmp_path):
    """Deflated Explicit VR Little Endian: the damage sits inside the deflated stream."""
    import zlib

    data = planted("image_dfl.dcm", 3)
    (glen,) = struct.unpack("<L", data[140:144])
    start = 144 + glen
    body = zlib.decompress(data[start:], -zlib.MAX_WBITS)
    at = body.index(b"\x08\x00\x20\x00DA")                     # StudyDate, before the planted values
    assert _reason(data) is None
    for bad_body, reason in ((body[:at + 4] + b"\x00\x00" + body[at + 6:], structure.REASON_VR),
                             (body[:at + 6] + (8 + 1000).to_bytes(2, "little") + body[at + 8:], structure.REASON_TEXT)):
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        bad = data[:start] + c.compress(bad_body) + c.flush()
        assert _reason(bad) == reason
        row, header = _anon_bytes(anon_ctx, tmp_path, bad)
        assert (row["status"], row["reason"], header) == ("failed", reason, None)
