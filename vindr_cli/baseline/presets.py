"""Model presets of ``vindr baseline --model NAME`` (data: ``schemas/baseline/models.toml``).

A preset is a named set of :class:`~vindr_cli.baseline.model.ModelConfig` fields (widths,
blocks, FPN and head channels, ...): ``tiny`` (the CPU default, ModelConfig's defaults),
``small`` (ResNet-18 stages) and ``base`` (ResNet-34 stages) for 1024 px training on a GPU.
The file's source and rationale are recorded in it. It is checked whole each time it is
read: an unknown field, a value of the wrong type or length is refused. No torch import
here, so the CLI can check ``--model`` before it loads PyTorch.
"""
from __future__ import annotations

import tomllib
from functools import cache

from vindr_cli.errors import RequestError
from vindr_cli.resources import schema_path

__all__ = ["DEFAULT_MODEL", "ModelPresetError", "model_names", "preset_fields", "resolve_model"]

DEFAULT_MODEL = "tiny"
# fields a preset may set, and how each is checked: (kind, length) with length for lists
_FIELDS = {"widths": ("ints", 5), "blocks": ("ints", 4), "fpn_channels": ("int", None),
           "head_channels": ("int", None), "out_stride": ("stride", None), "box_unit": ("float", None)}
_META = {"description"}


class ModelPresetError(RequestError):
    """An unknown ``--model`` name (exit 2, one fixed line)."""


def _check(name: str, table: dict) -> dict:
    where = f"schemas/baseline/models.toml [presets.{name}]"
    unknown = sorted(set(table) - set(_FIELDS) - _META)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(_FIELDS)})")
    out = {}
    for key, value in table.items():
        if key in _META:
            if not isinstance(value, str):
                raise ValueError(f"{where}: {key} must be a string")
            continue
        kind, length = _FIELDS[key]
        if kind == "ints":
            if (not isinstance(value, list) or len(value) != length
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
                raise ValueError(f"{where}: {key} must be a list of {length} positive integers")
            value = tuple(value)
        elif kind in ("int", "stride"):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{where}: {key} must be a positive integer")
            if kind == "stride" and value not in (4, 8):
                raise ValueError(f"{where}: {key} must be 4 or 8")
        elif kind == "float":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{where}: {key} must be a positive number")
            value = float(value)
        out[key] = value
    return out


@cache
def _presets() -> tuple[dict[str, dict], str]:
    doc = tomllib.loads(schema_path("baseline", "models.toml").read_text(encoding="utf-8"))
    extra = sorted(set(doc) - {"default", "presets"})
    if extra or not isinstance(doc.get("presets"), dict) or not doc["presets"]:
        raise ValueError("schemas/baseline/models.toml: needs a [presets.NAME] table per preset and "
                         "a default, nothing else")
    presets = {name: _check(name, table) for name, table in doc["presets"].items()}
    default = doc.get("default")
    if default not in presets:
        raise ValueError("schemas/baseline/models.toml: default names no preset")
    return presets, default


def model_names() -> list[str]:
    """The preset names, in the file's order."""
    return list(_presets()[0])


def resolve_model(name: str | None) -> str:
    """``name`` when it is a preset (None: the default), else :class:`ModelPresetError`. The
    message is fixed: it lists the presets and never repeats what was given."""
    if name is None:
        return _presets()[1]
    if name not in _presets()[0]:
        raise ModelPresetError(f"--model must be one of {', '.join(model_names())}")
    return name


def preset_fields(name: str | None) -> dict:
    """The ModelConfig fields of preset ``name`` (a fresh dict; tuples for widths/blocks)."""
    return dict(_presets()[0][resolve_model(name)])
