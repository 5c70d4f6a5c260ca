"""Work the burned-in scan (deid/redact.py) does once, not twice, with the same result: each
counted coarse box's glyph walk (``_glyphs``) is shared by the text gate (``_large_text``) and
the row growth (``_row_extent``); each JPEG frame's walk (``_clean_t81``) made for the header
check before decoding is the one ``clean_frames`` writes. The old path (each walks for itself)
is the oracle: the same boxes, kinds and frame bytes.

Real parts: pydicom's RG1_UNCR CR film with DejaVu text drawn in, Tesseract, Pillow's JPEG."""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest

from test_pixeltext_precision import needs_font, needs_ocr
from test_redteam4 import _ct, _dataset, _film, _ink
from vindr_cli.deid import pixeltext, redact


@needs_ocr
@needs_font
@pytest.mark.parametrize("text,size", [("NV 42", 180), ("NGUYEN AN", 120)])
def test_a_counted_coarse_box_walks_its_glyphs_once(monkeypatch, text, size):
    film = _film(1024)
    ink, _ = _ink(film.shape, text, (200, 80), size)
    ds = _dataset(np.round(np.maximum(film * 0.75, ink) * 4095).astype(np.uint16))
    calls = {"glyphs": 0, "gate": 0}
    glyphs, gate, extent = redact._glyphs, redact._large_text, redact._row_extent

    def counted_glyphs(crop):
        calls["glyphs"] += 1
        return glyphs(crop)

    def counted_gate(image, b, *a, **kw):
        calls["gate"] += 1
        return gate(image, b, *a, **kw)

    monkeypatch.setattr(redact, "_glyphs", counted_glyphs)
    monkeypatch.setattr(redact, "_large_text", counted_gate)
    new = redact.scan(copy.deepcopy(ds), pixeltext.find_text, None, large=True)
    assert calls["gate"] > 0 and calls["glyphs"] == calls["gate"]     # one walk per box that reached the gate
    # the oracle: the gate and the row growth each walk the box themselves, as before
    calls.update(glyphs=0, gate=0)
    monkeypatch.setattr(redact, "_large_text", lambda image, b, glyphs=None: counted_gate(image, b))
    monkeypatch.setattr(redact, "_row_extent", lambda image, box, glyphs=None: extent(image, box))
    old = redact.scan(copy.deepcopy(ds), pixeltext.find_text, None, large=True)
    assert calls["glyphs"] > calls["gate"]                            # the oracle walked twice where counted
    assert new.boxes and new.boxes == old.boxes and new.kinds == old.kinds


def _jpeg(a, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _multiframe(frames: list[bytes], grey):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = _dataset(grey, bits=8)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    return ds


@pytest.mark.parametrize("walkable", [True, False])
def test_each_jpeg_frame_is_walked_once_for_the_check_and_the_write(monkeypatch, walkable):
    """Three JPEG frames with a comment and bytes after their end: the scan finds no text and
    writes the frames without them. _clean_t81 runs once per frame for the header check and
    the write (and once more on the cleaned frames, which are decoded again to prove the same
    values), not twice; the frames written are those clean_frames makes on its own. A frame
    with an APP segment after its scan started cannot be walked: the decoded values are written,
    as before."""
    grey = np.round(_ct(128) * 200).astype(np.uint8)
    frames = [_jpeg(np.roll(grey, 9 * i, axis=1), comment=b"NGUYEN VAN AN") + b"0012345678" for i in range(3)]
    if not walkable:
        plain = _jpeg(grey)                               # no bytes after its end: the check passes it as it is
        end = plain.rindex(b"\xff\xd9")
        frames[1] = plain[:end] + b"\xff\xe1\x00\x08NGUYEN" + plain[end:]
    ds = _multiframe(frames, grey)
    oracle = copy.deepcopy(ds)
    try:
        want = redact.clean_frames(oracle)                # the walk on its own, no memo
    except redact._Unsure:
        want = None
    assert (want is not None) == walkable
    count = [0]
    walk = redact._clean_t81

    def counted(frame):
        count[0] += 1
        return walk(frame)

    monkeypatch.setattr(redact, "_clean_t81", counted)
    out = redact.scan(ds, lambda image, frame=0, hints=None: [], None)
    assert out.boxes == []
    if walkable:
        assert out.frames == want and all(b"NGUYEN" not in f and b"0012345678" not in f for f in out.frames)
        assert count[0] == 3 + 3                          # check + write, then the cleaned frames' check
    else:
        assert out.frames is None and out.arr is not None and out.arr.shape[0] == 3
        assert count[0] == 3                              # the check walked each frame; nothing walked again


def test_the_finders_signature_is_read_once_per_run(monkeypatch, tmp_path, key_file):
    """deid/task.py asks whether a library caller's finder takes ``min_side`` (then it is shown
    the coarse views too): once for the run's finder, not once per file; and the answer is still
    each finder's own."""
    import inspect
    import shutil

    import pyarrow.parquet as pq
    from pydicom.data import get_testdata_file

    from vindr_cli.deid import task
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.runner.executor import InProcessExecutor

    src = tmp_path / "export"
    src.mkdir()
    names = [n for n in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm")
             if get_testdata_file(n, download=False)]
    for n in names:
        shutil.copy(get_testdata_file(n, download=False), src / n)
    sizes = []

    def finder(image, frame=0, hints=None, min_side=0):
        sizes.append(image.shape)
        return []

    asked = []
    signature = inspect.signature

    def counted(obj, *a, **kw):
        asked.append(obj)
        return signature(obj, *a, **kw)

    monkeypatch.setattr(inspect, "signature", counted)
    anonymize(src, tmp_path / "anon", key_path=key_file, profile=load_profile(), workers=1,
              executor=InProcessExecutor(), burned_in="redact", allow_burned_in=True, finder=finder)
    rows = pq.read_table(tmp_path / "anon" / "manifest.parquet").to_pylist()
    assert sum(r["status"] == "ok" for r in rows) >= 3
    assert asked.count(finder) == 1
    assert task._coarse_views(finder) is True and asked.count(finder) == 1

    def plain(image, frame=0, hints=None):
        return []

    assert task._coarse_views(plain) is False and task._coarse_views(plain) is False and asked.count(plain) == 1
    assert task._coarse_views(None) is True
