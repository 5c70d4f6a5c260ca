"""dicomio.pixelstream: ENCAPSULATED pixel data whose items are written unchanged is copied by
the kernel (os.copy_file_range over the items' range, hashed as read back from the output), with
the bytes, hash, file positions and fixed reasons of the buffered item-by-item copy; every
fallback (zip member, write-only output, a kernel or file system that cannot copy, 0 returned)
takes the buffered copy; an input changed between the walk and the copy cannot leave an output
whose items were not checked; whole anonymize runs write the same files either way."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import struct
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vindr_cli.dicomio.header import BadInput
from vindr_cli.dicomio.pixelstream import MISSING_FRAMES, TRUNCATED, copy_pixel_element

MALFORMED = "malformed encapsulated pixel data (bad item tag or length)"
PREFIX = b"HEADER--"


def _item(value: bytes, tag: int = 0xFFFEE000, length: int | None = None) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value) if length is None else length) + value


def _encaps(values: list[bytes], delim_len: int = 0) -> bytes:
    return b"".join(_item(v) for v in values) + struct.pack("<HHL", 0xFFFE, 0xE0DD, delim_len)


def _element(value: bytes) -> bytes:
    return struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF) + value


def _copy(src_path, dst, frames):
    with open(src_path, "rb") as f:
        f.read(3)                                  # a buffered reader part-way through its buffer
        f.seek(len(PREFIX))
        dst.write(b"OUTHEAD")
        try:
            got = copy_pixel_element(f, dst, implicit=False, little=True, frames=frames)
            return got, (f.tell(), dst.tell())
        except BadInput as exc:
            return exc.reason, None


def _both(tmp, body: bytes, frames=None, tail: bytes = b"TAIL"):
    """(kernel result, buffered result): (digest and length or reason, positions, bytes written)."""
    src = tmp / "src.bin"
    src.write_bytes(PREFIX + _element(body) + tail)
    res = {}
    with open(tmp / "k.bin", "w+b") as dst:
        digest, pos = _copy(src, dst, frames)
        dst.flush()
    res["kernel"] = (digest, pos, (tmp / "k.bin").read_bytes() if pos else None)
    dst = io.BytesIO()
    digest, pos = _copy(src, dst, frames)
    res["buffered"] = (digest, pos, dst.getvalue() if pos else None)
    return res


@st.composite
def layouts(draw):
    """Random item layouts: an offset table (empty or not), fragments of odd and even lengths,
    a delimiter with a stray length, and one of: intact, cut short, a bad item tag, an undefined
    item length, fewer fragments than the frames asked for."""
    values = draw(st.lists(st.binary(max_size=300), min_size=0, max_size=6))
    body = _encaps(values, draw(st.sampled_from([0, 0, 7])))
    frames = draw(st.one_of(st.none(), st.integers(1, 7)))
    fault = draw(st.sampled_from(["none", "none", "cut", "tag", "undefined"]))
    if fault == "cut":
        body = body[:draw(st.integers(0, max(0, len(body) - 1)))]
    elif fault in ("tag", "undefined") and values:
        at = draw(st.integers(0, len(values) - 1))
        off = sum(8 + len(v) for v in values[:at])
        head = (struct.pack("<HH", 0xFFFE, 0xE00D) + body[off + 4:off + 8] if fault == "tag"
                else body[off:off + 4] + b"\xff\xff\xff\xff")
        body = body[:off] + head + body[off + 8:]
    return body, frames, (b"" if fault == "cut" else b"TAIL")


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layouts())
def test_kernel_item_copy_is_the_buffered_copy(tmp_path_factory, layout):
    body, frames, tail = layout
    res = _both(tmp_path_factory.mktemp("e"), body, frames, tail)
    assert res["kernel"] == res["buffered"]


def test_kernel_path_taken_and_hash_is_of_the_items(tmp_path, monkeypatch):
    calls = []
    real = os.copy_file_range
    monkeypatch.setattr(os, "copy_file_range", lambda *a: calls.append(a) or real(*a))
    values = [struct.pack("<2L", 0, 0x1235), bytes(range(256)) * 4000 + b"x", b"\x01" * 4659]   # BOT, 2 frames
    res = _both(tmp_path, _encaps(values), frames=2)
    assert calls and sum(c[2] for c in calls) >= sum(8 + len(v) for v in values)    # one range, by the kernel
    assert res["kernel"] == res["buffered"]
    (digest, total), (src_pos, dst_pos), data = res["kernel"]
    items = b"".join(_item(v) for v in values)
    assert digest == hashlib.sha256(items).hexdigest()          # every item with its header, no delimiter
    assert total == 12 + len(items) + 8 and dst_pos == len(data) == 7 + total
    assert src_pos == len(PREFIX) + total
    assert data == b"OUTHEAD" + _element(_encaps(values))
    calls.clear()
    assert _both(tmp_path, _encaps(values), frames=3)["kernel"][0] == MISSING_FRAMES
    assert _both(tmp_path, _encaps(values)[:-30], tail=b"")["kernel"][0] == TRUNCATED
    assert not calls                                            # refused before anything was copied


@pytest.mark.parametrize("err", [errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, 0])
def test_kernel_refusal_before_the_first_byte_takes_the_buffered_copy(tmp_path, monkeypatch, err):
    """EXDEV (another file system), EINVAL, ENOSYS, EOPNOTSUPP, or 0 bytes copied (some file
    systems mean EXDEV by it): the buffered copy, same bytes and hash."""
    values = [b"", b"\x07" * 5001, b"\x09" * 12]
    want = _both(tmp_path, _encaps(values))["buffered"]
    calls = []

    def refuse(*a):
        calls.append(a)
        if err:
            raise OSError(err, os.strerror(err))
        return 0

    monkeypatch.setattr(os, "copy_file_range", refuse)
    got = _both(tmp_path, _encaps(values))["kernel"]
    assert calls and got == want


def test_other_errors_and_a_short_kernel_copy_are_not_hidden(tmp_path, monkeypatch):
    """A full disk raises as with the buffered write; a file ending after the first bytes is the
    TRUNCATED reason, as the buffered copy reads it."""
    values = [b"", b"\x05" * 9000]
    real = os.copy_file_range
    monkeypatch.setattr(os, "copy_file_range", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OSError):
        _both(tmp_path, _encaps(values))
    state = {"n": 0}

    def short(src, dst, count, s_off, d_off):
        state["n"] += 1
        return real(src, dst, min(count, 100), s_off, d_off) if state["n"] == 1 else 0

    monkeypatch.setattr(os, "copy_file_range", short)
    assert _both(tmp_path, _encaps(values))["kernel"][0] == TRUNCATED


def test_input_changed_between_walk_and_copy_is_refused(tmp_path, monkeypatch):
    """The input's second item header rewritten after the walk, before the kernel copies it:
    the header written is not the one walked, so the file fails (never an unchecked output)."""
    values = [b"", b"\x03" * 600, b"\x04" * 600]
    src = tmp_path / "src.bin"
    real = os.copy_file_range

    def tamper(sfd, dfd, count, s_off, d_off):
        at = len(PREFIX) + 12 + 8 + 8 + 600 + 4         # the second fragment's length field
        os.pwrite(sfd_w, struct.pack("<L", 0xFFFFFFFF), at)
        return real(sfd, dfd, count, s_off, d_off)

    src.write_bytes(PREFIX + _element(_encaps(values)) + b"TAIL")
    sfd_w = os.open(src, os.O_WRONLY)
    try:
        monkeypatch.setattr(os, "copy_file_range", tamper)
        with open(tmp_path / "k.bin", "w+b") as dst:
            assert _copy(src, dst, None)[0] == MALFORMED
    finally:
        os.close(sfd_w)


def test_write_only_output_and_zip_member_take_the_buffered_copy(tmp_path, monkeypatch):
    values = [b"", b"\x01\x02" * 4000]
    body = _element(_encaps(values))
    src = tmp_path / "src.bin"
    src.write_bytes(PREFIX + body)
    calls = []
    real = os.copy_file_range
    monkeypatch.setattr(os, "copy_file_range", lambda *a: calls.append(a) or real(*a))
    with open(src, "rb") as f, open(tmp_path / "wo.bin", "wb") as dst:
        f.seek(len(PREFIX))
        assert copy_pixel_element(f, dst, implicit=False, little=True)[1] == len(body)
    assert (tmp_path / "wo.bin").read_bytes() == body
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.write(src, "m.bin")
    with zipfile.ZipFile(tmp_path / "z.zip") as z, z.open("m.bin") as f:
        f.seek(len(PREFIX))
        dst = io.BytesIO()
        copy_pixel_element(f, dst, implicit=False, little=True)
    assert dst.getvalue() == body and not calls


# whole anonymize runs over real compressed files (pydicom's bundled test files): the files,
# pixel hashes and manifest rows of a run whose kernel cannot copy (ENOSYS: the buffered path)
# (secondary captures let through: allow_burned_in; JPEG-LS, RLE, JPEG 2000, JPEG, native, multi-frame)
REAL = ["MR_small_jpeg_ls_lossless.dcm", "emri_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "RG1_J2KR.dcm",
        "MR2_J2KR.dcm", "JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEGLSNearLossless_16.dcm", "CT_small.dcm"]


def _run(inp, out, key, mode):
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.tables import read_rows

    anonymize(inp, out, key_path=key, profile=load_profile(), workers=1, burned_in=mode, write_linkage=False,
              allow_burned_in=True)
    rows = sorted(read_rows(out / "manifest.parquet"), key=lambda r: r["input_key"])
    files = {r["output"]: (out / r["output"]).read_bytes() for r in rows if r["status"] == "ok"}
    return rows, files


@pytest.mark.parametrize("mode", ["off", "redact"])
def test_anonymize_writes_the_same_files_by_either_copy(tmp_path, key_file, monkeypatch, mode):
    from pydicom.data import get_testdata_file

    inp = tmp_path / "in"
    inp.mkdir()
    for name in REAL:
        p = get_testdata_file(name, download=False)
        if p:
            shutil.copy(p, inp / name)
    assert len(list(inp.iterdir())) >= 4
    calls = []
    real = os.copy_file_range
    monkeypatch.setattr(os, "copy_file_range", lambda *a: calls.append(a) or real(*a))
    rows, files = _run(inp, tmp_path / "k", key_file, mode)
    assert calls                                               # the kernel copied some pixel data
    monkeypatch.setattr(os, "copy_file_range", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSYS, "no")))
    rows_b, files_b = _run(inp, tmp_path / "b", key_file, mode)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("duration_s", "worker")} for r in rs]  # noqa: E731
    assert strip(rows) == strip(rows_b) and files == files_b
    assert sum(r["status"] == "ok" for r in rows) >= 6
    copied = [r for r in rows if r["status"] == "ok" and not r["pixels_modified"]]
    assert len(calls) >= len(copied) >= (6 if mode == "off" else 1)    # each one's pixel data by the kernel
    for r in rows:                                             # the hash is of the bytes written
        if r["status"] == "ok" and r["pixel_sha256"]:
            from vindr_cli.dicomio.pixelstream import file_pixel_hash
            assert file_pixel_hash(tmp_path / "k" / r["output"]) == r["pixel_sha256"]
