"""The closed vocabulary of the reasons vindr writes (``schemas/tables/reasons.json``).

A reason column (anonymize's ``manifest.parquet`` ``reason``, select's ``selection.parquet``
``reasons``) holds fixed one-line strings written by vindr itself. The tables are plain files
that anyone with write access can edit, so whatever copies a reason into something handed on
(a release's ``datasheet.json`` and ``README.md``, ``split_report.json``) shows it only when it
is one of the vocabulary's, else :data:`OTHER` — and counts it there.

The vocabulary is data: per table, ``exact`` strings and ``templates`` whose ``{variable}``
parts each come from a closed set (values listed in the file, a table of a shipped TOML file,
Python's ``errno.errorcode``, or Python's built-in exception names).
``tests/test_reasons.py`` fails when the code can write a reason that is not in it.
"""
from __future__ import annotations

import errno
import json
import re
import tomllib
from functools import cache

from vindr_cli.annotations.badrows import MASK, QUOTED as _QUOTED
from vindr_cli.resources import schema_path

OTHER = "(other reason)"
_VAR = re.compile(r"\{([a-z_]+)\}")


@cache
def vocabulary() -> dict:
    return json.loads(schema_path("tables", "reasons.json").read_text(encoding="utf-8"))


def _values(spec: dict) -> str:
    """One variable's closed set as a regular expression."""
    if "pattern" in spec and not spec.get("values"):
        return f"(?:{spec['pattern']})"
    values = list(spec.get("values", ()))
    if "toml" in spec:
        doc = tomllib.loads(schema_path(*spec["toml"]).read_text(encoding="utf-8"))
        values += [str(v) for v in doc[spec["table"]].values()]
    if spec.get("python") == "errno.errorcode":
        values += list(errno.errorcode.values())
    if spec.get("python") == "builtins.exceptions":
        import builtins
        values += [n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)]
    if spec.get("python") in ("labels.names", "labels.allowed"):
        from vindr_cli.annotations.labels import builtin     # the shipped label sets only

        sets = [builtin(p.stem) for p in sorted(schema_path("labels").glob("*.toml"))]
        values += ([ls.name for ls in sets] if spec["python"] == "labels.names" else
                   [ls.allowed(image_level=lvl) for ls in sets for lvl in (False, True)])
    if not values:
        raise ValueError("schemas/tables/reasons.json: a variable has no values")
    pattern = [f"(?:{spec['pattern']})"] if "pattern" in spec else []    # a pattern and values: either
    return "(?:" + "|".join(pattern + [re.escape(v) for v in sorted(set(values), key=len, reverse=True)]) + ")"


def template_regex(template: str, extra: tuple = ()) -> re.Pattern:
    """``template``'s fixed parts taken literally, each ``{variable}`` as its closed set
    (``extra``: (variable, values) pairs added to a variable's set for this use)."""
    variables = vocabulary()["variables"]
    more = dict(extra)
    out, pos = [], 0
    for m in _VAR.finditer(template):
        spec = variables[m.group(1)]
        if m.group(1) in more:
            spec = {**spec, "values": [*spec.get("values", ()), *more[m.group(1)]]}
        out += [re.escape(template[pos:m.start()]), _values(spec)]
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


@cache
def _matchers(table: str, extra: tuple = ()) -> tuple[frozenset[str], tuple[re.Pattern, ...]]:
    spec = vocabulary()["tables"][table]
    return frozenset(spec["exact"]), tuple(template_regex(t, extra) for t in spec["templates"])


def _extra(extra: dict | None) -> tuple:
    return tuple(sorted((k, tuple(sorted(map(str, v)))) for k, v in (extra or {}).items()))


def known(table: str, reason, extra: dict | None = None) -> bool:
    """True when ``reason`` is one vindr writes into ``table`` (a key of the vocabulary's tables).
    ``extra``: values a variable may also take in this use (e.g. the label set in effect,
    which the release publishes anyway in labels.json)."""
    if not isinstance(reason, str):
        return False
    exact, templates = _matchers(table, _extra(extra))
    return reason in exact or any(t.fullmatch(reason) for t in templates)


def shown(table: str, reason) -> str:
    """``reason`` when it is in the vocabulary, else :data:`OTHER` (never the text itself)."""
    return reason if known(table, reason) else OTHER


# a value an annotation reader quoted from the row (annotations.badrows.quote: Python's repr);
# MASK and _QUOTED are annotations.badrows': one masking for every reader


@cache
def _value_regex(extra: tuple) -> re.Pattern:
    return template_regex("{value}", extra)


def shown_masked(table: str, reason, extra: dict | None = None) -> str:
    """Like :func:`shown`, for reasons that quote a value from the input row (a bad
    annotation row): each quoted value is replaced by ``<value>`` first — except one the
    vocabulary's ``{value}`` allows (a short plain number; with ``extra``, a listed name of the
    label set in effect, quoted) — and the result is shown only when it is in the vocabulary
    (so only vindr's own words remain), else :data:`OTHER`. When that fails, every quoted
    value masked is tried too."""
    if not isinstance(reason, str):
        return OTHER
    keep = _value_regex(_extra(extra))
    for masked in (_QUOTED.sub(lambda m: m.group(0) if keep.fullmatch(m.group(0)) else MASK, reason),
                   _QUOTED.sub(MASK, reason)):
        if known(table, masked, extra):
            return masked
    return OTHER


def label_set_extra(label_set) -> dict:
    """``extra`` for a bad-row reason: the label set in effect (labels.json publishes it) may be
    named, its ``allowed`` lines shown, and its listed names quoted as a ``{value}``."""
    return {"label_set": [label_set.name],
            "allowed": [label_set.allowed(), label_set.allowed(image_level=True)],
            "value": [repr(n) for n in label_set.all_labels]}
