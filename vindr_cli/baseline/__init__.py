"""Baseline stage: evaluation metrics (VOC/COCO detection AP, AUROC) and, later, the reference models."""
