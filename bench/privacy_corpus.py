"""An adversarial hospital export built from real public DICOM files, for bench/privacy_bench.py.

Sources: pydicom's bundled test files (``pydicom.data.get_testdata_file``, only names that
resolve locally, never a download) and the PyPI package ``pydicom-data`` (34 MB wheel:
enhanced MR/CT, a CR radiograph, ultrasound, JPEG lossless), either the wheel given with
``--pydicom-data`` (read as a zip, nothing installed) or the package when installed (the
``bench`` extra lists it); without it, its 6 files are skipped and recorded as such. Every file gets one
of 9 fake patients (Vietnamese names with diacritics in UTF-8, Latin-1, Japanese ISO 2022
IR 87, Korean ISO 2022 IR 149, Chinese GB18030), its own study dates and PHI hidden in
~40 kinds of places (standard, unlisted, nested 5 deep, code meanings, URLs, binary VRs, a
text VR on a "US or SS" tag, a TM holding a date, elements after the pixel data, private and
unknown tags, file meta, folder and file names). Transfer syntaxes: implicit and explicit
VR little endian, explicit big endian, deflated, JPEG baseline/extended/lossless, JPEG-LS,
JPEG 2000, RLE. Deterministic: the same seed gives the same bytes.

The truth (which strings are PHI, which patient and study each file is) goes to
``truth.json`` BESIDE the corpus folder, never inside it and never into bench output.

    python bench/privacy_corpus.py OUT_DIR [--pydicom-data pydicom_data-1.0.0-py3-none-any.whl]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import random
import shutil
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian)

SEED = 9


@dataclass
class Patient:
    key: str
    name: str                 # PN as written (may hold ideographic/phonetic groups)
    latin: str                # the alphabetic name, as a person would search it
    ids: list[str]            # PatientID spellings used across files (leading zeros)
    charset: str | list[str]
    phone: str
    address: str
    birth: str
    staff: str                # an operator / physician name seen in this patient's files
    hospital: str
    host: str
    ae: str
    study_dates: list[str]
    extra_needles: list[str] = field(default_factory=list)   # other spellings (CJK groups)


PATIENTS = [
    Patient("P1", "Nguyễn^Văn Thắng", "Nguyễn Văn Thắng", ["0077123", "77123"], "ISO_IR 192", "+84 912 345 678",
            "12 Phố Huế, Hai Bà Trưng, Hà Nội", "19650312", "Võ^Thị Hạnh", "Bệnh viện Hồng Đức",
            "pacs.benhvienhongduc.vn", "HONGDUC_PACS", ["20210304", "20230719"]),
    Patient("P2", "Trần^Thị Bích Ngọc", "Trần Thị Bích Ngọc", ["BM24004511"], "ISO_IR 192", "0903 118 227",
            "45 Lý Thường Kiệt, Quận 10, TP Hồ Chí Minh", "19781105", "Đặng^Quốc Khánh", "Bệnh viện Chợ Rẫy Xanh",
            "ris.choraysanh.org.vn", "CRXANH_RIS", ["20220111", "20220603"]),
    Patient("P3", "Lê^Hoàng Phúc", "Lê Hoàng Phúc", ["HP0098812"], "ISO_IR 192", "0236 3821 555",
            "7 Trần Phú, Hải Châu, Đà Nẵng", "19900228", "Phan^Minh Triết", "Phòng khám Đa khoa Sông Hàn",
            "dicom.songhanclinic.vn", "SONGHAN01", ["20200815"]),
    Patient("P4", "Phạm^Ngọc Diệp", "Phạm Ngọc Diệp", ["DN55120077"], "ISO_IR 192", "+84 24 3869 2277",
            "88 Nguyễn Chí Thanh, Đống Đa, Hà Nội", "20010917", "Bùi^Thanh Tùng", "Bệnh viện Hồng Đức",
            "pacs.benhvienhongduc.vn", "HONGDUC_PACS", ["20190402", "20240122"]),
    Patient("P5", "Müller^Jürgen", "Müller Jürgen", ["DE5566771"], "ISO_IR 100", "+49 30 4455 6677",
            "Schönhauser Allee 118, Berlin", "19521224", "Größer^Käthe", "Klinikum Sankt Görenwald",
            "pacs.goerenwald-klinik.de", "GOERENWALD", ["20180909"]),
    Patient("P6", "Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada Tarou", ["JP00884151"], ["", "ISO 2022 IR 87"],
            "03-5521-8841", "Bunkyo 3-1-7, Tokyo", "19700707", "Sasaki^Hanae", "Hongou Kinen Byouin",
            "pacs.hongou-kinen.jp", "HONGOU_AE", ["20170505", "20191212"], ["山田", "太郎", "やまだ", "たろう"]),
    Patient("P7", "Hong^Gildong=洪^吉洞=홍^길동", "Hong Gildong", ["KR33107712"], ["", "ISO 2022 IR 149"],
            "010-3310-7712", "Sejong-daero 209, Seoul", "19830419", "Kim^Minseo", "Hanbit Daehak Byeongwon",
            "pacs.hanbit-hosp.kr", "HANBIT_AE", ["20200101"], ["홍", "길동", "吉洞"]),
    Patient("P8", "Wang^Xiaodong=王^小东", "Wang Xiaodong", ["CN77024410"], "GB18030", "138 0013 7702",
            "Haidian Road 55, Beijing", "19941030", "Zhao^Lihua", "Beijing Xiyuan Yiyuan",
            "pacs.xiyuan-yy.cn", "XIYUAN_AE", ["20210621", "20211130"], ["王", "小东"]),
    Patient("P9", "Đỗ^Thùy Dương", "Đỗ Thùy Dương", ["DTD4471902"], "ISO_IR 192", "0977 440 190",
            "3 Hùng Vương, Ba Đình, Hà Nội", "19870603", "Hoàng^Văn Lực", "Bệnh viện Hồng Đức",
            "pacs.benhvienhongduc.vn", "HONGDUC_PACS", ["20230305"]),
]

# (source, where, patient, study index, transfer syntax: keep|implicit|explicit|deflated)
# where: "pydicom" = pydicom's bundled files, "pdd" = the pydicom-data wheel (optional)
PLAN = [
    ("CT_small.dcm", "pydicom", "P1", 0, "explicit"),
    ("CT_small.dcm", "pydicom", "P1", 0, "deflated"),
    ("dicomdirtests/77654033/CR1/6154", "pydicom", "P1", 1, "explicit"),
    ("MR_small.dcm", "pydicom", "P1", 1, "implicit"),
    ("waveform_ecg.dcm", "pydicom", "P1", 1, "keep"),
    ("MR_small_jpeg_ls_lossless.dcm", "pydicom", "P1", 1, "keep"),
    ("emri_small.dcm", "pdd", "P2", 0, "explicit"),
    ("MR_small_RLE.dcm", "pydicom", "P2", 0, "keep"),
    ("MR_small_bigendian.dcm", "pydicom", "P2", 1, "keep"),
    ("reportsi.dcm", "pydicom", "P2", 1, "explicit"),
    ("liver_1frame.dcm", "pydicom", "P2", 1, "explicit"),
    ("SC_rgb_jpeg_dcmtk.dcm", "pydicom", "P2", 0, "keep"),
    ("eCT_Supplemental.dcm", "pdd", "P3", 0, "explicit"),
    ("693_J2KI.dcm", "pydicom", "P3", 0, "keep"),
    ("rtplan.dcm", "pydicom", "P3", 0, "implicit"),
    ("rtdose_1frame.dcm", "pydicom", "P3", 0, "deflated"),
    ("test-SR.dcm", "pydicom", "P3", 0, "explicit"),
    ("dicomdirtests/77654033/CR2/6247", "pydicom", "P4", 0, "implicit"),
    ("dicomdirtests/77654033/CR3/6278", "pydicom", "P4", 1, "deflated"),
    ("liver_expb_1frame.dcm", "pydicom", "P4", 1, "keep"),
    ("JPEG-lossy.dcm", "pydicom", "P4", 0, "keep"),
    ("examples_palette.dcm", "pydicom", "P4", 1, "explicit"),
    ("SC_rgb_small_odd.dcm", "pydicom", "P4", 1, "explicit"),
    ("RG3_J2KI.dcm", "pdd", "P5", 0, "keep"),
    ("MR_small.dcm", "pydicom", "P5", 0, "explicit"),
    ("MR_small.dcm", "pydicom", "P5", 0, "deflated"),
    ("SC_rgb_rle.dcm", "pydicom", "P5", 0, "keep"),
    ("rtdose.dcm", "pydicom", "P5", 0, "explicit"),
    ("CT_small.dcm", "pydicom", "P6", 0, "implicit"),
    ("MR_small_jp2klossless.dcm", "pydicom", "P6", 0, "keep"),
    ("SC_rgb_small_odd_big_endian.dcm", "pydicom", "P6", 1, "keep"),
    ("US1_J2KI.dcm", "pdd", "P6", 1, "keep"),
    ("reportsi_with_empty_number_tags.dcm", "pydicom", "P6", 1, "implicit"),   # made an Enhanced SR below
    ("dicomdirtests/98892001/CT2N/6293", "pydicom", "P7", 0, "explicit"),
    ("dicomdirtests/98892001/CT5N/2062", "pydicom", "P7", 0, "deflated"),
    ("image_dfl.dcm", "pydicom", "P7", 0, "keep"),
    ("OBXXXX1A_rle.dcm", "pdd", "P7", 0, "keep"),
    ("SC_rgb_jpeg_gdcm.dcm", "pydicom", "P7", 0, "keep"),
    ("dicomdirtests/98892003/MR2/4950", "pydicom", "P8", 0, "explicit"),
    ("dicomdirtests/98892003/MR1/4919", "pydicom", "P8", 1, "implicit"),
    ("ExplVR_BigEnd.dcm", "pydicom", "P8", 1, "keep"),
    ("JPEG-LL.dcm", "pdd", "P8", 0, "keep"),
    ("SC_ybr_full_422_uncompressed.dcm", "pydicom", "P8", 1, "deflated"),
    ("rtdose_expb_1frame.dcm", "pydicom", "P9", 0, "keep"),
    ("CT_small.dcm", "pydicom", "P9", 0, "explicit"),
    ("examples_ybr_color.dcm", "pydicom", "P9", 0, "keep"),
    ("SC_rgb_jpeg_lossy_gdcm.dcm", "pydicom", "P9", 0, "keep"),
    ("MR_small_expb.dcm", "pydicom", "P9", 0, "keep"),
]

TS = {"implicit": ImplicitVRLittleEndian, "explicit": ExplicitVRLittleEndian, "deflated": DeflatedExplicitVRLittleEndian}
PRIVATE_CREATOR = "HONGDUC RIS 2.1"
UNKNOWN_TAG = 0x0018FFF0          # an even (public) group element no dictionary knows
AFTER_PIXEL_TAG = 0x80020010      # an unknown even group after the pixel data
OB_TAG = 0x00143080               # BadPixelImage: a standard OB attribute Table E.1-1 does not list
TM_TAG = 0x00143077               # TimeOfGainCalibration: a TM attribute Table E.1-1 does not list
HIDDEN_KINDS = [
    "acquisition_protocol_name", "performed_procedure_type_description", "image_id", "storage_media_fileset_id",
    "device_id", "ntp_source_address", "owner_id", "contact_display_name_deep", "code_meaning", "urls",
    "ob_text", "text_vr_on_us_or_ss", "tm_with_date", "private_tags", "unknown_public_tag",
    "window_explanation", "requested_procedure_trial", "after_pixel_data", "file_meta_private_information",
]


def fold(text: str) -> str:
    """Accent-folded lower case (đ/Đ too, which NFKD does not decompose)."""
    import unicodedata
    text = text.replace("đ", "d").replace("Đ", "D").replace("ß", "ss")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def _source(name: str, where: str, pdd: zipfile.ZipFile | Path | None) -> bytes | None:
    if where == "pdd":
        if pdd is None:
            return None
        if isinstance(pdd, Path):
            return (pdd / name).read_bytes()
        return pdd.read(f"data_store/data/{name}")
    path = get_testdata_file(name, download=False)
    return Path(path).read_bytes() if path else None


class Uids:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def new(self) -> str:
        return "1.2.826.0.1.3680043.8.498." + str(self.rng.getrandbits(96))


def _retarget_dates(ds: Dataset, date: str) -> None:
    """Every DA (and DT's date part) at any depth becomes the study date, so the source's own
    dates never look like a kept or shifted date of ours."""
    def cb(d, elem):
        if elem.VR == "DA" and elem.value not in (None, ""):
            elem.value = date if elem.VM <= 1 else [date] * elem.VM
        elif elem.VR == "DT" and elem.value not in (None, "") and elem.VM <= 1:
            elem.value = date + str(elem.value)[8:]
    ds.walk(cb)


def _retarget_uids(ds: Dataset, uids: Uids, keep: set[str]) -> None:
    """Instance UIDs of the source replaced by new ones (SOP class and transfer syntax kept)."""
    mapping: dict[str, str] = {}

    def cb(d, elem):
        if elem.VR != "UI" or elem.value in (None, ""):
            return
        if elem.keyword in ("SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID", "CodingSchemeUID",
                            "MappingResource", "ContextGroupExtensionCreatorUID") or str(elem.value).startswith("1.2.840.10008."):
            return
        vals = elem.value if elem.VM > 1 else [elem.value]
        new = [mapping.setdefault(str(v), uids.new()) for v in vals]
        elem.value = new if elem.VM > 1 else new[0]
    ds.walk(cb)


def _make_pixels_unique(ds: Dataset, index: int) -> None:
    """Native pixel data gets the file index in its first bytes, so that every output can be
    matched to its input by the hash of its pixel data (every tool keeps pixel values)."""
    if "PixelData" not in ds:
        return
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    buf = bytearray(ds.PixelData)
    buf[0:4] = (index + 1000).to_bytes(4, "little")
    ds.PixelData = bytes(buf)


def _deep(keyword_chain: list[str], leaf: Dataset) -> Sequence:
    item = leaf
    for kw in reversed(keyword_chain[1:]):
        outer = Dataset()
        setattr(outer, kw, Sequence([item]))
        item = outer
    return Sequence([item])


def plant(ds: Dataset, p: Patient, pid: str, study: int, kinds: list[str], uids: Uids, study_uid: str,
          issuer: bool, encapsulated: bool) -> list[str]:
    """Write PHI into ds in the places named by kinds; return the kinds actually planted."""
    done = ["patient_name", "patient_id", "birth_date", "address", "phone", "other_ids", "institution",
            "referring_physician", "accession", "study_description", "protocol_name", "operators", "comments",
            "request_attributes", "station_and_serial"]
    date = p.study_dates[study]
    ds.SpecificCharacterSet = p.charset
    ds.PatientName = p.name
    ds.PatientID = pid
    if issuer:
        ds.IssuerOfPatientID = p.hospital
    elif "IssuerOfPatientID" in ds:
        del ds.IssuerOfPatientID
    ds.PatientBirthDate = p.birth
    ds.PatientAddress = p.address
    ds.PatientTelephoneNumbers = p.phone
    ds.OtherPatientIDs = "BHYT-" + pid
    ds.InstitutionName = p.hospital
    ds.InstitutionAddress = p.address.split(",")[-1].strip() + " - " + p.host
    ds.ReferringPhysicianName = p.staff
    ds.AccessionNumber = f"A{pid[-6:]}{study}"
    ds.StudyDescription = f"Follow-up {p.latin}"
    ds.ProtocolName = f"{p.staff.replace('^', ' ')} {date}"
    ds.OperatorsName = p.staff
    ds.PerformingPhysicianName = p.staff
    ds.ImageComments = f"pt {p.latin} tel {p.phone}"
    ds.PatientComments = f"lives at {p.address}"
    ds.StudyDate = date
    ds.StationName = p.ae
    ds.DeviceSerialNumber = "SN-" + pid
    req = Dataset()
    req.RequestedProcedureDescription = f"Chụp cho {p.latin}" if p.charset == "ISO_IR 192" else f"exam {p.latin}"
    req.RequestedProcedureID = "RQ" + pid
    ds.RequestAttributesSequence = Sequence([req])
    for kind in kinds:
        if kind == "acquisition_protocol_name":
            ds.AcquisitionProtocolName = f"CHEST {p.staff.replace('^', ' ')} {date}"
        elif kind == "performed_procedure_type_description":
            ds.PerformedProcedureTypeDescription = f"walk-in {p.latin}"
        elif kind == "image_id":
            ds.ImageID = pid
        elif kind == "storage_media_fileset_id":
            ds.StorageMediaFileSetID = pid
        elif kind == "device_id":
            ds.DeviceID = p.phone
        elif kind == "ntp_source_address":
            ds.NTPSourceAddress = p.host
        elif kind == "owner_id":
            ds.OwnerID = pid[:16]
        elif kind == "contact_display_name_deep":
            leaf = Dataset()
            leaf.ContactDisplayName = p.latin
            leaf.ContactURI = f"tel:{p.phone}"
            ds.ContributingEquipmentSequence = _deep(
                ["ContributingEquipmentSequence", "PurposeOfReferenceCodeSequence", "AnatomicRegionSequence",
                 "AnatomicRegionModifierSequence", "PrimaryAnatomicStructureSequence"], leaf)
        elif kind == "code_meaning":
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator = "RX" + pid[-5:], "99HONGDUC"
            code.CodeMeaning = f"CT ngực cho {p.latin}" if p.charset == "ISO_IR 192" else f"CT chest for {p.latin}"
            ds.ProcedureCodeSequence = Sequence([code])
        elif kind == "urls":
            ds.RetrieveURL = f"https://{p.host}/dicomweb/studies/{study_uid}?pid={pid}"
            uri = f"https://{p.host}/wado?studyUID={study_uid}&patientID={pid}"
            if ds.get("ReferencedSeriesSequence"):        # a real reference (a SEG's) gets the URI beside it
                ds.ReferencedSeriesSequence[0].RetrieveURI = uri
            else:
                ref = Dataset()
                ref.RetrieveURI = uri
                ds.ReferencedSeriesSequence = Sequence([ref])
            ds.PixelDataProviderURL = f"https://{p.host}/jpip/{pid}"
        elif kind == "ob_text" :
            ds.add_new(OB_TAG, "OB", (p.latin + " " + pid).encode("utf-8").ljust(32, b" ")[:32])
        elif kind == "text_vr_on_us_or_ss":
            ds.add_new(0x00280106, "LO", pid)
        elif kind == "tm_with_date":
            ds.add_new(TM_TAG, "TM", p.birth + "101500")
        elif kind == "private_tags":
            block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
            block.add_new(0x10, "LO", p.latin)
            inner = Dataset()
            inner.add_new(0x00100010, "PN", p.name)
            block.add_new(0x20, "SQ", Sequence([inner]))
        elif kind == "unknown_public_tag":
            ds.add_new(UNKNOWN_TAG, "LO", p.phone)
        elif kind == "window_explanation":
            ds.WindowCenterWidthExplanation = f"preset {p.staff.split('^')[0]} {pid}"
        elif kind == "requested_procedure_trial":
            ds.RequestedProcedureDescriptionTrial = f"trial arm {p.latin}"
        elif kind == "after_pixel_data":
            if "PixelData" not in ds:
                continue
            ds.add_new(AFTER_PIXEL_TAG, "LO", pid)
            ds.add_new(0xFFFCFFFC, "OB", (p.latin + " " + p.phone).encode("utf-8").ljust(40, b"\0")[:40])
        elif kind == "file_meta_private_information":
            ds.file_meta.SourceApplicationEntityTitle = p.ae
            ds.file_meta.PrivateInformationCreatorUID = "1.2.826.0.1.3680043.8.498.1"
            ds.file_meta.PrivateInformation = (p.latin + " " + pid).encode("utf-8").ljust(32, b" ")[:32]
        elif kind == "extended_offset_table":
            if not encapsulated:
                continue
            ds.ExtendedOffsetTable = pid.encode().ljust(16, b"\0")[:16]
            ds.ExtendedOffsetTableLengths = p.phone.encode().ljust(16, b"\0")[:16]
        else:
            raise ValueError(kind)
        done.append(kind)
    if ds.get("Modality") == "ECG" or "WaveformSequence" in ds:
        for w in ds.get("WaveformSequence", []):
            w.MultiplexGroupLabel = p.latin
            for ch in w.get("ChannelDefinitionSequence", [])[:3]:
                ch.ChannelLabel = pid
        done.append("waveform_labels")
    if "ContentSequence" in ds:                        # SR: free text and a person in the content
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
        cn = Dataset()
        cn.CodeValue, cn.CodingSchemeDesignator, cn.CodeMeaning = "121106", "DCM", "Comment"
        item.ConceptNameCodeSequence = Sequence([cn])
        item.TextValue = f"Bệnh nhân {p.latin}, ĐT {p.phone}" if p.charset == "ISO_IR 192" else f"patient {p.latin} {p.phone}"
        pn = Dataset()
        pn.RelationshipType, pn.ValueType, pn.PersonName = "HAS OBS CONTEXT", "PNAME", p.staff
        cn2 = Dataset()
        cn2.CodeValue, cn2.CodingSchemeDesignator, cn2.CodeMeaning = "121008", "DCM", "Person Observer Name"
        pn.ConceptNameCodeSequence = Sequence([cn2])
        ds.ContentSequence = Sequence(list(ds.ContentSequence) + [item, pn])
        done.append("sr_content")
    if ds.get("Modality") == "SEG":
        for s in ds.get("SegmentSequence", []):
            s.SegmentLabel = f"{p.latin} liver"
        done.append("segment_label")
    return done


def build(out: Path, pdd_path: Path | None = None, seed: int = SEED) -> dict:
    """Write the corpus to OUT/corpus and its truth to OUT/truth.json; return the truth."""
    rng = random.Random(seed)
    uids = Uids(rng)
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    pdd: zipfile.ZipFile | Path | None = None
    if pdd_path:                                      # the wheel, read as a zip
        pdd = zipfile.ZipFile(pdd_path)
    else:                                             # or the package, when installed (bench extra)
        import importlib.util
        spec = importlib.util.find_spec("data_store")
        if spec and spec.origin and (Path(spec.origin).parent / "data" / "emri_small.dcm").exists():
            pdd = Path(spec.origin).parent / "data"
            pdd_path = pdd
    corpus = out / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir(parents=True)
    pats = {p.key: p for p in PATIENTS}
    study_uids = {(p.key, i): uids.new() for p in PATIENTS for i in range(len(p.study_dates))}
    files, skipped, pixel_hashes = [], [], {}
    per_patient_count: dict[str, int] = {}
    for index, (name, where, pkey, study, ts) in enumerate(PLAN):
        raw = _source(name, where, pdd)
        if raw is None:
            skipped.append(name)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(raw), force=True)
        p = pats[pkey]
        n = per_patient_count.get(pkey, 0)
        per_patient_count[pkey] = n + 1
        pid = p.ids[n % len(p.ids)]
        issuer = n % 2 == 0                    # issuer present in every other file of a patient
        if ts != "keep":
            ds.file_meta.TransferSyntaxUID = TS[ts]
        if name == "reportsi_with_empty_number_tags.dcm":
            # a second SR without pixel data: another SOP class (Enhanced SR is a superset of
            # Basic Text SR), so that outputs without pixel data map back to one input each
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
        tsuid = ds.file_meta.TransferSyntaxUID
        _retarget_uids(ds, uids, set())
        ds.StudyInstanceUID = study_uids[(pkey, study)]
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        _make_pixels_unique(ds, index)
        _retarget_dates(ds, p.study_dates[study])
        # every file: the core places; plus a rotating 10 of the hidden kinds (all appear)
        kinds = [HIDDEN_KINDS[(index * 7 + k) % len(HIDDEN_KINDS)] for k in range(10)]
        if tsuid.is_compressed:
            kinds.append("extended_offset_table")
        if ts == "deflated" and "after_pixel_data" not in kinds:
            kinds.append("after_pixel_data")
        if not tsuid.is_little_endian or tsuid.is_implicit_VR:
            kinds = [k for k in kinds if k != "text_vr_on_us_or_ss"]   # a VR cannot be stored there
        planted = plant(ds, p, pid, study, kinds, uids, study_uids[(pkey, study)], issuer, tsuid.is_compressed)
        folder = corpus / f"{p.latin.replace(' ', '_')}_{pid}" / f"{p.study_dates[study]}_{p.ae}"
        folder.mkdir(parents=True, exist_ok=True)
        mod = str(ds.get("Modality", "OT")) or "OT"
        path = folder / f"{mod}_{pid}_{index:02d}.dcm"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(path, enforce_file_format=True)
        planted.append("path")
        pix = _pixel_hash(path)
        if pix and pix in pixel_hashes:
            raise RuntimeError(f"two files share pixel data: {name} and {pixel_hashes[pix]}")
        pixel_hashes[pix] = name
        files.append({"path": path.relative_to(corpus).as_posix(), "source": f"{where}:{name}", "patient": pkey,
                      "study": study, "study_date": p.study_dates[study], "study_time": str(ds.get("StudyTime", "")), "patient_id_written": pid,
                      "issuer": issuer, "transfer_syntax": str(tsuid), "sop_class": str(ds.SOPClassUID),
                      "charset": p.charset, "kinds": planted, "pixel_sha256": pix})
    needles = []
    for p in PATIENTS:
        def add(kind, s):
            needles.append({"patient": p.key, "kind": kind, "text": s})
        add("name", p.latin)
        add("name", p.staff.replace("^", " "))
        for s in p.extra_needles:
            add("name-ideographic", s)
        for i in sorted(set(p.ids)):
            add("patient-id", i)
        add("phone", p.phone)
        add("address", p.address.split(",")[0])
        add("birth-date", p.birth)
        for d in p.study_dates:
            add("study-date", d)
        add("hospital", p.hospital)
        add("host", p.host)
        add("ae-title", p.ae)
        for i in range(len(p.study_dates)):
            add("study-uid", study_uids[(p.key, i)])
    kinds_used = sorted({k for f in files for k in f["kinds"]})
    truth = {"seed": seed, "files": files, "needles": needles, "skipped_sources": skipped,
             "kinds": kinds_used, "pydicom": pydicom.__version__,
             "pydicom_data": ("pydicom-data " + pdd_path.name) if pdd_path else None}
    (out / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n")
    return truth


def _pixel_hash(path: Path) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
    if "PixelData" not in ds:
        return None
    return hashlib.sha256(ds.PixelData).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--pydicom-data", type=Path, help="the pydicom-data wheel (pip download pydicom-data)")
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    t = build(a.out, a.pydicom_data, a.seed)
    print(f"{len(t['files'])} files, {len({f['patient'] for f in t['files']})} patients, "
          f"{len(t['kinds'])} kinds of places, skipped: {t['skipped_sources'] or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
