"""Losses and training targets of the baseline detector (TTFNet-style: Liu et al., "Training-Time-
Friendly Network for Real-Time Object Detection", AAAI 2020).

* Heatmap: one channel per class at the output stride; each box puts a 2-D Gaussian (sigma =
  ``alpha * side / 6``) peaking at exactly 1 on its centre cell. Trained with the penalty-reduced
  focal loss of CornerNet / CenterNet (:func:`gaussian_focal_loss`).
* Box: at the cells of a second, narrower Gaussian (``beta``) inside each box, the detector
  regresses the distances to the box's four edges; the decoded box is trained with the GIoU
  loss (:func:`giou_loss`), each cell weighted by its Gaussian value, normalised per box and
  scaled by ``log(area)`` so large boxes are not drowned by small ones. Using many cells per box
  (not only the centre) is what makes TTFNet converge in few epochs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vindr_cli.baseline.boxes import generalized_box_iou

__all__ = ["gaussian_focal_loss", "giou_loss", "ttf_targets"]


def gaussian_focal_loss(logits: torch.Tensor, target: torch.Tensor, *, alpha: float = 2.0, beta: float = 4.0,
                        reduction: str = "mean") -> torch.Tensor:
    """CornerNet/CenterNet focal loss on a Gaussian heatmap, from logits.

    With ``p = sigmoid(logits)`` and target ``y`` in [0, 1]:

        pos (y == 1): -(1 - p)^alpha * log(p)
        neg (y <  1): -(1 - y)^beta * p^alpha * log(1 - p)

    ``reduction="mean"`` sums everything and divides by the number of positive cells (at least
    1), as CenterNet; ``"sum"`` and ``"none"`` (element-wise) are also available.
    """
    x = logits.float()
    y = target.float()
    pos = y >= 1.0
    p = torch.sigmoid(x)
    pos_loss = -((1.0 - p) ** alpha) * F.logsigmoid(x)
    neg_loss = -((1.0 - y) ** beta) * (p ** alpha) * F.logsigmoid(-x)
    loss = torch.where(pos, pos_loss, neg_loss)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    return loss.sum() / pos.sum().clamp(min=1)


def giou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
              reduction: str = "mean", eps: float = 1e-7) -> torch.Tensor:
    """``1 - GIoU`` of aligned boxes (..., 4), in [0, 2]. With ``weight`` and ``"mean"``: the
    weighted mean ``sum(w * l) / sum(w)``."""
    loss = 1.0 - generalized_box_iou(pred.float(), target.float(), eps=eps)
    if reduction == "none":
        return loss
    if weight is not None:
        w = weight.float()
        if reduction == "sum":
            return (loss * w).sum()
        return (loss * w).sum() / w.sum().clamp(min=eps)
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    return loss.mean() if loss.numel() else loss.sum()


def ttf_targets(boxes: torch.Tensor, labels: torch.Tensor, num_classes: int, out_h: int, out_w: int, stride: int,
                *, alpha: float = 0.54, beta: float = 0.54) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets for one image: ``heatmap (C, H, W)``, ``box (H, W, 4)`` (the target box of every
    regression cell, input-pixel coordinates) and ``weight (H, W)`` (0 where nothing is regressed).

    Cell ``(i, j)`` sits at input point ``((j + 0.5) * stride, (i + 0.5) * stride)``. Boxes are
    painted largest first, so where they overlap the smaller box owns the regression cells.
    """
    dev = boxes.device
    heat = torch.zeros(num_classes, out_h, out_w, device=dev)
    box_t = torch.zeros(out_h, out_w, 4, device=dev)
    weight = torch.zeros(out_h, out_w, device=dev)
    if boxes.numel() == 0:
        return heat, box_t, weight
    b = boxes.float()
    wh = (b[:, 2:] - b[:, :2]).clamp(min=1e-3)
    area = wh[:, 0] * wh[:, 1]
    order = torch.argsort(area, descending=True, stable=True)
    ys = torch.arange(out_h, device=dev, dtype=torch.float32)[:, None]
    xs = torch.arange(out_w, device=dev, dtype=torch.float32)[None, :]
    for k in order.tolist():
        x0, y0, x1, y1 = b[k].tolist()
        w, h = float(wh[k, 0]), float(wh[k, 1])
        cx = min(max(int(math.floor((x0 + x1) / 2 / stride)), 0), out_w - 1)
        cy = min(max(int(math.floor((y0 + y1) / 2 / stride)), 0), out_h - 1)
        # heatmap Gaussian (map units), floored so that tiny boxes still get a peak of width ~1 cell
        sx = max(alpha * w / 6.0 / stride, 0.35)
        sy = max(alpha * h / 6.0 / stride, 0.35)
        g = torch.exp(-((xs - cx) ** 2) / (2 * sx * sx) - ((ys - cy) ** 2) / (2 * sy * sy))
        c = int(labels[k])
        heat[c] = torch.maximum(heat[c], g)
        heat[c, cy, cx] = 1.0
        # regression region: cells within beta * half-size of the centre and inside the box
        bx = max(beta * w / 6.0 / stride, 0.35)
        by = max(beta * h / 6.0 / stride, 0.35)
        gb = torch.exp(-((xs - cx) ** 2) / (2 * bx * bx) - ((ys - cy) ** 2) / (2 * by * by))
        px = (xs + 0.5) * stride
        py = (ys + 0.5) * stride
        region = ((xs - cx).abs() <= beta * w / 2.0 / stride) & ((ys - cy).abs() <= beta * h / 2.0 / stride)
        region &= (px > x0) & (px < x1) & (py > y0) & (py < y1)
        region[cy, cx] = True
        gb = gb * region
        wk = gb / gb.sum() * math.log(max(w * h, 2.0))
        box_t[region] = b[k]
        weight = torch.where(region, wk, weight)
    return heat, box_t, weight
