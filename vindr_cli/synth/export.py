"""Build the synthetic raw hospital export (and single benchmark radiographs).

`build_export(out_dir)` writes out_dir/export/ (the raw DICOM tree),
out_dir/annotations/*.csv and out_dir/planted_phi.json, byte-for-byte
deterministic for a given seed and library versions.
"""
from __future__ import annotations

import datetime as dt
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom

from vindr_cli.synth import annotations as ann
from vindr_cli.synth import special, tomo
from vindr_cli.synth.burned_in import LAYOUTS as BURNED_IN_LAYOUTS, burn
from vindr_cli.synth.dataset import PADDING_VALUE, radiograph_dataset, screenshot_pixels, secondary_capture_dataset
from vindr_cli.synth.encode import encode_file
from vindr_cli.synth.modules import ImageContext, age_string
from vindr_cli.synth.phi import Patient, PhiRegistry, bench_patient
from vindr_cli.synth.plan import (
    M2, SC_STORAGE, SOP_CLASSES, TOMO, EXPLICIT, ImageSpec, PatientPlan, StudySpec, sample_plan,
)
from vindr_cli.synth.radiograph import apply_padding, phantom_for, to_stored
from vindr_cli.synth.uids import IMPLEMENTATION_VERSION_NAME, UidFactory

DEFAULT_SEED = 20240115
CXR_CSV = "vindr_cxr_annotations.csv"
SPINE_CSV = "vindr_spinexr_annotations.csv"
TRUTH_JSON = "selection_truth.json"
ADULT_YEARS = 18
SELECTED = "adult-frontal-chest"  # the only category the vindr-cxr preset must select


@dataclass
class Rendered:
    """One encoded image: its context, Part 10 bytes, stored pixels and findings."""

    ctx: ImageContext
    data: bytes
    pixels: np.ndarray
    findings: list[ann.Finding]
    burned_in: list[dict] = field(default_factory=list)  # text drawn into the pixels (synth/burned_in.py)


def _study_contexts(patient: Patient, study: StudySpec, uids: UidFactory,
                    accession: str, study_id: str) -> list[ImageContext]:
    """UIDs, series/instance numbers and cross-references for a study's images."""
    study_uid = uids.new()
    views = list(dict.fromkeys(spec.view for spec in study.images))
    series_uids = {view: uids.new() for view in views}
    sop_class = SOP_CLASSES[study.modality]
    sop_uids = [uids.new() for _ in study.images]
    seen: dict[str, int] = {}
    contexts = []
    for i, spec in enumerate(study.images):
        seen[spec.view] = seen.get(spec.view, 0) + 1
        other = 1 if i == 0 else 0
        reference = (sop_class, sop_uids[other]) if len(study.images) > 1 else None
        contexts.append(ImageContext(
            patient, study, spec, study_uid, series_uids[spec.view], sop_uids[i], sop_class,
            study.modality, views.index(spec.view) + 1, seen[spec.view], accession, study_id, reference))
    return contexts


def render_radiograph(ctx: ImageContext, rng: np.random.Generator, registry: PhiRegistry,
                      verify: bool = True, copy_of: Rendered | None = None) -> Rendered:
    """Phantom + findings -> stored pixels -> header -> encoded file bytes.

    `copy_of`: the same pixels and findings stored again (a duplicate under a new SOP UID).
    Extras "blank" (constant pixels, no findings) and "frames3" (a multi-frame RF run, tomo.py)."""
    spec = ctx.image
    if copy_of is not None:
        pixels, findings, drawn = copy_of.pixels, copy_of.findings, []
    else:
        phantom = phantom_for(ctx.study.body_part, spec.view, *spec.shape, rng)
        chest = ctx.study.body_part == "CHEST"
        findings = (ann.plan_chest_findings if chest else ann.plan_spine_findings)(phantom, rng)
        ann.draw_findings(phantom, findings, rng)
        pixels = to_stored(phantom.attenuation, spec.bits_stored, spec.photometric, rng)
        if "blank" in spec.extras:
            pixels = np.full(spec.shape, (1 << spec.bits_stored) * 5 // 100, dtype=np.uint16)
        if "blank" in spec.extras or "frames3" in spec.extras:
            findings = []
        if "padding" in spec.extras:
            apply_padding(pixels, PADDING_VALUE)
        drawn = [d for layout in BURNED_IN_LAYOUTS if layout in spec.extras for d in burn(pixels, ctx, layout)]
    ds = radiograph_dataset(ctx, pixels, registry)
    if "frames3" in spec.extras:
        pixels = tomo.fluoro_frames(pixels)
        tomo.rf_modules(ds, ctx, pixels)
    data = encode_file(ds, pixels, spec.transfer_syntax, verify=verify)
    return Rendered(ctx, data, pixels, findings, drawn)


def category(r: Rendered, previous: Rendered | None) -> str:
    """What `vindr select` must see in this image (selection_truth.json)."""
    ctx, extras = r.ctx, r.ctx.image.extras
    if ctx.modality in TOMO:
        return ctx.modality.lower()
    if "frames3" in extras:
        return "multiframe"
    if "truncate" in extras:
        return "truncated"
    if "duplicate" in extras:
        return f"duplicate-of:{previous.ctx.sop_uid}"
    if "blank" in extras:
        return "blank"
    if ctx.study.body_part != "CHEST":
        return "spine"
    if int(age_string(ctx.patient.birth_date, ctx.study.date)[:3]) < ADULT_YEARS:
        return "pediatric"
    return "lateral" if ctx.lateral else "adult-frontal-chest"


class ExportBuilder:
    """Walks the plan and writes every file of the sample export."""

    def __init__(self, out_dir: Path, seed: int) -> None:
        self.out_dir = Path(out_dir)
        self.export = self.out_dir / "export"
        self.seed = seed
        self.uids = UidFactory([seed, 1])
        self.registry = PhiRegistry()
        self.images = itertools.count()
        self.accessions = itertools.count(1)
        self.reader_rng = np.random.default_rng([seed, 5])
        self.cxr_rows: list[list[str]] = []
        self.spine_rows: list[list[str]] = []
        self.special: dict[str, list[str]] = {}
        self.burned_in: list[dict] = []
        self.summary: list[dict] = []
        self.truth: dict[str, dict] = {}  # original SOPInstanceUID -> category, expect_selected

    # -- bookkeeping -------------------------------------------------------
    def _rel(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()

    def _mark(self, kind: str, path: Path) -> None:
        self.special.setdefault(kind, []).append(self._rel(path))

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, 2, next(self.images)])

    # -- driver -------------------------------------------------------------
    def run(self) -> dict:
        if self.export.exists() and any(self.export.iterdir()):
            raise FileExistsError(f"{self.export} is not empty")
        self.export.mkdir(parents=True, exist_ok=True)
        for plan in sample_plan():
            self._patient(plan)
        thumbs = self.export / "Thumbs.db"
        special.write_thumbs_db(thumbs)
        self._mark("non_dicom", thumbs)
        ann.write_csv(self.out_dir / "annotations" / CXR_CSV, ann.CXR_HEADER, self.cxr_rows)
        ann.write_csv(self.out_dir / "annotations" / SPINE_CSV, ann.SPINE_HEADER, self.spine_rows)
        truth = json.dumps(dict(sorted(self.truth.items())), indent=2) + "\n"
        (self.out_dir / TRUTH_JSON).write_text(truth, encoding="utf-8")
        return self._write_manifest()

    def _patient(self, plan: PatientPlan) -> None:
        patient = plan.patient
        self.registry.add(*patient.strings(), *patient.institution.strings(), IMPLEMENTATION_VERSION_NAME)
        self.registry.add(patient.birth_date.strftime("%d/%m/%Y"))
        files = itertools.count(1)
        studies = [self._study(patient, study, files) for study in plan.studies]
        self.summary.append({
            "patient_name": patient.person.dicom, "patient_id": patient.patient_id,
            "birth_date": patient.birth_date.strftime("%Y%m%d"), "studies": studies,
        })

    def _study(self, patient: Patient, study: StudySpec, files: Iterator[int]) -> dict:
        n = next(self.accessions)
        accession = f"{patient.institution.code[2:]}{study.date[2:]}{n:04d}"
        study_id = f"XQ{study.date[2:]}{n:03d}"
        self.registry.add(accession, study_id, f"RP{accession}", f"SPS{accession}", f"PPS{accession}")
        self.registry.dates.add(study.date)
        contexts = _study_contexts(patient, study, self.uids, accession, study_id)
        folder = self.export / patient.folder_name / f"{study.date}_{study.body_part_examined}_{accession}"
        frame_of_reference = self.uids.new() if study.modality in TOMO else None
        rendered: list[Rendered] = []
        for i, ctx in enumerate(contexts):
            rng = self._rng()
            if study.modality in TOMO:
                data, pixels = tomo.render_slice(ctx, i, frame_of_reference, self.registry)
                r = Rendered(ctx, data, pixels, [])
            else:
                copy_of = rendered[-1] if "duplicate" in ctx.image.extras else None
                r = render_radiograph(ctx, rng, self.registry, copy_of=copy_of)
            self.truth[ctx.sop_uid] = self._truth(category(r, rendered[-1] if rendered else None))
            rendered.append(r)
            self.registry.add_uid(ctx.study_uid, ctx.series_uid, ctx.sop_uid)
        if frame_of_reference:
            self.registry.add_uid(frame_of_reference)
        placer = {"plain": self._place_plain, "zip": self._place_zip, "dicomdir": self._place_dicomdir}
        placer[study.container](patient, study, folder, rendered, files)
        if study.container != "zip":
            self._annotate(rendered)
        if "secondary_capture" in study.extras:
            self._secondary_capture(rendered[0], folder, files)
        if "report" in study.extras:
            self._report(patient, study, accession, folder)
        return {"study_uid": contexts[0].study_uid, "date": study.date, "accession": accession,
                "body_part": study.body_part, "modality": study.modality, "container": study.container}

    # -- placement ---------------------------------------------------------
    def _image_path(self, folder: Path, r: Rendered, number: int, ext: str) -> Path:
        ctx = r.ctx
        series = f"S{ctx.series_number:02d}_{ctx.modality}_{ctx.image.view}"
        return folder / series / f"IMG_{ctx.patient.person.camel}_{number:04d}{ext}"

    def _place_plain(self, patient: Patient, study: StudySpec, folder: Path,
                     rendered: list[Rendered], files: Iterator[int]) -> None:
        """One file per image under series folders; truncation and an empty file if asked."""
        for r in rendered:
            path = self._image_path(folder, r, next(files), r.ctx.image.ext)
            path.parent.mkdir(parents=True, exist_ok=True)
            if "truncate" in r.ctx.image.extras:
                special.write_truncated(path, r.data)
                self._mark("truncated", path)
            else:
                path.write_bytes(r.data)
            if r.burned_in:
                self._mark("burned_in", path)
                self.burned_in += [{"file": self._rel(path), "sop_uid": r.ctx.sop_uid, **d} for d in r.burned_in]
            for extra in sorted(r.ctx.image.extras & {"overlay", "curve", "voi_lut", "rescale", "padding",
                                                    "blank", "duplicate", "frames3"}):
                self._mark(extra, path)
        if "zero_byte" in study.extras:
            empty = self._image_path(folder, rendered[-1], next(files), ".dcm")
            special.write_zero_byte(empty)
            self._mark("zero_byte", empty)

    def _place_zip(self, patient: Patient, study: StudySpec, folder: Path,
                   rendered: list[Rendered], files: Iterator[int]) -> None:
        """The whole study as one stored zip next to the other study folders."""
        members = []
        for r in rendered:
            name = self._image_path(Path(), r, next(files), ".dcm").as_posix()
            members.append((name, r.data))
        archive = folder.with_suffix(".zip")
        archive.parent.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.strptime(study.date + study.time, "%Y%m%d%H%M%S")
        special.write_zip(archive, members, stamp.timetuple()[:6])
        self._mark("zip", archive)

    def _place_dicomdir(self, patient: Patient, study: StudySpec, folder: Path,
                        rendered: list[Rendered], files: Iterator[int]) -> None:
        """The study as DICOMDIR media: <patient>/CD_<date>/DICOMDIR + IMAGES/IMnnnnnn."""
        root = self.export / patient.folder_name / f"CD_{study.date}"
        root.mkdir(parents=True, exist_ok=True)
        fileset_uid = self.uids.new()
        self.registry.add_uid(fileset_uid)
        datasets = []
        for r in rendered:
            next(files)  # keep file numbering aligned with the other containers
            datasets.append(pydicom.dcmread(io.BytesIO(r.data)))
        moved = special.write_dicomdir(root, datasets, fileset_uid, f"{patient.institution.code}_CD_{study.date[2:]}")
        self._mark("dicomdir", root / "DICOMDIR")
        for path in moved:
            self._mark("dicomdir_image", path)

    # -- extras --------------------------------------------------------------
    @staticmethod
    def _truth(kind: str) -> dict:
        return {"category": kind, "expect_selected": kind == SELECTED}

    def _annotate(self, rendered: list[Rendered]) -> None:
        """Readers' rows for adult chest radiographs (frontal and lateral) and spine images;
        none for what a selection excludes (truncated, duplicate, blank, child, CT, MR, RF)."""
        for r in rendered:
            ctx = r.ctx
            kind = self.truth[ctx.sop_uid]["category"]
            if kind not in (SELECTED, "lateral", "spine"):
                continue
            if kind != "spine":
                self.cxr_rows += ann.cxr_rows(ctx.sop_uid, r.findings, r.pixels.shape, self.reader_rng)
            else:
                reader = ann.READERS[len(self.spine_rows) % len(ann.READERS)]
                self.spine_rows += ann.spine_rows((ctx.sop_uid, ctx.study_uid, ctx.series_uid), reader, r.findings)

    def _secondary_capture(self, source: Rendered, folder: Path, files: Iterator[int]) -> None:
        src = source.ctx
        spec = ImageSpec("", EXPLICIT, M2, 8, src.image.shape)
        ctx = replace(src, image=spec, series_uid=self.uids.new(), sop_uid=self.uids.new(), sop_class=SC_STORAGE,
                      modality="OT", series_number=99, instance_number=1, reference=(src.sop_class, src.sop_uid))
        self.registry.add_uid(ctx.series_uid, ctx.sop_uid)
        self.truth[ctx.sop_uid] = self._truth("secondary-capture")
        pixels = screenshot_pixels(source.pixels, src.image.photometric, ctx)
        ds = secondary_capture_dataset(ctx, src.sop_uid, src.sop_class, self.registry)
        path = folder / "S99_OT_SCREENSHOT" / f"IMG_{ctx.patient.person.camel}_{next(files):04d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_file(ds, pixels, EXPLICIT))
        self._mark("secondary_capture", path)

    def _report(self, patient: Patient, study: StudySpec, accession: str, folder: Path) -> None:
        inst = patient.institution
        lines = [
            "PHIẾU KẾT QUẢ CHẨN ĐOÁN HÌNH ẢNH",
            f"{inst.name} - {inst.address}",
            f"Họ tên: {patient.person.display.upper()}    Mã BN: {patient.patient_id}",
            f"Ngày sinh: {patient.birth_date:%d/%m/%Y}    Giới: {'Nam' if patient.sex == 'M' else 'Nữ'}",
            f"Địa chỉ: {patient.address}    ĐT: {patient.phone}",
            f"Số phiếu: {accession}    Ngày chụp: {study.date[6:]}/{study.date[4:6]}/{study.date[:4]}",
            "Kết luận: Chưa phát hiện bất thường trên phim X-quang ngực thẳng.",
            f"Bác sĩ đọc phim: {inst.reader.display}",
        ]
        self.registry.add(patient.person.display.upper())
        path = folder / f"report_{patient.person.camel}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._mark("non_dicom", path)

    def _write_manifest(self) -> dict:
        files = sorted(p for p in self.export.rglob("*") if p.is_file())
        corpus = b"\n".join(p.read_bytes() + b"\n" + self._rel(p).encode() for p in files)
        self.registry.keep_only_present(corpus)
        # burned-in text lives in the pixels, not in the bytes: kept apart from the header strings
        # (`strings`, searched byte-wise by the tests); "other" (the hospital's code) is listed
        # with the identifying text since only markers may stay readable
        result = {"seed": self.seed, **self.registry.as_dict(), "patients": self.summary,
                  "special_files": {k: sorted(v) for k, v in sorted(self.special.items())},
                  "burned_in_phi": [d for d in self.burned_in if d["kind"] != "marker"],
                  "burned_in_markers": [d for d in self.burned_in if d["kind"] == "marker"]}
        text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
        (self.out_dir / "planted_phi.json").write_text(text, encoding="utf-8")
        return result


def build_export(out_dir: Path, seed: int = DEFAULT_SEED) -> dict:
    """Write out_dir/export, out_dir/annotations and out_dir/planted_phi.json; return the PHI dict."""
    return ExportBuilder(Path(out_dir), seed).run()


def write_radiograph(path: Path, *, index: int, rows: int, cols: int, transfer_syntax: str,
                     photometric: str, seed: int, bits_stored: int = 12, verify: bool = True,
                     body_part: str = "CHEST", view: str = "PA") -> dict:
    """Write one radiograph-sized image (a PA chest by default; ``body_part`` CHEST, LSPINE or
    CSPINE and ``view`` as in the plan) with a unique fake identity (for benchmarks).

    MONOCHROME1 gives a CR image, MONOCHROME2 a DX image. PHI is planted in
    standard, nested, private and free-text tags. Returns {"strings", "uids", "dates"}.
    """
    patient = bench_patient(index)
    day = dt.date(2024, 1, 1) + dt.timedelta(days=index % 366)
    modality = "CR" if photometric == "MONOCHROME1" else "DX"
    spec = ImageSpec(view, transfer_syntax, photometric, bits_stored, (rows, cols), ".dcm", frozenset({"comments"}))
    study = StudySpec(day.strftime("%Y%m%d"), "093000", body_part, modality, (spec,),
                      extras=frozenset({"name_in_description", "history"}))
    registry = PhiRegistry()
    accession = f"B{index:09d}"
    ctx = _study_contexts(patient, study, UidFactory([seed, 3, index]), accession, f"BS{index:07d}")[0]
    rendered = render_radiograph(ctx, np.random.default_rng([seed, 4, index]), registry, verify)
    Path(path).write_bytes(rendered.data)
    registry.add(*patient.strings(), *patient.institution.strings(), accession)
    registry.keep_only_present(rendered.data)
    registry.add_uid(ctx.study_uid, ctx.series_uid, ctx.sop_uid)
    registry.dates.add(study.date)
    return registry.as_dict()
