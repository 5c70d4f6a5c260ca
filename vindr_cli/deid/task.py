"""De-identify one input file: the function the batch runner maps over every input.

It never raises for bad input: every outcome is a result (status + one-line reason). It
writes its output under a temporary name; the calling process renames it into place.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pydicom
from pydicom.uid import UID

from vindr_cli.deid.burned_in import quarantine_reason
from vindr_cli.deid import pixelcodes
from vindr_cli.deid.engine import EngineError, Outcome, deidentify
from vindr_cli.deid.identity import DEFAULT_PATIENT_MATCH
from vindr_cli.deid.keyfile import KeyError_, read_key
from vindr_cli.deid.profile import Profile
from vindr_cli.deid.redact import DECODE_FAILED, FINDER_FAILED, TEXT_FOUND, PixelError, PixelOutcome
from vindr_cli.deid.redact import FRAME_SYNTAXES, add_boxes, apply as apply_pixels, scan as scan_pixels, strip_frames
from vindr_cli.deid.redact import UNCHECKED_FRAMES, compressed, frames_unchanged, high_bits_set, may_hide_bits, strip_high_bits
from vindr_cli.deid.substitutes import Substitutes
from vindr_cli.dicomio.header import DICOMDIR_CLASS, BadInput, read_header
from vindr_cli.dicomio.limits import DEFAULT_MAX_INFLATE
from vindr_cli.dicomio.quiet import quiet_pydicom
from vindr_cli.dicomio.safe import UNKNOWN_UID, coded, registry_uid, small_int
from vindr_cli.dicomio.pixelstream import (ScratchSink, copy_pixel_element, file_pixel_hash, hash_bytes_value,
                                          native_pixel_length, pixel_description_fault)
from vindr_cli.atomic import TMP_SUFFIX
from vindr_cli.runner.faults import raise_output_fault
from vindr_cli.runner.discover import NOT_REGULAR
from vindr_cli.runner.sources import NotRegularFile, Source, printable
from vindr_cli.runner.state import STATE_DIR

LAYOUTS = ("tree", "vindr")


@dataclass(frozen=True)
class AnonConfig:
    """What every worker gets (pickled): the key file's *path* and the fingerprint the key
    must have, never the key itself; ``setup`` reads the key with the driver's checks."""

    output: str
    key_path: str
    key_fingerprint: str
    profile: Profile
    uid_root: str = "2.25"
    layout: str = "tree"
    allow_burned_in: bool = False
    max_inflate: int = DEFAULT_MAX_INFLATE   # dicomio.limits: deflated data sets and zip members
    settings_fingerprint: str = ""           # recorded in every output (deid.batch.settings_fingerprint)
    patient_match: str = DEFAULT_PATIENT_MATCH   # deid.identity: normalised | strict
    burned_in: str = "redact"                 # deid.redact.MODES: redact | quarantine | off
    finder: Callable | None = None           # the text finder (None: deid.pixeltext.find_text)
    review: dict | None = None               # image_id -> boxes from vindr review (deid.reviewboxes.wanted)


@dataclass
class Ctx:
    cfg: AnonConfig
    subs: Substitutes
    tmp_dir: Path


def setup(cfg: AnonConfig) -> Ctx:
    quiet_pydicom()
    subs = Substitutes(read_key(Path(cfg.key_path)), cfg.uid_root)
    if subs.fingerprint() != cfg.key_fingerprint:
        raise KeyError_(f"key file {cfg.key_path} changed during the run (fingerprint {subs.fingerprint()}, "
                        f"expected {cfg.key_fingerprint})")
    tmp = Path(cfg.output) / STATE_DIR / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return Ctx(cfg, subs, tmp)


def input_key(subs: Substitutes, src: Source) -> str:
    return subs.hexid("input-path", src.rel, 24)


def output_rel(ids: dict[str, str], layout: str) -> str:
    if layout == "vindr":
        return f"{ids['image_id']}.dicom"
    return f"{ids['patient_dir']}/{ids['study_dir']}/{ids['series_dir']}/{ids['image_id']}.dcm"


def _describe(ds, row: dict) -> None:
    """Non-identifying facts about the image for the manifest: defined terms, registry
    UIDs and bounded numbers only (anything else is a placeholder)."""
    row.update(
        sop_class_uid=registry_uid(ds.get("SOPClassUID"))[0] or UNKNOWN_UID,
        modality=coded(ds.get("Modality"), "modality"),
        transfer_syntax=registry_uid(ds.file_meta.get("TransferSyntaxUID"))[0] or UNKNOWN_UID,
        photometric=coded(ds.get("PhotometricInterpretation"), "photometric"),
        rows=small_int(ds.get("Rows"), high=65535), columns=small_int(ds.get("Columns"), high=65535),
        bits_stored=small_int(ds.get("BitsStored"), high=64),
        frames=small_int(ds.get("NumberOfFrames"), low=1) or (1 if "Rows" in ds else None),
    )


def anonymize_one(ctx: Ctx, src: Source) -> dict:
    """Returns {'manifest': row, 'linkage': row, 'tmp': temp output path or None}."""
    key = input_key(ctx.subs, src)
    row: dict = {"input_key": key, "status": "failed", "reason": None, "output": None, "input_bytes": src.size}
    link: dict = {"input_key": key, "input_path": printable(src.rel)}
    result = {"manifest": row, "linkage": link, "tmp": None}
    if src.missing_reason:
        row["reason"] = src.missing_reason
        return _finish(result)
    tmp_path = ctx.tmp_dir / f"{key}{TMP_SUFFIX}"
    try:
        with src.open() as f:
            header = read_header(f, src.size, ctx.cfg.max_inflate)
            ds = header.ds
            if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
                row.update(status="skipped", reason="DICOMDIR media directory (not released; the files it references are processed)")
                return _finish(result)
            _describe(ds, row)
            fault = pixel_description_fault(ds, header.pixel_offset is not None or "PixelData" in ds)
            if fault:
                raise BadInput("failed", fault)
            why = quarantine_reason(ds)
            if why and not ctx.cfg.allow_burned_in:
                row.update(status="quarantined", reason=why)
                return _finish(result)
            if header.deflated:
                f.seek(0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(f)
            pixels = _scan(ctx.cfg, ds, f, header, row)      # before de-identification: the hints
            if pixels is not None and pixels.identifying and ctx.cfg.burned_in == "quarantine":
                row.update(status="quarantined", reason=TEXT_FOUND)
                return _finish(result)
            # the file's own names, IDs and dates as runs of character codes (deid.pixelcodes), from
            # the ORIGINAL header: sought in the written pixel values below (red team 10, 11)
            codes = pixelcodes.terms_of(pixelcodes.values_of(ds)) if header.pixel_offset is not None else []
            out = deidentify(ds, ctx.cfg.profile, ctx.subs, ctx.cfg.settings_fingerprint or None,
                             patient_match=ctx.cfg.patient_match, peers=src.peers,
                             peer_places=src.peer_places)
            drawn = (ctx.cfg.review or {}).get(out.ids["image_id"])
            if drawn:                                       # boxes a person drew in vindr review
                pixels = _review(ds, f, header, pixels, drawn, row, tmp_path)
            if pixels is not None and pixels.changed:
                pixel_hash = _write_modified(ds, pixels, header, tmp_path)
                row.update(transfer_syntax=registry_uid(ds.file_meta.get("TransferSyntaxUID"))[0] or UNKNOWN_UID,
                           photometric=coded(ds.get("PhotometricInterpretation"), "photometric"))   # the output's
            else:
                pixel_hash = _write(ds, f, header, tmp_path)
                scanned = row.get("input_pixel_sha256")
                if scanned is not None and not row.get("pixels_modified") and pixel_hash != scanned:
                    raise PixelError(CHANGED_SINCE_SCAN)     # what was copied is not what was scanned
            if codes and pixelcodes.in_output(tmp_path, codes):
                raise PixelError(pixelcodes.FOUND)
    except PixelError as exc:
        row.update(status="failed", reason=exc.reason)
        tmp_path.unlink(missing_ok=True)
        return _finish(result)
    except BadInput as exc:
        row.update(status=exc.status, reason=exc.reason)
        tmp_path.unlink(missing_ok=True)
        return _finish(result)
    except EngineError as exc:
        row.update(status="failed", reason=str(exc))
        tmp_path.unlink(missing_ok=True)
        return _finish(result)
    except NotRegularFile:          # a FIFO or device in the place of a file discovery saw
        row.update(status="failed", reason=NOT_REGULAR)
        return _finish(result)
    except Exception as exc:  # never let one file stop the batch, never echo its content
        tmp_path.unlink(missing_ok=True)
        raise_output_fault(exc, ctx.cfg.output)     # a full or read-only OUTPUT: not this file's fault, stop
        row.update(status="failed", reason=f"unexpected error ({type(exc).__name__})")
        return _finish(result)
    _record(out, row, link, ctx.cfg.layout)
    row.update(status="ok", pixel_sha256=pixel_hash, output_bytes=tmp_path.stat().st_size)
    if row.get("input_pixel_sha256") is None and not row.get("pixels_modified"):
        row["input_pixel_sha256"] = pixel_hash          # the byte-for-byte copy
    result["tmp"] = str(tmp_path)
    return _finish(result)


# the pixel data copied (a second read of the input) is not the pixel data scanned (the first):
# the input changed while it was read; what was scanned is not what would be released (review 8)
CHANGED_SINCE_SCAN = "pixel data changed between the burned-in scan and the copy (input modified while read)"


def _scan(cfg: AnonConfig, ds, f, header, row: dict) -> PixelOutcome | None:
    """--burned-in redact|quarantine: scan (and mask in memory) the ORIGINAL pixel data with
    hints from the ORIGINAL header; None when the file has no pixel data, or when off and its
    frames are neither JPEG / JPEG 2000 / RLE nor native with bits above Bits Stored (off: those
    are only stripped of what is not pixels, deid.redact.strip_frames / strip_high_bits; another
    compressed syntax, which vindr cannot walk, fails: UNCHECKED_FRAMES). Fills the
    manifest's pixel columns (boxes and kind counts, never text). Raises PixelError."""
    row["pixels_modified"] = False
    if ("PixelData" not in ds) if header.deflated else (header.pixel_offset is None):
        return None
    if cfg.burned_in == "off":       # not scanned; a compressed frame still loses what is not pixels
        ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
        native = not compressed(ts)
        if native and not may_hide_bits(ds):
            return None
        if not native and ts not in FRAME_SYNTAXES:     # video, JPEG XL...: not walked, not released
            raise PixelError(UNCHECKED_FRAMES)
        little = UID(ts).is_little_endian
        same = (lambda v: not high_bits_set(v, ds, little)) if native else None
        stored = None if header.deflated else _unchanged_once(ds, f, header, same)
        if stored is not None:                      # nothing to strip: found in one read
            row["input_pixel_sha256"] = stored
            outcome = PixelOutcome()
            outcome.input_ts = str(ds.file_meta.TransferSyntaxUID)
            return outcome
        full, row["input_pixel_sha256"] = _original(ds, f, header)
        outcome = strip_high_bits(full) if native else strip_frames(full)
        outcome.input_ts = str(full.file_meta.TransferSyntaxUID)
        row["pixels_modified"] = outcome.changed
        if native and outcome.overlay_pixels:       # else left null, as when the one read decided
            row["overlay_pixels_zeroed"] = outcome.overlay_pixels
        return outcome
    full, row["input_pixel_sha256"] = _original(ds, f, header)
    from vindr_cli.deid import pixeltext

    try:
        hints = pixeltext.hints_from(full)
    except Exception as exc:
        raise PixelError(FINDER_FAILED) from exc
    outcome = scan_pixels(full, cfg.finder or pixeltext.find_text, hints, large=_coarse_views(cfg.finder))
    outcome.input_ts = str(full.file_meta.TransferSyntaxUID)
    row.update(redactions=json.dumps([list(b) for b in outcome.boxes]),
               text_kinds=json.dumps(dict(sorted(outcome.kinds.items()), marker=outcome.markers)),
               overlay_pixels_zeroed=outcome.overlay_pixels, pixels_modified=outcome.changed)
    return outcome


def _unchanged_once(ds, f, header, same: Callable | None = None) -> str | None:
    """--burned-in off, the common case, in one read of the pixel data: the byte-for-byte copy's
    structure checks and hash (``_copy_pixels``, as ``_original`` runs them first, same reasons)
    with the element kept in memory (pixelstream.ScratchSink), then deid.redact.frames_unchanged
    on it (or ``same``, for native data: no bit set above Bits Stored). The SHA-256 of the Pixel Data as stored when its frames have nothing to strip (the
    file is then copied as it is, and the copy's hash compared with this one: CHANGED_SINCE_SCAN);
    None when they may have, or when the element is not Pixel Data ending the file (then
    ``_original`` and ``strip_frames`` decide, on the whole data set, as before)."""
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        size = os.fstat(f.fileno()).st_size
    except Exception:          # a zip member, a Number of Frames strip_frames would refuse: the whole path
        return None
    ts = ds.file_meta.TransferSyntaxUID
    with ScratchSink() as sink:
        stored = _copy_pixels(f, sink, header)
        tag, value = sink.element(little=ts.is_little_endian, implicit=ts.is_implicit_VR)
        if tag == 0x7FE00010 and f.tell() == size and (same(value) if same is not None else
                                                       frames_unchanged(value, str(ts), frames, ds)):
            return stored
    return None


def _original(ds, f, header):
    """(the whole data set whose pixels are scanned or masked, the SHA-256 of its Pixel Data as
    stored). A deflated file was read whole already (``ds``); otherwise the byte-for-byte copy's
    structure checks run first (a length that disagrees with the header, a missing frame: the
    same fixed reasons whether or not the pixels are scanned), then the file is read whole. The
    Extended Offset Table (Lengths) is dropped: removed from every output, and a damaged one
    would mislead the decoder. Raises PixelError."""
    if header.deflated:
        full, stored = ds, hash_bytes_value(bytes(ds.PixelData))
    else:
        stored = _copy_pixels(f, None, header)
        f.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                full = pydicom.dcmread(f)
            except Exception as exc:
                raise PixelError(DECODE_FAILED) from exc
            # a second read of the input: its pixels (what is scanned, stripped or masked) must be
            # those hashed (and later copied, anonymize_one) by the first, else the input changed
            # while it was read (review 9 H2: text-free when parsed, a name when hashed and copied)
            if _first_pixel_hash(full) != stored:
                raise PixelError(CHANGED_SINCE_SCAN)
    for tag in (0x7FE00001, 0x7FE00002):
        if tag in full:
            del full[tag]
    return full, stored


def _first_pixel_hash(full) -> str | None:
    """SHA-256 of the value of ``full``'s first pixel data element (Float, Double Float or Pixel
    Data, in file order: the element the stream copy hashes), as stored; None without one."""
    for tag in (0x7FE00008, 0x7FE00009, 0x7FE00010):
        if tag in full:
            return hash_bytes_value(full[tag].value or b"")
    return None


def _review(ds, f, header, auto: PixelOutcome | None, drawn: list[dict], row: dict, tmp_path: Path) -> PixelOutcome:
    """Mask the boxes drawn in vindr review on top of the automatic outcome (deid.redact.add_boxes)
    and record the chain: ``input_pixel_sha256`` -> ``auto_pixel_sha256`` (the Pixel Data the
    automatic redaction alone writes: the file the reviewer looked at) -> ``pixel_sha256``."""
    full, copied = _original(ds, f, header)
    if row.get("input_pixel_sha256") not in (None, copied):
        raise PixelError(CHANGED_SINCE_SCAN)        # another read than the scan's (review 9 H2)
    if auto is not None and auto.changed:
        # what the automatic redaction alone writes, encoded the same way, hashed, not kept
        auto_path = tmp_path.with_name(tmp_path.name + ".auto")
        try:
            auto_hash = _write_modified(copy.deepcopy(ds), auto, header, auto_path)
        finally:
            auto_path.unlink(missing_ok=True)
    else:
        auto_hash = copied                          # unmodified: the automatic output is the copy
    outcome = add_boxes(full, auto, [tuple(e["box"]) for e in drawn])
    row.update(input_pixel_sha256=row.get("input_pixel_sha256") or copied, auto_pixel_sha256=auto_hash,
               review_boxes=json.dumps(drawn), pixels_modified=True)
    return outcome


def _write_modified(ds, pixels: PixelOutcome, header, tmp_path: Path) -> str | None:
    """The de-identified header with the redacted (or overlay-cleared) pixel data, re-encoded
    (deid.redact.apply); the hash is of the new Pixel Data value as stored."""
    apply_pixels(ds, pixels, pixels.input_ts)
    with open(tmp_path, "wb") as out:
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
    if header.deflated:
        return hash_bytes_value(bytes(ds.PixelData))
    return file_pixel_hash(tmp_path)


def _write(ds, src_f, header, tmp_path: Path) -> str | None:
    """Header through pydicom, then the pixel data element copied byte for byte (by the kernel
    where it can, native or encapsulated: ``dicomio.pixelstream``, which reads the copy back to
    hash it, hence w+b)."""
    with open(tmp_path, "w+b") as out:
        if header.deflated:
            pydicom.dcmwrite(out, ds, enforce_file_format=True)
            value = ds.get("PixelData")
            return hash_bytes_value(value) if value is not None else None
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
        if header.pixel_offset is None:
            return None
        return _copy_pixels(src_f, out, header)


def _copy_pixels(src_f, out, header) -> str:
    """The input's Pixel Data element, as stored, copied to ``out`` (None: only hashed), with
    the checks its header allows: a native length that disagrees with the pixel description,
    encapsulated data with fewer fragments than frames. Returns the value's SHA-256."""
    ds = header.ds
    ts = ds.file_meta.TransferSyntaxUID
    src_f.seek(header.pixel_offset)
    frames = small_int(ds.get("NumberOfFrames"), low=1) or 1 if ts.is_compressed else None
    digest, _ = copy_pixel_element(src_f, out, implicit=ts.is_implicit_VR, little=ts.is_little_endian,
                                   expected=native_length(ds) if not ts.is_compressed else None, frames=frames)
    return digest


def native_length(ds) -> int | None:
    """Bytes of native pixel data the header describes (None when it cannot tell); a native
    YBR_FULL_422 pixel stores 2 samples (see ``dicomio.pixelstream.native_pixel_length``)."""
    return native_pixel_length(ds)


def _record(out: Outcome, row: dict, link: dict, layout: str) -> None:
    ids = out.ids
    row.update(
        output=output_rel(ids, layout), patient_id=ids["patient_id"], study_uid=ids["study_uid"],
        series_uid=ids["series_uid"], sop_uid=ids["sop_uid"], image_id=ids["image_id"],
        actions=json.dumps(dict(sorted(out.counts.items()))),
    )
    o = out.originals
    link.update(
        original_patient_id=o["patient_id"], original_patient_name=o["patient_name"],
        original_study_uid=o["study_uid"], original_series_uid=o["series_uid"], original_sop_uid=o["sop_uid"],
        original_accession=o["accession"], original_study_id=o["study_id"],
        patient_id=ids["patient_id"], study_uid=ids["study_uid"], series_uid=ids["series_uid"],
        sop_uid=ids["sop_uid"], image_id=ids["image_id"], phi_terms=sorted(out.terms),
    )


def _finish(result: dict) -> dict:
    result["linkage"]["status"] = result["manifest"]["status"]
    result["linkage"]["output"] = result["manifest"].get("output")
    return result


_COARSE_LAST: list = [None, False]         # the last finder asked about and its answer: one per config


def _coarse_views(finder) -> bool:
    """Whether the scan shows ``finder`` the coarse views too (text too large for the finder at
    full size: deid.redact.coarse): the real finder, and a library caller's finder that takes
    ``min_side`` as find_text does (one that does not is shown the frame's views only). The
    signature is inspected once per finder (a run has one config, so one finder), not per file."""
    if finder is None:
        return True
    last, answer = _COARSE_LAST
    if last is finder:
        return answer
    import inspect

    try:
        answer = "min_side" in inspect.signature(finder).parameters
    except (TypeError, ValueError):
        answer = False
    _COARSE_LAST[:] = [finder, answer]
    return answer
