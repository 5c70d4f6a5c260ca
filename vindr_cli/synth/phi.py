"""Fake identities (patients, staff, hospitals) planted into the synthetic export.

Every name, number and address here is invented. The module also records
each planted identifying string so tests can search anonymized output for it.
"""
from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field

MIN_PHI_LENGTH = 4
LO_MAX_BYTES = 64


def fit_bytes(text: str, limit: int = LO_MAX_BYTES) -> str:
    """Trim `text` so its UTF-8 encoding fits in `limit` bytes (LO/PN component limit)."""
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text.rstrip()


def ascii_fold(text: str) -> str:
    """Strip Vietnamese diacritics: 'Đặng Quốc Bảo' -> 'Dang Quoc Bao'."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class Person:
    family: str
    given: str

    @property
    def dicom(self) -> str:
        """DICOM PN form, e.g. 'Nguyễn^Văn An'."""
        return f"{self.family}^{self.given}"

    @property
    def display(self) -> str:
        return f"{self.family} {self.given}"

    @property
    def ascii_upper(self) -> str:
        """Folder form, e.g. 'NGUYEN VAN AN'."""
        return ascii_fold(self.display).upper()

    @property
    def ascii_dicom(self) -> str:
        """Legacy-RIS PN form without diacritics, e.g. 'NGUYEN^VAN AN'."""
        return ascii_fold(self.dicom).upper()

    @property
    def camel(self) -> str:
        """File-name form, e.g. 'NguyenVanAn'."""
        return "".join(w.capitalize() for w in ascii_fold(self.display).split())

    def variants(self) -> list[str]:
        return [self.dicom, self.display, self.ascii_upper, self.ascii_dicom,
                self.camel, self.family, self.given]


@dataclass(frozen=True)
class Institution:
    code: str
    name: str
    address: str
    department: str
    phone: str
    source_ae: str
    sending_ae: str
    stations: dict[str, str]
    serials: dict[str, str]
    referring: Person
    performing: Person
    operator: Person
    reader: Person

    def strings(self) -> list[str]:
        out = [self.name, self.address, self.department, self.phone,
               self.source_ae, self.sending_ae, *self.stations.values(), *self.serials.values()]
        for person in (self.referring, self.performing, self.operator, self.reader):
            out += person.variants()
        return out


@dataclass(frozen=True)
class Patient:
    person: Person
    patient_id: str
    sex: str
    birth_date: dt.date
    size_m: float
    weight_kg: int
    address: str
    phone: str
    national_id: str
    insurance_id: str
    institution: Institution

    @property
    def folder_name(self) -> str:
        return f"{self.person.ascii_upper}_{self.patient_id}"

    def strings(self) -> list[str]:
        return [*self.person.variants(), self.patient_id, self.birth_date.strftime("%Y%m%d"),
                self.address, self.phone, self.national_id, self.insurance_id]


@dataclass
class PhiRegistry:
    """Collects every planted identifying string and original UID."""

    strings: set[str] = field(default_factory=set)
    uids: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)

    def add(self, *values: str) -> None:
        for value in values:
            if value and len(value) >= MIN_PHI_LENGTH:
                self.strings.add(value)

    def add_uid(self, *uids: str) -> None:
        self.uids.update(u for u in uids if u)

    def keep_only_present(self, corpus: bytes) -> None:
        """Drop candidate strings that were not actually written into `corpus`."""
        self.strings = {s for s in self.strings if s.encode("utf-8") in corpus}

    def as_dict(self) -> dict:
        return {"strings": sorted(self.strings), "uids": sorted(self.uids), "dates": sorted(self.dates)}


SONG_HONG = Institution(
    code="BVSH",
    name="Bệnh viện Đa khoa Sông Hồng",
    address="215 Đường Giải Phóng, Phường Phương Mai, Quận Đống Đa, Hà Nội",
    department="Khoa Chẩn đoán hình ảnh - BV Sông Hồng",
    phone="+84 24 3869 2150",
    source_ae="BVSH_PACS01",
    sending_ae="BVSH_ROUTER",
    stations={"CR": "BVSH-CR-01", "DX": "BVSH-DX-02", "OT": "BVSH-WS-07", "CT": "BVSH-CT-01",
              "MR": "BVSH-MR-01", "RF": "BVSH-RF-01"},
    serials={"CR": "CR5K-0042817", "DX": "DXR-2231-0098", "OT": "WS-77120453", "CT": "CTS-1160-0731",
             "MR": "MRA-3T-20554", "RF": "RFX-7702-0116"},
    referring=Person("Bùi", "Thanh Tùng"),
    performing=Person("Ngô", "Thị Lan"),
    operator=Person("Đỗ", "Văn Hải"),
    reader=Person("Trịnh", "Quang Huy"),
)

PHUONG_NAM = Institution(
    code="BVPN",
    name="Bệnh viện Hữu nghị Phương Nam",
    address="88 Đường Nguyễn Thị Minh Khai, Phường Bến Thành, Quận 1, TP. Hồ Chí Minh",
    department="Khoa X-quang - BV Phương Nam",
    phone="+84 28 3925 0088",
    source_ae="BVPN_PACS01",
    sending_ae="BVPN_GATEWAY",
    stations={"CR": "BVPN-CR-03", "DX": "BVPN-DX-01", "OT": "BVPN-WS-02", "CT": "BVPN-CT-02",
              "MR": "BVPN-MR-01", "RF": "BVPN-RF-01"},
    serials={"CR": "CR7-5519302", "DX": "DRX-88-40211", "OT": "WS-66410987", "CT": "CTP-2290-1187",
             "MR": "MRB-15-330912", "RF": "RFP-4410-2209"},
    referring=Person("Châu", "Ngọc Thảo"),
    performing=Person("Lý", "Minh Tâm"),
    operator=Person("Huỳnh", "Văn Lộc"),
    reader=Person("Tạ", "Thu Trang"),
)


def _patient(family, given, pid, sex, birth, size, weight, address, phone, cccd, bhyt, inst):
    return Patient(Person(family, given), pid, sex, dt.date.fromisoformat(birth), size, weight,
                   address, phone, cccd, bhyt, inst)


PATIENTS: tuple[Patient, ...] = (
    _patient("Nguyễn", "Văn An", "20012345", "M", "1965-03-12", 1.68, 62,
             "Số 12 ngõ 34 Chùa Láng, Quận Đống Đa, Hà Nội", "0912345678",
             "001065012345", "HN4010112345678", SONG_HONG),
    _patient("Trần", "Thị Bích", "20023456", "F", "1978-11-02", 1.55, 51,
             "45 Đường Láng, Phường Láng Thượng, Hà Nội", "0987654321",
             "001178023456", "HN4010198765432", SONG_HONG),
    _patient("Lê", "Hoàng Phúc", "PN0345678", "M", "1990-05-27", 1.72, 70,
             "102 Lê Lợi, P. Bến Nghé, Quận 1, TP. Hồ Chí Minh", "0903112233",
             "079090034567", "HC4797934567890", PHUONG_NAM),
    _patient("Phạm", "Minh Đức", "20045678", "M", "1955-08-14", 1.64, 58,
             "7 Hàng Bài, Quận Hoàn Kiếm, Hà Nội", "+84 24 3825 1777",
             "001055045678", "HT2010145678901", SONG_HONG),
    _patient("Võ", "Thị Hương", "PN0567890", "F", "1982-01-30", 1.58, 49,
             "56 Nguyễn Trãi, Phường 3, Quận 5, TP. Hồ Chí Minh", "0938765432",
             "079182056789", "HC4797956789012", PHUONG_NAM),
    _patient("Đặng", "Quốc Bảo", "PN0678901", "M", "1970-09-09", 1.75, 81,
             "19 Cách Mạng Tháng Tám, Quận 3, TP. Hồ Chí Minh", "0909090123",
             "079070067890", "HC4797967890123", PHUONG_NAM),
    _patient("Hoàng", "Thị Mai", "20078901", "F", "1948-04-21", 1.50, 45,
             "3 Phố Huế, Quận Hai Bà Trưng, Hà Nội", "0913579246",
             "001148078901", "HT2010178901234", SONG_HONG),
)


# Patients added for `vindr select` (issue 11): a child, and two adults whose studies hold what a
# chest selection must leave out (a duplicate, a blank film, CT, MR, a multi-frame run) or keep
# (a chest tagged THORAX). Apart from PATIENTS so that bench_patient's identities stay as they were.
SELECTION_PATIENTS: tuple[Patient, ...] = (
    _patient("Lưu", "Minh Khang", "20089012", "M", "2018-03-05", 1.16, 21,
             "8 Ngõ Huế, Quận Hai Bà Trưng, Hà Nội", "0977246810",
             "001218089012", "TE1010189012345", SONG_HONG),
    _patient("Dương", "Thị Thu", "PN0790123", "F", "1972-07-19", 1.56, 53,
             "27 Trần Hưng Đạo, Phường 6, Quận 5, TP.HCM", "0918273645",
             "079172079012", "HC4797979012345", PHUONG_NAM),
    _patient("Trương", "Văn Long", "20091234", "M", "1960-12-01", 1.70, 66,
             "14 Kim Mã, Quận Ba Đình, Hà Nội", "0904681357",
             "001060091234", "HT2010191234567", SONG_HONG),
)


def bench_patient(index: int) -> Patient:
    """A unique fake patient for benchmark file number `index`."""
    base = PATIENTS[index % len(PATIENTS)]
    pid = f"B{index:07d}"
    person = Person(base.person.family, f"{base.person.given} {index:05d}")
    birth = base.birth_date + dt.timedelta(days=index % 3650)
    return Patient(person, pid, base.sex, birth, base.size_m, base.weight_kg,
                   fit_bytes(f"Căn {index}, {base.address}"), f"09{index:08d}", f"0790{index:08d}",
                   f"BH{index:013d}", base.institution)
