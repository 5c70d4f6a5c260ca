"""Evaluation, shared by ``vindr evaluate``, ``vindr release`` (reader fusion), ``vindr
validate`` and ``vindr baseline``: :mod:`.metrics` (PASCAL VOC and COCO AP, weighted boxes
fusion, AUROC, bootstrap CIs) and :mod:`.score` (the ``vindr evaluate`` library call:
ground truth and predictions read through :mod:`vindr_cli.annotations`). Imports nothing
from ``release`` or ``baseline``."""
from vindr_cli.evaluate.metrics import (auroc, average_precision_per_class, bootstrap_ci, coco_average_precision,
                                        voc_ap, weighted_boxes_fusion)
from vindr_cli.evaluate.score import (BadRowsError, EvalInputError, EvalResult, GroundTruth, evaluate,
                                      read_ground_truth, render, to_json)

__all__ = ["BadRowsError", "EvalInputError", "EvalResult", "GroundTruth", "auroc", "average_precision_per_class",
           "bootstrap_ci", "coco_average_precision", "evaluate", "read_ground_truth", "render", "to_json", "voc_ap",
           "weighted_boxes_fusion"]
