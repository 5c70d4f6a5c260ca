"""The fixed plan of the sample export: which patients, studies and images exist.

Each image line chooses a view, transfer syntax, photometric interpretation,
bit depth and size so that together they cover every combination the
anonymizer must handle. Extras switch on special content (overlay, curve,
VOI LUT, rescale, padding, truncation...).
"""
from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import (
    ExplicitVRLittleEndian as EXPLICIT,
    ImplicitVRLittleEndian as IMPLICIT,
    JPEG2000Lossless as J2K,
    JPEGLosslessSV1 as JPEG_LL,
    RLELossless as RLE,
)

from vindr_cli.synth.phi import PATIENTS, SELECTION_PATIENTS, Patient

M1, M2 = "MONOCHROME1", "MONOCHROME2"
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
RF_STORAGE = "1.2.840.10008.5.1.4.1.1.12.2"  # X-Ray Radiofluoroscopic Image (multi-frame)
SOP_CLASSES = {"CR": CR_STORAGE, "DX": DX_STORAGE, "CT": CT_STORAGE, "MR": MR_STORAGE, "RF": RF_STORAGE}
TOMO = ("CT", "MR")  # cross-sectional series built from pydicom's bundled CT_small / MR_small (synth/tomo.py)

CHEST_FRONT, CHEST_LAT = (320, 288), (320, 288)
CHEST_SMALL = (288, 256)
LSPINE_AP, LSPINE_LAT = (384, 256), (384, 288)
CSPINE = (320, 256)
CT_SLICE, MR_SLICE, RF_FRAME = (128, 128), (64, 64), (128, 128)


@dataclass(frozen=True)
class ImageSpec:
    view: str  # PA, AP, LL (chest lateral) or LATERAL (spine)
    transfer_syntax: str
    photometric: str
    bits_stored: int
    shape: tuple[int, int]  # rows, cols
    ext: str = ".dcm"
    extras: frozenset[str] = frozenset()  # overlay curve voi_lut rescale padding two_windows comments truncate
    #                                         burned_in_corners burned_in_label (synth/burned_in.py)
    #                                         blank (constant pixels), duplicate (the previous image of the
    #                                         study stored again, new SOP UID), frames3 (multi-frame, RF)


@dataclass(frozen=True)
class StudySpec:
    date: str
    time: str
    body_part: str  # CHEST, LSPINE, CSPINE, KNEE (MR)
    modality: str  # CR, DX, CT, MR or RF
    images: tuple[ImageSpec, ...]
    container: str = "plain"  # plain, zip or dicomdir
    extras: frozenset[str] = frozenset()  # secondary_capture report zero_byte name_in_description history
    body_part_tag: str = ""  # BodyPartExamined as the device wrote it (a synonym such as THORAX), else body_part

    @property
    def body_part_examined(self) -> str:
        return self.body_part_tag or self.body_part


@dataclass(frozen=True)
class PatientPlan:
    patient: Patient
    studies: tuple[StudySpec, ...]


def img(view, ts, photometric, bits, shape, ext=".dcm", *extras) -> ImageSpec:
    return ImageSpec(view, ts, photometric, bits, shape, ext, frozenset(extras))


def study(date, time, body_part, modality, *images, container="plain", extras=(), tag="") -> StudySpec:
    return StudySpec(date, time, body_part, modality, tuple(images), container, frozenset(extras), tag)


def sample_plan() -> tuple[PatientPlan, ...]:
    """The committed sample export: 10 patients, 23 studies (two with burned-in text; the last
    three patients hold what `vindr select` must tell apart, see selection_truth.json)."""
    an, bich, phuc, duc, huong, bao, mai = PATIENTS
    khang, thu, long = SELECTION_PATIENTS
    return (
        PatientPlan(an, (
            study("20240115", "083015", "CHEST", "CR",
                  img("PA", EXPLICIT, M1, 12, CHEST_FRONT, ".dcm", "overlay", "comments", "two_windows"),
                  img("LL", JPEG_LL, M1, 12, CHEST_LAT),
                  extras=("secondary_capture", "report", "name_in_description")),
            study("20240620", "141002", "CHEST", "DX",
                  img("PA", J2K, M2, 14, (384, 352), ".dcm", "voi_lut")),
        )),
        PatientPlan(bich, (
            study("20230905", "101544", "LSPINE", "CR",
                  img("AP", RLE, M1, 12, LSPINE_AP),
                  img("LATERAL", IMPLICIT, M1, 12, LSPINE_LAT, "", "rescale"),
                  extras=("name_in_description", "history")),
            study("20240219", "090512", "CHEST", "DX",
                  img("PA", EXPLICIT, M2, 16, CHEST_SMALL, ".dcm", "curve")),
        )),
        PatientPlan(phuc, (
            study("20240308", "153020", "CSPINE", "DX",
                  img("AP", J2K, M2, 14, CSPINE),
                  img("LATERAL", JPEG_LL, M2, 14, CSPINE),
                  img("LATERAL", RLE, M2, 14, CSPINE, "")),
            study("20240322", "074533", "CHEST", "DX",
                  img("AP", IMPLICIT, M2, 12, CHEST_FRONT, ".dcm", "padding")),
        )),
        PatientPlan(duc, (
            study("20231201", "110010", "CHEST", "CR",
                  img("PA", RLE, M1, 16, CHEST_FRONT),
                  img("LL", EXPLICIT, M1, 12, CHEST_SMALL, ".DCM"),
                  extras=("history",)),
            study("20240410", "093045", "CHEST", "CR",
                  img("PA", J2K, M1, 12, CHEST_FRONT, "", "comments")),
            study("20241028", "160501", "CHEST", "DX",
                  img("AP", JPEG_LL, M2, 16, CHEST_FRONT)),
        )),
        PatientPlan(huong, (
            study("20240514", "084517", "LSPINE", "DX",
                  img("AP", EXPLICIT, M2, 14, LSPINE_AP),
                  img("LATERAL", J2K, M2, 14, LSPINE_LAT)),
            study("20240702", "100003", "CHEST", "CR",
                  img("PA", JPEG_LL, M1, 12, CHEST_SMALL),
                  img("LL", RLE, M1, 12, CHEST_SMALL),
                  container="zip"),
        )),
        PatientPlan(bao, (
            study("20240201", "081522", "LSPINE", "CR",
                  img("AP", JPEG_LL, M1, 12, LSPINE_AP, ""),
                  img("LATERAL", RLE, M1, 12, LSPINE_LAT)),
            study("20240815", "130040", "CHEST", "DX",
                  img("PA", IMPLICIT, M2, 12, CHEST_FRONT),
                  img("PA", EXPLICIT, M2, 12, CHEST_FRONT, ".dcm", "truncate"),
                  extras=("zero_byte",)),
        )),
        PatientPlan(mai, (
            study("20240912", "102009", "CHEST", "DX",
                  img("PA", EXPLICIT, M2, 12, CHEST_FRONT),
                  img("LL", J2K, M2, 12, CHEST_LAT),
                  container="dicomdir"),
            # burned-in text (synth/burned_in.py): last in the plan, so the files before keep their bytes
            study("20250110", "091500", "CHEST", "CR",
                  img("PA", RLE, M1, 12, CHEST_FRONT, ".dcm", "burned_in_corners")),
            study("20250305", "160020", "CHEST", "DX",
                  img("AP", EXPLICIT, M2, 14, CHEST_FRONT, ".dcm", "burned_in_label")),
        )),
        # issue 11 (vindr select): appended last, so every file above keeps its bytes
        PatientPlan(khang, (  # a child of 6: pediatric, not in an adult chest selection
            study("20240920", "081230", "CHEST", "CR",
                  img("PA", J2K, M1, 12, CHEST_SMALL)),
        )),
        PatientPlan(thu, (
            # one radiograph sent twice (a re-send with a new SOP UID): native and JPEG 2000 lossless
            study("20240604", "094510", "CHEST", "DX",
                  img("PA", EXPLICIT, M2, 12, CHEST_SMALL),
                  img("PA", J2K, M2, 12, CHEST_SMALL, ".dcm", "duplicate")),
            study("20240611", "143300", "CHEST", "CT",
                  *(img("AXIAL", EXPLICIT, M2, 12, CT_SLICE) for _ in range(3))),
            study("20241120", "154500", "CHEST", "CR",  # an empty plate: constant pixels
                  img("PA", RLE, M1, 12, CHEST_SMALL, ".dcm", "blank")),
        )),
        PatientPlan(long, (
            study("20241105", "102040", "CHEST", "CR",  # BodyPartExamined THORAX: still a chest
                  img("PA", J2K, M1, 12, CHEST_FRONT), tag="THORAX"),
            study("20241203", "111500", "CHEST", "RF",  # a fluoroscopy run: one object, three frames
                  img("AP", RLE, M2, 10, RF_FRAME, ".dcm", "frames3")),
            study("20250218", "200115", "KNEE", "MR",
                  *(img("AXIAL", EXPLICIT, M2, 12, MR_SLICE) for _ in range(2))),
        )),
    )
