#!/usr/bin/env python3
"""GPU measurements of issue 13, in one run of at most ~8 minutes (bench/gpu_measure.sh runs it
on the device machine; bench/README.md "GPU measurements (issue 13)" says how).

1. Data: a synthetic release (vindr_cli.baseline.synthetic, the data of bench/baseline_bench.py)
   of ``--images`` train + ``--test-images`` test PNGs, ``--size`` px wide, 8 lesion classes,
   8/16-bit mixed, rendered on every core.
2. Step throughput per model preset (tiny, small, base): the training step alone (forward,
   losses, backward, AdamW) on one real collated batch already on the device, bf16 autocast and
   channels_last on CUDA as in train_baseline, ``--steps`` timed steps after 3 warm-up steps
   (cudnn.benchmark autotuning happens there), CUDA synchronised; peak device memory.
3. `vindr decode` of the same JPEG 2000 lossless radiographs (``--decode-files``, 2048-2500 x
   1700-2048, 12 bits, as bench/decode_bench.py makes them) to 1024 px PNGs with ``--device
   cpu`` and ``--device cuda`` (nvImageCodec), round robin, best of ``--decode-rounds``; the
   PNGs of the two devices compared. Without nvImageCodec (or a GPU) the cuda runs are not
   made and the JSON says why (the import error's class name).
4. `vindr baseline` training (vindr_cli.baseline.train.train_baseline, what the command runs)
   per preset: ``--epochs`` epochs at most, DataLoader workers, bf16 on CUDA, each preset
   within its share of the time left (its time budget shortens the cosine schedule to fit);
   then the test evaluation (mAP@0.4/0.5, AUROC) and the report. Per-epoch mean losses.

Everything goes to ``--out`` as it is measured (a run cut short still leaves what it had):
``gpu_measure.json`` (all figures), ``loss_curves.png`` (loss per epoch, mAP and images/s per
preset), ``reports.md`` (each run's report.md). ``--cpu-smoke`` checks the whole script end to
end on a CPU in a minute or two (64 images, 256 px, 1 epoch, tiny and small, 4 decode files):
its figures are not measurements of anything. No figure here is written by hand.

Usage: python bench/gpu_measure.py [--out DIR] [--cpu-smoke] [--models tiny small base] ...
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def err_name(exc: BaseException) -> str:
    """An exception by its class name only (its message is free text)."""
    return type(exc).__name__


class Results:
    def __init__(self, out: Path, doc: dict):
        self.out, self.doc = out, doc

    def save(self) -> None:
        path = self.out / "gpu_measure.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.doc, indent=2, default=str) + "\n")
        os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# 1. machine

def machine_info(torch, dev) -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
            "load_average_at_start": os.getloadavg(), "device": str(dev)}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(device_name=torch.cuda.get_device_name(dev), device_memory_gib=p.total_memory / 2**30,
                    multiprocessors=p.multi_processor_count, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = q.stdout.strip() if q.returncode == 0 else f"exit {q.returncode}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["nvidia_smi"] = f"not run ({err_name(exc)})"
    try:
        from nvidia import nvimgcodec  # noqa: F401
        info["nvimgcodec"] = getattr(nvimgcodec, "__version__", "imported")
    except Exception as exc:   # not installed, or its CUDA libraries are missing
        info["nvimgcodec"] = f"not importable ({err_name(exc)})"
    return info


# ---------------------------------------------------------------------------------------------
# 2. step throughput

def step_bench(torch, rel, name: str, size: int, batch: int, steps: int, dev) -> dict:
    from vindr_cli.baseline.data import Augment, DetectionDataset
    from vindr_cli.baseline.model import Detector, ModelConfig
    from vindr_cli.baseline.presets import preset_fields
    from vindr_cli.baseline.train import TrainCollate, _to_device

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from baseline_bench import train_step       # the step baseline_bench.py times

    cuda = dev.type == "cuda"
    torch.manual_seed(0)
    cfg = ModelConfig(num_classes=len(rel.classes), **preset_fields(name))
    model = Detector(cfg).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ds = DetectionDataset(rel.train, size, rel.classes, augment=Augment(), seed=0)
    collate = TrainCollate(cfg.num_classes, size, cfg.out_stride, cfg.detect)
    images, tg = collate([ds[(0, i % len(ds))] for i in range(batch)])
    images = images.to(dev).contiguous(memory_format=torch.channels_last)
    tg = _to_device(tg, dev)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(dev)

    def one():
        train_step(model, opt, cfg, images, tg, cuda)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    model.train()
    for _ in range(3):
        one()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    sync()
    dt = time.perf_counter() - t
    r = {"model": name, "size": size, "batch": batch, "steps_timed": steps, "seconds": dt,
         "images_per_s": steps * batch / dt, "params": sum(p.numel() for p in model.parameters()),
         "precision": "bf16 autocast" if cuda else "float32"}
    if cuda:
        r["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    del model, opt, images, tg
    if cuda:
        torch.cuda.empty_cache()
    return r


# ---------------------------------------------------------------------------------------------
# 3. decode

def _dims(i: int) -> tuple[int, int]:
    rows, cols = 2048 + (i * 97) % 453, 1700 + (i * 61) % 349
    return (cols, rows) if i % 6 == 5 else (rows, cols)


def _make_j2k(args: tuple[str, int, int]) -> None:
    import pydicom

    from vindr_cli.synth.export import write_radiograph

    path, i, scale = args
    rows, cols = _dims(i)
    write_radiograph(Path(path), index=i, rows=rows // scale, cols=cols // scale, transfer_syntax=J2K_LOSSLESS,
                     photometric="MONOCHROME1" if i % 2 else "MONOCHROME2", seed=7, verify=False)
    ds = pydicom.dcmread(path)
    ds.PatientIdentityRemoved = "YES"    # decoded as a de-identified tree
    ds.save_as(path)


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*.png")}


def _by_input(folder: Path, src: Path) -> dict[str, Path]:
    """{input path#frame: its PNG}: a raw tree's images are named by keyed hashes under each
    OUTPUT's own salt, so two OUTPUTs are compared by input, mapped back through each salt."""
    from vindr_cli.pixels.batch import input_paths
    from vindr_cli.tables import read_rows

    if not (folder / "images.parquet").is_file():
        return {}
    rels = input_paths(folder, src)
    return {f"{rels.get(r['input'], r['input'])}#{r['frame']}": folder / r["output"]
            for r in read_rows(folder / "images.parquet") if r["status"] == "ok"}


def make_j2k(work: Path, n_files: int, scale: int, workers: int) -> dict:
    """The decode part's input, made before CUDA is initialised (the pool forks)."""
    res: dict = {"files": n_files, "transfer_syntax": J2K_LOSSLESS, "size": 1024, "scale": scale}
    src = work / "j2k"
    src.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    jobs = [(str(src / f"IMG_{i:04d}.dcm"), i, scale) for i in range(n_files)]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as ex:
        list(ex.map(_make_j2k, jobs))
    res["make_seconds"] = time.perf_counter() - t
    res["input_mib"] = sum(p.stat().st_size for p in src.glob("*.dcm")) / 2**20
    log(f"decode: {n_files} J2K files made ({res['input_mib']:.0f} MiB) in {res['make_seconds']:.1f}s")
    return res


def decode_part(work: Path, res: dict, rounds: int, workers: int, cuda_jobs: list[int], info: dict) -> dict:
    import numpy as np
    from PIL import Image

    src = work / "j2k"

    variants = [("cpu", workers)]
    if str(info.get("nvimgcodec", "")).startswith("not importable"):
        res["cuda"] = f"not measured: nvImageCodec {info['nvimgcodec']}"
    elif not info.get("cuda_available"):
        res["cuda"] = "not measured: no CUDA device"
    else:
        variants += [("cuda", j) for j in cuda_jobs]
    runs = {f"{d} -j {j}": [] for d, j in variants}
    for rnd in range(rounds):
        for d, j in variants:
            out = work / f"dec_{d}_{j}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, "-m", "vindr_cli", "decode", str(src), str(out), "--size", "1024",
                   "--device", d, "-j", str(j)]
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
            wall = time.perf_counter() - t
            n_png = len(_pngs(out)) if out.exists() else 0
            r = {"round": rnd, "rc": p.returncode, "wall_s": wall, "pngs": n_png,
                 "images_per_s": n_png / wall if n_png else None}
            if p.returncode != 0:
                r["last_line"] = (p.stderr.strip().splitlines() or [""])[-1][:300]
            runs[f"{d} -j {j}"].append(r)
            log(f"decode --device {d} -j {j} round {rnd}: rc {p.returncode}, {n_png} PNGs in {wall:.2f}s")
    res["runs"] = runs
    res["best"] = {k: max((r["images_per_s"] or 0 for r in v), default=0) for k, v in runs.items()}
    # the two devices' PNGs (last round of each)
    cpu_dir = work / f"dec_cpu_{workers}"
    for d, j in variants[1:]:
        gdir = work / f"dec_{d}_{j}"
        a, b = _by_input(cpu_dir, src), _by_input(gdir, src) if gdir.exists() else {}
        common = sorted(set(a) & set(b))
        same, maxdiff, meandiff = 0, 0, []
        for k in common:
            x = np.asarray(Image.open(a[k])).astype(np.int32)
            y = np.asarray(Image.open(b[k])).astype(np.int32)
            if x.shape != y.shape:
                maxdiff = max(maxdiff, 256)
                continue
            diff = np.abs(x - y)
            same += int(not diff.any())
            maxdiff = max(maxdiff, int(diff.max()))
            meandiff.append(float(diff.mean()))
        res[f"compare cpu vs {d} -j {j}"] = {"common": len(common), "identical": same, "max_abs_diff": maxdiff,
                                             "mean_abs_diff": float(np.mean(meandiff)) if meandiff else None}
        break   # one comparison is enough: the cuda variants decode alike
    return res


# ---------------------------------------------------------------------------------------------
# 4. training

def train_part(torch, rel, name: str, args, dev, budget: float, work: Path) -> tuple[dict, str]:
    from vindr_cli.baseline.train import train_baseline

    out = work / f"baseline_{name}"
    shutil.rmtree(out, ignore_errors=True)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    epochs_t: list[dict] = []
    t0 = time.perf_counter()

    def on_epoch_end(epoch: int, meta: dict) -> None:
        epochs_t.append({"epoch": epoch, "wall_s": time.perf_counter() - t0, "step": meta["step"],
                         "train_images": meta["train_images"], "train_seconds": meta["train_seconds"]})

    rep = train_baseline(rel.train, rel.test, rel.classes, task="both", size=args.size, epochs=args.epochs,
                         batch_size=args.batch, device=str(dev), seed=0, out_dir=out, time_budget_s=budget,
                         model=name, num_workers=args.loader_workers, compile=args.compile,
                         threshold_samples=args.threshold_samples, bootstrap=args.bootstrap,
                         progress=lambda m: log(f"{name}: {m}"), on_epoch_end=on_epoch_end)
    d = rep.to_dict()
    run = d["run"]
    r = {"model": name, "budget_s": budget, "wall_s": time.perf_counter() - t0, "verdict": d["verdict"],
         "map_40": rep.map40, "map_50": rep.map50, "auroc": rep.auroc, "epochs": epochs_t, **{
             k: run[k] for k in ("epochs_done", "epochs", "steps", "total_steps", "batch_size", "lr",
                                 "stopped_by_budget", "compiled", "train_images_per_s", "infer_images_per_s",
                                 "train_seconds", "n_params", "model_config", "loss_history", "device_name")}}
    if dev.type == "cuda":
        r["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        torch.cuda.reset_peak_memory_stats(dev)
    md = (out / "report.md").read_text() if (out / "report.md").exists() else ""
    return r, md


def plot(doc: dict, path: Path) -> bool:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    train = doc["parts"].get("train", {})
    if not train:
        return False
    fig = Figure(figsize=(13, 4))
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for name, r in train.items():
        h = r.get("loss_history") or []
        if h:
            ax1.plot([e["epoch"] for e in h], [e["total"] for e in h], marker="o", label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("mean training loss (total)")
    ax1.legend()
    names = list(train)
    ax2.bar(names, [train[n].get("map_40") or 0 for n in names])
    ax2.set_ylabel("test mAP@0.4 (VOC)")
    ax3.bar(names, [train[n].get("train_images_per_s") or 0 for n in names], label="train_baseline")
    sb = doc["parts"].get("step", {})
    ax3.plot(names, [sb.get(n, {}).get("images_per_s", 0) for n in names], "k^", label="step only")
    ax3.set_ylabel(f"training images/s at {doc['settings']['size']} px")
    ax3.legend()
    fig.suptitle(f"vindr baseline on {doc['machine'].get('device_name', doc['machine']['device'])}"
                 + (" (CPU SMOKE TEST: no measurement)" if doc["settings"]["cpu_smoke"] else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


# ---------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "bench" / "results" / "gpu"))
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny settings on the CPU: checks the script only")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--models", nargs="+", default=["tiny", "small", "base"])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--test-images", type=int, default=400)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=15, help="timed steps of the step benchmark")
    ap.add_argument("--loader-workers", type=int, default=None, help="DataLoader workers (default: cores - 2, at most 14)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training model (adds compile time)")
    ap.add_argument("--threshold-samples", type=int, default=256)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--decode-files", type=int, default=96)
    ap.add_argument("--decode-rounds", type=int, default=2)
    ap.add_argument("--decode-scale", type=int, default=1, help="divide the radiographs' sides by this")
    ap.add_argument("--cuda-decode-jobs", type=int, nargs="+", default=[1, 16],
                    help="-j of the cuda runs: 1 decodes in the main process; > 1 in forked workers, after the "
                         "main process initialised CUDA to check for a GPU (pixels/gpu.py), which may fail there")
    ap.add_argument("--total-budget", type=float, default=420.0, help="seconds for the whole run")
    ap.add_argument("--eval-reserve", type=float, default=30.0, help="seconds kept per preset for evaluation")
    ap.add_argument("--skip", nargs="*", default=[], choices=["step", "decode", "train"])
    args = ap.parse_args()
    if args.cpu_smoke:
        args.device, args.images, args.test_images, args.size, args.epochs = "cpu", 64, 16, 256, 1
        args.batch, args.steps, args.decode_files, args.decode_rounds, args.decode_scale = 8, 2, 4, 1, 4
        args.models = [m for m in args.models if m != "base"]
        args.threshold_samples, args.bootstrap, args.eval_reserve = 32, 20, 10.0
        args.total_budget = max(args.total_budget, 1200.0)     # a shared 2-core CPU is slow
        args.loader_workers = 0 if args.loader_workers is None else args.loader_workers
    cpus = os.cpu_count() or 1
    if args.loader_workers is None:
        args.loader_workers = max(0, min(14, cpus - 2))
    deadline = T0 + args.total_budget

    import torch

    from vindr_cli.baseline.presets import resolve_model
    from vindr_cli.baseline.synthetic import make_synthetic_release
    from vindr_cli.baseline.train import resolve_device

    for m in args.models:
        resolve_model(m)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="vindr_gpu_"))
    doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "machine": {}, "parts": {}, "errors": {}}
    res = Results(args.out, doc)

    # the process pools fork: everything they make is made before CUDA is initialised
    t = time.perf_counter()
    rel = make_synthetic_release(work / "release", n_train=args.images, n_test=args.test_images, size=args.size,
                                 n_classes=8, seed=0, bits="mixed", workers=cpus)
    doc["parts"]["data"] = {"train": len(rel.train), "test": len(rel.test), "width": args.size, "classes": 8,
                            "seconds": time.perf_counter() - t, "workers": cpus}
    log(f"release: {len(rel.train)} + {len(rel.test)} images in {doc['parts']['data']['seconds']:.1f}s")
    j2k = None
    if "decode" not in args.skip:
        try:
            j2k = make_j2k(work, args.decode_files, args.decode_scale, cpus)
        except Exception as exc:
            doc["errors"]["decode"] = f"making the J2K files: {err_name(exc)}"
            log(f"decode: making the files failed ({err_name(exc)})")

    dev = resolve_device(args.device)
    doc["machine"] = machine_info(torch, dev)
    res.save()
    log(f"device {dev} ({doc['machine'].get('device_name', 'cpu')}), torch {torch.__version__}, "
        f"nvImageCodec: {doc['machine']['nvimgcodec']}")

    if "step" not in args.skip:
        doc["parts"]["step"] = {}
        for name in args.models:
            try:
                r = step_bench(torch, rel, name, args.size, args.batch, args.steps, dev)
                doc["parts"]["step"][name] = r
                log(f"step {name}: {r['images_per_s']:.1f} img/s (batch {args.batch}, {args.size} px)")
            except Exception as exc:   # e.g. out of memory: recorded, the run goes on
                doc["errors"][f"step {name}"] = err_name(exc)
                log(f"step {name}: failed ({err_name(exc)})")
            res.save()

    if j2k is not None:
        try:
            doc["parts"]["decode"] = decode_part(work, j2k, args.decode_rounds, cpus, args.cuda_decode_jobs,
                                                 doc["machine"])
        except Exception as exc:
            doc["errors"]["decode"] = err_name(exc)
            log(f"decode: failed ({err_name(exc)})")
        res.save()

    if "train" not in args.skip:
        doc["parts"]["train"] = {}
        md = []
        for k, name in enumerate(args.models):
            left = len(args.models) - k
            budget = (deadline - time.perf_counter()) / left - args.eval_reserve
            if budget < 10:
                doc["errors"][f"train {name}"] = f"skipped: {budget:.0f}s of the total budget left for it"
                log(f"train {name}: skipped (time)")
                continue
            try:
                r, text = train_part(torch, rel, name, args, dev, budget, work)
                doc["parts"]["train"][name] = r
                md.append(f"<!-- preset {name} -->\n{text}")
                log(f"train {name}: {r['epochs_done']}/{r['epochs']} epochs, {r['train_images_per_s'] or 0:.1f} img/s, "
                    f"mAP@0.4 {r['map_40'] if r['map_40'] is None else round(r['map_40'], 3)}, wall {r['wall_s']:.0f}s")
            except Exception as exc:
                doc["errors"][f"train {name}"] = err_name(exc)
                log(f"train {name}: failed ({err_name(exc)})")
            res.save()
            (args.out / "reports.md").write_text("\n\n".join(md) + "\n")
        if plot(doc, args.out / "loss_curves.png"):
            log(f"wrote {args.out / 'loss_curves.png'}")
    doc["machine"]["load_average_at_end"] = os.getloadavg()
    doc["wall_s"] = time.perf_counter() - T0
    res.save()
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {args.out / 'gpu_measure.json'} ({doc['wall_s']:.0f}s)")


if __name__ == "__main__":
    main()
