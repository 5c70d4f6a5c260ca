"""Curating a release from a de-identified tree: recipes, pixel QC, near-duplicates, sampling."""
