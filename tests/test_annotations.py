"""Annotation tables (VinDr-CXR/Kaggle boxes, VinDr-CXR image labels, VinDr-SpineXR) and metadata."""
from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from vindr_cli.annotations import (BOX, NO_FINDING, BadRowsError, check_against_meta, detect_format,
                                   read_annotations, read_meta)
from vindr_cli.annotations.labels import builtin
from vindr_cli.synth.annotations import SPINE_LESIONS
from vindr_cli.tables import write_table

SAMPLE = Path(__file__).resolve().parent.parent / "sample_dicoms" / "annotations"

CXR_HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_cxr_boxes_parse():
    df, bad = read_annotations(SAMPLE / "vindr_cxr_annotations.csv")
    assert df.attrs["format"] == "cxr-boxes" and not bad
    with open(SAMPLE / "vindr_cxr_annotations.csv", encoding="utf-8", newline="") as f:
        n = sum(1 for _ in csv.DictReader(f))              # 63 today
    assert len(df) == n
    assert list(df.columns[:4]) == ["line", "image_id", "reader", "label"]
    assert df["line"].tolist() == list(range(2, n + 2))
    nf = df[df["label"] == NO_FINDING]
    assert len(nf) > 0 and nf[list(BOX)].isna().all().all()
    boxed = df[df["label"] != NO_FINDING]
    assert (boxed["x_max"] > boxed["x_min"]).all() and (boxed["y_max"] > boxed["y_min"]).all()
    assert set(df["reader"]) == {"R1", "R2", "R3"}


def test_sample_spinexr_parse():
    df, bad = read_annotations(SAMPLE / "vindr_spinexr_annotations.csv")
    assert df.attrs["format"] == "spinexr" and not bad
    # expectations from the file itself (read apart with the csv module) and the generator's
    # lesion list (vindr_cli.synth.annotations): regenerating sample_dicoms/ changes the boxes
    with open(SAMPLE / "vindr_spinexr_annotations.csv", newline="", encoding="utf-8") as f:
        raw = list(csv.DictReader(f))
    assert len(df) == len(raw) >= 8
    assert {"study_id", "series_id"} <= set(df.columns)
    assert set(df["label"]) == {r["lesion_type"] for r in raw}
    assert set(df["label"]) <= {*SPINE_LESIONS, NO_FINDING} and NO_FINDING in set(df["label"])


def test_image_labels_parse(tmp_path):
    p = _write(tmp_path / "image_labels.csv",
               "image_id,rad_id,Aortic enlargement,Lung tumor,Pneumonia,No finding\n"
               "a,R1,1,0,1,0\n"
               "a,R2,0,0,0,1\n"
               "b,R1,0,0,0,0\n"
               "c,R3,2,0,0,0\n"
               "d,R1,0,,0,1\n")
    df, bad = read_annotations(p)
    assert df.attrs["format"] == "cxr-image-labels"
    assert df.attrs["labels"] == ["Aortic enlargement", "Lung tumor", "Pneumonia", "No finding"]
    rows = df[["line", "image_id", "reader", "label"]].astype(object).where(df[["line", "image_id", "reader", "label"]].notna(), None)
    assert rows.values.tolist() == [[2, "a", "R1", "Aortic enlargement"], [2, "a", "R1", "Pneumonia"],
                                    [3, "a", "R2", NO_FINDING], [4, "b", "R1", None]]
    assert [(r.line, r.reason) for r in bad] == [
        (5, "label 'Aortic enlargement' is '2', not 0 or 1"), (6, "label 'Lung tumor' is empty, not 0 or 1")]


def test_detect_format():
    assert detect_format(CXR_HEADER.split(",")) == "cxr-boxes"
    assert detect_format(["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"]) == "cxr-boxes"
    assert detect_format(["Image_ID ", "study_id", "series_id", "rad_id", "lesion_type", "xmin", "ymin", "xmax",
                          "ymax"]) == "spinexr"
    assert detect_format(["image_id", "rad_id", "COPD", "No finding"]) == "cxr-image-labels"
    for header in (["a", "b"], ["image_id", "rad_id"], ["image_id", "x_min", "y_min", "x_max", "y_max"],
                   ["image_id", "class_name", "x_min"]):
        with pytest.raises(ValueError):
            detect_format(header)


def test_physionet_vocabulary_without_class_id(tmp_path):
    p = _write(tmp_path / "a.csv", "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
                                   "a,R1,Rib fracture,1,1,5,5\n"
                                   "a,R2,interstitial  lung disease,1,1,5,5\n"
                                   "a,R3,no finding,,,,\n")
    df, bad = read_annotations(p)
    assert not bad
    assert df["label"].tolist() == ["Rib fracture", "ILD", NO_FINDING]


BAD_CXR = "\n".join([
    CXR_HEADER,                                              # 1
    "img1,Nodule/Mass,8,R1,10,10,20,20",                     # 2 ok
    "img1,Nodule/Mass,8,R2,20,10,10,20",                     # 3 inverted
    "img1,Banana,3,R3,10,10,20,20",                          # 4 unknown class
    "img2,No finding,14,R1,,,,",                             # 5 ok
    "img2,Cardiomegaly,3,R2,nan,10,20,20",                   # 6 NaN
    "img2,Cardiomegaly,4,R3,10,10,20,20",                    # 7 class_id mismatch
    "",                                                      # 8 blank: skipped, numbering kept
    "img3,Cardiomegaly,3,R1,,,,",                            # 9 finding without a box
    "img3,No finding,14,R2,1,1,2,2",                         # 10 No finding with a box
    "img3,Aortic enlargement,0,R3,-5,10,20,20",              # 11 negative
    ",Aortic enlargement,0,R3,5,10,20,20",                   # 12 empty image_id
    "img4,Aortic enlargement,0,R1,5,10,abc,20",              # 13 not a number
    "img9,Aortic enlargement,0,R1,5,10,20,20",               # 14 image not in the metadata
    "img4,Aortic enlargement,0,R2,5,10,300,20",              # 15 outside the image (columns 200)
    "img4,Pneumothorax,12,R3,5,10,200,100",                  # 16 ok: on the border
]) + "\n"


def test_bad_rows_reported_with_line_numbers(tmp_path):
    p = _write(tmp_path / "bad.csv", BAD_CXR)
    df, bad = read_annotations(p)
    got = {r.line: r.reason for r in bad}
    # an unknown class names the allowed ones (one line), never the row's own text (it may be a
    # name typed into the class column: badrows.quote); a wrong id says the right one
    kaggle15 = ", ".join(builtin("vinbigdata").classes)
    assert got[4] == f"unknown class <value>; label set vinbigdata allows: {kaggle15}"
    assert got[7] == "class_id '4' does not match class 'Cardiomegaly' (id 3 in label set vinbigdata)"
    assert {k: v for k, v in got.items() if k not in (4, 7)} == {
        3: "inverted or empty box (max <= min)",
        6: "NaN in box",
        9: "finding without a box",
        10: "No finding with a box",
        11: "box outside the image (negative coordinate)",
        12: "empty image_id",
        13: "box coordinate is not a number",
    }
    assert sorted(df["line"]) == [2, 5, 14, 15, 16]
    assert all("\n" not in r.reason for r in bad)
    meta = pd.DataFrame({"image_id": ["img1", "img2", "img3", "img4"], "study_id": ["s1", "s2", "s3", "s4"],
                         "patient_id": ["p1", "p1", "p2", "p3"], "rows": [100] * 4, "columns": [200] * 4})
    mp = tmp_path / "meta.csv"
    meta.to_csv(mp, index=False)
    kept, bad2 = check_against_meta(df, read_meta(mp))
    assert {r.line: r.reason for r in bad2} == {14: "image not in the metadata",
                                                15: "box outside the image (beyond columns/rows)"}
    assert sorted(kept["line"]) == [2, 5, 16]
    with pytest.raises(BadRowsError) as exc:
        read_annotations(p, strict=True)
    assert "line 3: inverted" in str(exc.value) and len(exc.value.bad) == 9
    with pytest.raises(BadRowsError):
        check_against_meta(df, read_meta(mp), strict=True)


def test_ragged_and_multiline_rows_keep_line_numbers(tmp_path):
    p = _write(tmp_path / "r.csv", CXR_HEADER + "\n"
               "a,Nodule/Mass,8,R1,1,1,2,2,EXTRA\n"        # 2: too many fields
               'b,"Nodule/Mass",8,"R\n1",1,1,2,2\n'        # 3-4: quoted newline in rad_id (one record)
               "c,Nodule/Mass,8,R1,1,1,0,2\n")             # 5: inverted
    df, bad = read_annotations(p)
    assert [(r.line, r.reason) for r in bad] == [(2, "9 fields, the header has 8"),
                                                  (5, "inverted or empty box (max <= min)")]
    assert df["line"].tolist() == [3]


def test_read_meta_csv_and_missing_patient(tmp_path):
    p = _write(tmp_path / "m.csv", "image_id,study_id,patient_id\na,s1,p1\nb,s1,\nb,s1,\nc,,p2\n")
    m = read_meta(p)
    assert m["image_id"].tolist() == ["a", "b", "c"]
    assert m["patient_id"].isna().tolist() == [False, True, False]
    assert m["rows"].isna().all()
    _write(tmp_path / "dup.csv", "image_id,study_id\na,s1\na,s2\n")
    with pytest.raises(ValueError, match="more than once"):
        read_meta(tmp_path / "dup.csv")
    with pytest.raises(ValueError, match="no image_id"):
        read_meta(_write(tmp_path / "x.csv", "id,study_id\na,b\n"))


def test_read_meta_from_anonymize_manifest(tmp_path):
    rows = []
    for i, status in enumerate(["ok", "ok", "quarantined", "failed", "ok", "duplicate"]):
        rows.append({"input_key": f"k{i}", "status": status, "image_id": f"{i:032x}" if status != "failed" else None,
                     "study_uid": f"2.25.{i // 2}", "patient_id": f"P{i // 3}", "rows": 100 + i, "columns": 200 + i})
    rows[5]["image_id"] = rows[0]["image_id"]          # a duplicate input of image 0, not ok
    rows[5]["study_uid"] = "2.25.99"
    path = tmp_path / "manifest.parquet"
    write_table(rows, "anonymize_manifest", path)
    m = read_meta(path)
    assert m["image_id"].tolist() == [f"{0:032x}", f"{1:032x}", f"{4:032x}"]
    assert m["study_id"].tolist() == ["2.25.0", "2.25.0", "2.25.2"]
    assert m["patient_id"].tolist() == ["P0", "P0", "P1"]
    assert m["rows"].tolist() == [100, 101, 104] and m["columns"].tolist() == [200, 201, 204]


# --------------------------------------------------------------------------- label sets

from vindr_cli.annotations import (COLUMNS, LabelSet, LabelSetError, load_labels,  # noqa: E402
                                   read_labels_json, read_predictions, to_published, write_labels_json)
from vindr_cli.annotations.labels import BUILTIN  # noqa: E402
from vindr_cli.errors import EXIT_FINDINGS, EXIT_REQUEST  # noqa: E402


def test_builtin_label_sets_as_published():
    kaggle = builtin("vinbigdata")
    assert len(kaggle) == 15 and kaggle.class_id("Nodule/Mass") == 8 and kaggle.no_finding_id == 14
    assert kaggle.classes[:3] == ("Aortic enlargement", "Atelectasis", "Calcification")
    cxr = builtin("vindr-cxr")
    assert len(cxr.classes) == 23 and cxr.classes[-1] == NO_FINDING        # 22 local + No finding
    assert {"Clavicle fracture", "Edema", "Rib fracture", "Lung cavity"} <= set(cxr.classes)
    assert cxr.global_labels == ("COPD", "Lung tumor", "Pneumonia", "Tuberculosis", "Other diseases")
    spine = builtin("vindr-spinexr")                                          # ONE order, the authors' code
    assert spine.classes == ("Osteophytes", "Surgical implant", "Spondylolysthesis", "Foraminal stenosis",
                             "Disc space narrowing", "Vertebral collapse", "Other lesions", NO_FINDING)
    for name in BUILTIN:
        s = builtin(name)
        assert s.name == name and s.source.strip() and ("http" in s.source or "github" in s.source)


def test_matching_rules():
    s = builtin("vinbigdata")
    assert s.match("Nodule/Mass") == "Nodule/Mass"                  # published spelling
    assert s.match("  nodule/MASS ") == "Nodule/Mass"               # documented: case and blanks
    assert s.match("Lung   opacity") == "Lung Opacity"
    assert s.match("Interstitial lung disease") == "ILD"            # alias from the TOML
    assert s.match("Clavicle fracture") is None and s.match("Nodule") is None
    cxr = builtin("vindr-cxr")
    assert cxr.match("Lung tumor") is None                          # image-level only, not a box class
    assert cxr.match("lung tumor", image_level=True) == "Lung tumor"
    assert cxr.match("Other disease", image_level=True) == "Other diseases"
    assert s.by_id("8") == 8 and s.by_id("8.0") == 8 and s.by_id("15") is None and s.by_id("x") is None
    assert s.allowed().startswith("label set vinbigdata allows: Aortic enlargement, Atelectasis,")


def test_label_set_files_and_labels_json(tmp_path):
    good = _write(tmp_path / "mine.toml", 'name = "mine"\nsource = "here"\nclasses = ["A b", "No finding"]\n'
                                          '[aliases]\n"ab" = "A b"\n')
    s = load_labels(good)
    assert s.classes == ("A b", NO_FINDING) and s.no_finding_id == 1 and s.match("AB") == "A b"
    assert load_labels("vindr-spinexr") is builtin("vindr-spinexr") and load_labels(None) is None
    write_labels_json(tmp_path / "labels.json", s)
    back = read_labels_json(tmp_path / "labels.json")
    assert back == s and back.source == "here" and load_labels(tmp_path / "labels.json") == s
    bad = {
        "nosource.toml": 'name = "x"\nclasses = ["A"]\n',
        "dup.toml": 'name = "x"\nsource = "s"\nclasses = ["A", "a"]\n',
        "alias.toml": 'name = "x"\nsource = "s"\nclasses = ["A"]\n[aliases]\n"b" = "B"\n',
        "key.toml": 'name = "x"\nsource = "s"\nclasses = ["A"]\ncolour = 1\n',
        "broken.toml": 'name = \n',
    }
    for fname, text in bad.items():
        with pytest.raises(LabelSetError) as exc:
            load_labels(_write(tmp_path / fname, text))
        assert exc.value.exit_code == EXIT_REQUEST and "\n" not in str(exc.value)
    with pytest.raises(LabelSetError, match="built in: vinbigdata"):
        load_labels("no-such-set")


def test_labels_replace_the_default_vocabulary(tmp_path):
    toml = _write(tmp_path / "two.toml", 'name = "two"\nsource = "s"\nclasses = ["Lesion", "No finding"]\n')
    p = _write(tmp_path / "a.csv", CXR_HEADER + "\na,lesion,0,R1,1,1,5,5\na,Lesion,1,R2,1,1,5,5\n"
                                                "b,Cardiomegaly,3,R1,1,1,5,5\nb,No finding,1,R2,,,,\n")
    df, bad = read_annotations(p, labels=toml)
    assert df.attrs["label_set"].name == "two"
    assert df["label"].tolist() == ["Lesion", NO_FINDING] and df["class_id"].tolist() == [0, 1]
    assert [(r.line, r.reason) for r in bad] == [
        (3, "class_id '1' does not match class 'Lesion' (id 0 in label set two)"),
        (4, "unknown class <value>; label set two allows: Lesion, No finding")]   # not a name of "two"


# --------------------------------------------------------------------------- one reader, every form

def test_every_form_through_the_one_reader(tmp_path):
    """Kaggle train.csv, PhysioNet local labels, image labels, SpineXR, a Kaggle submission and
    per-row predictions all come out as the same canonical table."""
    kaggle = _write(tmp_path / "k.csv", CXR_HEADER + "\na,Nodule/Mass,8,R1,1,2,3,4\nb,No finding,14,R1,,,,\n")
    local = _write(tmp_path / "l.csv", "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
                                       "a,R1,Clavicle fracture,1,2,3,4\n")
    labels = _write(tmp_path / "i.csv", "image_id,rad_id,COPD,Edema,No finding\na,R1,1,1,0\n")
    spine = _write(tmp_path / "s.csv", "image_id,study_id,series_id,rad_id,lesion_type,xmin,ymin,xmax,ymax\n"
                                       "a,s,t,R1,Osteophytes,1,2,3,4\n")
    sub = _write(tmp_path / "sub.csv", "image_id,PredictionString\na,8 0.5 1 2 3 4 14 0.25 0 0 1 1\n")
    rows = _write(tmp_path / "rows.csv", "image_id,class_name,score,x_min,y_min,x_max,y_max\na,nodule/mass,0.5,1,2,3,4\n")
    got = {}
    for name, path in (("kaggle", kaggle), ("local", local), ("labels", labels), ("spine", spine)):
        df, bad = read_annotations(path)
        assert not bad and tuple(df.columns[:len(COLUMNS)]) == COLUMNS, name
        got[name] = df
    for name, path in (("sub", sub), ("rows", rows)):
        df, bad = read_predictions(path, builtin("vinbigdata"))
        assert not bad and tuple(df.columns) == COLUMNS, name
        got[name] = df
    assert got["kaggle"].attrs["format"] == "cxr-boxes" and got["kaggle"].attrs["label_set"].name == "vinbigdata"
    assert got["kaggle"][["label", "class_id"]].values.tolist() == [["Nodule/Mass", 8], [NO_FINDING, 14]]
    assert got["local"].attrs["label_set"].name == "vindr-cxr" and got["local"]["class_id"].tolist() == [4]
    assert got["labels"]["label"].tolist() == ["COPD", "Edema"]
    assert got["labels"]["class_id"].isna().tolist() == [True, False]      # COPD is image-level only
    assert got["spine"]["class_id"].tolist() == [0] and got["spine"]["study_id"].tolist() == ["s"]
    assert got["sub"].attrs["format"] == "kaggle-submission" and got["rows"].attrs["format"] == "pred-boxes"
    assert got["sub"][["label", "score"]].values.tolist() == [["Nodule/Mass", 0.5], [NO_FINDING, 0.25]]
    assert got["rows"]["label"].tolist() == ["Nodule/Mass"] and got["rows"]["reader"].isna().all()
    assert got["sub"]["score"].notna().all() and got["kaggle"]["score"].isna().all()
    # and back to the published layouts, canonical names only
    pub = to_published(got["kaggle"], "cxr-boxes", class_id=True)
    assert pub.columns.tolist() == ["image_id", "rad_id", "class_name", "class_id", "x_min", "y_min", "x_max", "y_max"]
    wide = to_published(got["labels"], "cxr-image-labels")
    assert wide.values.tolist() == [["a", "R1", 1, 1, 0]]
    assert to_published(got["spine"], "spinexr").columns.tolist()[4:6] == ["lesion_type", "xmin"]


def test_bad_files_and_bad_rows_map_to_exit_codes(tmp_path):
    from vindr_cli.annotations import AnnotationInputError
    with pytest.raises(AnnotationInputError) as exc:
        read_annotations(_write(tmp_path / "p.csv", "image_id,PredictionString\na,\n"))
    assert exc.value.exit_code == EXIT_REQUEST and "prediction table" in str(exc.value)
    with pytest.raises(AnnotationInputError, match="not in the label set"):
        read_annotations(_write(tmp_path / "i.csv", "image_id,rad_id,Unicorn\na,R1,1\n"))
    with pytest.raises(BadRowsError) as bad:
        read_annotations(_write(tmp_path / "b.csv", CXR_HEADER + "\na,Unicorn,8,R1,1,1,2,2\n"), strict=True)
    assert bad.value.exit_code == EXIT_FINDINGS and bad.value.details[0].startswith("line 2: unknown class <value>; ")
    assert "Unicorn" not in str(bad.value) + "".join(bad.value.details)


def test_a_bad_row_reason_quotes_only_the_label_set_s_words_and_short_numbers(tmp_path):
    """A row's value is free text (a class typed with the patient's name): a reason shows it as
    <value>, except a listed name of the label set in effect or a short plain number (a class_id
    of at most 3 characters); a misspelt class names the closest listed class, never the value."""
    from vindr_cli.annotations.badrows import closest, mask_quoted, quote

    p = _write(tmp_path / "a.csv", CXR_HEADER + "\n"
               "a,Cardiomegly,3,R1,1,1,5,5\n"             # 2 misspelt: the closest listed class is named
               "a,Nguyen Van An,3,R1,1,1,5,5\n"           # 3 a name: nothing close, nothing quoted
               "a,Cardiomegaly,3.5,R1,1,1,5,5\n"          # 4 a short number may be shown
               "a,Cardiomegaly,7734561,R1,1,1,5,5\n"      # 5 a long number (an ID) is not
               "a,Cardiomegaly,8,R1,1,1,5,5\n"            # 6 the class (listed) and the id are shown
               "a,Cardiomegaly,BN77,R1,1,1,5,5\n")        # 7 text in class_id
    _, bad = read_annotations(p)
    allowed = builtin("vinbigdata").allowed()
    assert [(r.line, r.reason) for r in bad] == [
        (2, f"unknown class <value>; closest listed class: 'Cardiomegaly'; {allowed}"),
        (3, f"unknown class <value>; {allowed}"),
        (4, "class_id '3.5' is not an integer"),
        (5, "class_id <value> does not match class 'Cardiomegaly' (id 3 in label set vinbigdata)"),
        (6, "class_id '8' does not match class 'Cardiomegaly' (id 3 in label set vinbigdata)"),
        (7, "class_id <value> is not an integer")]
    assert quote("Nodule/Mass", ["Nodule/Mass"]) == "'Nodule/Mass'" and quote("Nodule/Mass") == "<value>"
    assert [quote(v) for v in ("15", " 3.5 ", "-1", "1000", "1e3", "0x1", "")] == \
        ["'15'", "'3.5'", "'-1'", "<value>", "<value>", "<value>", "<value>"]
    assert closest("PNEUMOTHORAX ", builtin("vinbigdata").classes) == "Pneumothorax"
    assert closest("Nodule/Mass Nguyen Van An", builtin("vinbigdata").classes) is None
    assert mask_quoted("class_id 'x' is 'Lesion', not '12' \"it's\"", ["Lesion"]) == \
        "class_id <value> is 'Lesion', not '12' <value>"


def test_a_quoted_value_is_never_more_than_a_listed_name_or_three_characters():
    """Property (Hypothesis, no deadline): whatever text a row holds, quote() gives <value>, a
    listed name, or a plain number of at most 3 characters; mask_quoted() of a reason quoting it
    the same."""
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from vindr_cli.annotations.badrows import MASK, mask_quoted, quote

    names = builtin("vindr-cxr").all_labels

    @settings(deadline=None, max_examples=150)
    @given(st.one_of(st.text(), st.sampled_from(names), st.from_regex(r"[+-]?[0-9]{1,6}(\.[0-9]{1,3})?", fullmatch=True)))
    def check(value):
        q = quote(value, names)
        assert q == MASK or q in {repr(n) for n in names} or re.fullmatch(r"'[+-]?[0-9.]{1,3}'", q) and len(q) <= 5
        if q != MASK:
            assert q == repr(re.sub(r"\s+", " ", value).strip())
        assert mask_quoted(f"class_id {value!r} is not an integer", names) in {
            f"class_id {q} is not an integer", f"class_id {MASK} is not an integer"}
    check()


def test_an_unknown_image_label_column_is_named_by_position(tmp_path):
    """A header cell that is no label is named by its column number (and the closest listed
    label), not by its text."""
    from vindr_cli.annotations import AnnotationInputError

    with pytest.raises(AnnotationInputError) as exc:
        read_annotations(_write(tmp_path / "i.csv", "image_id,rad_id,Pneumonia,Nguyen Van An,Pneumonai\na,R1,1,0,0\n"))
    msg = str(exc.value)
    assert msg.startswith("image label column 4, column 5 (closest listed label: 'Pneumonia') not in the label set; ")
    assert "Nguyen" not in msg and "Pneumonai" not in msg


def test_one_csv_reader_in_the_package():
    """Only annotations/csvfile.py parses CSV records with the csv module; no module keeps a copy."""
    root = Path(__file__).resolve().parent.parent / "vindr_cli"
    users = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                   if "csv.reader(" in p.read_text(encoding="utf-8") or "csv.DictReader(" in p.read_text(encoding="utf-8"))
    assert users == ["annotations/csvfile.py"]
