"""``vindr validate RELEASE``: every table against its schema, and the release's promises:
annotations point at images that exist, boxes lie inside their images, classes come from
labels.json, no patient or study, no pixel-identical image and no near-duplicate (the perceptual
hash of `vindr select`, ``pixels.phash``: the same picture stored lossy, resized or re-windowed) on
both sides, the counts agree with the split report, and the YOLO export is laid out so Ultralytics
finds every image's label file. Any finding means exit 1."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pandas as pd

from vindr_cli.findings import Finding
from vindr_cli.dicomio.header import BadInput
from vindr_cli.dicomio.pixelstream import file_pixel_hash
from vindr_cli.pixels.phash import near_pairs, phash_file
from vindr_cli.annotations import NO_FINDING, LabelSetError, load_labels, read_labels_json
from vindr_cli.annotations.badrows import mask_quoted
from vindr_cli.release.exports import CXR, SPINE, read_data_yaml, yolo_label_path
from vindr_cli.release.tables import check_csv, read_csv, release_schema

SPLITS = ("train", "test")


@dataclass
class ValidationReport:
    findings: list[Finding] = field(default_factory=list)
    images: int = 0
    boxes: int = 0
    checked_hashes: int = 0
    perceptual_hashes: int = 0          # images whose perceptual hash was computed
    unhashable: int = 0                 # images that could not be decoded for it

    def add(self, kind: str, where: str, detail: str) -> None:
        self.findings.append(Finding(kind, where, detail))


def validate_release(root: Path, *, check_hashes: bool = True, labels=None,
                     near_duplicates: bool = True) -> ValidationReport:
    """Validate a release (module doc). ``labels`` (a label set name or TOML file) is what the
    classes are checked against instead of the release's own labels.json. ``near_duplicates``
    decodes every DICOM file for its perceptual hash (first frame) and reports pairs on both
    sides."""
    rep = ValidationReport()
    root = root.resolve()
    images_csv = root / "images.csv"
    if not images_csv.is_file():
        rep.add("missing", "images.csv", "no images table")
        return rep
    problems = check_csv(images_csv, "images")
    for problem in problems:
        rep.add("schema", "images.csv", problem)
    if problems and problems[0].startswith(("columns differ", "cannot read")):
        return rep            # nothing else can be checked against a table of unknown shape
    images = read_csv(images_csv)
    rep.images = len(images)
    _check_layout(root, images, rep)
    _check_groups(images, rep)
    _check_files(root, images, rep, check_hashes)
    if near_duplicates:
        _check_near_duplicates(root, images, rep)
    _check_split(root, images, rep)
    _check_datasheet(root, rep)
    classes = list(load_labels(labels).all_labels) if labels is not None else _labels(root, rep)
    for s in SPLITS:
        _check_annotations(root, s, images, classes, rep)
        _check_image_labels(root, s, images, classes, rep)
        _check_coco(root, s, images, classes, rep)
    _check_yolo(root, images, classes, rep)
    return rep


TOP_FILES = frozenset({"README.md", "datasheet.json", "datasheet.png", "labels.json", "split.csv", "split_report.json",
                       "split_report.png", "images.csv"})
ANNOTATION_FILES = frozenset(f"{kind}_{s}.{ext}" for s in SPLITS for kind, ext in
                             (("annotations", "csv"), ("kaggle", "csv"), ("image_labels", "csv"), ("coco", "json")))
KNOWN_FOLDERS = frozenset({"annotations", "yolo", "yolo/images", "yolo/labels"} |
                          {f"{s}/{k}" for s in SPLITS for k in ("dicom", "images")} | set(SPLITS) |
                          {f"yolo/{k}/{s}" for s in SPLITS for k in ("images", "labels")})
STRAY = ("{n} file(s) or folder(s) that vindr release does not write (not named here: a name may hold anything): "
         "remove them, or build the release again")
NOT_PLAIN = ("{n} symbolic link(s), FIFO(s) or other non-regular file(s) (not named here): a release holds plain "
             "files only (a link may point outside it, e.g. at the de-identified tree or the key)")


def _expected(images: pd.DataFrame) -> set[str]:
    """The relative paths of the files a release with this images.csv holds."""
    want = set(TOP_FILES) | {f"annotations/{n}" for n in ANNOTATION_FILES} | {"yolo/data.yaml"}
    for col in ("dicom", "image"):
        if col in images:
            want |= {v for v in images[col] if isinstance(v, str)}
    for side, image_id, image in zip(images["split"], images["image_id"], images.get("image", [None] * len(images))):
        want.add(f"yolo/labels/{side}/{image_id}.txt")      # a label file per image, decoded or not
        if isinstance(image, str):
            want.add(f"yolo/images/{side}/{image.rsplit('/', 1)[-1]}")
    return want


def _check_layout(root: Path, images: pd.DataFrame, rep: ValidationReport) -> None:
    """Every entry under RELEASE is a plain file or folder that vindr release writes: a stray file
    (notes, a copy of the linkage table) or a link to outside would travel with the release.
    Counted per known folder, never named (hostile11: validate said "no findings" for each)."""
    import os
    import stat

    want = _expected(images)
    stray: dict[str, int] = {}
    odd: dict[str, int] = {}
    for here, dirs, files in os.walk(root, followlinks=False):
        rel_dir = Path(here).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        place = rel_dir if rel_dir in KNOWN_FOLDERS or rel_dir == "" else "(a folder vindr release does not write)"
        place = place or "RELEASE"
        for name in list(dirs) + files:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(os.path.join(here, name))
            except OSError:
                odd[place] = odd.get(place, 0) + 1
                continue
            if stat.S_ISLNK(st.st_mode) or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                odd[place] = odd.get(place, 0) + 1
                if name in dirs:
                    dirs.remove(name)
            elif stat.S_ISDIR(st.st_mode):
                if rel not in KNOWN_FOLDERS:
                    stray[place] = stray.get(place, 0) + 1
                    dirs.remove(name)
            elif rel not in want:
                stray[place] = stray.get(place, 0) + 1
    for place, n in sorted(odd.items()):
        rep.add("layout", place, NOT_PLAIN.format(n=n))
    for place, n in sorted(stray.items()):
        rep.add("layout", place, STRAY.format(n=n))


IMAGE_ID = re.compile(r"[0-9a-f]{32}(_[0-9]+)?")


def _id(value) -> str:
    """An image id as a finding may show it: a release's own (32 hex digits, a frame suffix), or
    not at all (a hand-edited table may hold anything: a name)."""
    return str(value) if isinstance(value, str) and IMAGE_ID.fullmatch(value) else "(not a release image id)"


def _table(path: Path, where: str, rep: ValidationReport) -> pd.DataFrame | None:
    """A release CSV, or None with a ``schema`` finding when it cannot be read as one (empty, not
    UTF-8, binary; hostile11: an exception and exit 3 before)."""
    try:
        return read_csv(path)
    except Exception as exc:  # pandas raises many kinds; only the type is shown
        rep.add("schema", where, f"cannot read it as CSV ({type(exc).__name__})")
        return None


def _against_schema(data, schema: str, where: str, rep: ValidationReport) -> bool:
    """``data`` is valid against the release schema ``schema``; else one ``schema`` finding at
    ``where`` saying which rule failed and where (the path's indexes and names, never a value:
    it may be anything) and False."""
    try:
        jsonschema.validate(data, release_schema(schema))
    except jsonschema.ValidationError as exc:
        at = "/".join(str(k) for k in exc.absolute_path if isinstance(k, int) or str(k).isidentifier())[:120]
        name = {"coco": "COCO"}.get(schema, schema)
        rep.add("schema", where, f"fails the {name} schema's {exc.validator!r} rule at /{at}")
        return False
    return True


def _json(path: Path, where: str, rep: ValidationReport):
    """A release JSON file, or None with a ``schema`` finding (truncated, not UTF-8, nested too deep)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:     # JSONDecodeError and UnicodeDecodeError are ValueErrors
        rep.add("schema", where, f"cannot read it as JSON ({type(exc).__name__})")
        return None


RELEASE_PATH = re.compile(r"(train|test)/(dicom/[0-9a-f]{32}\.dicom|images/[0-9a-f]{32}(_[0-9]+)?\.(png|npy))")


def _path(value, line: int, col: str) -> str:
    """A path of images.csv as a finding may show it: one vindr release writes
    (``train/dicom/<image_id>.dicom``, ``train/images/<id>.png``), else where it is (a
    hand-edited path may hold anything: a name; review 13)."""
    return value if isinstance(value, str) and RELEASE_PATH.fullmatch(value) else f"images.csv line {line} ({col})"


def _check_groups(images: pd.DataFrame, rep: ValidationReport) -> None:
    for col, what in (("patient_id", "patient"), ("study_id", "study")):
        sides = images.dropna(subset=[col]).groupby(col)["split"].nunique()
        for key in sides[sides > 1].index:
            # by its first line, never by the id itself (a hand-edited id may be a name; review 13)
            line = int((images[col] == key).to_numpy().argmax()) + 2
            rep.add("leak", "images.csv", f"the {what} of line {line} has images in both train and test")
    dup = images.groupby("pixel_sha256")["split"].nunique()
    for h in dup[dup > 1].index:
        ids = images.loc[images["pixel_sha256"] == h, "image_id"].tolist()
        rep.add("duplicate", "images.csv", f"identical pixel data on both sides: {', '.join(map(_id, ids))}")


def _check_files(root: Path, images: pd.DataFrame, rep: ValidationReport, check_hashes: bool) -> None:
    seen: set[str] = set()
    for line, r in enumerate(images.itertuples(index=False), start=2):
        image = _path(r.image, line, "image")
        if isinstance(r.image, str) and not (root / r.image).is_file():
            rep.add("missing", image, "decoded image listed in images.csv is missing")
        elif isinstance(r.image, str) and not _whole_image(root / r.image):
            rep.add("image", image, "decoded image is not a whole PNG / npy file (truncated or replaced)")
        if not isinstance(r.dicom, str) or r.dicom in seen:   # empty: a schema finding; frames of a file share it
            continue
        seen.add(r.dicom)
        p, dicom = root / r.dicom, _path(r.dicom, line, "dicom")
        if not p.is_file():
            rep.add("missing", dicom, "DICOM file listed in images.csv is missing")
            continue
        if not _identity_removed(p):
            rep.add("identified", dicom, "DICOM file does not say PatientIdentityRemoved YES: not a de-identified "
                                         "file (never publish it)")
        if check_hashes:
            digest = _pixel_hash(p)
            rep.checked_hashes += 1
            if digest != r.pixel_sha256:
                rep.add("pixel-hash", dicom, "pixel data differs from pixel_sha256 in images.csv")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _whole_image(path: Path) -> bool:
    """A PNG that starts with its signature and ends with its IEND chunk, or an npy file with its
    magic: the cheap check that a decoded image was not cut short or replaced (hostile11)."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if path.suffix == ".npy":
                return head.startswith(b"\x93NUMPY")
            f.seek(0, 2)
            if f.tell() < len(PNG_SIGNATURE) + len(PNG_END):
                return False
            f.seek(-len(PNG_END), 2)
            return head == PNG_SIGNATURE and f.read() == PNG_END
    except OSError:
        return False


def _check_near_duplicates(root: Path, images: pd.DataFrame, rep: ValidationReport) -> None:
    """Pairs of images on different sides whose perceptual hashes are within the threshold of
    ``schemas/curate/phash.toml`` (pixel-identical pairs are reported by _check_groups)."""
    ids, sides, sha, hashes = [], [], [], []
    for line, r in enumerate(images.itertuples(index=False), start=2):
        if not isinstance(r.dicom, str) or not (root / r.dicom).is_file():
            continue                      # reported as missing by _check_files
        p = root / r.dicom
        try:
            h = phash_file(p)
        except Exception:                 # DecodeError, or a decoder fault: counted, never a crash
            rep.unhashable += 1
            rep.add("pixel-data", _path(r.dicom, line, "dicom"), "DICOM file's first frame cannot be decoded (truncated or corrupt pixel "
                                           "data): recipients cannot read it")
            continue
        rep.perceptual_hashes += 1
        ids.append(r.image_id)
        sides.append(r.split)
        sha.append(getattr(r, "pixel_sha256", None))
        hashes.append(h)
    for i, j, d in near_pairs(hashes):
        if sides[i] != sides[j] and not (isinstance(sha[i], str) and sha[i] == sha[j]):
            a, b = sorted((_id(ids[i]), _id(ids[j])))
            rep.add("near-duplicate", "images.csv",
                    f"near-duplicate images on both sides (perceptual hash {d} bits apart): {a}, {b}")


def _identity_removed(path: Path) -> bool:
    """Whether the file's header says PatientIdentityRemoved YES (vindr anonymize writes it on
    every output); a raw export's file put into a release does not (red team 6). Unreadable:
    False (its content is never shown)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientIdentityRemoved"])
        return str(ds.get("PatientIdentityRemoved", "")).strip().upper() == "YES"
    except Exception:
        return False


def _pixel_hash(path: Path) -> str | None:
    try:
        return file_pixel_hash(path)
    except BadInput:
        return None


def _check_split(root: Path, images: pd.DataFrame, rep: ValidationReport) -> None:
    split_csv = root / "split.csv"
    if not split_csv.is_file():
        rep.add("missing", "split.csv", "no split table")
        return
    split = _table(split_csv, "split.csv", rep)
    if split is None:
        return
    if "split" not in split.columns or "image_id" not in split.columns:
        rep.add("schema", "split.csv", "needs image_id and split columns")
        return
    per_file = images.assign(image_id=images["image_id"].str[:32])   # a frame's id -> its file's
    groups = [c for c in ("study_id", "patient_id") if c in split.columns and c in images.columns]
    if groups:        # the same study and patient as images.csv (a hand-edited id may be a name)
        mine = per_file.drop_duplicates("image_id").set_index("image_id")
        theirs = split.drop_duplicates("image_id").set_index("image_id")
        common = mine.index.intersection(theirs.index)
        for c in groups:
            differ = int((mine.loc[common, c].fillna("") != theirs.loc[common, c].fillna("")).sum())
            if differ:
                rep.add("counts", "split.csv", f"{differ} image(s) whose {c} differs from images.csv")
    a = dict(zip(split["image_id"], split["split"]))
    base = per_file.drop_duplicates(["image_id", "split"])
    b = dict(zip(base["image_id"], base["split"]))     # frames released as images count as their file
    if a != b:
        rep.add("counts", "split.csv", f"{len(set(a.items()) ^ set(b.items()))} image(s) differ from images.csv")
    report = root / "split_report.json"
    if report.is_file():
        data = _json(report, "split_report.json", rep)
        if not isinstance(data, dict):
            if data is not None:
                rep.add("schema", "split_report.json", "not a JSON object")
            return
        counts, dropped = data.get("counts", {}), data.get("release_dropped") or {}
        for s in SPLITS:
            said = counts.get(s, {}).get("images")
            have = int((base["split"] == s).sum())
            gone = int(dropped.get(s, 0))
            if said is not None and int(said) - gone != have:
                rep.add("counts", "split_report.json", f"{s}: the report says {said} images"
                        + (f" less {gone} left out by the release" if gone else "") + f", the release has {have}")


def _check_datasheet(root: Path, rep: ValidationReport) -> None:
    """datasheet.json (the custodian's record: audit, review, what was left out) is there and
    valid against its schema, and README.md (rendered from it) is there (hostile11: a release
    without them, or with every value emptied, was "no findings")."""
    if not (root / "README.md").is_file():
        rep.add("missing", "README.md", "no datasheet README")
    path = root / "datasheet.json"
    if not path.is_file():
        rep.add("missing", "datasheet.json", "no datasheet")
        return
    data = _json(path, "datasheet.json", rep)
    if data is None:
        return
    _against_schema(data, "datasheet", "datasheet.json", rep)


def _labels(root: Path, rep: ValidationReport) -> list[str]:
    p = root / "labels.json"
    if not p.is_file():
        rep.add("missing", "labels.json", "no label list")
        return []
    try:
        return list(read_labels_json(p).all_labels)
    except LabelSetError as exc:     # its quoted values (a set's or a class's name) masked: hand-editable
        rep.add("schema", "labels.json", re.sub(r"unknown key\(s\) .*", "unknown key(s)", mask_quoted(str(exc))))
        return []


def _check_image_labels(root: Path, s: str, images: pd.DataFrame, classes: list[str], rep: ValidationReport) -> None:
    path = root / "annotations" / f"image_labels_{s}.csv"
    if not path.is_file():
        return
    where = f"annotations/{path.name}"
    for problem in check_csv(path, "vindr_cxr_image_labels"):
        rep.add("schema", where, problem)
    table = _table(path, where, rep)
    if table is None or "image_id" not in table.columns:
        return
    side = images.set_index("image_id")["split"]
    for col in table.columns[2:]:
        if classes and col not in classes:
            rep.add("unknown-class", where, f"label column {table.columns.get_loc(col) + 1} is not in labels.json")
    for i, image_id in enumerate(table["image_id"], start=2):
        if image_id not in side.index:
            rep.add("unknown-image", where, f"line {i}: image {_id(image_id)} is not in images.csv")
        elif side[image_id] != s:
            rep.add("wrong-side", where, f"line {i}: image {_id(image_id)} belongs to {side[image_id]}")


def _check_annotations(root: Path, s: str, images: pd.DataFrame, classes: list[str], rep: ValidationReport) -> None:
    path = root / "annotations" / f"annotations_{s}.csv"
    if not path.is_file():
        return
    where = f"annotations/{path.name}"
    ann = _table(path, where, rep)
    if ann is None:
        return
    layout = SPINE if "lesion_type" in ann.columns else CXR
    for problem in check_csv(path, layout.schema):
        rep.add("schema", where, problem)
    kaggle = root / "annotations" / f"kaggle_{s}.csv"
    if kaggle.is_file():
        for problem in check_csv(kaggle, "kaggle_train"):
            rep.add("schema", f"annotations/{kaggle.name}", problem)
    side = images.set_index("image_id")
    for i, r in enumerate(ann.itertuples(index=False), start=2):
        row = r._asdict()
        image_id, label = row["image_id"], row[layout.label]
        if image_id not in side.index:
            rep.add("unknown-image", where, f"line {i}: image {_id(image_id)} is not in images.csv")
            continue
        if side.at[image_id, "split"] != s:
            rep.add("wrong-side", where, f"line {i}: image {_id(image_id)} belongs to {side.at[image_id, 'split']}")
        if classes and label not in classes:
            rep.add("unknown-class", where, f"line {i}: a class that is not in labels.json")
        box = [row[c] for c in layout.boxes]
        if label == NO_FINDING or all(pd.isna(v) for v in box):
            continue
        rep.boxes += 1
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            continue   # reported by the schema check
        w, h = float(side.at[image_id, "columns"]), float(side.at[image_id, "rows"])
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            rep.add("box-bounds", where, f"line {i}: box outside its {int(w)}x{int(h)} image or inverted")


def _check_coco(root: Path, s: str, images: pd.DataFrame, classes: list[str], rep: ValidationReport) -> None:
    path = root / "annotations" / f"coco_{s}.json"
    if not path.is_file():
        return
    where = f"annotations/{path.name}"
    data = _json(path, where, rep)
    if data is None:
        return
    if not _against_schema(data, "coco", where, rep):
        return
    known = set(images.loc[images["split"] == s, "image_id"])
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    for im in data["images"]:
        if im.get("image_id") not in known:
            rep.add("unknown-image", where, f"image {_id(im.get('image_id'))} is not a {s} image in images.csv")
    cats = {c["id"]: c["name"] for c in data["categories"]}
    for a in data["annotations"]:
        if classes and cats.get(a["category_id"]) not in classes:
            rep.add("unknown-class", where, f"annotation {a['id']}: category {a['category_id']} not in labels.json")
        w, h = sizes.get(a["image_id"], (0, 0))
        x, y, bw, bh = a["bbox"]
        if not (x + bw <= w + 1e-6 and y + bh <= h + 1e-6):
            rep.add("box-bounds", where, f"annotation {a['id']}: box outside its image")


def _check_yolo(root: Path, images: pd.DataFrame, classes: list[str], rep: ValidationReport) -> None:
    """yolo/: a label file per released image (yolo/labels/<side>/<id>.txt), lines ``class cx
    cy w h`` with a known class and coordinates in [0, 1]; with data.yaml, every image in its
    train/val/test folders has its label file by Ultralytics' rule."""
    yolo = root / "yolo"
    if not yolo.is_dir():
        return
    names: dict = {}
    data = yolo / "data.yaml"
    if data.is_file():
        try:
            spec = read_data_yaml(data)
        except ValueError as exc:        # not UTF-8
            rep.add("yolo", "yolo/data.yaml", f"cannot read it ({type(exc).__name__})")
            spec = {"names": {}, "train": "", "val": ""}
        names = spec.get("names", {})
        for key in ("train", "val"):
            if key not in spec:
                rep.add("yolo", "yolo/data.yaml", f"no {key}: folder")
        for key in ("train", "val", "test"):
            if key not in spec:
                continue
            folder = (yolo / spec[key]).resolve()
            if not folder.is_dir() or yolo.resolve() not in folder.parents:
                rep.add("yolo", "yolo/data.yaml", f"{key}: not a folder inside yolo/")
                continue
            for img in sorted(folder.iterdir()):
                try:
                    label = Path(yolo_label_path(img.as_posix()))
                except ValueError:
                    rep.add("yolo", "yolo/data.yaml", f"{key}: image folder is not under an images/ folder")
                    break
                if not label.is_file():
                    shown = img.relative_to(root).as_posix() if IMAGE_ID.fullmatch(img.stem) else f"yolo/{key}"
                    rep.add("yolo", shown, "image has no label file (Ultralytics' rule)")
        for s in SPLITS:
            have = {p.stem for p in (yolo / "images" / s).glob("*")} if (yolo / "images" / s).is_dir() else set()
            want = set(images.loc[images["split"] == s, "image_id"])
            if have != want:
                rep.add("yolo", f"yolo/images/{s}", f"{len(have ^ want)} image(s) differ from the {s} side of images.csv")
    elif not images["image"].isna().all():
        rep.add("yolo", "yolo/data.yaml", "the release has decoded images but no data.yaml")
    known = set(names) if names else None
    for s in SPLITS:
        folder = yolo / "labels" / s
        want = set(images.loc[images["split"] == s, "image_id"])
        have = {p.stem for p in folder.glob("*.txt")} if folder.is_dir() else set()
        if not folder.is_dir() and not want:
            continue
        if have != want:
            rep.add("yolo", f"yolo/labels/{s}", f"{len(have ^ want)} label file(s) differ from the {s} side of images.csv")
        for p in sorted(q for q in folder.glob("*.txt") if q.stem in want) if folder.is_dir() else []:
            for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
                parts = line.split()
                where = f"yolo/labels/{s}/{p.name}"
                try:
                    cid, box = int(parts[0]), [float(v) for v in parts[1:]]
                except (ValueError, IndexError):
                    rep.add("yolo", where, f"line {i}: not 'class cx cy w h'")
                    continue
                if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box):
                    rep.add("yolo", where, f"line {i}: box not 4 numbers in [0, 1]")
                if (known is not None and cid not in known) or (known is None and classes and not 0 <= cid < len(classes)):
                    rep.add("unknown-class", where, f"line {i}: class id {cid} not in the label set")
