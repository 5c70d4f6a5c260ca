"""Malformed JPEG / JPEG-LS codestreams end as failed rows with a fixed reason, and the batch
goes on, in every mode (issue 13; the foundation's "malformed input never stops a batch").

GDCM abort()ed or crashed the interpreter on malformed JPEG headers (red team 5: text in a
JFIF header's version bytes), CharLS (pyjpegls) spends ~4 CPU s on a JPEG-LS scan cut
short without its EOI, and pylibjpeg's libjpeg allocates what a SOF of 65535 x 65535 declares
(bench/jpeg_hostile.py). `vindr decode` now checks every frame's header in Python first
(dicomio.jpeg) and runs GDCM only in a child process (pixels.isolated).

The frames are real: pydicom's bundled JPEG test files and CT_small re-encoded by GDCM,
mutated as the bench does. Every decode runs in a SUBPROCESS with a time limit, so that an
abort, a crash or a hang fails the test instead of ending the test run.
"""
from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from jpeg_hostile import mutations  # noqa: E402

from vindr_cli.pixels import backends as B  # noqa: E402
from vindr_cli.pixels.decode import DecodeError, decode  # noqa: E402
from vindr_cli.dicomio.jpeg import REASON, MalformedJPEG, check_frame  # noqa: E402

# the mutations the bench found deadly (GDCM: SIGABRT / SIGSEGV; CharLS: seconds; libjpeg: memory)
DEADLY = ("JFIF numbers 4e4755", "JFIF inserted 4e47", "Adobe inserted 4e47", "short ICC inserted", "garbage inserted",
          "SOF precision 17", "SOF zero width", "SOF zero lines", "SOF 65535 lines", "scan truncated at 0.5",
          "length of C4 = 2", "no EOI")


def _read(name: str):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not bundled")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _lossless_ct():
    """CT_small (16-bit signed) as JPEG lossless SV1, written by GDCM."""
    from pydicom.uid import JPEGLosslessSV1

    from vindr_cli.synth.encode import gdcm_transcode

    return gdcm_transcode(_read("CT_small.dcm"), JPEGLosslessSV1)


def _sources():
    """(label, data set) of real single-frame JPEG-family images, grey and colour."""
    return [("jpeg-ls", _read("MR_small_jpeg_ls_lossless.dcm")), ("baseline-rgb", _read("SC_rgb_jpeg_dcmtk.dcm")),
            ("lossless-ct", _lossless_ct())]


def _with_frame(ds, frame: bytes):
    out = ds.copy()
    out.PixelData = encapsulate([frame])
    out["PixelData"].VR = "OB"
    out.PatientIdentityRemoved = "YES"
    return out


def _hostile() -> list[tuple[str, object]]:
    cases = []
    for label, ds in _sources():
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        for what, data in mutations(frame, seed=0, n_random=0):
            if what in DEADLY:
                cases.append((f"{label}: {what}", _with_frame(ds, data)))
    return cases


def test_real_jpeg_test_files_pass_the_header_check():
    """No false refusal: every JPEG / JPEG-LS frame of pydicom's bundled test files passes."""
    from helpers import shipped_frames

    checked = 0
    for _, ds, frames in shipped_frames({str(t) for t in B.JPEG_FAMILY}):
        for f in frames:
            check_frame(f, rows=ds.Rows, columns=ds.Columns, samples=ds.SamplesPerPixel,
                        bits_allocated=ds.BitsAllocated)
            checked += 1
    assert checked >= 40      # 21 files, one with 30 frames


@pytest.mark.parametrize("what", DEADLY)
def test_the_header_check_refuses_what_killed_a_decoder(what):
    for label, ds in _sources():
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        found = dict(mutations(frame, seed=0, n_random=0))
        if what not in found:
            continue
        if what.startswith(("JFIF", "Adobe", "short ICC")):
            continue     # APPn contents: not the check's business (GDCM, which chokes on them, runs in a child)
        with pytest.raises(MalformedJPEG):
            check_frame(found[what], rows=ds.Rows, columns=ds.Columns, samples=ds.SamplesPerPixel,
                        bits_allocated=ds.BitsAllocated)


_LIBRARY = """
import pickle, sys, io
sys.path.insert(0, sys.argv[1])
import pydicom
from vindr_cli.pixels.decode import DecodeError, decode
for label, raw in pickle.loads(sys.stdin.buffer.read()):
    ds = pydicom.dcmread(io.BytesIO(raw))
    for backends in (None, ["gdcm"], ["pylibjpeg-libjpeg"], ["pyjpegls"], ["libjpeg-turbo"]):
        try:
            decode(ds, backends=backends)
            print("OK", label, backends, sep="|", flush=True)
        except DecodeError as exc:
            print("FAILED", label, backends, exc.reason, sep="|", flush=True)
print("ALL DONE", flush=True)
"""


def _bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _refused(ds) -> bool:
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    try:
        check_frame(frame, rows=ds.Rows, columns=ds.Columns, samples=ds.SamplesPerPixel, bits_allocated=ds.BitsAllocated)
    except MalformedJPEG:
        return True
    return False


def _fixed(reason: str) -> bool:
    return reason == REASON or reason.startswith("no installed decoder could decode ")


def test_every_decoder_path_fails_hostile_frames_with_a_fixed_reason():
    """decode() on every hostile frame, with the default order and with each backend alone
    (GDCM's is the child process), in one child: it must finish; each decode that fails says
    a fixed reason; a header the check refuses is never decoded."""
    import pickle

    cases = _hostile()
    assert len(cases) >= 20
    payload = pickle.dumps([(label, _bytes(ds)) for label, ds in cases])
    proc = subprocess.run([sys.executable, "-c", _LIBRARY, str(REPO)], input=payload, capture_output=True,
                          timeout=600)
    out = proc.stdout.decode()
    assert proc.returncode == 0 and "ALL DONE" in out, (proc.returncode, out[-400:])
    lines = [line.split("|") for line in out.splitlines() if line.startswith(("OK|", "FAILED|"))]
    assert len(lines) == 5 * len(cases)
    assert all(_fixed(w[3]) for w in lines if w[0] == "FAILED"), {w[3] for w in lines}
    refused = {label for label, ds in cases if _refused(ds)}
    assert len(refused) >= len(cases) // 2
    for w in lines:
        if w[1] in refused:
            assert w[0] == "FAILED" and w[3] in (REASON, *[r for r in [w[3]] if r.startswith("no installed")]), w


def _tree(tmp: Path) -> tuple[Path, list[str]]:
    """A de-identified input tree: the hostile frames and one good image of each source."""
    src = tmp / "in"
    src.mkdir()
    names = []
    for i, (label, ds) in enumerate(_hostile()):
        name = f"bad{i:02d}.dcm"
        ds.save_as(src / name, enforce_file_format=True)
        names.append(name)
    for label, ds in _sources():
        ds = _with_frame(ds, next(generate_frames(ds.PixelData, number_of_frames=1)))
        ds.save_as(src / f"good_{label}.dcm", enforce_file_format=True)
    return src, names


def _vindr(*args, timeout=600) -> subprocess.CompletedProcess:
    code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from vindr_cli.cli import main; sys.argv[0] = 'vindr'; main()"
    return subprocess.run([sys.executable, "-c", code, str(REPO), *args], capture_output=True, text=True,
                          timeout=timeout)


def _rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / "images.parquet").to_pylist()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_batch_of_hostile_frames_goes_on(tmp_path, jobs):
    src, bad = _tree(tmp_path)
    out = tmp_path / "out"
    proc = _vindr("decode", str(src), str(out), "--size", "64", "-j", jobs)
    assert proc.returncode == 0, proc.stdout[-500:] + proc.stderr[-500:]
    from helpers import decoded_rows

    rows = {r["input"]: r for r in decoded_rows(out, src)}     # keyed names mapped back to the input paths
    assert set(rows) == set(bad) | {"good_jpeg-ls.dcm", "good_baseline-rgb.dcm", "good_lossless-ct.dcm"}
    refused = [name for name, (_, ds) in zip(bad, _hostile()) if _refused(ds)]
    assert len(refused) >= len(bad) // 2
    for name in refused:
        assert rows[name]["status"] == "failed" and rows[name]["reason"] == REASON, name
    for name in bad:                       # the rest: decoded, or failed with a fixed reason
        assert rows[name]["status"] == "ok" or _fixed(rows[name]["reason"]), (name, rows[name]["reason"])
    assert all(rows[g]["status"] == "ok" for g in rows if g.startswith("good_"))
    assert "NGUYEN" not in proc.stdout + proc.stderr


def test_one_hostile_file_in_process_writes_its_row(tmp_path):
    """A one-file decode runs in process: the red team's JFIF header and a truncated JPEG-LS
    scan (CharLS spent seconds on it) each end as a failed row."""
    src, bad = _tree(tmp_path)
    picks = [n for n, (label, _) in zip(bad, _hostile()) if label in ("baseline-rgb: JFIF numbers 4e4755",
                                                                     "jpeg-ls: scan truncated at 0.5")]
    assert len(picks) == 2
    for name in picks:
        out = tmp_path / f"out_{name}"
        proc = _vindr("decode", str(src / name), str(out), "--size", "64", timeout=300)
        assert proc.returncode == 0, proc.stderr[-300:]
        (row,) = _rows(out)
        assert row["status"] == "failed" and row["reason"] == REASON


def test_gdcm_in_a_child_decodes_as_in_process_decoders():
    """The isolated GDCM path gives the same values as the other decoders (grey signed 16-bit
    lossless, JPEG-LS, colour baseline through Pillow's and GDCM's libjpeg)."""
    for label, ds in _sources():
        ds = _with_frame(ds, next(generate_frames(ds.PixelData, number_of_frames=1)))
        theirs = decode(ds, backends=["gdcm"])
        assert theirs.backend == "gdcm"
        ours = decode(ds)
        assert ours.backend != "gdcm"
        assert np.array_equal(theirs.frames[0], ours.frames[0]), label


def test_libjpeg_turbo_equals_pylibjpeg_on_signed_lossless():
    pytest.importorskip("imagecodecs")
    ds = _lossless_ct()
    turbo = decode(ds, backends=["libjpeg-turbo"])
    other = decode(ds, backends=["pylibjpeg-libjpeg"])
    assert turbo.frames[0].dtype == other.frames[0].dtype == np.int16
    assert np.array_equal(turbo.frames[0], other.frames[0])
    assert decode(ds).backend == "libjpeg-turbo"       # first where installed


def test_an_isolated_gdcm_failure_is_a_refusal_not_a_crash():
    ds = _with_frame(_read("MR_small_jpeg_ls_lossless.dcm"), b"\xff\xd8\xff\xe0\x00\x10JFIF\x00NGUYEN \x00\x00\xff\xd9")
    from vindr_cli.pixels.isolated import IsolatedError, run_gdcm

    with pytest.raises(IsolatedError):
        run_gdcm(ds, ds.file_meta.TransferSyntaxUID)
    with pytest.raises(DecodeError):
        decode(ds, backends=["gdcm"])


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_anonymize_and_audit_scan_fail_hostile_frames_with_a_fixed_reason(tmp_path, jobs):
    """vindr anonymize's burned-in scan (default --burned-in redact) and vindr audit decode too:
    the same header check runs first (deid.redact._frames), so no hostile frame reaches a
    decoder there either; every file has its row and the good images are written."""
    import pyarrow.parquet as pq

    from helpers import key_file_in

    src, bad = _tree(tmp_path)
    # the colour baseline source is Secondary Capture: quarantined by its SOP class before any scan
    hostile = [(label, ds) for label, ds in _hostile()]
    sc = sum(label.startswith("baseline-rgb") for label, _ in hostile)
    refused = sum(_refused(ds) for label, ds in hostile if not label.startswith("baseline-rgb"))
    out = tmp_path / "anon"
    proc = _vindr("anonymize", str(src), str(out), "--key", str(key_file_in(tmp_path)), "-j", jobs)
    assert proc.returncode in (0, 1), proc.stdout[-500:] + proc.stderr[-500:]
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(rows) == len(bad) + 3
    assert sum(r["status"] == "failed" and r["reason"] == REASON for r in rows) >= refused >= (len(bad) - sc) // 2
    assert sum(r["status"] == "quarantined" for r in rows) == sc + 1
    assert sum(r["status"] == "ok" for r in rows) >= 2          # the good JPEG-LS and lossless CT at least
    assert all(r["status"] in ("ok", "quarantined") or _fixed(r["reason"]) for r in rows), {r["reason"] for r in rows}
    if jobs == "1":
        audit = _vindr("audit", str(out))
        assert audit.returncode in (0, 1), audit.stdout[-500:] + audit.stderr[-500:]
