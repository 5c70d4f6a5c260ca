"""Red team 10: the patient's values where a hex dump, a code page or a listing of numbers shows
them. Each channel is a real file (pydicom's CT_small; the ECG waveform for the waveform labels)
with the patient PHAM^THI^KIEU, ID 40517263, born 1979-08-24, at BENH VIEN TAN PHU, referred by
VO^MINH^TRIET, run through the real CLI (`vindr anonymize` with the defaults, and with
``--profile vindr --burned-in off``); each output searched for the planted bytes, and `vindr audit
--linkage` run on clean outputs with them planted back.

Found and fixed here (deid/terms.py, deid/policy.py, deid/engine.py, deid/audit.py):
1. The ID or birth date as packed decimal (BCD: 40517263 as the bytes 40 51 72 63) in a kept LUT's
   bytes, and as an attribute tag value (AT: FrameIncrementPointer, DimensionIndexPointer,
   FunctionalGroupPointer (4051,7263) / (1979,0824)), whose hex shows the ID: kept, and not reported
   by the audit. An ID or date of 6 digits or more is now sought as packed decimal in every kept
   value's bytes, numbers' bytes in either order (``TermSet.found_packed``).
2. A Latin name spelled with Greek or Cyrillic look-alike letters in a one-byte code page (ISO 8859-7
   ΡΗΑΜ ΤΗΙ ΚΙΕU, ISO 8859-5, KOI8-R) in a LUT's bytes: kept (Latin-1 reads those bytes as other
   letters). Each byte is now also read as its Latin look-alike (``found_one_byte_lookalike``).
3. The ID or birth date split across two numbers: InstanceNumber 4051 + AcquisitionNumber 7263,
   WindowCenter 1979 + WindowWidth 824 (both profiles keep the window), and two adjacent entries of
   a LUT (4051, 7263). Both numbers now go (``policy.split_across``, ``TermSet.found_split``).
4. A person value stored in UTF-8 (or GB18030) in a file declaring ISO_IR 100 or nothing, or in
   Latin-1 in a file declaring UTF-8, with the name written properly in a kept LUT: the terms were
   the misread value's (PHáº M), so the LUT was kept (``engine._misdecoded``).
5. The ID in hexadecimal as a SoftwareVersions ("26A3E8F" is 40517263): kept by the basic profile
   (``policy.found_in_digits`` reads hex words of 5-16 digits as numbers).

Found, not fixed (strict xfail below): the name as character codes in native pixel data (each
letter one 16-bit pixel): pixels are copied byte for byte (``off``) or read as an image by the
text finder (``redact``); searching pixel values for letters would match any background whose
values lie in 65-90.

Held (kept so by the tests below): waveform channel and multiplex group labels and an annotation's
text; a kanji name behind ISO 2022 escapes, a GB18030 name and a UTF-8 name mislabelled ISO_IR 100
in a window preset name; an encapsulated document in a CT; a name in an Osage (beyond the BMP)
script in a LUT as UTF-16; the phone number as an IS; the address in a LUT; a DICOMDIR saved as
``index.dcm``; a person named only in a zip member or in a quarantined SR of the same study.
"""
from __future__ import annotations

import io
import struct
import warnings
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from helpers import audit_after_planting, key_file_in, run_cli
from test_redteam9 import _setter
from test_safe_default import real
from vindr_cli.deid import policy, terms

PATIENT = {"PatientName": "PHAM^THI^KIEU", "PatientID": "40517263", "PatientBirthDate": "19790824",
           "InstitutionName": "BENH VIEN TAN PHU", "ReferringPhysicianName": "VO^MINH^TRIET",
           "PatientAddress": "45 LE LOI QUAN 1", "PatientTelephoneNumbers": "0903123456"}
ID_BCD, DOB_BCD = bytes.fromhex("40517263"), bytes.fromhex("19790824")
AT_LE = struct.pack("<HH", 0x4051, 0x7263)          # the tag (4051,7263) as an AT value is stored
GREEK = "ΡΗΑΜ ΤΗΙ ΚΙΕU".encode("iso8859-7")        # Greek Rho, Eta, Alpha, Mu... read as PHAM THI KIEU
CYRILLIC = "РНАМ ТНІ КІЕU".encode("iso8859-5")
KOI8 = "КIЕU РНАМ".encode("koi8_r")


def _voi_bytes(blob: bytes) -> Sequence:
    if len(blob) % 2:
        blob += b" "
    item = Dataset()
    item.LUTDescriptor = [len(blob) // 2, 0, 16]
    item.add(DataElement(0x00283006, "OW", blob))
    return Sequence([item])


def _voi_numbers(values) -> Sequence:
    item = Dataset()
    item.LUTDescriptor = [len(values), 0, 16]
    item.add(DataElement(0x00283006, "US", values))
    return Sequence([item])


def _lut(blob: bytes):
    return lambda ds: setattr(ds, "VOILUTSequence", _voi_bytes(b"\x00\x01" * 16 + blob + b"\x00" * 16))


def _dimension(ds):
    item = Dataset()
    item.DimensionIndexPointer, item.FunctionalGroupPointer = 0x40517263, 0x19790824
    ds.DimensionIndexSequence = Sequence([item])


def _split_lut(ds):
    values = list(range(0, 4096, 16))
    values[100:102] = [4051, 7263]
    ds.VOILUTSequence = _voi_numbers(values)


def _frame_pointer(ds):
    ds.NumberOfFrames = 1
    ds.add_new(0x00280009, "AT", [0x40517263])


# label: (how the value is planted, groups of byte strings: leaked when every string of a group is
# in the output's bytes; each group is checked to be in the input's bytes first)
LEAKED = {
    "bcd_lut": (_lut(ID_BCD + b"\x00\x02" + DOB_BCD), [[ID_BCD], [DOB_BCD]]),
    "at_frame_pointer": (_frame_pointer, [[AT_LE]]),
    "at_dimension": (_dimension, [[AT_LE], [struct.pack("<HH", 0x1979, 0x0824)]]),
    "greek_lut": (_lut(GREEK), [[GREEK]]),
    "cyrillic_lut": (_lut(CYRILLIC), [[CYRILLIC]]),
    "koi8_lut": (_lut(KOI8), [[KOI8]]),
    "split_is": (_setter(InstanceNumber="4051", AcquisitionNumber="7263"), [[b"4051", b"7263"]]),
    "split_window": (_setter(WindowCenter="1979", WindowWidth="824"), [[b"1979", b"824"]]),
    "split_lut": (_split_lut, [[struct.pack("<HH", 4051, 7263)]]),
    "software_hex": (_setter(SoftwareVersions="26A3E8F"), [[b"26A3E8F"]]),      # 40517263 in hexadecimal
}


def _pixel_codes(ds):
    import numpy as np
    a = ds.pixel_array.copy()
    text = np.frombuffer("PHAM THI KIEU 40517263".encode("utf-16-le"), np.int16)
    a[-1, :len(text)] = text
    ds.PixelData = a.tobytes()


UNFIXED = {"pixel_codes": (_pixel_codes, [["PHAM THI KIEU".encode("utf-16-le")]])}


def _waveform(ds):
    w = real("waveform_ecg.dcm")
    for k, v in PATIENT.items():
        setattr(w, k, v)
    group = w.WaveformSequence[0]
    group.MultiplexGroupLabel = "VO MINH TRIET"
    group.ChannelDefinitionSequence[0].ChannelLabel = "PHAM KIEU"
    note = Dataset()
    note.UnformattedTextValue, note.ReferencedWaveformChannels = "PHAM THI KIEU 40517263", [1, 1]
    w.WaveformAnnotationSequence = Sequence([note])
    return w


def _iso2022(ds):
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.add(DataElement(0x00281055, "LO", b"LUNG \x1b$B;3ED\x1b(B"))      # LUNG 山田


def _gb18030(ds):
    ds.SpecificCharacterSet = "GB18030"
    ds.PatientName = "王^小明"
    ds.add(DataElement(0x00281055, "LO", "LUNG 王小明".encode("gb18030")))


def _mislabelled(ds):
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.add(DataElement(0x00281055, "LO", "LUNG PHẠM".encode("utf-8")))


def _osage(ds):
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "𐓏𐓘𐓻𐓘𐓻𐓟^𐓍𐓙𐓘"
    ds.VOILUTSequence = _voi_bytes(b"\x00" * 4 + "𐓏𐓘𐓻𐓘𐓻𐓟".encode("utf-16-le") + b"\x00" * 4)


def _document(ds):
    ds.add_new(0x00420011, "OB", b"%PDF PHAM THI KIEU 40517263 ")
    ds.DocumentTitle = "PHAM THI KIEU"


HELD = {
    "waveform": (_waveform, [[b"TRIET"], [b"PHAM"], [b"40517263"]]),
    "iso2022_preset": (_iso2022, [[b"\x1b$B;3ED"]]),
    "gb18030_preset": (_gb18030, [["王小明".encode("gb18030")]]),
    "mislabelled_preset": (_mislabelled, [["PHẠM".encode("utf-8")]]),
    "osage_lut": (_osage, [["𐓏𐓘𐓻𐓘𐓻𐓟".encode("utf-16-le")]]),
    "document": (_document, [[b"PHAM"], [b"40517263"]]),
    "phone_is": (_setter(AcquisitionNumber="903123456"), [[b"903123456"]]),
    "address_lut": (_lut(b" 45 LE LOI QUAN 1 "), [[b"LE LOI"]]),
}
PEERS = ["DANG QUOC BAO", "LY THANH TUNG"]      # named only in a zip member / a quarantined SR of the study


def _patient(plant, study: str | None = None) -> Dataset:
    ds = real("CT_small.dcm")
    for k, v in PATIENT.items():
        setattr(ds, k, v)
    ds = plant(ds) or ds
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if study:
        ds.StudyInstanceUID = study
    return ds


def _buffer(ds) -> bytes:
    b = io.BytesIO()
    ds.save_as(b, enforce_file_format=True)
    return b.getvalue()


def _peers(export: Path) -> None:
    study = generate_uid()
    named = _patient(_setter(OperatorsName="DANG^QUOC^BAO"), study)
    with zipfile.ZipFile(export / "peer.zip", "w") as z:
        z.writestr("a/x.dcm", _buffer(named))
    _patient(_lut(b" DANG QUOC BAO "), study).save_as(export / "peer_zip" / "b.dcm", enforce_file_format=True)
    sr = _patient(_setter(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11"), study)
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    observer = Dataset()
    observer.VerifyingObserverName = "LY^THANH^TUNG"
    sr.VerifyingObserverSequence = Sequence([observer])
    sr.save_as(export / "peer_sr" / "sr.dcm", enforce_file_format=True)
    _patient(_lut(b" LY THANH TUNG "), study).save_as(export / "peer_sr" / "c.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The export (one folder per channel, a clean file, the peers, a DICOMDIR saved as index.dcm),
    anonymized by the CLI with the defaults and with --profile vindr --burned-in off."""
    base = tmp_path_factory.mktemp("redteam10")
    export = base / "export"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, (plant, _) in {**LEAKED, **UNFIXED, **HELD, "clean": (lambda ds: None, [])}.items():
            (export / label).mkdir(parents=True)
            _patient(plant).save_as(export / label / "img.dcm", enforce_file_format=True)
        for d in ("peer_zip", "peer_sr"):
            (export / d).mkdir()
        _peers(export)
        from pydicom.fileset import FileSet
        media = FileSet()
        media.add(_patient(lambda ds: None))
        media.write(base / "media")
        (export / "index.dcm").write_bytes((base / "media" / "DICOMDIR").read_bytes())
    key = key_file_in(base)
    runs = {}
    for mode, args in (("default", ()), ("vindr_off", ("--profile", "vindr", "--burned-in", "off"))):
        out = base / f"anon_{mode}"
        p = run_cli("anonymize", export, out, "--key", key, "--allow-burned-in", "-j", "2", *args)
        linkage = base / f"anon_{mode}.linkage.parquet"
        links = {}
        for row in pq.read_table(linkage).to_pylist():
            links[Path(row["input_path"]).parent.name if row["output"] else row["input_path"]] = row
        runs[mode] = {"out": out, "links": links, "linkage": linkage, "printed": p.stdout + p.stderr,
                      "export": export}
    return runs


def _leaked(run, label: str, groups) -> list:
    src = (run["export"] / label / "img.dcm").read_bytes()
    assert all(all(s in src for s in g) for g in groups), "the plant is in the input"
    row = run["links"][label]
    assert row["status"] == "ok", row["status"]
    data = (run["out"] / row["output"]).read_bytes()
    return [g for g in groups if all(s in data for s in g)]


@pytest.mark.parametrize("mode", ["default", "vindr_off"])
@pytest.mark.parametrize("label", sorted(LEAKED))
def test_a_leaked_channel_is_not_in_its_output(world, mode, label):
    assert _leaked(world[mode], label, LEAKED[label][1]) == []


@pytest.mark.parametrize("mode", ["default", "vindr_off"])
@pytest.mark.parametrize("label", sorted(HELD))
def test_a_held_channel_is_not_in_its_output(world, mode, label):
    assert _leaked(world[mode], label, HELD[label][1]) == []


@pytest.mark.parametrize("mode", ["default", "vindr_off"])
def test_a_name_as_pixel_values_is_not_in_the_output(world, mode):
    """Was a strict xfail (a search of pixel values for any letters matches real backgrounds):
    the file's OWN name parts and ID, exactly, as runs of character codes (deid.pixelcodes) match
    no real image (bench/README "g1nolink"): such a file fails, in every mode, and is not written."""
    from vindr_cli.deid import pixelcodes

    run = world[mode]
    row = run["links"]["pixel_codes/img.dcm"]              # (a row without output: by its input path)
    assert row["status"] == "failed" and row["output"] is None
    manifest = {r["input_key"]: r for r in pq.read_table(run["out"] / "manifest.parquet").to_pylist()}
    assert manifest[row["input_key"]]["reason"] == pixelcodes.FOUND
    for p in run["out"].rglob("*.dcm"):
        assert UNFIXED["pixel_codes"][1][0][0] not in p.read_bytes()


@pytest.mark.parametrize("mode", ["default", "vindr_off"])
def test_a_person_named_only_in_a_zip_member_or_a_quarantined_sr_is_not_written(world, mode):
    run = world[mode]
    assert run["links"]["index.dcm"]["status"] == "skipped"
    for p in run["out"].rglob("*"):
        if p.is_file():
            data = p.read_bytes().upper()
            assert not [n for n in PEERS + ["PHAM", "40517263"] if n.encode() in data], p.name


# what is planted back into the clean output, and the audit must report ("phi")
PLANTED = {
    "bcd_lut": _lut(ID_BCD),
    "at_dimension": _dimension,
    "greek_lut": _lut(GREEK),
    "koi8_lut": _lut(KOI8),
    "split_is": _setter(InstanceNumber="4051", AcquisitionNumber="7263"),
    "split_window": _setter(WindowCenter="1979", WindowWidth="824"),
    "split_lut": _split_lut,
    "software_hex": _setter(SoftwareVersions="V 0x26a3e8f"),
}


@pytest.mark.parametrize("label", sorted(PLANTED))
def test_audit_reports_each_leak_planted_back_into_an_output(world, tmp_path, label):
    run = world["vindr_off"]
    report = audit_after_planting(run["out"], run["links"], "clean", PLANTED[label], tmp_path,
                                  linkage=run["linkage"])
    assert report.counts().get("phi", 0) >= 1


# -- the rules on their own ----------------------------------------------------------------------

def _terms():
    return terms.build_terms(["PHAM^THI^KIEU", "40517263", "19790824", "NGUYEN^VAN^AN", "LE^AN",
                              "VO^MINH^TRIET"], include_dates=True)


@pytest.mark.parametrize("value,vr", [
    (b"\x00" * 8 + ID_BCD + b"\x00" * 8, "OB"), ([0x40517263], "AT"), ([0x4051, 0x7263], "US"),
    (b"\x00" * 8 + GREEK, "OW"), (b"\x00" * 8 + CYRILLIC, "OW"), (KOI8 + b"\x00", "OW"),
    ("NGUYЕN VАN АN".encode("cp1251"), "OB"), ([0, 16, 4051, 7263, 48], "US"), ([1979, 824], "US")])
def test_the_new_views_find_the_patient(value, vr):
    numbers, views = terms.value_views(value, vr)
    assert _terms().found_in_value(views, numbers)


def test_random_bytes_and_ramps_are_not_the_patient():
    """The new views on random bytes (the older ones find a name of two 2-letter words, LE AN, in
    any 64 KiB of random bytes: its words are sought as tokens), and every view on ramps."""
    import random
    rng = random.Random(10)
    t = _terms()
    for _ in range(150):
        numbers, views = terms.value_views(rng.randbytes(65536), "OW")
        assert not (t.found_packed(views) or t.found_one_byte_lookalike(views) or t.found_split(views.numbers))
        numbers, views = terms.value_views([rng.randrange(65536) for _ in range(4096)], "US")
        assert not (t.found_packed(views) or t.found_one_byte_lookalike(views) or t.found_split(views.numbers))
    ramp = terms.build_terms(["10001001", "40517263"], include_dates=True)   # 1000, 1001 are in every ramp
    for values in (list(range(4096)), list(range(0, 65536, 16)), list(range(0, 65536, 256))):
        numbers, views = terms.value_views(values, "US")
        assert not ramp.found_in_value(views, numbers)
        numbers, views = terms.value_views(struct.pack(f"<{len(values)}H", *values), "OW")
        assert not ramp.found_in_value(views, numbers)


def test_a_short_name_is_not_sought_in_a_code_page_s_look_alike_letters():
    t = terms.build_terms(["LE^AN"], include_dates=False)
    _, views = terms.value_views(b"\x00" + "LЕ АN".encode("iso8859-5") + b"\x00", "OB")
    assert not t.found_one_byte_lookalike(views)


@pytest.mark.parametrize("text,found", [("26A3E8F", True), ("0x26a3e8f", True), ("V 12DFBE8", True),
                                         ("26A3E8E", False), ("VA10A", False), ("syngo MR E11", False),
                                         ("B10 E8F", False)])
def test_an_id_or_date_in_hexadecimal(text, found):
    assert policy.found_in_digits(_terms(), text, "LO") is found


@pytest.mark.parametrize("elements,found", [
    ([(1, "IS", "4051"), (2, "IS", "7263")], {1, 2}),
    ([(1, "DS", "1979"), (2, "DS", "824.0")], {1, 2}),          # 0824 written as 824
    ([(1, "US", 4051), (2, "IS", ["1", "7263"])], {1, 2}),
    ([(1, "IS", "4051"), (2, "IS", "7264")], set()),
    ([(1, "IS", "40517"), (2, "IS", "63")], set()),             # a part of 2 digits: any number's
    ([(1, "IS", "4051"), (1, "IS", "7263")], set()),            # one element: found_in_digits' (joined)
    ([(1, "FD", 4051.5), (2, "IS", "7263")], set()),
    ([(1, "LO", "4051"), (2, "IS", "7263")], set()),
])
def test_split_across_two_numbers(elements, found):
    assert policy.split_across(_terms(), elements) == found


def test_the_clean_file_keeps_its_window_and_numbers(world):
    """The clean file's own numbers are kept (the split rule takes none of them)."""
    for mode in ("default", "vindr_off"):
        row = world[mode]["links"]["clean"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(world[mode]["out"] / row["output"])
        src = real("CT_small.dcm")
        kept = {kw: ds[kw].value for kw in ("WindowCenter", "WindowWidth", "InstanceNumber", "AcquisitionNumber")
                if kw in ds and ds[kw].value not in (None, "")}      # the vindr profile empties InstanceNumber
        assert mode != "default" or {"InstanceNumber", "AcquisitionNumber"} <= kept.keys()
        assert kept == {kw: src[kw].value for kw in kept}, mode


# -- mislabelled character sets (red team 10, 4.) ---------------------------------------------------
MISLABELLED = {
    # label: (SpecificCharacterSet, the name's bytes as stored, the name as a kept LUT holds it)
    "utf8_in_latin1": ("ISO_IR 100", "PHẠM^THỊ^KIỀU".encode("utf-8"), "PHẠM THỊ KIỀU".encode("utf-16-le")),
    "utf8_undeclared": (None, "PHẠM^THỊ^KIỀU".encode("utf-8"), "PHẠM THỊ KIỀU".encode("utf-16-le")),
    "gb18030_in_latin1": ("ISO_IR 100", "王^小明".encode("gb18030"), "王小明".encode("utf-16-le")),
    "latin1_in_utf8": ("ISO_IR 192", "MÜLLER^JÖRG".encode("latin-1"), "MÜLLER JÖRG".encode("utf-16-le")),
}


@pytest.fixture(scope="module")
def mislabelled(tmp_path_factory):
    base = tmp_path_factory.mktemp("redteam10_charsets")
    export = base / "export"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, (charset, name, lut) in MISLABELLED.items():
            ds = _patient(_lut(lut))
            if charset is None:
                del ds.SpecificCharacterSet
            else:
                ds.SpecificCharacterSet = charset
            ds.add(DataElement(0x00100010, "PN", name))
            (export / label).mkdir(parents=True)
            ds.save_as(export / label / "img.dcm", enforce_file_format=True)
        clean = _patient(lambda ds: None)
        clean.SpecificCharacterSet = "ISO_IR 100"
        clean.add(DataElement(0x00100010, "PN", "PHẠM^THỊ^KIỀU".encode("utf-8")))
        (export / "clean").mkdir()
        clean.save_as(export / "clean" / "img.dcm", enforce_file_format=True)
    out = base / "anon"
    run_cli("anonymize", export, out, "--key", key_file_in(base), "--burned-in", "off", "-j", "2")
    linkage = base / "anon.linkage.parquet"
    links = {Path(r["input_path"]).parent.name: r for r in pq.read_table(linkage).to_pylist()}
    return {"out": out, "links": links, "linkage": linkage}


@pytest.mark.parametrize("label", sorted(MISLABELLED))
def test_a_name_in_a_mislabelled_character_set_is_not_kept_in_a_lut(mislabelled, label):
    row = mislabelled["links"][label]
    assert row["status"] == "ok"
    data = (mislabelled["out"] / row["output"]).read_bytes()
    assert MISLABELLED[label][2] not in data


def test_audit_finds_a_utf8_name_of_a_latin1_file_planted_as_utf16(mislabelled, tmp_path):
    report = audit_after_planting(mislabelled["out"], mislabelled["links"], "clean",
                                  _lut("PHẠM THỊ KIỀU".encode("utf-16-le")), tmp_path, linkage=mislabelled["linkage"])
    assert report.counts().get("phi", 0) >= 1
