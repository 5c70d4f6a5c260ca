"""Annex E options (``schemas/deid/options.toml``): codes, meanings and which are supported."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache

from vindr_cli.resources import schema_path


@dataclass(frozen=True)
class Option:
    name: str
    code: str
    meaning: str
    supported: bool


@cache
def load_options() -> tuple[Option, dict[str, Option]]:
    """Return (the basic profile's code entry, options by name)."""
    data = tomllib.loads(schema_path("deid", "options.toml").read_text(encoding="utf-8"))
    basic = Option("basic", data["basic"]["code"], data["basic"]["meaning"], True)
    opts = {
        name: Option(name, o["code"], o["meaning"], bool(o.get("supported", False)))
        for name, o in data["options"].items()
    }
    return basic, opts
