"""The closed vocabulary of reasons (schemas/tables/reasons.json, vindr_cli/reasons.py).

A release copies counts of anonymize's and select's reasons into datasheet.json, README.md
and split_report.json; a reason outside the vocabulary (a hand-edited table) is shown as
"(other reason)". These tests keep the vocabulary and the code in step two ways: every reason
the code base can write (read from its source: the arguments of the exceptions that carry
reasons, ``reason=`` keywords, the constants a reason function returns) is in it, and every
reason a real anonymize run wrote (the sample export, hostile inputs, damaged files) is too."""
from __future__ import annotations

import ast
import errno
import importlib
import os
import re
import shutil
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest

from conftest import SAMPLE, make_cr
from fuzzing import campaign, seeds
from helpers import key_file_in
from vindr_cli import reasons
from vindr_cli.curate import qc
from vindr_cli.curate.select import REASON_ORDER

PKG = Path(reasons.__file__).resolve().parent
# the packages whose code writes anonymize's manifest reasons (deid.task, deid.batch, runner.stage)
WRITERS = ("deid", "dicomio", "runner")
# exceptions that carry a reason into a manifest row: (class name, index of the reason argument)
CARRIERS = {"BadInput": 1, "Malformed": 0, "PixelError": 0, "EngineError": 0, "PathViolation": 0, "ItemFailed": 0,
            "Source": 4}
LOCALS = {"reason", "why", "fault"}               # local names a reason is assigned to before it is used
SECRET = "QXNAME^SECRET"


def _skeleton(node: ast.JoinedStr) -> str:
    return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def _written(mod, node, out: set[str], skeletons: set[str]) -> None:
    """Add the reason(s) an expression can give: literals, module constants (also imported
    ones, read from the imported module), f-strings as skeletons; other expressions pass a
    reason made elsewhere (``exc.reason``, ``str(exc)``) and are covered where it is made."""
    if isinstance(node, ast.IfExp):
        _written(mod, node.body, out, skeletons)
        _written(mod, node.orelse, out, skeletons)
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        out.add(node.value)
    elif isinstance(node, ast.Name) and isinstance(getattr(mod, node.id, None), str):
        out.add(getattr(mod, node.id))
    elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and isinstance(getattr(getattr(mod, node.value.id, None), node.attr, None), str)):
        out.add(getattr(getattr(mod, node.value.id), node.attr))
    elif isinstance(node, ast.JoinedStr):
        skeletons.add(_skeleton(node))


def code_reasons() -> tuple[set[str], set[str], int]:
    """(reasons, f-string skeletons, modules read) the manifest writers can produce."""
    out: set[str] = set()
    skeletons: set[str] = set()
    n = 0
    for sub in WRITERS:
        for path in sorted((PKG / sub).glob("*.py")):
            name = f"vindr_cli.{sub}" + ("" if path.stem == "__init__" else f".{path.stem}")
            mod = importlib.import_module(name)
            n += 1
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                exprs = []
                if isinstance(node, ast.Call):
                    f = node.func
                    called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                    if called in CARRIERS and len(node.args) > CARRIERS[called]:
                        exprs.append(node.args[CARRIERS[called]])
                    exprs += [k.value for k in node.keywords if k.arg in ("reason", "missing_reason")]
                elif isinstance(node, ast.FunctionDef) and ("reason" in node.name or "fault" in node.name):
                    exprs += [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None]
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    target = node.targets[0].id
                    if target in LOCALS or target.startswith("REASON_") or target.endswith("_REASON"):
                        exprs.append(node.value)
                for e in exprs:
                    _written(mod, e, out, skeletons)
    return out, skeletons, n


def _template_skeletons(table: str) -> set[str]:
    return {re.sub(r"\{[a-z_]+\}", "{}", t) for t in reasons.vocabulary()["tables"][table]["templates"]}


def test_every_reason_the_code_can_write_into_the_manifest_is_in_the_vocabulary():
    found, skeletons, modules = code_reasons()
    assert modules >= 30 and len(found) >= 55          # the scan reads the writers, not an empty folder
    missing = sorted(s for s in found if not reasons.known("anonymize_manifest", s))
    assert missing == []
    # an f-string made wholly of variables ("{default} ({errno})": discover.os_reason) is
    # checked by calling it below; every other one needs a template with its fixed parts
    partial = {s for s in skeletons if not s.startswith("{}")}
    assert len(partial) >= 6
    assert partial <= _template_skeletons("anonymize_manifest")


def test_reasons_made_from_a_closed_set_are_in_the_vocabulary():
    from vindr_cli.deid import burned_in
    from vindr_cli.runner.discover import UNLISTABLE, os_reason

    for code in (errno.EACCES, errno.ENOENT, errno.EIO, errno.ENAMETOOLONG, errno.ELOOP, errno.EISDIR, None):
        for default in ((), (UNLISTABLE,)):
            r = os_reason(OSError(code, "QXNAME /secret/path"), *default)
            assert reasons.known("anonymize_manifest", r), r
    ds = pydicom.Dataset()
    uids = list(burned_in.risky_sop_classes()) + [p + "99" for p in burned_in._policy()["sop_class_prefixes"]]
    assert len(uids) >= 15
    for uid in uids:
        ds.SOPClassUID = uid
        r = burned_in.quarantine_reason(ds)
        assert r and reasons.known("anonymize_manifest", r), r
    for flag in ("BurnedInAnnotation", "RecognizableVisualFeatures"):
        one = pydicom.Dataset()
        setattr(one, flag, "YES")
        assert reasons.known("anonymize_manifest", burned_in.quarantine_reason(one))
    for exc in (ValueError, KeyError, OverflowError, UnicodeDecodeError, zipfile.BadZipFile,
                pydicom.errors.InvalidDicomError, StopIteration, __import__("zlib").error, __import__("struct").error):
        assert reasons.known("anonymize_manifest", f"unexpected error ({exc.__name__})"), exc
        assert reasons.known("anonymize_manifest", f"unreadable header ({exc.__name__})"), exc


def test_a_variable_part_outside_its_closed_set_is_not_a_known_reason():
    for r in (f"SOP Class {SECRET} commonly carries burned-in or embedded text",
              "SOP Class Secondary Capture Image commonly carries burned-in or embedded text and Nguyen Van A",
              "could not be read (ENGUYEN)", "unexpected error (Nguyen Van A)", "unexpected error (NguyenVanA)",
              "unknown substitute kind nguyen", "unknown action NGUYEN", "permission denied ", " permission denied",
              "PERMISSION DENIED", "", None, 3, ["permission denied"]):
        assert not reasons.known("anonymize_manifest", r), r
        assert reasons.shown("anonymize_manifest", r) == reasons.OTHER
    assert reasons.shown("anonymize_manifest", "permission denied") == "permission denied"


def test_the_selection_vocabulary_is_select_s_reason_order_with_every_qc_flag():
    exact = reasons.vocabulary()["tables"]["selection"]["exact"]
    assert len(exact) == len(set(exact))
    expected = {r for r in REASON_ORDER if r != "qc:"} | {f"qc:{f}" for f in qc.FLAGS}
    assert set(exact) == expected
    assert not reasons.known("selection", "qc:" + SECRET) and not reasons.known("selection", "qc:")


def test_a_hand_edited_selection_reason_is_counted_never_quoted(tmp_path):
    import pandas as pd

    from vindr_cli.release.selection import Selection

    rows = pd.DataFrame({"image_id": ["a" * 32, "b" * 32, "c" * 32], "selected": [False, False, True],
                         "reasons": [["age", SECRET], ["qc:blank"], []]})
    sel = Selection(path=tmp_path, rows=rows, selected=frozenset({"c" * 32}))
    assert sel.reason_counts() == {"(other reason)": 1, "age": 1, "qc:blank": 1}
    assert SECRET not in str(sel.summary())


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """vindr anonymize over the sample export plus hostile and damaged inputs: what it wrote."""
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from test_structure import mutants

    base = tmp_path_factory.mktemp("reasons")
    src = base / "in"
    shutil.copytree(SAMPLE / "export", src / "export")
    odd = src / "odd"
    odd.mkdir()
    (odd / "empty.dcm").write_bytes(b"")
    (odd / "notes.txt").write_text("not a DICOM file\n")
    (odd / "no_preamble.dcm").write_bytes(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + b"\x00" * 64)
    os.symlink(src / "export", odd / "link")
    os.mkfifo(odd / "pipe")
    leaf = zipfile.ZipFile(odd / "l.zip", "w")
    leaf.writestr("x.dcm", b"\x00" * 200)
    leaf.close()
    data = (odd / "l.zip").read_bytes()
    for depth in range(5):                                  # nested deeper than vindr opens
        inner = base / f"z{depth}.zip"
        with zipfile.ZipFile(inner, "w") as z:
            z.writestr("inner.zip", data)
        data = inner.read_bytes()
    (odd / "deep.zip").write_bytes(data)
    with zipfile.ZipFile(odd / "escape.zip", "w") as z:
        z.writestr("../x.dcm", b"\x00" * 10)
    for name in ("SC_rgb.dcm", "CT_small.dcm", "rtplan.dcm"):
        p = pydicom.data.get_testdata_file(name, download=False)
        if p:
            shutil.copy(p, odd / name)
    make_cr(odd / "cr.dcm", rows=32, cols=24)
    shutil.copy(odd / "cr.dcm", odd / "cr_copy.dcm")         # same SOP instance: duplicate
    for name, (blob, _) in mutants().items():
        (odd / name).write_bytes(blob)
    campaign(seeds(base / "seeds", make_cr, ["QXNAME^SECRET"]), 40, 7, odd / "fuzz")
    anonymize(src, base / "anon", key_path=key_file_in(base), profile=load_profile(), workers=1)
    return base / "anon"


def test_every_reason_anonymize_wrote_is_in_the_vocabulary(hostile_run):
    anon = hostile_run
    hostile_run = pq.read_table(anon / "manifest.parquet").to_pylist()
    written = {r["reason"] for r in hostile_run if r["status"] != "ok"}
    assert len(written) >= 20                                   # the run reached many kinds of reason
    statuses = {r["status"] for r in hostile_run}
    assert {"ok", "quarantined", "failed", "not-dicom", "duplicate"} <= statuses
    assert sorted(r for r in written if not reasons.known("anonymize_manifest", r)) == []
    assert all(r["reason"] is None for r in hostile_run if r["status"] == "ok")


def test_every_reason_select_wrote_is_in_the_vocabulary(hostile_run, tmp_path):
    from vindr_cli.curate.recipe import load_recipe
    from vindr_cli.curate.select import select

    written = set()
    for recipe in ("vindr-cxr", "vindr-spinexr"):
        sel = tmp_path / recipe
        select(hostile_run, sel, load_recipe(recipe), seed=0, n=None, workers=1)
        rows = pq.read_table(sel / "selection.parquet").to_pylist()
        written |= {r for row in rows for r in row["reasons"]}
    assert len(written) >= 5                                    # the run gave reasons of several kinds
    assert sorted(r for r in written if not reasons.known("selection", r)) == []


# --- split_report.json: the reasons of bad annotation rows (table annotation_rows) -----------

ROW_WRITERS = ("annotations/read.py", "annotations/csvfile.py")


def row_reasons() -> tuple[set[str], set[str]]:
    """(literal reasons, f-string skeletons) the annotation readers give a bad row: the
    second argument of ``chk.fail`` (a string, or a lambda returning one) and of ``BadRow``."""
    out: set[str] = set()
    skeletons: set[str] = set()
    for rel in ROW_WRITERS:
        path = PKG / rel
        mod = importlib.import_module("vindr_cli." + rel[:-3].replace("/", "."))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if called not in ("fail", "BadRow"):
                continue
            arg = node.args[1]
            _written(mod, arg.body if isinstance(arg, ast.Lambda) else arg, out, skeletons)
    return out, skeletons


def test_every_bad_row_reason_the_readers_can_write_is_in_the_vocabulary():
    found, skeletons = row_reasons()
    assert len(found) >= 10 and len(skeletons) >= 7          # the scan read the readers
    assert sorted(r for r in found if not reasons.known("annotation_rows", r)) == []
    assert skeletons <= _template_skeletons("annotation_rows"), skeletons - _template_skeletons("annotation_rows")


def test_bad_rows_in_split_report_are_vindr_s_words_only(tmp_path):
    """A real split over an annotation file with every kind of bad row, some holding a secret:
    no reason quotes it (annotations/badrows.quote), split_report.json shows each reason in the
    vocabulary (a listed class name and a short class_id may stay) and never the secret; the
    console table shows the same reasons."""
    import io
    import json

    import pandas as pd
    from rich.console import Console

    from vindr_cli.release.split import split_dataset
    from vindr_cli.release.split_report import render_split_report

    header = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max"
    ids = [f"i{k:03d}" for k in range(30)]
    good = [f"{i},{'Cardiomegaly,3' if k % 3 == 0 else 'No finding,14'},R1," + ("10,10,50,50" if k % 3 == 0 else ",,,")
            for k, i in enumerate(ids)]
    bad = [f"i001,{SECRET},3,R2,10,10,50,50",              # unknown class
           f"i002,Cardiomegaly,{SECRET},R2,10,10,50,50",   # class_id not an integer
           "i003,Cardiomegaly,7,R2,10,10,50,50",           # id does not match the class
           "i004,Cardiomegaly,3,R2,,10,50,50",             # incomplete box
           "i005,Cardiomegaly,3,R2,50,10,10,50",           # inverted
           "i006,No finding,14,R2,1,1,5,5",                # No finding with a box
           ",Cardiomegaly,3,R2,10,10,50,50",               # empty image_id
           f"{SECRET},Cardiomegaly,3,R2,10,10,50,50",      # image not in the metadata
           "i007,Cardiomegaly,3,R2,10,10,5000,50",         # beyond the image
           "i008,Cardiomegaly,3,R2,10,10,50"]              # wrong field count
    ann = tmp_path / "a.csv"
    ann.write_text("\n".join([header, *good, *bad]) + "\n")
    meta = tmp_path / "m.csv"
    pd.DataFrame({"image_id": ids, "study_id": [f"s{k}" for k in range(30)], "patient_id": [f"p{k // 2}" for k in range(30)],
                  "rows": 100, "columns": 100}).to_csv(meta, index=False)
    r = split_dataset(ann, meta, test_size=8, seed=0, out_dir=tmp_path / "out")
    assert len(r.bad_rows) == len(bad) and not any(SECRET.split("^")[0] in b.reason for b in r.bad_rows)
    text = (tmp_path / "out" / "split_report.json").read_text()
    assert SECRET.split("^")[0] not in text
    rep = json.loads(text)["bad_rows"]
    assert sum(rep["by_reason"].values()) == len(bad) == len(rep["rows"])
    assert reasons.OTHER not in rep["by_reason"], rep["by_reason"]
    assert all(reasons.known("annotation_rows", k, reasons.label_set_extra(r.label_set)) for k in rep["by_reason"])
    assert any(k.startswith("unknown class <value>; label set ") for k in rep["by_reason"])
    assert "class_id <value> is not an integer" in rep["by_reason"]
    assert "class_id '7' does not match class 'Cardiomegaly' (id 3 in label set vinbigdata)" in rep["by_reason"]
    buf = io.StringIO()
    render_split_report(r, Console(file=buf, width=300, color_system=None))
    assert "unknown class <value>" in buf.getvalue() and SECRET.split("^")[0] not in buf.getvalue()


def test_a_masked_reason_is_shown_only_when_vindr_s_words_remain():
    assert reasons.shown_masked("annotation_rows", f"class_id '{SECRET}' is not an integer") == \
        "class_id <value> is not an integer"
    assert reasons.shown_masked("annotation_rows", f"class_id \"it's {SECRET}\" is not an integer") == \
        "class_id <value> is not an integer"
    for r in (f"unknown class '{SECRET}'; label set {SECRET} allows: x", f"{SECRET} without a box",
              f"class_id '1' is not an integer {SECRET}", "class_id <value> is not an integer'", None, 3):
        assert reasons.shown_masked("annotation_rows", r) == reasons.OTHER, r


def test_the_label_set_in_effect_may_be_named():
    mine = "unknown class '{}'; label set mine allows: Lesion, No finding"
    extra = {"label_set": ["mine"], "allowed": ["label set mine allows: Lesion, No finding"]}
    assert reasons.shown_masked("annotation_rows", mine.format(SECRET)) == reasons.OTHER
    assert reasons.shown_masked("annotation_rows", mine.format(SECRET), extra) == \
        "unknown class <value>; label set mine allows: Lesion, No finding"


def test_listed_names_and_short_numbers_stay_only_with_the_label_set_in_effect():
    """reasons.label_set_extra: a quoted listed name of the set in effect stays (labels.json
    publishes it), a short plain number stays (a class_id), anything else quoted is masked."""
    from vindr_cli.annotations.labels import builtin

    ls = builtin("vinbigdata")
    extra = reasons.label_set_extra(ls)
    wrong = "class_id '7' does not match class 'Cardiomegaly' (id 3 in label set vinbigdata)"
    assert reasons.shown_masked("annotation_rows", wrong, extra) == wrong
    assert reasons.shown_masked("annotation_rows", wrong) == \
        "class_id '7' does not match class <value> (id 3 in label set vinbigdata)"
    near = f"unknown class '{SECRET}'; closest listed class: 'Cardiomegaly'; {ls.allowed()}"
    assert reasons.shown_masked("annotation_rows", near, extra) == \
        f"unknown class <value>; closest listed class: 'Cardiomegaly'; {ls.allowed()}"
    for long in ("'1234'", "'BN7'", "'1e3'", f"'{SECRET}'"):
        assert reasons.shown_masked("annotation_rows", f"class_id {long} is not an integer", extra) == \
            "class_id <value> is not an integer", long


def test_every_prediction_row_reason_is_in_the_vocabulary(tmp_path):
    """A real evaluate over prediction files with every kind of bad row: each reason is in the
    vocabulary's prediction_rows (what evaluate shows, EvalResult.shown_bad_rows), none quotes
    the secret, and evaluate's --json shows no "(other reason)"."""
    import json

    from vindr_cli.evaluate.score import evaluate, to_json

    gt = tmp_path / "gt.csv"
    gt.write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                  "a,Cardiomegaly,3,R1,10,10,50,50\nb,No finding,14,R1,,,,\n")
    sub = tmp_path / "sub.csv"
    sub.write_text("image_id,PredictionString\n"
                   "a,3 0.9 10 10 50 50 8\n"                              # tokens
                   f"b,14 1 0 0 1 1 {SECRET} 0.5 0 0 1 1\n"                # box 2: unknown class id
                   "a,3 0.9 10 10 50 50\n"                                 # repeated
                   "ghost,3 0.9 10 10 50 50\n"                             # not in the ground truth
                   ",3 0.9 10 10 50 50\n")                                 # empty image_id
    rows = tmp_path / "rows.csv"
    rows.write_text("image_id,class_id,class_name,score,x_min,y_min,x_max,y_max\n"
                    f"a,3,Cardiomegaly,{SECRET},10,10,50,50\n"             # score not a number
                    "a,3,Cardiomegaly,-inf,10,10,50,50\n"                  # not finite
                    "a,3,Cardiomegaly,0.5,50,10,10,50\n"                   # inverted
                    "a,3,Cardiomegaly,0.5,10,10,,50\n"                     # empty coordinate
                    f"a,3,{SECRET},0.5,10,10,50,50\n"                      # unknown class name
                    "a,7,Cardiomegaly,0.5,10,10,50,50\n"                   # id and name disagree
                    "a,3,Cardiomegaly,0.5,10,10,50\n")                     # fields
    seen = []
    for pred in (sub, rows):
        r = evaluate(gt, pred)
        bad = [b for b in r.bad_rows if b.source == "pred"]
        assert bad and not any(SECRET.split("^")[0] in b.reason for b in bad)
        extra = reasons.label_set_extra(r.label_set)
        assert [b.reason for b in bad if not reasons.known("prediction_rows", b.reason, extra)] == []
        shown = json.loads(to_json(r))["bad_rows"]
        assert reasons.OTHER not in [b["reason"] for b in shown] and SECRET.split("^")[0] not in to_json(r)
        seen += [b.reason for b in bad]
    assert len(seen) == 12
    assert "box 2: unknown class id <value> (0..14 in label set vinbigdata)" in seen
    assert "class id 7 is 'Lung Opacity', not 'Cardiomegaly'" in seen and "score is -inf, not a finite number" in seen
