"""`vindr audit` reports initials (2-3 letters or digits of non-marker words read at confidence
>= READ_SHORT_CONF) drawn into an output after anonymize: the 4 characters the audit wanted
before let 2-letter initials through. Markers of the same size stay no finding, and so does the
output as written (tests/test_audit_coarse.py; the demo's outputs: tests/test_audit_pixels.py).
Measured on text-free and redacted corpus images: bench/audit_short_reads.py.

Real parts: pydicom's RG1_UNCR CR film (1024 px, 12 bit), DejaVu Sans, Tesseract."""
from __future__ import annotations

import re

import numpy as np
import pytest

from test_audit_coarse import film_tree  # noqa: F401  (the module fixture)
from test_audit_pixels import _box, _copy, draw
from test_pixeltext_precision import needs_font, needs_ocr
from vindr_cli.deid.audit import READ_MIN_CHARS, READ_SHORT_CHARS, audit


@needs_ocr
@needs_font
@pytest.mark.parametrize("text,size,at", [("NV", 32, (420, 40)), ("TH", 24, (60, 900))])
def test_initials_drawn_into_an_output_are_found(film_tree, tmp_path, text, size, at):
    assert READ_SHORT_CHARS <= len(text) < READ_MIN_CHARS
    out, link = _copy(film_tree[:2], tmp_path)
    row = film_tree[2]
    mask = draw(out / row["output"], text, at=at, size=size)
    report = audit(out, link)
    hits = [f for f in report.findings if f.kind == "pixel-text"]
    assert hits and all(f.where == row["output"] for f in hits)
    ys, xs = np.nonzero(mask)
    assert any(x0 <= xs.max() and xs.min() <= x1 and y0 <= ys.max() and ys.min() <= y1
               for _, x0, y0, x1, y1 in (_box(f.detail) for f in hits))
    assert not re.search(rf"\b{text}\b", report.to_json() + report.to_tsv(), re.I)     # never the text


@needs_ocr
@needs_font
@pytest.mark.parametrize("marker", ["PA", "AP"])
def test_a_marker_of_the_same_size_is_no_finding(film_tree, tmp_path, marker):
    out, link = _copy(film_tree[:2], tmp_path)
    draw(out / film_tree[2]["output"], marker, at=(420, 40), size=32)
    assert [f for f in audit(out, link).findings if f.kind == "pixel-text"] == []     # (pixel-hash: drawn into)
