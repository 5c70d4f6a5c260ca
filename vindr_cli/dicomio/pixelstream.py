"""Copy the pixel data element byte for byte from input to output, hashing its value: native
data, and the items of encapsulated data (one range, after a walk of their headers), by the
kernel (``os.copy_file_range``) where input and output allow it, hashed as read back from the
output, else in chunks through one buffer (zip members, other file systems).

The hash is the SHA-256 of the element's value field as stored: for native data the
pixel bytes; for encapsulated data every item (basic offset table included) with its
item header, up to but not including the sequence delimiter.
"""
from __future__ import annotations

import errno
import hashlib
import os
import struct
import threading
from typing import BinaryIO

from vindr_cli.dicomio.header import BadInput

CHUNK = 4 << 20
UNDEFINED = 0xFFFFFFFF
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
PIXEL_VRS = {b"OB", b"OW", b"OD", b"OF", b"OL", b"OV", b"UN"}
ITEM = 0xFFFEE000
SEQ_DELIM = 0xFFFEE0DD
TRUNCATED = "truncated pixel data (file ends before the pixel data does)"   # the one fixed reason


_LOCAL = threading.local()


def _buffer(n: int) -> memoryview:
    """A view of this thread's reused copy buffer (CHUNK bytes), at most ``n`` long: a fresh
    4 MiB buffer per file costs ~900 page faults (the kernel zeroing each page) whenever the
    allocator has handed the memory back between files, as it does next to strip_frames'
    allocations (bench/README.md "anonenc")."""
    buf = getattr(_LOCAL, "buf", None)
    if buf is None:
        buf = _LOCAL.buf = memoryview(bytearray(CHUNK))
    return buf[:max(1, min(CHUNK, n))]


def _read_exact(src: BinaryIO, n: int) -> bytes:
    b = src.read(n)
    if len(b) != n:
        raise BadInput("failed", TRUNCATED)
    return b


def _copy(src: BinaryIO, dst: BinaryIO | None, n: int, h) -> None:
    """Copy n bytes through one reused buffer (no per-chunk allocation), hashing them."""
    buf = _buffer(n)
    readinto = getattr(src, "readinto", None)
    while n > 0:
        want = min(len(buf), n)
        if readinto is not None:
            got = readinto(buf[:want])
            chunk = buf[:got]
        else:  # streams without readinto
            data = src.read(want)
            got, chunk = len(data), data
        if not got:
            raise BadInput("failed", TRUNCATED)
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        n -= got


# copy_file_range cannot copy here (another file system, an old kernel, a file system without
# it): the bytes go through the buffer instead
_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.ETXTBSY}


def _kernel_copy(src: BinaryIO, dst: BinaryIO, n: int, h) -> bool:
    """Copy ``n`` bytes from src's position to dst's by ``os.copy_file_range`` (the kernel copies
    page cache to page cache: writing a new file from user space costs far more CPU, see
    bench/README.md "anonhdr"), then hash them as *written*: read back from dst's own file, so
    the hash is of the output's bytes even if the input changes meanwhile. False (nothing
    copied, both positions unchanged) where it cannot be done: a stream without a descriptor
    (a zip member), dst not open for reading, a kernel or file system without it. A file
    ending early is TRUNCATED, as with the buffered copy; other OSErrors (a full disk) raise."""
    try:
        sfd, dfd = src.fileno(), dst.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if not getattr(dst, "readable", lambda: False)() or n <= 0:
        return False
    dst.flush()
    s0, d0 = src.tell(), dst.tell()
    done = 0
    while done < n:
        try:
            got = os.copy_file_range(sfd, dfd, n - done, s0 + done, d0 + done)
        except OSError as exc:
            if done == 0 and exc.errno in _NO_KERNEL_COPY:
                return False
            raise
        if not got:
            if done == 0:       # some file systems answer 0 where they mean EXDEV: the buffered copy judges
                return False
            raise BadInput("failed", TRUNCATED)
        done += got
    buf = _buffer(n)
    pos = 0
    while pos < n:
        got = os.preadv(dfd, [buf[:min(len(buf), n - pos)]], d0 + pos)
        if not got:
            raise BadInput("failed", TRUNCATED)
        h.update(buf[:got])
        pos += got
    src.seek(s0 + n)
    dst.seek(d0 + n)
    return True


SUBSAMPLED_422 = ("YBR_FULL_422", "YBR_PARTIAL_422")


def native_pixel_length(ds) -> int | None:
    """Bytes of native pixel data the header describes: Rows x Columns x samples x Bits
    Allocated x frames, where a native YBR_FULL_422 pixel stores 2 samples, not 3 (PS3.5
    8.2.1: Cb and Cr are shared by two pixels). None when the header cannot tell."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits, spp = int(ds.BitsAllocated), int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    if spp == 3 and str(ds.get("PhotometricInterpretation", "")).strip().upper() in SUBSAMPLED_422:
        spp = 2
    return (rows * cols * bits * spp * frames + 7) // 8


PIXEL_DESCRIPTION_FAULT = "damaged header: the pixel data is not described (a required Image Pixel attribute is missing or impossible)"


def pixel_description_fault(ds, has_pixels: bool) -> str | None:
    """Why the top-level pixel data of ``ds`` cannot be what its header says (a fixed reason),
    or None (``has_pixels``: the file has a top-level Pixel Data element; the header may
    have been read without it). Pixel Data needs Rows, Columns, Bits Allocated, Samples per Pixel and Photometric
    Interpretation (PS3.3 C.7.6.3, Type 1), with Bits Stored <= Bits Allocated, High Bit below
    Bits Allocated, Pixel Representation 0 or 1: an output without them is written but cannot
    be read, which is a loss no one would notice until too late."""
    if not has_pixels:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        allocated, spp = int(ds.BitsAllocated), int(ds.SamplesPerPixel)
        photometric = str(ds.PhotometricInterpretation).strip()
        stored = int(ds.get("BitsStored", allocated) or allocated)
        high = int(ds.get("HighBit", stored - 1) if ds.get("HighBit") is not None else stored - 1)
        signed = int(ds.get("PixelRepresentation", 0) or 0)
    except (AttributeError, KeyError, TypeError, ValueError):
        return PIXEL_DESCRIPTION_FAULT
    if (rows < 1 or cols < 1 or allocated not in (1, 8, 16, 32, 64) or spp not in (1, 3, 4) or not photometric
            or not 1 <= stored <= allocated or not 0 <= high < allocated or signed not in (0, 1)):
        return PIXEL_DESCRIPTION_FAULT
    return None


def _element_header(src: BinaryIO, e: str, implicit: bool) -> tuple[bytes, int]:
    """(the pixel data element's tag/VR/length bytes, its value length) at src's position."""
    tag_bytes = _read_exact(src, 4)
    group, elem = struct.unpack(e + "HH", tag_bytes)
    if group != 0x7FE0:
        raise BadInput("failed", "pixel data element not where expected")
    if implicit:
        len_bytes = _read_exact(src, 4)
        return tag_bytes + len_bytes, struct.unpack(e + "L", len_bytes)[0]
    vr = _read_exact(src, 2)
    if vr not in PIXEL_VRS:
        raise BadInput("failed", "malformed pixel data element (unexpected VR; transfer syntax mismatch?)")
    if vr in LONG_VRS:
        rest = _read_exact(src, 6)
        return tag_bytes + vr + rest, struct.unpack(e + "L", rest[2:])[0]
    rest = _read_exact(src, 2)
    return tag_bytes + vr + rest, struct.unpack(e + "H", rest)[0]


def check_pixel_element(src: BinaryIO, size: int, *, implicit: bool, little: bool,
                        expected: int | None = None) -> None:
    """Check, without reading the values, that the pixel data element at src's position is
    whole: a defined length that fits in the file (and matches ``expected`` as in
    :func:`copy_pixel_element`), or items that all fit, up to the sequence delimiter.
    Raises BadInput with the same fixed reasons as the copy, so ``vindr decode`` reports a
    truncated file as ``vindr anonymize`` does."""
    e = "<" if little else ">"
    start = src.tell()
    header, length = _element_header(src, e, implicit)
    pos = start + len(header)
    if length != UNDEFINED:
        if expected is not None and not (expected <= length <= expected + 1):
            raise BadInput("failed", "pixel data length does not match Rows, Columns, Bits Allocated and frames")
        if pos + length > size:
            raise BadInput("failed", TRUNCATED)
        return
    while True:
        item = _read_exact(src, 8)
        pos += 8
        itag = (struct.unpack(e + "H", item[:2])[0] << 16) | struct.unpack(e + "H", item[2:4])[0]
        (ilen,) = struct.unpack(e + "L", item[4:])
        if itag == SEQ_DELIM:
            return
        if itag != ITEM or ilen == UNDEFINED:
            raise BadInput("failed", "malformed encapsulated pixel data (bad item tag or length)")
        if pos + ilen > size:
            raise BadInput("failed", TRUNCATED)
        src.seek(ilen, 1)
        pos += ilen


def _walk_items(src: BinaryIO, e: str, frames: int | None, size: int) -> tuple[list[tuple[int, int]], bytes]:
    """The encapsulated value's items at src's position, walked by their headers alone (no value
    read): [(position, length)] and the sequence delimiter's 8 bytes as stored. The checks and
    fixed reasons of the buffered copy, in its order (a bad item, an item past the end, fewer
    fragments than frames), so a file fails the same way whichever path copies it."""
    walked: list[tuple[int, int]] = []
    pos = src.tell()
    while True:
        item = _read_exact(src, 8)
        itag = (struct.unpack(e + "H", item[:2])[0] << 16) | struct.unpack(e + "H", item[2:4])[0]
        (ilen,) = struct.unpack(e + "L", item[4:])
        if itag == SEQ_DELIM:
            if frames is not None and len(walked) - 1 < frames:      # the first item is the offset table
                raise BadInput("failed", MISSING_FRAMES)
            return walked, item
        if itag != ITEM or ilen == UNDEFINED:
            raise BadInput("failed", "malformed encapsulated pixel data (bad item tag or length)")
        if pos + 8 + ilen > size:
            raise BadInput("failed", TRUNCATED)
        walked.append((pos, ilen))
        pos += 8 + ilen
        src.seek(pos)


def _kernel_items(src: BinaryIO, dst: BinaryIO, e: str, frames: int | None, h) -> bool:
    """Encapsulated pixel data whose items are written unchanged: the items (headers and values,
    one contiguous range) copied by the kernel (``_kernel_copy``: hashed as read back from the
    output, so the hash is of the written bytes, the same value as the buffered copy's: every
    item with its header, the delimiter excluded), then the delimiter as stored. The items are
    walked first by their headers (the buffered copy's checks and reasons), and the headers
    written are checked against that walk, so an input changed between the walk and the copy
    cannot leave an output whose structure was not checked. False (nothing written, src back
    at the first item) where the kernel cannot copy: the buffered copy takes over."""
    try:
        src.fileno(), dst.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if not getattr(dst, "readable", lambda: False)():
        return False
    first = src.tell()
    try:
        size = os.fstat(src.fileno()).st_size
    except OSError:
        return False
    walked, delimiter = _walk_items(src, e, frames, size)
    n = walked[-1][0] + 8 + walked[-1][1] - first if walked else 0
    src.seek(first)
    if n == 0:
        dst.write(delimiter[:4] + _ZERO)
        src.seek(first + 8)
        return True
    d0 = dst.tell()
    if not _kernel_copy(src, dst, n, h):
        src.seek(first)
        return False
    for pos, ilen in walked:             # the item headers as written are the ones walked
        head = os.pread(dst.fileno(), 8, d0 + pos - first)
        itag = (struct.unpack(e + "H", head[:2])[0] << 16) | struct.unpack(e + "H", head[2:4])[0] if len(head) == 8 else 0
        if itag != ITEM or struct.unpack(e + "L", head[4:])[0] != ilen:
            raise BadInput("failed", "malformed encapsulated pixel data (bad item tag or length)")
    dst.write(delimiter[:4] + _ZERO)
    src.seek(first + n + 8)
    return True


# the sequence delimiter's length, written as zero (PS3.5 7.5.2): copied as stored, a
# delimiter's 4 length bytes carried anything ('0077' of an ID) past the audit (review 10)
_ZERO = b"\0\0\0\0"
MISSING_FRAMES = "encapsulated pixel data holds fewer fragments than frames (a frame is missing)"


def copy_pixel_element(src: BinaryIO, dst: BinaryIO | None, *, implicit: bool, little: bool,
                       expected: int | None = None, frames: int | None = None) -> tuple[str, int]:
    """Copy one pixel data element at src's position to dst (None: only hash it).

    ``expected``: the native pixel data length the header describes; a defined length that
    disagrees (beyond one pad byte) means the file is not what it claims, and is refused.
    ``frames``: Number of Frames of encapsulated data; each frame needs at least one fragment
    (PS3.5 A.4), so fewer fragments than frames is a file cut or damaged, and is refused.
    Returns (sha256 hex of the value, number of bytes copied incl. the element header).
    """
    e = "<" if little else ">"
    start = src.tell()
    header, length = _element_header(src, e, implicit)
    if dst is not None:
        # the explicit VR header's 2 reserved bytes written as zeros, as PS3.5 7.1.2 sets them
        # (copied as stored, they carried 2 bytes of anything past the audit: review 10)
        dst.write(header[:6] + b"\0\0" + header[8:] if len(header) == 12 else header)
    h = hashlib.sha256()
    total = len(header)
    if length != UNDEFINED:
        if expected is not None and not (expected <= length <= expected + 1):
            raise BadInput("failed", "pixel data length does not match Rows, Columns, Bits Allocated and frames")
        if dst is None or not _kernel_copy(src, dst, length, h):
            _copy(src, dst, length, h)
        return h.hexdigest(), total + length
    if dst is not None and _kernel_items(src, dst, e, frames, h):
        return h.hexdigest(), src.tell() - start
    items = 0
    while True:  # encapsulated: items until the sequence delimiter
        item = _read_exact(src, 8)
        itag = (struct.unpack(e + "H", item[:2])[0] << 16) | struct.unpack(e + "H", item[2:4])[0]
        (ilen,) = struct.unpack(e + "L", item[4:])
        if dst is not None:
            dst.write(item[:4] + _ZERO if itag == SEQ_DELIM else item)
        total += 8
        if itag == SEQ_DELIM:
            if frames is not None and items - 1 < frames:      # the first item is the offset table
                raise BadInput("failed", MISSING_FRAMES)
            return h.hexdigest(), total
        items += 1
        if itag != ITEM or ilen == UNDEFINED:
            raise BadInput("failed", "malformed encapsulated pixel data (bad item tag or length)")
        h.update(item)
        _copy(src, dst, ilen, h)
        total += ilen


SCRATCH_KEEP = 64 << 20      # a thread keeps its scratch buffer up to this size between files


class ScratchSink:
    """A ``dst`` for :func:`copy_pixel_element` that keeps the element in memory: its bytes are
    written into this thread's reused scratch buffer (no fresh allocation, so no page faults,
    once the buffer has grown to the largest element), so that a caller that must both hash
    and look at the pixel data reads it once (deid.task's ``--burned-in off`` path). Use it as a
    context manager: the views of :meth:`element` are released on leaving it, and a buffer
    grown past ``SCRATCH_KEEP`` is not kept."""

    def __init__(self):
        buf = getattr(_LOCAL, "scratch", None)
        if buf is None:
            buf = _LOCAL.scratch = bytearray()
        self.buf, self.n, self._views = buf, 0, []

    def write(self, b) -> None:
        end = self.n + len(b)
        try:
            self.buf[self.n:end] = b      # grows the buffer when it must
        except BufferError:               # a view of it outlived its file (an error path): a new buffer
            fresh = bytearray(self.buf[:self.n])
            fresh[self.n:end] = b
            self.buf = _LOCAL.scratch = fresh
        self.n = end

    def element(self, little: bool = True, implicit: bool = False) -> tuple[int, memoryview]:
        """(the element's tag, a view of its value as stored: for encapsulated data the items
        with their headers, the sequence delimiter excluded) of the element written."""
        e = "<" if little else ">"
        group, elem = struct.unpack_from(e + "HH", self.buf, 0)
        if implicit:
            head, length = 8, struct.unpack_from(e + "L", self.buf, 4)[0]
        elif bytes(self.buf[4:6]) in LONG_VRS:
            head, length = 12, struct.unpack_from(e + "L", self.buf, 8)[0]
        else:
            head, length = 8, struct.unpack_from(e + "H", self.buf, 6)[0]
        end = self.n - 8 if length == UNDEFINED else self.n
        view = memoryview(self.buf)[head:end]
        self._views.append(view)
        return (group << 16) | elem, view

    def __enter__(self) -> "ScratchSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the views handed out; a buffer grown past ``SCRATCH_KEEP`` is not kept."""
        for view in self._views:
            view.release()
        self._views.clear()
        if len(self.buf) > SCRATCH_KEEP:
            _LOCAL.scratch = bytearray()


def file_sha256(path) -> str:
    """SHA-256 of a whole file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_bytes_value(value: bytes) -> str:
    """Hash of an in-memory native pixel value (deflated files)."""
    return hashlib.sha256(value).hexdigest()


def file_pixel_hash(path) -> str | None:
    """SHA-256 of a Part 10 file's Pixel Data value as stored (None: no pixel data or a
    deflated file, whose value is only reachable through a full parse)."""
    from vindr_cli.dicomio.header import read_header

    with open(path, "rb") as f:
        h = read_header(f, path.stat().st_size)
        if h.pixel_offset is None:
            return None
        ts = h.ds.file_meta.TransferSyntaxUID
        f.seek(h.pixel_offset)
        return copy_pixel_element(f, None, implicit=ts.is_implicit_VR, little=ts.is_little_endian)[0]
