"""What ``vindr split`` and ``vindr release`` take from a ``vindr select`` output (SELECTION/).

Only ``selection.parquet`` (one row per anonymized image: ``image_id``, ``selected``,
``reasons`` and the per-image facts the datasheet reports) and ``selection.json`` (the
recipe's name and SHA-256, the ``multiframe`` policy) are read; both are written by
``vindr select`` (issue 11's contract). A selection that cannot be read is a request error
(exit 2) — never silently "everything".

Multi-frame policy (``MULTIFRAME``), the same words in selection.json and ``vindr release
--multiframe``:

* ``first`` (release's default, VinDr's one image per file): the image is released once,
  as frame 0 (the decoded image is frame 0; the DICOM file keeps every frame).
* ``every``: each frame is its own released image, id ``<image_id>_<frame>`` (frame 0-based,
  no padding); they share the DICOM file and stay on the file's side of the split.
  Annotations name images, not frames, so an annotation row of a multi-frame image is left
  out and counted (``annotation rows of multi-frame images released per frame``).
* ``exclude``: the image is not released (counted by reason ``frames``).

Every multi-frame image is counted in the datasheet under the policy that applied.
"""
from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pandas as pd

from vindr_cli import reasons
from vindr_cli.errors import RequestError
from vindr_cli.resources import schema_path

MULTIFRAME = ("first", "every", "exclude")
SELECTION_PARQUET = "selection.parquet"
SELECTION_JSON = "selection.json"


class SelectionError(RequestError):
    """A SELECTION folder that cannot be used (exit 2, one line)."""


@dataclass(frozen=True)
class Selection:
    path: Path
    rows: pd.DataFrame                     # selection.parquet, one row per image_id
    selected: frozenset[str]
    recipe: str | None = None
    recipe_sha256: str | None = None
    multiframe: str = "first"
    info: dict = field(default_factory=dict)   # selection.json as read

    def frames(self) -> dict[str, int]:
        """Frames per image_id (1 where the table does not say)."""
        if "frames" not in self.rows.columns:
            return {}
        f = pd.to_numeric(self.rows["frames"], errors="coerce").fillna(1).astype(int)
        return dict(zip(self.rows["image_id"], f))

    def reason_counts(self) -> dict[str, int]:
        """Images not selected, per reason (an image with two reasons counts under both). A
        reason vindr select does not write (a hand-edited table: ``schemas/tables/reasons.json``)
        is counted as ``(other reason)``, never quoted."""
        c: Counter = Counter()
        if "reasons" in self.rows.columns:
            for rs in self.rows.loc[~self.rows["selected"], "reasons"]:
                for r in (list(rs) if rs is not None else []):
                    c[reasons.shown("selection", r)] += 1
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> dict:
        """What a datasheet or split report records of the selection (PHI-free)."""
        return {"recipe": self.recipe, "recipe_sha256": self.recipe_sha256, "multiframe": self.multiframe,
                "images": int(len(self.rows)), "selected": len(self.selected),
                "not_selected_by_reason": self.reason_counts()}


@cache
def _recipe_names() -> dict:
    data = tomllib.loads(schema_path("release", "recipe_names.toml").read_text(encoding="utf-8"))
    presets = frozenset(tomllib.loads(p.read_text(encoding="utf-8")).get("name", p.stem)
                        for p in schema_path("recipes").glob("*.toml"))
    return {"presets": presets, "pattern": re.compile(data["pattern"]), "max": int(data["max_length"]),
            "words": frozenset(data["words"]), "placeholder": data["placeholder"],
            "max_digits": int(data["max_digits"])}


def shown_recipe(name) -> str | None:
    """The recipe name as split and release may quote it (schemas/release/recipe_names.toml):
    a shipped preset's name, or a plain slug of known words and short numbers; anything else (free text a person
    typed, or edited into selection.json) is the fixed placeholder. None stays None."""
    if name is None:
        return None
    rules, s = _recipe_names(), str(name)
    if s in rules["presets"]:
        return s
    if (len(s) <= rules["max"] and rules["pattern"].fullmatch(s)
            and all(w in rules["words"] for w in re.findall(r"[a-z]+", s))      # letters inside "v2" too
            and all(len(d) <= rules["max_digits"] for d in re.findall(r"[0-9]+", s))):
        return s
    return rules["placeholder"]


def _shown_sha256(value) -> str | None:
    s = None if value is None else str(value)
    return s if s is not None and re.fullmatch(r"[0-9a-f]{64}", s) else None


def read_selection(path: Path) -> Selection:
    """Read SELECTION/ (module doc). Raises :class:`SelectionError`."""
    path = Path(path)
    table, meta = path / SELECTION_PARQUET, path / SELECTION_JSON
    if not table.is_file():
        raise SelectionError("--selection folder has no selection.parquet (run vindr select first)")
    try:
        rows = pd.read_parquet(table)
    except Exception as exc:   # a damaged or foreign file: its own text may quote content
        raise SelectionError(f"--selection: selection.parquet cannot be read ({type(exc).__name__})") from None
    for col in ("image_id", "selected"):
        if col not in rows.columns:
            raise SelectionError(f"--selection: selection.parquet has no {col} column")
    if rows["selected"].isna().any():
        raise SelectionError("--selection: selection.parquet has rows with no selected value")
    rows = rows.assign(image_id=rows["image_id"].astype(str), selected=rows["selected"].astype(bool))
    if rows["image_id"].duplicated().any():
        raise SelectionError("--selection: selection.parquet lists an image_id more than once")
    info: dict = {}
    if meta.is_file():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise SelectionError("--selection: selection.json is not valid JSON") from None
        if not isinstance(info, dict):
            raise SelectionError("--selection: selection.json is not a JSON object")
    else:
        raise SelectionError("--selection folder has no selection.json (run vindr select first)")
    multiframe = info.get("multiframe") or "first"
    if multiframe not in MULTIFRAME:
        raise SelectionError(f"--selection: selection.json multiframe must be one of {', '.join(MULTIFRAME)}")
    recipe = info.get("recipe")
    sha = info.get("recipe_sha256")
    return Selection(path=path, rows=rows.reset_index(drop=True),
                     selected=frozenset(rows.loc[rows["selected"], "image_id"]),
                     recipe=shown_recipe(recipe), recipe_sha256=_shown_sha256(sha),
                     multiframe=multiframe, info=info)


def frame_ids(image_id: str, frames: int, policy: str) -> list[tuple[str, int]]:
    """(released id, frame) pairs of one image under a multi-frame policy; [] when excluded."""
    if policy not in MULTIFRAME:
        raise SelectionError(f"multiframe must be one of {', '.join(MULTIFRAME)}")
    if frames <= 1:
        return [(image_id, 0)]
    if policy == "exclude":
        return []
    if policy == "first":
        return [(image_id, 0)]
    return [(f"{image_id}_{k}", k) for k in range(frames)]
