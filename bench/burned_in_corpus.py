"""Build the burned-in text corpus: real public radiographs with text drawn into the pixels.

Sources are real images only: pydicom's bundled test files that resolve locally
(CT_small, MR_small, ...) and, when the wheel is there, the radiographs of the PyPI
package `pydicom-data` (RG1/RG3 CR chest films, MR2, 693 CT, NM), read straight
from the wheel with zipfile (never downloaded here). Each corpus image is a crop /
flip of a source, resized to SIZE x SIZE (default 2048: the CPU figure is per 2k x 2k
radiograph), written as CR (MONOCHROME1) or DX (MONOCHROME2) with 8-16 bits stored in
one of five transfer syntaxes (explicit / implicit VR LE, RLE, JPEG 2000 lossless,
JPEG lossless SV1; the encoders of vindr_cli.synth.encode).

One image in five carries text (TEXT_SHARE), drawn with PIL TrueType fonts
(DejaVu Sans / Serif / Mono, Noto Mono when present) at 10-48 px: the patient's name
(with and without Vietnamese diacritics), IDs, dates, the hospital - white on the dark
film at the corners, or dark on a light label box - and markers (L, R, PA, AP, ERECT,
TRÁI, PHẢI, kV/mAs figures) that a redactor must keep. The header carries the hints
consistent with the drawn text (PatientName, PatientID, dates, InstitutionName,
AccessionNumber), as a console would write them.

Truth: OUT/truth.json (per image: class, source, encoding, hints, and per string its
kind, box [x0, y0, x1, y1) in pixel coordinates, font, size, style; the string itself
is stored there for the re-OCR judge but is never printed) and OUT/truth_masks.npz
(the drawn glyph mask of each string, cropped to its box). Images live in
OUT/with_text/ and OUT/no_text/ so the bench can time each class.

Deterministic for a given seed (numpy Generator + PIL; bytes may differ across
encoder or FreeType versions, the truth always matches the pixels written).

Usage: python bench/burned_in_corpus.py OUT [--images 100] [--size 2048] [--seed 10]
       [--pydicom-data WHEEL | --no-wheel]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
)

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vindr_cli.synth.encode import set_pixels  # noqa: E402

WHEEL = Path("/tmp/pdd/pydicom_data-1.0.0-py3-none-any.whl")
WHEEL_SOURCES = ("RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm", "JPEG2000_UNC.dcm")
LOCAL_SOURCES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"),
             Path("/usr/share/fonts/truetype/liberation2"), Path("/usr/share/fonts/truetype/noto"))
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
              "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf", "LiberationSans-Regular.ttf",
              "LiberationSerif-Regular.ttf", "LiberationMono-Regular.ttf", "NotoMono-Regular.ttf")
SIZES = (10, 12, 14, 16, 20, 24, 28, 32, 40, 48)
SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEG2000Lossless, JPEGLosslessSV1)
BITS = (8, 10, 12, 14, 16)
TEXT_SHARE = 5  # one image in TEXT_SHARE carries text
CR, DX = "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1"

FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương")
MIDDLE = ("Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Xuân", "Thu")
GIVEN = ("An", "Bình", "Cường", "Dũng", "Hương", "Hạnh", "Khoa", "Lan", "Mai", "Nhung", "Phúc", "Quân",
         "Sơn", "Thảo", "Tuấn", "Vy", "Yến", "Đạt", "Hải", "Linh")
HOSPITALS = ("Bệnh viện Bạch Mai", "BV Chợ Rẫy", "Bệnh viện Đa khoa Tỉnh Nghệ An", "BV Nhi Trung Ương",
             "Bệnh viện Hữu Nghị Việt Đức", "BV Đại học Y Dược TP.HCM", "Bệnh viện 108")
MARKERS = ("L", "R", "PA", "AP", "ERECT", "SUPINE", "TRÁI", "PHẢI", "ĐỨNG", "NẰM")
KIND_IDENTIFYING = ("name", "id", "date", "hospital")


def fold(text: str) -> str:
    """Accent-folded (Vietnamese đ/Đ included), as consoles without a Unicode font print."""
    import unicodedata
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


# ---------------------------------------------------------------- sources

def _display(ds: Dataset) -> np.ndarray:
    """Source pixels as float32 in [0, 1], bright = dense (the MONOCHROME2 sense)."""
    arr = ds.pixel_array.astype(np.float32)
    if arr.ndim == 3:
        arr = arr[0]
    lo, hi = np.percentile(arr, (0.5, 99.5))
    arr = np.clip((arr - lo) / max(hi - lo, 1.0), 0.0, 1.0)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        arr = 1.0 - arr
    return arr.astype(np.float32)


def _pydicom_data_dir() -> Path | None:
    """The installed pydicom-data package's files (the `bench` extra), if any."""
    import importlib.util
    spec = importlib.util.find_spec("data_store")
    if spec and spec.origin and (Path(spec.origin).parent / "data").is_dir():
        return Path(spec.origin).parent / "data"
    return None


def load_sources(use_wheel: bool = True, wheel: Path | None = None) -> list[tuple[str, np.ndarray]]:
    """(label, display array) for every source image that resolves locally: the pydicom-data
    wheel read as a zip (`wheel`, default WHEEL) or else the installed package, then pydicom's
    bundled test files."""
    out: list[tuple[str, np.ndarray]] = []
    wheel = wheel or WHEEL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if use_wheel and wheel.is_file():
            with zipfile.ZipFile(wheel) as z:
                names = {Path(n).name: n for n in z.namelist()}
                for name in WHEEL_SOURCES:
                    if name in names:
                        out.append((name, _display(pydicom.dcmread(io.BytesIO(z.read(names[name]))))))
        elif use_wheel and (data := _pydicom_data_dir()) is not None:
            for name in WHEEL_SOURCES:
                if (data / name).is_file():
                    out.append((name, _display(pydicom.dcmread(data / name))))
        from pydicom.data import get_testdata_file
        for name in LOCAL_SOURCES:
            path = get_testdata_file(name, download=False)
            if path:
                out.append((name, _display(pydicom.dcmread(path))))
    if not out:
        raise SystemExit("no source image resolves locally (pydicom test files / pydicom-data wheel)")
    return out


def fonts() -> list[Path]:
    found = [d / f for f in FONT_FILES for d in FONT_DIRS if (d / f).is_file()]
    if not found:
        raise SystemExit("no TrueType font: apt-get install -y fonts-dejavu-core")
    return found


# ---------------------------------------------------------------- drawing

@dataclass
class Drawn:
    text: str
    kind: str          # name | id | date | hospital | marker
    box: tuple[int, int, int, int]
    font: str
    size: int
    style: str         # light_on_dark | dark_on_label
    mask: np.ndarray   # bool, box-shaped: where glyphs were drawn


def _render(text: str, font: ImageFont.FreeTypeFont) -> np.ndarray:
    """Anti-aliased coverage (float 0..1) of `text`, tight to its ink."""
    x0, y0, x1, y1 = font.getbbox(text)
    img = Image.new("L", (max(x1 - x0, 1) + 2, max(y1 - y0, 1) + 2), 0)
    ImageDraw.Draw(img).text((1 - x0, 1 - y0), text, font=font, fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


class Canvas:
    def __init__(self, display: np.ndarray, rng: np.random.Generator, font_files: list[Path],
                 ink: bool = True) -> None:
        self.d, self.rng, self.fonts, self.ink = display, rng, font_files, ink
        self.drawn: list[Drawn] = []
        self.taken: list[tuple[int, int, int, int]] = []

    def _free(self, box) -> bool:
        x0, y0, x1, y1 = box
        h, w = self.d.shape
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            return False
        return all(x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0 for a0, b0, a1, b1 in self.taken)

    def _font(self, size: int) -> tuple[str, ImageFont.FreeTypeFont]:
        path = self.fonts[int(self.rng.integers(len(self.fonts)))]
        return path.name, ImageFont.truetype(str(path), size)

    def text_at(self, text: str, kind: str, x: int, y: int, size: int, style: str, anchor: str = "tl") -> bool:
        """Draw `text` with its top-left (anchor tl) or top-right (tr) at x, y; False if no room."""
        fname, font = self._font(size)
        cov = _render(text, font)
        h, w = cov.shape
        pad = max(2, size // 4)
        if anchor == "tr":
            x -= w
        box = (x, y, x + w, y + h)
        outer = (x - pad, y - pad, x + w + pad, y + h + pad)
        if not self._free(outer):
            return False
        # with ink=False the same random draws are made and nothing is painted (tests: the
        # difference of the two builds is exactly what was drawn)
        target = self.d if self.ink else self.d.copy()
        if style == "dark_on_label":
            ox0, oy0, ox1, oy1 = outer
            target[oy0:oy1, ox0:ox1] = 0.85 + 0.1 * float(self.rng.random())
            ink = 0.05 + 0.1 * float(self.rng.random())
        else:
            ink = 0.9 + 0.1 * float(self.rng.random())
        region = target[y:y + h, x:x + w]
        region[...] = region * (1.0 - cov) + ink * cov
        self.taken.append(outer)
        self.drawn.append(Drawn(text, kind, box, fname, size, style, cov >= 0.5))
        return True


def _person(rng: np.random.Generator) -> tuple[str, str, str]:
    fam, mid, giv = (a[int(rng.integers(len(a)))] for a in (FAMILY, MIDDLE, GIVEN))
    return fam, mid, giv


def _date(rng: np.random.Generator, y0: int, y1: int) -> tuple[int, int, int]:
    return int(rng.integers(y0, y1)), int(rng.integers(1, 13)), int(rng.integers(1, 29))


def identity(rng: np.random.Generator, index: int) -> dict:
    fam, mid, giv = _person(rng)
    by, bm, bd = _date(rng, 1935, 2015)
    sy, sm, sd = _date(rng, 2019, 2025)
    return {"family": fam, "middle": mid, "given": giv, "patient_id": f"{int(rng.integers(10**7, 10**8))}",
            "birth": (by, bm, bd), "study": (sy, sm, sd), "accession": f"XQ{sy % 100:02d}{index:06d}",
            "hospital": HOSPITALS[int(rng.integers(len(HOSPITALS)))]}


def text_lines(rng: np.random.Generator, ident: dict) -> list[tuple[str, str]]:
    """(text, kind) lines a console would burn in, in varying forms."""
    fam, mid, giv = ident["family"], ident["middle"], ident["given"]
    full = f"{fam} {mid} {giv}"
    name = [full.upper(), full, fold(full).upper(), f"{fold(fam).upper()}^{fold(mid).upper()} {fold(giv).upper()}"][int(rng.integers(4))]
    by, bm, bd = ident["birth"]
    sy, sm, sd = ident["study"]
    dob = [f"{bd:02d}/{bm:02d}/{by}", f"NS: {by}", f"DOB {by}-{bm:02d}-{bd:02d}"][int(rng.integers(3))]
    study = [f"{sd:02d}/{sm:02d}/{sy}", f"{sy}{sm:02d}{sd:02d}", f"{sy}-{sm:02d}-{sd:02d} 08:{int(rng.integers(60)):02d}"][int(rng.integers(3))]
    pid = [f"ID: {ident['patient_id']}", f"BN{ident['patient_id']}", f"PID {ident['patient_id']}"][int(rng.integers(3))]
    hosp = ident["hospital"] if rng.random() < 0.5 else fold(ident["hospital"]).upper()
    lines = [(name, "name"), (pid, "id"), (dob, "date"), (study, "date"), (hosp, "hospital"),
             (ident["accession"], "id")]
    keep = max(3, int(rng.integers(3, len(lines) + 1)))
    order = [0] + sorted(int(i) for i in rng.choice(np.arange(1, len(lines)), keep - 1, replace=False))
    return [lines[i] for i in order]


def draw_text(canvas: Canvas, rng: np.random.Generator, ident: dict, scale: float) -> None:
    h, w = canvas.d.shape
    lines = text_lines(rng, ident)
    size = int(rng.choice(SIZES))
    size = max(10, min(48, int(round(size * scale)))) if scale < 1 else size
    margin = max(4, w // 64)
    layout = ["corner", "label"][int(rng.integers(2))]
    if layout == "corner":
        corners = [(margin, margin, "tl"), (w - margin, margin, "tr"), (margin, h // 2 + h // 4, "tl"),
                   (w - margin, h // 2 + h // 4, "tr")]
        cx, cy, anchor = corners[int(rng.integers(len(corners)))]
        style = "light_on_dark"
        for text, kind in lines:
            if canvas.text_at(text, kind, cx, cy, size, style, anchor):
                cy += int(size * 1.5) + 2
    else:
        cx, cy = margin + size, h - margin - int(len(lines) * size * 1.6) - size
        for text, kind in lines:
            if canvas.text_at(text, kind, cx, cy, size, "dark_on_label"):
                cy += int(size * 1.6)
    # markers: side letter near a lateral edge, a view / position word, sometimes technique figures
    msize = int(rng.choice((16, 24, 32, 40, 48)))
    msize = max(10, int(round(msize * scale))) if scale < 1 else msize
    side = MARKERS[int(rng.integers(2))] if rng.random() < 0.5 else ("TRÁI" if rng.random() < 0.5 else "PHẢI")
    canvas.text_at(side, "marker", w - margin - 2 * msize if layout == "corner" else w // 2, h // 3, msize, "light_on_dark")
    view = MARKERS[int(rng.integers(2, len(MARKERS)))]
    canvas.text_at(view, "marker", w // 2 - msize, margin, msize, "light_on_dark")
    if rng.random() < 0.5:
        canvas.text_at(f"{int(rng.integers(60, 125))} kV {int(rng.integers(1, 40)) / 2:.1f} mAs", "marker",
                       w - margin, h - margin - msize * 2, max(10, msize // 2), "light_on_dark", "tr")


# ---------------------------------------------------------------- encoding

def _uid(rng: np.random.Generator) -> str:
    return "2.25." + str(int.from_bytes(rng.bytes(15), "big"))


def to_stored(display: np.ndarray, bits: int, photometric: str) -> np.ndarray:
    top = (1 << bits) - 1
    v = display if photometric == "MONOCHROME2" else 1.0 - display
    out = np.rint(np.clip(v, 0.0, 1.0) * top)
    return out.astype(np.uint8 if bits == 8 else np.uint16)


def dataset(ident: dict, stored: np.ndarray, bits: int, photometric: str, rng: np.random.Generator,
            with_text: bool) -> Dataset:
    sop_class = CR if photometric == "MONOCHROME1" else DX
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(rng)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = "2.25.1234567890123456789"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Modality = "CR" if sop_class == CR else "DX"
    ds.PatientName = f"{ident['family']}^{ident['middle']} {ident['given']}".upper()
    ds.PatientID = ident["patient_id"]
    by, bm, bd = ident["birth"]
    sy, sm, sd = ident["study"]
    ds.PatientBirthDate = f"{by}{bm:02d}{bd:02d}"
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = f"{sy}{sm:02d}{sd:02d}"
    ds.StudyTime = "080000"
    ds.AccessionNumber = ident["accession"]
    ds.InstitutionName = ident["hospital"]
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(rng), _uid(rng)
    ds.BodyPartExamined = "CHEST"
    if sop_class == DX:
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageType = ["DERIVED", "PRIMARY"]
    if rng.random() < 0.5:
        ds.BurnedInAnnotation = "NO"   # consoles that burn text in often say NO or nothing
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.WindowCenter, ds.WindowWidth = (1 << bits) // 2, (1 << bits) - 1
    return ds


# ---------------------------------------------------------------- build

def _source_view(src: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    h, w = src.shape
    ch, cw = int(h * (0.8 + 0.2 * rng.random())), int(w * (0.8 + 0.2 * rng.random()))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = src[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    img = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32), mode="F").resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32).copy()


def build(out: Path, images: int = 100, size: int = 2048, seed: int = 10, use_wheel: bool = True,
          text_share: int = TEXT_SHARE, ink: bool = True, wheel: Path | None = None) -> dict:
    """Write the corpus under `out`; return the truth dict (also written to out/truth.json)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    sources, font_files = load_sources(use_wheel, wheel), fonts()
    masks: dict[str, np.ndarray] = {}
    truth: dict = {"seed": seed, "size": size, "sources": [label for label, _ in sources], "images": []}
    for sub in ("with_text", "no_text"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(images):
        with_text = i % text_share == 0
        label, src = sources[i % len(sources)]
        display = _source_view(src, rng, size)
        canvas = Canvas(display, rng, font_files, ink)
        ident = identity(rng, i)
        if with_text:
            draw_text(canvas, rng, ident, size / 2048)
        photometric = ("MONOCHROME1", "MONOCHROME2")[i % 2]
        bits = BITS[(i // 2) % len(BITS)]
        syntax = SYNTAXES[(i // 3) % len(SYNTAXES)]
        stored = to_stored(canvas.d, bits, photometric)
        ds = dataset(ident, stored, bits, photometric, rng, with_text)
        set_pixels(ds, stored, syntax)
        rel = f"{'with_text' if with_text else 'no_text'}/img{i:04d}.dcm"
        ds.save_as(out / rel, enforce_file_format=True)
        strings = []
        for j, d in enumerate(canvas.drawn):
            key = f"m{i}_{j}"
            masks[key] = d.mask
            strings.append({"text": d.text, "kind": d.kind, "identifying": d.kind in KIND_IDENTIFYING,
                            "box": list(d.box), "font": d.font, "size": d.size, "style": d.style, "mask": key})
        truth["images"].append({
            "file": rel, "sop_uid": ds.SOPInstanceUID, "class": "with_text" if with_text else "no_text",
            "source": label, "rows": size, "cols": size, "photometric": photometric, "bits_stored": bits,
            "transfer_syntax": str(syntax), "burned_in_annotation": str(ds.get("BurnedInAnnotation", "")),
            "hints": {"PatientName": str(ds.PatientName), "PatientID": ds.PatientID,
                      "PatientBirthDate": ds.PatientBirthDate, "StudyDate": ds.StudyDate,
                      "AccessionNumber": ds.AccessionNumber, "InstitutionName": ds.InstitutionName},
            "strings": strings, "pad": {s["mask"]: max(2, s["size"] // 4) for s in strings},
        })
    np.savez_compressed(out / "truth_masks.npz", **masks)
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    return truth


def load_truth(out: Path) -> tuple[dict, dict[str, np.ndarray]]:
    out = Path(out)
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    with np.load(out / "truth_masks.npz") as z:
        masks = {k: z[k] for k in z.files}
    return truth, masks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--pydicom-data", type=Path, default=None, help=f"the pydicom-data wheel (default {WHEEL}, else the installed package)")
    ap.add_argument("--no-wheel", action="store_true", help="pydicom's bundled files only")
    a = ap.parse_args()
    truth = build(a.out, a.images, a.size, a.seed, not a.no_wheel, wheel=a.pydicom_data)
    n_text = sum(im["class"] == "with_text" for im in truth["images"])
    n_str = sum(len(im["strings"]) for im in truth["images"])
    print(f"{len(truth['images'])} images ({n_text} with text, {n_str} strings drawn) in {a.out}; truth in truth.json")


if __name__ == "__main__":
    main()
