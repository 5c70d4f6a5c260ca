"""schemas/deid/iod_types.json: generated from highdicom's PS3.3 tables, intact, and looked up
by SOP class, tag and sequence path; the engine uses it at every depth."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import sys
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import tag_for_keyword

from vindr_cli.deid import iod
from vindr_cli.deid.engine import deidentify
from vindr_cli.deid.iod import attribute_type, resolve_compound
from vindr_cli.deid.profile import load_profile
from vindr_cli.deid.substitutes import Substitutes
from vindr_cli.resources import schema_path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gen_iod_types  # noqa: E402

T = tag_for_keyword
MR_ENH = "1.2.840.10008.5.1.4.1.1.4.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
BASIC_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _data() -> dict:
    return json.loads(schema_path("deid", "iod_types.json").read_text(encoding="utf-8"))


def _wheel() -> Path | None:
    """highdicom's wheel, where a checkout has one (VINDR_HIGHDICOM_WHEEL, or /tmp/hd/)."""
    env = os.environ.get("VINDR_HIGHDICOM_WHEEL")
    if env and Path(env).is_file():
        return Path(env)
    found = sorted(glob.glob("/tmp/hd/highdicom-*.whl"))
    return Path(found[-1]) if found else None


def test_committed_table_is_what_the_generator_writes():
    wheel = _wheel()
    if wheel is None:
        pytest.skip("highdicom's wheel is not here (set VINDR_HIGHDICOM_WHEEL)")
    data = _data()
    if data["provenance"]["highdicom_version"] not in wheel.name:
        pytest.skip("another highdicom version than the one the table was generated from")
    fresh = gen_iod_types.generate(wheel, data["provenance"]["generated_on"])
    assert gen_iod_types.dump(fresh) == schema_path("deid", "iod_types.json").read_text(encoding="utf-8")


def test_provenance_and_structure_are_intact():
    text = schema_path("deid", "iod_types.json").read_text(encoding="utf-8")
    assert len(text) < 3_000_000                       # compact: module tables and groups shared
    data = json.loads(text)
    prov = data["provenance"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", prov["highdicom_version"])
    assert set(prov["files"]) == set(gen_iod_types.FILES)
    for f in prov["files"].values():
        assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) and f["bytes"] > 0
    assert prov["generator"] == "scripts/gen_iod_types.py"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prov["generated_on"])
    assert "dicom_edition" in prov
    assert "1C counts as 1" in data["description"] and "strictest" in data["description"]
    assert data["type_order"] == ["1", "1C", "2", "2C", "3"]
    assert len(data["sop_classes"]) > 150 and len(data["iods"]) > 150
    for uid, name in data["sop_classes"].items():
        assert pydicom.uid.UID(uid).is_valid and name in data["iods"], uid
    for name, modules in data["iods"].items():
        assert modules and set(modules.values()) <= {"M", "C", "U"}, name
        assert all(m in data["modules"] for m in modules), name

    def check(table: dict, where: str) -> None:
        for path, value in table.items():
            for kw in path.split(">"):
                assert tag_for_keyword(kw) is not None, (where, path)
            if isinstance(value, list):
                assert value[0] in data["type_order"] + [None] and value[1][1:] in data["groups"], (where, path)
            else:
                assert value in data["type_order"], (where, path)

    for name, table in data["modules"].items():
        check(table, name)
    for name, table in data["groups"].items():
        assert table, name
        check(table, name)


def test_the_table_names_its_source_files_by_their_hash():
    wheel = _wheel()
    if wheel is None:
        pytest.skip("highdicom's wheel is not here (set VINDR_HIGHDICOM_WHEEL)")
    raw, version = gen_iod_types.read_sources(wheel)
    prov = _data()["provenance"]
    if version != prov["highdicom_version"]:
        pytest.skip("another highdicom version than the one the table was generated from")
    for name, blob in raw.items():
        assert hashlib.sha256(blob).hexdigest() == prov["files"][name]["sha256"]


def test_types_at_the_top_level_and_merged_across_modules():
    # Enhanced General Equipment makes DeviceSerialNumber Type 1 where General Equipment
    # has it Type 3: the strictest wins
    assert attribute_type(MR_ENH, T("DeviceSerialNumber")) == 1
    assert attribute_type(CT, T("DeviceSerialNumber")) == 3
    assert attribute_type(MR_ENH, T("AcquisitionContextSequence")) == 2
    assert attribute_type(CT, T("PatientID")) == 2
    assert attribute_type(CT, T("ContentDate")) == 2
    assert attribute_type(CT, T("SOPInstanceUID")) == 1
    assert attribute_type("1.2.3.4", T("ContentDate")) is None        # unknown IOD
    assert attribute_type(None, T("ContentDate")) is None
    assert attribute_type(CT, T("SharedFunctionalGroupsSequence")) is None   # not in this IOD
    assert iod.iod_name(SEG) == "segmentation"


def test_types_by_sequence_path():
    rpps = T("ReferencedPerformedProcedureStepSequence")
    assert attribute_type(DX, T("ReferencedSOPClassUID"), (rpps,)) == 1
    assert attribute_type(DX, T("ReferencedSOPClassUID")) is None           # not at the top level
    per_frame, derivation = T("PerFrameFunctionalGroupsSequence"), T("DerivationImageSequence")
    assert attribute_type(SEG, T("SourceImageSequence"), (per_frame, derivation)) == 2
    assert attribute_type(SEG, T("ReferencedSOPInstanceUID"),
                          (per_frame, derivation, T("SourceImageSequence"))) == 1
    assert attribute_type(SEG, T("SourceImageSequence"), (derivation,)) is None   # wrong path
    # a 1C attribute counts as Type 1 (present in the input: keep a conformant value)
    pixel = (T("SharedFunctionalGroupsSequence"), T("PixelMeasuresSequence"))
    assert attribute_type(MR_ENH, T("PixelSpacing"), pixel) == 1


def test_recursive_content_sequence_is_one_level():
    cs, text = T("ContentSequence"), T("TextValue")
    assert attribute_type(BASIC_SR, text, (cs,)) == 1
    assert attribute_type(BASIC_SR, text, (cs, cs, cs)) == 1
    assert attribute_type(BASIC_SR, T("CodeMeaning"), (cs, cs, T("ConceptNameCodeSequence"))) == 1
    assert attribute_type(BASIC_SR, text, (cs, T("ConceptNameCodeSequence"), cs)) is None


def test_compound_actions_follow_the_type():
    assert resolve_compound("X/Z/D", attribute_type(MR_ENH, T("DeviceSerialNumber"))) == "D"
    assert resolve_compound("X/Z", attribute_type(MR_ENH, T("AcquisitionContextSequence"))) == "Z"
    assert resolve_compound("X/Z/D", attribute_type(CT, T("DeviceSerialNumber"))) == "X"
    assert resolve_compound("X/Z/D", attribute_type("1.2.3.4", T("DeviceSerialNumber"))) == "X"


def _read(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(get_testdata_file(name, download=False), force=True)


def test_engine_uses_types_at_every_depth():
    ds = _read("liver_1frame.dcm")          # a real segmentation (multi-frame functional groups)
    assert ds.DeviceSerialNumber
    src = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    original_uid = src.ReferencedSOPInstanceUID
    subs = Substitutes(b"\x07" * 32)
    deidentify(ds, load_profile(), subs)
    # X/Z/D on a Type 1 attribute (Enhanced General Equipment): a dummy, not removed
    assert ds.DeviceSerialNumber == "ANONYMOUS"
    # X/Z/U* on a Type 2 sequence two levels deep: kept, its instance UID replaced
    src = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert src.ReferencedSOPInstanceUID == subs.uid(original_uid) != original_uid
    ref = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    assert ref == subs.uid(original_uid)      # still the instance the derivation references


def test_type1_text_in_nested_sr_items_gets_a_dummy():
    ds = _read("test-SR.dcm")
    cs, text = T("ContentSequence"), T("TextValue")

    def texts(d, out):
        for e in d:
            if e.tag == text:
                out.append(e.value)
            elif e.VR == "SQ":
                for item in e.value:
                    texts(item, out)
        return out

    before = texts(ds, [])
    assert len(before) >= 5 and any(v for v in before)
    deidentify(ds, load_profile(), Substitutes(b"\x07" * 32))
    after = texts(ds, [])
    assert len(after) == len(before)                                  # none removed
    assert set(after) == {"ANONYMOUS"}                                # none kept as it was
    assert attribute_type(str(ds.SOPClassUID), text, (cs, cs)) == 1


def test_lookup_in_the_modules_equals_the_expanded_merged_table():
    """attribute_type looks keys up in the module tables as they are (start-up, issue 13);
    the answer for every key of the expanded, merged table of several IODs (and for a sample
    of every other IOD's keys, and for keys that are not there) is the merged table's."""
    data = iod._data()
    full = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1", SEG,
            "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.4.1"}
    assert full <= set(data["sop_classes"])
    checked = 0
    for uid in sorted(data["sop_classes"]):
        table = iod._iod(uid)
        keys = sorted(table)
        sample = keys if uid in full else keys[::97]
        for key in sample:
            assert iod._lookup(uid, key) == table[key], (uid, key)
            miss = (*key[:-1], key[-1] + 1)          # a neighbour tag, usually absent
            assert iod._lookup(uid, miss) == table.get(miss), (uid, miss)
            deeper = (*key, 0x00080100)               # CodeValue under it: present only for sequences
            assert iod._lookup(uid, deeper) == table.get(deeper), (uid, deeper)
            checked += 1
    assert checked > 20000
    assert iod._lookup("1.2.840.10008.5.1.4.1.1.2", (0x60000010,)) is None   # a repeater tag: no keyword
