"""Build a resolved de-identification profile from the data under ``schemas/deid``.

A profile answers one question for the dataset walk: what to do with an element, given
its tag and VR. Built-in profiles are ``basic`` (Table E.1-1) and ``vindr`` (a keep-list);
a user recipe (TOML) starts from one of them and overrides actions per tag.
"""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag, tag_for_keyword

from vindr_cli.deid.options import load_options
from vindr_cli.deid.table import load_table
from vindr_cli.errors import RequestError
from vindr_cli.resources import schema_path

TEXT_VRS = {"LT", "ST", "UT", "UC"}
DATE_MODES = {"shift": "retain_modified_dates", "keep": "retain_full_dates", "remove": None}
BUILTIN = ("basic", "vindr")


class ProfileError(RequestError):
    """A profile or recipe that cannot be used (exit 2; one line naming the file and line, no PHI)."""


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
            # not on the keep-list: removed, or emptied / dummied where the IOD makes it Type 2 / 1
            # so the output stays a valid instance (the engine keeps a Type 1 number or coded
            # string that deid.policy judges safe as its own dummy: KEEP_LIST_TYPE1_KEPT)
            return Rule("X/Z/D", "X")
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
                # the safe-by-default allowlists decide what "K" keeps (deid.policy)
                "policy": policy_data_hash(),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Every data file that decides what an output holds besides the profile itself: a resumed
# OUTPUT never mixes two versions of the allowlists, code dictionary rules, IOD Types,
# descriptor vocabulary, defined terms or pydicom dictionaries.
POLICY_FILES = (("deid", "safe_attributes.toml"), ("deid", "code_meanings.toml"), ("deid", "iod_types.json"),
                ("deid", "clean_descriptors.toml"), ("deid", "burned_in.toml"), ("dicom", "defined_terms.toml"),
                ("deid", "vendors.toml"), ("deid", "codestream_comments.toml"), ("deid", "confusables.toml"))


def policy_data_hash() -> str:
    import pydicom    # its data dictionary and PS3.16 code dictionaries decide VRs and code meanings

    h = hashlib.sha256(pydicom.__version__.encode())
    for parts in POLICY_FILES:
        h.update("/".join(parts).encode() + b"\0" + hashlib.sha256(schema_path(*parts).read_bytes()).digest())
    return h.hexdigest()


def parse_tag(text: str) -> int:
    """'PatientName', '(0010,0010)', '0010,0010' or '00100010' -> tag; unknown -> ProfileError."""
    t = text.strip()[:80]       # keywords are at most 63 characters; a message quotes no more
    num = t.strip("()").replace(",", "").replace(" ", "")
    if len(num) == 8 and all(c in "0123456789abcdefABCDEF" for c in num):
        tag = int(num, 16)
        if (tag >> 16) % 2 == 1:
            raise ProfileError(f"tag {t}: private elements are always removed and cannot be overridden")
        if not dictionary_has_tag(tag):
            raise ProfileError(f"tag {t} is not in the DICOM data dictionary")
        return tag
    tag = tag_for_keyword(t)
    if tag is None:
        raise ProfileError(f"unknown attribute {t!r} (not a DICOM keyword or (gggg,eeee) tag)")
    return tag


ALLOWED_ACTIONS = ("D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*")
SUBSTITUTE_KINDS = ("patient_name", "patient_id", "accession", "study_id")   # engine._substitute
SUBSTITUTE_VRS = {"patient_name": ("PN",), "patient_id": ("LO", "SH"), "accession": ("LO", "SH"),
                  "study_id": ("LO", "SH")}   # the values (ANON^ + 15, P/A/S + 15 characters) fit these
RECIPE_KEYS = ("base", "options", "actions", "substitutes")
BUILTIN_KEYS = ("name", "mode", "table", "options", "substitutes", "actions", "extra", "keep", "replace")
DEFAULT_ACTIONS = ("unlisted", "unlisted_pn", "unlisted_text", "unlisted_date", "unknown_public", "unlisted_uid")
MODES = ("table", "keep-list")

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEYPART = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEYLINE = re.compile(rf"^\s*({_KEYPART}(?:\s*\.\s*{_KEYPART})*)\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in re.findall(_KEYPART, text))


class _Source:
    """A parsed TOML file and where its keys are: tomllib gives no line numbers, so the text is
    scanned for table headers and ``key =`` lines (dotted and quoted keys included). Errors
    name the file and line; they quote keys and actions, never a value that could be PHI (a
    profile holds none: keywords, tags, action codes and option names only)."""

    def __init__(self, label: str, text: str):
        self.label = label
        self.text_lines = text.splitlines()
        self.where: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for n, line in enumerate(self.text_lines, 1):
            m = _HEADER.match(line)
            if m:
                table = _split_key(m.group(1))
                self.where.setdefault(table, n)
                continue
            m = _KEYLINE.match(line)
            if m:
                self.where.setdefault(table + _split_key(m.group(1)), n)

    def line(self, path: tuple[str, ...], item: str | None = None) -> int | None:
        for k in range(len(path), 0, -1):
            if path[:k] in self.where:
                n = self.where[path[:k]]
                break
        else:
            return None
        if item is not None:   # an array element: the first line from the key's on that quotes it
            for i in range(n - 1, len(self.text_lines)):
                if f'"{item}"' in self.text_lines[i] or f"'{item}'" in self.text_lines[i]:
                    return i + 1
        return n

    def error(self, message: str, *path: str, item: str | None = None) -> ProfileError:
        n = self.line(path, item)
        return ProfileError(f"{self.label} line {n}: {message}" if n else f"{self.label}: {message}")

    def tag(self, key: str, *path: str) -> int:
        try:
            return parse_tag(key)
        except ProfileError as exc:
            raise self.error(str(exc), *path) from None

    def action(self, value, what: str, *path: str) -> str:
        if not isinstance(value, str) or value not in ALLOWED_ACTIONS:
            shown = repr(value) if isinstance(value, str) and len(value) <= 16 else "(not a short string)"
            raise self.error(f"unknown action {shown} for {what} (allowed: {', '.join(ALLOWED_ACTIONS)})", *path)
        return value

    def table(self, data: dict, name: str) -> dict:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.error(f"{name} must be a table (a {name} header, then one 'key = value' per line)", name)
        return value

    def string_list(self, data: dict, name: str) -> list[str]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"{name} must be a list of strings", name)
        return value

    def keys(self, data: dict, allowed: tuple[str, ...], what: str) -> None:
        for key in data:
            if key not in allowed:
                raise self.error(f"unknown {what} {key!r} (allowed: {', '.join(allowed)})", key)

    def options(self, names: list[str]) -> None:
        _, known = load_options()
        for o in names:
            if o not in known:
                raise self.error(f"unknown option {o!r} (allowed: {', '.join(sorted(k for k, v in known.items() if v.supported))})",
                                 "options", item=o)
            if not known[o].supported:
                raise self.error(f"option {o!r} is not supported by vindr", "options", item=o)

    def substitutes(self, data: dict) -> dict[int, str]:
        subs = {}
        for key, kind in self.table(data, "substitutes").items():
            tag = self.tag(key, "substitutes", key)
            if not isinstance(kind, str) or kind not in SUBSTITUTE_KINDS:
                shown = repr(kind) if isinstance(kind, str) and len(kind) <= 32 else "(not one of them)"
                raise self.error(f"unknown substitute kind {shown} for {key} (allowed: {', '.join(SUBSTITUTE_KINDS)})",
                                 "substitutes", key)
            vr = dictionary_VR(tag)
            if vr not in SUBSTITUTE_VRS[kind]:
                raise self.error(f"substitute kind {kind!r} does not fit {key} (VR {vr}; it needs "
                                 f"{' or '.join(SUBSTITUTE_VRS[kind])})", "substitutes", key)
            subs[tag] = kind
        return subs


def _read_toml(path: Path, label: str) -> tuple[dict, _Source]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{label} is not UTF-8 text") from None
    except OSError as exc:
        raise ProfileError(f"{label} cannot be read ({type(exc).__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message is a fixed sentence plus "(at line N, column M)": no file content
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        what = msg.split(" (at ")[0].strip() or "syntax error"
        where = f"{label} line {m.group(1)}" if m else label
        raise ProfileError(f"{where}: not valid TOML ({what[:80]})") from None
    return data, _Source(label, text)


def _check_builtin(spec: dict, src: _Source) -> None:
    """Every key, tag, action, option and substitute kind of a shipped profile, up front."""
    src.keys(spec, BUILTIN_KEYS, "top-level key")
    if spec.get("mode") not in MODES:
        raise src.error(f"mode must be one of {', '.join(MODES)}", "mode")
    src.options(src.string_list(spec, "options"))
    src.substitutes(spec)
    defaults = src.table(spec, "actions")
    for key, action in defaults.items():
        if key not in DEFAULT_ACTIONS:
            raise src.error(f"unknown default action {key!r} (allowed: {', '.join(DEFAULT_ACTIONS)})", "actions", key)
        src.action(action, key, "actions", key)
    for key, action in src.table(spec, "extra").items():
        src.tag(key, "extra", key)
        src.action(action, key, "extra", key)
    for kw in src.string_list(spec, "keep"):
        try:
            parse_tag(kw)
        except ProfileError as exc:
            raise src.error(str(exc), "keep", item=kw) from None
    for key, action in src.table(spec, "replace").items():
        src.tag(key, "replace", key)
        src.action(action, key, "replace", key)
    if spec["mode"] == "keep-list" and "keep" not in spec:
        raise src.error("a keep-list profile needs keep = [...]", "mode")


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
        rules[parse_tag(kw)] = Rule(action, "X")
    return rules


def builtin_path(name: str) -> Path:
    return schema_path("deid", "profiles", f"{name}.toml")


def load_builtin(name: str) -> dict:
    """A shipped profile, checked like a recipe (a broken one is refused naming its line)."""
    data, src = _read_toml(builtin_path(name), f"{name}.toml")
    _check_builtin(data, src)
    return data


def load_profile(
    name_or_file: str = "basic",
    *,
    dates: str = "shift",
    options: set[str] | None = None,
    without: set[str] | None = None,
) -> Profile:
    """Resolve a built-in profile name or a recipe file into a Profile.

    ``options`` adds Annex E options; ``without`` removes options a profile turns on by
    default (e.g. ``retain_patient_characteristics``). A recipe is checked entirely before
    it is used: an unknown top-level key, option, attribute, tag, action or substitute kind
    is a :class:`ProfileError` naming the recipe's line.
    """
    recipe: dict = {}
    actions: dict[int, str] = {}
    recipe_subs: dict[int, str] = {}
    if name_or_file in BUILTIN:
        base = name_or_file
        source = f"built-in profile {base}"
    else:
        path = Path(name_or_file)
        if not path.is_file():
            raise ProfileError(f"--profile must be one of {', '.join(BUILTIN)} or a recipe .toml file")
        recipe, src = _read_toml(path, path.name)
        src.keys(recipe, RECIPE_KEYS, "top-level key")
        base = recipe.get("base", "basic")
        if base not in BUILTIN:
            raise src.error(f"base must be one of {', '.join(BUILTIN)}", "base")
        src.options(src.string_list(recipe, "options"))
        for key, action in src.table(recipe, "actions").items():
            tag = src.tag(key, "actions", key)
            actions[tag] = src.action(action, key, "actions", key)
        recipe_subs = src.substitutes(recipe)
        source = f"recipe {path.name} on built-in profile {base}"
    spec = load_builtin(base)
    requested = set(spec.get("options", [])) | set(recipe.get("options", [])) | set(options or ())
    requested -= set(without or ())
    opts = _resolve_options(requested, dates)
    if spec["mode"] == "table":
        rules = _table_rules(opts)
        for kw, action in spec.get("extra", {}).items():
            rules[parse_tag(kw)] = Rule(action, action)
    else:
        rules = _keep_list_rules(spec)
    subs = {parse_tag(k): v for k, v in spec.get("substitutes", {}).items()}
    for tag, action in actions.items():
        rules[tag] = Rule(action, rules[tag].fallback if tag in rules else "X")
        subs.pop(tag, None)
    subs.update(recipe_subs)
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
