#!/usr/bin/env python3
"""Parameter counts and FLOPs of the baseline's model presets (schemas/baseline/models.toml).

Counted, not timed: torch.utils.flop_counter.FlopCounterMode over one forward pass (and one
forward + backward, what a training step costs before the optimizer) of a 1 x 1 x S x S image,
on the meta device (shapes only, no arithmetic, so it takes seconds on any CPU). FLOPs are
torch's count: 2 per multiply-add of convolutions and matrix products; batch norm, ReLU,
interpolation and the losses are not counted (a few percent at most). Also the parts: backbone
alone, FPN + heads (the rest). num_classes 14 (VinDr-CXR's local labels).

Usage: python bench/model_sizes.py [--sizes 1024 512] [--classes 14]
Results: bench/results/model_sizes.json (figures copied by hand into bench/README.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vindr_cli.baseline.model import Detector, ModelConfig  # noqa: E402
from vindr_cli.baseline.presets import model_names, preset_fields  # noqa: E402


def count(name: str, size: int, classes: int) -> dict:
    cfg = ModelConfig(num_classes=classes, **preset_fields(name))
    real = Detector(cfg)
    params = sum(p.numel() for p in real.parameters())
    backbone_params = sum(p.numel() for p in real.backbone.parameters())
    with torch.device("meta"):
        model = Detector(cfg)
        x = torch.zeros(1, 1, size, size)
        with FlopCounterMode(display=False) as fwd:
            model(x)
        with FlopCounterMode(display=False) as bb:
            model.backbone(x)
        with FlopCounterMode(display=False) as train:
            out = model(x)
            sum(v.float().sum() for v in out.values()).backward()
    return {"model": name, "config": cfg.to_dict(), "params": params, "backbone_params": backbone_params,
            "size": size, "forward_gflop": fwd.get_total_flops() / 1e9,
            "backbone_forward_gflop": bb.get_total_flops() / 1e9,
            "train_step_gflop": train.get_total_flops() / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 512])
    ap.add_argument("--classes", type=int, default=14)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "model_sizes.json")
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        for name in model_names():
            r = count(name, size, args.classes)
            rows.append(r)
            print(f"{name:6s} {size:5d} px  {r['params'] / 1e6:6.2f} M params (backbone {r['backbone_params'] / 1e6:5.2f} M)"
                  f"  forward {r['forward_gflop']:7.1f} GFLOP (backbone {r['backbone_forward_gflop']:6.1f})"
                  f"  train step {r['train_step_gflop']:7.1f} GFLOP per image", flush=True)
    doc = {"date": datetime.date.today().isoformat(), "torch": torch.__version__,
           "method": "torch.utils.flop_counter.FlopCounterMode on the meta device, batch 1, "
                     f"num_classes {args.classes}; counted, not timed",
           "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
