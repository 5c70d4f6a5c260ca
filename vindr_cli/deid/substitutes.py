"""Keyed substitutes: HMAC-SHA256 of the original under the secret key.

The same original gives the same substitute in every file, worker, machine and re-run
with the same key; another key gives unrelated values. Each kind of value has its own
domain string so that, say, a PatientID and an AccessionNumber with equal text get
unrelated substitutes.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re

UID_MAX = 64
# Days a patient's dates move back: between 1 and 11 years, whole days, keyed per patient.
SHIFT_MIN_DAYS = 365
SHIFT_SPAN_DAYS = 3650
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class Substitutes:
    def __init__(self, key: bytes, uid_root: str = "2.25"):
        if not key:
            raise ValueError("empty key")
        self._key = key
        self.uid_root = uid_root.rstrip(".")
        self._cache: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:   # never show the key
        return f"Substitutes(uid_root={self.uid_root!r})"

    def digest(self, domain: str, value: str) -> bytes:
        k = (domain, value)
        d = self._cache.get(k)
        if d is None:
            d = hmac.new(self._key, domain.encode() + b"\x1f" + value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
            if len(self._cache) < 100_000:
                self._cache[k] = d
        return d

    def token(self, domain: str, value: str, length: int) -> str:
        """Upper-case base32 token (letters and digits 2-7): valid in LO, SH, PN, CS."""
        return base64.b32encode(self.digest(domain, value)).decode()[:length]

    def hexid(self, domain: str, value: str, length: int = 32) -> str:
        return self.digest(domain, value).hex()[:length]

    def fingerprint(self) -> str:
        """A short keyed value naming the key without revealing it (to detect a key change)."""
        return self.hexid("key-fingerprint", "vindr", 12)

    # --- identities -------------------------------------------------------------------
    def patient_id(self, patient_key: str) -> str:
        return "P" + self.token("patient", patient_key, 15)

    def patient_name(self, patient_key: str) -> str:
        return "ANON^" + self.token("patient", patient_key, 15)

    def accession(self, original: str) -> str:
        return "A" + self.token("accession", original, 15)

    def study_id(self, original: str) -> str:
        return "S" + self.token("study-id", original, 15)

    def image_id(self, sop_instance_uid: str) -> str:
        """VinDr-style image id (32 hex digits), keyed instead of VinDr's plain MD5."""
        return self.hexid("image", sop_instance_uid, 32)

    def short(self, domain: str, original: str) -> str:
        """Short hex name for folders (patient/study/series)."""
        return self.hexid(domain, original, 16)

    def uid(self, original: str) -> str:
        """A UID under the root: <root>.<decimal of keyed 128-bit value>, at most 64 chars."""
        original = original.strip().rstrip("\x00").strip()
        n = int.from_bytes(self.digest("uid", original)[:16], "big")
        digits = str(n)
        room = UID_MAX - len(self.uid_root) - 1
        if room < 10:
            raise ValueError("uid root too long")
        digits = digits[:room].lstrip("0") or "1"
        return f"{self.uid_root}.{digits}"

    # --- dates ------------------------------------------------------------------------
    def date_offset_days(self, patient_key: str) -> int:
        n = int.from_bytes(self.digest("date-shift", patient_key)[:8], "big")
        return -(SHIFT_MIN_DAYS + n % SHIFT_SPAN_DAYS)


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (YYYYMMDD, or a range A-B) by days; None when it is not a date."""
    value = value.strip()
    if "-" in value:
        parts = value.split("-")
        if len(parts) != 2:
            return None
        out = [shift_da(p, days) if p else "" for p in parts]
        if any(o is None for o in out):
            return None
        return "-".join(out)  # type: ignore[arg-type]
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        d = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None
    s = d + dt.timedelta(days=days)
    return f"{s.year:04d}{s.month:02d}{s.day:02d}"     # strftime does not zero-pad years < 1000


_DT = re.compile(r"^\d{8}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?([+-]\d{4})?$")


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT value (YYYYMMDD[HH[MM[SS[.F{1,6}]]]][&ZZXX]); time is
    kept. None for anything else (a DT without a full date cannot be shifted safely)."""
    value = value.strip()
    if not _DT.match(value):
        return None
    head = shift_da(value[:8], days)
    return None if head is None else head + value[8:]
