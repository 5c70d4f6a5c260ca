"""Hostile display attributes through `vindr decode` and hostile tables through the later stages
(issue 13, hostile11). Files are built in tmp_path from pydicom's bundled files
(``tests/hostile11_inputs.py``); the full set of cases is ``bench/hostile11_bench.py``'s. What it
found, one test each:

* a Modality LUT Sequence item without LUT Data or LUT Descriptor, an empty one, a descriptor
  of one or two values: "unexpected error (AttributeError / TypeError)" — a bug's reason; a
  table shorter than its descriptor declares was used as far as it went (values past it all
  took its last entry). Now one fixed reason (``voi.MODALITY_LUT_REASON``).
* the same damage in a VOI LUT Sequence item (``vindr anonymize`` removes a LUT Data it cannot
  keep: red team 8) made the image a failed row; now the item counts as absent and the header's
  window (else percentiles) is used, as for an unusable window.
* damaged Palette Color LUTs (a descriptor of two values, a table missing, empty or short):
  "unexpected error (TypeError / AttributeError / IndexError)"; now ``colour.PALETTE_REASON``.
* a Pixel Padding Value of two values or as bytes: "unexpected error (TypeError)" or "invalid
  display parameters"; now counted as absent, as an unreadable window is.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.sequence import Sequence

import hostile11_inputs as H
from vindr_cli.pixels.colour import PALETTE_REASON
from vindr_cli.pixels.resize import SizeSpec
from vindr_cli.pixels.task import Ctx, DecodeConfig, _decode
from vindr_cli.pixels.voi import MODALITY_LUT_REASON, BadRescale
from vindr_cli.pixels.window import parse_window_mode
from vindr_cli.runner.sources import Source

RAMP = list(range(0, 4096 * 16, 16))


def _rows(ds, tmp_path: Path, size: int | None = 32) -> list[dict]:
    path = H.save(ds, tmp_path / "in.dcm")
    out = tmp_path / "out"
    ctx = Ctx(DecodeConfig(output=str(out), size=SizeSpec(long_side=size)), parse_window_mode("header"), out)
    ctx.tmp.mkdir(parents=True, exist_ok=True)
    rows = _decode(ctx, Source(str(path), path.name, path.stat().st_size), "in", [])
    if any(r["status"] != "ok" for r in rows):
        assert list(ctx.tmp.iterdir()) == []      # nothing half-written left behind
    return rows


def _damaged_item(ds, seq: str, damage: str):
    item = getattr(ds, seq)[0]
    if damage == "no data":
        del item.LUTData
    elif damage == "no descriptor":
        del item.LUTDescriptor
    elif damage == "empty data":
        item.LUTData = b""
    elif damage == "two-value descriptor":
        item.add_new(0x00283002, "US", [4096, 0])
    elif damage == "short data":
        item.add_new(0x00283006, "US", list(range(10)))
    elif damage == "bits 40":
        item.add_new(0x00283002, "US", [4096, 0, 40])
    elif damage == "empty item":
        from pydicom.dataset import Dataset
        setattr(ds, seq, Sequence([Dataset()]))
    return ds


DAMAGES = ("no data", "no descriptor", "empty data", "two-value descriptor", "short data", "bits 40", "empty item")


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_modality_lut_is_a_fixed_reason(tmp_path, damage):
    ds = _damaged_item(H.modality_lut((4096, 0, 16), RAMP, "US"), "ModalityLUTSequence", damage)
    rows = _rows(ds, tmp_path)
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", MODALITY_LUT_REASON)]


def test_a_whole_modality_lut_is_applied(tmp_path):
    assert [r["status"] for r in _rows(H.modality_lut((4096, 0, 16), RAMP, "US"), tmp_path)] == ["ok"]
    packed = H.modality_lut((255, 0, 8), bytes(range(255)))         # 8-bit entries, odd count, padded
    assert [r["status"] for r in _rows(packed, tmp_path)] == ["ok"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_voi_lut_falls_back_to_the_window(tmp_path, damage):
    ds = _damaged_item(H.voi_lut((4096, 0, 12), list(range(4096)), "US"), "VOILUTSequence", damage)
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    rows = _rows(ds, tmp_path)
    assert [(r["status"], r["window_kind"], r["window_center"], r["window_width"]) for r in rows] == \
        [("ok", "window", 40.0, 400.0)]
    del ds.WindowCenter, ds.WindowWidth                     # no window either: percentiles
    assert [(r["status"], r["window_kind"]) for r in _rows(ds, tmp_path)] == [("ok", "percentile")]


def test_an_intact_voi_lut_is_still_used(tmp_path):
    rows = _rows(H.voi_lut((4096, 0, 12), list(range(4096)), "US"), tmp_path)
    assert [(r["status"], r["window_kind"]) for r in rows] == [("ok", "voi_lut")]


def _palette(damage: str):
    ds = H.palette()
    if damage == "two-value descriptor":
        ds.RedPaletteColorLookupTableDescriptor = [256, 0]
    elif damage == "no green data":
        del ds.GreenPaletteColorLookupTableData
    elif damage == "no descriptors":
        for c in ("Red", "Green", "Blue"):
            del ds[f"{c}PaletteColorLookupTableDescriptor"]
    elif damage == "short red data":
        ds.RedPaletteColorLookupTableData = ds.RedPaletteColorLookupTableData[:10]
    elif damage == "65536 entries declared":
        ds.RedPaletteColorLookupTableDescriptor = [0, 0, 16]
    elif damage == "bits 0":
        for c in ("Red", "Green", "Blue"):
            ds[f"{c}PaletteColorLookupTableDescriptor"].value = [256, 0, 0]
    return ds


@pytest.mark.parametrize("damage", ("two-value descriptor", "no green data", "no descriptors", "short red data",
                                    "65536 entries declared", "bits 0"))
def test_a_damaged_palette_is_a_fixed_reason(tmp_path, damage):
    rows = _rows(_palette(damage), tmp_path)
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", PALETTE_REASON)]


def test_an_intact_palette_is_rendered(tmp_path):
    rows = _rows(H.palette(), tmp_path)
    assert [(r["status"], r["channels"]) for r in rows] == [("ok", 3)]


@pytest.mark.parametrize("vr, value", [("US", [1, 2]), ("OB", b"\x01\x02\x03")])
def test_an_unreadable_padding_value_counts_as_absent(tmp_path, vr, value):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    rows = _rows(H.raw_set(H.attrs(WindowCenter=None, WindowWidth=None), 0x00280120, vr, value), tmp_path / "a")
    plain = _rows(H.attrs(WindowCenter=None, WindowWidth=None), tmp_path / "b")
    assert [r["status"] for r in rows] == ["ok"]
    # the percentile window over every pixel, as with no padding value at all
    assert [(r["window_center"], r["window_width"]) for r in rows] == \
        [(r["window_center"], r["window_width"]) for r in plain]


@pytest.mark.parametrize("slope, intercept", [("NaN", "0"), ("inf", "0"), ("1", "-inf"), ("-inf", "NaN"),
                                              ("1e308", "0"), ("-1e308", "0"), ("1", "1e301")])
def test_a_rescale_that_is_not_a_finite_number_is_a_fixed_reason(tmp_path, slope, intercept):
    ds = H.raw_set(H.raw_set(H.ct(), 0x00281053, "DS", slope), 0x00281052, "DS", intercept)
    rows = _rows(ds, tmp_path)
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", BadRescale.reason)]


@pytest.mark.parametrize("build, reason", [
    (lambda: _damaged_item(H.modality_lut((4096, 0, 16), RAMP, "US"), "ModalityLUTSequence", "no data"),
     MODALITY_LUT_REASON),
    (lambda: _palette("two-value descriptor"), PALETTE_REASON),
    (lambda: H.raw_set(H.ct(), 0x00281053, "DS", "NaN"), BadRescale.reason)])
def test_select_looks_give_the_same_fixed_reasons(tmp_path, build, reason):
    """vindr select's look (header thumbnail, QC, hash) said "invalid display parameters (DamagedLUT)"
    for a Modality LUT, an exception name outside the vocabulary."""
    from vindr_cli.curate.look import look_at

    seen = look_at(H.save(build(), tmp_path / "x.dcm"))
    assert (seen.phash, seen.reason) == (None, reason)


@pytest.mark.parametrize("value", [0, 4095])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (32, 32)])
def test_select_looks_at_constant_and_one_pixel_images(tmp_path, value, shape):
    from vindr_cli.curate.look import look_at

    seen = look_at(H.save(H.native_grey(*shape, value=value), tmp_path / "x.dcm"))
    assert seen.reason is None and len(seen.phash) == 16


# ---------------------------------------------------------------- vindr validate: a hand-damaged release

def _release_copy(pipeline, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "r"
    shutil.copytree(pipeline[1], dst)
    return dst


def _validate(root: Path):
    from helpers import run_cli

    return run_cli("validate", root, "--no-hash", "--no-near-duplicates", check=False)


@pytest.mark.parametrize("damage", ["stray file", "stray folder", "symlink out", "dangling symlink", "fifo",
                                    "extra dicom"])
def test_validate_finds_what_vindr_release_does_not_write(pipeline, tmp_path, damage):
    """Before: "no findings", exit 0, for each (a file of notes holding a name, a link to /etc/passwd
    or to the de-identified tree would have travelled with the release)."""
    import os

    r = _release_copy(pipeline, tmp_path)
    assert _validate(r).returncode == 0
    secret = "Nguyen_Van_Planted"
    if damage == "stray file":
        (r / f"{secret}.txt").write_text(secret)
    elif damage == "stray folder":
        (r / "train" / secret).mkdir()
    elif damage == "symlink out":
        os.symlink("/etc/passwd", r / "train" / "dicom" / f"{secret}.dicom")
    elif damage == "dangling symlink":
        os.symlink("/nonexistent", r / "annotations" / secret)
    elif damage == "fifo":
        os.mkfifo(r / "test" / "images" / f"{secret}.png")
    elif damage == "extra dicom":
        one = sorted((r / "train" / "dicom").iterdir())[0]
        (r / "train" / "dicom" / f"{secret}.dicom").write_bytes(one.read_bytes())
    p = _validate(r)
    assert p.returncode == 1 and "layout" in p.stdout, p.stdout
    assert "Planted" not in p.stdout + p.stderr and "Traceback" not in p.stderr


def _edit_csv(path: Path, col: str, value: str) -> None:
    import csv

    rows = list(csv.reader(path.open(newline="")))
    i = rows[0].index(col)
    rows[1][i] = value
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.mark.parametrize("damage", ["images.csv empty", "images.csv binary", "coco truncated", "coco nested",
                                    "split_report a number", "split.csv binary", "annotations binary"])
def test_validate_reads_a_damaged_table_as_a_finding_never_an_internal_error(pipeline, tmp_path, damage):
    """Before: exit 3 (pandas' EmptyDataError / UnicodeDecodeError, json's JSONDecodeError /
    RecursionError, AttributeError on a report that is a number)."""
    r = _release_copy(pipeline, tmp_path)
    garbage = bytes(range(256)) * 4
    target, data = {"images.csv empty": ("images.csv", b""), "images.csv binary": ("images.csv", garbage),
                    "coco truncated": ("annotations/coco_train.json", None),
                    "coco nested": ("annotations/coco_train.json", b"[" * 100_000 + b"]" * 100_000),
                    "split_report a number": ("split_report.json", b"7"), "split.csv binary": ("split.csv", garbage),
                    "annotations binary": ("annotations/annotations_train.csv", garbage)}[damage]
    path = r / target
    path.write_bytes(data if data is not None else path.read_bytes()[:len(path.read_bytes()) // 2])
    p = _validate(r)
    assert p.returncode == 1 and "schema" in p.stdout and "Traceback" not in p.stderr, (p.stdout, p.stderr)


@pytest.mark.parametrize("col, value, finding", [
    ("patient_id", "Nguyen Van Planted", "patient_id differs"),
    ("study_id", '=HYPERLINK("http://x.example","Planted")', "study_id differs")])
def test_validate_compares_split_csv_groups_with_images_csv(pipeline, tmp_path, col, value, finding):
    """Before: a name or a formula put into split.csv's patient_id / study_id was "no findings"."""
    r = _release_copy(pipeline, tmp_path)
    _edit_csv(r / "split.csv", col, value)
    p = _validate(r)
    assert p.returncode == 1 and finding in " ".join(p.stdout.split()), p.stdout
    assert "Planted" not in p.stdout + p.stderr


@pytest.mark.parametrize("col, value", [("rad_id", '=HYPERLINK("http://x.example","Planted")'),
                                        ("rad_id", "Dr Nguyen Planted"), ("class_name", "Nguyen Van Planted"),
                                        ("image_id", "Nguyen Van Planted")])
def test_validate_never_prints_a_hand_edited_annotation_value(pipeline, tmp_path, col, value):
    """Before: a class or image id not in the release was quoted in the finding (a name put
    there was printed), and a rad_id other than R<n> (a formula, a reader's name) passed."""
    r = _release_copy(pipeline, tmp_path)
    _edit_csv(r / "annotations" / "annotations_train.csv", col, value)
    p = _validate(r)
    assert p.returncode == 1, p.stdout
    assert "Planted" not in p.stdout + p.stderr and "HYPERLINK" not in p.stdout + p.stderr


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_validate_finds_a_decoded_image_cut_short_or_replaced(pipeline, tmp_path, damage):
    """Before: "no findings" (only the image's existence was checked)."""
    r = _release_copy(pipeline, tmp_path)
    png = sorted((r / "train" / "images").glob("*.png"))[0]
    png.write_bytes(png.read_bytes()[:png.stat().st_size // 2] if damage == "truncated" else b"not a png")
    p = _validate(r)
    assert p.returncode == 1 and "image" in p.stdout and "whole PNG" in " ".join(p.stdout.split()), p.stdout


def test_baseline_of_a_release_whose_test_side_has_no_box(pipeline, tmp_path):
    """Every annotation "No finding": the baseline trained, wrote its report, then printed mAP
    None with :.3f: TypeError, exit 3. Now "n/a" and the verdict (inconclusive)."""
    pytest.importorskip("torch")
    import pandas as pd

    from helpers import run_cli

    base, _ = pipeline
    ann = pd.read_csv(base / "split" / "annotations.csv", dtype=str)
    ann["class_name"], ann["class_id"] = "No finding", "14"
    ann[["x_min", "y_min", "x_max", "y_max"]] = ""
    ann.to_csv(tmp_path / "ann.csv", index=False)
    run_cli("split", tmp_path / "ann.csv", "--meta", base / "split" / "split.csv", "--test-size", "0.3", "--unit",
            "patients", "-o", tmp_path / "split")
    run_cli("release", base / "anon", "--split", tmp_path / "split", "--images", base / "images", "-o", tmp_path / "rel")
    p = run_cli("baseline", tmp_path / "rel", "-o", tmp_path / "out", "--size", "32", "--epochs", "1", "-j", "1",
                check=False)
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr
    assert "n/a (no test box)" in p.stdout and (tmp_path / "out" / "report.md").is_file()


@pytest.mark.parametrize("damage", ["datasheet removed", "datasheet emptied", "README removed"])
def test_validate_checks_the_datasheet(pipeline, tmp_path, damage):
    """Before: "no findings" without the datasheet, or with every value of it set to null."""
    import json

    r = _release_copy(pipeline, tmp_path)
    if damage == "datasheet removed":
        (r / "datasheet.json").unlink()
    elif damage == "README removed":
        (r / "README.md").unlink()
    else:
        sheet = json.loads((r / "datasheet.json").read_text())
        (r / "datasheet.json").write_text(json.dumps({k: None for k in sheet}))
    p = _validate(r)
    assert p.returncode == 1 and ("missing" in p.stdout or "schema" in p.stdout), p.stdout


def test_validate_finds_a_released_dicom_that_cannot_be_decoded(pipeline, tmp_path):
    """Before: with --no-hash, a DICOM cut in its pixel data was only counted as "undecodable" in
    the table, exit 0."""
    from helpers import run_cli

    r = _release_copy(pipeline, tmp_path)
    dcm = sorted((r / "train" / "dicom").glob("*.dicom"))[0]
    dcm.write_bytes(dcm.read_bytes()[:dcm.stat().st_size - 1000])
    p = run_cli("validate", r, "--no-hash", check=False)
    assert p.returncode == 1 and "pixel-data" in p.stdout, p.stdout
