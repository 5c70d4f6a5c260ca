"""A recipe name is free text (a TOML a person edits, its file name, a hand-edited
selection.json): split and release quote it only when it is a shipped preset's name or a
plain slug of known words (schemas/release/recipe_names.toml), else a fixed placeholder; the
recipe's SHA-256 only as 64 hex digits. Checked on real selection tables written here."""
from __future__ import annotations

import json
import tomllib

import pandas as pd
import pytest

from vindr_cli.release.selection import read_selection, shown_recipe
from vindr_cli.resources import schema_path

PLACEHOLDER = tomllib.loads(schema_path("release", "recipe_names.toml").read_text())["placeholder"]
NAMES = ["NGUYEN VAN AN", "nguyen-van-an", "Dr Smith's set", "tran_minh_khoa", "smith", "Chest of Nguyen Van An",
         "cxr\nNGUYEN", "a" * 60, "../etc/passwd", "benh-vien-bach-mai"]
KEPT = ["test-recipe", "cxr-adult-pa-2024", "pilot_v2", "my-recipe", "vindr-cxr-subset.3"]


def _selection(tmp_path, recipe, sha="ab" * 32):
    tmp_path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": ["a1", "b2"], "selected": [True, False],
                  "reasons": [[], ["view"]]}).to_parquet(tmp_path / "selection.parquet")
    (tmp_path / "selection.json").write_text(json.dumps({"recipe": recipe, "recipe_sha256": sha, "seed": 0,
                                                         "multiframe": "first"}))
    return tmp_path


def test_presets_are_quoted():
    presets = [tomllib.loads(p.read_text())["name"] for p in sorted(schema_path("recipes").glob("*.toml"))]
    assert presets and all(shown_recipe(p) == p for p in presets)


@pytest.mark.parametrize("name", NAMES)
def test_free_text_recipe_names_are_not_quoted(tmp_path, name):
    sel = read_selection(_selection(tmp_path, name, sha=f"{name} 1234"))
    summary = sel.summary()
    assert summary["recipe"] == PLACEHOLDER and summary["recipe_sha256"] is None
    assert name not in json.dumps(summary)
    assert summary["not_selected_by_reason"] == {"view": 1}


@pytest.mark.parametrize("name", KEPT)
def test_plain_slugs_are_quoted(tmp_path, name):
    sel = read_selection(_selection(tmp_path, name))
    assert sel.summary()["recipe"] == name and sel.recipe_sha256 == "ab" * 32


def test_no_recipe_stays_unnamed(tmp_path):
    assert read_selection(_selection(tmp_path, None)).recipe is None
