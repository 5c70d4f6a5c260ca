"""Profiles are data: the Annex E table, built-in profiles, options and recipes."""
from __future__ import annotations

import json

import pytest
from pydicom.datadict import tag_for_keyword as T

from vindr_cli.deid.iod import attribute_type, resolve_compound
from vindr_cli.deid.profile import ProfileError, load_profile
from vindr_cli.resources import schema_path

REF = schema_path("..", "..", "shared", "reference", "confidentiality_profile_attributes.json")


def test_table_has_every_row_with_provenance():
    data = json.loads(schema_path("deid", "ps3.15-table-e1-1.json").read_text())
    assert len(data["rows"]) == 621 == data["provenance"]["row_count"]
    assert "7f4749d" in data["provenance"]["parsed_by"]
    tags = {r["tag"] for r in data["rows"]}
    assert {"00100010", "50xxxxxx", "60xx3000", "private"} <= tags


@pytest.mark.skipif(not REF.resolve().exists(), reason="reference folder not beside the checkout")
def test_table_matches_reference_actions():
    ref = json.loads(REF.read_text())
    ours = {r["tag"]: r for r in json.loads(schema_path("deid", "ps3.15-table-e1-1.json").read_text())["rows"]}
    for r in ref:
        tag = "private" if "ODD" in r["tag"] else r["tag"].strip("()").replace(",", "").lower()
        assert ours[tag]["basic"] == r["basicProfile"], r["name"]
        assert ours[tag]["options"].get("retain_patient_characteristics") == r.get("rtnPatCharsOpt")


def test_basic_default_retains_patient_characteristics_and_shifts_dates():
    p = load_profile()
    assert p.options == {"retain_patient_characteristics", "retain_modified_dates"}
    assert p.rule(T("PatientAge"), "AS").action == "K"
    assert p.rule(T("PatientSex"), "CS").action == "K"
    assert p.rule(T("StudyDate"), "DA").action == "C"
    assert p.rule(T("PatientBirthDate"), "DA").action == "Z"
    assert p.rule(T("StudyDescription"), "LO").action == "X"
    assert [c for c, _ in p.option_codes()] == ["113100", "113107", "113108"]


def test_options_change_actions():
    p = load_profile(dates="remove", without={"retain_patient_characteristics"})
    assert p.options == frozenset()
    assert p.rule(T("PatientAge"), "AS").action == "X"
    assert p.rule(T("StudyDate"), "DA").action == "Z"
    assert load_profile(dates="keep").rule(T("StudyDate"), "DA").action == "K"
    assert load_profile(options={"retain_uids"}).rule(T("StudyInstanceUID"), "UI").action == "K"
    assert load_profile(options={"retain_device_identity"}).rule(T("DeviceSerialNumber"), "LO").action == "K"


def test_unlisted_rules():
    p = load_profile()
    assert p.rule(T("Manufacturer"), "LO").action == "K"          # not in Table E.1-1: kept
    assert p.rule(T("BodyPartExamined"), "CS").action == "K"
    assert p.rule(0x00101234, "LO").action == "X"      # public but not in the dictionary
    assert p.rule(0x00080003, "PN").action == "X"
    assert p.rule(T("Rows"), "US").action == "K"


def test_vindr_profile_is_a_keep_list():
    p = load_profile("vindr")
    assert p.rule(T("Rows"), "US").action == "K"
    assert p.rule(T("PatientAge"), "AS").action == "K"
    assert p.rule(T("SOPInstanceUID"), "UI").action == "U"
    # not on the list: removed, or emptied / dummied where the IOD requires it (Type 2 / 1)
    assert p.rule(T("Manufacturer"), "LO").action == "X/Z/D"
    assert p.rule(T("PatientName"), "PN").action == "X/Z/D"


def test_recipe_overrides_and_errors(tmp_path):
    r = tmp_path / "r.toml"
    r.write_text('base = "basic"\noptions = ["clean_descriptors"]\n[actions]\nStudyDescription = "K"\n"(0008,0070)" = "X"\n')
    p = load_profile(str(r))
    assert p.rule(T("StudyDescription"), "LO").action == "K"
    assert p.rule(T("Manufacturer"), "LO").action == "X"
    assert "clean_descriptors" in p.options
    assert p.fingerprint() != load_profile().fingerprint()
    with pytest.raises(ProfileError):
        load_profile("no-such-profile")
    with pytest.raises(ProfileError):
        load_profile(dates="fuzzy")


RECIPE_MISTAKES = [
    # (recipe text, expected message with the line it names)
    ('base = "basic"\n[actions]\nStudyDescription = "K"\nNotAKeyword = "X"\n',
     r"r\.toml line 4: unknown attribute 'NotAKeyword'"),
    ('[actions]\n"(0029,1010)" = "K"\n', r"r\.toml line 2: tag \(0029,1010\): private elements"),
    ('[actions]\n"(0010,1234)" = "K"\n', r"r\.toml line 2: tag \(0010,1234\) is not in the DICOM data dictionary"),
    ('# a comment\n\n[actions]\nPatientSex = "K"\nStudyDescription = "XX"\n',
     r"r\.toml line 5: unknown action 'XX' for StudyDescription \(allowed: D, Z, X, K, C, U, X/Z, X/D, Z/D, X/Z/D, X/Z/U\*\)"),
    ('[actions]\nStudyDescription = 1\n', r"r\.toml line 2: unknown action \(not a short string\) for StudyDescription"),
    ('actions.StudyDescription = "Q"\n', r"r\.toml line 1: unknown action 'Q' for StudyDescription"),
    ('[substitutes]\nPatientID = "patient_id"\nAccessionNumber = "accesion"\n',
     r"r\.toml line 3: unknown substitute kind 'accesion' for AccessionNumber \(allowed: patient_name, patient_id"),
    ('[substitutes]\nNoSuchThing = "patient_id"\n', r"r\.toml line 2: unknown attribute 'NoSuchThing'"),
    ('[substitutes]\n\nStudyDate = "patient_id"\n',
     r"r\.toml line 3: substitute kind 'patient_id' does not fit StudyDate \(VR DA; it needs LO or SH\)"),
    ('options = [\n  "clean_descriptors",\n  "retain_everything",\n]\n',
     r"r\.toml line 3: unknown option 'retain_everything' \(allowed: .*clean_descriptors"),
    ('options = ["retain_safe_private"]\n', r"r\.toml line 1: option 'retain_safe_private' is not supported"),
    ('options = "clean_descriptors"\n', r"r\.toml line 1: options must be a list of strings"),
    ('base = "basic"\n\nsurprise = 1\n', r"r\.toml line 3: unknown top-level key 'surprise' \(allowed: base, options, actions, substitutes\)"),
    ('[action]\nStudyDescription = "X"\n', r"r\.toml line 1: unknown top-level key 'action'"),
    ('base = "nope"\n', r"r\.toml line 1: base must be one of basic, vindr"),
    ('actions = "X"\n', r"r\.toml line 1: actions must be a table"),
    ('base = "basic"\nnot toml [\n', r"r\.toml line 2: not valid TOML"),
]


@pytest.mark.parametrize("body,msg", RECIPE_MISTAKES)
def test_recipe_mistakes_are_refused_at_load_naming_the_line(tmp_path, body, msg):
    r = tmp_path / "r.toml"
    r.write_text(body)
    with pytest.raises(ProfileError, match=msg) as info:
        load_profile(str(r))
    assert info.value.exit_code == 2          # a RequestError: the CLI exits 2
    assert "\n" not in str(info.value)


def test_recipe_substitutes_are_used(tmp_path):
    r = tmp_path / "r.toml"
    r.write_text('[substitutes]\nOtherPatientIDs = "patient_id"\n')
    p = load_profile(str(r))
    assert p.substitutes[T("OtherPatientIDs")] == "patient_id"
    assert p.substitutes[T("PatientID")] == "patient_id"      # the base profile's stay


@pytest.mark.parametrize("name", ["basic", "vindr"])
def test_shipped_profiles_pass_the_same_checks(name):
    from vindr_cli.deid.profile import BUILTIN, load_builtin
    assert name in BUILTIN
    spec = load_builtin(name)
    assert spec["name"] == name
    assert load_profile(name).rules


def test_a_broken_shipped_profile_is_refused_naming_its_line(tmp_path, monkeypatch):
    from vindr_cli.deid import profile as prof
    good = prof.builtin_path("basic").read_text()
    broken = good.replace('unlisted_text = "X"', 'unlisted_text = "XZ"')
    assert broken != good
    (tmp_path / "basic.toml").write_text(broken)
    monkeypatch.setattr(prof, "builtin_path", lambda name: tmp_path / f"{name}.toml")
    line = 1 + broken.splitlines().index('unlisted_text = "XZ"')
    with pytest.raises(ProfileError, match=rf"basic\.toml line {line}: unknown action 'XZ' for unlisted_text"):
        load_profile("basic")
    (tmp_path / "basic.toml").write_text(good.replace("[extra]", "[extras]"))
    with pytest.raises(ProfileError, match=r"basic\.toml line \d+: unknown top-level key 'extras'"):
        load_profile("basic")


@pytest.mark.parametrize("action,typ,expected", [
    ("X/Z", 2, "Z"), ("X/Z", 3, "X"), ("X/Z", None, "X"),
    ("X/D", 1, "D"), ("X/D", None, "X"),
    ("Z/D", 1, "D"), ("Z/D", 2, "Z"), ("Z/D", None, "Z"),
    ("X/Z/D", 1, "D"), ("X/Z/D", 2, "Z"), ("X/Z/D", 3, "X"), ("X/Z/D", None, "X"),
    ("X/Z/U*", 1, "U"), ("X/Z/U*", 2, "U"), ("X/Z/U*", 3, "X"), ("X/Z/U*", None, "X"), ("K", None, "K"),
])
def test_compound_actions(action, typ, expected):
    assert resolve_compound(action, typ) == expected


def test_iod_types():
    cr, dx = "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1"
    assert attribute_type(cr, T("ContentDate")) == 2
    assert attribute_type(dx, T("AcquisitionContextSequence")) == 2
    assert attribute_type(cr, T("AcquisitionContextSequence")) is None
    assert attribute_type("1.2.3", T("ContentDate")) is None
