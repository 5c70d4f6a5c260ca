"""Box geometry for the baseline detector, in plain torch.

Boxes are ``x_min, y_min, x_max, y_max`` in continuous pixel-edge coordinates (area is
``(x_max - x_min) * (y_max - y_min)``, no VOC ``+1``), the convention of the VinDr CSVs and of
:mod:`vindr_cli.evaluate.metrics`.

* :func:`encode_ltrb` / :func:`decode_ltrb`: a box as its distances (left, top, right, bottom)
  from a feature-map location, divided by a normaliser (the detector's regression unit).
* :func:`nms` / :func:`batched_nms`: greedy non-maximum suppression; a box is suppressed by a
  better-scored kept box when their IoU is ``> iou_thr`` (torchvision's rule). The class-aware
  version shifts every class's boxes to a disjoint region (the coordinate offset trick), so
  one plain NMS never lets boxes of different classes suppress each other.
* :class:`BoxTransform`: the per-axis scale + offset (+ optional horizontal flip) that the
  letterbox / augmentation applies to an image; boxes follow it and :meth:`BoxTransform.inverse`
  maps predictions back to the original image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["BoxTransform", "batched_nms", "box_area", "box_iou", "clip_boxes", "decode_ltrb", "encode_ltrb",
           "generalized_box_iou", "nms"]


def box_area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU, (N, 4) x (M, 4) -> (N, M); a zero-area union gives 0."""
    area_a, area_b = box_area(a), box_area(b)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Element-wise GIoU of aligned boxes (..., 4) and (..., 4): IoU - (C - U) / C, C the area of
    the smallest enclosing box and U the union (Rezatofighi et al. 2019)."""
    area_a, area_b = box_area(a), box_area(b)
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a + area_b - inter
    iou = inter / (union + eps)
    lt_c = torch.minimum(a[..., :2], b[..., :2])
    rb_c = torch.maximum(a[..., 2:], b[..., 2:])
    wh_c = (rb_c - lt_c).clamp(min=0)
    enclose = wh_c[..., 0] * wh_c[..., 1]
    return iou - (enclose - union) / (enclose + eps)


def encode_ltrb(points: torch.Tensor, boxes: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """Distances (left, top, right, bottom) from ``points`` (..., 2: x, y) to the edges of
    ``boxes`` (..., 4), divided by ``norm``."""
    x, y = points[..., 0], points[..., 1]
    return torch.stack([x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y], dim=-1) / norm


def decode_ltrb(points: torch.Tensor, ltrb: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """Inverse of :func:`encode_ltrb`."""
    d = ltrb * norm
    x, y = points[..., 0], points[..., 1]
    return torch.stack([x - d[..., 0], y - d[..., 1], x + d[..., 2], y + d[..., 3]], dim=-1)


def clip_boxes(boxes: torch.Tensor, width: float, height: float) -> torch.Tensor:
    out = boxes.clone()
    out[..., 0::2] = out[..., 0::2].clamp(0, width)
    out[..., 1::2] = out[..., 1::2].clamp(0, height)
    return out


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thr: float) -> torch.Tensor:
    """Greedy NMS: indices of the kept boxes, best score first (ties: input order).

    The pairwise IoU matrix is computed once in torch (on the boxes' device); the greedy pass
    runs over a boolean matrix on the CPU. Meant for the few hundred candidates per image that
    the detector's top-k leaves, not for tens of thousands of boxes.
    """
    n = int(boxes.shape[0])
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores.float(), descending=True, stable=True).indices
    b = boxes[order].float()
    over = (box_iou(b, b) > iou_thr).cpu().numpy()
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_thr: float) -> torch.Tensor:
    """Class-aware NMS by the coordinate offset trick: each class's boxes are moved by
    ``class * span`` (span larger than the whole coordinate range) so boxes of different classes
    never overlap, then one :func:`nms` runs. Returns kept indices, best score first."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    b = boxes.float()
    lo = b.min()
    span = b.max() - lo + 1
    shifted = b - lo + (classes.to(b.dtype) * span)[:, None]
    return nms(shifted, scores, iou_thr)


@dataclass(frozen=True)
class BoxTransform:
    """``x' = x * sx + ox``, ``y' = y * sy + oy``, then, if ``flip``, ``x'' = out_w - x'``.

    ``out_w`` / ``out_h`` is the canvas size (the letterboxed input)."""
    sx: float
    sy: float
    ox: float
    oy: float
    out_w: int
    out_h: int
    flip: bool = False

    def apply(self, boxes):
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.empty_like(b)
        out[:, 0] = b[:, 0] * self.sx + self.ox
        out[:, 2] = b[:, 2] * self.sx + self.ox
        out[:, 1] = b[:, 1] * self.sy + self.oy
        out[:, 3] = b[:, 3] * self.sy + self.oy
        if self.flip:
            out[:, [0, 2]] = self.out_w - out[:, [2, 0]]
        return out

    def inverse(self, boxes):
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        if self.flip:
            b[:, [0, 2]] = self.out_w - b[:, [2, 0]]
        out = np.empty_like(b)
        out[:, 0] = (b[:, 0] - self.ox) / self.sx
        out[:, 2] = (b[:, 2] - self.ox) / self.sx
        out[:, 1] = (b[:, 1] - self.oy) / self.sy
        out[:, 3] = (b[:, 3] - self.oy) / self.sy
        return out
