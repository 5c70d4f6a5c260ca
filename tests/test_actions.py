"""Each Annex E action on values of each kind of VR."""
from __future__ import annotations

import pytest

from vindr_cli.deid import actions
from vindr_cli.deid.substitutes import Substitutes

S = Substitutes(b"\x03" * 32)


@pytest.mark.parametrize("vr", ["PN", "LO", "SH", "DA", "TM", "DT", "UI", "IS", "DS", "US", "CS", "AS", "OB"])
def test_z_is_empty(vr):
    assert actions.empty_value(vr) is None
    assert actions.empty_value("SQ") == []


@pytest.mark.parametrize("vr,expected", [("DA", "19000101"), ("TM", "000000"), ("DT", "19000101000000"),
                                         ("PN", "ANONYMOUS"), ("LO", "ANONYMOUS"), ("AS", "000D"),
                                         ("IS", "0"), ("DS", "0"), ("US", 0), ("FD", 0), ("OB", b"\x00\x00")])
def test_d_dummy_is_non_empty_and_valid(vr, expected):
    v = actions.dummy_value(vr)
    assert v == expected and v not in ("", None)


def test_d_dummy_values_pass_pydicom_validation():
    from pydicom.dataelem import DataElement
    from pydicom.valuerep import validate_value

    for vr in ("DA", "TM", "DT", "PN", "LO", "SH", "CS", "AS", "IS", "DS", "LT", "ST", "UT", "AE"):
        validate_value(vr, actions.dummy_value(vr), "raise")
        assert str(DataElement(0x00100010, vr, actions.dummy_value(vr)).value) != ""


def test_u_remaps_every_value_and_keeps_registry():
    assert actions.remap_uids("1.2.3", S) == S.uid("1.2.3")
    assert actions.remap_uids(["1.2.3", "1.2.4"], S) == [S.uid("1.2.3"), S.uid("1.2.4")]
    assert actions.remap_uids("1.2.840.10008.5.1.4.1.1.1", S) == "1.2.840.10008.5.1.4.1.1.1"
    assert actions.remap_uids("1.2.3\x00", S) == S.uid("1.2.3")
    assert actions.remap_uids("", S) is None


def test_c_dates_shift_or_refuse():
    assert actions.shift_dates("20240110", "DA", -10) == "20231231"
    assert actions.shift_dates(["20240110", "20240111"], "DA", -1) == ["20240109", "20240110"]
    assert actions.shift_dates("20240110093000", "DT", -10) == "20231231093000"
    assert actions.shift_dates("not a date", "DA", -1) is None
    assert actions.shift_dates("", "DA", -1) == ""


def test_c_descriptors_vocabulary_only():
    assert actions.is_clean_descriptor("chest pa")
    assert actions.is_clean_descriptor(["PA", "LAT"])
    assert not actions.is_clean_descriptor("CHEST PA Nguyen")
    assert not actions.is_clean_descriptor("")
