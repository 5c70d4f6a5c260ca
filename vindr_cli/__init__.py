"""vindr: turn raw hospital DICOM exports into a de-identified research dataset."""

__version__ = "0.1.0"
