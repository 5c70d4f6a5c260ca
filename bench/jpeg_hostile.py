#!/usr/bin/env python3
"""Malformed JPEG / JPEG-LS frames against each decoder, and the decoders' speed (issue 13).

Data: the frames of pydicom's JPEG test files (JPEG-LS lossless and near-lossless, JPEG
lossless SV1 colour, baseline colour, extended 12-bit), CT_small and MR_small (16-bit,
signed) re-encoded by GDCM as JPEG lossless (4.57, 4.70) and JPEG-LS (lossless,
near-lossless), and an 8-bit grey JPEG baseline written by Pillow. Each frame is mutated
(:func:`mutations`: truncations, every segment length set wrong, SOF/SOS/DHT/DQT/DRI fields,
text in JFIF/Adobe numbers, inserted APPn/COM/garbage, random header bytes, random bytes
in the scan, truncation with EOI), and decoded by one decoder per run, in a child process
that is restarted after it dies (address space 4 GB, 20 CPU s per frame: SIGPROF ends a hang).

Decoders: ``gdcm-in-process`` (pydicom's gdcm plugin in the process, as `vindr decode` put it
first for JPEG lossless and JPEG-LS before), ``pylibjpeg-libjpeg``, ``pyjpegls``,
``libjpeg-turbo`` (imagecodecs) — each raw, without vindr's header check — and
``vindr`` (``pixels.decode.decode`` with its default order: header check, then the
in-process decoders, GDCM in a child). A death is SIGABRT (-6), SIGSEGV (-11), over 20 CPU s
(SIGPROF, -27) or the memory limit.

``--speed``: CPU ms per 2048 x 2048 12-bit synthetic radiograph, JPEG lossless (SV1, 4.57)
and JPEG-LS (lossless, near-lossless), every decoder, round robin, best of ``--runs``.

Usage: python bench/jpeg_hostile.py [--random 100] [--decoders a,b] [--speed --runs 5]
Results: bench/results/jpeg_hostile.json (figures in bench/README.md and pixels/backends.py).
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DECODERS = ("gdcm-in-process", "pylibjpeg-libjpeg", "pyjpegls", "libjpeg-turbo", "vindr")


# --- the frames --------------------------------------------------------------------------------

def bases() -> dict[str, bytes]:
    """name -> a Part 10 file (bytes) holding one JPEG / JPEG-LS frame."""
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, JPEGLosslessSV1

    from vindr_cli.synth.encode import gdcm_transcode

    out = {}

    def save(name, ds):
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out[name] = buf.getvalue()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_08.dcm", "SC_rgb_jpeg_gdcm.dcm",
                     "SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm"):
            path = get_testdata_file(name, download=False)
            if path:
                save(name, pydicom.dcmread(path))
        for src in ("CT_small.dcm", "MR_small.dcm"):
            path = get_testdata_file(src, download=False)
            if not path:
                continue
            ds = pydicom.dcmread(path)
            for ts, tag in (("1.2.840.10008.1.2.4.57", "p14"), (JPEGLosslessSV1, "sv1"),
                            ("1.2.840.10008.1.2.4.80", "jls"), ("1.2.840.10008.1.2.4.81", "jlsnear")):
                save(f"{src}:{tag}", gdcm_transcode(ds.copy(), ts))
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
        arr = ds.pixel_array.astype(float)
        grey = np.round((arr - arr.min()) / np.ptp(arr) * 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(grey).save(buf, "JPEG", quality=90)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        for k in ("RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth"):
            if k in ds:
                del ds[k]
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        save("pillow_grey_baseline", ds)
    return out


def first_frame(raw: bytes) -> bytes:
    import pydicom
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(io.BytesIO(raw))
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def segments(data: bytes) -> list[tuple[int, int, int]]:
    """(position, marker, length) of the header's marker segments, up to the first SOS."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        out.append((pos, marker, length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return out


def _put(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value):]


def mutations(data: bytes, seed: int = 0, n_random: int = 100) -> list[tuple[str, bytes]]:
    """(label, mutated frame) for one frame; deterministic for a seed."""
    segs = segments(data)
    out: list[tuple[str, bytes]] = []
    sos_end = segs[-1][0] + 2 + segs[-1][2] if segs else 2
    for pos, m, length in segs:
        for cut in (pos, pos + 1, pos + 3, pos + 4, pos + 1 + length):
            out.append((f"truncated in {m:02X}", data[:cut]))
        for v in (0, 1, 2, 3, length - 1, length + 1, 0xFFFF):
            out.append((f"length of {m:02X} = {v}", _put(data, pos + 2, struct.pack(">H", v & 0xFFFF))))
        b = pos + 4
        if m in (0xC0, 0xC1, 0xC3, 0xF7):
            for off, v, tag in ((0, b"\x00", "precision 0"), (0, b"\x11", "precision 17"), (0, b"\xff", "precision 255"),
                                (1, b"\0\0", "zero lines"), (3, b"\0\0", "zero width"), (1, b"\xff\xff", "65535 lines"),
                                (3, b"\xff\xff", "65535 wide"), (5, b"\0", "no components"), (5, b"\x04", "4 components"),
                                (7, b"\0", "sampling 0"), (7, b"\xff", "sampling 15"), (8, b"\x09", "table 9")):
                out.append((f"SOF {tag}", _put(data, b + off, v)))
            for t in (b"\xc0", b"\xc2", b"\xc3", b"\xf7", b"\xcf"):
                out.append((f"SOF type {t.hex()}", _put(data, pos + 1, t)))
            out.append(("SOF twice", data[:pos + 2 + length] + data[pos:pos + 2 + length] + data[pos + 2 + length:]))
            out.append(("no SOF", data[:pos] + data[pos + 2 + length:]))
        elif m == 0xC4:
            out.append(("DHT class 5", _put(data, b, b"\x55")))
            out.append(("DHT counts 255", _put(data, b + 1, b"\xff" * 16)))
            out.append(("no DHT", data[:pos] + data[pos + 2 + length:]))
        elif m == 0xDA:
            for off, v, tag in ((0, 0, "0 components"), (0, 5, "5 components"), (1, 99, "component 99"),
                                (2, 0xFF, "tables 255"), (length - 5, 0xFF, "Ss 255"), (length - 3, 0xFF, "AhAl 255")):
                out.append((f"SOS {tag}", _put(data, b + off, bytes([v]))))
        elif m == 0xE0 and data[b:b + 5] == b"JFIF\0":
            for txt in (b"NGUYEN ", b"\0" * 7, b"\xff" * 7, b"\x02\x00\x01\x00\x48\x00\x48"):
                out.append((f"JFIF numbers {txt[:3].hex()}", _put(data, b + 5, txt)))
        elif m == 0xEE:
            for txt in (b"NGUYEN ", b"\xff" * 7):
                out.append((f"Adobe numbers {txt[:3].hex()}", _put(data, b + 5, txt)))
    for txt in (b"NGUYEN ", b"\0" * 7, b"\x02\x00\x00\x00\x00\x00\x00"):
        out.append((f"JFIF inserted {txt[:2].hex()}", data[:2] + b"\xff\xe0\x00\x10JFIF\x00" + txt + b"\0\0" + data[2:]))
        out.append((f"Adobe inserted {txt[:2].hex()}", data[:2] + b"\xff\xee\x00\x0eAdobe" + txt + data[2:]))
    for label, seg in (("JFXX", b"\xff\xe0\x00\x10JFXX\x00\x10NGUYEN\0\0\0"), ("short JFIF", b"\xff\xe0\x00\x07JFIF\x00"),
                       ("Exif", b"\xff\xe1\x00\x10Exif\x00\x00NGUYEN "), ("COM", b"\xff\xfe\x00\x08NGUYEN"),
                       ("short ICC", b"\xff\xe2\x00\x10ICC_PROFILE\x00\x01\x01\x00"), ("garbage", b"NGUYEN"),
                       ("RST", b"\xff\xd0"), ("EOI", b"\xff\xd9"), ("SOI", b"\xff\xd8"), ("DNL", b"\xff\xdc\x00\x04\x00\x00")):
        out.append((f"{label} inserted", data[:2] + seg + data[2:]))
    out.append(("no SOI", data[2:]))
    out.append(("no EOI", data[:-2]))
    rng = random.Random(seed)
    for frac in (0.0, 0.1, 0.5, 0.9, 0.99):
        out.append((f"scan truncated at {frac}", data[:sos_end + int((len(data) - sos_end) * frac)]))
    for k in range(n_random):
        d = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 4))):
            i = rng.randrange(2, min(len(d), sos_end + 8))
            d[i] = rng.choice((0, 0xFF, rng.randrange(256), d[i] ^ (1 << rng.randrange(8))))
        out.append((f"random header bytes {k}", bytes(d)))
    for k in range(n_random // 3):
        d = bytearray(data)
        for _ in range(rng.choice((1, 3, 8))):
            d[rng.randrange(sos_end, len(d) - 2)] = rng.choice((0, 0xFF, rng.randrange(256)))
        out.append((f"random scan bytes {k}", bytes(d)))
    for k in range(n_random // 10):
        out.append((f"scan truncated, EOI kept {k}", data[:rng.randrange(sos_end, len(data) - 2)] + b"\xff\xd9"))
    return out


def items(n_random: int) -> tuple[dict[str, bytes], list[tuple[str, str, bytes]]]:
    files = bases()
    out = []
    for i, (name, raw) in enumerate(sorted(files.items())):
        frame = first_frame(raw)
        out.append((name, "original", frame))
        out += [(name, label, d) for label, d in mutations(frame, seed=i, n_random=n_random)]
    return files, out


# --- one decoder over the items, in children restarted after a death ------------------------------

_CHILD = r"""
import io, os, pickle, signal, sys, warnings
signal.signal(signal.SIGPROF, signal.SIG_DFL)
sys.path.insert(0, sys.argv[4])
warnings.simplefilter("ignore")
import pydicom
from pydicom.encaps import encapsulate
from vindr_cli.dicomio.quiet import quiet_pydicom
from vindr_cli.pixels import backends as B
from vindr_cli.pixels.decode import decode
quiet_pydicom()
files, todo = pickle.load(open(sys.argv[1], "rb"))
start, decoder = int(sys.argv[2]), sys.argv[3]
cache = {}
for i in range(start, len(todo)):
    name, label, frame = todo[i]
    if name not in cache:
        cache[name] = pydicom.dcmread(io.BytesIO(files[name]))
    ds = cache[name].copy()
    ds.PixelData = encapsulate([frame])
    ts = ds.file_meta.TransferSyntaxUID
    os.write(1, f"BEGIN {i}\n".encode())
    signal.setitimer(signal.ITIMER_PROF, 20)
    try:
        with B.quiet_stderr():
            if decoder == "gdcm-in-process":
                from pydicom.pixels import iter_pixels
                list(iter_pixels(ds, decoding_plugin="gdcm"))
            elif decoder == "vindr":
                decode(ds)
            else:
                if not B.available(decoder, ts):
                    raise LookupError
                B.run(decoder, ds, ts)
        res = "ok"
    except LookupError:
        res = "n/a"
    except Exception:
        res = "refused"
    signal.setitimer(signal.ITIMER_PROF, 0)
    os.write(1, f"END {i} {res}\n".encode())
"""


def run_decoder(decoder: str, path: Path, n: int) -> dict[int, str]:
    results: dict[int, str] = {}
    start = 0
    while start < n:
        proc = subprocess.run(["bash", "-c", 'ulimit -v 4000000; exec "$0" "$@"', sys.executable, "-c", _CHILD,
                               str(path), str(start), decoder, str(ROOT)],
                              capture_output=True, text=True, timeout=3600)
        last = None
        for line in proc.stdout.splitlines():
            word = line.split()
            if word[0] == "BEGIN":
                last = int(word[1])
            else:
                results[int(word[1])] = word[2]
                last = None
        if proc.returncode == 0 or last is None:
            break
        results[last] = {-6: "died: SIGABRT", -11: "died: SIGSEGV", -27: "died: over 20 CPU s"}.get(
            proc.returncode, f"died: rc {proc.returncode}")
        start = last + 1
    return results


def hostile(args, record: dict) -> dict:
    """Each decoder over every frame; ``record`` is written after each (a long run cut short
    keeps what it measured)."""
    files, todo = items(args.random)
    record = record.setdefault("hostile", {})
    record.update(frames=len(todo), random_per_frame=args.random, files=sorted(files))
    record.setdefault("decoders", {})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "items.pkl")
        path.write_bytes(pickle.dumps((files, todo)))
        for decoder in args.decoders:
            t0 = time.time()
            res = run_decoder(decoder, path, len(todo))
            counts = collections.Counter(v if not v.startswith("died") else "died" for v in res.values())
            deaths = collections.Counter(f"{todo[i][0]}: {todo[i][1]} ({v[6:]})" for i, v in res.items()
                                         if v.startswith("died"))
            record["decoders"][decoder] = {"counts": dict(counts), "deaths": sorted(deaths),
                                           "seconds": round(time.time() - t0, 1)}
            record["decoders"][decoder]["load_1min_end"] = round(os.getloadavg()[0], 1)
            args.save()
            print(f"{decoder:18s} {dict(counts)}", flush=True)
            for d in sorted(deaths)[:12]:
                print(f"    {d}")
    return record


# --- speed ------------------------------------------------------------------------------------------

def speed(args) -> dict:
    import numpy as np
    from pydicom import uid
    from pydicom.pixels import iter_pixels

    sys.path.insert(0, str(ROOT / "bench"))
    from decode_backends import encode
    from vindr_cli.pixels import backends as B
    from vindr_cli.synth.radiograph import chest_frontal, to_stored

    rng = np.random.default_rng(7)
    image = to_stored(chest_frontal(2048, 2048, rng).attenuation, 12, "MONOCHROME2", rng)
    cases = {}
    for ts in (uid.JPEGLosslessSV1, uid.JPEGLossless, uid.JPEGLSLossless, uid.JPEGLSNearLossless):
        ds = encode(image, ts)
        fns = {"gdcm-in-process": lambda ds=ds: list(iter_pixels(ds, decoding_plugin="gdcm"))}
        for name in B.CANDIDATES[ts]:
            if B.available(name, ts):
                fns["gdcm-in-a-child" if name == "gdcm" else name] = lambda ds=ds, ts=ts, name=name: B.run(name, ds, ts)
        for name, fn in fns.items():
            got = fn()[0]
            if ts != uid.JPEGLSNearLossless and not np.array_equal(got, image):
                raise AssertionError(f"{name} does not decode {ts.name} losslessly")
        cases[ts.name] = fns
    best: dict = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.runs):
        for tsn, fns in cases.items():
            for name, fn in fns.items():
                c0, w0 = time.process_time(), time.perf_counter()
                fn()
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                b = best.setdefault(tsn, {}).setdefault(name, [9e9, 9e9])
                b[0], b[1] = min(b[0], cpu), min(b[1], wall)
        load.append(os.getloadavg()[0])
    out = {tsn: {n: {"cpu_ms": round(1000 * v[0], 1), "wall_ms": round(1000 * v[1], 1)} for n, v in d.items()}
           for tsn, d in best.items()}
    for tsn, d in out.items():
        print(tsn)
        for n, v in d.items():
            print(f"  {n:22s} cpu {v['cpu_ms']:8.1f} ms  wall {v['wall_ms']:8.1f} ms")
    print("load average (1 min) during the run:", [round(x, 1) for x in load])
    return {"image": "2048x2048 12-bit synthetic radiograph", "runs": args.runs, "best_of": "min CPU and min wall",
            "load_1min": [round(x, 1) for x in load], "results": out,
            "note": "gdcm-in-a-child includes the child's start (interpreter, pydicom, GDCM)"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=100, help="random header mutations per frame")
    ap.add_argument("--decoders", default=",".join(DECODERS))
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "jpeg_hostile.json")
    args = ap.parse_args()
    args.decoders = [d for d in args.decoders.split(",") if d]
    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    record["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    def save():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")

    args.save = save
    if args.speed:
        record["speed"] = speed(args)
    else:
        hostile(args, record)
    save()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
