"""A pure-Python check of a JPEG / JPEG-LS frame's marker segments, before any decoder sees it.

Decoders are C and C++ libraries that trust the header they parse. Fuzzing the frames of
pydicom's JPEG test files (bench/jpeg_hostile.py: truncations, wrong segment lengths, text in
JFIF/Adobe numbers, zero or huge SOF sizes, random header bytes) showed GDCM ``abort()`` or
crash the interpreter (SIGABRT/SIGSEGV) on ~5 % of them, and pylibjpeg's libjpeg allocate
gigabytes for a SOF that declares 65535 x 65535 samples. This check refuses, with a fixed
reason, what is not a well-formed header for the image the DICOM attributes describe:

* SOI first; every marker segment's length inside the frame; no stray bytes or
  standalone markers before the scan;
* exactly one SOF (baseline, extended, progressive, lossless, their arithmetic forms, or
  JPEG-LS SOF55) before the scan, of the length its component count implies, with
  precision 2..16 and no more than Bits Allocated, lines and samples per line equal to
  Rows and Columns, components equal to Samples per Pixel, sampling factors 1..4 and
  distinct component ids;
* DHT, DQT and DRI segments whose tables fit their lengths; a SOS naming 1..4 of the SOF's
  components, of the length that implies;
* an EOI at the end (a truncated frame has none; CharLS spends ~4 CPU s on such a JPEG-LS scan).

APPn and COM contents are not looked at (the decoders here read none that matters for the
samples, and anonymize strips the ones holding text). The entropy-coded data after the SOS
are not checked otherwise (a decoder reports damage there as an error; GDCM, which may not, runs only
in a child process: ``pixels.isolated``). A few microseconds per frame.

In ``dicomio`` (a shared leaf) so that every stage that decodes can use it: ``vindr decode``
(``pixels.decode``) does, and so do ``vindr anonymize``'s and ``vindr audit``'s pixel
scan (``deid.redact._frames``, through :func:`check_dataset`).
"""
from __future__ import annotations

import struct

REASON = "malformed JPEG codestream (its header does not describe this image)"

# Start Of Frame markers: 0xC0-0xC3 (Huffman), 0xC9-0xCB (arithmetic), 0xF7 (JPEG-LS SOF55).
# Hierarchical (0xC5-0xC7, 0xCD-0xCF, DHP) is not a DICOM transfer syntax of ours.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB, 0xF7})
_SOI, _SOS, _DHT, _DQT, _DRI = 0xD8, 0xDA, 0xC4, 0xDB, 0xDD
# Segments a header may hold besides those: APPn, COM, DAC (arithmetic tables), JPEG-LS LSE
_OTHER = frozenset(range(0xE0, 0xF0)) | {0xFE, 0xCC, 0xF8}


class MalformedJPEG(ValueError):
    """The frame's header is not well formed for the image; ``reason`` is :data:`REASON`."""

    def __init__(self):
        super().__init__(REASON)
        self.reason = REASON


# the transfer syntaxes whose frames are JPEG or JPEG-LS codestreams: baseline, extended,
# lossless, lossless SV1, JPEG-LS lossless and near-lossless
FAMILY = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})


def check_dataset(ds, clean=None) -> None:
    """Raise :class:`MalformedJPEG` unless every frame of ``ds``'s Pixel Data is well formed
    (:func:`check_frame`) when its transfer syntax is of :data:`FAMILY`; other syntaxes pass.
    Frames that cannot even be split out of the encapsulation are malformed too. ``clean``:
    applied to each frame where it succeeds: the EOI test judges the frame as written (deid.redact
    strips bytes after the EOI, which would fail it here), the header test the original frame,
    which is what the decoder reads (review 8 P3: a malformed table the cleaning drops was
    never checked, yet reached GDCM)."""
    if str(ds.file_meta.get("TransferSyntaxUID", "")) not in FAMILY:
        return
    from pydicom.encaps import generate_frames

    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
        frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
    except Exception:
        raise MalformedJPEG() from None
    for frame in frames:
        written = frame
        if clean is not None:
            try:
                written = clean(frame)
            except Exception:
                pass                       # as it is: the check judges it
        # the header as the decoder will see it: the ORIGINAL bytes (a table the cleaning drops
        # is still read by the decoder of the original, review 8 P3); the end as written
        if not _well_formed(memoryview(frame), rows, columns, samples, bits) or not _ends(written):
            raise MalformedJPEG()


def check_frame(frame: bytes, *, rows: int, columns: int, samples: int, bits_allocated: int) -> None:
    """Raise :class:`MalformedJPEG` unless the frame's header is well formed and describes
    a ``rows`` x ``columns`` image of ``samples`` components of at most ``bits_allocated`` bits."""
    if not _well_formed(memoryview(frame), rows, columns, samples, bits_allocated) or not _ends(frame):
        raise MalformedJPEG()


def _ends(frame: bytes) -> bool:
    """The frame ends with EOI (a fragment's padding, 0x00 or a 0xFF fill byte, aside): a
    truncated stream does not.
    CharLS (pyjpegls) spends ~4 CPU s on a JPEG-LS scan cut short without its EOI (at any image
    size), and the JPEG decoders return the rows they had, the rest filled in, as if whole."""
    end = len(frame)
    while end > 2 and frame[end - 1] in (0x00, 0xFF):
        end -= 1
    return frame[end - 2:end] == b"\xff\xd9"


def _well_formed(b: memoryview, rows: int, columns: int, samples: int, bits: int) -> bool:
    n = len(b)
    if n < 4 or b[0] != 0xFF or b[1] != _SOI:
        return False
    pos, ids, sof = 2, None, None
    while True:
        if pos + 4 > n or b[pos] != 0xFF:
            return False
        while b[pos + 1] == 0xFF:            # fill bytes before a marker (B.1.1.2)
            pos += 1
            if pos + 4 > n:
                return False
        marker = b[pos + 1]
        length = (b[pos + 2] << 8) | b[pos + 3]
        end = pos + 2 + length
        if length < 2 or end > n:
            return False
        seg = b[pos + 4:end]
        if marker in _SOF:
            if ids is not None or not _sof(seg, rows, columns, samples, bits):
                return False
            ids, sof = {seg[6 + 3 * i] for i in range(seg[5])}, marker
        elif marker == _SOS:
            return ids is not None and _sos(seg, ids, ls=sof == 0xF7)
        elif marker == _DHT:
            if not _dht(seg):
                return False
        elif marker == _DQT:
            if not _dqt(seg):
                return False
        elif marker == _DRI:
            if length != 4:
                return False
        elif marker not in _OTHER:
            return False
        pos = end


def _sof(seg: memoryview, rows: int, columns: int, samples: int, bits: int) -> bool:
    if len(seg) < 6:
        return False
    precision, lines, width = seg[0], *struct.unpack_from(">HH", seg, 1)
    nf = seg[5]
    if len(seg) != 6 + 3 * nf or nf != samples or not 1 <= nf <= 4:
        return False
    if not 2 <= precision <= min(16, bits) or lines != rows or width != columns:
        return False
    ids = set()
    for i in range(nf):
        cid, hv, tq = seg[6 + 3 * i:9 + 3 * i]
        if not (1 <= hv >> 4 <= 4 and 1 <= hv & 15 <= 4) or tq > 3 or cid in ids:
            return False
        ids.add(cid)
    return True


def _sos(seg: memoryview, ids: set, ls: bool) -> bool:
    """A scan header; JPEG-LS's table byte is a mapping table id (any value), JPEG's two
    Huffman / arithmetic table ids of 0..3."""
    if len(seg) < 1:
        return False
    ns = seg[0]
    if not 1 <= ns <= 4 or len(seg) != 4 + 2 * ns:
        return False
    seen = set()
    for i in range(ns):
        cid, tables = seg[1 + 2 * i], seg[2 + 2 * i]
        if cid not in ids or cid in seen or (not ls and (tables >> 4 > 3 or tables & 15 > 3)):
            return False
        seen.add(cid)
    return True


def _dht(seg: memoryview) -> bool:
    pos = 0
    while pos < len(seg):
        if pos + 17 > len(seg):
            return False
        tc_th = seg[pos]
        if tc_th >> 4 > 1 or tc_th & 15 > 3:
            return False
        count = sum(seg[pos + 1:pos + 17])
        if count > 256 or pos + 17 + count > len(seg):
            return False
        pos += 17 + count
    return pos > 0


def _dqt(seg: memoryview) -> bool:
    pos = 0
    while pos < len(seg):
        pq_tq = seg[pos]
        if pq_tq >> 4 > 1 or pq_tq & 15 > 3:
            return False
        pos += 1 + 64 * (1 + (pq_tq >> 4))
        if pos > len(seg):
            return False
    return pos > 0
