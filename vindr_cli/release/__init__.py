"""Release stage: annotation tables, patient-grouped stratified split, split report."""
from vindr_cli.release.annotations import (BadRow, BadRows, BadRowsError, check_against_meta, detect_format,
                                           read_annotations, read_meta)
from vindr_cli.release.measures import (example_distribution, label_distribution,
                                        label_pair_distribution)
from vindr_cli.release.split import (PRESETS, SplitResult, group_images, make_split, parse_test_size,
                                     split_dataset, stratify_groups)
from vindr_cli.release.split_report import render_split_report

__all__ = [
    "BadRow", "BadRows", "BadRowsError", "PRESETS", "SplitResult", "check_against_meta", "detect_format",
    "example_distribution", "group_images", "label_distribution", "label_pair_distribution", "make_split",
    "parse_test_size", "read_annotations", "read_meta", "render_split_report", "split_dataset",
    "stratify_groups",
]
