"""Safe by default (issue #9, leak classes 1, 3, 4, 5, 6, 7): one regression test per leak
class, each built from a real public file (pydicom's bundled test files, offline). Each case
plants an identifying string, checks it appears in no output byte, then plants it into an
output after the fact and checks that ``vindr audit`` reports it with the right kind (naming
the element, never the value)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from helpers import key_hex, run_cli, save
from vindr_cli.deid import policy
from vindr_cli.deid.audit import audit
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile

NAME = "NGUYEN^VAN^AN"              # a fake patient name (SH fits: 13 characters)
MRN = "MRN0077123"
URL = f"https://pacs.benhvien.example/wado?studyUID=1.2.3&patientID={MRN}&name={NAME}"
SECRETS = (NAME, MRN, "NGUYEN VAN AN")


def real(name: str) -> Dataset:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom test file {name} is not available offline"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def anonymized(tmp_path: Path, key_file: Path, ds: Dataset, profile: str = "basic") -> tuple[Path, Path, dict]:
    src = save(ds, tmp_path / "in" / "a.dcm")
    out = tmp_path / "out"
    anonymize(src.parent, out, key_path=key_file, profile=load_profile(profile), workers=1,
              allow_burned_in=True)        # JPEG2000.dcm and image_dfl.dcm are secondary captures
    row = pq.read_table(out / "manifest.parquet").to_pylist()[0]
    assert row["status"] == "ok", row["reason"]
    return out, out / row["output"], row


def assert_absent(path: Path, secrets=SECRETS) -> None:
    data = path.read_bytes()
    for s in secrets:
        assert s.encode() not in data, f"{s!r} in the output"


def plant_and_audit(out: Path, output: Path, plant, kind: str, element: str) -> None:
    """Plant into the output after the fact (pydicom rewrites it; the pixel value is kept):
    the audit reports ``kind`` naming ``element``, and no finding quotes the value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(output)
    plant(ds)
    save(ds, output)
    report = audit(out)
    hits = [f for f in report.findings if f.kind == kind]
    assert hits and any(element in f.detail for f in hits), report.counts()
    text = report.to_json()
    for s in SECRETS:
        assert s not in text


def top(keyword: str, value):
    def plant(ds):
        setattr(ds, keyword, value)
    return plant


def nested(path: list[str], keyword: str, value):
    """keyword = value inside one item of each sequence of ``path`` (outermost first)."""
    def plant(ds):
        inner = Dataset()
        setattr(inner, keyword, value)
        for seq in reversed(path):
            outer = Dataset()
            setattr(outer, seq, Sequence([inner]))
            inner = outer
        for elem in inner:
            ds[elem.tag] = elem
    return plant


FIVE_DEEP = ["ReferencedSeriesSequence", "ReferencedInstanceSequence", "ReferencedVisitSequence",
             "ReferencedWaveformSequence", "ReferencedStereometricInstanceSequence"]

# leak class 1: standard text attributes Table E.1-1 does not list (top level and deep)
UNLISTED_TEXT = [
    ("AcquisitionProtocolName", top("AcquisitionProtocolName", f"{NAME} 20240115")),
    ("PerformedProcedureTypeDescription", top("PerformedProcedureTypeDescription", NAME)),
    ("ImageID", top("ImageID", NAME)),
    ("StorageMediaFileSetID", top("StorageMediaFileSetID", MRN)),
    ("DeviceID", top("DeviceID", MRN)),
    ("NTPSourceAddress", top("NTPSourceAddress", NAME)),
    ("OwnerID", top("OwnerID", MRN)),
    ("ContactDisplayName", nested(FIVE_DEEP, "ContactDisplayName", NAME)),
    ("Manufacturer", top("Manufacturer", NAME)),    # allowlisted, but '^' fails its pattern
]


@pytest.mark.parametrize("element,plant", UNLISTED_TEXT, ids=[c[0] for c in UNLISTED_TEXT])
def test_unlisted_text_is_removed_and_audited(tmp_path, key_file, element, plant):
    ds = real("CT_small.dcm")
    plant(ds)
    out, output, row = anonymized(tmp_path, key_file, ds)
    assert_absent(output)
    assert "X:unsafe-text" in json.loads(row["actions"])
    plant_and_audit(out, output, plant, policy.UNSAFE_TEXT, element)


def test_five_levels_deep_sequence_survives_but_its_text_does_not(tmp_path, key_file):
    ds = real("CT_small.dcm")
    nested(FIVE_DEEP, "ContactDisplayName", NAME)(ds)
    _, output, _ = anonymized(tmp_path, key_file, ds)
    o = pydicom.dcmread(output)
    # the name 5 levels down goes; its item is then empty, and so is every item above it:
    # an item de-identification emptied says nothing and is removed, then the sequences
    # left without items (Type 3 here)
    assert FIVE_DEEP[0] not in o
    assert_absent(output)

    keep = real("CT_small.dcm")
    nested(FIVE_DEEP, "ContactDisplayName", NAME)(keep)
    item = keep
    for seq in FIVE_DEEP[:-1]:
        item = item[seq][0]
    item.ContextIdentifier = "4031"             # a harmless CS one level up keeps the structure to it
    _, output, _ = anonymized(tmp_path / "b", key_file, keep)
    item = pydicom.dcmread(output)
    for seq in FIVE_DEEP[:-1]:                 # the structure down to the CS survives ...
        item = item[seq][0]
    assert item.ContextIdentifier == "4031" and FIVE_DEEP[-1] not in item   # ... the emptied leaf does not
    assert_absent(output)


def test_waveform_labels(tmp_path, key_file):
    ds = real("waveform_ecg.dcm")
    ds.WaveformSequence[0].MultiplexGroupLabel = NAME
    ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelLabel = MRN
    out, output, _ = anonymized(tmp_path, key_file, ds)
    assert_absent(output)
    o = pydicom.dcmread(output)
    assert "WaveformData" in o.WaveformSequence[0]          # the samples are allowlisted binary
    plant_and_audit(out, output, lambda d: setattr(d.WaveformSequence[0].ChannelDefinitionSequence[0],
                                                    "ChannelLabel", MRN), policy.UNSAFE_TEXT, "ChannelLabel")
    plant_and_audit(out, output, lambda d: setattr(d.WaveformSequence[0], "MultiplexGroupLabel", NAME),
                    policy.UNSAFE_TEXT, "MultiplexGroupLabel")


@pytest.mark.parametrize("profile", ["vindr", "basic"])
def test_window_explanation_free_text_under_both_profiles(tmp_path, key_file, profile):
    ds = real("CT_small.dcm")
    ds.WindowCenter, ds.WindowWidth = ["40", "-600"], ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "NGUYEN VAN AN"]
    out, output, _ = anonymized(tmp_path, key_file, ds, profile)
    assert_absent(output)
    o = pydicom.dcmread(output)
    assert "WindowCenter" in o and "WindowCenterWidthExplanation" not in o
    plant_and_audit(out, output, top("WindowCenterWidthExplanation", ["LUNG", NAME]), policy.UNSAFE_TEXT,
                    "WindowCenterWidthExplanation")


def test_window_explanation_presets_are_kept_under_vindr(tmp_path, key_file):
    ds = real("CT_small.dcm")
    ds.WindowCenter, ds.WindowWidth = ["40", "-600"], ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG 2"]
    out, output, _ = anonymized(tmp_path, key_file, ds, "vindr")
    assert list(pydicom.dcmread(output).WindowCenterWidthExplanation) == ["SOFT TISSUE", "LUNG 2"]
    assert not audit(out).findings


# leak class 3: URLs
URLS = ["RetrieveURL", "RetrieveURI", "PixelDataProviderURL"]


@pytest.mark.parametrize("keyword", URLS)
def test_urls_are_removed_and_audited(tmp_path, key_file, keyword):
    ds = real("JPEG2000.dcm")
    setattr(ds, keyword, URL)
    out, output, row = anonymized(tmp_path, key_file, ds)
    assert_absent(output)
    assert json.loads(row["actions"]).get("X:url") == 1
    plant_and_audit(out, output, top(keyword, URL), policy.URL, keyword)


# leak class 4: binary elements holding text
def _ov(text: str) -> bytes:
    data = text.encode()
    return data + b"\0" * (-len(data) % 8)


def test_extended_offset_table_is_removed_and_audited(tmp_path, key_file):
    ds = real("JPEG2000.dcm")
    ds.add(DataElement(0x7FE00001, "OV", _ov(NAME)))        # ExtendedOffsetTable
    ds.add(DataElement(0x7FE00002, "OV", _ov(MRN)))         # ExtendedOffsetTableLengths
    out, output, row = anonymized(tmp_path, key_file, ds)
    assert_absent(output)
    assert json.loads(row["actions"]).get("X:binary") == 2
    plant_and_audit(out, output, lambda d: d.add(DataElement(0x7FE00001, "OV", _ov(NAME))), policy.BINARY_KIND,
                    "ExtendedOffsetTable")


def test_ob_attribute_holding_text(tmp_path, key_file):
    ds = real("CT_small.dcm")
    ds.CoordinateSystemAxisValues = (NAME + " " + MRN + " ").encode()
    out, output, _ = anonymized(tmp_path, key_file, ds)
    assert_absent(output)
    plant_and_audit(out, output, top("CoordinateSystemAxisValues", (NAME + " ").encode()), policy.BINARY_KIND,
                    "CoordinateSystemAxisValues")


# leak class 5: a text VR stored on an ambiguous dictionary VR
def test_text_vr_on_us_or_ss_tag(tmp_path, key_file):
    def plant(ds):
        ds.add(DataElement(0x00280106, "LO", NAME))          # SmallestImagePixelValue is "US or SS"
    ds = real("MR_small.dcm")
    plant(ds)
    out, output, row = anonymized(tmp_path, key_file, ds)
    assert_absent(output)
    assert json.loads(row["actions"]).get("X:vr-mismatch") == 1
    plant_and_audit(out, output, plant, policy.VR_MISMATCH, "SmallestImagePixelValue")


# leak class 6: a TM holding a date-time
def test_time_holding_a_date_time(tmp_path, key_file):
    ds = real("CT_small.dcm")
    ds.AcquisitionTime = "19650412083000"
    out, output, row = anonymized(tmp_path, key_file, ds)
    assert_absent(output, ("19650412",))
    assert any(k.endswith(":vr-grammar") for k in json.loads(row["actions"]))
    plant_and_audit(out, output, top("AcquisitionTime", "19650412083000"), policy.GRAMMAR, "AcquisitionTime")


# leak class 7: elements after the pixel data, Deflated included
def _after_pixels(ds):
    ds.add(DataElement(0x7FE00040, "OW", _ov(NAME)))        # CoefficientsSDDN (retired), after Pixel Data
    ds.add(DataElement(0xFFFCFFFC, "OB", _ov(MRN)))         # DataSetTrailingPadding


def test_deflated_file_drops_elements_after_the_pixel_data(tmp_path, key_file):
    ds = real("image_dfl.dcm")
    assert ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    _after_pixels(ds)
    out, output, row = anonymized(tmp_path, key_file, ds)
    assert json.loads(row["actions"]).get("X:post-pixel") == 2
    o = pydicom.dcmread(output)
    assert o.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert max(o.keys()) == 0x7FE00010
    assert_absent(output)                  # deflated bytes: also checked on the inflated data set
    assert NAME.encode() not in o.PixelData and 0x7FE00040 not in o
    plant_and_audit(out, output, _after_pixels, "post-pixel", "(7FE0,0040)")


def test_native_file_drops_elements_after_the_pixel_data(tmp_path, key_file):
    ds = real("CT_small.dcm")
    _after_pixels(ds)
    out, output, _ = anonymized(tmp_path, key_file, ds)
    assert_absent(output)
    plant_and_audit(out, output, _after_pixels, "post-pixel", "after the pixel data")


# the policy's own data and grammar
def test_allowlist_entries_have_reason_and_source():
    assert "CodeMeaning" in policy.text_rules() and "Manufacturer" in policy.text_rules()
    assert "ExtendedOffsetTable" not in policy.binary_rules() and "PixelData" in policy.binary_rules()
    for entry in [*policy._data()["text"].values(), *policy.binary_rules().values()]:
        assert entry["reason"] and entry["source"]


@pytest.mark.parametrize("vr,value,ok", [
    ("TM", "19650412083000", False), ("TM", "083000.25", True), ("TM", "08:30:00", True),
    ("CS", "Chest", False), ("CS", "ORIGINAL", True), ("CS", ["DERIVED", "SECONDARY"], True),
    ("DS", "NGUYEN", False), ("DS", " -1.5e3", True), ("IS", "99999999999", False), ("IS", "12", True),
    ("UI", "1.2.840.10008.1.2", True), ("UI", "1.02.3", False), ("UI", "1..2", False), ("UI", "1.2a", False),
    ("UI", "1." + "2" * 63, False), ("DA", "20240230", True), ("DA", "2024-01-01", False),
    ("DT", "20240115083000.5+0700", True), ("DT", "2024011508300X", False), ("AS", "045Y", True), ("AS", "45Y", False),
])
def test_grammar(vr, value, ok):
    assert policy.grammar_ok(vr, value) is ok


def test_lower_case_defined_term_is_normalised(tmp_path, key_file):
    ds = real("CT_small.dcm")
    ds.Modality = "ct"
    ds.ScanOptions = "nguyen van an"        # CS, lower case, no defined term: removed
    out, output, row = anonymized(tmp_path, key_file, ds)
    o = pydicom.dcmread(output)
    assert o.Modality == "CT" and "ScanOptions" not in o
    assert json.loads(row["actions"]).get("C:normalised") == 1
    assert not [f for f in audit(out).findings if f.kind in ("vr-grammar", "unsafe-text")]


@pytest.mark.parametrize("profile", ["basic", "vindr"])
def test_own_output_has_no_policy_findings_cli(tmp_path, key_file, profile):
    """vindr's own dummies, marks, substitutes and shifted dates are never findings."""
    src = tmp_path / "in"
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "image_dfl.dcm", "waveform_ecg.dcm"):
        save(real(name), src / name)
    out = tmp_path / "out"
    run_cli("anonymize", src, out, "--key", key_file, "--profile", profile, "-j", "1", "--allow-burned-in")
    p = run_cli("audit", out, "--json", check=False)
    report = json.loads(p.stdout)
    kinds = {"unsafe-text", "vr-grammar", "binary", "url", "vr-mismatch", "post-pixel"}
    assert report["dicom_files"] == 6
    assert not [f for f in report["findings"] if f["kind"] in kinds], report["findings_by_kind"]


# property: a random identifying string in a random unlisted text attribute, at a random
# depth, in a random transfer syntax, never leaves; planted afterwards, the audit finds it
def _unlisted_text_keywords() -> list[str]:
    from pydicom.datadict import DicomDictionary

    from vindr_cli.deid.table import load_table

    _, rows = load_table()
    listed = {int(r.tag, 16) for r in rows if r.keyword}
    out = [e[4] for tag, e in DicomDictionary.items()
           if e[0] in ("LO", "SH", "LT", "ST", "UT", "UC", "UR", "AE") and not e[3] and e[4]
           and tag not in listed and e[4] not in policy.text_rules() and tag >> 16 not in (0x0000, 0x0002, 0x0004)]   # command set: dcmwrite refuses it
    return sorted(out)


TEXT_KEYWORDS = _unlisted_text_keywords()


def _header_bytes(path: Path) -> bytes:
    """Every byte of the data set outside the pixel value, inflated when Deflated."""
    import zlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
    data = path.read_bytes()
    if ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        start = 132 + 12 + ds.file_meta.FileMetaInformationGroupLength
        data = data[:start] + zlib.decompress(data[start:], -zlib.MAX_WBITS)
    return data.replace(ds.PixelData, b"") if "PixelData" in ds else data


def test_property_random_text_never_leaves():
    import os
    import tempfile

    from hypothesis import given, settings
    from hypothesis import strategies as st
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    @settings(max_examples=12)
    @given(keyword=st.sampled_from(TEXT_KEYWORDS), depth=st.integers(0, 4),
           ts=st.sampled_from([ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]),
           secret=st.text("BCDFGHJKLMNPQRSTVWXZ", min_size=8, max_size=12))
    def check(keyword, depth, ts, secret):
        secret = "QX" + secret                       # letters no real file or vindr value holds
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            keys = tmp / "keys"
            keys.mkdir(mode=0o700)
            key = keys / "k.key"
            key.write_text(key_hex("cd") + "\n")
            os.chmod(key, 0o600)
            ds = real("CT_small.dcm")
            ds.file_meta.TransferSyntaxUID = ts
            plant = nested(FIVE_DEEP[:depth], keyword, secret) if depth else top(keyword, secret)
            plant(ds)
            out, output, _ = anonymized(tmp, key, ds)
            assert secret.encode() not in _header_bytes(output)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                o = pydicom.dcmread(output)
            plant(o)
            save(o, output)
            report = audit(out)
            kind = policy.URL if pydicom.datadict.dictionary_VR(pydicom.datadict.tag_for_keyword(keyword)) == "UR" \
                else policy.UNSAFE_TEXT
            assert any(f.kind == kind and keyword in f.detail for f in report.findings), report.counts()
            assert secret not in report.to_json()

    check()


def test_long_decimal_string_is_rewritten_not_lost(tmp_path, key_file):
    """A DS of 17-32 characters (real exports write 0.14300000000000001) is a number: it is
    re-written within PS3.5's 16 characters instead of failing the file or losing the pixel
    spacing; a DS far beyond the limit may hold swallowed elements and fails the file."""
    ds = real("CT_small.dcm")
    ds["PixelSpacing"] = DataElement(0x00280030, "DS", ["0.66145833333333337", "0.66145833333333337"])
    ds["SliceThickness"] = DataElement(0x00180050, "DS", "5.000000000000000001")
    out, output, row = anonymized(tmp_path, key_file, ds)
    got = pydicom.dcmread(output)
    assert [len(v.original_string) <= 16 for v in got.PixelSpacing] == [True, True]
    assert [round(float(v), 9) for v in got.PixelSpacing] == [0.661458333, 0.661458333]
    assert float(got.SliceThickness) == 5.0
    assert policy.judge(got["PixelSpacing"]).ok and policy.judge(got["SliceThickness"]).ok

    far = real("CT_small.dcm")
    far["SliceThickness"] = DataElement(0x00180050, "DS", "5." + "0" * 40 + "1")
    src = save(far, tmp_path / "far" / "in" / "a.dcm")
    anonymize(src.parent, tmp_path / "far" / "out", key_path=key_file, profile=load_profile("basic"), workers=1)
    row = pq.read_table(tmp_path / "far" / "out" / "manifest.parquet").to_pylist()[0]
    assert row["status"] == "failed" and row["output"] is None


def test_vindr_keep_list_output_stays_a_valid_instance(tmp_path, key_file):
    """``--profile vindr`` keeps only its list, yet the IOD's Type 2 attributes stay (empty),
    Type 1 ones get a dummy or, for a number or coded string the policy lets through, their
    own value; nothing identifying survives."""
    ds = real("CT_small.dcm")
    ds.PatientName, ds.PatientID, ds.Manufacturer = NAME, MRN, NAME
    out, output, row = anonymized(tmp_path, key_file, ds, profile="vindr")
    o = pydicom.dcmread(output)
    assert_absent(output)
    assert o.PatientName == "" and o.PatientID == "" and o.Manufacturer == ""     # Type 2: emptied
    assert list(o.ImageType) == list(ds.ImageType)                                   # Type 1 CS: its own value
    assert [float(v) for v in o.ImageOrientationPatient] == [float(v) for v in ds.ImageOrientationPatient]
    assert o.FrameOfReferenceUID != ds.FrameOfReferenceUID                           # Type 1 UID: replaced
    assert "StudyDate" in o and o.StudyDate == ""                                    # dates are not kept
    assert "InstitutionName" not in o                                                # Type 3: removed


def test_top_level_urn_code_value_is_a_url():
    """URNCodeValue (UR) outside a code item: a URL finding, like every other UR, not plain
    text (Hypothesis found the audit naming it 'unsafe-text' while other URLs read 'url')."""
    from pydicom.dataelem import DataElement
    assert policy.judge(DataElement(0x00080120, "UR", "urn:oid:1.2.3"), top=True).reason == policy.URL
    assert policy.judge(DataElement(0x00080100, "SH", "QXCODE"), top=True).reason == policy.UNSAFE_TEXT
