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
