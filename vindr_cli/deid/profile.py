"""Build a resolved de-identification profile from the data under ``schemas/deid``.

A profile answers one question for the dataset walk: what to do with an element, given
its tag and VR. Built-in profiles are ``basic`` (Table E.1-1) and ``vindr`` (a keep-list);
a user recipe (TOML) starts from one of them and overrides actions per tag.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import dictionary_has_tag, keyword_for_tag, tag_for_keyword

from vindr_cli.deid.options import load_options
from vindr_cli.deid.table import load_table
from vindr_cli.resources import schema_path

SIMPLE_ACTIONS = {"D", "Z", "X", "K", "C", "U"}
TEXT_VRS = {"LT", "ST", "UT", "UC"}
COMPOUND_ACTIONS = {"X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
DATE_MODES = {"shift": "retain_modified_dates", "keep": "retain_full_dates", "remove": None}
BUILTIN = ("basic", "vindr")


class ProfileError(ValueError):
    """A profile or recipe that cannot be used (one line, no PHI)."""


@dataclass(frozen=True)
class Rule:
    action: str          # simple or compound action
    fallback: str        # what to do when a C (clean) cannot be carried out: the basic action


@dataclass(frozen=True)
class Profile:
    name: str
    mode: str                                   # "table" or "keep-list"
    options: frozenset[str]
    dates: str                                  # shift | keep | remove
    rules: dict[int, Rule] = field(repr=False)
    substitutes: dict[int, str] = field(repr=False)
    unlisted: str = "K"
    unlisted_pn: str = "X/Z"
    unlisted_text: str = "X"
    unlisted_date: str = "C"
    unknown_public: str = "X"
    unlisted_uid: str = "U"
    source: str = ""

    def rule(self, tag: int, vr: str | None) -> Rule:
        """The rule for a public (even-group) element that is not an overlay or curve."""
        found = self.rules.get(tag)
        if found is not None:
            return found
        if self.mode == "keep-list":
            return Rule("X", "X")
        if not dictionary_has_tag(tag):
            return Rule(self.unknown_public, self.unknown_public)
        if vr == "PN":
            return Rule(self.unlisted_pn, self.unlisted_pn)
        if vr in TEXT_VRS:
            return Rule(self.unlisted_text, self.unlisted_text)
        if vr in ("DA", "DT"):
            fallback = "X/Z"
            if self.dates == "keep":
                return Rule("K", fallback)
            return Rule(self.unlisted_date if self.dates == "shift" else fallback, fallback)
        if vr == "UI":
            return Rule(self.unlisted_uid, self.unlisted_uid)
        return Rule(self.unlisted, self.unlisted)

    def option_codes(self) -> list[tuple[str, str]]:
        """(code, meaning) for 113100 and every option in effect, for the output's marks."""
        basic, opts = load_options()
        return [(basic.code, basic.meaning)] + sorted((opts[o].code, opts[o].meaning) for o in self.options)

    def fingerprint(self) -> str:
        """Hash of everything that decides the output, to refuse resuming with another profile."""
        blob = json.dumps(
            {
                "name": self.name, "mode": self.mode, "options": sorted(self.options), "dates": self.dates,
                "rules": sorted((t, r.action, r.fallback) for t, r in self.rules.items()),
                "subs": sorted(self.substitutes.items()),
                "defaults": [self.unlisted, self.unlisted_pn, self.unlisted_text, self.unlisted_date,
                             self.unknown_public, self.unlisted_uid],
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_tag(text: str) -> int:
    """'PatientName', '(0010,0010)', '0010,0010' or '00100010' -> tag; unknown -> ProfileError."""
    t = text.strip()
    num = t.strip("()").replace(",", "").replace(" ", "")
    if len(num) == 8 and all(c in "0123456789abcdefABCDEF" for c in num):
        tag = int(num, 16)
        if (tag >> 16) % 2 == 1:
            raise ProfileError(f"recipe tag {t}: private elements are always removed and cannot be overridden")
        if not dictionary_has_tag(tag):
            raise ProfileError(f"recipe tag {t} is not in the DICOM data dictionary")
        return tag
    tag = tag_for_keyword(t)
    if tag is None:
        raise ProfileError(f"recipe names an unknown attribute {t!r}")
    return tag


def _check_action(action: str, where: str) -> str:
    if action not in SIMPLE_ACTIONS | COMPOUND_ACTIONS:
        raise ProfileError(f"{where}: unknown action {action!r} (use D, Z, X, K, C, U or a compound)")
    return action


def _resolve_options(requested: set[str], dates: str) -> frozenset[str]:
    _, known = load_options()
    if dates not in DATE_MODES:
        raise ProfileError(f"--dates must be one of {', '.join(DATE_MODES)}")
    opts = set(requested)
    if DATE_MODES[dates]:
        opts.add(DATE_MODES[dates])
    for o in opts:
        if o not in known:
            raise ProfileError(f"unknown option {o!r}")
        if not known[o].supported:
            raise ProfileError(f"option {o!r} is not supported by vindr")
    return frozenset(opts)


def _table_rules(options: frozenset[str]) -> dict[int, Rule]:
    _, rows = load_table()
    rules: dict[int, Rule] = {}
    for row in rows:
        if row.keyword is None:      # repeating groups and private: handled by the walk
            continue
        chosen = [row.options[o] for o in options if o in row.options]
        action = "K" if "K" in chosen else "C" if "C" in chosen else row.basic
        rules[int(row.tag, 16)] = Rule(action, row.basic)
    return rules


def _keep_list_rules(spec: dict) -> dict[int, Rule]:
    rules = {}
    for kw in spec["keep"]:
        rules[parse_tag(kw)] = Rule("K", "X")
    for kw, action in spec.get("replace", {}).items():
        rules[parse_tag(kw)] = Rule(_check_action(action, f"profile {spec['name']}"), "X")
    return rules


def _load_builtin(name: str) -> dict:
    path = schema_path("deid", "profiles", f"{name}.toml")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def load_profile(
    name_or_file: str = "basic",
    *,
    dates: str = "shift",
    options: set[str] | None = None,
    without: set[str] | None = None,
) -> Profile:
    """Resolve a built-in profile name or a recipe file into a Profile.

    ``options`` adds Annex E options; ``without`` removes options a profile turns on by
    default (e.g. ``retain_patient_characteristics``).
    """
    recipe: dict = {}
    if name_or_file in BUILTIN:
        base = name_or_file
        source = f"built-in profile {base}"
    else:
        path = Path(name_or_file)
        if not path.is_file():
            raise ProfileError(f"--profile must be one of {', '.join(BUILTIN)} or a recipe .toml file")
        try:
            recipe = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"recipe {path.name} is not valid TOML ({type(exc).__name__})") from None
        unknown_keys = set(recipe) - {"base", "options", "actions", "substitutes"}
        if unknown_keys:
            raise ProfileError(f"recipe {path.name}: unknown keys {sorted(unknown_keys)}")
        base = recipe.get("base", "basic")
        if base not in BUILTIN:
            raise ProfileError(f"recipe {path.name}: base must be one of {', '.join(BUILTIN)}")
        source = f"recipe {path.name} on built-in profile {base}"
    spec = _load_builtin(base)
    requested = set(spec.get("options", [])) | set(recipe.get("options", [])) | set(options or ())
    requested -= set(without or ())
    opts = _resolve_options(requested, dates)
    if spec["mode"] == "table":
        rules = _table_rules(opts)
        for kw, action in spec.get("extra", {}).items():
            rules[parse_tag(kw)] = Rule(_check_action(action, f"profile {base}"), action)
    else:
        rules = _keep_list_rules(spec)
    subs = {parse_tag(k): v for k, v in spec.get("substitutes", {}).items()}
    for key, action in recipe.get("actions", {}).items():
        tag = parse_tag(key)
        _check_action(action, f"recipe action for {key}")
        rules[tag] = Rule(action, rules[tag].fallback if tag in rules else "X")
        subs.pop(tag, None)
    for key, kind in recipe.get("substitutes", {}).items():
        subs[parse_tag(key)] = kind
    defaults = spec.get("actions", {})
    return Profile(
        name=base if not recipe else f"{base}+recipe",
        mode=spec["mode"],
        options=opts,
        dates=dates,
        rules=rules,
        substitutes=subs,
        unlisted=defaults.get("unlisted", "K"),
        unlisted_pn=defaults.get("unlisted_pn", "X/Z"),
        unlisted_text=defaults.get("unlisted_text", "X"),
        unlisted_date=defaults.get("unlisted_date", "C"),
        unknown_public=defaults.get("unknown_public", "X"),
        unlisted_uid=defaults.get("unlisted_uid", "U"),
        source=source,
    )


def describe_tag(tag: int) -> str:
    kw = keyword_for_tag(tag)
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}){' ' + kw if kw else ''}"
