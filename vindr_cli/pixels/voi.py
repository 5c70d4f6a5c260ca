"""The grayscale display pipeline of PS3.3 C.11 as pure numpy functions (float64 inside).

stored values (BitsStored mask, sign extension) -> Modality LUT (rescale or LUT Sequence)
-> VOI (window, VOI LUT Sequence, or a window computed from the pixels)
-> polarity (MONOCHROME1 / Presentation LUT Shape INVERSE: ``out_max - y`` over the output range)
-> round half up, clip -> Pixel Padding painted black (0).

The transforms are here; ``window.render`` chains them for one image (window.py imports
this module, never the other way round). Colour images are not windowed: ``colour.py``.

Polarity. The DX/MG/IO modules (PS3.3 C.8.11.6.1.2 and friends) say Presentation LUT Shape
INVERSE "shall be used if Photometric Interpretation is MONOCHROME1": for a MONOCHROME1 image
INVERSE *restates* the MONOCHROME1 inversion, it is not a second one. So the output is inverted
once when the image is MONOCHROME1 or its Presentation LUT Shape is INVERSE (MONOCHROME2 +
INVERSE inverts; MONOCHROME1 + INVERSE inverts once). For the non-conformant MONOCHROME1 +
IDENTITY, Photometric Interpretation wins (air stays dark; dcmtk lets the shape win and shows
such an image as a negative).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydicom.multival import MultiValue

LINEAR, LINEAR_EXACT, SIGMOID = "LINEAR", "LINEAR_EXACT", "SIGMOID"
VOI_FUNCTIONS = (LINEAR, LINEAR_EXACT, SIGMOID)
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")

Descriptor = tuple[int, int, int]


@dataclass(frozen=True)
class DisplayParams:
    """What the display pipeline needs from a header, already resolved for one window index."""
    photometric: str = "MONOCHROME2"
    bits_stored: int = 16
    bits_allocated: int = 16
    pixel_representation: int = 0                   # 1 = signed (two's complement) stored values
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut_descriptor: Descriptor | None = None   # (entries, first stored value mapped, bits)
    modality_lut_data: np.ndarray | None = field(default=None, repr=False, compare=False)
    voi_lut_descriptor: Descriptor | None = None        # (entries, first value mapped, bits)
    voi_lut_data: np.ndarray | None = field(default=None, repr=False, compare=False)
    voi_lut_explanation: str | None = None
    voi_lut_index: int | None = None                    # item of the VOI LUT Sequence used
    window_center: float | None = None                  # the window picked by window_index
    window_width: float | None = None
    window_explanation: str | None = None
    window_index: int | None = None                     # index of the value pair used
    windows: tuple[tuple[float, float], ...] = ()       # every (center, width) pair in the header
    voi_lut_function: str = LINEAR
    presentation_lut_shape: str | None = None           # IDENTITY | INVERSE | None (absent)
    padding_value: int | None = None                    # stored-value space, signed per representation
    padding_range_limit: int | None = None
    dataset: Any = field(default=None, repr=False, compare=False)   # source header (kaggle mode)

    @property
    def signed(self) -> bool:
        return self.pixel_representation == 1

    @property
    def inverted(self) -> bool:
        """Output polarity: see the module docstring."""
        return self.photometric == "MONOCHROME1" or self.presentation_lut_shape == "INVERSE"


@dataclass(frozen=True)
class WindowUsed:
    """What was applied, for the manifest."""
    kind: str                          # window | voi_lut | minmax | percentile | explicit | kaggle
    center: float | None = None
    width: float | None = None
    function: str | None = None        # LINEAR | LINEAR_EXACT | SIGMOID (None for a LUT)
    lut: str | None = None             # VOI LUT explanation / description when a LUT was used
    index: int | None = None           # header window / VOI LUT item used
    percentiles: tuple[float, float] | None = None
    inverted: bool = False
    note: str | None = None            # e.g. why header mode fell back to percentiles

    def as_dict(self) -> dict:
        d = asdict(self)
        d["percentiles"] = list(self.percentiles) if self.percentiles else None
        return d


# ---------------------------------------------------------------- header -> DisplayParams

def _float(v, default: float) -> float:
    try:
        return float(v) if v not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _floats(v) -> list[float]:
    """A DS / numeric value or list of them; unreadable values count as absent."""
    if v is None or v == "":
        return []
    try:
        return [float(x) for x in (v if isinstance(v, (list, tuple, MultiValue)) else [v])]
    except (TypeError, ValueError):
        return []


def _to_stored_scalar(v: int, bits_stored: int, signed: bool) -> int:
    return int(stored_values(np.array([int(v)], dtype=np.int64), bits=bits_stored, signed=signed)[0])


def lut_descriptor(desc, signed: bool | None = None) -> Descriptor:
    """Normalise a LUT Descriptor (PS3.3 C.11.1.1.1 / C.11.2.1.1): 0 entries means 65536; the
    first value mapped is SS for signed pixel representation, US otherwise (signed=None: keep
    the value as given)."""
    n, first, bits = (int(x) for x in list(desc)[:3])
    n = n or 65536
    if signed is True and first >= 0x8000:
        first -= 0x10000
    elif signed is False and first < 0:
        first += 0x10000
    return n, first, bits


def _lut_data(item, n: int, bits: int, little_endian: bool) -> np.ndarray:
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):   # OW: 16 bits per entry, or 8-bit entries packed
        if bits <= 8 and len(data) in (n, n + 1):     # n + 1: an odd count padded to even length
            return np.frombuffer(data[:n], dtype=np.uint8).astype(np.int64)
        return np.frombuffer(data[:len(data) // 2 * 2], dtype="<u2" if little_endian else ">u2").astype(np.int64)
    return np.asarray([data] if isinstance(data, int) else list(data), dtype=np.int64)


MODALITY_LUT_REASON = ("damaged Modality LUT Sequence (LUT Descriptor or LUT Data missing, malformed, "
                       "or fewer entries than declared)")


class DamagedLUT(ValueError):
    """A LUT Sequence item vindr cannot apply as the standard defines it (hostile11). Only a
    Modality LUT's damage leaves :func:`display_params` (a VOI LUT's counts as absent)."""
    reason = MODALITY_LUT_REASON


class BadRescale(ValueError):
    """Rescale Slope or Intercept NaN or infinite (a DS of 'NaN' or 'inf'), or so large that the
    modality values overflow (1e308), hostile11."""
    reason = "Rescale Slope or Rescale Intercept is not a finite number, or the modality values overflow"


def lut_item(item, signed: bool, little_endian: bool) -> tuple[Descriptor, np.ndarray]:
    """(descriptor, entries) of a Modality / VOI LUT Sequence item, or :class:`DamagedLUT` when
    its LUT Descriptor is not three numbers with 1..16 bits per entry (PS3.3 C.11.1.1.1 allows 8
    or 16; 10 and 12 occur), or its LUT Data is missing, empty or shorter than the entries the
    descriptor declares (0 meaning 65536). A longer table is used up to the declared count."""
    try:
        desc = item.get("LUTDescriptor") if item is not None else None
        values = list(desc) if isinstance(desc, (list, tuple, MultiValue)) else None
        if values is None or len(values) != 3 or not all(isinstance(v, int) for v in values):
            raise DamagedLUT("LUT Descriptor is not three numbers")
        n, first, bits = lut_descriptor(values, signed)
        if not 1 <= bits <= 16 or item.get("LUTData") is None:
            raise DamagedLUT("LUT Descriptor bits or LUT Data missing")
        data = _lut_data(item, n, bits, little_endian)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        if isinstance(exc, DamagedLUT):
            raise
        raise DamagedLUT("LUT item unreadable") from None
    if len(data) < n:
        raise DamagedLUT("LUT Data shorter than declared")
    return (n, first, bits), data[:n]


def _padding(v, bits_stored: int, signed: bool) -> int | None:
    """Pixel Padding Value / Range Limit as one stored value; anything but one integer (several
    values, bytes) counts as absent, as an unreadable window does."""
    if isinstance(v, (list, tuple, MultiValue)):
        v = v[0] if len(v) == 1 else None
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        return None
    return _to_stored_scalar(int(v), bits_stored, signed)


def display_params(ds, window_index: int = 0) -> DisplayParams:
    """Read the display attributes of a pydicom Dataset. A window / VOI LUT index past the end
    falls back to the first one (the index actually used is recorded)."""
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    bits_allocated = int(ds.get("BitsAllocated", 16) or 16)
    bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
    little = getattr(ds, "original_encoding", (None, True))[1] is not False
    kw: dict[str, Any] = {}

    mseq = ds.get("ModalityLUTSequence")
    if mseq:      # damaged: DamagedLUT (the modality values are unknown: the image is not shown)
        kw["modality_lut_descriptor"], kw["modality_lut_data"] = lut_item(mseq[0], signed, little)
    else:
        kw["rescale_slope"] = _float(ds.get("RescaleSlope"), 1.0)
        kw["rescale_intercept"] = _float(ds.get("RescaleIntercept"), 0.0)
        slope, intercept = kw["rescale_slope"], kw["rescale_intercept"]
        if not (math.isfinite(slope) and math.isfinite(intercept)) or \
                abs(slope) * 2.0 ** min(max(bits_stored, 1), 64) + abs(intercept) > 1e300:   # e.g. slope 1e308
            raise BadRescale(BadRescale.reason)

    vseq = ds.get("VOILUTSequence")
    if vseq:
        i = window_index if 0 <= window_index < len(vseq) else 0
        item = vseq[i]
        try:      # damaged (e.g. LUT Data removed by a de-identifier): as if absent, the window is used
            desc, data = lut_item(item, signed, little)
        except DamagedLUT:
            pass
        else:
            kw.update(voi_lut_descriptor=desc, voi_lut_data=data,
                      voi_lut_explanation=str(item.get("LUTExplanation", "") or "") or None, voi_lut_index=i)

    centers, widths = _floats(ds.get("WindowCenter")), _floats(ds.get("WindowWidth"))
    windows = tuple(zip(centers, widths))
    if windows:
        i = window_index if 0 <= window_index < len(windows) else 0
        expl = ds.get("WindowCenterWidthExplanation")
        expl = list(expl) if isinstance(expl, MultiValue) else ([expl] if expl else [])
        kw.update(window_center=windows[i][0], window_width=windows[i][1], window_index=i,
                  window_explanation=str(expl[i]) if i < len(expl) else None, windows=windows)

    func = str(ds.get("VOILUTFunction", "") or LINEAR).strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper() or None
    pad, pad_limit = ds.get("PixelPaddingValue"), ds.get("PixelPaddingRangeLimit")
    return DisplayParams(
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        bits_stored=bits_stored, bits_allocated=bits_allocated, pixel_representation=int(signed),
        voi_lut_function=func if func in VOI_FUNCTIONS else LINEAR,   # unknown -> the default, as dcmtk
        presentation_lut_shape=shape,
        padding_value=(pad_value := _padding(pad, bits_stored, signed)),
        padding_range_limit=None if pad_value is None else _padding(pad_limit, bits_stored, signed),
        dataset=ds, **kw)


# ---------------------------------------------------------------- the transforms

def stored_values(raw: np.ndarray, p: DisplayParams | None = None, *, bits: int | None = None,
                  signed: bool | None = None) -> np.ndarray:
    """Raw pixel words -> stored values (int64): keep the low BitsStored bits, then sign-extend
    when PixelRepresentation is 1. Idempotent, so already-clean values pass unchanged."""
    bits = p.bits_stored if bits is None else bits
    signed = p.signed if signed is None else signed
    a = np.asarray(raw).astype(np.int64) & ((1 << bits) - 1)
    if signed:
        a = np.where(a >= (1 << (bits - 1)), a - (1 << bits), a)
    return a


def padding_mask(stored: np.ndarray, p: DisplayParams) -> np.ndarray:
    """True where a stored value is Pixel Padding (the value, or the range up to the limit)."""
    if p.padding_value is None:
        return np.zeros(np.shape(stored), dtype=bool)
    if p.padding_range_limit is None:
        return stored == p.padding_value
    lo, hi = sorted((p.padding_value, p.padding_range_limit))
    return (stored >= lo) & (stored <= hi)


def _lookup(x: np.ndarray, desc: Descriptor, data: np.ndarray) -> np.ndarray:
    """LUT entry for each input: below the first value mapped -> first entry, past the end ->
    last entry; non-integer inputs use the nearest entry (half up)."""
    n, first, _ = lut_descriptor(desc)
    data = np.asarray(data)
    n = min(n, len(data))
    idx = np.floor(np.asarray(x, dtype=np.float64) + 0.5) - first
    return data[np.clip(idx, 0, n - 1).astype(np.int64)]


def modality_lut(stored: np.ndarray, p: DisplayParams) -> np.ndarray:
    """Stored values -> modality values (float64): the Modality LUT Sequence if present,
    else Rescale Slope / Intercept."""
    if p.modality_lut_data is not None:
        return _lookup(stored, p.modality_lut_descriptor, p.modality_lut_data).astype(np.float64)
    return np.asarray(stored, dtype=np.float64) * p.rescale_slope + p.rescale_intercept


def apply_window(x: np.ndarray, center: float, width: float, function: str = LINEAR,
                 out_max: float = 255) -> np.ndarray:
    """PS3.3 C.11.2.1.2 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1 (SIGMOID) with
    ymin = 0, ymax = out_max. Returns float64 (not rounded)."""
    x = np.asarray(x, dtype=np.float64)
    f = (function or LINEAR).strip().upper()
    c, w, ymax = float(center), float(width), float(out_max)
    if not (np.isfinite(c) and np.isfinite(w)):
        raise ValueError(f"window center/width must be finite numbers (got {center}, {width})")
    if f == LINEAR:
        if w < 1:
            raise ValueError(f"Window Width {width:g} is invalid for VOI LUT Function LINEAR: "
                             "it must be >= 1 (PS3.3 C.11.2.1.2.1)")
        c, w = c - 0.5, w - 1
        if w == 0:        # a threshold: x <= c - 0.5 -> 0, else ymax
            return np.where(x <= c, 0.0, ymax)
    elif f in (LINEAR_EXACT, SIGMOID):
        if w <= 0:
            raise ValueError(f"Window Width {width:g} is invalid for VOI LUT Function {f}: "
                             "it must be > 0 (PS3.3 C.11.2.1.3)")
        if f == SIGMOID:
            with np.errstate(over="ignore"):
                return ymax / (1.0 + np.exp(-4.0 * (x - c) / w))
    else:
        raise ValueError(f"unknown VOI LUT Function {function!r} (LINEAR, LINEAR_EXACT or SIGMOID)")
    y = ((x - c) / w + 0.5) * ymax
    return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, ymax, y))


def apply_voi_lut(x: np.ndarray, descriptor, data, out_max: float = 255) -> np.ndarray:
    """VOI LUT Sequence mapping (PS3.3 C.11.2.1.1): inputs below the first value mapped take the
    first entry, inputs past the table the last; entries span 0 .. 2**bits - 1 (bits =
    descriptor[2]) and are rescaled to 0 .. out_max. A table whose entries exceed the declared
    depth is scaled by the depth its largest entry needs."""
    _, _, bits = lut_descriptor(descriptor)
    data = np.asarray(data, dtype=np.int64)
    top = (1 << bits) - 1
    if data.size and int(data.max()) > top:
        top = (1 << int(data.max()).bit_length()) - 1
    return _lookup(x, descriptor, data).astype(np.float64) * (float(out_max) / top)


def to_output(y: np.ndarray, out_max: int) -> np.ndarray:
    """Round half up, clip to [0, out_max], as uint8 (out_max <= 255) or uint16."""
    dtype = np.uint8 if out_max <= 0xFF else np.uint16
    return np.clip(np.floor(np.asarray(y, dtype=np.float64) + 0.5), 0, out_max).astype(dtype)
