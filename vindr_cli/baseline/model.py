"""The baseline model: a small ResNet-like backbone, an FPN merged down to one output level
(stride 4 by default), a TTFNet/CenterNet-style anchor-free detection head (class heatmaps +
box-edge distances) and an image-level normal/abnormal classifier sharing the backbone.

Single-stage, anchor-free, one output level: the cheapest detector that still trains to a
decent mAP in minutes on a CPU. Plain torch, no torchvision.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vindr_cli.baseline.boxes import batched_nms, decode_ltrb

__all__ = ["Detector", "ModelConfig", "decode_detections"]


@dataclass
class ModelConfig:
    num_classes: int
    widths: tuple[int, ...] = (16, 32, 64, 96, 128)   # stem (stride 2), then strides 4, 8, 16, 32
    blocks: tuple[int, ...] = (1, 1, 1, 1)            # residual blocks at strides 4, 8, 16, 32
    fpn_channels: int = 64
    head_channels: int = 64
    out_stride: int = 4                               # 4 or 8
    box_unit: float = 16.0                            # regression output unit, input pixels
    detect: bool = True
    classify: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["blocks"] = list(self.widths), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["widths"], d["blocks"] = tuple(d["widths"]), tuple(d["blocks"])
        return cls(**d)


def _conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3, 1, relu=False)
        self.short = None if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride, relu=False)

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return F.relu(y + (x if self.short is None else self.short(x)), inplace=True)


class Backbone(nn.Module):
    def __init__(self, widths, blocks):
        super().__init__()
        if len(widths) != 5 or len(blocks) != 4:
            raise ValueError("widths needs 5 entries (stem + 4 stages), blocks 4")
        self.stem = _conv_bn(1, widths[0], 3, 2)
        stages = []
        cin = widths[0]
        for cout, n in zip(widths[1:], blocks):
            layers = [BasicBlock(cin, cout, 2)] + [BasicBlock(cout, cout, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        return feats  # strides 4, 8, 16, 32


class FPN(nn.Module):
    """Top-down FPN merged down to one level (stride ``4`` or ``8``)."""

    def __init__(self, in_channels, channels: int, out_stride: int):
        super().__init__()
        if out_stride not in (4, 8):
            raise ValueError("out_stride must be 4 or 8")
        self.first = 0 if out_stride == 4 else 1
        self.lateral = nn.ModuleList(_conv_bn(c, channels, 1, 1, relu=False) for c in in_channels[self.first:])
        self.smooth = _conv_bn(channels, channels, 3, 1)

    def forward(self, feats):
        feats = feats[self.first:]
        x = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            x = F.interpolate(x, size=f.shape[-2:], mode="nearest") + lat(f)
        return self.smooth(x)


class Detector(nn.Module):
    """``forward(images [B, 1, H, W] in [0, 1]) -> {"heatmap": [B, C, H/s, W/s] logits,
    "ltrb": [B, 4, H/s, W/s] (>= 0, units of box_unit px), "cls": [B] abnormal logit}``.

    Each image is standardised (zero mean, unit variance) first, so bit depth, window and
    polarity-scale differences between sites matter less."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.widths, cfg.blocks)
        if cfg.detect:
            self.fpn = FPN(cfg.widths[1:], cfg.fpn_channels, cfg.out_stride)
            hc = cfg.head_channels
            self.heat_head = nn.Sequential(nn.Conv2d(cfg.fpn_channels, hc, 3, 1, 1), nn.ReLU(inplace=True),
                                           nn.Conv2d(hc, cfg.num_classes, 1))
            self.box_head = nn.Sequential(nn.Conv2d(cfg.fpn_channels, hc, 3, 1, 1), nn.ReLU(inplace=True),
                                          nn.Conv2d(hc, 4, 1))
            nn.init.constant_(self.heat_head[-1].bias, -math.log((1 - 0.1) / 0.1))  # prior 0.1, as CenterNet
            nn.init.normal_(self.box_head[-1].weight, std=0.01)
            nn.init.constant_(self.box_head[-1].bias, 1.0)
        if cfg.classify:
            self.cls_head = nn.Linear(2 * cfg.widths[-1], 1)

    def forward(self, x):
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) / (std + 1e-3)
        feats = self.backbone(x)
        out = {}
        if self.cfg.detect:
            p = self.fpn(feats)
            out["heatmap"] = self.heat_head(p)
            out["ltrb"] = F.relu(self.box_head(p))
        if self.cfg.classify:
            c5 = feats[-1]
            pooled = torch.cat([c5.mean(dim=(2, 3)), c5.amax(dim=(2, 3))], dim=1)
            out["cls"] = self.cls_head(pooled).squeeze(1)
        return out


def cell_points(h: int, w: int, stride: int, device=None) -> torch.Tensor:
    """Input-pixel centres of the output cells, (H, W, 2) as (x, y)."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


@torch.no_grad()
def decode_detections(heatmap: torch.Tensor, ltrb: torch.Tensor, stride: int, box_unit: float, *,
                      topk: int = 100, score_thr: float = 0.01, nms_iou: float = 0.5,
                      max_det: int = 100) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per image ``(boxes [K, 4] in input pixels, scores [K], labels [K])``: local maxima of the
    heatmap (3x3), the ``topk`` best over all classes, boxes decoded at their cells, then
    class-aware NMS (IoU > ``nms_iou``) and at most ``max_det`` boxes."""
    heat = torch.sigmoid(heatmap.float())
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    b, c, h, w = heat.shape
    k = min(topk, c * h * w)
    scores, idx = peaks.reshape(b, -1).topk(k, dim=1)
    cls = idx // (h * w)
    pix = idx % (h * w)
    d = ltrb.float().reshape(b, 4, h * w).gather(2, pix[:, None, :].expand(b, 4, k)).permute(0, 2, 1)
    pts = torch.stack([(pix % w).float() + 0.5, (pix // w).float() + 0.5], dim=-1) * stride
    boxes = decode_ltrb(pts, d, box_unit)
    out = []
    for i in range(b):
        m = scores[i] > score_thr
        bx, sc, lb = boxes[i][m], scores[i][m], cls[i][m]
        keep = batched_nms(bx, sc, lb, nms_iou)[:max_det]
        out.append((bx[keep], sc[keep], lb[keep]))
    return out
