"""Test helpers: run the CLI, hash trees, read outputs' header bytes and pixel values."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from vindr_cli.dicomio.header import read_header
from vindr_cli.dicomio.pixelstream import copy_pixel_element

VINDR = [sys.executable, "-m", "vindr_cli"]


def run_cli(*args, env=None, check=True, **kw) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    e.setdefault("COLUMNS", "200")
    p = subprocess.run([*VINDR, *map(str, args)], capture_output=True, text=True, env=e, **kw)
    if check and p.returncode not in (0,):
        raise AssertionError(f"exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def tree_hashes(root: Path, skip=()) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(rel.startswith(s) for s in skip):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def split_file(path: Path) -> tuple[bytes, str | None]:
    """(every byte of the file except the pixel data value, sha256 of the pixel data value)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        h = read_header(f, size)
        if h.pixel_offset is None:
            return path.read_bytes(), None
        ts = h.ds.file_meta.TransferSyntaxUID
        f.seek(h.pixel_offset)
        digest, n = copy_pixel_element(f, None, implicit=ts.is_implicit_VR, little=ts.is_little_endian)
    data = path.read_bytes()
    # keep the element header bytes (tag/VR/length), which are not pixel values
    return data[: h.pixel_offset + 12] + data[h.pixel_offset + n:], digest


def marked_parts(src) -> tuple[bytes, bytes]:
    """A DICOM file split for rewriting as de-identified (decode refuses identified input):
    its header as pydicom writes it with PatientIdentityRemoved YES, and its Pixel Data
    element (and what follows) exactly as stored, so a cut or damaged file stays so."""
    import io
    import warnings

    import pydicom

    from vindr_cli.dicomio.header import read_header

    raw = Path(src).read_bytes()
    with open(src, "rb") as f:
        offset = read_header(f, len(raw)).pixel_offset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(src, stop_before_pixels=True)
    ds.PatientIdentityRemoved = "YES"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), raw[offset:]


def renumber(ds, root: str):
    """New instance identity under ``root``: study ``root``, series ``root.1``, instance
    ``root.1.1`` (the file meta's SOP Instance UID with it). Returns ``ds``."""
    ds.StudyInstanceUID = root
    ds.SeriesInstanceUID = f"{root}.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{root}.1.1"
    return ds


def save(ds, path: Path) -> Path:
    """Write a data set as a Part 10 file (its folders made; pydicom's value warnings hushed:
    tests plant values no valid element has)."""
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    return path


def stopped(proc, timeout: float = 90) -> int:
    """Exit status of a process sent SIGINT; if it does not stop in ``timeout`` s (a busy
    machine), it is killed and the test fails with the end of its stderr, to say why.
    Its stdout and stderr pipes are read while it stops (a child blocked writing to a full pipe
    that nobody reads never exits: CI, baseline's 500 epoch lines) and put back on ``proc`` as
    in-memory files holding what was left to read, so callers read them as before."""
    import io
    import subprocess
    import threading

    got: dict[str, object] = {}

    def drain(name: str) -> None:
        f = getattr(proc, name)
        try:
            got[name] = f.read()
        except (OSError, ValueError):
            pass

    names = [n for n in ("stdout", "stderr") if getattr(proc, n) is not None and not getattr(proc, n).closed]
    threads = [threading.Thread(target=drain, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()

    def put_back() -> None:
        for t in threads:
            t.join(30)
        for n in names:
            text = got.get(n, "")
            setattr(proc, n, io.BytesIO(text) if isinstance(text, bytes) else io.StringIO(text))

    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        put_back()
        err = proc.stderr.read() if proc.stderr is not None else ""
        import pytest
        pytest.fail(f"the process did not stop within {timeout} s of SIGINT; stderr ends: {(err or '')[-1500:]}")
    put_back()
    return code


def key_hex(seed: str = "ab") -> str:
    """A fixed test key as 64 hex digits, made from ``seed`` (SHA-256): as random-looking as a
    real key, which vindr demands (a key of few different bytes is refused)."""
    return hashlib.sha256(f"vindr test key {seed}".encode()).hexdigest()


def read_quietly(path):
    """``pydicom.dcmread(path)`` with pydicom's warnings silenced (the damaged and hostile
    files of the red team and review tests warn by design)."""
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def key_file_in(base: Path, byte: str = "ab") -> Path:
    """A vindr key file (32 bytes as hex, ``key_hex(byte)``) at BASE/keys/vindr.key, folder
    0700 and file 0600 as vindr demands."""
    keys = base / "keys"
    keys.mkdir(mode=0o700)
    key = keys / "vindr.key"
    key.write_text(key_hex(byte) + "\n")
    key.chmod(0o600)
    return key


def draw_text(img, text: str, xy, size: int, font: str, fg: int = 255):
    """``img`` (a uint8 array) with ``text`` drawn at ``xy`` in the TrueType ``font`` of
    ``size`` px, and the text's bounding box (Pillow's textbbox). For the burned-in text tests."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    f = ImageFont.truetype(font, size)
    bb = d.textbbox(xy, text, font=f)
    d.text(xy, text, font=f, fill=fg)
    return np.asarray(im), bb


def decoded_rows(out: Path, inp: Path) -> list[dict]:
    """images.parquet of `vindr decode` OUT, made from an INPUT that is not a vindr anonymize
    OUTPUT (every input named by a keyed hash of its path, red team 6), with ``input`` and
    ``input_key`` mapped back to the input paths through OUT's salt, and ``named``: the output
    name the input's path gives (``a/b.dcm`` frame 1 -> ``a/b_f0001.png``); ``output`` stays
    the real file. For tests that check which input gave which row."""
    from vindr_cli.pixels.output import SALT_FILE, base_name, keyed_name, read_salt
    from vindr_cli.runner.discover import discover
    from vindr_cli.tables import read_rows

    salt = read_salt(Path(out) / ".vindr" / SALT_FILE)
    names = {keyed_name(salt, s.rel): s.rel for s in discover(Path(inp))}
    rows = []
    for r in read_rows(Path(out) / "images.parquet"):
        rel = names[r["input_key"]]
        r = {**r, "input": rel, "input_key": rel}
        if r["output"]:
            r["named"] = base_name(rel) + r["output"][32:]
        rows.append(r)
    return rows


def shipped_frames(syntaxes, limit: int | None = None):
    """(file name, data set, frames) of every pydicom shipped test file (never a download)
    whose transfer syntax is in ``syntaxes`` and that has Pixel Data; ``limit``: the first
    frames only. Files pydicom cannot read or split are skipped."""
    import glob
    import warnings

    import pydicom
    from pydicom.encaps import generate_frames

    folder = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")
    for path in sorted(glob.glob(os.path.join(folder, "*.dcm"))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
                if str(ds.file_meta.TransferSyntaxUID) not in syntaxes or "PixelData" not in ds:
                    continue
                frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
            except Exception:
                continue
        yield os.path.basename(path), ds, frames[:limit] if limit else frames


def audit_after_planting(world_out: Path, links: dict, name: str, plant, tmp_path: Path, *,
                         linkage: Path | None = None, kind: str = "phi"):
    """`vindr audit` of a copy of an anonymized OUTPUT (``world_out``) after ``plant(ds)`` changed
    the output of input ``name`` (``links``: input name -> its linkage row); the copy is first
    checked to have no ``kind`` finding. Returns the second audit's report."""
    import shutil
    import warnings

    import pydicom

    from vindr_cli.deid.audit import audit

    out = tmp_path / "anon"
    shutil.copytree(world_out, out)
    assert audit(out, linkage).counts().get(kind, 0) == 0
    target = out / links[name]["output"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(target)
    plant(ds)
    ds.save_as(target)
    return audit(out, linkage)


def leaks(root, forms, text: str = "") -> list[str]:
    """Where any of ``forms`` (lower-case bytes) appears, ASCII case ignored: in a file's bytes or
    a path under ``root``, or in ``text`` (what was printed); empty when nothing leaked."""
    hits = []
    for p in sorted(root.rglob("*")):
        data = p.read_bytes().lower() if p.is_file() and not p.is_symlink() else b""
        name = str(p.relative_to(root)).lower().encode()
        hits += [f"{p.relative_to(root)}: {f!r}" for f in forms if f in data or f in name]
    hits += [f"printed: {f!r}" for f in forms if f in text.lower().encode()]
    return hits


def finder_scan(ds):
    """``deid.redact.scan`` of ``ds`` with the real text finder, the header's own names and IDs
    as hints and the coarse view, pydicom's warnings silenced (as a --burned-in redact run scans)."""
    import warnings

    from vindr_cli.deid import pixeltext, redact

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return redact.scan(ds, pixeltext.find_text, pixeltext.hints_from(ds), large=True)


def box_mask(boxes, shape):
    """The pixels of ``shape`` (rows, columns) that ``boxes`` (frame, x0, y0, x1, y1) cover."""
    import numpy as np

    m = np.zeros(shape, bool)
    for _, x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def anonymize_rows(tmp_path, out, burned_in: str) -> list[dict]:
    """``deid.batch.anonymize`` of ``tmp_path/export`` into ``out`` in this process (one worker,
    the basic profile, a new key and linkage table under ``tmp_path``, so a test can patch the
    per-file path), and the manifest rows it wrote."""
    import pyarrow.parquet as pq

    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    anonymize(tmp_path / "export", out, key_path=key_file_in(tmp_path), profile=load_profile("basic"), workers=1,
              burned_in=burned_in, linkage=tmp_path / "link.parquet")
    return pq.read_table(out / "manifest.parquet").to_pylist()


def anonymize_export(base, options=frozenset()):
    """``deid.batch.anonymize`` of ``base/export`` into ``base/anon`` in this process (one
    worker, the basic profile with Annex E ``options``, a new key and ``base/anon.linkage.parquet``,
    pydicom's warnings silenced), every input asserted ``ok``: ``(base, out, linkage, links)``,
    ``links`` the linkage rows by input file name."""
    import warnings

    import pyarrow.parquet as pq

    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    out, linkage = base / "anon", base / "anon.linkage.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anonymize(base / "export", out, key_path=key_file_in(base), profile=load_profile(options=set(options)),
                  workers=1, linkage=linkage)
    links = {Path(r["input_path"]).name: r for r in pq.read_table(linkage).to_pylist()}
    assert all(r["status"] == "ok" for r in links.values()), [(k, r["status"]) for k, r in links.items()]
    return base, out, linkage, links
