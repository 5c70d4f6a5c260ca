"""Release stage: patient-grouped stratified split, split report, release build and validate.
Annotations are read through :mod:`vindr_cli.annotations`; metrics come from
:mod:`vindr_cli.evaluate` (never from ``baseline``)."""
from vindr_cli.release.measures import (example_distribution, label_distribution,
                                        label_pair_distribution)
from vindr_cli.release.split import (PRESETS, SplitError, SplitResult, group_images, make_split, parse_test_size,
                                     split_dataset, stratify_groups)
from vindr_cli.release.split_report import render_split_report

__all__ = [
    "PRESETS", "SplitError", "SplitResult", "example_distribution", "group_images", "label_distribution",
    "label_pair_distribution", "make_split", "parse_test_size", "render_split_report", "split_dataset",
    "stratify_groups",
]
