"""The fast answer of ``clean_frames`` (deid.redact.frames_unchanged, issue 13 "stripfast"):
the frames' markers walked over a memoryview, nothing copied, True only when nothing is to be
removed. Its oracle is the walk that builds the cleaned bytes (``_clean_t81`` /
``_drop_unused_tables`` / ``_clean_j2k``, unchanged since main): ``clean_frames`` with the fast
answer switched off is main's function, and for random marker layouts built on the frames of
pydicom's shipped JPEG, JPEG-LS and JPEG 2000 test files (APPn, COM, unused or redefined DQT /
DHT, RST, JPEG 2000 COM / skippable / pointer segments in the main and tile-part headers,
trailing bytes, cuts, flipped header bytes, fragment and offset-table layouts, several frames)
both give the same answer: None, the same cleaned frames, or _Unsure."""
from __future__ import annotations

import io
import warnings
from functools import cache

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

from vindr_cli.deid import redact

NAME = b"NGUYEN THI HUONG BN7734561"


def _seg(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


@cache
def _seeds() -> dict[str, list[tuple[str, bytes]]]:
    """(transfer syntax, first frame) of pydicom's shipped test files, under 400 kB, by family."""
    from helpers import shipped_frames

    out: dict[str, list] = {"t81": [], "j2k": []}
    for _, ds, frames in shipped_frames(redact._T81 | redact._J2K, limit=1):
        ts = str(ds.file_meta.TransferSyntaxUID)
        if frames and len(frames[0]) < 400_000:
            out["t81" if ts in redact._T81 else "j2k"].append((ts, frames[0]))
    return out


def _ds(ts: str, value: bytes, frames: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.NumberOfFrames = frames
    ds.PixelData = value
    return ds


def _answer(ds, fast: bool):
    saved = redact.frames_unchanged
    if not fast:
        redact.frames_unchanged = lambda *a: False       # main's clean_frames: every frame walked and built
    try:
        try:
            return ("value", redact.clean_frames(ds))
        except redact._Unsure:
            return ("unsure", None)
    finally:
        redact.frames_unchanged = saved


def _header_end(frame: bytes) -> int:
    """Where the JPEG frame's first SOS starts (its header's end), else 2."""
    i = 2
    while i + 4 <= len(frame) and frame[i] == 0xFF:
        if frame[i + 1] == 0xDA:
            return i
        i += 2 + int.from_bytes(frame[i + 2:i + 4], "big")
    return 2


_JFIF = _seg(0xE0, b"JFIF\0\x01\x01\x00\x00\x48\x00\x48\x00\x00")           # harmless: 72 dpi, no thumbnail
_BANNER = "Created by OpenJPEG version 2.5.0".encode()


def _t81_segments():
    text = st.sampled_from([NAME, b"", b"\0\0", b"Created by OpenJPEG version 2.5.0", b"Kakadu-v7.2"])
    return st.one_of(
        text.map(lambda t: _seg(0xFE, t)),                                         # COM
        st.just(_JFIF),
        st.tuples(st.integers(0xE0, 0xEF), text).map(lambda a: _seg(a[0], a[1])),   # APPn
        st.sampled_from([0, 1, 3]).map(lambda t: _seg(0xDB, bytes([t]) + (NAME * 3)[:64])),   # DQT
        st.sampled_from([0x00, 0x01, 0x13, 0x10]).map(
            lambda tc: _seg(0xC4, bytes([tc]) + bytes([0] * 7 + [20] + [0] * 8) + (NAME * 2)[:20])),   # DHT
        st.sampled_from([b"\xff\xd0", b"\xff\x01", b"\xff\xff"]),                     # RST / TEM / fill
    )


def _j2k_segments():
    text = st.sampled_from([NAME, b"", b"Created by OpenJPEG version 2.5.0", b"Kakadu-v7.2"])
    return st.one_of(
        text.map(lambda t: _seg(0x64, b"\x00\x01" + t)),                            # COM, Latin-1
        st.tuples(st.sampled_from([0x30, 0x3F, 0x55, 0x57, 0x58, 0x63, 0x6E]), text).map(lambda a: _seg(a[0], a[1])),
        st.just(_seg(0x5C, b"\x22" + bytes(8))),                                   # a QCD: kept where allowed
    )


@st.composite
def _frame(draw, family: str):
    ts, frame = draw(st.sampled_from(_seeds()[family]))
    if family == "t81":
        at = draw(st.sampled_from([2, _header_end(frame)]))
        inserted = b"".join(draw(st.lists(_t81_segments(), max_size=3)))
        frame = frame[:at] + inserted + frame[at:]
        if draw(st.booleans()) and frame.rstrip(b"\0\xff").endswith(b"\xff\xd9"):     # in the scan, before EOI
            end = frame.rstrip(b"\0\xff")
            frame = end[:-2] + draw(_t81_segments()) + end[-2:]
    else:
        sot = frame.find(b"\xff\x90")
        where = draw(st.sampled_from(["main", "tile", "none"]))
        inserted = b"".join(draw(st.lists(_j2k_segments(), min_size=1, max_size=3)))
        if where == "main" and sot > 0:
            frame = frame[:sot] + inserted + frame[sot:]
        elif where == "tile" and sot > 0 and sot + 12 <= len(frame):
            psot = int.from_bytes(frame[sot + 6:sot + 10], "big")
            fix = draw(st.booleans())
            new = (psot + len(inserted)) if psot and fix else psot
            frame = (frame[:sot + 6] + new.to_bytes(4, "big") + frame[sot + 10:sot + 12] + inserted
                     + frame[sot + 12:])
    frame += draw(st.sampled_from([b"", b"\0", b"\xff", b"\0\0\xff", NAME[:7], b"\xff\xd9\0"]))
    fault = draw(st.sampled_from(["none"] * 6 + ["cut", "flip"]))
    if fault == "cut":
        frame = frame[:draw(st.integers(1, len(frame)))]
    elif fault == "flip" and len(frame) > 4:
        k = draw(st.integers(0, min(len(frame), 80) - 1))
        frame = frame[:k] + bytes([draw(st.integers(0, 255))]) + frame[k + 1:]
    return ts, frame


@st.composite
def _pixel_data(draw, family: str):
    first = draw(_frame(family))
    ts = first[0]
    more = draw(st.lists(_frame(family).filter(lambda f: f[0] == ts), max_size=2)) if draw(st.booleans()) else []
    frames = [first[1]] + [f for _, f in more]
    layout = draw(st.sampled_from(["one", "bot", "two_fragments", "bad_bot", "frames_claimed"]))
    n = len(frames)
    if layout == "two_fragments" and min(map(len, frames)) >= 4:
        value = encapsulate(frames, fragments_per_frame=2, has_bot=draw(st.booleans()))
    elif layout == "bad_bot":                      # an offset table that is no table: text
        value = encapsulate(frames, has_bot=False)
        value = b"\xfe\xff\x00\xe0\x08\x00\x00\x00NGUYEN  " + value[8:]
    else:
        value = encapsulate(frames, has_bot=layout == "bot")
    if layout == "frames_claimed":
        n = draw(st.integers(1, n + 2))
    return ts, value, n


@pytest.mark.parametrize("family", ["t81", "j2k"])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_the_fast_answer_is_the_walk_s_answer(family, data):
    ts, value, n = data.draw(_pixel_data(family))
    ds = _ds(ts, value, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast, slow = _answer(ds, True), _answer(ds, False)
    assert fast == slow
    quick = redact.frames_unchanged(value, ts, n)
    if quick:
        assert slow == ("value", None)
    event("fast" if quick else "walked: " + ("unsure" if slow[0] == "unsure" else "none" if slow[1] is None else "cleaned"))


def test_the_frames_of_real_encoders_take_the_fast_path():
    """Each shipped frame that main's walk leaves as it is (None) is found so without building
    bytes, and a name added to it (COM, APP1, trailing) is not."""
    taken = 0
    for family in ("t81", "j2k"):
        for ts, frame in _seeds()[family]:
            value = encapsulate([frame])
            if _answer(_ds(ts, value, 1), False) != ("value", None):
                continue
            assert redact.frames_unchanged(value, ts, 1)
            taken += 1
            if family == "t81":
                at = _header_end(frame)
                planted = [frame[:2] + _seg(0xFE, NAME) + frame[2:], frame[:at] + _seg(0xE1, NAME) + frame[at:]]
            else:
                sot = frame.find(b"\xff\x90")
                planted = [frame[:sot] + _seg(0x64, b"\x00\x01" + NAME) + frame[sot:]]
            for bad in planted + [frame + NAME]:
                bad_value = encapsulate([bad])
                assert not redact.frames_unchanged(bad_value, ts, 1)
                assert _answer(_ds(ts, bad_value, 1), False) != ("value", None)
    assert taken >= 10


def test_strip_frames_gives_the_same_outcome_with_and_without_the_fast_answer():
    """Whole strip_frames (decode and compare included) on shipped files and on one with a
    name in a COM segment: the same frames written, the same values."""
    import pydicom

    from helpers import shipped_frames

    def outcome(ds, fast):
        saved = redact.frames_unchanged
        if not fast:
            redact.frames_unchanged = lambda *a: False
        try:
            try:
                o = redact.strip_frames(ds)
            except redact.PixelError as exc:
                return ("error", exc.reason)
            return (o.frames, None if o.arr is None else o.arr.tobytes())
        finally:
            redact.frames_unchanged = saved

    checked = changed = 0
    for name, ds, frames in shipped_frames(redact.FRAME_SYNTAXES):
        if len(ds.PixelData) > 300_000:
            continue
        variants = [ds]
        if len(frames) == 1 and str(ds.file_meta.TransferSyntaxUID) in redact._T81:
            named = pydicom.Dataset(ds)
            named.file_meta = ds.file_meta
            named.PixelData = encapsulate([frames[0][:2] + _seg(0xFE, NAME) + frames[0][2:]])
            variants.append(named)
        for v in variants:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a, b = outcome(v, True), outcome(v, False)
            assert a == b, name
            checked += 1
            changed += a[0] is not None and a[0] != "error"
    assert checked >= 15 and changed >= 3


# ------------------------------------------------------------------ the --burned-in off path: one read

def _shipped_paths(syntaxes) -> list:
    import glob
    import os

    import pydicom

    folder = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "*.dcm"))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
        if str(ds.file_meta.get("TransferSyntaxUID", "")) in syntaxes and os.path.getsize(path) < 300_000:
            out.append(path)
    return out


def test_the_scratch_sink_holds_the_value_the_hash_pass_hashed():
    """pixelstream.ScratchSink as the copy's destination: the same digest as the hash pass
    alone, and the value pydicom parses as Pixel Data (encapsulated and native files)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    from vindr_cli.deid import task
    from vindr_cli.dicomio.header import read_header
    from vindr_cli.dicomio.pixelstream import ScratchSink

    paths = _shipped_paths(redact.FRAME_SYNTAXES | {ExplicitVRLittleEndian, ImplicitVRLittleEndian})
    checked = 0
    for path in paths:
        with open(path, "rb") as f:
            try:
                header = read_header(f, __import__("os").path.getsize(path))
            except Exception:
                continue
            if header.pixel_offset is None:
                continue
            try:
                alone = task._copy_pixels(f, None, header)
            except Exception:
                continue
            ts = header.ds.file_meta.TransferSyntaxUID
            with ScratchSink() as sink:
                assert task._copy_pixels(f, sink, header) == alone
                tag, value = sink.element(little=ts.is_little_endian, implicit=ts.is_implicit_VR)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    full = pydicom.dcmread(path)
                if tag == 0x7FE00010:
                    assert bytes(value) == full.PixelData, path
                    checked += 1
    assert checked >= 20


def _off_world(tmp_path):
    """Shipped JPEG / JPEG-LS / JPEG 2000 files as they are, and variants: a name in a COM
    segment, two fragments for one frame, a data set trailing padding element after the Pixel
    Data, a name after the frame's end."""
    import shutil

    import pydicom
    from pydicom.encaps import generate_frames
    from pydicom.uid import generate_uid

    export = tmp_path / "export"
    export.mkdir()
    for path in _shipped_paths(redact.FRAME_SYNTAXES):
        name = path.rsplit("/", 1)[-1][:-4]
        shutil.copy(path, export / f"{name}.dcm")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            try:
                frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
            except Exception:
                continue
            if len(frames) != 1 or len(frames[0]) < 8:
                continue
            ts = str(ds.file_meta.TransferSyntaxUID)
            frame = frames[0]
            com = _seg(0xFE, NAME) if ts in redact._T81 else _seg(0x64, b"\x00\x01" + NAME)
            at = 2 if ts in redact._T81 else frame.find(b"\xff\x90")
            for label, value in (("com", encapsulate([frame[:at] + com + frame[at:]])),
                                 ("two", encapsulate([frame], fragments_per_frame=2)),
                                 ("tail", encapsulate([frame + NAME])), ("padded", encapsulate([frame]))):
                ds.PixelData = value
                ds["PixelData"].is_undefined_length = True
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()   # not a duplicate
                if label == "padded":
                    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 16)
                buf = io.BytesIO()
                try:
                    ds.save_as(buf, enforce_file_format=True)
                except Exception:          # a shipped file pydicom reads but cannot write as it is
                    break
                (export / f"{name}_{label}.dcm").write_bytes(buf.getvalue())
    return export


def test_off_writes_the_same_files_whether_or_not_one_read_decides(tmp_path, monkeypatch):
    """Whole `--burned-in off` runs: with deid.task._unchanged_once and without it (every file
    through _original + strip_frames, main's path) the same files, the same manifest rows; the
    one read decided most unchanged files, and no file with a name in its frames."""
    import pyarrow.parquet as pq

    from helpers import key_file_in
    from vindr_cli.deid import task
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    export = _off_world(tmp_path)
    key = key_file_in(tmp_path)
    once = task._unchanged_once
    decided: list = []

    def counted(ds, f, header, *same):
        got = once(ds, f, header, *same)
        decided.append(got is not None)
        return got

    outs = {}
    for label, fn in (("once", counted), ("whole", lambda *a: None)):
        monkeypatch.setattr(task, "_unchanged_once", fn)
        out = tmp_path / label
        anonymize(export, out, key_path=key, profile=load_profile("basic"), workers=1, burned_in="off",
                  allow_burned_in=True, linkage=tmp_path / f"{label}.parquet")
        rows = sorted(pq.read_table(out / "manifest.parquet").to_pylist(), key=lambda r: r["input_key"])
        outs[label] = (out, rows)
    (a, ra), (b, rb) = outs["once"], outs["whole"]
    assert ra == rb
    ok = [r["output"] for r in ra if r["status"] == "ok"]
    assert len(ok) >= 20 and sum(r["pixels_modified"] for r in ra if r["status"] == "ok") >= 5
    for rel in ok:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        assert NAME not in (a / rel).read_bytes()
    assert sum(decided) >= 8 and not all(decided)


def test_off_input_changed_after_the_one_read_fails_the_file(tmp_path, monkeypatch):
    """The one read is what is walked and hashed; the copy is a second read, compared with it:
    an input that gets a name in a COM segment in between fails (CHANGED_SINCE_SCAN), nothing
    written (as review 9 H2 for the scanning modes)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    from helpers import anonymize_rows
    from vindr_cli.deid import task
    from vindr_cli.dicomio.pixelstream import ScratchSink

    src = tmp_path / "export" / "ls.dcm"
    src.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("MR_small_jpeg_ls_lossless.dcm", download=False))
        for tag in [t for t in ds.keys() if t > 0x7FE00010]:     # Pixel Data ends the file: one read decides
            del ds[tag]
        ds.save_as(src, enforce_file_format=True)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        ds.PixelData = encapsulate([frame[:2] + _seg(0xFE, NAME) + frame[2:]])
        ds["PixelData"].is_undefined_length = True
        named = tmp_path / "named.dcm"
        ds.save_as(named, enforce_file_format=True)
    copy, reads = task._copy_pixels, []

    def racing_input(src_f, out, header):
        digest = copy(src_f, out, header)
        reads.append(type(out).__name__)
        if isinstance(out, ScratchSink):       # after the one read: the name comes in
            src.write_bytes(named.read_bytes())
        return digest

    monkeypatch.setattr(task, "_copy_pixels", racing_input)
    out = tmp_path / "anon"
    rows = anonymize_rows(tmp_path, out, "off")
    assert reads[0] == "ScratchSink" and len(reads) == 2 and reads[1] != "NoneType"    # the one read, the copy
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", task.CHANGED_SINCE_SCAN)]
    assert not list(out.rglob("*.dcm")) and not list(out.rglob("*.vindr-part"))


def test_a_view_left_behind_does_not_break_the_next_file():
    """A view of the scratch buffer that outlived its file (never released: an error path)
    must not make the next file's read fail: the buffer cannot grow while exported, so
    ScratchSink takes a fresh one, with the bytes written so far."""
    from vindr_cli.dicomio.pixelstream import ScratchSink

    first = ScratchSink()
    first.write(b"\xe0\x7f\x10\x00OB\0\0" + (4).to_bytes(4, "little") + b"abcd")
    tag, stale = first.element()                 # never released
    assert tag == 0x7FE00010 and bytes(stale) == b"abcd"
    with ScratchSink() as second:
        second.write(b"\xe0\x7f\x10\x00OB\0\0" + (1 << 20).to_bytes(4, "little"))
        second.write(b"y" * (1 << 20))
        tag, value = second.element()
        assert tag == 0x7FE00010 and bytes(value) == b"y" * (1 << 20)
    first.close()
