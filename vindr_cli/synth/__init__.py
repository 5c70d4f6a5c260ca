"""Deterministic synthetic raw hospital DICOM export with planted PHI.

Used to build the committed `sample_dicoms/` fixture and benchmark inputs:

* :func:`vindr_cli.synth.export.build_export` - the whole sample export tree.
* :func:`vindr_cli.synth.export.write_radiograph` - one large radiograph file.
"""
from vindr_cli.synth.export import DEFAULT_SEED, build_export, write_radiograph

__all__ = ["DEFAULT_SEED", "build_export", "write_radiograph"]
