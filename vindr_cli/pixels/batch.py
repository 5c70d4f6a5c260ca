"""``vindr decode`` as a stage of the one runner (:mod:`vindr_cli.runner.stage`): it
supplies the request checks, the settings, the worker config and the naming mode.

Output names are decided here, in the driver, before any work starts
(:class:`~vindr_cli.pixels.output.OutputNames`, in discovery order: the same with any
number of workers); workers only write temporary files, and :meth:`DecodeStage.place`
names each frame from its input's stem and renames it through the runner's path guard.

What an input is called (rows, journal keys, output names) depends on INPUT (red team 6):

* a vindr anonymize OUTPUT (``manifest.parquet`` + ``.vindr/anonymize.json``): only the
  manifest's ``ok`` outputs are decoded, each checked by the worker against its row
  (:mod:`vindr_cli.dicomio.provenance`: PatientIdentityRemoved YES, the row's substitute
  PatientID and SOP Instance UID) before anything is named after it, and named by the
  manifest's output path (keyed substitutes, ending in the image id); any other file (a
  stray) is a ``failed`` row named by a keyed hash, never decoded;
* any other INPUT: every input is named by a keyed hash of its path
  (:mod:`vindr_cli.pixels.output`; a header that says PatientIdentityRemoved YES is not
  proof: a gateway may set it on a raw export), and the summary says so. An image without
  that flag is refused unless ``allow_identified``.

Resume: every row records ``input_stamp`` (size and mtime of the input, a stat); a re-run
decodes again an input whose stamp changed (re-written with review boxes), into the same
names (:meth:`DecodeStage.is_done`).
"""
from __future__ import annotations

import warnings as _warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from vindr_cli.dicomio.header import DICOMDIR_CLASS, BadInput, read_header
from vindr_cli.errors import RequestError
from vindr_cli.pixels import output as naming
from vindr_cli.pixels.output import FORMATS
from vindr_cli.pixels.resize import FILTERS
from vindr_cli.pixels.task import DecodeConfig, decode_one, input_name, input_stamp, is_deidentified, \
    manifest_outputs, setup
from vindr_cli.pixels.window import parse_window_mode
from vindr_cli.runner.discover import STATE_DIR, discover
from vindr_cli.runner.executor import Executor
from vindr_cli.runner.sources import Source, enclosing_output, is_within
from vindr_cli.runner.stage import Run, Stage, Table, run_stage

IDENTIFIED = ("INPUT is not de-identified (an image without PatientIdentityRemoved YES): run vindr anonymize "
              "first, or pass --allow-identified to decode it anyway (outputs are then named by keyed hashes, "
              "never by input paths)")
IDENTIFIED_WARNING = ("INPUT is not de-identified: outputs and table rows are named by keyed hashes of the input "
                      "paths, but the images may still show identifying text or features; keep OUTPUT inside "
                      "the hospital")
NOT_ANONYMIZE_OUTPUT = ("INPUT is not a vindr anonymize OUTPUT (no manifest.parquet to check its files against): "
                        "outputs and table rows are named by keyed hashes of the input paths, and its images are "
                        "only said to be de-identified (PatientIdentityRemoved YES)")
PRECHECK_FILES = 50      # how many inputs the up-front check reads, at most, to find an image


class DecodeRequestError(RequestError):
    """The request cannot run (one line, exit 2)."""


@dataclass
class DecodeSummary:
    inputs: int = 0
    images: int = 0
    resumed: int = 0
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    backends: Counter = field(default_factory=Counter)
    table: Path | None = None
    warnings: list[str] = field(default_factory=list)
    identified: bool = False
    gone_removed: int = 0        # outputs of inputs gone from INPUT, removed (runner.stage._remove_gone)


def first_image_identified(sources: list[Source]) -> bool | None:
    """Whether the first DICOM image among the first inputs lacks PatientIdentityRemoved
    YES (None: no image found there). Workers check every image again."""
    for src in sources[:PRECHECK_FILES]:
        if src.missing_reason:
            continue
        try:
            with src.open() as f, _warnings.catch_warnings():
                _warnings.simplefilter("ignore")
                header = read_header(f, src.size)
        except (BadInput, OSError):
            continue
        except Exception:         # unreadable in some other way: the worker will say why
            continue
        ds = header.ds
        if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
            continue
        if header.pixel_offset is None and "PixelData" not in ds:
            continue
        return not is_deidentified(ds)
    return None


class DecodeStage(Stage):
    name = "decode"
    task = staticmethod(decode_one)
    setup = staticmethod(setup)
    primary = "images"
    owns_outputs = True                  # an input gone from INPUT takes its outputs along (runner.stage)

    def __init__(self, output: Path, cfg: DecodeConfig, outputs: dict[str, dict] | None = None):
        self.output = output
        self.salt_path = output / STATE_DIR / naming.SALT_FILE
        self._salt: bytes | None = None
        self._new_salt = False
        self.outputs = outputs      # manifest mode: the anonymize manifest's ok outputs
        # every other input is named by a keyed hash of its path (a stray of ANON_DIR, any file
        # of an INPUT that is not a vindr anonymize OUTPUT, every file with --allow-identified)
        self._new_salt = not self.salt_path.exists()
        self._salt = naming.new_salt() if self._new_salt else naming.read_salt(self.salt_path)
        cfg = DecodeConfig(**{**cfg.__dict__, "salt_path": str(self.salt_path)})
        self.cfg = cfg
        self.record: dict[str, Any] = {"size": repr(cfg.size), "window": cfg.window, "window_index": cfg.window_index,
                                       "bits": cfg.bits, "format": cfg.fmt, "resample": cfg.resample}
        if outputs is None:      # only then, so that OUTPUTs made from an anonymize OUTPUT before still resume
            self.record["names"] = "keyed"
        self.compared = tuple(self.record) + ("names",)

    def __reduce__(self):
        raise TypeError("DecodeStage stays in the driver")

    def config(self) -> DecodeConfig:
        return self.cfg

    def settings(self) -> dict[str, Any]:
        return self.record

    def explain(self, name: str, old: Any, new: Any) -> str | None:
        if name == "names":
            made = ("names by keyed hashes (an INPUT that is not a vindr anonymize OUTPUT, or --allow-identified)"
                    if old else "names after INPUT's paths (a vindr anonymize OUTPUT's, or a raw tree's decoded "
                    "by a vindr from before raw trees were named by keyed hashes)")
            return ("OUTPUT was made with " + made + "; decode the same kind of INPUT (and --allow-identified "
                    "choice) into it, or use a new OUTPUT folder")
        return None

    def tables(self) -> list[Table]:
        return [Table("images", "images", self.output / "images.parquet")]

    def key(self, src: Source) -> str:
        return input_name(src.rel, self._salt, self.outputs)

    def is_done(self, run: Run, key: str) -> bool:
        """As every stage (rows whole, outputs intact), and the input is the file it was
        decoded from: its ``input_stamp`` (size, mtime) is unchanged. An input re-written
        since (by vindr anonymize with review boxes) is decoded again, into the same names."""
        if not super().is_done(run, key):
            return False
        src = self._sources.get(key)
        stamp = input_stamp(src) if src is not None else None
        return stamp is not None and all(r.get("input_stamp") == stamp for r in run.done[self.primary][key]
                                         if r.get("status") == self.ok_status)

    def prepare(self) -> None:
        if self._new_salt:
            naming.write_salt(self.salt_path, self._salt)
            self._new_salt = False

    def begin(self, run: Run) -> None:
        """Give every input its output stem, in discovery order (:class:`OutputNames`):
        first the names an earlier run recorded (an input keeps them; one whose names
        another input already holds — an OUTPUT made before names were unique — loses its
        rows and is decoded again), then a free name for every other input."""
        names = naming.OutputNames(self.cfg.fmt)
        self._sources = {run.keys[s.rel]: s for s in run.sources}
        self.stems: dict[str, str] = {}
        previous = run.done["images"]
        for key in run.keys.values():
            oks = [r for r in previous.get(key, ()) if r.get("status") == "ok"]
            if not oks:
                continue
            stem = names.stem_of([r.get("output") or "" for r in oks], frames=len(oks) > 1)
            if stem is not None and names.reserve(stem):
                self.stems[key] = stem
            else:
                del previous[key]
        for key in run.keys.values():
            if key not in self.stems:
                self.stems[key] = names.assign(naming.base_name(key))

    def place(self, run: Run, src: Source, result: dict):
        """Name the frames from the input's stem, then rename them into place."""
        if result.get("identified"):
            raise DecodeRequestError(IDENTIFIED)
        key = run.keys[src.rel]
        rows = result["rows"]["images"]
        oks = [r for r in rows if r["status"] == "ok"]
        files = []
        for row, (tmp, _), frame in zip(oks, result.get("files", ()), result.get("frames", ())):
            row["output"] = naming.stem_name(self.stems[key], frame, self.cfg.fmt)
            files.append((tmp, row["output"]))
        return super().place(run, src, {"rows": result["rows"], "files": files})

    def unplaced(self, rows: dict[str, list[dict]], reason: str) -> dict[str, list[dict]]:
        first = rows["images"][0]
        return {"images": [{"input_key": first["input_key"], "input": first["input"], "status": "failed",
                            "reason": reason}]}


def anonymize_manifest(input_path: Path) -> Path | None:
    """INPUT's ``manifest.parquet`` when INPUT is a vindr anonymize OUTPUT (that table and
    ``.vindr/anonymize.json``), else None."""
    manifest = input_path / "manifest.parquet"
    if input_path.is_dir() and manifest.is_file() and (input_path / STATE_DIR / "anonymize.json").is_file():
        return manifest
    return None


def input_paths(output: Path, input_path: Path) -> dict[str, str]:
    """{a row's ``input`` in OUTPUT's images.parquet: that input's relative path} for a decode
    OUTPUT made from INPUT. For the caller that holds both (e.g. the baseline's cache decode of
    a release): a keyed name is mapped back through OUTPUT's salt, by hashing INPUT's paths
    (never the other way); a name that is the path (an anonymize OUTPUT's) maps to itself."""
    sources = discover(Path(input_path).resolve())
    names = {s.rel: s.rel for s in sources}
    salt_path = Path(output) / STATE_DIR / naming.SALT_FILE
    if salt_path.is_file():
        salt = naming.read_salt(salt_path)
        names.update({naming.keyed_name(salt, s.rel): s.rel for s in sources})
    return names


def _check(input_path: Path, output: Path, cfg: DecodeConfig) -> None:
    if not input_path.exists():
        raise DecodeRequestError("INPUT does not exist")
    if is_within(output, input_path) or is_within(input_path, output):
        raise DecodeRequestError("OUTPUT must not be inside INPUT (nor INPUT inside OUTPUT)")
    if enclosing_output(output) is not None:
        raise DecodeRequestError("OUTPUT must not be inside another vindr output folder")
    if cfg.bits not in (8, 16):
        raise DecodeRequestError("--bits must be 8 or 16")
    if cfg.fmt not in FORMATS:
        raise DecodeRequestError(f"--format must be one of {', '.join(FORMATS)}")
    try:
        parse_window_mode(cfg.window)
    except ValueError as exc:
        raise DecodeRequestError(str(exc)) from None
    if cfg.resample not in FILTERS:
        raise DecodeRequestError(f"--resample must be one of {', '.join(FILTERS)}")
    if cfg.device not in ("cpu", "cuda", "auto"):
        raise DecodeRequestError("--device must be cpu, cuda or auto")
    if cfg.device == "cuda":
        from vindr_cli.pixels.gpu import gpu_available

        if not gpu_available():
            raise DecodeRequestError("--device cuda: no CUDA GPU with nvImageCodec here (use cpu or auto)")


def decode_tree(input_path: Path, output: Path, cfg: DecodeConfig, *, workers: int,
                console: Console | None = None, allow_identified: bool = False,
                executor: Executor | None = None, rebuild_state: bool = False) -> DecodeSummary:
    input_path, output = input_path.resolve(), output.resolve()
    _check(input_path, output, cfg)
    sources = discover(input_path)
    manifest = anonymize_manifest(input_path)
    outputs = None
    if manifest is not None and not allow_identified:     # a vindr anonymize OUTPUT: only its manifest's outputs
        outputs = manifest_outputs(manifest)
        identified = False
    else:
        identified = first_image_identified(sources)
        if identified and not allow_identified:
            raise DecodeRequestError(IDENTIFIED)
    cfg = DecodeConfig(**{**cfg.__dict__, "output": str(output), "identified": allow_identified,
                          "manifest": str(manifest) if outputs is not None else None})
    stage = DecodeStage(output, cfg, outputs)
    stage.rebuild_state = rebuild_state
    result = run_stage(stage, input_path, executor=executor, workers=workers, console=console, sources=sources)
    rows = result.rows["images"]
    summary = DecodeSummary(inputs=result.inputs, resumed=result.resumed, counts=result.counts,
                            reasons=result.reasons, table=output / "images.parquet",
                            warnings=list(result.warnings), identified=allow_identified,
                            gone_removed=result.gone_removed)
    if allow_identified and identified:
        summary.warnings.insert(0, IDENTIFIED_WARNING)
    elif outputs is None:
        summary.warnings.insert(0, NOT_ANONYMIZE_OUTPUT)
    for r in rows:
        if r["status"] == "ok":
            summary.images += 1
            summary.backends[r["backend"]] += 1
    return summary
