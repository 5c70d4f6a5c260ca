"""Pixel stages: decoding compressed pixel data (decode.py, backends.py, optional gpu.py)."""
