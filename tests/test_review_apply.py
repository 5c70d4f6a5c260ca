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


# ------------------------------------------------------------------ the pipeline obeys the review

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from conftest import SAMPLE
from helpers import key_file_in
from vindr_cli.curate.recipe import load_recipe
from vindr_cli.curate.select import REVIEW_EXCLUDED, select
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.review import decisions, gate


@pytest.fixture(scope="module")
def anon(tmp_path_factory):
    """The committed sample export anonymized (burned-in text redacted), and its key."""
    base = tmp_path_factory.mktemp("reviewapply")
    key = key_file_in(base)
    anonymize(SAMPLE / "export", base / "anon", key_path=key, profile=load_profile(), workers=1)
    return base / "anon", key


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_select_drops_images_excluded_in_review(anon, tmp_path):
    tree = tmp_path / "anon"
    shutil.copytree(anon[0], tree)
    sel = tmp_path / "selection"
    recipe = load_recipe("vindr-cxr")
    select(tree, sel, recipe, seed=0, n=None, workers=1)
    before = {r["image_id"]: r for r in _rows(sel / "selection.parquet")}
    chosen = sorted(i for i, r in before.items() if r["selected"])
    assert len(chosen) >= 3
    decisions.record(tree, chosen[0], "spot-check", "exclude", reviewer="custodian")     # a review of the tree
    decisions.record(tree, chosen[1], "spot-check", "accept")
    decisions.record(sel, chosen[2], "spot-check", "exclude")                            # a review of the selection
    decisions.record(tree, chosen[1], "spot-check", "exclude")
    decisions.undo(tree, image_id=chosen[1])                                             # undone: not excluded
    summary = select(tree, sel, recipe, seed=0, n=None, workers=1)
    after = {r["image_id"]: r for r in _rows(sel / "selection.parquet")}
    assert after[chosen[0]]["reasons"] == [REVIEW_EXCLUDED] and not after[chosen[0]]["selected"]
    assert after[chosen[2]]["reasons"] == [REVIEW_EXCLUDED] and not after[chosen[2]]["selected"]
    assert after[chosen[1]]["selected"]
    assert summary.reasons[REVIEW_EXCLUDED] == 2 and summary.selected == len(chosen) - 2
    assert json.loads((sel / "selection.json").read_text())["counts"][REVIEW_EXCLUDED] == 2
    linked = {p.stem for p in (sel / "dicom").iterdir()}
    assert chosen[0] not in linked and chosen[2] not in linked and chosen[1] in linked
    # the release gate drops the selection review's exclusion too
    g = gate.check(tree, set(chosen), selection=sel, allow_unreviewed=True)
    assert g.left_out == {chosen[2]: gate.EXCLUDED}
