"""Decode one input file into display images: the function `vindr decode` maps over inputs.

decode → stored values → Modality LUT → VOI / window → MONOCHROME1 → padding → resize →
PNG / npy; colour images (RGB, YBR_*, PALETTE COLOR) → RGB (palette applied, no window) →
resize per channel → RGB PNG / (rows, cols, 3) npy. Never raises for bad input. Every
frame's image is written under a temporary name in ``OUTPUT/.vindr/tmp``; the driver
renames them into place when the result comes back (all frames of a file at once), and
journals them.

Without ``identified`` (the default), an image that is not marked PatientIdentityRemoved
YES is not decoded: the result says so and the driver stops the run. With it, the input
is named by ``output.keyed_name`` everywhere (rows, output names, temp names).
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from vindr_cli.dicomio.header import BadInput, read_header, DICOMDIR_CLASS
from vindr_cli.dicomio.provenance import matches_row
from vindr_cli.dicomio.limits import DEFAULT_MAX_INFLATE, DEFAULT_MAX_PIXELS, PIXELS_REASON, too_many_pixels
from vindr_cli.dicomio.pixelstream import check_pixel_element, native_pixel_length
from vindr_cli.pixels import output
from vindr_cli.pixels.backends import CANDIDATES, quiet_stderr
from vindr_cli.pixels.decode import PHOTOMETRIC_TERMS, DecodeError, check_grayscale, decode
from vindr_cli.pixels.resize import SizeSpec, resize, to_uint
from vindr_cli.pixels.colour import is_colour, render_colour
from vindr_cli.pixels.voi import BadRescale, DamagedLUT, display_params
from vindr_cli.pixels.window import LUT_MIN_SAMPLES, display_lut, lut_index, parse_window_mode, render
from vindr_cli.atomic import TMP_SUFFIX
from vindr_cli.runner.faults import raise_output_fault
from vindr_cli.dicomio.quiet import quiet_pydicom
from vindr_cli.runner.discover import STATE_DIR, os_reason
from vindr_cli.runner.sources import Source


@dataclass(frozen=True)
class DecodeConfig:
    output: str
    size: SizeSpec
    window: str = "header"
    window_index: int = 0
    bits: int = 8
    fmt: str = "png"
    resample: str = "area"
    device: str = "cpu"
    threads: int = 1
    identified: bool = False        # INPUT is not de-identified: name inputs by keyed hashes
    salt_path: str | None = None    # where the salt of those names is (read by setup, never sent)
    max_pixels: int = DEFAULT_MAX_PIXELS     # dicomio.limits: declared samples, checked before decoding
    max_inflate: int = DEFAULT_MAX_INFLATE   # dicomio.limits: deflated data sets and zip members
    manifest: str | None = None     # INPUT is a vindr anonymize OUTPUT: its manifest.parquet (read by setup)


@dataclass
class Ctx:
    cfg: DecodeConfig
    mode: object
    out: Path
    salt: bytes | None = None
    outputs: dict[str, dict] | None = None    # manifest mode: {output rel: its ok manifest row}

    def name(self, rel: str) -> str:
        """How an input is named in rows and output names (:func:`input_name`)."""
        return input_name(rel, self.salt, self.outputs)

    @property
    def tmp(self) -> Path:
        return self.out / STATE_DIR / "tmp"


def input_name(rel: str, salt: bytes | None, outputs: dict[str, dict] | None) -> str:
    """An input's name in rows, journals and output names: in manifest mode the manifest's
    own output path (keyed substitutes only, and the file is checked against its row before
    anything is named after it); any other file (a stray) and every input of an INPUT that is
    not a vindr anonymize OUTPUT (raw, even marked YES, or identified) by a keyed hash of its
    path. Without salt or manifest: the path (never in practice: the stage always gives a salt)."""
    if outputs is not None and rel in outputs:
        return rel
    return output.keyed_name(salt, rel) if salt is not None else rel


MANIFEST_COLUMNS = ("status", "output", "patient_id", "sop_uid")


def manifest_outputs(path: Path) -> dict[str, dict]:
    """{output rel: row} for the ok rows of an anonymize ``manifest.parquet``."""
    from vindr_cli.tables import iter_rows

    return {r["output"]: {"patient_id": r["patient_id"], "sop_uid": r["sop_uid"]}
            for r in iter_rows(path, MANIFEST_COLUMNS) if r["status"] == "ok" and r["output"]}


NOT_IN_MANIFEST = ("not an ok output in ANON_DIR's manifest.parquet (a file put there by hand or left over): "
                   "not decoded")
NOT_ITS_OUTPUT = ("not the de-identified file its manifest.parquet row describes (PatientIdentityRemoved is not YES, "
                  "or the patient or instance id differs): a file was replaced; not decoded")


def input_stamp(src: Source) -> str | None:
    """``size:mtime_ns`` of the input file (of the archive holding a member) as it is now:
    recorded in each row, compared on a re-run, so an input re-written since (e.g. with the
    boxes drawn in vindr review) is decoded again. A stat, not a hash: resume stays free of
    reading every input again, and every writer of vindr (anonymize included) replaces a
    file by renaming a new one into place, which always gives a new mtime."""
    try:
        st = os.stat(src.path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def setup(cfg: DecodeConfig) -> Ctx:
    quiet_pydicom()
    salt = output.read_salt(Path(cfg.salt_path)) if cfg.salt_path else None   # the stage always gives one
    if (cfg.identified or cfg.manifest is not None) and salt is None:
        raise ValueError("identified and manifest modes need the salt file")
    outputs = manifest_outputs(Path(cfg.manifest)) if cfg.manifest is not None else None
    ctx = Ctx(cfg, parse_window_mode(cfg.window), Path(cfg.output), salt, outputs)
    ctx.tmp.mkdir(parents=True, exist_ok=True)
    return ctx


IDENTIFIED = {"identified": True}     # the result for an image not marked de-identified


def is_deidentified(ds) -> bool:
    return str(ds.get("PatientIdentityRemoved", "") or "").strip().upper() == "YES"


_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def _uid(ds) -> str | None:
    """The SOP Instance UID for the table when it is a UID (digits and dots, at most 64):
    an input is only *said* to be de-identified, and any other value (a name typed there, or
    planted after the Pixel Data) is not copied on."""
    v = str(ds.get("SOPInstanceUID", "") or "").strip()
    return v if len(v) <= 64 and _UID.fullmatch(v) else None


def _num(ds, key) -> int | None:
    try:
        v = ds.get(key)
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _photometric(ds) -> str:
    """The Photometric Interpretation for the table: a defined term, never a free value."""
    term = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    return term if term in PHOTOMETRIC_TERMS else ("missing" if not term else "non-standard")


def _read_all(f):
    """The whole data set (a deflated one inflated), values never echoed."""
    f.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(f)


def _complete(f, header):
    """The header's data set completed with the elements from the Pixel Data on: read once,
    instead of parsing the whole file again. Anything unexpected falls back to
    :func:`_read_all` (the same result, and the same errors, as before)."""
    if header.pixel_offset is None:
        return _read_all(f)
    try:
        from pydicom.filereader import read_dataset

        ts = header.ds.file_meta.TransferSyntaxUID
        f.seek(header.pixel_offset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rest = read_dataset(f, ts.is_implicit_VR, ts.is_little_endian)
        if "PixelData" not in rest:
            raise ValueError("no pixel data where the header said")
    except Exception:
        return _read_all(f)
    ds = header.ds
    for tag in rest.keys():
        ds[tag] = rest.get_item(tag)        # raw elements, converted on access as dcmread's are
    return ds


def _check_whole(f, size: int, header) -> None:
    """BadInput (the fixed reasons of ``dicomio.pixelstream``) when the Pixel Data element
    runs past the end of the file, before pydicom reads a partial data set."""
    if header.pixel_offset is None:
        return
    ts = header.ds.file_meta.TransferSyntaxUID
    if ts not in CANDIDATES:       # an unsupported syntax: decode() says so
        return
    f.seek(header.pixel_offset)
    check_pixel_element(f, size, implicit=ts.is_implicit_VR, little=ts.is_little_endian,
                        expected=None if ts.is_compressed else native_pixel_length(header.ds))


def decode_one(ctx: Ctx, src: Source) -> dict:
    """``{"rows": {"images": rows}, "files": [(temp file, name asked for under OUTPUT)],
    "frames": [frame index in the name, or None]}`` (files and frames in the order of the
    ``ok`` rows), or ``IDENTIFIED``. The name asked for is :func:`output.image_name`; the
    driver may give another when two inputs ask for one name (``pixels.batch``)."""
    name = ctx.name(src.rel)
    rows = _decode(ctx, src, name, files := [])
    if rows is None:
        return IDENTIFIED
    return {"rows": {"images": rows}, "files": [(str(t), rel) for t, rel, _ in files],
            "frames": [frame for _, _, frame in files]}


def _decode(ctx: Ctx, src: Source, name: str, tmps: list[tuple[Path, str, int | None]]) -> list[dict] | None:
    base = {"input_key": name, "input": name, "status": "failed", "reason": None}
    if src.missing_reason:
        return [{**base, "reason": src.missing_reason}]
    expected = None
    if ctx.outputs is not None:
        expected = ctx.outputs.get(src.rel)
        if expected is None or src.member is not None:
            return [{**base, "reason": NOT_IN_MANIFEST}]
    base["input_stamp"] = input_stamp(src)      # before reading: a change while reading shows next time
    stem = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    try:
        with src.open() as f:
            header = read_header(f, src.size, ctx.cfg.max_inflate)
            if str(header.ds.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
                return [{**base, "status": "skipped", "reason": "DICOMDIR media directory (no image)"}]
            ds = None
            if header.deflated:                   # the header stops before the inflated pixel data
                ds = _read_all(f)
            if header.pixel_offset is None and "PixelData" not in (ds if ds is not None else header.ds):
                return [{**base, "status": "skipped", "reason": "no pixel data (not an image)"}]
            if expected is not None:
                if not matches_row(header.ds, expected):
                    return [{**base, "reason": NOT_ITS_OUTPUT}]
            elif not ctx.cfg.identified and not is_deidentified(header.ds):
                return None
            if ds is None:
                _check_whole(f, src.size, header)     # truncated: the reason anonymize gives
            if too_many_pixels(header.ds, ctx.cfg.max_pixels):    # before pydicom reads or any decoder runs
                raise DecodeError(PIXELS_REASON)
            if ds is None:
                ds = _complete(f, header)
        rows, cols = _num(ds, "Rows"), _num(ds, "Columns")
        if not rows or not cols:
            raise DecodeError("missing Rows or Columns")
        colour = is_colour(ds)
        if not colour:
            check_grayscale(ds)       # HSV, CMYK, YBR_PARTIAL_*...: a fixed reason, before decoding
        out_rows, out_cols = ctx.cfg.size.target(rows, cols)
        with quiet_stderr():     # GDCM / OpenJPEG print diagnostics (about file content) on fd 2
            dec = decode(ds, target=(out_rows, out_cols), device=ctx.cfg.device, threads=ctx.cfg.threads,
                         max_pixels=ctx.cfg.max_pixels)
        params = None if colour else display_params(ds, ctx.cfg.window_index)

        def draw(frame, bits):
            if colour:                                    # no windowing: RGB as stored / palette applied
                return render_colour(frame, ds, out_bits=bits)
            return render(frame, params, ctx.mode, out_bits=bits, ds=ds)

        results = []
        table = None       # grey, resized: the display transform to float as one table per file
        for i, frame in enumerate(dec.frames):
            if frame.shape[:2] == (out_rows, out_cols):  # no resize: render straight to the output depth
                image, used = draw(frame, ctx.cfg.bits)
            else:                                         # resize the 16-bit rendering, round once
                if table is None and not colour and frame.size >= LUT_MIN_SAMPLES:
                    table = display_lut(params, ctx.mode, frame.dtype, 16) or False
                    if table:                             # the same float32 values, made per raw word
                        table = (table[0].astype(np.float32) / 65535.0 * ((1 << ctx.cfg.bits) - 1), table[1])
                if table:
                    lut, used = table
                    scaled = resize(np.take(lut, lut_index(frame)), out_rows, out_cols, ctx.cfg.resample)
                else:
                    shown, used = draw(frame, 16)
                    scaled = resize(shown.astype(np.float32) / 65535.0 * ((1 << ctx.cfg.bits) - 1), out_rows,
                                    out_cols, ctx.cfg.resample)
                image = to_uint(scaled, ctx.cfg.bits)
            frame_tail = i if len(dec.frames) > 1 else None
            rel = output.image_name(name, frame_tail, ctx.cfg.fmt)
            tmp = ctx.tmp / f"{stem}_{i}{TMP_SUFFIX}"
            output.write_image(tmp, image, ctx.cfg.fmt)
            tmps.append((tmp, rel, frame_tail))
            results.append({
                **base, "status": "ok", "frame": i, "output": rel, "sop_uid": _uid(ds) if ctx.outputs is not None else None,
                "rows": rows, "columns": cols, "out_rows": out_rows, "out_cols": out_cols,
                "scale_x": out_cols / cols, "scale_y": out_rows / rows,
                "photometric": _photometric(ds), "channels": 3 if colour else 1,
                "bits_stored": _num(ds, "BitsStored"),
                "window_kind": used.kind, "window_center": used.center, "window_width": used.width,
                "window_function": used.function, "lut": used.lut, "backend": dec.backend, "reduce": dec.reduce,
                "bits": ctx.cfg.bits, "format": ctx.cfg.fmt,
            })
        return results
    except BadInput as exc:
        reason, status = exc.reason, exc.status
    except DecodeError as exc:
        reason, status = exc.reason, "failed"
    except OSError as exc:      # the file could not be opened or read (never its text: it holds the path)
        for tmp, _, _ in tmps:
            tmp.unlink(missing_ok=True)
        raise_output_fault(exc, ctx.out)     # a full or read-only OUTPUT: not this file's fault, stop
        reason, status = os_reason(exc), "failed"
    except (DamagedLUT, BadRescale) as exc:   # a Modality LUT / rescale that cannot be applied
        reason, status = exc.reason, "failed"
    except ValueError as exc:   # window / LUT parameters the standard does not allow
        reason, status = f"invalid display parameters ({type(exc).__name__})", "failed"
    except Exception as exc:  # never stop the batch, never echo file content
        for tmp, _, _ in tmps:
            tmp.unlink(missing_ok=True)
        raise_output_fault(exc, ctx.out)     # a full or read-only OUTPUT: not this file's fault, stop
        reason, status = f"unexpected error ({type(exc).__name__})", "failed"
    for tmp, _, _ in tmps:
        tmp.unlink(missing_ok=True)
    tmps.clear()
    return [{**base, "status": status, "reason": reason}]
