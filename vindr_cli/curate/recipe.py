"""Selection recipes (TOML, data): which images of a de-identified tree a release takes.

A recipe is checked whole when it is loaded, before any file is read: an unknown key, a
value of the wrong type or outside its choices, or invalid TOML is a :class:`RecipeError`
(exit 2) naming the file and the key. Presets live in ``schemas/recipes/`` (``vindr-cxr``,
``vindr-spinexr``) and go through the same checks.

    name = "my-recipe"                 # recorded in selection.json
    description = "..."; source = "..."   # free text, recorded
    [criteria]                         # every key optional; absent = no constraint
    modality = ["CR", "DX"]            # Modality in this list
    sop_class = ["1.2.840..."]         # SOPClassUID in this list
    body_part = ["CHEST"]              # normalised body part (schemas/curate/body_parts.toml) or group
    body_part_unknown = "exclude"      # include | exclude an image whose body part is absent/unknown
    view = ["PA", "AP"]                # ViewPosition (upper case)
    view_unknown = "exclude"           # include | exclude
    laterality = ["L", "R"]            # ImageLaterality, else Laterality
    age_min = 18; age_max = 90         # years, inclusive (PatientAge, else shifted dates)
    age_unknown = "exclude"            # include | exclude
    photometric = ["MONOCHROME2"]
    multiframe = "exclude"             # first | every | exclude (multi-frame images)
    min_rows = 1024; min_columns = 1024
    image_type = ["ORIGINAL"]          # ImageType value 1 in this list
    presentation_intent = ["FOR PRESENTATION"]   # PresentationIntentType, when present
    lossy = "exclude"                  # include | exclude lossy-compressed sources
    [qc]
    exclude = ["blank", "inverted"]    # pixel QC flags that exclude (others are recorded only)
    [duplicates]
    within = "keep-one"                # keep-one | keep-all (copies within a study or patient)
    across_patients = "exclude"        # exclude | flag (the same picture under two patients)
    [sampling]
    n = 1000                           # exactly N (else every qualifying image); --n overrides
    one_per_study = true               # one image per study, frontal first (PA > AP > others)
    labels = "labels.csv"              # image_id,label table (relative to the recipe); --labels overrides
    proportions = { normal = 0.7, abnormal = 0.3 }   # target share of each label among the N
"""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vindr_cli.errors import RequestError
from vindr_cli.resources import schema_path

PRESETS = ("vindr-cxr", "vindr-spinexr")
MULTIFRAME = ("first", "every", "exclude")
INCLUDE_EXCLUDE = ("include", "exclude")

# key -> (type checker name, choices or None)
_LIST = "list[str]"
_SCHEMA: dict[str, dict[str, tuple[str, tuple[str, ...] | None]]] = {
    "": {"name": ("str", None), "description": ("str", None), "source": ("str", None)},
    "criteria": {
        "modality": (_LIST, None), "sop_class": (_LIST, None), "body_part": (_LIST, None),
        "body_part_unknown": ("str", INCLUDE_EXCLUDE), "view": (_LIST, None), "view_unknown": ("str", INCLUDE_EXCLUDE),
        "laterality": (_LIST, None), "age_min": ("num", None), "age_max": ("num", None),
        "age_unknown": ("str", INCLUDE_EXCLUDE), "photometric": (_LIST, None), "multiframe": ("str", MULTIFRAME),
        "min_rows": ("int", None), "min_columns": ("int", None), "image_type": (_LIST, None),
        "presentation_intent": (_LIST, None), "lossy": ("str", INCLUDE_EXCLUDE),
    },
    "qc": {"exclude": (_LIST, None)},
    "duplicates": {"within": ("str", ("keep-one", "keep-all")), "across_patients": ("str", ("exclude", "flag"))},
    "sampling": {"n": ("int", None), "one_per_study": ("bool", None), "labels": ("str", None),
                 "proportions": ("table[num]", None)},
}


class RecipeError(RequestError):
    """A recipe that cannot be used (one line, exit 2)."""


@dataclass(frozen=True)
class Recipe:
    name: str
    text: str                                    # the TOML as read (copied to SELECTION/recipe.toml)
    path: Path | None                            # None for a preset
    description: str = ""
    source: str = ""
    criteria: dict[str, Any] = field(default_factory=dict)
    qc_exclude: tuple[str, ...] = ()
    within: str = "keep-one"
    across_patients: str = "exclude"
    n: int | None = None
    one_per_study: bool = False
    labels: Path | None = None
    proportions: dict[str, float] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def multiframe(self) -> str:
        return self.criteria.get("multiframe", "first")


def _check_value(label: str, where: str, key: str, value: Any, kind: str, choices) -> None:
    def bad(what: str) -> RecipeError:
        return RecipeError(f"{label}: {where}{key} must be {what}")

    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        if choices and value not in choices:
            raise bad("one of " + ", ".join(choices))
    elif kind == _LIST:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("a list of non-empty strings")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a whole number >= 0")
    elif kind == "num":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise bad("a number >= 0")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind == "table[num]":
        if not isinstance(value, dict) or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value.values()):
            raise bad("a table of label = share (numbers >= 0)")
        if sum(value.values()) <= 0:
            raise bad("a table whose shares add up to more than 0")


def qc_flags() -> tuple[str, ...] | None:
    """The QC flag names the look module can raise: ``look.QC_FLAGS``, else ``qc.FLAGS``
    (qchash's layout), else None (not checked)."""
    from vindr_cli.curate import look

    known = getattr(look, "QC_FLAGS", None)
    if known is None:
        try:
            from vindr_cli.curate.qc import FLAGS as known    # type: ignore[no-redef]
        except ImportError:
            known = None
    return tuple(known) if known is not None else None


def parse_recipe(text: str, label: str, path: Path | None = None) -> Recipe:
    """Check and read a recipe's TOML text (``label`` names it in messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{label}: not valid TOML ({exc})") from None
    for key, value in data.items():
        if key in _SCHEMA and key:
            if not isinstance(value, dict):
                raise RecipeError(f"{label}: [{key}] must be a table")
            for sub, v in value.items():
                if sub not in _SCHEMA[key]:
                    raise RecipeError(f"{label}: unknown key '{key}.{sub}' (allowed in [{key}]: "
                                      f"{', '.join(_SCHEMA[key])})")
                _check_value(label, f"{key}.", sub, v, *_SCHEMA[key][sub])
        elif key in _SCHEMA[""]:
            _check_value(label, "", key, value, *_SCHEMA[""][key])
        else:
            allowed = [k for k in _SCHEMA[""]] + [f"[{k}]" for k in _SCHEMA if k]
            raise RecipeError(f"{label}: unknown key '{key}' (allowed: {', '.join(allowed)})")
    crit = dict(data.get("criteria", {}))
    for k in ("modality", "view", "laterality", "photometric", "image_type", "presentation_intent", "body_part"):
        if k in crit:
            crit[k] = [v.strip().upper() for v in crit[k]]
    if "sop_class" in crit:
        crit["sop_class"] = [v.strip() for v in crit["sop_class"]]
    if "body_part" in crit:
        from vindr_cli.curate.bodypart import known_terms

        unknown = [v for v in crit["body_part"] if v not in known_terms()]
        if unknown:
            raise RecipeError(f"{label}: criteria.body_part '{unknown[0]}' is not a term of "
                              f"schemas/curate/body_parts.toml (known: {', '.join(sorted(known_terms()))})")
    if crit.get("age_min") is not None and crit.get("age_max") is not None and crit["age_min"] > crit["age_max"]:
        raise RecipeError(f"{label}: criteria.age_min is above criteria.age_max")
    qc = data.get("qc", {}).get("exclude", [])
    known_flags = qc_flags()
    for flag in qc:
        if known_flags is not None and flag not in known_flags:
            raise RecipeError(f"{label}: qc.exclude '{flag}' is not a QC flag (known: {', '.join(known_flags)})")
    dup = data.get("duplicates", {})
    smp = data.get("sampling", {})
    labels = None
    if "labels" in smp:
        labels = Path(smp["labels"])
        if not labels.is_absolute():
            labels = (path.parent if path is not None else Path.cwd()) / labels
    if smp.get("n") == 0:
        raise RecipeError(f"{label}: sampling.n must be at least 1 (leave it out to take every qualifying image)")
    return Recipe(name=data.get("name") or (path.stem if path else "recipe"), text=text, path=path,
                  description=data.get("description", ""), source=data.get("source", ""), criteria=crit,
                  qc_exclude=tuple(qc), within=dup.get("within", "keep-one"),
                  across_patients=dup.get("across_patients", "exclude"), n=smp.get("n"),
                  one_per_study=smp.get("one_per_study", False), labels=labels,
                  proportions={str(k): float(v) for k, v in smp.get("proportions", {}).items()})


def load_recipe(name_or_file: str | Path | None) -> Recipe:
    """A preset name (``vindr-cxr``, ``vindr-spinexr``; default ``vindr-cxr``) or a TOML file."""
    if name_or_file is None:
        name_or_file = "vindr-cxr"
    if str(name_or_file) in PRESETS:
        p = schema_path("recipes", f"{name_or_file}.toml")
        return parse_recipe(p.read_text(encoding="utf-8"), f"preset {name_or_file}")
    path = Path(name_or_file)
    if not path.is_file():
        raise RecipeError(f"--recipe must be a preset ({', '.join(PRESETS)}) or an existing TOML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path.name}: cannot be read as UTF-8 text ({type(exc).__name__})") from None
    return parse_recipe(text, path.name, path.resolve())
