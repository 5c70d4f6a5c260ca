#!/usr/bin/env python3
"""How far `vindr decode` is above the decoder's own time, on real ~2k radiographs (issue 13).

Data: the corpus of bench/decode_corpus.py (27 real CR/DX radiographs, JPEG 2000 lossless,
30 frames). Every tool decodes every frame at the resolution level vindr chooses for
`--size 1024` (reduced-resolution J2K where both sides stay >= the target: the 2048 px cat
crops decode at reduce=1, the 1955 and 1760 px CR images at full size), in the same number
of processes as vindr's workers:

* floor:    a command that starts a pool of N processes; each opens the file with pydicom,
            takes the codestream and calls the decoder vindr uses (OpenJPEG 2.5 through
            `backends.OpenJPEG`, same reduce, same thread count) — nothing but decoding;
* pydicom:  the issue's reference, a plain N-process `dcmread` + `pixel_array` (full size,
            pydicom's own plugin choice);
* vindr:    `vindr decode DATA OUT --size 1024 -j N` (header window, area resize, PNG).

Wall time of each command (interpreter start included for all), CPU s of its process tree,
load average; round robin, best of `--repeat`. Ratio = vindr wall / floor wall, same run.
Then one worker's CPU, in this process, split by step (cProfile with a CPU clock over
`task.decode_one` on every file), the same without a profiler (each step's function wrapped
with a CPU-clock accumulator: cProfile inflates the Python-heavy steps, read_header ~10x),
and the decoder calls alone (codestreams in memory).

`--vindr-tree LABEL=DIR` (repeatable) adds `vindr decode` run from another source tree
(PYTHONPATH=DIR) to the same round robin: e.g. main before these changes, or this branch
with another branch's change merged in.

Usage: python bench/decode_floor.py [--workers 2] [--repeat 3] [--vindr-tree LABEL=DIR ...] [--first N]
Results: bench/results/decode_floor.json (figures copied into bench/README.md).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from decode_bench import timed  # noqa: E402
from decode_corpus import OUT as CORPUS_DIR, corpus  # noqa: E402

SIZE = 1024


# --- the floor and the pydicom reference, run as their own commands -------------------------

def _floor_one(path: str) -> int:
    import warnings

    import pydicom

    from vindr_cli.pixels import backends as B
    from vindr_cli.pixels.decode import choose_reduce
    from vindr_cli.pixels.resize import SizeSpec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
    rows, cols = SizeSpec(long_side=SIZE).target(int(ds.Rows), int(ds.Columns))
    lib = B._openjpeg("openjpeg-direct")
    n = 0
    for frame in B.encapsulated_frames(ds):
        values, _, _ = lib.decode(frame, reduce=choose_reduce(frame, rows, cols), dtype="u2")
        n += values.size
    return n


def _pydicom_one(path: str) -> int:
    import pydicom

    return int(pydicom.dcmread(path).pixel_array.size)


def worker_main(kind: str, data: Path, workers: int) -> int:
    from concurrent.futures import ProcessPoolExecutor

    paths = [str(p) for p in sorted(data.glob("*.dcm"))]
    fn = _floor_one if kind == "floor" else _pydicom_one
    with ProcessPoolExecutor(workers) as pool:
        total = sum(pool.map(fn, paths))
    return 0 if total > 0 else 1


# --- one worker's CPU by step ---------------------------------------------------------------

STEPS = {   # label -> (file suffix, function name) in cProfile's table (cumulative CPU)
    "parse: read_header (pydicom + structure checks)": ("dicomio/header.py", "read_header"),
    "parse: whole data set (dcmread)": ("pixels/task.py", "_read_all"),
    "pixel data checks + fragments": ("pixels/decode.py", "check_pixel_data"),
    "J2K header + reduce choice": ("pixels/decode.py", "choose_reduce"),
    "decoder call (OpenJPEG, C)": ("pixels/backends.py", "decode"),
    "display table (build)": ("pixels/window.py", "display_lut"),
    "direct rendering (small frames)": ("pixels/window.py", "render"),
    "resize (Pillow BOX, float32)": ("pixels/resize.py", "resize"),
    "round to 8 bits": ("pixels/resize.py", "to_uint"),
    "PNG encode (zlib 1, RLE)": ("pixels/output.py", "png_bytes"),
    "write temp file": ("pixels/output.py", "write_image"),
}


def profile_worker(data: Path) -> dict:
    from vindr_cli.pixels.resize import parse_size
    from vindr_cli.pixels.task import DecodeConfig, decode_one, setup
    from vindr_cli.runner.discover import discover

    with tempfile.TemporaryDirectory() as tmp:
        ctx = setup(DecodeConfig(output=tmp, size=parse_size(str(SIZE)), threads=1))
        sources = discover(data)
        decode_one(ctx, sources[0])            # warm: imports, OpenJPEG binding
        prof = cProfile.Profile(time.process_time)
        c0 = time.process_time()
        prof.enable()
        for src in sources:
            decode_one(ctx, src)
        prof.disable()
        total = time.process_time() - c0
    stats = pstats.Stats(prof).stats
    steps = {}
    for label, (suffix, name) in STEPS.items():
        steps[label] = round(sum(v[3] for (file, _, fn), v in stats.items() if file.endswith(suffix) and fn == name), 3)
    steps["write temp file"] = round(steps["write temp file"] - steps["PNG encode (zlib 1, RLE)"], 3)
    steps["total decode_one"] = round(total, 3)
    return steps


TIMED = {   # label -> (module, attribute) wrapped with a CPU-clock accumulator (no profiler)
    "read_header (pydicom + structure checks)": ("vindr_cli.pixels.task", "read_header"),
    "complete the data set from Pixel Data on": ("vindr_cli.pixels.task", "_complete"),
    "pixel element bounds check": ("vindr_cli.pixels.task", "_check_whole"),
    "decode() (checks, fragments, J2K header, decoder)": ("vindr_cli.pixels.task", "decode"),
    "  of which the OpenJPEG calls": ("vindr_cli.pixels.backends", "OpenJPEG.decode"),
    "display parameters": ("vindr_cli.pixels.task", "display_params"),
    "display table (build)": ("vindr_cli.pixels.task", "display_lut"),
    "direct rendering (small frames)": ("vindr_cli.pixels.task", "render"),
    "resize (Pillow BOX, float32)": ("vindr_cli.pixels.task", "resize"),
    "round to 8 bits": ("vindr_cli.pixels.task", "to_uint"),
    "write temp file (PNG encode included)": ("vindr_cli.pixels.output", "write_image"),
    "  of which PNG encode": ("vindr_cli.pixels.output", "png_bytes"),
}


def timed_steps(data: Path, repeat: int = 2) -> dict:
    """One worker's CPU by step without a profiler (cProfile inflates the Python-heavy steps,
    e.g. read_header ~10x): each step's function wrapped with a ``time.process_time``
    accumulator, every file through ``task.decode_one``, best total of ``repeat`` passes;
    "rest" is the table lookup per pixel, the float cast and ``_decode`` itself."""
    import functools
    import importlib

    from vindr_cli.pixels.resize import parse_size
    from vindr_cli.pixels.task import DecodeConfig, decode_one, setup
    from vindr_cli.runner.discover import discover

    acc: dict[str, float] = {}
    saved = []
    for label, (mod_name, attr) in TIMED.items():
        owner = importlib.import_module(mod_name)
        if "." in attr:
            cls_name, attr = attr.split(".")
            owner = getattr(owner, cls_name)
        fn = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)

        def wrapped(*a, _fn=fn, _label=label, **k):
            c = time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                acc[_label] = acc.get(_label, 0.0) + time.process_time() - c

        saved.append((owner, attr, fn))
        setattr(owner, attr, functools.wraps(fn)(wrapped))
    best = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = setup(DecodeConfig(output=tmp, size=parse_size(str(SIZE)), threads=1))
            sources = discover(data)
            decode_one(ctx, sources[0])            # warm: imports, OpenJPEG binding
            for _ in range(repeat):
                acc.clear()
                c0 = time.process_time()
                for src in sources:
                    decode_one(ctx, src)
                total = time.process_time() - c0
                if best is None or total < best[0]:
                    best = (total, dict(acc))
    finally:
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)
    total, acc = best
    out = {label: round(acc.get(label, 0.0), 3) for label in TIMED}
    top = [k for k in TIMED if not k.startswith("  ")]
    out["rest (table lookup, float cast, _decode)"] = round(total - sum(acc.get(k, 0.0) for k in top), 3)
    out["total decode_one"] = round(total, 3)
    return out


def decoder_only(data: Path) -> dict:
    """CPU s of the decoder calls alone (codestreams already in memory), one process."""
    import pydicom

    from vindr_cli.pixels import backends as B
    from vindr_cli.pixels.decode import choose_reduce
    from vindr_cli.pixels.resize import SizeSpec

    lib = B._openjpeg("openjpeg-direct")
    jobs = []
    for p in sorted(data.glob("*.dcm")):
        ds = pydicom.dcmread(p)
        rows, cols = SizeSpec(long_side=SIZE).target(int(ds.Rows), int(ds.Columns))
        jobs += [(f, choose_reduce(f, rows, cols)) for f in B.encapsulated_frames(ds)]
    lib.decode(jobs[0][0], reduce=jobs[0][1])
    c0 = time.process_time()
    for frame, r in jobs:
        lib.decode(frame, reduce=r, dtype="u2")
    return {"frames": len(jobs), "cpu_s": round(time.process_time() - c0, 3),
            "reduce_levels": sorted({r for _, r in jobs})}


def output_digest(out: Path, data: Path) -> dict:
    """SHA-256 of every image under ``out`` and the rows of its images table, to check that
    every vindr tree in the round robin writes the same bytes. Images and rows are keyed by
    the input's path: a raw tree's outputs are named by keyed hashes under each OUTPUT's own
    salt (mapped back through it), a tree from before that by the paths themselves."""
    import hashlib

    import pyarrow.parquet as pq

    from vindr_cli.pixels.batch import input_paths

    rels = input_paths(out, data)
    digest, rows = {}, []
    for r in pq.read_table(out / "images.parquet").to_pylist():
        rel = rels.get(r["input"], r["input"])
        name = None if r["output"] is None else f"{rel}#{r['frame']}"
        if name is not None:
            digest[name] = hashlib.sha256((out / r["output"]).read_bytes()).hexdigest()
        rows.append({**r, "input": rel, "input_key": rels.get(r["input_key"], r["input_key"]), "output": name})
    digest["images.parquet rows"] = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return digest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", choices=("floor", "pydicom"), help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--vindr-tree", action="append", default=[], metavar="LABEL=DIR")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "decode_floor.json")
    ap.add_argument("--first", type=int, default=0, metavar="N",
                    help="only the first N corpus files (e.g. 1: the fixed start-up cost of each command)")
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker, args.data, args.workers)

    corpus()
    data = CORPUS_DIR / "data"
    files = sorted(data.glob("*.dcm"))
    for p in files:                          # warm the page cache
        p.read_bytes()
    work = Path(tempfile.mkdtemp(prefix="vindr-floor-"))
    if args.first:                           # a subset: copied into its own folder (removed at the end)
        data = Path(tempfile.mkdtemp(prefix="vindr-floor-data-"))
        for p in files[:args.first]:
            shutil.copy2(p, data / p.name)
        files = files[:args.first]
    py, vindr = sys.executable, str(Path(sys.executable).parent / "vindr")
    env_cmd = [py, __file__, "--data", str(data), "--workers", str(args.workers), "--worker"]
    cmds = {
        "floor (decoder only)": env_cmd + ["floor"],
        "vindr decode": [vindr, "decode", str(data), str(work / "out"), "--size", str(SIZE), "-j", str(args.workers)],
        "pydicom dcmread+pixel_array": env_cmd + ["pydicom"],
    }
    trees = {"floor (decoder only)": str(ROOT), "vindr decode": str(ROOT), "pydicom dcmread+pixel_array": str(ROOT)}
    for spec in args.vindr_tree:
        label, _, tree = spec.partition("=")
        cmds[f"vindr decode ({label})"] = cmds["vindr decode"]
        trees[f"vindr decode ({label})"] = str(Path(tree).resolve())
    runs: dict[str, list] = {k: [] for k in cmds}
    outputs: dict[str, dict] = {}           # each vindr tree's outputs (first round), compared below
    try:
        for rnd in range(args.repeat):
            for name, cmd in cmds.items():
                shutil.rmtree(work / "out", ignore_errors=True)
                load0 = os.getloadavg()[0]
                os.environ["PYTHONPATH"] = trees[name]
                wall, cpu, peak, other = timed(cmd)
                runs[name].append({"wall_s": round(wall, 3), "cpu_s": round(cpu, 2), "peak_rss_mb": round(peak / 1e6),
                                   "other_cores": round(other / wall, 2), "load1_before": round(load0, 2),
                                   "load1_after": round(os.getloadavg()[0], 2)})
                print(f"round {rnd} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, other processes {other / wall:.2f} "
                      f"cores, load {load0:.2f}", flush=True)
                if rnd == 0 and name.startswith("vindr decode"):
                    outputs[name] = output_digest(work / "out", data)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    same = {k: d == outputs["vindr decode"] for k, d in outputs.items()}
    print(f"outputs byte-identical to this tree's: {same}", flush=True)
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
    floor = best["floor (decoder only)"]["wall_s"]
    ratios = {k: round(b["wall_s"] / floor, 3) for k, b in best.items()}
    # same-round ratios (each round's vindr over that round's floor): the spread of the noise
    per_round = [round(v["wall_s"] / f["wall_s"], 3) for v, f in zip(runs["vindr decode"], runs["floor (decoder only)"])]
    steps = profile_worker(data)
    steps_timed = timed_steps(data)
    dec = decoder_only(data)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": {p: version(p) for p in ("pydicom", "pylibjpeg-openjpeg", "python-gdcm", "numpy", "pillow")},
        "corpus": json.loads((CORPUS_DIR / "corpus.json").read_text()),
        "workers": args.workers, "size": SIZE,
        "trees": trees, "runs": runs, "best": best,
        "outputs_identical_to_this_tree": same, "images_compared": len(outputs["vindr decode"]) - 1,
        "cpu_ratio_to_floor": {k: round(min(r["cpu_s"] for r in v) / min(r["cpu_s"] for r in runs["floor (decoder only)"]), 3)
                               for k, v in runs.items()}, "ratio_to_floor": ratios, "vindr_over_floor_per_round": per_round,
        "one_worker_cpu_s_by_step": steps, "one_worker_cpu_s_by_step_no_profiler": steps_timed,
        "decoder_calls_only": dec,
    }
    if args.first:
        record["first_files"] = [p.name for p in files]
        shutil.rmtree(data, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"best": best, "ratio_to_floor": ratios, "per_round": per_round,
                      "cpu_ratio_to_floor": record["cpu_ratio_to_floor"]}, indent=1))
    print(json.dumps({"steps": steps, "steps_no_profiler": steps_timed, "decoder_only": dec}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
