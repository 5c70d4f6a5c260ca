"""vindr review's decisions obeyed by the pipeline (issue 12): ``vindr anonymize`` re-run masks
the boxes drawn for more redaction (hash chain in the manifest), ``vindr select`` drops excluded
images; and the page's window presets are rendered once per request."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from vindr_cli.review import server


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_window_presets_render_once(monkeypatch, name):
    """wider / narrower used to render the header window first only to learn its width (two
    renders per image); now one render, with the same picture as before."""
    from vindr_cli.pixels import window as win
    from vindr_cli.pixels.decode import decode
    from vindr_cli.pixels.voi import display_params

    path = get_testdata_file(name, download=False)
    real = win.render
    calls = []

    def counting(*a, **k):
        calls.append(k.get("mode", a[2] if len(a) > 2 else "header"))
        return real(*a, **k)

    monkeypatch.setattr(win, "render", counting)
    pngs = {}
    for w in server.WINDOWS:
        calls.clear()
        pngs[w] = server.render_png(path, size="large", window=w)
        assert len(calls) == 1, (w, calls)
    assert len(set(pngs.values())) == 3
    # the preset is the header window's width doubled / halved, as before
    ds = pydicom.dcmread(path)
    f = decode(ds).frames[0]
    p = display_params(ds)
    _, used = real(f, p, "header", out_bits=16, ds=ds)
    wide, narrow = server.preset_mode(f, p, "wider"), server.preset_mode(f, p, "narrower")
    assert (wide.center, wide.width) == (used.center, used.width * 2)
    assert (narrow.center, narrow.width) == (used.center, max(1.0, used.width / 2))
    assert np.isfinite(used.width) and used.width > 0
