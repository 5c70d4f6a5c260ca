"""Assemble full CR / DX / Secondary Capture datasets from the modules."""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from vindr_cli.synth import modules as m
from vindr_cli.synth import planted
from vindr_cli.synth.font import stamp
from vindr_cli.synth.modules import ImageContext
from vindr_cli.synth.phi import PhiRegistry

RESCALE = (0.5, 100.0)  # slope, intercept of the one image with a modality LUT
PADDING_VALUE = 0


def study_description(ctx: ImageContext, registry: PhiRegistry) -> str:
    title = m.study_title(ctx.study)
    if "name_in_description" not in ctx.study.extras:
        return title
    text = f"{title} - BN {ctx.patient.person.display}"
    registry.add(text)
    return text


def base_dataset(ctx: ImageContext, registry: PhiRegistry) -> Dataset:
    """Modules common to every image, plus the planted nested/private PHI."""
    ds = Dataset()
    ds.file_meta = planted.file_meta(ctx.sop_class, ctx.sop_uid, ctx.patient)
    m.sop_common(ds, ctx)
    m.patient_module(ds, ctx.patient, ctx.study.date)
    planted.other_patient_ids(ds, ctx.patient)
    m.study_module(ds, ctx, study_description(ctx, registry))
    m.series_module(ds, ctx)
    m.equipment_module(ds, ctx, ctx.modality)
    m.general_image_module(ds, ctx)
    m.image_pixel_module(ds, ctx.image)
    planted.references(ds, ctx)
    planted.request_attributes(ds, ctx)
    registry.add(*planted.private_block(ds, ctx.patient, ctx.accession))
    planted.free_text(ds, ctx, registry)
    return ds


def radiograph_dataset(ctx: ImageContext, pixels: np.ndarray, registry: PhiRegistry) -> Dataset:
    """A CR or DX image header (pixels are attached later by encode)."""
    ds = base_dataset(ctx, registry)
    extras = ctx.image.extras
    if ctx.modality in ("CR", "DX"):  # RF: tomo.rf_modules, once the frames exist
        (m.cr_modules if ctx.modality == "CR" else m.dx_modules)(ds, ctx)
    slope, intercept = RESCALE if "rescale" in extras else (1.0, 0.0)
    if "rescale" in extras:
        m.modality_lut(ds, slope, intercept)
    if "padding" in extras:
        ds.add_new(0x00280120, "US", PADDING_VALUE)  # PixelPaddingValue
    if "blank" in extras:  # a constant image has no range to window: the device's default window
        bits = ctx.image.bits_stored
        ds.WindowCenter, ds.WindowWidth = str(1 << (bits - 1)), str(1 << bits)
        ds.WindowCenterWidthExplanation = "DEFAULT"
    elif "voi_lut" in extras:
        m.voi_lut_sequence(ds, pixels, ctx.image.bits_stored)
    else:
        ignore = PADDING_VALUE if "padding" in extras else None
        m.voi_window(ds, pixels, "two_windows" in extras, slope, intercept, ignore)
    if "overlay" in extras:
        planted.overlay(ds, ctx.patient, *ctx.image.shape)
        registry.add(ds[0x60000022].value, ds[0x60001500].value)
    if "curve" in extras:
        registry.add(planted.curve(ds, ctx.patient))
    return ds


def screenshot_pixels(source: np.ndarray, photometric: str, ctx: ImageContext) -> np.ndarray:
    """8-bit display rendering of `source` with name/ID/DOB burned into a banner."""
    ordered = np.sort(source, axis=None)
    last = len(ordered) - 1
    lo, hi = int(ordered[last // 100]), int(ordered[last * 99 // 100])
    view = np.clip((source.astype(np.int64) - lo) * 255 // max(hi - lo, 1), 0, 255)
    if photometric == "MONOCHROME1":
        view = 255 - view
    out = view.astype(np.uint8)
    p = ctx.patient
    text = np.zeros(out.shape, dtype=bool)
    stamp(text, p.person.ascii_upper, 6, 6, scale=2)
    stamp(text, f"PID {p.patient_id} DOB {p.birth_date:%Y%m%d} {p.sex}", 24, 6)
    stamp(text, f"{p.institution.code} {ctx.study.date} ACC {ctx.accession}", 34, 6)
    out[:44, :] //= 4
    out[text] = 255
    return out


def secondary_capture_dataset(ctx: ImageContext, source_uid: str, source_class: str, registry: PhiRegistry) -> Dataset:
    """SC Image Storage with BurnedInAnnotation YES (pixels carry the name)."""
    ds = base_dataset(ctx, registry)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = "Fakevendor Medical Systems"
    ds.SecondaryCaptureDeviceManufacturerModelName = "FV-Workstation"
    ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = m.shifted(ctx.study.date, ctx.study.time, 25)
    ds.BurnedInAnnotation = "YES"
    ds.DerivationDescription = "Screen capture from reading workstation"
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = source_class, source_uid
    ds.SourceImageSequence = [item]
    return ds
