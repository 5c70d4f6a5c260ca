"""The release datasheet (RELEASE/README.md, datasheet.json, datasheet.png): facts counted
right (checked against the released DICOM headers read here independently), exclusions that
match the anonymize manifest, the audit status from a real `vindr audit --report`, the
licence stated, the JSON valid against its shipped schema, and no PHI and no free text in it."""
from __future__ import annotations

import json
from collections import Counter

import jsonschema
import pandas as pd
import pydicom
from hypothesis import given, settings, strategies as st

from helpers import run_cli
from test_sample_e2e import _phi_strings
from vindr_cli.release.datasheet import AGE_BINS, CODE, OTHER, UNKNOWN, _code, _maker, age_bin, age_years, distributions
from vindr_cli.resources import schema_path


def _released_headers(release):
    images = pd.read_csv(release / "images.csv", dtype=str).drop_duplicates("dicom")
    return [pydicom.dcmread(release / d, stop_before_pixels=True) for d in images["dicom"]]


def test_datasheet_counts_match_the_released_headers(pipeline):
    base, release = pipeline
    sheet = json.loads((release / "datasheet.json").read_text())
    jsonschema.validate(sheet, json.loads(schema_path("release", "datasheet.json").read_text()))
    headers = _released_headers(release)
    d = sheet["distributions"]
    assert sheet["facts_source"] == "DICOM headers"
    assert d["modality"] == dict(Counter(h.Modality for h in headers))
    assert d["sex"] == dict(Counter(h.PatientSex for h in headers))
    assert d["size"] == dict(Counter(f"{h.Rows}x{h.Columns}" for h in headers))
    assert d["bits_stored"] == dict(Counter(str(h.BitsStored) for h in headers))
    ages = Counter(age_bin(age_years(h.get("PatientAge"))) for h in headers)
    assert {k: v for k, v in d["age"].items() if v} == dict(ages)
    for key in ("modality", "body_part", "view", "laterality", "sex", "age", "manufacturer", "size", "bits_stored"):
        assert sum(d[key].values()) == len(headers), key
    assert sum(sum(v.values()) for v in d["age_by_sex"].values()) == len(headers)
    # exclusions: the manifest's rows that are not ok, by status
    m = pd.read_parquet(base / "anon" / "manifest.parquet")
    want = m.loc[m["status"] != "ok", "status"].value_counts().to_dict()
    assert {s: sum(r.values()) for s, r in sheet["excluded"]["anonymize"].items()} == want
    # every reason vindr anonymize wrote is its own, so quoted (schemas/tables/reasons.json)
    assert {r: n for rs in sheet["excluded"]["anonymize"].values() for r, n in rs.items()} == \
        m.loc[m["status"] != "ok", "reason"].value_counts().to_dict()
    assert sheet["split"]["seed"] == 3 and sheet["deid"]["profile"] == "basic"
    readme = (release / "README.md").read_text()
    assert "Not audited" in readme and "the data custodian must choose a licence" in readme
    assert sheet["audit"] == {"status": "not audited"} and sheet["licence"] == "not set"
    png = release / sheet["chart"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({sheet['chart']})" in readme
    assert "| Seed" not in readme and "Seed 3" in readme


def test_datasheet_holds_no_phi(pipeline):
    _, release = pipeline
    phi = [s.lower() for s in _phi_strings()]
    for name in ("README.md", "datasheet.json"):
        text = (release / name).read_text().lower()
        assert not [s for s in phi if s in text], name


def test_audit_report_and_licence_in_the_datasheet(pipeline, tmp_path):
    base, _ = pipeline
    report = tmp_path / "audit.json"
    p = run_cli("audit", base / "anon", "--report", report, check=False)
    assert p.returncode in (0, 1) and report.is_file()
    audit = json.loads(report.read_text())
    out = tmp_path / "rel"
    run_cli("release", base / "anon", "--split", base / "split", "-o", out, "--audit-report", report,
            "--licence", "CC BY-NC 4.0 (PhysioNet credentialed)")
    sheet = json.loads((out / "datasheet.json").read_text())
    assert sheet["audit"]["status"] == ("clean" if audit["findings_total"] == 0 else "findings")
    assert sheet["audit"]["findings_total"] == audit["findings_total"]
    assert sheet["audit"]["files"] == audit["files"]
    assert sheet["licence"] == "CC BY-NC 4.0 (PhysioNet credentialed)"
    readme = (out / "README.md").read_text()
    assert "CC BY-NC 4.0 (PhysioNet credentialed)" in readme and "Not audited" not in readme
    # a file that is not an audit report is refused in one line, nothing written
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"hello": 1}))
    p = run_cli("release", base / "anon", "--split", base / "split", "-o", tmp_path / "r2", "--audit-report", bogus,
                check=False)
    assert p.returncode == 2 and "--audit-report" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r2").exists()


def test_age_parsing_and_bins():
    assert age_years("045Y") == 45 and age_years("006M") == 0.5 and age_years("014D") < 0.04
    assert age_years("45") is None and age_years(None) is None and age_years("045X") is None
    assert age_bin(17.99) == "<18" and age_bin(18) == "18-29" and age_bin(29.9) == "18-29"
    assert age_bin(30) == "30-39" and age_bin(79.9) == "70-79" and age_bin(80) == "80+" and age_bin(112) == "80+"
    assert age_bin(None) == "unknown" and age_bin(float("nan")) == "unknown" and age_bin(-1) == "unknown"


def test_free_text_is_never_shown():
    facts = pd.DataFrame({
        "modality": ["CR", "cr ", "Nguyễn Văn An"], "body_part": ["CHEST", "chest of Mr Bao", None],
        "view": ["PA", "AP", "see report 0909090123!"], "laterality": [None, "L", "R"], "sex": ["M", "X", "F"],
        "age_years": [45.0, None, 82.0], "manufacturer": ["GE Medical Systems", "Nguyen Van An Co., Ltd", "A^B"],
        "rows": [10, None, 5], "columns": [20, 3, 5], "bits_stored": [12, 12, None], "frames": [1, 1, 1]})
    d = distributions(facts)
    assert d["modality"] == {"CR": 2, OTHER: 1}
    assert d["body_part"] == {"CHEST": 1, OTHER: 1, UNKNOWN: 1}
    assert d["view"] == {"AP": 1, "PA": 1, OTHER: 1}
    assert d["sex"] == {"F": 1, "M": 1, UNKNOWN: 1}
    assert d["manufacturer"] == {OTHER: 2, "GE Medical Systems": 1}     # a listed vendor, else counted as other
    assert d["size"] == {"10x20": 1, "5x5": 1, UNKNOWN: 1}
    assert d["age"]["40-49"] == 1 and d["age"]["80+"] == 1 and d["age"]["unknown"] == 1
    assert list(d["age"]) == list(AGE_BINS)


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=40))
def test_a_shown_value_is_a_code_or_a_plain_maker(text):
    c = _code(text)
    assert c in (OTHER, UNKNOWN) or (CODE.fullmatch(c) and c == text.strip().upper())
    m = _maker(text)
    assert m in (OTHER, UNKNOWN) or (m == " ".join(text.split()) and m.isascii() and "^" not in m)
