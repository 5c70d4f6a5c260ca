"""Curation of a de-identified tree: select recipes, pixel QC, near-duplicates, sampling, push (DICOMweb)."""
