"""One annotations model: every annotation and prediction form read and validated into one
canonical table (see :mod:`vindr_cli.annotations.read`), label vocabularies as data
(:mod:`vindr_cli.annotations.labels`), bad rows by line (:mod:`.badrows`), one CSV reader
(:mod:`.csvfile`), and the published layouts written back (:mod:`.write`)."""
from vindr_cli.annotations.badrows import AnnotationInputError, BadRow, BadRows, BadRowsError
from vindr_cli.annotations.labels import (BUILTIN, NO_FINDING, LabelSet, LabelSetError, builtin, default_for,
                                          load_labels, read_labels_json, write_labels_json)
from vindr_cli.annotations.predictions import NO_FINDING_BOX, read_predictions
from vindr_cli.annotations.read import (BOX, COLUMNS, FORMATS, SPINE_BOX, check_against_meta, detect_format,
                                        read_annotations, read_meta)
from vindr_cli.annotations.write import to_published

__all__ = [
    "AnnotationInputError", "BadRow", "BadRows", "BadRowsError", "BUILTIN", "NO_FINDING", "NO_FINDING_BOX",
    "LabelSet", "LabelSetError", "builtin", "default_for", "load_labels", "read_labels_json", "write_labels_json",
    "read_predictions", "BOX", "COLUMNS", "FORMATS", "SPINE_BOX", "check_against_meta", "detect_format",
    "read_annotations", "read_meta", "to_published",
]
