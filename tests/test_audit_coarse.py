"""`vindr audit` scans the views `vindr anonymize` scans (issue 10, red team 5): the coarse view
too, so text too large for the finder's first view, drawn into an output AFTER anonymize, is a
finding with its box in the frame's pixels; the output as written has no pixel finding.

Real parts: pydicom's RG1_UNCR CR film (1024 px, 12 bit), DejaVu Sans, Tesseract."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from test_audit_pixels import _box, _copy, draw
from test_pixeltext_precision import needs_font, needs_ocr
from vindr_cli.deid.audit import audit


@pytest.fixture(scope="module")
def film_tree(tmp_path_factory):
    from helpers import key_file_in
    from test_redteam4 import _anonymize, _dataset, _film, _save

    base = tmp_path_factory.mktemp("film")
    ds = _dataset(np.round(_film(1024) * 0.75 * 4095).astype(np.uint16))
    out, rows = _anonymize(_save(ds, base), base, key_file_in(base))
    row = next(r for r in rows if r["status"] == "ok")
    assert pq.read_table(base / "anon.linkage.parquet").num_rows == 1
    return out, base / "anon.linkage.parquet", row


def _hits(report) -> list:
    return [f for f in report.findings if f.kind.startswith("pixel-")]


@needs_ocr
@needs_font
def test_the_film_as_written_has_no_pixel_finding(film_tree):
    out, link, _ = film_tree
    assert _hits(audit(out, link)) == []


@needs_ocr
@needs_font
@pytest.mark.parametrize("linked", [True, False])
def test_large_text_drawn_into_an_output_is_found_by_the_coarse_view(film_tree, tmp_path, linked):
    """'NGUYEN AN' 120 px tall (glyphs about 90 px, 9 % of the side: past the first view's stroke
    limit) drawn at the film's brightest value: found, with or without the linkage table, its box
    in the frame's pixels around the drawing; no finding holds the text."""
    out, link = _copy(film_tree[:2], tmp_path)
    row = film_tree[2]
    mask = draw(out / row["output"], "NGUYEN AN", at=(120, 60), size=120)
    report = audit(out, link if linked else None)
    hits = [f for f in report.findings if f.kind == "pixel-text"]
    assert hits and all(f.where == row["output"] for f in hits)
    ys, xs = np.nonzero(mask)
    boxes = [_box(f.detail) for f in hits]
    assert all(fr == 0 for fr, *_ in boxes)
    x0, y0 = min(b[1] for b in boxes), min(b[2] for b in boxes)
    x1, y1 = max(b[3] for b in boxes), max(b[4] for b in boxes)
    assert x0 <= xs.min() + 20 and y0 <= ys.min() + 20 and y1 >= ys.max() - 20 and x1 >= (xs.min() + xs.max()) // 2
    assert "NGUYEN" not in (report.to_json() + report.to_tsv()).upper()


def test_scan_tells_the_finder_each_views_factor():
    """deid.redact.scan(scale=True) passes each view's shrink factor, as ``coarse`` made it,
    to the finder (vindr audit used to guess it from Columns over the view's width): 1 for the
    frame's views, k for the coarse view of a frame whose Columns is not a multiple of k."""
    from test_redteam4 import _dataset, _film
    from vindr_cli.deid.redact import coarse, scan

    ds = _dataset(np.round(_film(1024)[:, :1021] * 4095).astype(np.uint16))
    seen = []

    def finder(image, frame=0, hints=None, min_side=0, scale=1):
        seen.append((image.shape, scale))
        return []

    scan(ds, finder, None, overlays=False, large=True, scale=True)
    (_, k), = coarse(np.zeros((1024, 1021), np.uint8))
    assert 1021 % k and ((1024, 1021), 1) in seen and ((1024 // k, 1021 // k), k) in seen
    assert all(s == 1 or (shape[0] * s <= 1024 < (shape[0] + 1) * s and shape[1] * s <= 1021 < (shape[1] + 1) * s)
               for shape, s in seen)


@pytest.fixture(scope="module")
def narrow_tree(tmp_path_factory):
    """The film 1021 columns wide (not a multiple of the coarse view's factor 2), anonymized."""
    from helpers import key_file_in
    from test_redteam4 import _anonymize, _dataset, _film, _save

    base = tmp_path_factory.mktemp("narrow")
    ds = _dataset(np.round(_film(1024)[:, :1021] * 0.75 * 4095).astype(np.uint16))
    out, rows = _anonymize(_save(ds, base), base, key_file_in(base))
    row = next(r for r in rows if r["status"] == "ok")
    return out, base / "anon.linkage.parquet", row


@needs_ocr
@needs_font
def test_large_text_is_found_where_columns_is_not_a_multiple_of_the_factor(narrow_tree, tmp_path):
    """The output as written: no pixel finding; 'NGUYEN AN' 120 px tall drawn into it after
    anonymize: found by the coarse view, its box in the frame's pixels around the drawing."""
    assert _hits(audit(*narrow_tree[:2])) == []
    out, link = _copy(narrow_tree[:2], tmp_path)
    row = narrow_tree[2]
    mask = draw(out / row["output"], "NGUYEN AN", at=(120, 60), size=120)
    hits = [f for f in audit(out, link).findings if f.kind == "pixel-text"]
    assert hits and all(f.where == row["output"] for f in hits)
    ys, xs = np.nonzero(mask)
    boxes = [_box(f.detail) for f in hits]
    assert all(fr == 0 and x1 <= 1021 and y1 <= 1024 for fr, _, _, x1, y1 in boxes)
    x0, y0 = min(b[1] for b in boxes), min(b[2] for b in boxes)
    x1, y1 = max(b[3] for b in boxes), max(b[4] for b in boxes)
    assert x0 <= xs.min() + 20 and y0 <= ys.min() + 20 and y1 >= ys.max() - 20 and x1 >= (xs.min() + xs.max()) // 2
