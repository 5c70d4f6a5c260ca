"""PHI planted outside the plain top-level tags: nested sequences, private
blocks, file meta, free text, overlays (60xx) and curves (50xx)."""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits

from vindr_cli.synth.font import stamp
from vindr_cli.synth.modules import STUDY_ROOT_REF_CLASS, ImageContext, code_item
from vindr_cli.synth.phi import Patient, PhiRegistry
from vindr_cli.synth.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

PRIVATE_CREATOR = "HOSPITAL_PACS 1.0"
PRIVATE_GROUP = 0x0029


def file_meta(sop_class: str, sop_uid: str, patient: Patient) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    meta.SourceApplicationEntityTitle = patient.institution.source_ae
    meta.SendingApplicationEntityTitle = patient.institution.sending_ae
    return meta


def other_patient_ids(ds: Dataset, patient: Patient) -> None:
    items = []
    for value, issuer in ((patient.national_id, "BO CONG AN"), (patient.insurance_id, "BHXH VIET NAM")):
        item = Dataset()
        item.PatientID, item.IssuerOfPatientID, item.TypeOfPatientID = value, issuer, "TEXT"
        items.append(item)
    ds.OtherPatientIDsSequence = items


def _study_ref(study_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = STUDY_ROOT_REF_CLASS
    item.ReferencedSOPInstanceUID = study_uid
    return item


def references(ds: Dataset, ctx: ImageContext) -> None:
    """ReferencedStudySequence and ReferencedImageSequence (another image of the study)."""
    ds.ReferencedStudySequence = [_study_ref(ctx.study_uid)]
    if ctx.reference:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ctx.reference
        ds.ReferencedImageSequence = [item]


def request_attributes(ds: Dataset, ctx: ImageContext) -> None:
    """RequestAttributesSequence with a person name three levels deep."""
    inst = ctx.patient.institution
    person = Dataset()
    person.ValueType = "PNAME"
    person.ConceptNameCodeSequence = [code_item("121008", "DCM", "Person Observer Name")]
    person.PersonName = inst.referring.dicom
    protocol = code_item(f"XQ-{ctx.study.body_part}", "99BVPACS", f"{ctx.study.body_part} routine")
    protocol.ProtocolContextSequence = [person]
    item = Dataset()
    item.RequestedProcedureID = f"RP{ctx.accession}"
    item.ScheduledProcedureStepID = f"SPS{ctx.accession}"
    item.AccessionNumber = ctx.accession
    item.StudyInstanceUID = ctx.study_uid
    item.ReferencedStudySequence = [_study_ref(ctx.study_uid)]
    item.RequestedProcedureDescription = f"X-quang {ctx.study.body_part}"
    item.ScheduledProcedureStepDescription = f"X-quang {ctx.study.body_part} {ctx.image.view}"
    item.ScheduledProtocolCodeSequence = [protocol]
    ds.RequestAttributesSequence = [item]


def private_block(ds: Dataset, patient: Patient, accession: str) -> list[str]:
    """Private group 0029 'HOSPITAL_PACS 1.0' with identity and a nested private SQ."""
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", patient.person.dicom)
    block.add_new(0x11, "LO", patient.patient_id)
    block.add_new(0x12, "DA", patient.birth_date.strftime("%Y%m%d"))
    note = f"{accession}@{patient.institution.source_ae}"
    block.add_new(0x13, "LO", note)
    item = Dataset()
    inner = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    tech = f"KTV: {patient.institution.operator.display}"
    inner.add_new(0x01, "LO", tech)
    inner.add_new(0x02, "LO", patient.person.display)
    block.add_new(0x20, "SQ", [item])
    return [note, tech]


def free_text(ds: Dataset, ctx: ImageContext, registry: PhiRegistry) -> None:
    """ImageComments / AdditionalPatientHistory that embed names and numbers."""
    p = ctx.patient
    if "comments" in ctx.image.extras:
        ds.ImageComments = f"Bệnh nhân {p.person.display}, PID {p.patient_id}, chụp lại lần 2."
        registry.add(ds.ImageComments)
    else:
        ds.ImageComments = "Tư thế đứng, hít vào sâu."
    if "history" in ctx.study.extras:
        relative = f"{p.person.family} Thị Hoa"
        phone = f"097{p.patient_id[-7:]}"[:10]
        ds.AdditionalPatientHistory = (
            f"BN {p.person.display} ({p.patient_id}), đau kéo dài. "
            f"Liên hệ người nhà {relative} - {phone}."
        )
        registry.add(ds.AdditionalPatientHistory, relative, phone)


def overlay(ds: Dataset, patient: Patient, rows: int, cols: int) -> None:
    """Overlay plane 6000 whose bitmap spells the patient's name and ID."""
    bitmap = np.zeros((rows, cols), dtype=bool)
    stamp(bitmap, patient.person.ascii_upper, 6, 6)
    stamp(bitmap, f"ID {patient.patient_id}", 16, 6)
    bitmap[rows - 30:rows - 6, cols - 26] = True  # a side marker
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000022, "LO", f"Annotation {patient.person.display}")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60001500, "LO", patient.person.ascii_upper)
    ds.add_new(0x60003000, "OW", pack_bits(bitmap.ravel()))


def curve(ds: Dataset, patient: Patient) -> str:
    """Retired curve group 5000 (an ECG-like trace) with the name in its description."""
    t = np.arange(200, dtype=np.int64)
    beat = np.clip(16 - ((t % 50) - 20) ** 2, 0, None) ** 2       # a narrow peak every 50 samples
    phase = t % 50                                                 # a slow triangle-wave baseline
    wave = np.minimum(phase, 50 - phase) * 4 - 50
    trace = (2048 + 600 * beat // 256 - 80 * wave // 50).astype(np.uint16)
    description = f"ECG {patient.person.display} {patient.patient_id}"
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50000010, "US", len(trace))
    ds.add_new(0x50000020, "CS", "ECG")
    ds.add_new(0x50000022, "LO", description)
    ds.add_new(0x50000103, "US", 0)
    ds.add_new(0x50002500, "LO", patient.person.ascii_upper)
    ds.add_new(0x50003000, "OW", trace.tobytes())
    return description
