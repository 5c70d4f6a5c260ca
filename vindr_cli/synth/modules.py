"""Standard DICOM IOD modules for the synthetic CR / DX / SC images.

Each function fills one module (PS3.3) of a pydicom Dataset from an
ImageContext. Identifying values come from the fake identities in phi.py.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from vindr_cli.synth.phi import Patient
from vindr_cli.synth.plan import ImageSpec, StudySpec

# Detached Study Management (retired): the class most exports put in ReferencedStudySequence.
STUDY_ROOT_REF_CLASS = "1.2.840.10008.3.1.2.3.1"
ANATOMY = {
    "CHEST": ("43799004", "SCT", "Chest"),
    "LSPINE": ("122496007", "SCT", "Lumbar spine"),
    "CSPINE": ("122494005", "SCT", "Cervical spine"),
    "KNEE": ("72696002", "SCT", "Knee"),
}
VIEW_CODES = {  # CID 4010 DX View, legacy SNOMED-RT codes as carried by most devices
    "PA": ("R-10214", "SRT", "postero-anterior"),
    "AP": ("R-10206", "SRT", "antero-posterior"),
    "LL": ("R-10236", "SRT", "left lateral"),
    "LATERAL": ("R-10236", "SRT", "left lateral"),
}
STUDY_TITLES = {
    "CHEST": "XQ ngực",
    "LSPINE": "XQ cột sống thắt lưng",
    "CSPINE": "XQ cột sống cổ",
}
MODALITY_TITLES = {("CT", "CHEST"): "CT ngực", ("MR", "KNEE"): "MRI khớp gối", ("RF", "CHEST"): "Chiếu X-quang ngực"}
MODELS = {"CR": "FV-CR 5000", "CT": "FV-CT 64", "MR": "FV-MR 1.5T", "RF": "FV-RF 900"}  # else FV-DR 3543


def study_title(study: StudySpec) -> str:
    return MODALITY_TITLES.get((study.modality, study.body_part)) or STUDY_TITLES[study.body_part]


@dataclass
class ImageContext:
    """Everything needed to write the header of one image."""

    patient: Patient
    study: StudySpec
    image: ImageSpec
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str
    modality: str
    series_number: int
    instance_number: int
    accession: str
    study_id: str
    reference: tuple[str, str] | None = None  # (SOP class, SOP instance) of another image of the study

    @property
    def lateral(self) -> bool:
        return self.image.view in ("LL", "LATERAL")


def shifted(date: str, time: str, minutes: int) -> tuple[str, str]:
    """(date, time) `minutes` after the given DICOM DA/TM pair."""
    moment = dt.datetime.strptime(date + time, "%Y%m%d%H%M%S") + dt.timedelta(minutes=minutes)
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")


def age_string(birth: dt.date, on: str) -> str:
    day = dt.datetime.strptime(on, "%Y%m%d").date()
    years = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def patient_module(ds: Dataset, patient: Patient, study_date: str) -> None:
    ds.PatientName = patient.person.dicom
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.institution.code
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d")
    ds.PatientSex = patient.sex
    ds.OtherPatientNames = patient.person.ascii_dicom
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.phone
    ds.PatientAge = age_string(patient.birth_date, study_date)
    ds.PatientSize = f"{patient.size_m:.2f}"
    ds.PatientWeight = str(patient.weight_kg)


def study_module(ds: Dataset, ctx: ImageContext, description: str) -> None:
    inst = ctx.patient.institution
    ds.StudyInstanceUID = ctx.study_uid
    ds.StudyDate, ds.StudyTime = ctx.study.date, ctx.study.time
    ds.ReferringPhysicianName = inst.referring.dicom
    ds.StudyID = ctx.study_id
    ds.AccessionNumber = ctx.accession
    ds.StudyDescription = description
    ds.PhysiciansOfRecord = inst.referring.dicom
    ds.NameOfPhysiciansReadingStudy = inst.reader.dicom


def series_module(ds: Dataset, ctx: ImageContext) -> None:
    inst = ctx.patient.institution
    ds.Modality = ctx.modality
    ds.SeriesInstanceUID = ctx.series_uid
    ds.SeriesNumber = ctx.series_number
    ds.SeriesDate, ds.SeriesTime = shifted(ctx.study.date, ctx.study.time, 2 * ctx.series_number)
    ds.SeriesDescription = f"{ctx.study.body_part_examined} {ctx.image.view}".strip()
    ds.ProtocolName = f"{ctx.study.body_part_examined} {ctx.image.view}".strip()
    ds.PerformingPhysicianName = inst.performing.dicom
    ds.OperatorsName = inst.operator.dicom
    ds.BodyPartExamined = ctx.study.body_part_examined
    ds.PerformedProcedureStepID = f"PPS{ctx.accession}"
    ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = ctx.study.date, ctx.study.time
    ds.PerformedProcedureStepDescription = study_title(ctx.study)


def equipment_module(ds: Dataset, ctx: ImageContext, modality: str) -> None:
    inst = ctx.patient.institution
    ds.Manufacturer = "Fakevendor Medical Systems"
    ds.ManufacturerModelName = MODELS.get(modality, "FV-DR 3543")
    ds.InstitutionName = inst.name
    ds.InstitutionAddress = f"{inst.address}. ĐT: {inst.phone}"
    ds.StationName = inst.stations[modality]
    ds.InstitutionalDepartmentName = inst.department
    ds.DeviceSerialNumber = inst.serials[modality]
    ds.SoftwareVersions = "4.2.1"


def general_image_module(ds: Dataset, ctx: ImageContext) -> None:
    date, time = shifted(ctx.study.date, ctx.study.time, 2 * ctx.series_number + ctx.instance_number)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if ctx.image.view == "AXIAL" else ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = ctx.instance_number
    ds.PatientOrientation = ["P", "F"] if ctx.lateral else ["L", "F"]
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate, ds.AcquisitionTime = date, time
    ds.AcquisitionDateTime = f"{date}{time}.000000+0700"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"


def image_pixel_module(ds: Dataset, spec: ImageSpec) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = spec.photometric
    ds.Rows, ds.Columns = spec.shape
    ds.BitsAllocated = 16 if spec.bits_stored > 8 else 8
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = 0


def _pixel_spacing(spec: ImageSpec) -> list[str]:
    spacing = 430.0 / max(spec.shape)
    return [f"{spacing:.4f}", f"{spacing:.4f}"]


def _exposure(ds: Dataset, ctx: ImageContext) -> None:
    chest = ctx.study.body_part == "CHEST"
    ds.KVP = "120" if chest else ("85" if ctx.lateral else "75")
    ds.DistanceSourceToDetector = "1800" if chest else "1000"
    ds.ExposureTime = 10 if chest else 80
    ds.XRayTubeCurrent = 320 if chest else 400
    ds.Exposure = 3 if chest else 32


def view_position(view: str) -> str:
    """ViewPosition defined term: spine 'LATERAL' is written as LL (left lateral)."""
    return "LL" if view == "LATERAL" else view


def cr_modules(ds: Dataset, ctx: ImageContext) -> None:
    """CR Series + CR Image modules."""
    ds.ViewPosition = view_position(ctx.image.view)
    _exposure(ds, ctx)
    ds.ImagerPixelSpacing = _pixel_spacing(ctx.image)
    ds.PlateID = f"IP{ctx.instance_number:04d}"
    ds.CassetteOrientation = "PORTRAIT"
    ds.CassetteSize = "35CMX43CM"
    ds.Sensitivity = "200"
    ds.AcquisitionDeviceProcessingDescription = f"{ctx.study.body_part_examined} {ctx.image.view}"


def dx_modules(ds: Dataset, ctx: ImageContext) -> None:
    """DX Series, DX Anatomy Imaged, DX Image, DX Detector, DX Positioning, Acquisition Context."""
    spec = ctx.image
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = [code_item(*ANATOMY[ctx.study.body_part])]
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if spec.photometric == "MONOCHROME1" else -1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.PresentationLUTShape = "INVERSE" if spec.photometric == "MONOCHROME1" else "IDENTITY"
    ds.CalibrationImage = "NO"
    ds.DetectorType = "SCINTILLATOR"
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = ctx.patient.institution.serials["DX"]
    ds.ImagerPixelSpacing = _pixel_spacing(spec)
    ds.PixelSpacing = _pixel_spacing(spec)
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "Corrected for geometric magnification"
    ds.ViewPosition = view_position(spec.view)
    ds.ViewCodeSequence = [code_item(*VIEW_CODES[spec.view])]
    ds.PositionerType = "NONE"
    _exposure(ds, ctx)
    ds.AcquisitionContextSequence = []


def modality_lut(ds: Dataset, slope: float, intercept: float) -> None:
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleType = "US"


def stored_range(pixels: np.ndarray, ignore: int | None = None, percent: int = 2) -> tuple[int, int]:
    """The `percent` and 100 - `percent` percentiles (nearest rank, in integers) of the
    central band of the image's stored values."""
    values = pixels[pixels.shape[0] // 4: -pixels.shape[0] // 4]
    if ignore is not None:
        values = values[values != ignore]
    ordered = np.sort(values, axis=None)
    last = len(ordered) - 1
    return int(ordered[last * percent // 100]), int(ordered[last * (100 - percent) // 100])


def window_from_pixels(pixels: np.ndarray, slope: float = 1.0, intercept: float = 0.0,
                       ignore: int | None = None) -> tuple[float, float]:
    """Window (center, width) from the central band of the image, in output units.
    (Integers and halves only: exact in binary floating point.)"""
    lo, hi = stored_range(pixels, ignore)
    lo, hi = lo * slope + intercept, hi * slope + intercept
    return round((lo + hi) / 2, 1), round(max(hi - lo, 1.0), 1)


def voi_window(ds: Dataset, pixels: np.ndarray, two: bool = False, slope: float = 1.0,
               intercept: float = 0.0, ignore: int | None = None) -> None:
    center, width = window_from_pixels(pixels, slope, intercept, ignore)
    if two:
        ds.WindowCenter = [f"{center:g}", f"{center:g}"]
        ds.WindowWidth = [f"{width:g}", f"{width * 0.6:g}"]
        ds.WindowCenterWidthExplanation = ["NORMAL", "HARD"]
    else:
        ds.WindowCenter, ds.WindowWidth = f"{center:g}", f"{width:g}"
        ds.WindowCenterWidthExplanation = "NORMAL"


def voi_lut_sequence(ds: Dataset, pixels: np.ndarray, bits_stored: int) -> None:
    """A sigmoid VOI LUT over the full stored range, 12-bit output.

    The sigmoid is the algebraic 1/2 (1 + z / (1 + |z|)) with z = 4 (x - center) / width,
    computed in integers (rounded half up) so that the table is the same on every machine."""
    lo, hi = stored_range(pixels)
    entries = 2 ** bits_stored
    x = np.arange(entries, dtype=np.int64)
    num = 2 * (2 * x - lo - hi)          # z = num / den
    den = max(hi - lo, 1) + np.abs(num)
    lut = ((4095 * (den + num) + den) // (2 * den)).astype(np.uint16)
    item = Dataset()
    item.add_new(0x00283002, "US", [entries % 65536, 0, 12])  # LUTDescriptor
    item.LUTExplanation = "SIGMOID DEFAULT"
    item.add_new(0x00283006, "US", lut.tolist())  # LUTData
    ds.VOILUTSequence = [item]


def sop_common(ds: Dataset, ctx: ImageContext) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = ctx.sop_class
    ds.SOPInstanceUID = ctx.sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = shifted(ctx.study.date, ctx.study.time, 30)
    ds.TimezoneOffsetFromUTC = "+0700"
