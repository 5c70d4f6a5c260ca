"""Red team 7: identifying values in what the policy keeps because it is "only numbers" or
"only a colour profile" — attacked with real files (pydicom's CT_small, a real ICC profile made
by littleCMS through Pillow), run through ``vindr anonymize`` (the CLI, default profile and
``--burned-in redact``), the OUTPUT and what was printed searched for every planted value as
written, folded, hex, base64, URL-encoded, UTF-16 (both byte orders) and UTF-32.

Found and fixed here:
1. A number array the policy keeps (VR US/SS/UL/SL/FL/FD/AT: numbers were never judged) holding
   the patient's name or ID one character per number: LUTData as US is the name in UTF-16,
   DimensionIndexValues (UL) the ID in UTF-32. A kept binary value (LUTData as OW, an ICC
   profile) holding it as UTF-16 bytes was read only as Latin-1 and UTF-8. The file's person
   values (deid.engine.person_values) are now also searched in numbers (as digits, as one
   character each, as their bytes) and in bytes read as UTF-16, anywhere inside the value, not
   only as a whole token (deid.terms.value_views, TermSet.found_in_value); `vindr audit` (with the
   linkage table) reads numbers the same way (it read "78, 71, ..." as digits only).
2. An ICC profile (ICCProfile, kept by the basic profile for colour images) whose description
   and copyright tags name the hospital and a doctor (UTF-16 'mluc', v4) was kept as it was:
   only the text of people of the same file could be caught, never the hospital's name. The
   profile is now written with its numbers only (deid/icc.py, [icc] of
   schemas/deid/safe_attributes.toml): text tags, unused bytes, the reserved header bytes and
   the profile ID are zeros; the profile still loads and transforms colour the same. `vindr
   audit` reports a profile with text in an output (kind ``binary``).

3. A JPEG frame with a quantization or Huffman table no scan uses, a JPEG 2000 frame with an
   unknown, TLM, PLM (main header) or PLT (tile-part header) segment, holding the name: the
   scan found no text and the frame was copied byte for byte. Those tables and segments are
   now dropped (deid.redact._drop_unused_tables, _clean_j2k), checked to decode the same.
4. With --burned-in off a JPEG frame was copied byte for byte with the name in its COM segment
   and after its end: what a frame holds besides its pixels is now removed in every mode
   (deid.redact.strip_frames; a frame with nothing else in it is not even decoded).
5. `vindr split` printed a bad row's reason with the row's value quoted (a class typed with the
   patient's name), while split_report.json masked it: the table now masks it too
   (release/split_report.py).

6. `vindr split --strict` listed the bad rows with their values quoted in its error
   (annotations/badrows.BadRowsError), and `vindr evaluate` printed them so in its table and
   --json (evaluate/score.py). A reason now quotes no value of the row (annotations/badrows.quote
   writes <value>; a listed name of the label set in effect or a short plain number such as a
   class_id 15 may stay; an unknown class may name the closest listed class), and BadRowsError
   and evaluate mask what they show as split_report.json does (reasons.shown_masked). The line
   number stays.

Left: nothing of this red team's findings.

Held (tests below keep them so): a LUT holding every number up to 32766 for a patient whose ID
is "12345" is kept as it was; the frames of real encoders (pydicom's JPEG and JPEG 2000 files)
lose nothing to the new frame rules; code items whose meaning was a name are written with the
code's own meaning; what `vindr anonymize` printed. Tried and held without a test here (no leak
found): malformed values holding the name (DS, IS, UI, DA, TM, AS, CS, SpecificCharacterSet)
through info, anonymize, audit and decode; UIDs built from the ID and birth date (SOP Class,
Referenced SOP Class, Coding Scheme, Mapping Resource, Frame of Reference, file meta); JPEG-LS
LSE segments (refused); the sample export through the whole chain to a baseline, scanned for
every string of sample_dicoms/planted_phi.json (UTF-16 too): no leak but the recipe's citation
of an author named Nguyen.
"""
from __future__ import annotations

import base64
import io
import struct
import unicodedata
import urllib.parse
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import key_file_in, leaks, read_quietly, run_cli
from test_safe_default import real

NAME, PID, BIRTH = "NGUYỄN^THỊ^HƯƠNG", "BN7734561", "19850312"
HOSPITAL, DOCTOR = "BV BACH MAI 3", "Dr TRAN VAN KHOA 0912345"   # same lengths as the profile's own text
PLANTED = ["NGUYEN THI HUONG", "NGUYỄN THỊ HƯƠNG", "HUONG", "NGUYEN", PID, "7734561", BIRTH,
           HOSPITAL, "BACH MAI", "TRAN VAN KHOA", "0912345"]


def _fold(s: str) -> str:
    s = unicodedata.normalize("NFKD", s.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in s if not unicodedata.combining(c))


def _forms(values) -> set[bytes]:
    out = set()
    for v in values:
        for f in {v, _fold(v), v.replace(" ", ""), _fold(v).replace(" ", "")}:
            for g in (f.upper(), f.lower()):
                out |= {g.encode(), g.encode("utf-16-le"), g.encode("utf-16-be"), g.encode("utf-32-le"),
                        g.encode().hex().encode(), urllib.parse.quote(g).encode()}
        out.add(base64.b64encode(v.encode()).rstrip(b"=")[:-2])
    return {x.lower() for x in out if len(x) >= 5}


def _leaks(root: Path, values, text: str = "") -> list[str]:
    """Where any form of ``values`` appears (ASCII case ignored): a name or a byte under
    ``root``, or ``text``; empty when nothing leaked."""
    return leaks(root, _forms(values), text)


def _icc(desc: str | None = None, cprt: str | None = None) -> bytes:
    """littleCMS's own sRGB profile (v4: text as UTF-16 'mluc'), its description and copyright
    replaced by text of the same length."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    for old, new in (("sRGB built-in", desc), ("No copyright, use freely", cprt)):
        if new is not None:
            o, n = old.encode("utf-16-be"), new.encode("utf-16-be")
            assert len(o) == len(n)
            i = icc.index(o)
            icc[i:i + len(o)] = n
    return bytes(icc)


def _lut(data_elem: DataElement) -> Sequence:
    item = Dataset()
    item.LUTDescriptor = [16, 0, 16]
    item.add(data_elem)
    return Sequence([item])


def _codes(ds: Dataset) -> None:
    """The name written as a code's meaning (a code that exists, DCM 121071 "Finding")."""
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = "121071", "DCM", "NGUYEN THI HUONG"
    ds.AnatomicRegionSequence = Sequence([c])


def _frame_index(ds: Dataset) -> None:
    fc = Dataset()
    fc.DimensionIndexValues = [ord(c) for c in PID]                  # UTF-32 in the file
    item = Dataset()
    item.FrameContentSequence = Sequence([fc])
    ds.PerFrameFunctionalGroupsSequence = Sequence([item])


ATTACKS = {
    "lut_us": lambda ds: setattr(ds, "VOILUTSequence", _lut(DataElement(0x00283006, "US", [ord(c) for c in "NGUYEN THI HUONG"]))),
    "lut_ow": lambda ds: setattr(ds, "VOILUTSequence", _lut(DataElement(0x00283006, "OW", f" {PID} {BIRTH} ".encode("utf-16-le")))),
    "frame_index": _frame_index,
    "icc_person": lambda ds: setattr(ds, "ICCProfile", _icc("HUONG 7734561", "NGUYEN THI HUONG 7734561")),
    "icc_place": lambda ds: setattr(ds, "ICCProfile", _icc(HOSPITAL, DOCTOR)),
    "code_meaning": _codes,
}


def _file(path: Path, attack, *, name=NAME, pid=PID, uid_tail: int) -> None:
    ds = real("CT_small.dcm")
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, pid, BIRTH
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstitutionName = HOSPITAL
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.543.77.{uid_tail}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    attack(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)


RAMP = np.arange(32767, dtype="<u2")      # every number up to 32766 (the most an explicit VR US holds), "12345" among them


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every attack as its own file (one patient), plus a linear LUT of a patient whose ID is
    "0012345", anonymized once by the CLI."""
    base = tmp_path_factory.mktemp("redteam7")
    key = key_file_in(base)
    src = base / "export"
    for i, (label, attack) in enumerate(ATTACKS.items()):
        _file(src / f"{label}.dcm", attack, uid_tail=i + 1)
    _file(src / "ramp.dcm", lambda ds: setattr(ds, "VOILUTSequence", _lut(DataElement(0x00283006, "US", RAMP.tolist()))),
          name="ABCD^EFGH", pid="0012345", uid_tail=99)     # its terms: "abcd", "efgh", "0012345", "12345"
    out = base / "anon"
    p = run_cli("anonymize", src, out, "--key", key, "-j", "1")
    links = {r["input_path"]: r for r in pq.read_table(base / "anon.linkage.parquet").to_pylist()}
    assert all(r["status"] == "ok" for r in links.values()), [(k, r["status"]) for k, r in links.items()]
    return {"base": base, "out": out, "printed": p.stdout + p.stderr, "links": links, "key": key}


def _output(world, label: str) -> Path:
    return world["out"] / world["links"][f"{label}.dcm"]["output"]


# ------------------------------------------------------------------ 1. numbers and UTF-16 bytes

@pytest.mark.parametrize("label", ["lut_us", "lut_ow", "frame_index", "icc_person"])
def test_a_name_or_id_as_numbers_or_utf16_bytes_is_not_in_the_output(world, label):
    """Leaked: LUTData as US (the name in UTF-16), as OW (the ID and birth date in UTF-16
    bytes), DimensionIndexValues as UL (the ID in UTF-32), an ICC profile's text (UTF-16)."""
    assert _leaks(_output(world, label).parent, PLANTED) == []


def test_the_whole_output_and_what_was_printed_hold_no_planted_value(world):
    assert _leaks(world["out"], PLANTED, world["printed"]) == []


def test_a_linear_lut_is_kept_whatever_the_patient_s_id(world):
    """Held: a LUT of every number up to 32766 holds the patient's ID "12345" as one of its numbers,
    and "12345" as characters 0x31-0x35: the search inside numbers reads a table's numbers as
    bytes only and skips runs of consecutive characters, so no false alarm removes the LUT."""
    lut = read_quietly(_output(world, "ramp")).VOILUTSequence[0].LUTData
    assert list(lut) == RAMP.tolist()


def test_a_code_meaning_that_is_a_name_is_written_as_the_code_s_own(world):
    item = read_quietly(_output(world, "code_meaning")).AnatomicRegionSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == ("121071", "DCM", "Finding")


def test_audit_finds_the_name_planted_as_numbers_in_an_output(world, tmp_path):
    """Leaked past the audit: `vindr audit` (with the linkage table) read a number array as its
    digits ("78, 71, ..."), so the name planted as UTF-32 code points was no finding. It now
    reads numbers as the anonymizer does (deid.terms.value_text)."""
    from helpers import audit_after_planting

    def plant(ds):
        fc = Dataset()
        fc.DimensionIndexValues = [ord(c) for c in "ABCD EFGH 0012345"]      # that output's own patient
        item = Dataset()
        item.FrameContentSequence = Sequence([fc])
        ds.PerFrameFunctionalGroupsSequence = Sequence([item])

    report = audit_after_planting(world["out"], world["links"], "ramp.dcm", plant, tmp_path,
                                  linkage=world["base"] / "anon.linkage.parquet")
    assert report.counts().get("phi") == 1
    assert "ABCD" not in repr(report.findings) and "0012345" not in repr(report.findings)


# ------------------------------------------------------------------ 2. ICC profiles: numbers only

def test_an_icc_profile_keeps_its_numbers_and_loses_its_text(world):
    """Leaked: the hospital's name and a doctor's name and phone in the description and
    copyright of a kept ICC profile. Now those tags are empty, and the profile still loads and
    transforms colour exactly as the original."""
    from PIL import Image, ImageCms

    from vindr_cli.deid import icc

    kept = bytes(read_quietly(_output(world, "icc_place")).ICCProfile)
    original = _icc(HOSPITAL, DOCTOR)
    assert kept != original and icc.pack(kept[:128], icc.tags(kept)) == kept   # written again, canonically (icc2)
    assert icc.clean(kept) == kept                         # cleaning again changes nothing
    profile = ImageCms.ImageCmsProfile(io.BytesIO(kept))
    assert ImageCms.getProfileDescription(profile).strip() == ""
    img = Image.fromarray(np.random.default_rng(7).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    lab = ImageCms.createProfile("LAB")

    def through(p):
        return np.asarray(ImageCms.applyTransform(img, ImageCms.buildTransform(p, lab, "RGB", "LAB")))

    assert np.array_equal(through(profile), through(ImageCms.ImageCmsProfile(io.BytesIO(original))))


def test_a_profile_that_is_no_profile_is_refused():
    from vindr_cli.deid import icc

    good = _icc()
    assert icc.clean(good) is not None
    broken = bytearray(good)
    struct.pack_into(">I", broken, 128 + 4 + 4, len(good) + 100)       # first tag's offset past the end
    assert icc.clean(bytes(broken)) is None
    assert icc.clean(b"\0" * 36 + b"acsp" + b"\0" * 90) is None        # no tag table


def test_audit_reports_a_profile_with_text_planted_in_an_output(world, tmp_path):
    from helpers import audit_after_planting

    def plant(ds):
        ds.ICCProfile = _icc(HOSPITAL, DOCTOR)

    report = audit_after_planting(world["out"], world["links"], "icc_place.dcm", plant, tmp_path, kind="binary")
    assert report.counts().get("binary") == 1
    assert _leaks(tmp_path / "none", PLANTED, str(report.counts()) + repr([f for f in report.findings])) == []


# ------------------------------------------------------------------ 3. free bytes inside compressed frames

FRAME_TEXT = b"NGUYEN THI HUONG BN7734561 19850312"


def _segment(marker: bytes, payload: bytes) -> bytes:
    return marker + (len(payload) + 2).to_bytes(2, "big") + payload


def _jpeg_frames() -> dict[str, tuple[str, bytes]]:
    """A text-free CT as JPEG baseline (Pillow) and JPEG 2000 (pydicom/OpenJPEG), each with the
    name where no decoder reads it: a quantization table no component uses, a Huffman table no
    scan uses, an unknown, TLM or PLM segment in the JPEG 2000 main header, a PLT segment in a
    tile-part header."""
    from PIL import Image
    from pydicom.encaps import generate_frames
    from pydicom.uid import JPEG2000Lossless

    from test_redteam4 import _ct, _dataset

    grey = np.round(_ct(256) * 200).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    sos = jpeg.index(b"\xff\xda")
    symbols = (FRAME_TEXT + b" " * 40)[:40]
    dqt = _segment(b"\xff\xdb", bytes([0x03]) + (FRAME_TEXT * 2)[:64])                      # table 3, 8-bit
    dht = _segment(b"\xff\xc4", bytes([0x13]) + bytes([0] * 7 + [40] + [0] * 8) + symbols)   # AC table 3
    ds = _dataset(grey, bits=8)
    ds.compress(JPEG2000Lossless, grey, generate_instance_uid=False)
    j2k = next(generate_frames(ds.PixelData, number_of_frames=1))
    sot = j2k.index(b"\xff\x90")

    def main_header(marker, text=FRAME_TEXT):
        return j2k[:sot] + _segment(marker, text) + j2k[sot:]

    plt = _segment(b"\xff\x58", FRAME_TEXT)
    psot = int.from_bytes(j2k[sot + 6:sot + 10], "big")
    tile = (j2k[:sot + 6] + ((psot + len(plt)) if psot else 0).to_bytes(4, "big") + j2k[sot + 10:sot + 12] + plt
            + j2k[sot + 12:])
    return {"jpeg_unused_dqt": ("jpeg", jpeg[:sos] + dqt + jpeg[sos:]),
            "jpeg_unused_dht": ("jpeg", jpeg[:sos] + dht + jpeg[sos:]),
            "j2k_unknown_marker": ("j2k", main_header(b"\xff\x30", FRAME_TEXT[:26])),   # OpenJPEG skips it
            "j2k_tlm": ("j2k", main_header(b"\xff\x55")),
            "j2k_plm": ("j2k", main_header(b"\xff\x57")),
            "j2k_plt": ("j2k", tile)}


@pytest.fixture(scope="module")
def frames_world(tmp_path_factory):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

    from test_redteam4 import _ct, _dataset
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    base = tmp_path_factory.mktemp("redteam7_frames")
    key = key_file_in(base)
    grey = np.round(_ct(256) * 200).astype(np.uint8)
    before = {}
    for label, (kind, frame) in _jpeg_frames().items():
        ds = _dataset(grey, bits=8)
        ds.PixelData = encapsulate([frame])
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless if kind == "j2k" else JPEGBaseline8Bit
        if kind == "jpeg":
            ds.LossyImageCompression = "01"
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        before[label] = ds.pixel_array.copy()          # the planted bytes change no pixel
        (base / "export").mkdir(exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(base / "export" / f"{label}.dcm", enforce_file_format=True)
    out = base / "anon"
    anonymize(base / "export", out, key_path=key, profile=load_profile("basic"), workers=1,
              linkage=base / "link.parquet")
    links = {r["input_path"]: r for r in pq.read_table(base / "link.parquet").to_pylist()}
    rows = {r["image_id"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    return {"out": out, "before": before,
            "rows": {k[:-4]: rows[v["image_id"]] for k, v in links.items() if v["image_id"] in rows}}


@pytest.mark.parametrize("label", ["jpeg_unused_dqt", "jpeg_unused_dht", "j2k_unknown_marker", "j2k_tlm", "j2k_plm",
                                   "j2k_plt"])
def test_a_name_in_a_frame_s_unused_table_or_skipped_segment_is_not_copied(frames_world, label):
    """Leaked: the scan found no text (there is none in the pixels) and the frame was copied
    byte for byte, the name in a table or segment that no decoder reads. Now those tables and
    segments are dropped (deid.redact._drop_unused_tables, _clean_j2k), the pixels the same."""
    row = frames_world["rows"][label]
    assert row["status"] == "ok", row["reason"]
    raw = (frames_world["out"] / row["output"]).read_bytes()
    assert FRAME_TEXT[:16] not in raw and b"BN7734561" not in raw and b"HUONG" not in raw
    assert row["pixels_modified"]
    res = read_quietly(frames_world["out"] / row["output"])
    assert np.array_equal(res.pixel_array, frames_world["before"][label])


def test_the_frames_of_real_encoders_keep_every_table_and_segment():
    """Held: the JPEG and JPEG 2000 frames of pydicom's test files (GDCM, DCMTK, Pillow/libjpeg,
    Kakadu, OpenJPEG) lose nothing to the new rules: cleaning leaves them byte for byte."""
    from helpers import shipped_frames

    from vindr_cli.deid import redact

    checked = 0
    for name, ds, frames in shipped_frames(redact._T81 | redact._J2K, limit=2):
        ts = str(ds.file_meta.TransferSyntaxUID)
        for frame in frames:
            try:
                if ts in redact._J2K:
                    clean = redact._clean_j2k(frame)
                    assert frame.startswith(clean) and not frame[len(clean):].strip(b"\0\xff"), name
                else:       # what the COM/APPn rules of red team 4 leave: the tables pass keeps it whole
                    with pytest.MonkeyPatch.context() as mp:
                        mp.setattr(redact, "_drop_unused_tables", lambda stream: stream)
                        before = redact._clean_t81(frame)
                    assert redact._drop_unused_tables(before) == before, name
            except redact._Unsure:
                continue        # a stream the walker leaves to a decode-and-write (as before)
            checked += 1
    assert checked >= 20


# ------------------------------------------------------------------ 4. what vindr split prints of a bad row

def _hostile_split(tmp_path, **kw):
    import pandas as pd

    from vindr_cli.release.split import split_dataset

    ids = [f"i{k:03d}" for k in range(30)]
    rows = [f"{i},{'Cardiomegaly,3' if k % 3 == 0 else 'No finding,14'},R1," + ("10,10,50,50" if k % 3 == 0 else ",,,")
            for k, i in enumerate(ids)]
    rows.append("i001,Nodule/Mass Nguyễn Thị Hương,8,R2,10,10,50,50")         # a class typed with the patient's name
    rows.append("i002,Cardiomegaly,BN7734561,R2,10,10,50,50")                 # an ID in class_id
    ann = tmp_path / "a.csv"
    ann.write_text("\n".join(["image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max", *rows]) + "\n",
                   encoding="utf-8")
    meta = tmp_path / "m.csv"
    pd.DataFrame({"image_id": ids, "study_id": [f"s{k}" for k in range(30)], "patient_id": [f"p{k // 2}" for k in range(30)],
                  "rows": 100, "columns": 100}).to_csv(meta, index=False)
    return split_dataset(ann, meta, test_size=8, seed=0, out_dir=tmp_path / "out", **kw)


def test_the_split_table_of_bad_rows_quotes_no_planted_value(tmp_path):
    """Leaked: `vindr split` printed each bad row's reason with the row's value quoted
    ("unknown class 'Nodule/Mass Nguyễn Thị Hương'"), while split_report.json masked it. The
    table now shows the reason as the JSON does (release/split_report.py)."""
    from rich.console import Console

    from vindr_cli.release.split_report import render_split_report

    r = _hostile_split(tmp_path)
    assert len(r.bad_rows) == 2
    buf = io.StringIO()
    render_split_report(r, Console(file=buf, width=300, color_system=None))
    text = buf.getvalue()
    assert "unknown class <value>" in text and "is not an integer" in text
    assert _leaks(tmp_path / "out", PLANTED, text) == []


def test_evaluate_prints_no_planted_value_of_a_bad_row(tmp_path):
    """Leaked: `vindr evaluate` printed each bad row with its value quoted, in its table and its
    --json. A reason now quotes no value of the row (annotations/badrows.quote) and evaluate
    shows it as split_report.json does (EvalResult.shown_bad_rows): the line and vindr's words
    stay, and a listed class name or a short class_id may still be named."""
    import json

    from rich.console import Console

    from vindr_cli.evaluate.score import evaluate, render, to_json

    gt, pred = tmp_path / "gt.csv", tmp_path / "pred.csv"
    gt.write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                  "img1,Cardiomegaly,3,R1,10,10,50,50\nimg2,No finding,14,R1,,,,\n"
                  "img3,Nodule/Mass Nguyễn Thị Hương,8,R1,10,10,50,50\n"
                  "img1,Cardiomegaly,15,R2,10,10,50,50\n", encoding="utf-8")
    pred.write_text("image_id,PredictionString\nimg1,3 0.9 10 10 50 50\nimg2,14 1 0 0 1 1\n"
                    "img3,Huong 0.9 10 10 50 50\n", encoding="utf-8")
    result = evaluate(gt, pred)
    assert [(b.source, b.line) for b in result.bad_rows] == [("gt", 4), ("gt", 5), ("pred", 4)]
    buf = io.StringIO()
    render(result, Console(file=buf, width=300, color_system=None))
    assert _leaks(tmp_path / "none", PLANTED, buf.getvalue() + to_json(result)) == []
    shown = [(b["source"], b["line"], b["reason"]) for b in json.loads(to_json(result))["bad_rows"]]
    assert shown[0][:2] == ("gt", 4) and shown[0][2].startswith("unknown class <value>; label set vinbigdata allows: ")
    assert shown[1] == ("gt", 5, "class_id '15' does not match class 'Cardiomegaly' (id 3 in label set vinbigdata)")
    assert shown[2] == ("pred", 4, "unknown class id <value> (0..14 in label set vinbigdata)")
    assert "(other reason)" not in buf.getvalue() and "line" in buf.getvalue()


def test_split_strict_error_quotes_no_planted_value(tmp_path):
    """Leaked: `vindr split --strict` listed the bad rows with their values quoted in its error
    (BadRowsError's message and details). They now name the line and show <value>."""
    from vindr_cli.annotations.badrows import BadRowsError

    with pytest.raises(BadRowsError) as e:
        _hostile_split(tmp_path, strict=True)
    assert _leaks(tmp_path / "none", PLANTED, str(e.value) + "\n".join(e.value.details)) == []
    assert e.value.details[0].startswith("line 32: unknown class <value>; label set vinbigdata allows: ")
    assert e.value.details[1] == "line 33: class_id <value> is not an integer"
    assert len(e.value.bad_rows) == 2 and "line 32" in str(e.value)


# ------------------------------------------------------------------ 5. --burned-in off and compressed frames

def test_burned_in_off_still_strips_what_a_frame_holds_besides_pixels(tmp_path):
    """Leaked: with --burned-in off (pixels not scanned) a JPEG frame was copied byte for byte,
    the name in its COM segment and after its end. What a frame holds besides its pixels is no
    burned-in text: it is now removed in every mode (deid.redact.strip_frames), checked to decode
    to the same values; a frame with nothing besides its pixels is still copied byte for byte."""
    from PIL import Image
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import JPEGBaseline8Bit

    from test_redteam4 import _ct, _dataset
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    grey = np.round(_ct(256) * 200).astype(np.uint8)
    key = key_file_in(tmp_path)
    frames = {}
    for label, comment in (("named", FRAME_TEXT), ("plain", None)):
        buf = io.BytesIO()
        Image.fromarray(grey).save(buf, "JPEG", quality=90, **({"comment": comment} if comment else {}))
        frame = buf.getvalue() + (FRAME_TEXT if comment else b"")
        ds = _dataset(grey, bits=8)
        ds.PixelData = encapsulate([frame])
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        frames[label] = (frame, ds.pixel_array.copy())
        (tmp_path / "export").mkdir(exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(tmp_path / "export" / f"{label}.dcm", enforce_file_format=True)
    out = tmp_path / "anon"
    anonymize(tmp_path / "export", out, key_path=key, profile=load_profile("basic"), workers=1, burned_in="off",
              linkage=tmp_path / "link.parquet")
    links = {r["input_path"]: r for r in pq.read_table(tmp_path / "link.parquet").to_pylist()}
    rows = {r["image_id"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    for label, (frame, pixels) in frames.items():
        row = rows[links[f"{label}.dcm"]["image_id"]]
        assert row["status"] == "ok" and row["pixels_modified"] == (label == "named"), (label, row["reason"])
        raw = (out / row["output"]).read_bytes()
        assert b"HUONG" not in raw and b"BN7734561" not in raw
        res = read_quietly(out / row["output"])
        assert np.array_equal(res.pixel_array, pixels) and res.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
        if label == "plain":
            got = next(generate_frames(res.PixelData, number_of_frames=1))
            assert got.startswith(frame) and not got[len(frame):].strip(b"\0")      # (an even length)
