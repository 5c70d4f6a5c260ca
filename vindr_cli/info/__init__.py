"""``vindr info``: a PHI-free summary of a DICOM export (headers only)."""
from vindr_cli.info.report import render, to_json
from vindr_cli.info.scan import scan_export

__all__ = ["render", "scan_export", "to_json"]
