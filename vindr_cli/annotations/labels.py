"""Label vocabularies as data: ``schemas/labels/<name>.toml``, or any TOML file in the same form.

A label set file::

    name = "vinbigdata"                 # required, how it is referred to (--labels NAME)
    title = "..."                       # optional, one line
    source = "..."                      # required: where the names and their order come from
    no_finding = "No finding"           # optional: the class that means "read, nothing found"
    classes = ["Aortic enlargement", …] # required: box classes; the position is the class id
    global_labels = ["COPD", …]         # optional: image-level labels (VinDr-CXR image_labels)
    [aliases]                           # optional: other spellings, read as the class named
    "interstitial lung disease" = "ILD"

Matching a name (:meth:`LabelSet.match`): the published spelling first; then, documented and
deliberate, the same name compared without case and with runs of blanks folded to one
space ("nodule/mass", "Lung  Opacity"); then the aliases, compared the same way. Anything
else is unknown: the caller reports the row and names the allowed classes
(:meth:`LabelSet.allowed`). A match always yields the published spelling, so what is
written downstream (split's annotations.csv, the release) holds only canonical names.

Built-in sets: ``vinbigdata`` (Kaggle's 15, by class_id), ``vindr-cxr`` (PhysioNet 1.0.0:
22 local labels + No finding, 6 global labels), ``vindr-spinexr`` (7 lesion types + No
finding, in the authors' published order). Which one a file gets by default:
:func:`default_for`.
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from vindr_cli.errors import RequestError
from vindr_cli.resources import schema_path

BUILTIN = ("vinbigdata", "vindr-cxr", "vindr-spinexr")
NO_FINDING = "No finding"


class LabelSetError(RequestError):
    """A label set that cannot be loaded (exit 2)."""


def fold(name: str) -> str:
    """The case- and blank-insensitive key of a name (see the module doc)."""
    return re.sub(r"\s+", " ", str(name)).strip().casefold()


@dataclass(frozen=True)
class LabelSet:
    name: str
    source: str
    classes: tuple[str, ...]
    global_labels: tuple[str, ...] = ()
    no_finding: str | None = NO_FINDING
    title: str = ""
    aliases: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.classes:
            raise LabelSetError(f"label set {self.name!r}: no classes")
        every = self.classes + self.global_labels
        if len({fold(c) for c in every}) != len(every):
            raise LabelSetError(f"label set {self.name!r}: class names repeat (compared without case)")
        if self.no_finding is not None and self.no_finding not in self.classes:
            raise LabelSetError(f"label set {self.name!r}: no_finding {self.no_finding!r} is not one of its classes")
        for alias, target in self.aliases.items():
            if target not in every:
                raise LabelSetError(f"label set {self.name!r}: alias {alias!r} names {target!r}, not one of its classes")
        folded = {fold(c): c for c in every}
        for alias, target in self.aliases.items():
            folded.setdefault(fold(alias), target)
        object.__setattr__(self, "_exact", {c: c for c in every})
        object.__setattr__(self, "_folded", folded)
        object.__setattr__(self, "_ids", {c: i for i, c in enumerate(self.classes)})

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        """Box classes by id (the vocabulary of boxes and predictions)."""
        return self.classes

    @property
    def all_labels(self) -> tuple[str, ...]:
        """Box classes, then the image-level-only labels."""
        return self.classes + self.global_labels

    @property
    def no_finding_id(self) -> int | None:
        return None if self.no_finding is None else self._ids[self.no_finding]

    def match(self, name: str, *, image_level: bool = False) -> str | None:
        """The published spelling of ``name`` (module doc), or None. Image-level labels only with ``image_level``."""
        text = str(name).strip()
        got = self._exact.get(text) or self._folded.get(fold(text))
        if got is None or (not image_level and got not in self._ids):
            return None
        return got

    def class_id(self, name: str) -> int | None:
        """The id of a box class given by its published spelling (or a match of it)."""
        canonical = self.match(name)
        return None if canonical is None else self._ids[canonical]

    def by_name(self, name: str) -> int | None:
        return self.class_id(name)

    def by_id(self, token: str) -> int | None:
        """The class id written as an integer token ("8", "8.0"), if it is one of ours."""
        t = str(token).strip()
        if not re.fullmatch(r"[+]?\d+(\.0*)?", t):
            return None
        i = int(float(t))
        return i if 0 <= i < len(self.classes) else None

    def allowed(self, *, image_level: bool = False) -> str:
        """One line naming the allowed classes, for messages."""
        names = self.all_labels if image_level else self.classes
        return f"label set {self.name} allows: {', '.join(names)}"

    # ------------------------------------------------------------------ records
    def to_json(self) -> dict:
        """What a release records in labels.json (ids, names, the set's name and source)."""
        return {"label_set": self.name, "title": self.title, "source": self.source, "no_finding": self.no_finding,
                "classes": [{"id": i, "name": n} for i, n in enumerate(self.classes)],
                "global_labels": list(self.global_labels), "aliases": dict(self.aliases)}

    @classmethod
    def from_json(cls, doc: dict) -> "LabelSet":
        try:
            classes = [c["name"] for c in sorted(doc["classes"], key=lambda c: c["id"])]
            return cls(name=str(doc.get("label_set") or "release"), source=str(doc.get("source") or "labels.json"),
                       classes=tuple(classes), global_labels=tuple(doc.get("global_labels") or ()),
                       no_finding=doc.get("no_finding", NO_FINDING if NO_FINDING in classes else None),
                       title=str(doc.get("title") or ""), aliases=dict(doc.get("aliases") or {}))
        except (KeyError, TypeError) as exc:
            raise LabelSetError(f"labels.json is not a label list ({type(exc).__name__})") from None


def _from_toml(doc: dict, where: str) -> LabelSet:
    unknown = set(doc) - {"name", "title", "source", "no_finding", "classes", "global_labels", "aliases"}
    if unknown:
        raise LabelSetError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "source", "classes"):
        if key not in doc:
            raise LabelSetError(f"{where}: needs {key!r}")
    classes = doc["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) and c.strip() for c in classes):
        raise LabelSetError(f"{where}: classes must be a list of non-empty names")
    glob = doc.get("global_labels", [])
    if not isinstance(glob, list) or not all(isinstance(c, str) and c.strip() for c in glob):
        raise LabelSetError(f"{where}: global_labels must be a list of non-empty names")
    aliases = doc.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise LabelSetError(f"{where}: [aliases] maps spellings to class names")
    nf = doc.get("no_finding", NO_FINDING if NO_FINDING in classes else None)
    return LabelSet(name=str(doc["name"]), source=str(doc["source"]), classes=tuple(classes),
                    global_labels=tuple(glob), no_finding=nf or None, title=str(doc.get("title", "")),
                    aliases=dict(aliases))


@cache
def builtin(name: str) -> LabelSet:
    if name not in BUILTIN:
        raise LabelSetError(f"unknown label set {name!r} (built in: {', '.join(BUILTIN)}; or a .toml file)")
    path = schema_path("labels", f"{name}.toml")
    return _from_toml(tomllib.loads(path.read_text(encoding="utf-8")), f"schemas/labels/{name}.toml")


def load_labels(spec: "str | Path | LabelSet | None") -> LabelSet | None:
    """A label set from a built-in name, a TOML file, or a release's labels.json; None stays None."""
    if spec is None or isinstance(spec, LabelSet):
        return spec
    text = str(spec)
    if text in BUILTIN:
        return builtin(text)
    path = Path(text)
    if not path.is_file():
        raise LabelSetError(f"--labels: no built-in set {text!r} and no such file "
                            f"(built in: {', '.join(BUILTIN)})")
    if path.suffix.lower() == ".json":
        return read_labels_json(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LabelSetError(f"--labels {path.name}: not a TOML file ({type(exc).__name__})") from None
    return _from_toml(doc, path.name)


def default_for(form: str, *, has_class_id: bool = False) -> LabelSet:
    """The published set a form is read with when no --labels is given."""
    if form == "spinexr":
        return builtin("vindr-spinexr")
    if form == "cxr-boxes" and has_class_id:
        return builtin("vinbigdata")
    return builtin("vindr-cxr")


def write_labels_json(path: Path, labels: LabelSet) -> None:
    from vindr_cli.atomic import atomic_write

    with atomic_write(path) as f:
        f.write(json.dumps(labels.to_json(), indent=1, ensure_ascii=False).encode("utf-8"))


def read_labels_json(path: Path) -> LabelSet:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabelSetError(f"{Path(path).name}: not a readable label list ({type(exc).__name__})") from None
    return LabelSet.from_json(doc)
