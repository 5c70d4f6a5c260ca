"""`vindr decode` end to end: images.parquet, sizes and scale factors, resume, workers,
reduced-resolution JPEG 2000, box mapping, bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest
from PIL import Image
from pydicom.uid import JPEG2000Lossless

from conftest import SAMPLE, make_cr, sample_truth, special_files
from helpers import run_cli, tree_hashes
from vindr_cli.pixels.boxes import scale_boxes
from vindr_cli.pixels.output import SALT_FILE, image_name, keyed_name, read_salt
from vindr_cli.pixels.resize import SizeSpec, parse_size, resize, to_uint
from vindr_cli.pixels.voi import display_params
from vindr_cli.pixels.window import render

EXPORT = SAMPLE / "export"


def _rows(out):
    return pq.read_table(out / "images.parquet").to_pylist()


def _by_input(out, hashes):
    """{(input path, rest of the output name): hash} through OUTPUT's salt."""
    from vindr_cli.runner.discover import discover
    salt = read_salt(out / ".vindr" / SALT_FILE)
    names = {keyed_name(salt, s.rel): s.rel for s in discover(EXPORT)}
    return {(names[rel[:32]], rel[32:]): h for rel, h in hashes.items()}


def _table_by_input(out):
    """images.parquet with keyed names mapped back to input paths, the decoder left out."""
    from vindr_cli.runner.discover import discover
    salt = read_salt(out / ".vindr" / SALT_FILE)
    names = {keyed_name(salt, s.rel): s.rel for s in discover(EXPORT)}
    back = []
    for r in _rows(out):
        r = {k: v for k, v in r.items() if k != "backend"}
        r["input"], r["input_key"] = names[r["input"]], names[r["input_key"]]
        if r["output"]:
            r["output"] = names[r["output"][:32]] + r["output"][32:]
        back.append(r)
    return back


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    out = tmp_path_factory.mktemp("dec") / "png"
    p = run_cli("decode", EXPORT, out, "--size", "256", "-j", "2", "--allow-identified")
    return out, _rows(out), p.stdout


def test_every_input_accounted_and_images_match_the_table(decoded):
    out, rows, stdout = decoded
    inputs = {r["input"] for r in rows}
    from vindr_cli.runner.discover import discover
    # the sample export is not de-identified: every input is named by its keyed name
    salt = read_salt(out / ".vindr" / SALT_FILE)
    assert inputs == {keyed_name(salt, s.rel) for s in discover(EXPORT)}
    ok = [r for r in rows if r["status"] == "ok"]
    # every readable instance (burned-in SC, zip, DICOMDIR media, the two burned-in radiographs,
    # CT, MR and the multi-frame RF included): all of selection_truth.json but the truncated file
    # ... one row per frame
    instances = sum(v["category"] != "truncated" for v in sample_truth().values())
    multi = [pydicom.dcmread(SAMPLE / rel, stop_before_pixels=True) for rel in special_files()["frames3"]]
    assert len({r["input"] for r in ok}) == instances and multi
    assert len(ok) == instances + sum(int(ds.NumberOfFrames) - 1 for ds in multi)
    assert sorted(r["status"] for r in rows if r["status"] != "ok") == ["failed", "not-dicom", "not-dicom", "not-dicom", "skipped"]
    for r in ok:
        im = Image.open(out / r["output"])
        assert im.size == (r["out_cols"], r["out_rows"]) and max(im.size) == 256
        assert r["scale_x"] == pytest.approx(r["out_cols"] / r["columns"])
        assert r["scale_y"] == pytest.approx(r["out_rows"] / r["rows"])
        assert abs(r["scale_x"] - r["scale_y"]) < 0.01        # aspect kept
        assert r["backend"] and r["window_kind"] in ("window", "voi_lut", "percentile")
    failed = {r["reason"] for r in rows if r["status"] == "failed"}
    assert any("truncated" in f for f in failed)
    assert "decoders:" in stdout and "not decoded, and why" in stdout
    assert not list(out.rglob("*.vindr-part"))


def test_names_follow_input_paths(decoded):
    out, rows, _ = decoded
    frames: dict[str, int] = {}
    for r in rows:
        frames[r["input"]] = frames.get(r["input"], 0) + 1
    assert max(frames.values()) > 1                           # the sample's multi-frame RF run
    for r in rows:
        if r["status"] == "ok":
            assert r["output"] == image_name(r["input"], r["frame"] if frames[r["input"]] > 1 else None, "png")
    assert image_name("a/b.dcm", None, "png") == "a/b.png"
    assert image_name("x.zip!c/d", 2, "npy") == "x.zip/c/d_f0003.npy"


def test_one_and_two_workers_agree_and_rerun_resumes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run_cli("decode", EXPORT, a, "--size", "128", "-j", "1", "--allow-identified")
    run_cli("decode", EXPORT, b, "--size", "128", "-j", "2", "--allow-identified")
    ha, hb = tree_hashes(a, skip=(".vindr", "images.parquet")), tree_hashes(b, skip=(".vindr", "images.parquet"))
    # each OUTPUT has its own salt: compare by the input path each keyed name stands for
    assert _by_input(a, ha) == _by_input(b, hb) and len(ha) > 20
    # the table agrees too, but for the decoder picked (one worker gets 2 decoder threads)
    assert _table_by_input(a) == _table_by_input(b)
    p = run_cli("decode", EXPORT, a, "--size", "128", "-j", "2", "--allow-identified")
    assert "already done" in p.stdout and tree_hashes(a, skip=(".vindr", "images.parquet")) == ha
    p = run_cli("decode", EXPORT, a, "--size", "64", "--allow-identified", check=False)
    assert p.returncode == 2 and "different size" in p.stderr


def test_full_size_16_bit_npy_equals_the_display_pipeline(tmp_path):
    f = make_cr(tmp_path / "in" / "x.dcm", rows=40, cols=30)
    out = tmp_path / "o"
    run_cli("decode", tmp_path / "in", out, "--bits", "16", "--format", "npy", "--allow-identified")
    (row,) = _rows(out)
    arr = np.load(out / row["output"])
    ds = pydicom.dcmread(f)
    expect, used = render(ds.pixel_array, display_params(ds), "header", out_bits=16, ds=ds)
    assert arr.dtype == np.uint16 and np.array_equal(arr, expect)
    assert (row["window_center"], row["window_width"]) == (2048.0, 4096.0) and row["scale_x"] == 1.0


def test_exact_size_and_explicit_window(tmp_path):
    make_cr(tmp_path / "in" / "x.dcm", rows=64, cols=48)
    out = tmp_path / "o"
    run_cli("decode", tmp_path / "in", out, "--size", "32x16", "--window", "1000,500", "--allow-identified")
    (row,) = _rows(out)
    assert (row["out_cols"], row["out_rows"]) == (32, 16) and row["window_kind"] == "explicit"
    assert row["scale_x"] == pytest.approx(32 / 48) and row["scale_y"] == pytest.approx(16 / 64)


def test_jpeg2000_decoded_at_reduced_resolution(tmp_path):
    f = make_cr(tmp_path / "in" / "big.dcm", rows=1200, cols=1000)
    ds = pydicom.dcmread(f)
    ds.compress(JPEG2000Lossless)
    ds.save_as(f)
    out = tmp_path / "o"
    run_cli("decode", tmp_path / "in", out, "--size", "256", "--allow-identified")
    (row,) = _rows(out)
    assert row["reduce"] >= 2 and row["backend"] and row["out_rows"] == 256
    full = tmp_path / "full"
    run_cli("decode", tmp_path / "in", full, "--allow-identified")
    (frow,) = _rows(full)
    assert frow["reduce"] == 0 and frow["out_rows"] == 1200


def test_bad_requests(tmp_path):
    make_cr(tmp_path / "in" / "x.dcm")
    for args, msg in ((["--size", "0"], "--size"), (["--window", "fuzzy"], "window"), (["--bits", "12"], "--bits"),
                      (["--format", "jpg"], "--format")):
        p = run_cli("decode", tmp_path / "in", tmp_path / "o", *args, check=False)
        assert p.returncode == 2 and msg in p.stderr, args
    p = run_cli("decode", tmp_path / "in", tmp_path / "in" / "o", check=False)
    assert p.returncode == 2 and "inside INPUT" in p.stderr


def test_resize_helpers():
    assert parse_size("1024") == SizeSpec(long_side=1024)
    assert parse_size("640x480") == SizeSpec(width=640, height=480)
    assert SizeSpec(long_side=100).target(300, 200) == (100, 67)
    assert SizeSpec(long_side=100).target(200, 300) == (67, 100)
    img = np.zeros((4, 4), np.float32)
    img[:2, :2] = 100
    small = resize(img, 2, 2, "area")
    assert small[0, 0] == pytest.approx(100) and small[1, 1] == pytest.approx(0)   # area average
    assert to_uint(np.array([0.49, 0.5, 254.5, 300.0]), 8).tolist() == [0, 1, 255, 255]


def test_box_mapping_round_trip():
    ann = pd.DataFrame({"image_id": ["a", "a", "b"], "class_name": ["Nodule/Mass", "No finding", "Cardiomegaly"],
                        "x_min": [100, None, 10], "y_min": [50, None, 20], "x_max": [200, None, 30], "y_max": [80, None, 40]})
    scales = pd.DataFrame({"image_id": ["a", "b"], "scale_x": [0.5, 2.0], "scale_y": [0.25, 2.0]})
    out = scale_boxes(ann, scales)
    assert out.loc[0, ["x_min", "y_min", "x_max", "y_max"]].tolist() == [50, 12.5, 100, 20]
    assert out.loc[1, ["x_min"]].isna().all()
    back = scale_boxes(out, scales, inverse=True)
    assert np.allclose(back[["x_min", "y_min", "x_max", "y_max"]].fillna(-1), ann[["x_min", "y_min", "x_max", "y_max"]].fillna(-1))
    with pytest.raises(KeyError):
        scale_boxes(ann, scales.iloc[:1])


def test_cuda_without_a_gpu_is_refused_up_front(tmp_path):
    make_cr(tmp_path / "in" / "x.dcm")
    p = run_cli("decode", tmp_path / "in", tmp_path / "o", "--device", "cuda", check=False)
    assert p.returncode == 2 and "no CUDA GPU" in p.stderr and not (tmp_path / "o" / "images.parquet").exists()
    run_cli("decode", tmp_path / "in", tmp_path / "o2", "--device", "auto", "--allow-identified")
    assert _rows(tmp_path / "o2")[0]["status"] == "ok"


def test_full_size_8_bit_png_equals_the_display_pipeline(tmp_path):
    """No resize: the PNG is the 8-bit rendering itself (one rounding, as dcmtk is compared to)."""
    f = make_cr(tmp_path / "in" / "x.dcm", rows=40, cols=30,
                extra=lambda d: (setattr(d, "WindowCenter", "1000.3"), setattr(d, "WindowWidth", "777")))
    out = tmp_path / "o"
    run_cli("decode", tmp_path / "in", out, "--allow-identified")
    (row,) = _rows(out)
    ds = pydicom.dcmread(f)
    expect, _ = render(ds.pixel_array, display_params(ds), "header", out_bits=8, ds=ds)
    assert np.array_equal(np.array(Image.open(out / row["output"])), expect)
