"""Find text burned into pixels and decide whether it identifies someone (issue #10).

``find_text(image, frame, hints)`` returns every text region of a display-ready 8-bit image
(0 = black; already windowed, MONOCHROME1 already inverted) as ``TextBox``es with a kind:
``"marker"`` (an allowed marker such as L, R, PA, 80kV: the caller keeps it) or ``"name"``,
``"id"``, ``"date"``, ``"other"`` (the caller redacts it). The text itself is never returned,
logged or put in an exception.

How:
 1. Candidates, cheaply, in numpy: the image is block-averaged to at most 1024 px a side; a
    white top-hat (bright strokes) and a black top-hat (dark strokes on a light label) with a
    9 px square keep thin high-contrast strokes only (anatomy is broad and smooth); strokes
    are linked along lines (horizontal dilation) and grouped on a coarse grid; groups with a
    text-line shape (3-60 working px tall: 6-120 px on a 2k image; enough stroke pixels,
    stroke density 8-75 %) on a quiet background (stroke peak >= 5x the top-hat between the strokes, or >= 100 grey levels) are
    the candidates. An image with no text usually has none, so it costs only this step.
    (Min/max filters: numpy sliding windows, the values of scipy.ndimage's; component
    labelling: scipy.ndimage.)
 1b. Shape gate, before any OCR: a candidate whose shape cannot hold text is dropped (not
    reported): room for one glyph at most (its strokes' width < 1.2 x their height) and no
    other candidate stacked right above or below it (a turned label's letters are), or
    strokes as thick as the blob is tall (median ink run / ink height > 0.35: anatomy,
    an MR's grain, a CT's field-of-view edge; text lines of the bench: 0.06-0.28). Such a
    region cannot spell a name, an ID or a date. Without an OCR engine nothing is dropped.
    A column of nothing but straight bars (each padded crop one streak, coherence > 0.93: a
    film's edge in pieces; a lone I, l or 1 shows its ends, <= 0.90) is not "stacked"
    (``_bar_column``).
 1c. Grain test, after OCR, on textured images only (grain everywhere, an upsampled MR's:
    >= 10 strong candidates inside the central field, where labels are not printed; the
    bench's MR2 crops have 15-40, every other image <= 5): a strong candidate that matches no
    hint, is no marker and reads as fewer than three letters or digits is grain when it is
    one oriented streak (gradient orientation coherence > 0.6; unreadable text <= 0.47), or
    when it is short (width < 5 x height), soft-edged (steepest edges < 0.3 of its range) or
    tiny (strokes <= 8 px tall), and not a row of >= 3 glyph-shaped components on a
    baseline, level or with the crop turned along its ink's long axis (a short vertical
    label). A label line on the same grain, sharp or blurred, is wide or a row of glyphs
    with strokes in every direction: it stays (tests/test_pixeltext_precision.py,
    tests/test_redteam3.py: what is still dropped, as xfail). Only the central field's
    candidates get the whole test: in the outer eighth of each side, where consoles print
    labels, only one oriented streak or one speck is grain (red team: initials, short grey IDs
    and dates there were dropped as short soft grain and left readable; a speck, ``_speck``, is
    tiny strokes whose ink is one glyph-sized blob: two letters even blurred together are wider
    than tall) -- unless the candidate stands
    no higher than the texture around it (``_ring_ratio``: its top-hat over the ring's, other
    candidates and the gaps between them left out, <= 1.15): grain looks like its
    surroundings (0.79-1.08 on the corpus's MR2 crops), the red team's grey, blurred, turned
    and small text is an outlier against them (>= 1.44), the other glyphs of its own line
    not counting as surroundings. Then the whole test applies there too.
 1d. Busy backgrounds, vertical labels, blur (red team 3, tests/test_redteam3.py). A line that
    fails the quiet test (text printed over anatomy or texture) is still a candidate when its
    strokes are a row of >= 3 glyph-shaped components of one height (``_glyph_row``); it is
    kept only when read (>= 4 letters or digits confidently, or a hint match; 3, initials,
    only as one word at confidence >= 85, ``_busy_kept``): grain is read as 3 at times, at
    65-66. A busy block of label lines whose strokes join (no leading) is cut at its
    near-empty stroke rows into glyph rows when >= 2 of its bands are (``_row_bands``); a
    busy line that is no glyph row (a name whose letters merge at the working scale) is read
    when stacked on a line read as text (``_stacked_lines``; then it is identifying unless
    read as a marker). Vertical labels along a film's edge (outer eighth of a side): strokes
    linked along columns, tall and narrow groups whose full-resolution ink (local top-hat),
    turned, is a row of glyphs (``_turned_candidates``, ``_turned_row``) are read turned 90
    degrees both ways (``_classify_turned``). Each identifying box then grows along its line
    over the blurred glyph rows beside it that the sharp-edge test missed (``_soft_line``:
    either polarity's top-hat, up to 4 line heights each way, never over a kept marker) and
    over the ink that touches it (``_pad_to_ink``: the blur halo, letters the strokes missed;
    at least a quarter of the line height). _stacked_lines and _soft_line never modify an
    image that had no identifying box; the 3-character reading and the row bands changed no
    text-free image of the bench (bench/README.md, "Red team 5's finder xfails").
 2. Recognition on candidates only: the crop is turned into dark text on white, stretched,
    enlarged when small and read by Tesseract 5 (one text line, Vietnamese + English)
    with per-word confidence.
 3. Decision: a candidate is a marker only when every word is read confidently and each is
    in ``schemas/deid/burned_in_allowlist.toml`` (words and exposure-figure patterns). A
    candidate that cannot be read confidently is identifying ("other"): strokes we cannot
    read are not known to be safe. Kind: from the header hints when an OCR'd word matches one
    (accent-folded, case-insensitive, edit distance <= len/4), else from the text's shape
    (a date pattern -> date, a long digit run -> id), else "other". Candidates on one line
    less than a line height apart are read as one line; a marker on the same line as (or
    overlapping) identifying text is redacted with it (but a confident reading of a region
    at least half inside a marker read in the other polarity, within one edit of it, TRAL
    beside TRÁI, is that marker: the other polarity's top-hat echoes every line);
    identifying boxes on one line with a small gap are joined.
 3b. Misread markers (a short candidate, not a hint, not read as a marker), two narrow rules;
    anything else stays identifying. (i) *Missing glyph* (``_missing_glyph_marker``): a font
    without one of the marker's Vietnamese letters draws its missing-glyph box there (PH□I in
    Liberation Sans/Serif/Mono, which lack Ả, Ằ, Ồ, Ứ) and OCR reads "PHO I"/"PHII": kept as
    PHẢI (or NGỒI) only when the confident reading has the marker's other letters at their
    places, the crop holds exactly the marker's number of glyphs, the one at the marker's
    Vietnamese letter is a hollow rectangle and no other is, and neither the reading nor the
    marker is within two edits of a hint token. (ii) *Second read* (``_second_read_marker``):
    a candidate of a few glyphs (width <= 6 x height, 1-6 letters read) is read again with a
    white margin around the binarized crop (a lone serif L cropped tight reads "lỗ", then "L");
    kept when that read is a marker line by the usual rules, every word at confidence >= 80,
    the first reading within two edits of it and neither reading within two edits of a hint
    token. Both are subject to the same-line rule below (a marker beside identifying text is
    redacted with it). Measured: bench/README.md, "Markers misread" (issue 10).
 4. Hints raise recall: with hints, two fainter candidate passes are read too in the outer
    quarter of the image (where labels are printed): 8 grey levels (quiet background), and 6
    where the background between the strokes is flat (a saturated film corner). A faint
    region is anchored when its words match a hint value or it reads confidently as a date
    or an ID; an anchored label grows over the unanchored faint regions of its line and the
    text-like ones stacked with it (and the gap between them), and is widened along its line
    (4 line heights, or to the image side within 8), never over a marker read there
    (``_grow_labels``, ``_widen_faint``). Growth is bounded: text of the same size (heights
    within 2x) on a line, only anchored and stacked boxes seed more growth, the gap between
    two anchored boxes of one column is filled (label lines not seen), a gap box widens by its
    lines' height; a marker is joined to identifying text only when near it as found, not as
    widened. Other faint regions are left alone (mostly anatomy edges). A marker "echo"
    (step 3) within two edits of a hint token stays identifying.

Engine choice (measured on 12 real pydicom images (CT, MR, NM, MR-overlay) resized to
2048 x 2048 with a drawn patient label (name with Vietnamese diacritics, ID, date, hospital;
white on dark or dark on a light box; 14-40 px), a laterality/position marker (30-48 px) and an
exposure figure (12-24 px): 48 identifying strings, 24 markers. Recall = every word of the
string read (accent-folded, edit distance <= len/4). bench/ocr_engines.py (whole image) and
bench/ocr_engines_crops.py (the same line crops this module reads); CPU = process time):

    engine                                    identifying  markers  CPU s
    Tesseract 5.5 whole image (PSM 11)           23/48       9/24   0.17 / image
    RapidOCR 1.4 whole image (PP-OCRv4 onnx)     40/48      24/24   3.26 / image
    Tesseract 5.5 on line crops (PSM 7)          47/48      24/24   0.006 / line
    RapidOCR 1.4 recogniser on line crops        40/48      24/24   0.051 / line
    RapidOCR 1.4 det+rec on line crops           40/48      21/24   1.6 / line

Tesseract on line crops reads the most at an eighth of RapidOCR's recogniser cost and has
a real Vietnamese model (RapidOCR's bundled models are Chinese + Latin: no Vietnamese
diacritics). RapidOCR's detector finds text well but costs ~3 s CPU per 2k image, ten times
the budget; the numpy candidate step here replaces it. Engine: ``tesserocr`` (its
manylinux wheel carries libtesseract 5.5; in-process, no subprocess per crop) with Debian's
language models (tesseract-ocr-eng, tesseract-ocr-vie; nothing is downloaded at run time).

Whole pipeline, CPU process time per 2048 x 2048 image on this 2-core machine:
 * bench/pixeltext_bench.py (12 images with text + 48 without, the drawn set above, no
   hints): 0.12 s average (0.22 with text, 0.09 without); 48/48 identifying strings covered,
   none kept as marker; 23/24 markers kept; text-free: boxes on 24/48 (noisy 4-8x upscaled
   test images), 0.05 % of the area on average.
 * find_text alone on the burned_in_corpus.py corpora (100 images each, 1 in 5 with text,
   real CR/MR/CT/NM incl. pydicom-data's RG1/RG3 chest films, CR MONOCHROME1 and DX, 8-16
   bits; min..max display as the redactor shows it; with the header hints), seeds 10 / 11:
   identifying strings >= 90 % covered 77/77 and 79/79; markers kept 45/50 and 43/50;
   text-free images with a box 3/80 and 4/80 (before the grain test 1c: 11/80 each, 10 of
   them MR2 crops: interpolated grain; with the grain test kept to the central field, whole
   pipeline: 5/80 and 8/80; with the outer-band ring rule: 4/80 and 6/80; whole pipeline
   on the merged tree 5/80 and 6/80, and with the speck and bar-column rules 4/80 and 4/80); about 0.18 CPU s per text-free image, single process
   on a shared 2-core machine (load average about 2; the grain test adds nothing measurable). Before
   the faint-label work (step 4): 71/77, 73/79; 46/50, 44/50; 11/80; 0.14 s. Before the
   shape gate, the polarity-echo marker rule and scipy: 71/77, 73/79; 43/50, 41/50; 34/80,
   33/80; 0.27 / 0.31 s. See bench/README.md "Burned-in text bench".

Without the engine (``engine_available()`` is False) every candidate is "other": nothing
found is ever kept as a marker, so the caller still redacts it.
"""
from __future__ import annotations

import os
import re
import threading
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from vindr_cli.resources import schema_path

KINDS = ("name", "id", "date", "other", "marker")

_WORK_MAX = 1024          # working image: at most this many pixels a side
_TOPHAT = 9               # top-hat square (working pixels): strokes thinner than this are kept
_STRONG = 40              # top-hat contrast (grey levels) of a text stroke
_FAINT = 16               # with hints: fainter strokes, reported only if they match a hint
_QUIET_RATIO = 5         # stroke peak / (top-hat between strokes + 5): text >= 5 (bench: 69/71), grain < 5 (64 %)
_PEAK_ALWAYS = 100       # strokes this strong are candidates whatever surrounds them
# with hints, fainter passes in the outer quarter (threshold, quiet-background floor, flat
# background only): a region found there is reported only when its words match a hint
# (or it continues a line or label block that does, see _grow_labels). 8: 16 px text on a
# bright film (15-35 grey levels); 6 on a flat (saturated) background: 10 px text
_FAINT_PASSES = ((8, True, 5, False), (6, True, 1, True))
_CONF = 60                # Tesseract word confidence (0-100) for a word to count as read


@dataclass(frozen=True)
class TextBox:
    frame: int
    x0: int
    y0: int
    x1: int   # exclusive
    y1: int   # exclusive
    kind: str  # "name" | "id" | "date" | "other" | "marker"


@dataclass
class Hints:
    """Identifying values of the same file's header, read BEFORE de-identification (PHI:
    never log or print one)."""
    names: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # never show the values
        return (f"Hints(names={len(self.names)}, ids={len(self.ids)}, dates={len(self.dates)}, "
                f"other={len(self.other)})")

    __str__ = __repr__


# ----------------------------------------------------------------------------- hints

_NAME_KW = ("PatientName", "PatientBirthName", "PatientMotherBirthName", "OtherPatientNames",
            "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
            "NameOfPhysiciansReadingStudy", "RequestingPhysician", "ResponsiblePerson")
_ID_KW = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "IssuerOfPatientID",
          "MedicalRecordLocator", "AdmissionID", "RequestedProcedureID")
_DATE_KW = ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
            "InstanceCreationDate")
_OTHER_KW = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
             "StationName", "PatientAddress", "PatientTelephoneNumbers", "MilitaryRank",
             "BranchOfService", "CountryOfResidence", "RegionOfResidence")


def _values(ds, keyword: str) -> list[str]:
    try:
        elem = ds.get(keyword)
    except Exception:  # a malformed value must not stop the hints
        return []
    if elem is None:
        return []
    vals = elem if isinstance(elem, (list, tuple)) or type(elem).__name__ == "MultiValue" else [elem]
    return [str(v) for v in vals if v is not None and str(v).strip()]


def hints_from(ds) -> Hints:
    """Hints from a dataset's header (before de-identification). Person names are split into
    their parts (``^``, ``=`` groups, spaces); OtherPatientIDsSequence is followed."""
    h = Hints()
    for kw in _NAME_KW:
        for v in _values(ds, kw):
            for part in re.split(r"[\^=]", v):
                if part.strip():
                    h.names.append(part.strip())
    for kw in _ID_KW:
        h.ids.extend(_values(ds, kw))
    try:
        for item in ds.get("OtherPatientIDsSequence") or []:
            h.ids.extend(_values(item, "PatientID"))
    except Exception:
        pass
    for kw in _DATE_KW:
        h.dates.extend(_values(ds, kw))
    for kw in _OTHER_KW:
        h.other.extend(_values(ds, kw))
    return h


# ----------------------------------------------------------------------------- text helpers

def fold(s: str) -> str:
    """Accent-folded, upper case (Đ -> D)."""
    s = s.replace("Đ", "D").replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn").upper()


def _words(s: str, keep_accents: bool = False) -> list[str]:
    """Upper-case words with punctuation stripped at their ends (accent-folded unless
    keep_accents)."""
    out = []
    for w in (_upper(s) if keep_accents else fold(s)).split():
        w = re.sub(r"^\W+|\W+$", "", w)
        if w:
            out.append(w)
    return out


def _lev(a: str, b: str, cap: int) -> int:
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _date_forms(v: str) -> list[str]:
    d = re.sub(r"\D", "", v)
    if len(d) != 8:
        return [d] if len(d) >= 6 else []
    y, m, dd = d[:4], d[4:6], d[6:]
    return [d, dd + m + y, m + dd + y, dd + m + y[2:], y[2:] + m + dd]


@cache
def _allow() -> tuple[frozenset[str], tuple[re.Pattern, ...], frozenset[str], re.Pattern, frozenset[str]]:
    data = tomllib.loads(schema_path("deid", "burned_in_allowlist.toml").read_text(encoding="utf-8"))
    return (frozenset(fold(w) for w in data["words"]),
            tuple(re.compile(p) for p in data.get("patterns", [])),
            frozenset(fold(u) for u in data.get("units", [])),
            re.compile(data.get("number", r"(?!)")),
            frozenset(_upper(w) for w in data["words"]))


def _upper(s: str) -> str:
    return unicodedata.normalize("NFC", s).upper()


def _is_marker_word(w: str) -> bool:
    """w as OCR read it (diacritics kept) or folded. A word with diacritics must be an
    allowed word with the same diacritics (one edit allowed from 4 letters on); a plain
    ASCII word is compared with the folded allowed words."""
    folded, pats, _, _, accented = _allow()
    u = _upper(w)
    if any(p.fullmatch(fold(u)) for p in pats):
        return True
    if u == fold(u):                      # no diacritics read
        return u in folded
    return u in accented or (len(u) >= 4 and any(_lev(u, a, 1) <= 1 for a in accented if len(a) >= 4))


def _is_marker_line(words: list[str]) -> bool:
    """Every word is an allowed marker word, or a bare number followed by a unit."""
    _, _, units, number, _ = _allow()
    return bool(words) and all(
        _is_marker_word(w) or (number.fullmatch(w) is not None and i + 1 < len(words) and fold(words[i + 1]) in units)
        for i, w in enumerate(words))


_DATE_RE = re.compile(r"(\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}[./-]\d{1,2}[./-]\d{1,2}|(19|20)\d{6})")


def _hint_kind(words: list[str], hints: Hints | None) -> str | None:
    """The kind of the first hint an OCR'd word matches (fuzzy), or None."""
    if hints is None or not words:
        return None
    joined = "".join(words)
    digits = re.sub(r"\D", "", joined)
    for kind, values in (("name", hints.names), ("id", hints.ids), ("other", hints.other)):
        for v in values:
            for t in _words(v):
                if len(t) < 3:
                    continue
                cap = len(t) // 4
                if any(_lev(w, t, cap) <= cap for w in words) or (len(t) >= 5 and t in joined):
                    return kind
    for v in hints.dates:
        for form in _date_forms(v):
            if len(form) >= 6 and form in digits:
                return "date"
    return None


def _shape_kind(text_words: list[str]) -> str:
    line = " ".join(text_words)
    if _DATE_RE.search(line):
        return "date"
    if any(sum(c.isdigit() for c in w) >= 5 for w in text_words):
        return "id"
    return "other"


# ----------------------------------------------------------------------------- engine

def _engine():
    """This process's Tesseract API (one per process: a forked worker makes its own), or
    None when tesserocr or the language models are missing."""
    return _engine_for(os.getpid())


@cache
def _engine_for(pid: int):
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        import tesserocr
    except Exception:
        return None
    paths = [os.environ.get("TESSDATA_PREFIX", ""), "/usr/share/tesseract-ocr/5/tessdata",
             "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata",
             "/usr/local/share/tessdata"]
    for p in paths:
        if p and os.path.isfile(os.path.join(p, "eng.traineddata")):
            lang = "vie+eng" if os.path.isfile(os.path.join(p, "vie.traineddata")) else "eng"
            try:
                return tesserocr.PyTessBaseAPI(path=p.rstrip("/") + "/", lang=lang,
                                               psm=tesserocr.PSM.SINGLE_LINE)
            except Exception:
                return None
    return None


def engine_available() -> bool:
    return _engine() is not None


def engine():
    """This process's Tesseract API and the lock every use of it must hold, for a reader
    outside the finder (deid.audit reads its boxes with the same engine and settings)."""
    return _engine(), _LOCK


def _read(crop: np.ndarray) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    """Words (text, confidence 0-100, box in crop coordinates) of one dark-on-light line."""
    api = _engine()
    if api is None:
        return []
    from PIL import Image
    h = crop.shape[0]
    # Tesseract reads best at its native size: only small crops are enlarged (and huge ones
    # reduced); enlarging a line that is already large makes it drop words
    f = 48 / h if h < 28 else (96 / h if h > 120 else 1.0)
    img = Image.fromarray(crop)
    if abs(f - 1) > 0.15:
        img = img.resize((max(1, round(crop.shape[1] * f)), max(1, round(h * f))), Image.BICUBIC)
    with _LOCK:  # one API per process, not safe across threads
        return _words_of(api, img, f)


_LOCK = threading.Lock()


def _words_of(api, img, f: float) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    import tesserocr
    try:
        api.SetImage(img)
        api.Recognize()
        it = api.GetIterator()
    except RuntimeError:  # the engine could not read this crop: unreadable, so identifying
        return []
    out = []
    level = tesserocr.RIL.WORD
    if it is not None:
        for w in tesserocr.iterate_level(it, level):
            try:
                text = w.GetUTF8Text(level) or ""
            except RuntimeError:  # an empty word
                continue
            bb = w.BoundingBox(level)
            if not text.strip() or bb is None:
                continue
            x0, y0, x1, y1 = bb
            out.append((text, float(w.Confidence(level)),
                        (int(x0 / f), int(y0 / f), int(np.ceil(x1 / f)), int(np.ceil(y1 / f)))))
    return out


# ----------------------------------------------------------------------------- candidates

def _filt(a: np.ndarray, k: int, op, axes: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """Separable k x k (or k along the given axes) min/max filter (edges replicated);
    op is np.minimum or np.maximum. The values of scipy.ndimage's minimum_filter /
    maximum_filter with mode="nearest" (tests/test_redact_speed.py compares them), in a
    few whole-array numpy steps per axis: 5-15x less CPU on the working image."""
    for ax in (0, 1):
        if ax in axes:
            a = _slide(a, k, op, ax)
    return a


def _slide(a: np.ndarray, k: int, op, axis: int) -> np.ndarray:
    """op over the window [x - k//2, x - k//2 + k) along ``axis`` (edges replicated): the
    window is doubled (op of two shifted copies) up to the largest power of two <= k, then
    one more op of two overlapping windows covers k."""
    n = a.shape[axis]
    r = k // 2
    if k <= 1 or n == 0:
        return a.copy()
    widths = [(0, 0)] * a.ndim
    widths[axis] = (r, r)
    m = np.pad(a, widths, mode="edge")

    def part(x, start, length):
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(start, start + length)
        return x[tuple(idx)]

    w = 1
    while 2 * w <= k:               # m[i] = op over the padded p[i:i + 2w]
        length = m.shape[axis] - w
        m = op(part(m, 0, length), part(m, w, length))
        w *= 2
    if w < k:
        return op(part(m, 0, n), part(m, k - w, n))
    return np.ascontiguousarray(part(m, 0, n))


def _work(image: np.ndarray) -> tuple[np.ndarray, int]:
    s = max(1, -(-max(image.shape) // _WORK_MAX))
    h, w = (image.shape[0] // s) * s, (image.shape[1] // s) * s
    if s == 1:
        return image.astype(np.int16), 1
    # block sums as s x s strided adds (the values of reshape(...).sum(axis=(1, 3)) // s^2,
    # tests/test_redact_speed.py; a sum over two axes costs about 6x as much)
    acc = np.zeros((h // s, w // s), np.uint16 if s * s * 255 < 65536 else np.uint32)
    for i in range(s):
        for j in range(s):
            acc += image[i:h:s, j:w:s]
    acc //= s * s
    return acc.astype(np.int16), s


def _components(mask: np.ndarray, cy: int, cx: int) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x0, y0, x1, y1, working px) of 8-connected groups of occupied
    cy x cx cells."""
    from scipy import ndimage
    h, w = mask.shape
    gh, gw = -(-h // cy), -(-w // cx)
    pad = np.zeros((gh * cy, gw * cx), bool)
    pad[:h, :w] = mask
    if cy == 1 and cx in (2, 4, 8):    # a cell's bytes read as one word: non-zero when any is set
        grid = pad.view(f"u{cx}") != 0
    else:
        grid = pad.reshape(gh, cy, gw, cx).any(axis=(1, 3))
    # labelled inside the occupied cells' bounding box only (the same groups, in the same order:
    # labels follow the raster order, which a shift keeps): labelling and find_objects scan the
    # whole grid they are given, about 1 ms for an empty 1024 x 256 grid, and most masks are
    # empty or nearly so (a text-free image's strong pass)
    rows = np.flatnonzero(grid.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(grid.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    labels, _ = ndimage.label(grid[r0:int(rows[-1]) + 1, c0:int(cols[-1]) + 1], structure=np.ones((3, 3), bool))
    boxes = []
    for sl in ndimage.find_objects(labels):
        if sl is None:
            continue
        ys, xs = sl
        boxes.append(((xs.start + c0) * cx, (ys.start + r0) * cy, min(w, (xs.stop + c0) * cx), min(h, (ys.stop + r0) * cy)))
    return boxes


def _maps(work: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """White top-hat, black top-hat and gradient of the working image (computed once)."""
    w8 = work.astype(np.uint8)     # 0..255: filtered as bytes (faster), same values
    opened = _filt(_filt(w8, _TOPHAT, np.minimum), _TOPHAT, np.maximum).astype(np.int16)
    closed = _filt(_filt(w8, _TOPHAT, np.maximum), _TOPHAT, np.minimum).astype(np.int16)
    grad = np.zeros_like(work)
    grad[:, 1:] = np.abs(work[:, 1:] - work[:, :-1])
    grad[1:, :] = np.maximum(grad[1:, :], np.abs(work[1:, :] - work[:-1, :]))
    return work - opened, closed - work, grad


def _candidates(maps, thresh: int, border_only: bool = False, floor: int = 5,
                flat: bool = False, turned: list | None = None,
                busy: list | None = None, rejected: list | None = None) -> list[tuple[int, int, int, int, bool]]:
    """Text-line candidates (x0, y0, x1, y1, bright_text) in working pixels (border_only: in
    the outer quarter of the image on any side, where labels are printed). A line on a busy
    background (texture, anatomy) that fails the quiet test is still a candidate when its
    strokes are a row of glyphs (_glyph_row; busy: a list that receives these, which find_text
    keeps only when read). turned: a list that receives the vertical
    (turned 90 degrees) text candidates, same tuple: stroke columns linked vertically, a
    column of glyphs (_glyph_row of the turned strokes); find_text reads them turned.
    A busy block of stacked lines whose strokes join (a label with no leading) is split at
    its near-empty stroke rows and each band tested as a glyph row (_row_bands). rejected: a
    list that receives the line-shaped groups that failed both (find_text reads one only
    when it is stacked on an identifying line: _stacked_lines)."""
    white, black, grad = maps
    H, W = white.shape
    # text has sharp edges (a glyph edge is 1-2 px wide); broad or blurred structures do not
    sharp = _filt((grad >= thresh * 3 // 4).astype(np.uint8), 3, np.maximum).astype(bool)
    out = []
    for bright, tophat in ((True, white), (False, black)):  # one polarity at a time
        strokes = (tophat >= thresh) & sharp
        if not strokes.any():
            continue
        # link the letters of a line (horizontal dilation only, so that lines stay apart)
        linked = _filt(strokes.astype(np.uint8), 5, np.maximum, axes=(1,)).astype(bool)
        for x0, y0, x1, y1 in _components(linked, 1, 4):
            bh, bw = y1 - y0, x1 - x0
            if bh < 3 or bh > 60 or bw < 2:
                continue
            if border_only and x0 >= W // 4 and x1 <= W - W // 4 and y0 >= H // 4 and y1 <= H - H // 4:
                continue
            region = strokes[y0:y1, x0:x1]
            n = int(region.sum())
            dens = n / (bh * bw)
            if n < 6 or not 0.08 <= dens <= 0.75:
                continue
            # text sits on a quiet background (a label, the film's dark margin, smooth
            # anatomy): its strokes stand far above the top-hat of the pixels between them;
            # texture and noise (an MR's grain) have busy surroundings. Strong strokes
            # (>= 100 grey levels) are kept whatever surrounds them.
            th = tophat[y0:y1, x0:x1]
            if _quiet_test(th, region, n, floor, flat):
                if not (busy is not None and _ROW_H[0] <= bh <= _ROW_H[1] and bw >= 2 * bh
                        and _glyph_row(region) >= _ROW):
                    if busy is not None:
                        bands = _row_bands(region, x0, y0, bright) if bh >= 2 * _ROW_H[0] else []
                        busy.extend(bands)
                        out.extend(bands)
                        if not bands and rejected is not None and _ROW_H[0] <= bh <= _ROW_H[1] and bw >= 2 * bh:
                            rejected.append((x0, y0, x1, y1, bright))
                    continue
                busy.append((x0, y0, x1, y1, bright))
            out.append((x0, y0, x1, y1, bright))
        if turned is not None:
            turned.extend(_turned_candidates(strokes, bright, W, H))
    return out


_ROW = 3                 # glyph-shaped components of one height on one line: a row of text
_ROW_H = (4, 30)         # working px: the heights of a glyph row found on a busy background
_BUSY_READ = 4           # such a row is kept when read: this many letters or digits, confidently
_BUSY_SHORT = 85         # ... or 3 (initials) as one word, every character a letter or digit, at this confidence


def _busy_kept(image: np.ndarray, box: tuple[int, int, int, int], bright: bool, reading: str,
               confident: bool) -> bool:
    """A glyph row on a busy background (image px box) counts when read: >= _BUSY_READ letters
    or digits confidently, or exactly 3 (initials: "NVA", red team 5) read as one word of
    letters and digits only at confidence >= _BUSY_SHORT. Grain is read as 3 at times, never
    that well on the bench: "14V" at 66, "42V" at 65 (text-free MR2 crops; every 3-character
    grain reading of the corpora and 48 random MR2 views, bench/README.md); the initials read
    at 96. The crop is read again only for a 3-character reading (rare), for its confidence."""
    n = sum(ch.isalnum() for ch in reading)
    if not confident or n < 3:
        return False
    if n >= _BUSY_READ:
        return True
    words = [(t, c) for t, c, _ in _read(_stretch(image, box, bright)) if t.strip()]
    return (len(reading) == 3 and len(words) == 1 and words[0][1] >= _BUSY_SHORT
            and sum(ch.isalnum() for ch in words[0][0]) == 3)


def _row_bands(region: np.ndarray, x0: int, y0: int, bright: bool) -> list[tuple[int, int, int, int, bool]]:
    """The glyph rows of a busy block of stacked text lines whose strokes join (a corner label
    printed with no leading, grey and blurred: red team 5): the block is cut at its near-empty
    stroke rows (<= 1/10 of the fullest row's strokes) into bands; a band _ROW_H tall, at
    least twice as wide and a glyph row (_glyph_row) is a candidate (working px, absolute),
    when at least two bands of the block are (a block of lines; one band alone is as often
    grain: a text-free MR2 crop's band read "View" and matched a hint fuzzily)."""
    rows = region.sum(axis=1)
    full = rows > max(1, 0.1 * float(rows.max()))
    d = np.diff(np.r_[0, full.astype(np.int8), 0])
    starts, stops = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    if len(starts) < 2:
        return []
    out = []
    for a, b in zip(starts, stops):
        band = region[a:b]
        cols = np.nonzero(band.any(axis=0))[0]
        if not len(cols) or not _ROW_H[0] <= b - a <= _ROW_H[1]:
            continue
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        if c1 - c0 >= 2 * (b - a) and _glyph_row(band[:, c0:c1]) >= _ROW:
            out.append((x0 + c0, y0 + int(a), x0 + c1, y0 + int(b), bright))
    return out if len(out) >= 2 else []


def _stacked_lines(rejected: list, idlines: list) -> list[tuple[int, int, int, int, bool]]:
    """The rejected busy lines (working px; _candidates) stacked on an identifying line of the
    same polarity that was read as text (idlines: a confident reading or a hint match, which
    find_text extends as it reads them, so a label grows a line at a time; an unreadable box,
    grain at times, seeds nothing): heights within 2x, the vertical gap at most the taller one's height, columns
    overlapping by half the narrower. A label's lines are; on a text-free image there is no
    identifying line to stack on, so this never modifies one. Each is taken once (removed)."""
    while rejected:
        hit = next((r for r in rejected for a in idlines if r[4] == a[4]
                    and 0.5 <= (r[3] - r[1]) / max(1, a[3] - a[1]) <= 2
                    and max(r[1], a[1]) - min(r[3], a[3]) <= max(r[3] - r[1], a[3] - a[1])
                    and min(r[2], a[2]) - max(r[0], a[0]) >= 0.5 * min(r[2] - r[0], a[2] - a[0])), None)
        if hit is None:
            return
        rejected.remove(hit)
        yield hit


def _glyph_row(region: np.ndarray) -> int:
    """The number of glyph-shaped stroke components (8-connected, working px) in a row: one
    height (>= 0.6 of the tall ones' and >= 3 px; tops and bottoms within a quarter of it), no
    wider than 1.6 x their height, each within a height of the next, holding at least half of
    the region's strokes. A text line printed over texture or anatomy is such a row (its
    background fails the quiet test); grain is blobs of every size and height."""
    from scipy import ndimage
    lab, n = ndimage.label(region, structure=np.ones((3, 3), bool))
    if n < _ROW:
        return 0
    b = np.array([(o[0].start, o[0].stop, o[1].start, o[1].stop) for o in ndimage.find_objects(lab)])
    tops, hs, x0s, ws = b[:, 0], b[:, 1] - b[:, 0], b[:, 2], b[:, 3] - b[:, 2]
    tall = float(np.percentile(hs, 90))
    glyph = (hs >= 0.6 * tall) & (hs >= 3) & (ws <= 1.6 * hs)
    if glyph.sum() < _ROW:
        return 0
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    tol = 0.25 * tall + 1
    top, bottom = float(np.median(tops[glyph])), float(np.median((tops + hs)[glyph]))
    row = glyph & (np.abs(tops - top) <= tol) & (np.abs(tops + hs - bottom) <= tol)
    if row.sum() < _ROW or sizes[row].sum() < 0.5 * sizes.sum():
        return 0
    idx = np.nonzero(row)[0]
    idx = idx[np.argsort(x0s[idx])]
    best = run = 1
    for a, b in zip(idx, idx[1:]):      # glyphs of a line follow each other
        run = run + 1 if x0s[b] - (x0s[a] + ws[a]) <= tall else 1
        best = max(best, run)
    return best


_BLUR_ROW = 5            # _blurred_rows: glyph-shaped components of one row without the sharp-edge test
_BLUR_MAX = 8            # ... at most this many such rows read per image (bounded)


def _blurred_rows(maps, taken: list) -> list[tuple[int, int, int, int, bool]]:
    """Rows of blurred text in the central field of a textured image (working px; red team 5:
    a name blurred by sigma 2 over the anatomy has no edge sharp enough for _candidates, so it
    made no candidate at all). Each polarity's top-hat above _STRONG without the sharp-edge
    test, linked along the line, inside the central field (inner 3/4); a group _ROW_H tall, at
    least 2.5 x as wide, overlapping no box already taken (working px, (x0, y0, x1, y1, bright):
    a candidate of the same polarity was judged already; bright None, a box found, either
    polarity), whose strokes are a row of at least _BLUR_ROW glyph-shaped components of one
    height following each other
    (_glyph_row). Grain does not make such rows on the bench corpora's text-free images
    except where the finder already boxed something (bench/README.md, sigma2); a row found is
    identifying unless read as a marker (unreadable text is identifying; find_text leaves a
    marker read there unboxed, so the pass only adds redaction). At most _BLUR_MAX rows, the
    longest first."""
    H, W = maps[0].shape
    cy0, cy1, cx0, cx1 = H // 8, H - H // 8, W // 8, W - W // 8
    out = []
    for bright, tophat in ((True, maps[0]), (False, maps[1])):
        strokes = tophat[cy0:cy1, cx0:cx1] >= _STRONG
        linked = _filt(strokes.view(np.uint8), 5, np.maximum, axes=(1,)).view(bool)
        for x0, y0, x1, y1 in _components(linked, 1, 4):
            bh, bw = y1 - y0, x1 - x0
            if not _ROW_H[0] <= bh <= _ROW_H[1] or bw < 2.5 * bh:
                continue
            box = (x0 + cx0, y0 + cy0, x1 + cx0, y1 + cy0)
            if any(_overlaps(box, t) and t[4] in (None, bright) for t in taken):
                continue
            region = strokes[y0:y1, x0:x1]
            n = int(region.sum())
            if n < 6 * _BLUR_ROW or not 0.08 <= n / (bh * bw) <= 0.75:
                continue
            if _glyph_row(region) >= _BLUR_ROW:
                out.append((*box, bright))
    out.sort(key=lambda c: c[0] - c[2])
    return out[:_BLUR_MAX]


def _turned_candidates(strokes: np.ndarray, bright: bool, W: int, H: int) -> list[tuple[int, int, int, int, bool]]:
    """Vertical text candidates of one polarity: strokes linked along columns; a group that
    is tall and narrow (3-30 working px wide, 2.5-12 x as tall, <= 250 px) in the outer eighth
    of a side (find_text keeps it when its ink, turned, is a row of glyphs: _turned_row).
    Digitisers and consoles print labels along the film's edge: a short vertical label's
    glyphs, linked along the line, are each a blob that the line shape or the one-glyph gate
    drops (red team 3)."""
    linked = _filt(strokes.astype(np.uint8), 5, np.maximum, axes=(0,)).astype(bool)
    out = []
    for x0, y0, x1, y1 in _components(linked, 4, 1):
        bh, bw = y1 - y0, x1 - x0
        if not 3 <= bw <= 30 or not 2.5 * bw <= bh <= min(12 * bw, 250):
            continue
        if x0 >= W // 8 and x1 <= W - W // 8 and y0 >= H // 8 and y1 <= H - H // 8:
            continue          # labels are printed along the film's edges: the outer eighth only
        region = strokes[y0:y1, x0:x1]
        n = int(region.sum())
        if n < 6 or not 0.08 <= n / (bh * bw) <= 0.75:
            continue
        out.append((x0, y0, x1, y1, bright))
    return out


def _turned_row(image: np.ndarray, box: tuple[int, int, int, int], line: int) -> int:
    """_glyph_row of a vertical candidate's ink at full resolution, turned (the best of both
    polarities: a grey glyph's bright strokes break up where the dark gaps between them
    do not). Ink: a local top-hat (a square about a third of the line height, >= 5 px)
    above 0.45 of its 99th percentile in the crop and >= 20 grey levels; a crop's background
    varies too much for one grey level to split ink from it."""
    x0, y0, x1, y1 = box
    c = image[y0:y1, x0:x1]
    if c.size == 0:
        return 0
    from scipy import ndimage
    k = max(5, (line // 3) | 1)
    best = 0
    for bright in (True, False):
        if bright:
            th = c.astype(np.int16) - ndimage.grey_opening(c, size=(k, k), mode="nearest")
        else:
            th = ndimage.grey_closing(c, size=(k, k), mode="nearest").astype(np.int16) - c
        q = int(0.99 * (th.size - 1))            # about the 99th percentile
        ink = th >= max(20.0, 0.45 * float(np.partition(th.ravel(), q)[q]))
        best = max(best, _glyph_row(np.ascontiguousarray(ink.T)))
        if best >= _ROW:
            break
    return best


def _quiet_test(th: np.ndarray, region: np.ndarray, n: int, floor: int, flat: bool) -> bool:
    """True when the candidate is dropped: its stroke peak (90th percentile of the top-hat on
    the strokes) is under _PEAK_ALWAYS and under _QUIET_RATIO x (the median top-hat between
    them + floor), or (flat) that median is above 1. np.percentile / np.median are called only
    when order statistics around them cannot settle it (np.percentile's linear value lies
    between the order statistics either side of its index): the same decisions, without
    their per-call cost on most of the hundreds of regions of an image."""
    on = th[region]
    k = 0.9 * (n - 1)
    lo_k, hi_k = max(0, int(k) - 1), min(n - 1, int(k) + 2)
    part = np.partition(on, (lo_k, hi_k))
    p_lo, p_hi = float(part[lo_k]), float(part[hi_k])         # the peak lies in [p_lo, p_hi]
    if n < region.size:
        off = th[~region]
        m = off.size
        lo_m, hi_m = max(0, (m - 1) // 2 - 1), min(m - 1, m // 2 + 1)
        part = np.partition(off, (lo_m, hi_m))
        b_lo, b_hi = float(part[lo_m]), float(part[hi_m])     # the median lies in [b_lo, b_hi]
    else:
        off, b_lo, b_hi = None, 0.0, 0.0
    if flat and b_lo > 1:
        return True
    low_always = p_hi < _PEAK_ALWAYS and p_hi < _QUIET_RATIO * (b_lo + floor)        # dropped whatever the values
    never = p_lo >= _PEAK_ALWAYS or p_lo >= _QUIET_RATIO * (b_hi + floor)          # kept by the quiet test
    if low_always or (never and not (flat and b_hi > 1)):
        return low_always
    peak = float(np.percentile(on, 90))
    between = float(np.median(off)) if off is not None else 0.0
    if peak < _PEAK_ALWAYS and peak < _QUIET_RATIO * (between + floor):
        return True
    return flat and between > 1


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# ----------------------------------------------------------------------------- find_text

def _stretch(image: np.ndarray, box: tuple[int, int, int, int], bright: bool) -> np.ndarray:
    """The crop as dark text on white, its 2-98 % range stretched to 0-255."""
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1].astype(np.float32)
    if bright:
        crop = 255 - crop
    lo, hi = np.percentile(crop, [2, 98])
    return np.clip((crop - lo) * (255 / max(hi - lo, 1)), 0, 255).astype(np.uint8)


def _stroke_ratio(crop: np.ndarray) -> float:
    """Median horizontal ink run / median height of the ink column groups of a stretched
    crop (dark on white). A glyph's strokes are thin against its height (DejaVu regular to
    bold: 0.06-0.28 on the bench's text lines); a blob of anatomy or grain is as thick as
    it is tall (median 0.5)."""
    ink = crop < 128
    p = np.zeros((ink.shape[0], ink.shape[1] + 2), np.int8)      # ink with a blank column each side
    p[:, 1:-1] = ink
    d = np.diff(p.any(axis=0).astype(np.int8))
    starts = np.nonzero(d == 1)[0]
    heights = np.zeros(0, np.intp)
    if starts.size:
        # the rows holding ink in each column group at once (a group's segment runs on to the
        # next group's start over columns without ink): the heights of the per-group loop
        # this replaced (tests/test_redact_speed.py)
        rows = np.logical_or.reduceat(ink, starts, axis=1)
        first = rows.argmax(axis=0)
        last = rows.shape[0] - 1 - rows[::-1].argmax(axis=0)
        heights = last + 1 - first
        heights = heights[heights >= 3]
    dd = np.diff(p, axis=1)
    runs = np.nonzero(dd == -1)[1] - np.nonzero(dd == 1)[1]
    if not heights.size or runs.size == 0:
        return 0.0        # nothing to measure: not evidence against text
    return _median(runs) / _median(heights)


def _median(v: np.ndarray) -> float:
    """float(np.median(v)) of integers, without its overhead (the middle value, or the mean of
    the two middle values: exact in float64 for these small integers)."""
    v = np.sort(v)
    m = v.size // 2
    return float(v[m]) if v.size % 2 else (float(v[m - 1]) + float(v[m])) / 2


_GLYPH_ASPECT = 1.2      # inner box width / height below this: room for one glyph at most
_THICK = 0.35            # stroke ratio above this: a blob, not a glyph stroke

# Grain test (textured images only, see _is_grain): measured on the strong pass's unreadable
# candidates of the burned_in_corpus seeds 10/11 (bench/README.md, "Burned-in text bench")
_TEXTURED = 10           # strong candidates inside the central field (inner 3/4): MR2 crops 15-40, others <= 5
_COHERENT = 0.6          # one streak: gradient orientation coherence; unreadable text <= 0.47, grain median 0.89
_SOFT = 0.3              # p99 gradient / stretched range: grain 0.07-0.46 (median 0.15), drawn text >= 0.42
_SHORT = 5.0             # inner width < 5 x height: room for ~5 glyphs at most
_LINE_GLYPHS = 3         # glyph-shaped components on one baseline: a text line has >= 3
_TINY = 8                # strokes at most this tall (image px): the stretch makes any crop look sharp


def _coherence(crop: np.ndarray) -> float:
    """Orientation coherence (0..1) of the gradients around the ink of a stretched crop (dark on
    white): 1 for one straight streak, low for letters (stems, bars and bowls in every
    direction). Blur does not change it (the orientations stay)."""
    g = crop.astype(np.float32)
    gy, gx = np.gradient(g)
    near = _filt((crop < 128).astype(np.uint8), 3, np.maximum).astype(bool)
    jxx, jyy, jxy = float((gx * gx)[near].sum()), float((gy * gy)[near].sum()), float((gx * gy)[near].sum())
    return float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / max(jxx + jyy, 1e-6))


def _sharpness(crop: np.ndarray) -> float:
    """The crop's steepest edges (99th percentile of the gradient magnitude) over its stretched
    range: a drawn glyph's edge is 1-2 px wide, an upsampled image's grain is soft."""
    gy, gx = np.gradient(crop.astype(np.float32))
    return float(np.percentile(np.hypot(gx, gy), 99)) / 255.0


def _line_glyphs(crop: np.ndarray) -> int:
    """Ink components of a stretched crop shaped like glyphs of one text line: at least 0.4 of
    the tall ones' height (and >= 4 px), no wider than 1.5 x their height, bottoms on one
    baseline (within 0.2 of the height)."""
    from scipy import ndimage
    labels, n = ndimage.label(crop < 128, structure=np.ones((3, 3), bool))
    objs = [o for o in ndimage.find_objects(labels) if o is not None]
    if not objs:
        return 0
    hs = np.array([o[0].stop - o[0].start for o in objs])
    ws = np.array([o[1].stop - o[1].start for o in objs])
    bottoms = np.array([o[0].stop for o in objs])
    tall = float(np.percentile(hs, 90)) if len(hs) > 3 else float(hs.max())
    glyph = (hs >= 0.4 * tall) & (ws <= 1.5 * hs) & (hs >= 4)
    if not glyph.any():
        return 0
    base = float(np.median(bottoms[glyph]))
    return int((glyph & (np.abs(bottoms - base) <= 0.2 * tall + 1)).sum())


def _turned_glyphs(crop: np.ndarray) -> int:
    """_line_glyphs of the crop turned so that its ink's long axis is level (both ways up): a
    short label printed vertically or turned has its glyphs on a baseline only once turned."""
    from PIL import Image
    ys, xs = np.nonzero(crop < 128)
    if len(xs) < 10:
        return 0
    _, v = np.linalg.eigh(np.cov(np.vstack([xs, ys]).astype(np.float64)))
    angle = float(np.degrees(np.arctan2(v[1, 1], v[0, 1])))
    im = Image.fromarray(np.ascontiguousarray(crop))
    return max(_line_glyphs(np.asarray(im.rotate(a, expand=True, fillcolor=255, resample=Image.BILINEAR)))
               for a in (angle, angle + 180))


_RING = 1.5             # ring around an outer-band candidate: 1.5 x its longer side each way (working px)
_RING_LIKE = 1.15        # candidate top-hat / ring's: outer-band MR2 grain dropped by it 0.79-1.08, red-team text >= 1.44 (bench/README)


def _ring_ratio(maps, cands: list[tuple[int, int, int, int, bool]], c: tuple[int, int, int, int], bright: bool) -> float:
    """How high the candidate c (working px) stands above the texture around it: its top-hat
    (95th percentile inside its box, its polarity) over the ring's (99th percentile of either
    top-hat, in a ring of _RING x its longer side, every candidate box and the half top-hat
    around it left out). Grain is the texture around it (about 1); drawn text is an outlier
    against its surroundings, and the other glyphs of its line (candidates themselves, and the
    other polarity's echo in the gaps between them) do not count as surroundings. A ring with
    too little left to measure gives inf (privacy: then it is text)."""
    white, black = maps[0], maps[1]
    x0, y0, x1, y1 = c
    H, W = white.shape
    k = int(_RING * max(x1 - x0, y1 - y0))
    X0, Y0, X1, Y1 = max(0, x0 - k), max(0, y0 - k), min(W, x1 + k), min(H, y1 + k)
    free = np.ones((Y1 - Y0, X1 - X0), bool)
    m = _TOPHAT // 2      # and the gaps between them (the other polarity's top-hat echoes a line there)
    for d in cands:
        free[max(0, d[1] - m - Y0):max(0, d[3] + m - Y0), max(0, d[0] - m - X0):max(0, d[2] + m - X0)] = False
    free[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = False
    if free.sum() < 4 * (x1 - x0) * (y1 - y0):
        return float("inf")
    ring = np.maximum(white[Y0:Y1, X0:X1], black[Y0:Y1, X0:X1])[free]
    peak = float(np.percentile((white if bright else black)[y0:y1, x0:x1], 95))
    return peak / max(float(np.percentile(ring, 99)), 1.0)


_SPECK_SHARE = 0.7       # a speck's blob holds this share of its crop's ink (the rest: a few grains)
_BAR = 0.93              # coherence of one straight bar cut by its crop: the corpus's film-edge streaks 0.96-1.00;
                         # a glyph in its padded crop (DejaVu/Liberation, 12-40 px, sharp or blurred) <= 0.90 ("J", "I"),
                         # only "|", "/" and "\\" reach 0.95-0.96


def _bar_column(image: np.ndarray, c: tuple[int, int, int, int, bool], column: list[tuple[int, int, int, int, bool]],
                s: int) -> bool:
    """Is the candidate c (working px), with room for one glyph at most, stacked only with
    straight bars, and one itself? Each crop (padded as find_text pads it) is one straight
    streak (gradient orientation coherence > _BAR): a film's edge or a collimator line cut into
    pieces, not the glyphs of a vertical label (a column of letters and digits holds strokes in
    other directions: a lone I, l or 1 in its padded crop measures <= 0.90, its ends show).
    Such a column cannot spell a name, an ID or a date, so it is not "stacked" for the shape
    gate (which then drops its one-glyph pieces)."""
    H, W = image.shape
    if (c[2] - c[0]) >= _GLYPH_ASPECT * (c[3] - c[1]):
        return False
    for x0, y0, x1, y1, bright in [c, *column]:
        bh = (y1 - y0) * s
        px, py = max(4, bh // 4), max(4, (bh * 2) // 5)
        box = (max(0, x0 * s - px), max(0, y0 * s - py), min(W, x1 * s + px), min(H, y1 * s + py))
        if _coherence(_stretch(image, box, bright)) <= _BAR:
            return False
    return True


def _speck(crop: np.ndarray, inner: tuple[int, int]) -> bool:
    """One speck of grain: tiny strokes (<= _TINY px tall) whose ink (stretched crop, dark on
    white) is one compact blob with room for one glyph at most (width < _GLYPH_ASPECT x height)
    holding most of the ink, spanning the crop neither way (not the rim around a hole). One
    glyph-sized dot cannot spell a name, an ID or a date; two letters, even blurred into one
    blob, are wider than tall (tests/test_pixeltext_precision.py)."""
    if inner[1] > _TINY:
        return False
    from scipy import ndimage
    ink = crop < 128
    labels, n = ndimage.label(ink, structure=np.ones((3, 3), bool))
    if n == 0:
        return False
    sizes = np.bincount(labels.ravel())[1:]
    big = int(np.argmax(sizes))
    ys, xs = np.nonzero(labels == big + 1)
    h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
    return (sizes[big] >= _SPECK_SHARE * sizes.sum() and w < _GLYPH_ASPECT * h
            and h < crop.shape[0] and w < crop.shape[1])


def _is_grain(crop: np.ndarray, inner: tuple[int, int], streak_only: bool = False) -> bool:
    """An unreadable candidate of a textured image (grain everywhere: an upsampled MR's) that is
    one oriented streak or one speck (_speck; these two in the outer band too), or short (room
    for ~5 glyphs at most), soft-edged (or tiny: strokes at most 8 px tall) and not a row of glyphs on a baseline, level or once turned (a short
    vertical label: tests/test_redteam3.py). A blurred label line stays: it
    is wide, or its glyphs stand on a baseline, and its strokes point every way."""
    inner_w, inner_h = inner
    if _coherence(crop) > _COHERENT or _speck(crop, inner):
        return True
    if streak_only:      # the outer band (find_text): a short soft label there is not grain
        return False
    return (inner_w < _SHORT * inner_h and (inner_h <= _TINY or _sharpness(crop) < _SOFT)
            and _line_glyphs(crop) < _LINE_GLYPHS and _turned_glyphs(crop) < _LINE_GLYPHS)


def _classify(image: np.ndarray, box: tuple[int, int, int, int], bright: bool,
              hints: Hints | None, inner: tuple[int, int], stacked: bool = False,
              textured: bool = False, central: bool = True) -> tuple[str, bool, bool, bool, str]:
    """(kind, matched_a_hint, read_confidently, text_like, reading) of one candidate in image
    coordinates (inner: the width and height of its strokes, without the padding; reading:
    the folded letters of a confident reading that matched no hint, for comparing the two
    polarities' readings of one region inside find_text; never leaves this module).

    text_like is False only for a candidate that matches no hint, of which OCR reads fewer
    than two letters or digits confidently, and whose shape cannot hold text: room for one
    glyph at most (inner width < 1.2 x height), or strokes as thick as the blob is tall
    (anatomy, grain, the edge of a CT's field of view). Such a region cannot spell a name,
    an ID or a date; everything else that is not read as a marker is redacted.

    textured (the strong pass on an image whose central field is full of candidates: grain
    everywhere): a candidate that matches no hint and is no marker, of which OCR reads fewer
    than three letters or digits confidently, and that _is_grain says is grain is not
    text_like either; outside the central field (central False: the outer eighth of each
    side, where labels are printed) only a single oriented streak or one speck counts as grain."""
    crop = _stretch(image, box, bright)
    inner_w, inner_h = inner
    if _engine() is not None and ((inner_w < _GLYPH_ASPECT * inner_h and not stacked) or _stroke_ratio(crop) > _THICK):
        return "other", False, False, False, ""
    read = [(_words(t, keep_accents=True), c, b) for t, c, b in _read(crop)]
    read = [(w, c, b) for w, c, b in read if w]
    good = [(w, c) for w, c, _ in read]
    accented = [x for w, _ in good for x in w]
    flat = [fold(x) for x in accented]
    # confident: every word read well, and the words span most of the line (a read that
    # drops part of the line is not a reading of the line)
    span = (max(b[2] for _, _, b in read) - min(b[0] for _, _, b in read)) if read else 0
    confident = bool(good) and all(c >= _CONF for _, c in good) and (span >= 0.6 * inner_w or inner_w <= 2 * (box[3] - box[1]))
    hk = _hint_kind(flat, hints)
    if hk is not None:
        return hk, True, True, True, ""
    if confident and _is_marker_line(accented):
        return "marker", False, True, True, "".join(flat)
    if (textured and _engine() is not None and (not confident or sum(c.isalnum() for c in "".join(flat)) < 3)
            and _is_grain(crop, inner, streak_only=not central)):
        return "other", False, False, False, ""
    m = _missing_glyph_marker(crop, flat, hints) if (_engine() is not None and confident) else None
    if m is None and _engine() is not None:
        m = _second_read_marker(crop, accented, inner, hints)
    if m is not None:   # the reading as read: the other polarity's echo is compared with it
        return "marker", False, True, True, "".join(flat)
    if not confident:
        return "other", False, False, True, ""
    return _shape_kind(flat), False, True, True, "".join(flat)


def _classify_turned(image: np.ndarray, box: tuple[int, int, int, int], bright: bool, hints: Hints | None,
                     inner: tuple[int, int], textured: bool, central: bool) -> tuple[str, bool, bool]:
    """(kind, read_confidently, text_like) of a vertical candidate (image coordinates; inner:
    its strokes' length and width), read turned 90 degrees each way (_classify on the turned
    image: a view, nothing copied but the crop). Privacy first: a hint match either way wins,
    then a confident non-marker reading; it is a marker only when read as one and the other
    way reads nothing confidently; dropped only when neither way is text-like."""
    H, W = image.shape
    x0, y0, x1, y1 = box
    res = [_classify(np.rot90(image, 1), (y0, W - x1, y1, W - x0), bright, hints, inner, True, textured, central),
           _classify(np.rot90(image, 3), (H - y1, x0, H - y0, x1), bright, hints, inner, True, textured, central)]
    for kind, matched, confident, text_like, _ in res:
        if matched:
            return kind, True, True
    for kind, _, confident, text_like, _ in res:
        if confident and text_like and kind != "marker":
            return kind, True, True
    if any(r[0] == "marker" for r in res):
        return "marker", True, True
    return "other", False, any(r[3] for r in res)


# A marker drawn in a font that lacks one of its Vietnamese letters (Liberation Sans/Serif/Mono
# have no Ả, Ằ, Ồ, Ứ): the letter is drawn as the font's missing-glyph box (.notdef, a hollow
# rectangle: "PH□I"), which OCR reads as some letter ("PHO I", "PHII"). See _missing_glyph_marker.
# Markers for which this is allowed: exactly one letter outside Latin-1 (a font with Latin-1
# has TRÁI's Á, so TR□I is not TRÁI), and no word of that skeleton with a missing letter is a
# Vietnamese name (N□M could be the given name Năm, Đ□NG has two such letters and is one
# letter from Dũng: neither is taken).
_MISSING_GLYPH_MARKERS = ("PHẢI", "NGỒI")


_CM_CONF = 80           # word confidence of the second read (see _second_read_marker)
_CM_GLYPHS = 6.0         # inner width <= 6 x height: a few glyphs, the size of a marker word


def _second_read_marker(crop: np.ndarray, accented: list[str], inner: tuple[int, int],
                        hints: Hints | None) -> str | None:
    """The folded reading of a short candidate that a second read, of the crop binarized (ink
    below mid-grey) with a white margin around it, reads as a marker; or None (it stays
    identifying).

    Tesseract misreads a lone small glyph cropped tight to its strokes, swayed by its
    anti-aliasing (a 12 px serif L read as "lỗ" at confidence 15, "|e" at 42, at one grey level
    of display difference) and reads it right (L, 90-93 at every scale 1-4x) once binarized
    with white space around it. Only for a candidate of a few glyphs (inner width <= 6 x height) whose first reading
    has 1-6 letters or digits. It is that marker only when ALL hold: every word of the second
    read has confidence >= _CM_CONF and the words span the line; the second reading is a marker
    line by the allowlist's own rules (diacritics compared as for any reading); the first
    reading (accent-folded) is within two edits of it; when the first read saw diacritics the
    second may not be a plain form of a Vietnamese marker (binarizing can drop a mark: DŨNG
    must not come back as a plain DUNG, which the allowlist compares folded); neither reading is within two edits of a header
    hint token; and (in find_text) nothing that is not a marker stands beside it or overlaps
    it. Anything else stays identifying."""
    inner_w, inner_h = inner
    reading = "".join(fold(x) for x in accented)
    marked = any(_upper(x) != fold(x) for x in accented)
    if not (1 <= len(reading) <= 6) or inner_w > _CM_GLYPHS * inner_h or _near_hint(reading, hints):
        return None
    pad = max(8, crop.shape[0] // 3)
    ink = np.where(crop < 128, 0, 255).astype(np.uint8)    # binarized: the anti-aliasing of a tiny glyph misleads
    read = [(_words(t, keep_accents=True), c, b) for t, c, b in _read(np.pad(ink, pad, constant_values=255))]
    read = [(w, c, b) for w, c, b in read if w]
    if not read or any(c < _CM_CONF for _, c, _ in read):
        return None
    span = max(b[2] for _, _, b in read) - min(b[0] for _, _, b in read)
    if span < 0.6 * inner_w and inner_w > 2 * crop.shape[0]:
        return None
    words = [x for w, _, _ in read for x in w]
    second = "".join(fold(x) for x in words)
    vietnamese = {fold(a) for a in _allow()[4] if a != fold(a)}     # TRAI, PHAI, NAM, DUNG, NGOI
    if marked and any(_upper(x) == fold(x) and fold(x) in vietnamese for x in words):
        return None
    if not _is_marker_line(words) or _lev(reading, second, 2) > 2 or _near_hint(second, hints):
        return None
    return second


def _is_notdef_box(ink: np.ndarray) -> bool:
    """The ink of one glyph (its bounding box) is a hollow rectangle: each side >= 80 % inked
    along its length, and the inside (inset by a quarter of the side) empty."""
    h, w = ink.shape
    if h < 6 or w < 3:
        return False
    t = max(1, min(h, w) // 5)
    sides = (ink[:t].any(axis=0).mean(), ink[-t:].any(axis=0).mean(),
             ink[:, :t].any(axis=1).mean(), ink[:, -t:].any(axis=1).mean())
    iy, ix = max(t + 1, h // 4), max(t + 1, w // 4)
    inside = ink[iy:h - iy, ix:w - ix]
    return min(sides) >= 0.8 and inside.size > 0 and inside.mean() <= 0.05


def _missing_glyph_marker(crop: np.ndarray, flat: list[str], hints: Hints | None) -> str | None:
    """The folded marker word a candidate drawn with a missing-glyph box is, or None.

    The crop (dark on white) must hold exactly as many glyphs as the marker has letters (ink
    components at least half the tallest's height, left to right), the glyph where the marker
    has its non-ASCII letter must be a hollow rectangle (the font's .notdef box), the confident
    reading (accent-folded, words joined) must have the marker's length and its letters at every
    other position (PHO I, PHII for PH□I); and neither the reading nor the marker may be within
    two edits of a header hint token (privacy first). Then what stays readable is the marker's
    ASCII letters and an empty box: no letter of a name. Anything else stays identifying."""
    reading = "".join(flat)
    for m in _MISSING_GLYPH_MARKERS:
        f = fold(m)
        holes = [i for i, ch in enumerate(m) if not ch.isascii()]
        if len(reading) != len(m) or len(holes) != 1:
            continue
        if any(reading[i] != f[i] for i in range(len(m)) if i not in holes):
            continue
        if _near_hint(reading, hints) or _near_hint(f, hints):
            return None
        from scipy import ndimage
        ink = crop < 128
        labels, n = ndimage.label(ink, structure=np.ones((3, 3), bool))
        objs = [(o, i + 1) for i, o in enumerate(ndimage.find_objects(labels)) if o is not None]
        if not objs:
            return None
        tall = max(o[0].stop - o[0].start for o, _ in objs)
        glyphs = sorted(((o, k) for o, k in objs if o[0].stop - o[0].start >= 0.5 * tall),
                        key=lambda ok: ok[0][1].start)
        if len(glyphs) != len(m):
            return None
        o, k = glyphs[holes[0]]
        if not _is_notdef_box(labels[o] == k):
            return None
        # every other glyph is not a box (a row of boxes is a line in a font without any glyph)
        if any(_is_notdef_box(labels[g] == j) for i, (g, j) in enumerate(glyphs) if i != holes[0]):
            return None
        return f
    return None


def _inside(a, b) -> float:
    """The share of box a's area that lies inside box b."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    area = (a[2] - a[0]) * (a[3] - a[1])
    return max(0, w) * max(0, h) / area if area > 0 else 0.0


def _same_line_near(a, b, overlap_counts: bool = True) -> bool:
    """b is on a's text line (vertical overlap >= 3/4 of the lower height) within 1.5 line
    heights horizontally, or (overlap_counts) the boxes overlap at all."""
    ov = min(a[3], b[3]) - max(a[1], b[1])
    lh = min(a[3] - a[1], b[3] - b[1])
    gap = max(a[0], b[0]) - min(a[2], b[2])
    return (overlap_counts and _overlaps(a, b)) or (ov >= 0.75 * lh and gap <= 1.5 * max(a[3] - a[1], b[3] - b[1]))


def _stacked(a, b) -> bool:
    """b lies right above or below a, in the same column, about as wide: a glyph of a
    vertical (turned) text line."""
    ow = min(a[2], b[2]) - max(a[0], b[0])
    gap = max(a[1], b[1]) - min(a[3], b[3])
    w = max(a[2] - a[0], b[2] - b[0])
    return ow >= 0.5 * min(a[2] - a[0], b[2] - b[0]) and gap <= max(a[3] - a[1], b[3] - b[1]) and min(a[2] - a[0], b[2] - b[0]) >= 0.4 * w


def _join_lines(cands: list[tuple[int, int, int, int, bool]]) -> list[tuple[int, int, int, int, bool]]:
    """Candidates of one polarity on one line, less than a line height apart, become one
    line (words spaced wider than the stroke linking: "98 kV  6.5 mAs"), read together."""
    out = [list(c) for c in cands]
    if len(out) > 300:  # a busy (noisy) image: each candidate is read alone (bounded cost)
        return [tuple(c) for c in out]

    def joins(a, b) -> bool:
        h = max(a[3] - a[1], b[3] - b[1])
        ov = min(a[3], b[3]) - max(a[1], b[1])
        gap = max(a[0], b[0]) - min(a[2], b[2])
        return a[4] == b[4] and ov >= 0.75 * min(a[3] - a[1], b[3] - b[1]) and gap <= h

    # Greedy: the first joinable pair in list order is joined (the later one into the earlier,
    # removed by value), then the search starts again. The search does not start from the top:
    # the rows before the one that grew joined nothing, and only that one has changed, so the
    # first of them that joins it now is where a search from the top would stop (the same joins
    # in the same order as restarting, tests/test_redact_speed.py; restarting cost 30 ms on an
    # image with 90 candidates).
    i = 0
    while i < len(out):
        a = out[i]
        j = next((j for j in range(i + 1, len(out)) if joins(a, out[j])), None)
        if j is None:
            i += 1
            continue
        b = out[j]
        a[:4] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
        out.remove(b)
        if i < len(out) and out[i] is a:
            i = next((k for k in range(i) if joins(out[k], a)), i)
    return [tuple(c) for c in out]


def _near_hint(reading: str, hints: Hints | None, edits: int = 2) -> bool:
    """The folded reading is within ``edits`` edits of a header hint token (3+ letters) or
    contains one, or holds the digits of a hint date."""
    if hints is None or not reading:
        return False
    for v in (*hints.names, *hints.ids, *hints.other):
        for t in _words(v):
            t = re.sub(r"\W", "", t)
            if len(t) >= 3 and (_lev(reading, t, edits) <= edits or t in reading):
                return True
    digits = re.sub(r"\D", "", reading)
    return any(len(f) >= 6 and f in digits for v in hints.dates for f in _date_forms(v))


def _echo_markers(found: list[list], hints: Hints | None = None) -> None:
    """The other polarity's top-hat also sees a marker (the dark gaps around bright letters)
    and may read it one letter off (TRAL beside TRÁI): a confident reading of a region at
    least half inside a marker of the other polarity, within one edit of the marker's
    reading, is that marker -- unless the reading is also within two edits of a header hint
    token (TRAN for a patient Trần stays identifying: privacy first). Privacy: both readings
    spell (nearly) the same marker and neither (nearly) spells a hint.
    found: [box, kind, read_confidently, bright, reading] lists, changed in place."""
    for f in found:
        if f[2] and f[1] != "marker" and f[4] and not _near_hint(f[4], hints):
            host = next((g for g in found if g[1] == "marker" and g[3] != f[3] and g[4]
                         and _inside(f[0], g[0]) >= 0.5 and _lev(f[4], g[4], 1) <= 1), None)
            if host is not None:
                f[1] = "marker"


def _grow_labels(found: list[list], pending: list[tuple[int, int, int, int]]) -> None:
    """A faint label is read in fragments: one matches a hint (a name part), the rest of its
    line and the lines stacked with it (ID, date, hospital) do not. Faint candidate regions on
    the line of an identifying box of a faint pass (a hint match; within three line heights,
    text of the same size: heights within 2x), or, when text-like, stacked right above or
    below it (gap <= two line heights, heights within 2x, overlapping columns; the gap between
    them too: a label line whose strokes were not seen), are identifying too ("other"),
    repeatedly. Two anchored boxes stacked in one column (gap <= four line heights, heights
    within 2x) are one label block: the gap between them is redacted (its lines were not
    seen). Privacy first: a label block that spells one identifier is redacted whole.

    Bounds (bench seeds 10/11, bench/README.md): only anchored boxes and regions joined by
    stacking seed further growth -- a region joined along a line, a gap box and a block fill
    do not (chained line growth took whole bands of anatomy beside a label); nothing joins
    over a marker read there; the size test compares with the anchored label's line height,
    carried along the chain (a chain must not drift to ever taller anatomy bands). found rows:
    [box, kind, confident, bright, reading, seed, lh, label_lh] with seed True (anchored or
    stacked), "line", "gap" (lh: the line height _widen_faint widens by)."""
    markers = [f[0] for f in found if f[1] == "marker"]
    seeds = [f for f in found if f[1] != "marker" and len(f) > 5 and f[5] is True]
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            A, B = a[0], b[0]
            ha, hb = A[3] - A[1], B[3] - B[1]
            gy = max(A[1], B[1]) - min(A[3], B[3])
            if (min(A[2], B[2]) > max(A[0], B[0]) and 0 < gy <= 4 * max(ha, hb)
                    and 0.5 <= ha / max(hb, 1) <= 2):
                gap = (min(A[0], B[0]), min(A[3], B[3]), max(A[2], B[2]), max(A[1], B[1]))
                if not any(_overlaps(gap, m) for m in markers):
                    found.append([gap, "other", False, False, "", "gap", min(ha, hb)])
    grow = True
    while grow and pending:
        grow = False
        for q in list(pending):
            p, text_like = q[:4], (q[4] if len(q) > 4 else True)
            if any(_overlaps(p, m) for m in markers):   # a marker read there: not label text
                continue
            ph = p[3] - p[1]
            for f in found:
                if f[1] == "marker" or len(f) < 6 or f[5] is not True:   # seeds: anchored, stacked
                    continue
                b = f[0]
                bh = f[7] if len(f) > 7 else b[3] - b[1]    # the anchored label's line height
                ov = min(p[3], b[3]) - max(p[1], b[1])
                gx = max(p[0], b[0]) - min(p[2], b[2])
                gy = max(p[1], b[1]) - min(p[3], b[3])
                same_size = 0.5 <= ph / max(bh, 1) <= 2
                line = ov >= 0.5 * min(ph, bh) and gx <= 3 * max(ph, bh) and same_size
                stack = text_like and gy <= 2 * max(ph, bh) and gx < 0 and same_size
                if line or stack:
                    found.append([p, "other", False, False, "", True if stack else "line", min(ph, bh), bh])
                    if stack and not line and gy > 0:   # a label line between them went unseen
                        found.append([(min(p[0], b[0]), min(p[3], b[3]), max(p[2], b[2]), max(p[1], b[1])),
                                      "other", False, False, "", "gap", min(ph, bh)])
                    pending.remove(q)
                    grow = True
                    break


def _widen_faint(found: list[list], W: int) -> None:
    """A faint label's strokes drop out where the film behind it brightens: the part of its
    line that was read is widened by 4 line heights each way, and to the image's side when
    that is within 8 line heights (labels are aligned to the edge), but not over a marker read on
    that line. Only identifying boxes of the faint passes (anchored by a hint match, or grown
    from one) are widened; a grown box or a gap box by the height of the label's lines, not
    its own."""
    markers = [f[0] for f in found if f[1] == "marker"]
    for f in found:
        if len(f) > 5 and f[5] and f[1] != "marker":
            X0, y0, X1, y1 = f[0]
            lh = min(y1 - y0, f[6]) if len(f) > 6 else y1 - y0
            x0, x1 = max(0, X0 - 4 * lh), min(W, X1 + 4 * lh)
            x0, x1 = (0 if x0 <= 8 * lh else x0), (W if W - x1 <= 8 * lh else x1)
            # a marker read on the line stops the widening (it is not the label's text)
            for m in markers:
                if min(m[3], y1) - max(m[1], y0) > 0:
                    if m[2] <= X0:
                        x0 = max(x0, m[2])
                    elif m[0] >= X1:
                        x1 = min(x1, m[0])
            f[0] = (x0, y0, x1, y1)


_SMALL = 256             # an image whose long side is under this (pydicom's MR_small 64 px, CT_small 128 px): its
#                          anatomy is as fine as the 9-px top-hat's strokes, and unreadable candidates need evidence
_SMALL_READ = 2          # ... a candidate read confidently as this many letters or digits counts (MR_small's anatomy: 1)
_SMALL_Q = 63            # ... or one holding glyph-shaped strokes in the outer quarter of the display (<= 63 or >= 192)
_SMALL_CONTRAST = 64     # ... or a row of glyphs in the outer quarters of the crop's own range, when it spans this much
_SMALL_CUTS = 5          # ... cut at the 1/5..4/5 levels of that range
_SMALL_ROW = 3           # ... of at least this many glyphs (red team 8: grey text)
_SMALL_WIDE = 2.7        # ... a component no wider than this x its height (two glyphs that touch: "LE" at 8 px)


def _small_glyphs(crop: np.ndarray, contrast: int = _SMALL_CONTRAST) -> bool:
    """Does a crop of a small image (``_SMALL``) hold a glyph-shaped stroke component in the
    outer quarter of the display, either polarity (<= 63 or >= 192: burned-in text is drawn at
    an extreme, deid.redact ``display``; the anti-aliased 1-px strokes of an 8-px font reach only
    ~150 of 255 over a dark background, the cores of larger fonts 255)? One at least 3 px tall,
    no wider than 2.7x its height, strokes rather than solid (1/10 to 3/4 of its bounding box
    set), not touching the crop's edge (anatomy and background run on past the candidate's box;
    a glyph lies inside its padding). Measured (bench/README.md, small images): the text-free
    candidates of MR_small and CT_small hold none; names, initials and IDs drawn there in 8-16 px
    DejaVu, white or black, at the top, middle or bottom, hold one (tests/test_small_images.py)."""
    if any(_small_glyph_boxes(mask) for mask in (crop >= 255 - _SMALL_Q, crop <= _SMALL_Q)):
        return True
    # grey text (over air, a flat field) never reaches an extreme of the display (red team 8: a
    # mid-grey name over CT_small's air, OCR reading nothing of the crop it shares with the
    # anatomy beside it): the crop cut at levels across its own range, either polarity, where
    # only a row of glyphs counts (_SMALL_ROW or more of one height side by side), never one blob
    lo, hi = int(crop.min()), int(crop.max())
    if hi - lo < contrast:
        return False
    cuts = [lo + (hi - lo) * k // _SMALL_CUTS for k in range(1, _SMALL_CUTS)]
    return any(_small_row(_small_glyph_boxes(mask, every=True)) for t in cuts for mask in (crop > t, crop < t))


def _small_glyph_boxes(mask: np.ndarray, every: bool = False) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of the glyph-shaped components of ``mask`` (:func:`_small_glyphs`): the
    first one only unless ``every``."""
    from scipy import ndimage

    if not mask.any():
        return []
    hh, ww = mask.shape
    out = []
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    for i, sl in enumerate(ndimage.find_objects(lab), 1):
        if sl is None:
            continue
        y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        h, w = y1 - y0, x1 - x0
        if h >= 3 and w <= h * _SMALL_WIDE and y0 > 0 and x0 > 0 and y1 < hh and x1 < ww \
                and 0.1 <= np.count_nonzero(lab[sl] == i) / (h * w) <= 0.75:
            out.append((y0, y1, x0, x1))
            if not every:
                break
    return out


def _small_row(boxes: list[tuple[int, int, int, int]]) -> bool:
    """Do ``_SMALL_ROW`` or more of ``boxes`` stand side by side on one line: heights within
    1.5x of one another, each overlapping the line's rows by half its height?"""
    for y0, y1, _, _ in boxes:
        h = y1 - y0
        row = {b[2] for b in boxes if max(b[1] - b[0], h) <= 1.5 * min(b[1] - b[0], h)
               and min(b[1], y1) - max(b[0], y0) >= 0.5 * min(b[1] - b[0], h)}
        if len(row) >= _SMALL_ROW:
            return True
    return False


def _sized(cands, s: int, W: int, H: int, min_side: int, vertical: bool = False):
    """(candidate, the box read for it) of each candidate (working px) whose box (image px) is
    at least ``min_side`` on both sides: the one place find_text's ``min_side`` is applied,
    before anything is measured or read for the candidate. The box is its strokes padded by
    a share of its line height (the stroke mask can miss faint diacritics: Vietnamese stacks
    two above a capital): 2/5 of it across the line, 1/4 along it, at least 4 px; a vertical
    candidate's line height is its width."""
    for c in cands:
        x0, y0, x1, y1 = c[:4]
        line = (x1 - x0) * s if vertical else (y1 - y0) * s
        along, across = max(4, line // 4), max(4, (line * 2) // 5)
        px, py = (across, along) if vertical else (along, across)
        box = (max(0, x0 * s - px), max(0, y0 * s - py), min(W, x1 * s + px), min(H, y1 * s + py))
        if min(box[2] - box[0], box[3] - box[1]) >= min_side:
            yield c, box


_SMALL_UP = 3            # a small image is also scanned at this many times its size (pixel repetition)
_SMALL_MIN = 32           # ... unless its short side is under this (16-px thumbnails: no room for a line of text)
_SMALL_FAINT = 24        # ... where a faint candidate that matched no hint counts with a row of glyphs over a range
#                          of this much and less than _SMALL_CONTRAST (grey text; the export's text-free CTs: 201)
_SMALL_EDGE = 1.5        # ... and an identifying box this many box heights (~3 glyphs) or less from a side reaches it


def find_text(image: np.ndarray, frame: int = 0, hints: Hints | None = None, min_side: int = 0) -> list[TextBox]:
    """Every text region of a display-ready 2-D uint8 image, each with its kind (see module
    doc). With ``min_side``, a candidate whose padded box is narrower or shorter than that is
    not read at all (deid.redact's coarse views keep only boxes of large text: reading the
    small ones there cost half a full-size scan). Raises ValueError (fixed message) for
    anything but a 2-D uint8 array.

    A small image (``_SMALL``, not a coarse view) is also scanned ``_SMALL_UP`` times enlarged
    by pixel repetition (smallimg2: 8-10 px initials over MR_small's anatomy and grey 10-px text
    over CT_small's soft tissue make no candidate at their own size, but do enlarged, as the
    same text drawn on a 256-px frame does); the enlarged scan's identifying boxes, mapped back
    (rounded outwards), are added to the image's own (one lying mostly inside a box found at the
    image's own size grows that box instead), except those lying mostly inside a marker found
    at the image's own size (the marker stays readable) and unread, unmatched ones without
    glyph-shaped strokes at the image's own size (``_small_glyphs``: the text-free knee MRs of
    the sample export read 2 characters at 3x). A faint candidate of the enlarged scan that
    matched no hint (dropped at any size) counts too when its crop at the image's own size holds
    a row of glyphs across a range of ``_SMALL_FAINT`` to ``_SMALL_CONTRAST`` (red team 8: grey
    digits over CT_small's soft tissue, 131 of 255 over 91-115, that OCR reads as nothing; a
    text-free CT of the sample export: a faint candidate over 30-231, not counted). Then an identifying box whose
    line starts or ends within ``_SMALL_EDGE`` times its (padded) height of the image's side
    reaches that side (a name drawn from the edge over dark air: its first glyphs, dark on dark, make no
    stroke, yet a narrow window shows them)."""
    if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError("find_text needs a 2-D uint8 display image")
    if image.size == 0:
        return []
    H, W = image.shape
    out = _find_text(image, frame, hints, min_side)
    if max(H, W) >= _SMALL or min_side or min(H, W) < _SMALL_MIN:
        return out
    f = _SMALL_UP
    up = np.repeat(np.repeat(image, f, axis=0), f, axis=1)
    markers = [(b.x0, b.y0, b.x1, b.y1) for b in out if b.kind == "marker"]
    faint: list = []
    found = [((b.x0, b.y0, b.x1, b.y1), b.kind, _SMALL_CONTRAST) for b in _find_text(up, frame, hints, 0, faint)
             if b.kind != "marker"]
    found += [(q, "other", _SMALL_FAINT) for q in faint]
    for (x0, y0, x1, y1), kind, contrast in found:
        box = (x0 // f, y0 // f, min(W, -(-x1 // f)), min(H, -(-y1 // f)))
        if box[2] <= box[0] or box[3] <= box[1] or any(_inside(box, m) >= 0.5 for m in markers):
            continue
        crop = image[box[1]:box[3], box[0]:box[2]]
        if kind == "other" and not _small_glyphs(crop, contrast):
            continue
        if contrast == _SMALL_FAINT and int(crop.max()) - int(crop.min()) >= _SMALL_CONTRAST:
            continue
        # mostly inside a box found at the image's own size: that box grows to cover it (read whole)
        host = next((i for i, t in enumerate(out) if t.kind != "marker"
                     and _inside(box, (t.x0, t.y0, t.x1, t.y1)) >= 0.5), None)
        if host is None:
            out.append(TextBox(frame, *box, kind))
        else:
            t = out[host]
            out[host] = TextBox(frame, min(t.x0, box[0]), min(t.y0, box[1]), max(t.x1, box[2]), max(t.y1, box[3]),
                                t.kind)
    return [_to_edge(b, W, H, markers) for b in out]


def _to_edge(b: TextBox, W: int, H: int, markers: list) -> TextBox:
    """An identifying box of a small image grown to the image's side when its line starts or
    ends within ``_SMALL_EDGE`` times its height of it and no marker lies between (find_text)."""
    if b.kind == "marker":
        return b
    x0, y0, x1, y1 = b.x0, b.y0, b.x1, b.y1
    level = x1 - x0 >= y1 - y0
    reach = int(_SMALL_EDGE * max(1, min(x1 - x0, y1 - y0)))
    lo, hi, n = (x0, x1, W) if level else (y0, y1, H)
    clear = [m for m in markers if not _overlaps(m, (x0, y0, x1, y1))]

    def free(a0, a1):        # no marker in the stretch a0..a1 along the line
        return not any(_overlaps(m, (a0, y0, a1, y1) if level else (x0, a0, x1, a1)) for m in clear)

    if 0 < lo <= reach and free(0, lo):
        lo = 0
    if hi < n and n - hi <= reach and free(hi, n):
        hi = n
    return TextBox(b.frame, lo, y0, hi, y1, b.kind) if level else TextBox(b.frame, x0, lo, x1, hi, b.kind)


def _find_text(image: np.ndarray, frame: int, hints: Hints | None, min_side: int,
               faint_out: list | None = None) -> list[TextBox]:
    """find_text at the image's own size (find_text checks the image). With ``faint_out``, the
    boxes of faint, text-like candidates that matched no hint and joined no label are added to it
    (find_text's enlarged scan of a small image)."""
    work, s = _work(image)
    maps = _maps(work)
    H, W = image.shape
    has_hints = hints is not None and any((hints.names, hints.ids, hints.dates, hints.other))
    # a small image (_SMALL) -- not a coarse view (min_side): deid.redact gates those boxes itself
    # (_large_text), and a coarse view of a 256-511 px image is under _SMALL while the image is not
    small = max(H, W) < _SMALL and not min_side
    passes = [(_STRONG, False, 5, False)] + (list(_FAINT_PASSES) if has_hints else [])
    # [box, kind, read_confidently, bright]
    found: list[list] = []
    tried: list[tuple[int, int, int, int]] = []     # faint regions already read
    pending: list[tuple[int, int, int, int]] = []   # faint, text-like, matched no hint
    idlines: list[tuple[int, int, int, int, bool]] = []   # strong identifying lines (working px)
    for thresh, faint, floor, flat in passes:
        strong = [f[0] for f in found]
        turned: list | None = None if faint else []
        busy: list | None = None if faint else []
        rejected: list = []             # busy line-shaped groups that are no glyph row
        raw = _candidates(maps, thresh, border_only=faint, floor=floor, flat=flat, turned=turned, busy=busy,
                          rejected=rejected)
        cands = _join_lines(raw)
        quiet = [c for c in raw if c not in (busy or ())]
        # grain everywhere (an upsampled MR's): many strong candidates in the central field,
        # where labels are not printed (MR2 crops of the bench 15-40, other images <= 5)
        hw, ww = work.shape
        textured = not faint and sum(1 for c in cands if c[0] >= ww // 8 and c[2] <= ww - ww // 8
                                     and c[1] >= hw // 8 and c[3] <= hw - hw // 8) >= _TEXTURED
        for (x0, y0, x1, y1, bright), box in _sized(cands, s, W, H, min_side):
            bh = (y1 - y0) * s
            # in the outer band, where consoles and digitisers print labels, the grain test
            # drops only one oriented streak (red team 3: initials, short grey IDs and dates
            # at a corner or side were dropped as short soft grain and left readable)
            central = x0 >= ww // 8 and x1 <= ww - ww // 8 and y0 >= hw // 8 and y1 <= hw - hw // 8
            # ... unless it stands no higher than the texture around it (grain looks like its
            # surroundings; drawn text, grey or blurred, is an outlier against them): then the
            # whole grain test applies there too (central below means "the whole test")
            if textured and not central:
                central = _ring_ratio(maps, cands, (x0, y0, x1, y1), bright) <= _RING_LIKE
            if faint and (any(_inside(box, t) >= 0.5 for t in strong) or any(_inside(box, t) >= 0.9 and _inside(t, box) >= 0.9 for t in tried)):
                continue
            if faint:
                tried.append(box)
            column = [c for c in cands if c[4] == bright and c[:4] != (x0, y0, x1, y1) and _stacked((x0, y0, x1, y1), c)]
            # a column of nothing but straight bars (a film's edge in pieces) is no vertical label
            stacked = bool(column) and not _bar_column(image, (x0, y0, x1, y1, bright), column, s)
            kind, matched, confident, text_like, reading = _classify(image, box, bright, hints if has_hints else None,
                                                            ((x1 - x0) * s, bh), stacked, textured, central)
            # a small image (_SMALL): an unmatched candidate that is not read as 2+ letters or
            # digits counts only with glyph-shaped strokes at an extreme of the display (_small_glyphs);
            # without the engine nothing is read, so every candidate stays (safe by default)
            if small and text_like and not matched and kind != "marker" and _engine() is not None \
                    and not (confident and sum(ch.isalnum() for ch in reading) >= _SMALL_READ) \
                    and not _small_glyphs(image[box[1]:box[3], box[0]:box[2]]):
                text_like = False
            # a faint region counts when it matches a hint, or reads confidently as a date or
            # an ID (a digit run: the header may not hold the value burned in)
            anchored = matched or (confident and kind in ("date", "id"))
            # a row of glyphs on a busy background (texture, anatomy; no quiet candidate in it)
            # counts only when read (_busy_kept), or on a hint match
            if busy and not matched and not any(q[4] == bright and _inside(q[:4], (x0, y0, x1, y1)) >= 0.5
                                                for q in quiet) \
                    and not _busy_kept(image, box, bright, reading, confident):
                continue
            if faint and not anchored:
                pending.append((*box, text_like))
            if (faint and not anchored) or not text_like:
                continue
            found.append([box, kind, confident, bright, reading, faint])
            if not faint and kind != "marker" and (confident or matched):    # read as text
                idlines.append((x0, y0, x1, y1, bright))
        # blurred rows of glyphs in the central field of a textured image that made no
        # candidate (no sharp edges: red team 5's sigma-2 name over the anatomy)
        if textured:
            taken = list(cands) + [(*(v // s for v in f[0][:4]), None) for f in found]
            for (x0, y0, x1, y1, bright), box in _sized(_blurred_rows(maps, taken), s, W, H, min_side):
                kind, matched, confident, _, reading = _classify(image, box, bright, hints if has_hints else None,
                                                                 ((x1 - x0) * s, (y1 - y0) * s), False, False, True)
                # a marker read there is left as it is, unboxed (not added as a marker either: a
                # marker stops other boxes' growth, so this pass only ever adds redaction)
                if kind != "marker":
                    found.append([box, kind if (matched or confident) else "other", confident or matched,
                                  bright, reading, False])
        # the other lines of an identifying label on a busy background (a name line whose
        # letters merge at the working scale above the ID line that was read: red team 5)
        for x0, y0, x1, y1, bright in _stacked_lines(rejected, idlines):
            bh = (y1 - y0) * s
            central = x0 >= ww // 8 and x1 <= ww - ww // 8 and y0 >= hw // 8 and y1 <= hw - hw // 8
            px, py = max(4, bh // 4), max(4, (bh * 2) // 5)
            box = (max(0, x0 * s - px), max(0, y0 * s - py), min(W, x1 * s + px), min(H, y1 * s + py))
            if min(box[2] - box[0], box[3] - box[1]) < min_side:
                continue
            kind, matched, confident, text_like, reading = _classify(image, box, bright, hints if has_hints else None,
                                                                    ((x1 - x0) * s, bh), True, textured, central)
            if text_like and kind != "marker":
                found.append([box, kind, confident, bright, reading, False])
                if confident or matched:
                    idlines.append((x0, y0, x1, y1, bright))
        for (x0, y0, x1, y1, bright), box in _sized(turned or (), s, W, H, min_side, vertical=True):
            # vertical text: read turned both ways
            central = x0 >= ww // 8 and x1 <= ww - ww // 8 and y0 >= hw // 8 and y1 <= hw - hw // 8
            lw = (x1 - x0) * s          # its line height
            # read level already (a tall letter of a marker or a name): not read again turned
            if any(_inside(box, f[0]) >= 0.5 for f in found) or _turned_row(image, box, lw) < _ROW:
                continue
            kind, confident, text_like = _classify_turned(image, box, bright, hints if has_hints else None,
                                                          ((y1 - y0) * s, lw), textured, central)
            if text_like:
                found.append([box, kind, confident, bright, "", False])
    _grow_labels(found, pending)
    if faint_out is not None:
        faint_out.extend(q[:4] for q in pending if q[4])
    seen = {id(f): f[0] for f in found}     # the boxes as found, before widening
    _widen_faint(found, W)
    # An unreadable echo of a confidently read line (the other polarity's top-hat picks up
    # the gaps around bright letters), lying at least half inside the read box, is merged
    # into it: the read box grows to cover the echo, and keeps its reading.
    _echo_markers(found, hints if has_hints else None)
    keep = [f for f in found if f[2]]
    for f in found:
        if f[2]:
            continue
        host = next((g for g in keep if g[2] and g[3] != f[3] and _inside(f[0], g[0]) >= 0.5), None)
        if host is None:
            keep.append(f)
        else:
            a, b = host[0], f[0]
            host[0] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    # A marker next to or overlapping identifying text is part of that text (a name split
    # into words, a short name part that reads like a marker): it is redacted with it. "Next
    # to" is judged on the text as found: the widening of a faint label stops at a marker
    # read on its line, and must not make that marker its neighbour.
    changed = True
    while changed:
        changed = False
        for f in keep:
            if f[1] == "marker" and any(g[1] != "marker" and (_same_line_near(f[0], seen.get(id(g), g[0]))
                                                               or _overlaps(f[0], g[0])) for g in keep):
                f[1] = "other"
                changed = True
    # Identifying boxes on one line with a small gap between them are joined: a letter the
    # stroke mask missed between two words is redacted with them.
    red = [f for f in keep if f[1] != "marker"]
    merged = True
    while merged:
        merged = False
        for i, a in enumerate(red):
            for b in red[i + 1:]:
                if _same_line_near(a[0], b[0], overlap_counts=False):
                    x, y = a[0], b[0]
                    a[0] = (min(x[0], y[0]), min(x[1], y[1]), max(x[2], y[2]), max(x[3], y[3]))
                    a[1] = a[1] if a[1] != "other" else b[1]
                    red.remove(b)
                    merged = True
                    break
            if merged:
                break
    keep = [f for f in keep if f[1] == "marker"] + red
    kept = [f[0] for f in keep if f[1] == "marker"]
    for f in red:                       # the mask covers the ink's blur halo, not just its strokes
        f[0] = _pad_to_ink(image, _soft_line(maps, s, f[0], kept))
    return [TextBox(frame, *f[0], f[1]) for f in keep]


_SOFT_REACH = 4          # _soft_line: line heights searched each way along an identifying box's line


def _soft_line(maps, s: int, box: tuple[int, int, int, int], markers: list) -> tuple[int, int, int, int]:
    """An identifying box (image px) grown along its line over the blurred words beside it
    that the stroke mask missed (red team 5: of a 70 px name blurred by sigma 4 over the
    anatomy only "VAN" was boxed; the edges of "NGUYEN" are too soft for the sharp-edge test,
    so its strokes were fragments, and the box found was the other polarity's echo of the gaps
    in "VAN"). In the box's rows, _SOFT_REACH line heights each way, each polarity's top-hat
    above _STRONG without the sharp-edge test, linked along the line:
    a group within half a line height of the box (as grown), at least 0.4 of its height, that
    is a row of glyphs (_glyph_row >= _ROW) and overlaps no kept marker is taken, repeatedly.
    Only around boxes already identifying, so a text-free image without one is never touched;
    the window is a few line heights, so it costs little."""
    H, W = maps[0].shape
    x0, y0, x1, y1 = box[0] // s, box[1] // s, -(-box[2] // s), -(-box[3] // s)
    if y1 - y0 < 2 * _ROW_H[0] or x1 <= x0:
        return box
    lo, hi = x0, x1
    for tophat in maps[:2]:
        a, b = _soft_grow(tophat, s, (x0, y0, x1, y1), markers)
        lo, hi = min(lo, a), max(hi, b)
    if (lo, hi) == (x0, x1):
        return box
    return (min(box[0], lo * s), box[1], max(box[2], hi * s), box[3])


def _soft_grow(tophat: np.ndarray, s: int, wbox: tuple[int, int, int, int], markers: list) -> tuple[int, int]:
    """_soft_line for one polarity: the grown extent (working px) of the line wbox."""
    from scipy import ndimage
    x0, y0, x1, y1 = wbox
    lh = y1 - y0
    X0, X1 = max(0, x0 - _SOFT_REACH * lh), min(tophat.shape[1], x1 + _SOFT_REACH * lh)
    strokes = tophat[y0:y1, X0:X1] >= _STRONG
    linked = _filt(strokes.astype(np.uint8), 5, np.maximum, axes=(1,)).astype(bool)
    lab, n = ndimage.label(linked, structure=np.ones((3, 3), bool))
    groups = []
    for i, sl in enumerate(ndimage.find_objects(lab), 1):
        if sl is None or sl[0].stop - sl[0].start < 0.4 * lh:
            continue
        gx0, gx1 = X0 + sl[1].start, X0 + sl[1].stop
        if gx0 < x0 or gx1 > x1:        # reaching out of the box
            groups.append((gx0, gx1, sl, i))
    lo, hi, grown = x0, x1, True
    while grown:
        grown = False
        for g in list(groups):
            gx0, gx1, sl, i = g
            if gx0 - hi > lh // 2 or lo - gx1 > lh // 2:
                continue
            groups.remove(g)
            region = strokes[sl] & (lab[sl] == i)
            img_box = (gx0 * s, y0 * s, gx1 * s, y1 * s)
            if _glyph_row(region) >= _ROW and not any(_overlaps(img_box, m) for m in markers):
                lo, hi, grown = min(lo, gx0), max(hi, gx1), True
    return lo, hi


_HALO = (6, 2, 3, 4)     # _pad_to_ink: reach max(6, line // 2), least max(3, line // 4)


def _pad_to_ink(image: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """An identifying box grown along its line to cover the ink at its ends: the blur halo of
    its first and last glyphs and the letters its strokes missed (a found box can be an echo
    of the gaps between blurred letters, narrower than they are: red team 3's grey initials).
    Ink: pixels that differ from the background (the median of the box's surroundings) by
    >= 0.3 of the box's own contrast (98th percentile, >= 12 grey levels); the box takes every
    ink group that touches it, within reach (half its line height, >= 6 px), plus 2 px of the
    halo's tail, and grows by at least a quarter of the line height (>= 3 px). Only along the
    line (a vertical box: up and down): across it the finder's padding (2/5 of the line
    height) already holds the glyphs' blur, and growing there runs into the next line."""
    H, W = image.shape
    x0, y0, x1, y1 = box
    level = x1 - x0 >= y1 - y0
    lh = max(1, min(x1 - x0, y1 - y0))
    reach, least = max(_HALO[0], lh // _HALO[1]), max(_HALO[2], lh // _HALO[3])
    rx, ry = (reach, 0) if level else (0, reach)
    X0, Y0, X1, Y1 = max(0, x0 - rx), max(0, y0 - ry), min(W, x1 + rx), min(H, y1 + ry)
    lx, ly = (least, 0) if level else (0, least)
    grown = [x0 - lx, y0 - ly, x1 + lx, y1 + ly]
    win = image[Y0:Y1, X0:X1].astype(np.int16)
    inner = np.zeros(win.shape, bool)
    inner[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = True
    if not inner.all() and inner.any():
        bg = float(np.median(win[~inner]))
        dev = np.abs(win - bg)
        ink = dev >= max(12.0, 0.3 * float(np.percentile(dev[inner], 98)))
        from scipy import ndimage
        lab, _ = ndimage.label(ink, structure=np.ones((3, 3), bool))
        touching = np.unique(lab[inner & ink])
        touching = touching[touching > 0]
        if touching.size:
            ys, xs = np.nonzero(np.isin(lab, touching))
            if level:
                grown[0], grown[2] = min(grown[0], X0 + int(xs.min()) - 2), max(grown[2], X0 + int(xs.max()) + 3)
            else:
                grown[1], grown[3] = min(grown[1], Y0 + int(ys.min()) - 2), max(grown[3], Y0 + int(ys.max()) + 3)
    return (max(0, grown[0]), max(0, grown[1]), min(W, grown[2]), min(H, grown[3]))
