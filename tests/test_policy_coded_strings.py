"""Coded strings (VR CS) of attributes PS3.15 Table E.1-1 does not list (red team 6): kept only
as a listed term of their attribute (schemas/deid/coded_strings.toml), else removed or given
what the IOD's Type asks; what a VinDr-style release needs (view, laterality, body part, image
type) is still kept."""
from __future__ import annotations

import re
import tomllib

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement

from vindr_cli.deid import policy
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.resources import schema_path

DX = "1.2.840.10008.5.1.4.1.1.1.1"


def _judge(keyword: str, value, **kw) -> policy.Verdict:
    tag = tag_for_keyword(keyword)
    return policy.judge(DataElement(tag, "CS", value), top=True, **kw)


def test_every_entry_is_a_cs_attribute_whose_terms_fit_the_cs_grammar_and_has_a_source():
    data = tomllib.loads(schema_path("deid", "coded_strings.toml").read_text(encoding="utf-8"))["attributes"]
    rules = policy.coded_rules()
    assert set(rules) == set(data) and len(rules) >= 40
    for kw, entry in data.items():
        assert entry["source"].startswith("PS3."), kw
        assert dictionary_VR(tag_for_keyword(kw)) == "CS", kw
        assert rules[kw].terms or rules[kw].digits, kw
        for t in rules[kw].terms:
            if kw != "BodyPartExamined":      # body part synonyms are matched normalised (curate)
                assert re.fullmatch(r"[A-Z0-9 _]{1,16}", t), (kw, t)
    assert {"PA", "AP", "LL"} <= rules["ViewPosition"].terms
    assert rules["ImageLaterality"].terms == {"L", "R", "B", "U"}
    assert {"CHEST", "SPINE", "THORAX", "LSPINE"} <= rules["BodyPartExamined"].terms


@pytest.mark.parametrize("keyword,value", [
    ("ViewPosition", "PN0678901"), ("ViewPosition", "NGUYEN VAN AN"), ("ImageLaterality", "LE VAN TAM"),
    ("ConversionType", "TRUONG VAN LONG"), ("BodyPartExamined", "TRAN THI BICH"), ("PatientOrientation", ["L", "AN"]),
    ("StudyStatusID", "QCSUCCESS"), ("ContentLabel", "BACH MAI 2024"), ("ImageType", ["SH2401150001", "PRIMARY"]),
    ("LossyImageCompression", "12345"),
])
def test_a_value_that_is_not_a_listed_term_is_refused(keyword, value):
    assert _judge(keyword, value).reason == policy.UNSAFE_TEXT


@pytest.mark.parametrize("keyword,value", [
    ("ViewPosition", "PA"), ("ViewPosition", "AP"), ("ViewPosition", "LL"), ("ViewPosition", "LATERAL"),
    ("ImageLaterality", "L"), ("ImageLaterality", "R"), ("ImageLaterality", "B"), ("ImageLaterality", "U"),
    ("BodyPartExamined", "CHEST"), ("BodyPartExamined", "SPINE"), ("BodyPartExamined", "CSPINE"),
    ("BodyPartExamined", "THORAX"), ("BodyPartExamined", "WHOLE BODY"), ("ConversionType", "WSD"), ("PresentationIntentType", "FOR PRESENTATION"),
    ("ImageType", ["ORIGINAL", "PRIMARY"]), ("ImageType", ["DERIVED", "SECONDARY", "AXIAL"]),
    ("ImageType", ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]), ("ImageType", ["ORIGINAL", "PRIMARY", "", "0001"]),
    ("PatientOrientation", ["A", "F"]), ("PatientSex", "F"), ("Modality", "DX"), ("LossyImageCompression", "01"),
    ("ViewPosition", "ANONYMOUS"), ("ViewPosition", ""),          # vindr's own dummy, empty (Type 2)
])
def test_a_listed_term_stays_as_it_is(keyword, value):
    v = _judge(keyword, value)
    assert v.ok and v.value is None


def test_an_unlisted_image_type_value_is_emptied_in_place_and_values_after_it_kept():
    v = _judge("ImageType", ["ORIGINAL", "PRIMARY", "SH2401150001", "M"])
    assert v.ok and list(v.value) == ["ORIGINAL", "PRIMARY", "", "M"]
    v = _judge("ImageType", ["DERIVED", "SECONDARY", "LE VAN TAM"])
    assert v.ok and list(v.value) == ["DERIVED", "SECONDARY"]
    assert _judge("ImageType", ["ORIGINAL", "PRIMARY", "12345"]).value == ["ORIGINAL", "PRIMARY"]


def test_lower_case_is_normalised_to_the_listed_term_and_an_explicit_keep_is_not_judged():
    v = _judge("ViewPosition", "pa")
    assert v.ok and v.value == "PA"
    assert _judge("ViewPosition", "NGUYEN VAN AN", trusted_text=True).ok     # a Table E.1-1 / recipe K


def test_a_dx_keeps_view_laterality_body_part_and_image_type_and_loses_planted_codes(tmp_path, key_file):
    """Through the anonymizer (basic profile, DX where ViewPosition and ImageType are Type 1 and
    ImageLaterality Type 1 too): listed terms are written as they were; a planted name or ID
    is removed or replaced by what the IOD's Type asks, never written."""
    from conftest import make_cr

    def extra(ds, view, lat, part, itype, conv):
        ds.SOPClassUID = DX
        ds.Modality = "DX"
        ds.ViewPosition, ds.ImageLaterality, ds.BodyPartExamined = view, lat, part
        ds.ImageType, ds.ConversionType = itype, conv
        ds.PresentationIntentType = "FOR PRESENTATION"

    good = ("PA", "B", "CHEST", ["ORIGINAL", "PRIMARY", "", "NORM"], "DI")
    bad = ("PN0678901", "LE VAN TAM", "TRAN THI BICH", ["ORIGINAL", "PRIMARY", "SH2401150001"], "TRUONG VAN LONG")
    for i, vals in enumerate((good, bad)):
        make_cr(tmp_path / "in" / f"{i}.dcm", pid=f"PID000{i}", sop=f"1.2.826.0.1.3680043.10.543.1.1.{i + 1}",
                extra=lambda ds, v=vals: extra(ds, *v))
    anonymize(tmp_path / "in", tmp_path / "out", key_path=key_file, profile=load_profile(), workers=1,
              write_linkage=False, burned_in="off")
    outs = [pydicom.dcmread(p) for p in sorted((tmp_path / "out").rglob("*.dcm"))]
    assert len(outs) == 2
    by_view = {str(d.get("ViewPosition", "")): d for d in outs}
    kept = by_view["PA"]
    assert (kept.ImageLaterality, kept.BodyPartExamined, list(kept.ImageType), kept.ConversionType,
            kept.PresentationIntentType) == ("B", "CHEST", ["ORIGINAL", "PRIMARY", "", "NORM"], "DI", "FOR PRESENTATION")
    [other] = [d for d in outs if d is not kept]
    blob = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    for planted in ("PN0678901", "LE VAN TAM", "TRAN THI BICH", "SH2401150001", "TRUONG VAN LONG"):
        assert planted.encode() not in blob
    assert list(other.ImageType) == ["ORIGINAL", "PRIMARY"]
    for kw in ("ViewPosition", "ImageLaterality", "BodyPartExamined", "ConversionType"):
        assert str(other.get(kw, "")) in ("", "ANONYMOUS"), kw


def test_audit_reports_a_planted_code_that_is_no_listed_term_and_not_the_listed_ones(tmp_path, key_file):
    """Check mode: the same rule in `vindr audit` (a file planted into OUTPUT after the fact)."""
    from test_safe_default import anonymized, plant_and_audit, real

    ds = real("CT_small.dcm")
    ds.ViewPosition = "AP"
    out, output, _ = anonymized(tmp_path, key_file, ds)
    assert pydicom.dcmread(output).ViewPosition == "AP"
    from vindr_cli.deid.audit import audit
    assert not [f for f in audit(out).findings if f.kind == policy.UNSAFE_TEXT]
    plant_and_audit(out, output, lambda d: setattr(d, "ViewPosition", "PN0678901"), policy.UNSAFE_TEXT, "(0018,5101)")
