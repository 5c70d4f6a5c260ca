"""What tree an audit report is of: a fingerprint of an anonymized OUTPUT.

``vindr audit`` records it in its report (``"audited"``) and ``vindr release`` recomputes it
on ANON_DIR and refuses a report whose fingerprint differs (release/build.py). It is:

- ``manifest_sha256``: the SHA-256 of ``OUTPUT/manifest.parquet``'s bytes (one row per input
  with each output's pixel hash: another anonymize run, or a resumed one, changes it);
- ``files`` and ``listing_sha256``: how many entries there are under OUTPUT outside
  ``manifest.parquet`` and the state folder ``.vindr/`` (the images, and any stray file), and
  the SHA-256 of their sorted lines ``path NUL size NUL mtime_ns`` (lstat: a link is listed as
  itself). A file added, removed, renamed, rewritten or copied without its times after the
  audit changes it. ``.vindr/`` is left out: vindr review writes its decisions there after
  the audit.

No file's content is read except the manifest's (a release of 100,000 images is checked with
one stat per file); no value of any file is part of the fingerprint (paths are vindr's own
keyed names, and the fingerprint holds only digests and counts).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

from vindr_cli.dicomio.pixelstream import file_sha256

VERSION = 1
STATE_DIR = ".vindr"
MANIFEST = "manifest.parquet"


def tree_fingerprint(output: Path, paths: Iterable[Path] | None = None) -> dict:
    """The fingerprint of ``output`` (module doc). ``paths``: the entries already listed
    (``sorted(output.rglob("*"))``), so an audit fingerprints exactly what it walked."""
    output = Path(output)
    if paths is None:
        paths = sorted(output.rglob("*"))
    h = hashlib.sha256()
    n = 0
    for p in paths:
        rel = p.relative_to(output).as_posix()
        if rel == MANIFEST or rel == STATE_DIR or rel.startswith(STATE_DIR + "/"):
            continue
        st = p.lstat()
        if p.is_dir() and not p.is_symlink():
            continue
        n += 1
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + str(st.st_size).encode() + b"\0"
                 + str(st.st_mtime_ns).encode() + b"\n")
    manifest = output / MANIFEST
    return {"version": VERSION,
            "manifest_sha256": file_sha256(manifest) if manifest.is_file() else None,
            "files": n, "listing_sha256": h.hexdigest()}
