"""hostile11: hostile display attributes, pixel layouts and encapsulations through `vindr decode`.

Builds each case from pydicom's bundled files (tests/hostile11_inputs.py), decodes it in process
with the worker function (`pixels.task._decode`, one SIGALRM limit per case) and records the
status, the reason, the CPU seconds and whether a temporary file was left behind. With --cli the
whole set is also decoded as one batch by `python -m vindr_cli decode` (-j 2, --task-timeout) in a
child, to check that the batch finishes with one row per input.

    python bench/hostile11_bench.py [--only SUBSTR] [--cli] [--json bench/results/hostile11.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, RLELossless

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from bench_io import write_record  # noqa: E402
sys.path.insert(0, str(REPO / "tests"))
import hostile11_inputs as H  # noqa: E402


def cases():
    """(label, builder) pairs: builders return a data set."""
    C = []
    add = lambda label, fn: C.append((label, fn))  # noqa: E731
    ramp16 = list(range(0, 4096 * 16, 16))
    # Modality LUT Sequence
    add("mlut: 0 entries (65536), data 4096", lambda: H.modality_lut((0, 0, 16), ramp16, "US"))
    add("mlut: 0 entries (65536), data 2 bytes", lambda: H.modality_lut((0, 0, 16), b"\x00\x01"))
    add("mlut: first mapped 65535", lambda: H.modality_lut((4096, 65535, 16), ramp16, "US"))
    add("mlut: first mapped -32768 signed", lambda: H.modality_lut((4096, 0x8000, 16), ramp16, "US"))
    add("mlut: 8-bit entries packed", lambda: H.modality_lut((256, 0, 8), bytes(range(256))))
    add("mlut: 8-bit entries, odd count", lambda: H.modality_lut((255, 0, 8), bytes(range(255))))
    add("mlut: 16-bit, odd byte count", lambda: H.modality_lut((4096, 0, 16), b"\x01" * 8191))
    add("mlut: data shorter (10 of 4096)", lambda: H.modality_lut((4096, 0, 16), list(range(10)), "US"))
    add("mlut: empty LUTData", lambda: H.modality_lut((4096, 0, 16), b""))
    add("mlut: bits 0", lambda: H.modality_lut((4096, 0, 0), ramp16, "US"))
    add("mlut: bits 64", lambda: H.modality_lut((4096, 0, 64), ramp16, "US"))
    add("mlut: descriptor 2 values", lambda: _desc_values(H.modality_lut((4096, 0, 16), ramp16, "US"),
                                                           "ModalityLUTSequence", [4096, 0]))
    add("mlut: descriptor empty", lambda: _desc_values(H.modality_lut((4096, 0, 16), ramp16, "US"),
                                                        "ModalityLUTSequence", []))
    add("mlut: no LUTData", lambda: _drop(H.modality_lut((4096, 0, 16), ramp16, "US"), "ModalityLUTSequence",
                                          "LUTData"))
    add("mlut: no descriptor", lambda: _drop(H.modality_lut((4096, 0, 16), ramp16, "US"), "ModalityLUTSequence",
                                             "LUTDescriptor"))
    add("mlut: empty item", lambda: _empty_item(H.ct(), "ModalityLUTSequence"))
    # Rescale
    for v in ("0", "NaN", "inf", "-inf", "1e308", "-1e308", "1e-308", "abc", ""):
        add(f"rescale slope {v!r}", lambda v=v: H.raw_set(H.ct(), 0x00281053, "DS", v))
    for v in ("NaN", "1e308", "-inf"):
        add(f"rescale intercept {v!r}", lambda v=v: H.raw_set(H.ct(), 0x00281052, "DS", v))
    add("rescale slope 1e308 + window", lambda: H.raw_set(H.attrs(WindowCenter="40", WindowWidth="400"),
                                                          0x00281053, "DS", "1e308"))
    add("rescale slope 0 minmax", lambda: H.raw_set(H.attrs(WindowCenter=None, WindowWidth=None), 0x00281053, "DS",
                                                    "0"))
    # VOI LUT Sequence
    add("vlut: 0 entries, data 2 bytes", lambda: H.voi_lut((0, 0, 16), b"\x00\x01"))
    add("vlut: data shorter (3 of 4096)", lambda: H.voi_lut((4096, 0, 12), [1, 2, 3], "US"))
    add("vlut: empty LUTData", lambda: H.voi_lut((4096, 0, 12), b""))
    add("vlut: bits 0", lambda: H.voi_lut((4096, 0, 0), list(range(4096)), "US"))
    add("vlut: bits 40", lambda: H.voi_lut((4096, 0, 40), list(range(4096)), "US"))
    add("vlut: all zero", lambda: H.voi_lut((4096, 0, 12), [0] * 4096, "US"))
    add("vlut: first mapped huge", lambda: H.voi_lut((16, 60000, 16), list(range(16)), "US"))
    add("vlut: MONOCHROME1", lambda: H.voi_lut((4096, 0, 12), list(range(4096)), "US", "MONOCHROME1"))
    add("vlut: no LUTData", lambda: _drop(H.voi_lut((4096, 0, 12), list(range(4096)), "US"), "VOILUTSequence",
                                          "LUTData"))
    add("vlut: descriptor 1 value", lambda: _desc_values(H.voi_lut((4096, 0, 12), list(range(4096)), "US"),
                                                          "VOILUTSequence", [4096]))
    add("vlut: empty item", lambda: _empty_item(H.attrs(WindowCenter=None, WindowWidth=None), "VOILUTSequence"))
    # windows
    for fn in ("LINEAR", "LINEAR_EXACT", "SIGMOID", "BOGUS", ""):
        for w in ("0", "-5", "0.5", "NaN", "1e308", "inf"):
            for ph in ("MONOCHROME2", "MONOCHROME1"):
                add(f"window W={w} {fn or 'none'} {ph}",
                    lambda fn=fn, w=w, ph=ph: H.raw_set(H.raw_set(H.attrs(VOILUTFunction=fn or None,
                                                                          PhotometricInterpretation=ph),
                                                                  0x00281050, "DS", "40"), 0x00281051, "DS", w))
    add("window centers 3, widths 1", lambda: H.raw_set(H.raw_set(H.ct(), 0x00281050, "DS", ["40", "50", "60"]),
                                                        0x00281051, "DS", ["400"]))
    add("window centers 1, widths 3", lambda: H.raw_set(H.raw_set(H.ct(), 0x00281050, "DS", ["40"]),
                                                        0x00281051, "DS", ["400", "0", "-1"]))
    add("window center NaN", lambda: H.raw_set(H.raw_set(H.ct(), 0x00281050, "DS", "NaN"), 0x00281051, "DS", "400"))
    add("window center 1e308 width 1e308", lambda: H.raw_set(H.raw_set(H.ct(), 0x00281050, "DS", "1e308"),
                                                             0x00281051, "DS", "1e308"))
    add("window center only", lambda: H.raw_set(H.attrs(WindowWidth=None), 0x00281050, "DS", "40"))
    # padding
    for pv, lim in ((70000, None), (-40000, None), (65535, 0), (0x8000, 0x7FFF), (-1, -70000)):
        def pad(pv=pv, lim=lim):
            ds = H.ct()
            ds.add_new(0x00280120, "SS" if pv < 0 else "US", pv if -32768 <= pv <= 65535 else pv & 0xFFFF)
            if lim is not None:
                ds.add_new(0x00280121, "SS" if lim < 0 else "US", lim if -32768 <= lim <= 65535 else lim & 0xFFFF)
            return ds
        add(f"padding {pv} limit {lim}", pad)
    add("padding value as bytes", lambda: H.raw_set(H.ct(), 0x00280120, "OB", b"\x01\x02\x03"))
    add("padding value multi", lambda: H.raw_set(H.ct(), 0x00280120, "US", [1, 2]))
    add("padding everything", lambda: _pad_all(H.native_grey(32, 32, value=7)))
    # bits and representation
    add("PixelRepresentation 0 on signed data", lambda: H.attrs(PixelRepresentation=0))
    add("PixelRepresentation 2", lambda: H.attrs(PixelRepresentation=2))
    add("BitsStored 17 > BitsAllocated 16", lambda: H.attrs(BitsStored=17, HighBit=16))
    add("BitsStored 32 > BitsAllocated 16", lambda: H.attrs(BitsStored=32, HighBit=31))
    add("BitsStored 0", lambda: H.attrs(BitsStored=0))
    add("BitsStored 1", lambda: H.attrs(BitsStored=1, HighBit=0))
    add("HighBit 0 BitsStored 16", lambda: H.attrs(HighBit=0))
    add("BitsAllocated 8 on 16-bit data", lambda: H.attrs(BitsAllocated=8, BitsStored=8, HighBit=7))
    add("BitsAllocated 32 on 16-bit data", lambda: H.attrs(BitsAllocated=32, BitsStored=32, HighBit=31))
    add("BitsAllocated 1", lambda: H.attrs(BitsAllocated=1, BitsStored=1, HighBit=0))
    add("overlay bits above BitsStored", lambda: _overlay_in_pixels(H.ct()))
    # photometric
    add("PALETTE COLOR no LUTs", lambda: H.attrs(PhotometricInterpretation="PALETTE COLOR"))
    for damage in ("short red data", "descriptor 0 entries", "bits 0", "missing green", "empty data",
                   "descriptor 2 values", "8-bit odd bytes", "segmented garbage", "segmented empty",
                   "descriptor bits 64", "first mapped huge", "samples per pixel 3"):
        add(f"palette: {damage}", lambda d=damage: _palette(d))
    add("YBR_FULL_422 odd columns", lambda: _ybr422_odd())
    add("YBR_FULL_422 on 1 sample", lambda: H.attrs(PhotometricInterpretation="YBR_FULL_422"))
    add("RGB SamplesPerPixel 1", lambda: H.attrs(PhotometricInterpretation="RGB"))
    add("MONOCHROME2 SamplesPerPixel 3", lambda: H.attrs(H.rgb, PhotometricInterpretation="MONOCHROME2"))
    add("RGB PlanarConfiguration 7", lambda: H.attrs(H.rgb, PlanarConfiguration=7))
    add("RGB no PlanarConfiguration", lambda: H.attrs(H.rgb, PlanarConfiguration=None))
    add("photometric empty", lambda: H.attrs(PhotometricInterpretation=None))
    # multi-frame
    add("NumberOfFrames 0", lambda: H.attrs(NumberOfFrames=0))
    add("NumberOfFrames 2 on 1 frame", lambda: H.attrs(NumberOfFrames=2))
    add("NumberOfFrames 2**31", lambda: H.attrs(NumberOfFrames=2 ** 31 - 1))
    add("NumberOfFrames -1", lambda: H.raw_set(H.ct(), 0x00280008, "IS", "-1"))
    add("NumberOfFrames 'x'", lambda: H.raw_set(H.ct(), 0x00280008, "IS", "x"))
    add("NumberOfFrames 1.5", lambda: H.raw_set(H.ct(), 0x00280008, "IS", "1.5"))
    add("multiframe 3 frames, declared 2", lambda: H.attrs(lambda: H.native_grey(16, 16, frames=3), NumberOfFrames=2))
    add("multiframe 2 frames, declared 3", lambda: H.attrs(lambda: H.native_grey(16, 16, frames=2), NumberOfFrames=3))
    # encapsulated
    add("rle: no fragments", lambda: H.encapsulated(H.read("MR_small_RLE.dcm"), []))
    add("rle: empty fragment", lambda: H.encapsulated(H.read("MR_small_RLE.dcm"), [b""]))
    add("rle: header only", lambda: H.encapsulated(H.read("MR_small_RLE.dcm"),
                                                   [H.frames_of(H.read("MR_small_RLE.dcm"))[0][:64]]))
    add("rle: 15 segments declared", lambda: _rle_segments(15))
    add("rle: 0 segments", lambda: _rle_segments(0))
    add("rle: garbage", lambda: H.encapsulated(H.read("MR_small_RLE.dcm"), [bytes(range(256)) * 8]))
    add("rle: offsets past end", lambda: _rle_offsets())
    add("j2k: empty fragment", lambda: H.encapsulated(H.read("MR_small_jp2klossless.dcm"), [b""]))
    add("j2k: garbage", lambda: H.encapsulated(H.read("MR_small_jp2klossless.dcm"), [b"\xff\x4f" + b"\x00" * 100]))
    add("j2k: SIZ 0x0", lambda: _j2k_siz(0, 0))
    add("j2k: SIZ 65535x65535", lambda: _j2k_siz(65535, 65535))
    add("j2k: frames 2 fragments 1", lambda: H.attrs(lambda: H.read("MR_small_jp2klossless.dcm"), NumberOfFrames=2))
    for name in ("MR_small_jp2klossless.dcm", "693_J2KI.dcm"):
        cs = H.frames_of(H.read(name))[0]
        for marker, off in H.j2k_markers(cs):
            for cut in (off, off + 1, off + 3):
                add(f"j2k {name[:12]}: cut at {marker}+{cut - off} ({cut})",
                    lambda name=name, cut=cut: H.encapsulated(H.read(name), [H.frames_of(H.read(name))[0][:cut]]))
    # tiny images through reduction and every encoding
    for r, c in ((1, 1), (1, 2), (2, 1), (1, 300), (300, 1)):
        add(f"native {r}x{c}", lambda r=r, c=c: H.native_grey(r, c))
        add(f"j2k {r}x{c}", lambda r=r, c=c: _encode(H.native_grey(r, c), JPEG2000Lossless))
        add(f"rle {r}x{c}", lambda r=r, c=c: _encode(H.native_grey(r, c), RLELossless))
    add("constant image", lambda: H.native_grey(32, 32, value=1000))
    add("constant image 0", lambda: H.native_grey(32, 32, value=0))
    add("1x1 constant", lambda: H.native_grey(1, 1, value=5))
    return C


def _seq_item(ds, seq):
    return getattr(ds, seq)[0]


def _desc_values(ds, seq, values):
    _seq_item(ds, seq).add_new(0x00283002, "US", values)
    return ds


def _drop(ds, seq, kw):
    del _seq_item(ds, seq)[kw]
    return ds


def _empty_item(ds, seq):
    from pydicom.dataset import Dataset
    setattr(ds, seq, Sequence([Dataset()]))
    return ds


def _pad_all(ds):
    ds.add_new(0x00280120, "US", 7)
    return ds


def _overlay_in_pixels(ds):
    """12 bits stored in 16 allocated, an overlay plane in bit 15 (retired embedded overlays)."""
    ds = H.native_grey(64, 64, bits=16)
    ds.BitsStored, ds.HighBit = 12, 11
    arr = np.frombuffer(ds.PixelData, dtype=np.uint16).copy() & 0x0FFF
    arr[::2] |= 0x8000
    ds.PixelData = arr.tobytes()
    ds.add_new(0x60000100, "US", 1)   # OverlayBitsAllocated
    ds.add_new(0x60000102, "US", 15)  # OverlayBitPosition
    ds.add_new(0x60000010, "US", 64)
    ds.add_new(0x60000011, "US", 64)
    return ds


def _palette(damage: str):
    ds = H.palette()
    d = {"R": "RedPaletteColorLookupTableData", "G": "GreenPaletteColorLookupTableData",
         "B": "BluePaletteColorLookupTableData"}
    if damage == "short red data":
        ds[d["R"]].value = ds[d["R"]].value[:10]
    elif damage == "descriptor 0 entries":
        ds.RedPaletteColorLookupTableDescriptor = [0, 0, 16]
    elif damage == "bits 0":
        ds.RedPaletteColorLookupTableDescriptor = [256, 0, 0]
        ds.GreenPaletteColorLookupTableDescriptor = [256, 0, 0]
        ds.BluePaletteColorLookupTableDescriptor = [256, 0, 0]
    elif damage == "missing green":
        del ds[d["G"]]
    elif damage == "empty data":
        ds[d["R"]].value = b""
        ds[d["G"]].value = b""
        ds[d["B"]].value = b""
    elif damage == "descriptor 2 values":
        ds.RedPaletteColorLookupTableDescriptor = [256, 0]
    elif damage == "8-bit odd bytes":
        for name in ("Red", "Green", "Blue"):
            ds[f"{name}PaletteColorLookupTableDescriptor"].value = [255, 0, 8]
            ds[f"{name}PaletteColorLookupTableData"].value = bytes(255)
    elif damage == "segmented garbage":
        for name in ("Red", "Green", "Blue"):
            ds.add_new({"Red": 0x00281221, "Green": 0x00281222, "Blue": 0x00281223}[name], "OW",
                       struct.pack("<8H", 2, 5, 1, 2, 3, 4, 99, 65535))
    elif damage == "segmented empty":
        for tag in (0x00281221, 0x00281222, 0x00281223):
            ds.add_new(tag, "OW", b"")
    elif damage == "descriptor bits 64":
        ds.RedPaletteColorLookupTableDescriptor = [256, 0, 64]
    elif damage == "first mapped huge":
        for name in ("Red", "Green", "Blue"):
            ds[f"{name}PaletteColorLookupTableDescriptor"].value = [256, 65000, 16]
    elif damage == "samples per pixel 3":
        ds.SamplesPerPixel = 3
    return ds


def _ybr422_odd():
    ds = H.read("SC_ybr_full_422_uncompressed.dcm")
    ds.Columns = int(ds.Columns) - 1
    return ds


def _rle_segments(n: int):
    ds = H.read("MR_small_RLE.dcm")
    frame = bytearray(H.frames_of(ds)[0])
    frame[0:4] = struct.pack("<I", n)
    return H.encapsulated(ds, [bytes(frame)])


def _rle_offsets():
    ds = H.read("MR_small_RLE.dcm")
    frame = bytearray(H.frames_of(ds)[0])
    frame[4:12] = struct.pack("<2I", 64, 0xFFFFFFF0)
    return H.encapsulated(ds, [bytes(frame)])


def _j2k_siz(w: int, h: int):
    ds = H.read("MR_small_jp2klossless.dcm")
    cs = bytearray(H.frames_of(ds)[0])
    siz = cs.find(b"\xff\x51")
    cs[siz + 6:siz + 14] = struct.pack(">II", w, h)
    return H.encapsulated(ds, [bytes(cs)])


def _encode(ds, ts):
    """Encoded by pydicom's plugins (GDCM's encoder, synth.encode.gdcm_transcode, segfaults on a
    1x1 JPEG 2000: a builder's limit, not an input path of vindr)."""
    ds.compress(ts, encoding_plugin="pydicom" if ts == RLELossless else "pylibjpeg")
    return ds


class Timeout(Exception):
    pass


def _alarm(*_):
    raise Timeout()


def run_inprocess(selected, workdir: Path, limit: int = 60):
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import Ctx, DecodeConfig, _decode
    from vindr_cli.pixels.window import parse_window_mode
    from vindr_cli.runner.sources import Source

    out = workdir / "out"
    results = []
    signal.signal(signal.SIGALRM, _alarm)
    for i, (label, build) in enumerate(selected):
        rec = {"case": label}
        try:
            ds = build()
            path = H.save(ds, workdir / f"case{i:04d}.dcm")
        except Exception as exc:    # a builder that cannot make its case: recorded, not run
            rec.update(status="not built", reason=type(exc).__name__ + ": " + str(exc)[:120])
            results.append(rec)
            continue
        for size, window in ((None, "header"), (64, "header"), (64, "minmax")):
            cfg = DecodeConfig(output=str(out), size=SizeSpec(long_side=size), window=window)
            ctx = Ctx(cfg, parse_window_mode(window), out)
            ctx.tmp.mkdir(parents=True, exist_ok=True)
            src = Source(str(path), path.name, path.stat().st_size)
            before = resource.getrusage(resource.RUSAGE_SELF)
            signal.alarm(limit)
            try:
                rows = _decode(ctx, src, f"c{i}", tmps := [])
                err = None
            except Timeout:
                rows, err = None, "TIMEOUT"
            except BaseException as exc:   # a worker function that raises is a bug: recorded
                rows, err = None, f"RAISED {type(exc).__name__}"
            finally:
                signal.alarm(0)
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            key = f"{size or 'full'}/{window}"
            if err:
                rec[key] = {"error": err, "cpu": round(cpu, 3)}
            else:
                statuses = sorted({r["status"] for r in rows})
                reasons = sorted({r["reason"] for r in rows if r["reason"]})
                leftover = [str(t) for t, _, _ in tmps if not Path(t).exists()] if "failed" in statuses else []
                rec[key] = {"status": statuses, "reasons": reasons, "cpu": round(cpu, 3),
                            "frames": len(rows), "missing_tmp": leftover,
                            "nonfinite": _nonfinite(rows)}
            for t in list(ctx.tmp.iterdir()):
                t.unlink()
        results.append(rec)
        print(json.dumps(rec), flush=True)
    return results


def run_select(selected, workdir: Path, limit: int = 60):
    """Each case through `vindr select`'s look (header thumbnail, QC flags, DCT hash)."""
    from vindr_cli.curate.look import look_at

    signal.signal(signal.SIGALRM, _alarm)
    out = []
    for i, (label, build) in enumerate(selected):
        try:
            path = H.save(build(), workdir / f"sel{i:04d}.dcm")
        except Exception:
            continue
        signal.alarm(limit)
        try:
            seen = look_at(path)
            rec = {"case": label, "phash": seen.phash is not None, "flags": list(seen.qc_flags), "reason": seen.reason}
        except Timeout:
            rec = {"case": label, "error": "TIMEOUT"}
        except BaseException as exc:
            rec = {"case": label, "error": f"RAISED {type(exc).__name__}"}
        finally:
            signal.alarm(0)
        path.unlink()
        out.append(rec)
        print(json.dumps(rec), flush=True)
    return out


def _nonfinite(rows) -> bool:
    for r in rows:
        for k in ("window_center", "window_width", "scale_x", "scale_y"):
            v = r.get(k)
            if isinstance(v, float) and not math.isfinite(v):
                return True
    return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cli", action="store_true")
    ap.add_argument("--select", action="store_true", help="also each case through vindr select's look")
    ap.add_argument("--limit", type=int, default=60)
    a = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    selected = [c for c in cases() if a.only is None or a.only in c[0]]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        results = run_inprocess(selected, Path(tmp), a.limit)
        cli = None
        look = run_select(selected, Path(tmp), a.limit) if a.select else None
        if a.cli:
            cli = run_cli(Path(tmp))
    summary = {"cases": len(results), "wall_s": round(time.time() - t0, 1), "load_start_end": [load0, os.getloadavg()[0]],
               "results": results, "cli": cli, "select": look}
    if a.json:
        write_record(Path(a.json), summary)
    return 0


def run_cli(tmp: Path):
    inp = tmp / "in"
    inp.mkdir()
    for p in sorted(tmp.glob("case*.dcm")):
        p.rename(inp / p.name)
    out = tmp / "cli_out"
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "vindr_cli", "decode", str(inp), str(out), "--size", "64", "-j", "2",
                           "--task-timeout", "120"], capture_output=True, text=True, timeout=1800)
    import pyarrow.parquet as pq
    rows = pq.read_table(out / "images.parquet").to_pylist() if (out / "images.parquet").exists() else []
    return {"rc": proc.returncode, "wall_s": round(time.time() - t0, 1), "inputs": len(list(inp.iterdir())),
            "rows_inputs": len({r["input"] for r in rows}), "stderr_tail": proc.stderr[-400:],
            "traceback": "Traceback" in proc.stderr + proc.stdout}


if __name__ == "__main__":
    sys.exit(main())
