#!/usr/bin/env python3
"""The floor of `vindr anonymize`: the least work any tool with vindr's contract must do.

vindr's manifest records the SHA-256 of every pixel byte it writes (``pixel_sha256``: the
manifest schema, the release images table and the provenance chain depend on it), so a tool
that honours the same contract must at least read every input byte into memory, hash the
pixel bytes and write the copy. This script does exactly that and nothing else: N worker
processes (forked), each file read through one reused 4 MiB buffer, SHA-256 of every byte
read, the same buffer written to OUTPUT/<same relative path>. No DICOM parsing, no header
work, no table: it hashes the whole file (the header is ~0.1 % of a 5.5 MB radiograph), so
it slightly over-counts the hash and under-counts nothing else. ``--no-write``: read and
hash only (the hashing floor alone, like ``sha256sum``). ``--kernel-copy``: read and hash
through the buffer, then write the copy with ``os.copy_file_range`` from the input (the
kernel copies page cache to page cache, as ``cp`` 9 does; no user-space write), which on this
machine costs less CPU than writing 1 GB of new files from user space.

Usage: python bench/anonymize_floor.py INPUT OUTPUT [-j 2] [--no-write | --kernel-copy]
Prints nothing (the bench times it); exit 0.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from multiprocessing import get_context
from pathlib import Path

CHUNK = 4 << 20
_BUF = None


KERNEL_COPY = False


def _one(job: tuple[str, str | None]) -> str:
    global _BUF
    src, dst = job
    if _BUF is None:
        _BUF = memoryview(bytearray(CHUNK))
    h = hashlib.sha256()
    with open(src, "rb", buffering=0) as f:
        out = open(dst, "wb", buffering=0) if dst else None
        try:
            while n := f.readinto(_BUF):
                chunk = _BUF[:n]
                h.update(chunk)
                if out is not None and not KERNEL_COPY:
                    out.write(chunk)
            if out is not None and KERNEL_COPY:
                size, off = os.fstat(f.fileno()).st_size, 0
                while off < size:
                    off += os.copy_file_range(f.fileno(), out.fileno(), size - off, off, off) or size
        finally:
            if out is not None:
                out.close()
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--kernel-copy", action="store_true")
    args = ap.parse_args()
    global KERNEL_COPY
    KERNEL_COPY = args.kernel_copy
    jobs = []
    for root, _dirs, names in os.walk(args.input):
        rel = Path(root).relative_to(args.input)
        if not args.no_write:
            (args.output / rel).mkdir(parents=True, exist_ok=True)
        for name in names:
            if not name.startswith("."):
                jobs.append((str(Path(root) / name), None if args.no_write else str(args.output / rel / name)))
    with get_context("fork").Pool(args.j) as pool:
        digests = pool.map(_one, jobs, chunksize=max(1, len(jobs) // (8 * args.j)))
    if len(digests) != len(jobs):
        sys.exit(1)


if __name__ == "__main__":
    main()
