#!/usr/bin/env python3
"""Benchmark the `vindr baseline` detector: training and inference throughput per input size.

Data: a synthetic release (vindr_cli.baseline.synthetic) of 16-bit PNGs, 1024 px wide (the
size `vindr decode` writes by default), 8 lesion classes. For each input size the real
training path is timed: DetectionDataset (PNG decode from the in-memory cache as in a CPU run,
letterbox, augmentation), TrainCollate (TTFNet targets), Detector forward + losses + backward +
AdamW step, channels_last, and on CPU deterministic algorithms as train_baseline sets them.
One warm-up step, then `--steps` timed steps; the figure is images / wall second of those
steps (data preparation included, one process, no DataLoader workers, as on a small CPU
machine). Inference: forward + heatmap decoding + NMS on the same batches, eval mode.

Sizes: 128 px with the small model of tests/test_baseline_learn.py, 512 and 1024 px with the
default ModelConfig (what `vindr baseline` trains). The machine may be shared: the load
average at start and end is recorded, and the best of `--repeat` passes is kept.

``--models tiny small base`` times the 512 and 1024 px cases for each preset of
schemas/baseline/models.toml (``--model``), interleaved pass by pass (results keyed
``SIZE`` for tiny, ``SIZE_PRESET`` for the others).

Usage: python bench/baseline_bench.py [--steps 4] [--repeat 2] [--device auto|cpu|cuda] [--models tiny ...]
Results: bench/results/baseline.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vindr_cli.baseline.data import Augment, DetectionDataset  # noqa: E402
from vindr_cli.baseline.model import Detector, ModelConfig, decode_detections  # noqa: E402
from vindr_cli.baseline.presets import preset_fields, resolve_model  # noqa: E402
from vindr_cli.baseline.synthetic import make_synthetic_release  # noqa: E402
from vindr_cli.baseline.train import TrainCollate, _to_device, compute_losses, resolve_device  # noqa: E402

def train_step(model, opt, cfg, images, tg, cuda: bool):
    """One training step as `vindr baseline` takes it: forward (bf16 autocast on CUDA), losses,
    backward, AdamW step. Returns the total loss (a tensor). Also timed by bench/gpu_measure.py."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        out = model(images)
    loss = compute_losses(out, tg, cfg)["total"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


CASES = [  # (input size, batch size, model overrides, label)
    (128, 16, {"fpn_channels": 32, "head_channels": 32}, "test model (fpn/head 32)"),
    (512, 8, {}, "default model"),
    (1024, 4, {}, "default model"),
]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_case(rel, size: int, batch: int, overrides: dict, steps: int, dev: torch.device) -> dict:
    torch.manual_seed(0)
    cuda = dev.type == "cuda"
    cfg = ModelConfig(num_classes=len(rel.classes), **overrides)
    model = Detector(cfg).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ds = DetectionDataset(rel.train, size, rel.classes, augment=Augment(), seed=0, cache_bytes=1 << 30)
    for i in range(len(ds)):  # fill the cache, as after a first epoch
        ds[(0, i)]
    collate = TrainCollate(cfg.num_classes, size, cfg.out_stride, cfg.detect)

    def batch_at(k: int):
        idx = [(1, (k * batch + j) % len(ds)) for j in range(batch)]
        images, tg = collate([ds[i] for i in idx])
        return images.to(dev).contiguous(memory_format=torch.channels_last), _to_device(tg, dev)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    model.train()
    t_data = t_step = 0.0
    for k in range(steps + 1):
        t0 = time.perf_counter()
        images, tg = batch_at(k)
        t1 = time.perf_counter()
        train_step(model, opt, cfg, images, tg, cuda)
        sync()
        t2 = time.perf_counter()
        if k:  # the first step is warm-up
            t_data += t1 - t0
            t_step += t2 - t1
    n = steps * batch
    model.eval()
    t_inf = 0.0
    with torch.no_grad():
        for k in range(steps + 1):
            images, _ = batch_at(k)
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = model(images)
            decode_detections(out["heatmap"], out["ltrb"], cfg.out_stride, cfg.box_unit)
            sync()
            if k:
                t_inf += time.perf_counter() - t0
    return {"size": size, "batch": batch, "params": sum(p.numel() for p in model.parameters()),
            "train_images_per_s": n / (t_data + t_step), "train_step_images_per_s": n / t_step,
            "data_ms_per_image": 1000 * t_data / n, "infer_images_per_s": n / t_inf,
            "steps_timed": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=["tiny"], help="presets for the 512/1024 px cases")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "baseline.json")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
    load0 = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        rel = make_synthetic_release(tmp, n_train=32, n_test=0, size=1024, n_classes=8, seed=0, bits="16")
        cases = [(str(size), size, batch, overrides, label) for size, batch, overrides, label in CASES[:1]]
        for size, batch, overrides, label in CASES[1:]:
            for m in args.models:
                resolve_model(m)
                key = str(size) if m == "tiny" else f"{size}_{m}"
                cases.append((key, size, batch, preset_fields(m), label if m == "tiny" else f"preset {m}"))
        best_of: dict[str, dict] = {}
        for _ in range(args.repeat):          # pass by pass, so every case sees the same load
            for key, size, batch, overrides, label in cases:
                r = bench_case(rel, size, batch, overrides, args.steps, dev)
                if key not in best_of or r["train_images_per_s"] > best_of[key]["train_images_per_s"]:
                    best_of[key] = dict(r, model=label)
        for key, size, batch, overrides, label in cases:
            best = best_of[key]
            results[key] = best
            print(f"{size:5d} px  batch {batch:2d}  {label:26s}  train {best['train_images_per_s']:7.1f} img/s "
                  f"(step only {best['train_step_images_per_s']:7.1f}, data {best['data_ms_per_image']:.1f} ms/img)  "
                  f"inference {best['infer_images_per_s']:7.1f} img/s", flush=True)
    doc = {
        "date": datetime.date.today().isoformat(),
        "machine": {"device": str(dev),
                    "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_average_at_start": load0,
                    "load_average_at_end": os.getloadavg()},
        "versions": {"torch": torch.__version__},
        "data": "synthetic release, 16-bit PNG, 1024 px wide (height 922-1126), 8 classes, 0-3 lesions per image",
        "method": f"best of {args.repeat} passes; {args.steps} timed steps after one warm-up step; "
                  "train images/s includes data preparation (no DataLoader workers)",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
