"""Curation of a de-identified tree into a release: select (recipes, criteria, sampling), pixel QC, near-duplicates, push (DICOMweb)."""
