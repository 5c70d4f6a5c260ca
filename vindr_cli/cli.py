"""Command-line interface: parses options, calls the library, prints. No logic here.

Exit codes (all commands): 0 success; 1 findings (audit/validate) or, with --strict,
any failed input; 2 a request that cannot run (bad arguments, paths, key or profile);
3 an internal error (no traceback unless VINDR_DEBUG=1); 130 interrupted (a re-run resumes);
141 stdout's reader went away (a closed pipe: quiet, as cat); 143 SIGTERM (stopped as by Ctrl-C).
"""
# No `from __future__ import annotations` here: typer reads every command's signature with
# typing.get_type_hints, which compiles each string annotation (a ForwardRef) on every call,
# ≈ 60 compiles for one anonymize run; real annotations need none (issue 13, startup3).
import os
import sys
from pathlib import Path
from typing import Optional

from vindr_cli.startup import defer_first_collection

defer_first_collection()        # no cyclic GC over start-up's long-lived objects (issue 13)
import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

from vindr_cli import __version__  # noqa: E402
from vindr_cli.cliparams import coerce_without_pydantic, usage_names_upper  # noqa: E402

coerce_without_pydantic()       # typer's option values without pydantic where certain (issue 13)
usage_names_upper()             # `Usage: vindr anonymize [OPTIONS] INPUT OUTPUT`, not typer 0.29's {input}

# rich_markup_mode=None: click's plain help. Rich's option table cuts long option names
# (--retain-patient-characteristics/--no-...) with an ellipsis below ~100 columns; the plain
# layout puts a long name on its own line and wraps only the help text (tests/test_cli_help.py).
from typer.core import TyperGroup  # noqa: E402

PIPELINE = ("info", "anonymize", "audit", "select", "push", "review", "decode", "split", "release", "validate",
            "evaluate", "baseline")


class _PipelineOrder(TyperGroup):
    """`vindr --help` lists the commands in the order a release runs them (README, ARCHITECTURE),
    not in the order cli.py defines them (new-user walk 4: info came ninth, audit tenth)."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (PIPELINE.index(n) if n in PIPELINE else len(PIPELINE), names.index(n)))


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
                  cls=_PipelineOrder,
                  help="vindr: de-identify raw hospital DICOM exports and build VinDr-style research releases.")


def closed_pipe(fd: int = 1):
    """The reader of stdout (or stderr) went away (`vindr info X | head -1`): end quietly with
    EXIT_CLOSED_PIPE, the status of a Unix tool killed by SIGPIPE, not rich's or Click's exit 1
    (the findings' code) nor a traceback. Further writes go to /dev/null, so the exit's flush
    is quiet. Work already finished is kept, as after Ctrl-C (new-user walk 4)."""
    from vindr_cli.errors import EXIT_CLOSED_PIPE

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
    except (OSError, ValueError):      # pragma: no cover - nothing more to quiet
        pass
    raise SystemExit(EXIT_CLOSED_PIPE)


_TERMINATED: list[int] = []     # the pid that installed the handler; + 1 once SIGTERM came


def stop_on_sigterm():
    """SIGTERM (``kill PID``, systemd, a batch scheduler's time limit) stops a command the way
    Ctrl-C does -- finished work kept, temporary files removed, the lock released, the
    "interrupted ... run the same command again to resume" line -- and exits
    EXIT_TERMINATED (143, what a shell reports for a process SIGTERM ended). Before, the
    process died at once without a word. A forked worker (it inherits the handler) takes
    the default action instead, as before: it dies, and the parent's pool sees that."""
    import signal

    _TERMINATED[:] = [os.getpid()]

    def on_term(signum, frame):
        if os.getpid() != _TERMINATED[0]:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        _TERMINATED.append(signum)
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, on_term)
    except ValueError:     # pragma: no cover - not the main thread (main() called from a thread)
        return None


def _restore_sigterm(previous) -> None:
    """main() called in a process of one's own (tests, scripts) leaves its SIGTERM handler as it was."""
    if previous is not None:
        import signal

        try:
            signal.signal(signal.SIGTERM, previous)
        except ValueError:  # pragma: no cover
            pass


class _Console(Console):
    def on_broken_pipe(self) -> None:          # rich's default: exit 1 and /dev/null on fd 1 even for stderr
        self.quiet = True
        closed_pipe(2 if self.stderr else 1)

    def print(self, *objects, soft_wrap=None, **kwargs) -> None:
        """A line of words (a path, a command to run next) is never folded at the console's
        width, mid-word, into lines a copy or a grep would cut (`manifest: /long/pa` +
        `th/manifest.parquet` on a non-terminal's 80 columns); tables keep rich's layout."""
        if soft_wrap is None and objects and all(isinstance(o, (str, Text)) for o in objects):
            soft_wrap = True
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


console = _Console(stderr=False, log_path=False)     # console.log (baseline's progress): the time, not cli.py:593
err = _Console(stderr=True, log_path=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vindr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """vindr: de-identify, decode, split and validate DICOM research releases."""


def _count(value: int) -> int:
    """A count option (-j, --threads, --spot): 0 or more. A callback, not typer's ``min=``,
    which typer 0.29 checks through pydantic (vindr_cli.cliparams keeps pydantic out of a run)."""
    if value is not None and value < 0:
        raise typer.BadParameter(f"{value} is not 0 or more.")
    return value


def _port(value: int) -> int:
    """--port: 0 (a free one) to 65535."""
    if value is not None and not 0 <= value <= 65535:
        raise typer.BadParameter(f"{value} is not in the range 0 to 65535.")
    return value


_INTERRUPT_SAID: list[bool] = []
INTERRUPTED = "interrupted: stopped before the end; run the same command again"


def _interrupted(line: str):
    """A command's own line for Ctrl-C (what it kept), then exit 130."""
    err.print(line, markup=False, highlight=False, soft_wrap=True)
    _INTERRUPT_SAID.append(True)
    raise typer.Exit(130)


def _fail(message: str, code: int = 2) -> None:
    """Print a one-line, PHI-free error (rich markup, already escaped by the caller) and exit
    with ``code`` (2: the request cannot run, 1: findings). Library errors need no call here:
    a :class:`vindr_cli.errors.VindrError` reaching ``main`` is printed and mapped there."""
    from vindr_cli.errors import EXIT_FINDINGS, EXIT_REQUEST

    if code not in (EXIT_REQUEST, EXIT_FINDINGS):   # 3 is main's alone: an unknown exception
        raise ValueError("_fail is for exit 1 or 2")
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def anonymize(
    input: Path = typer.Argument(..., help="Raw export: a folder (plain, DICOMDIR media, .zip inside), a .zip or one file."),
    output: Path = typer.Argument(..., help="Folder for the de-identified tree (must not be inside INPUT)."),
    key: Optional[Path] = typer.Option(None, "--key", help="Secret key file (created 0600 on first use; never copied or sent: Dask workers read it at this same path, README 'Cluster'). Default: $VINDR_KEY or ~/.config/vindr/vindr.key."),
    profile: str = typer.Option("basic", "--profile", help="basic | vindr | a recipe .toml file."),
    dates: str = typer.Option("shift", "--dates", help="shift (per-patient keyed offset) | keep | remove."),
    retain_patient_characteristics: bool = typer.Option(True, "--retain-patient-characteristics/--no-retain-patient-characteristics", help="Keep sex, age, size, weight (113108)."),
    retain_device_identity: bool = typer.Option(False, "--retain-device-identity", help="Annex E Retain Device Identity Option (113109)."),
    retain_institution_identity: bool = typer.Option(False, "--retain-institution-identity", help="Retain Institution Identity Option (113112)."),
    retain_uids: bool = typer.Option(False, "--retain-uids", help="Retain UIDs Option (113110): UIDs are not replaced."),
    clean_descriptors: bool = typer.Option(False, "--clean-descriptors", help="Clean Descriptors Option (113105): keep descriptors found in schemas/deid/clean_descriptors.toml."),
    uid_root: str = typer.Option("2.25", "--uid-root", help="Root for new UIDs."),
    patient_match: str = typer.Option("normalised", "--patient-match", help="normalised: one patient per PatientID with spaces, case and leading zeros folded (0077123 = 77123), issuer ignored, so a file without IssuerOfPatientID joins the same ID with one; no usable ID: name (accents, case, spaces folded) + birth date, then the study | strict: PatientID + issuer exactly as stored. Patients share date shift and substitutes."),
    layout: str = typer.Option("tree", "--layout", help="tree: <patient>/<study>/<series>/<image>.dcm | vindr: flat <image_id>.dicom."),
    allow_burned_in: bool = typer.Option(False, "--allow-burned-in", help="Write images that may carry burned-in text (SC, US, ... or BurnedInAnnotation YES) instead of quarantining them; with --burned-in redact|quarantine they are scanned like the rest."),
    burned_in: str = typer.Option("redact", "--burned-in", help="Text burned into the pixels: redact (mask identifying text found in every frame, keep markers, re-encode) | quarantine (hold back an image with identifying text) | off (pixels not scanned: only the SOP-class / header quarantine; a JPEG / JPEG 2000 / RLE frame still loses the metadata it holds besides its pixels, native data its bits above Bits Stored; video is refused)."),
    linkage: Optional[Path] = typer.Option(None, "--linkage", help="Linkage table path (PHI, 0600). Default: OUTPUT's sibling <name>.linkage.parquet."),
    no_linkage: bool = typer.Option(False, "--no-linkage", help="Do not write a linkage table."),
    workers: int = typer.Option(0, "--workers", "-j", callback=_count, help="Worker processes (0: all cores)."),
    executor: str = typer.Option("local", "--executor", help="local: worker processes here (-j) | dask: a Dask cluster (--scheduler; README 'Cluster')."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler for --executor dask: tcp://HOST:PORT or tls://HOST:PORT (default $VINDR_SCHEDULER, read only with --executor dask)."),
    task_timeout: float = typer.Option(1800.0, "--task-timeout", help="Seconds one input may take before it becomes a failed row (its worker is killed; the local pool with -j > 1, or Dask; README 'Cluster')."),
    rebuild_state: bool = typer.Option(False, "--rebuild-state", help="Set damaged state files (OUTPUT/.vindr) aside and process again the inputs they recorded."),
    max_inflate: int = typer.Option(256 << 20, "--max-inflate", help="Most bytes a deflated data set may inflate to, or a .zip member may declare (default 256 MiB)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any input failed, or if no input is DICOM."),
    review: Optional[Path] = typer.Option(None, "--review", help="Also apply the boxes drawn in this vindr review (a review.parquet, or a SELECTION folder reviewed); OUTPUT's own review is always applied."),
) -> None:
    """De-identify a raw DICOM export (PS3.15 Annex E) into OUTPUT, with manifest.parquet."""
    from vindr_cli.deid.batch import anonymize as run
    from vindr_cli.deid.keyfile import default_key_path
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.runner.executor import default_workers
    from vindr_cli.runner.backend import open_executor

    opts = {name for name, on in [
        ("retain_device_identity", retain_device_identity), ("retain_institution_identity", retain_institution_identity),
        ("retain_uids", retain_uids), ("clean_descriptors", clean_descriptors)] if on}
    without = set() if retain_patient_characteristics else {"retain_patient_characteristics"}
    if retain_patient_characteristics:
        opts.add("retain_patient_characteristics")
    prof = load_profile(profile, dates=dates, options=opts, without=without)   # ProfileError: exit 2 in main
    try:
        with open_executor(executor, scheduler, input=input, output=output, task_timeout=task_timeout,
                           say=_note, waiting=_waiting, secret="the key file") as ex:
            summary = run(input, output, key_path=key or default_key_path(), profile=prof,
                          workers=workers or default_workers(), uid_root=uid_root, layout=layout,
                          allow_burned_in=allow_burned_in, linkage=linkage, write_linkage=not no_linkage, console=console,
                          rebuild_state=rebuild_state, max_inflate=max_inflate, patient_match=patient_match,
                          burned_in=burned_in, executor=ex, review=review)
    except KeyboardInterrupt:
        _interrupted("interrupted: finished files are kept; run the same command again to resume")
    if not summary.key_created:
        console.print(f"key: {summary.key_path} (fingerprint {summary.key_fingerprint})", markup=False, highlight=False)
    _print_anonymize(summary, executor=_executor(ex, workers or default_workers()))
    if summary.counts.get("quarantined") and not allow_burned_in:
        console.print("quarantined images are not written; --allow-burned-in writes those held back for their SOP "
                      "class or BurnedInAnnotation after the same OCR scan and redaction (README 'Burned-in text')",
                      markup=False, highlight=False, soft_wrap=True)
    if summary.counts.get("ok"):
        console.print(f"next: vindr audit {output} --report FILE.json (before anything leaves the hospital)",
                      markup=False, highlight=False, soft_wrap=True)
    if summary.review_images:
        from vindr_cli.deid.batch import REVIEW_RERUN
        console.print(f"vindr review: {summary.review_rewritten} image(s) re-written with the boxes drawn for more "
                      f"redaction; {summary.review_images} carry such boxes (back in the redacted queue, undecided)"
                      + (f"; {REVIEW_RERUN}" if summary.review_rewritten else ""), markup=False, highlight=False)
    for line in summary.warnings:
        err.print("[bold yellow]warning:[/] ", end="")
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if strict and (summary.counts.get("failed") or summary.warnings):
        raise typer.Exit(1)


def _note(line: str) -> None:
    """A line on where a batch runs (the Dask cluster, or a hint about $VINDR_SCHEDULER): on
    stderr, like the progress bar, so that --json output stays clean."""
    err.print(line, markup=False, highlight=False, soft_wrap=True)


def _waiting(text: str):
    """A spinner on stderr during the Dask connect wait (rich's spinner is imported here only)."""
    return err.status(text)


def _executor(ex, workers: int) -> str:
    from vindr_cli.runner.backend import executor_label

    return executor_label(ex, workers)


def _executor_row(t: Table, ex, workers: int) -> None:
    """The summary table's last row: where the batch ran (local pool or Dask cluster)."""
    t.add_row(Text("executor", style="dim"), Text(_executor(ex, workers), style="dim"))


def _print_reasons(reasons, title: str, resumed: int) -> None:
    """The batch summary's second table: what was not done, and why (PHI-free reasons)."""
    if reasons:
        r = Table(title=title)
        r.add_column("status")
        r.add_column("reason")
        r.add_column("files", justify="right")
        for (status, reason), n in sorted(reasons.items()):
            r.add_row(status, reason or "", str(n))
        console.print(r)
    if resumed:
        console.print(f"resumed: {resumed} inputs were already done")


def _print_gone(removed: int) -> None:
    """Outputs an earlier run wrote for inputs that have left INPUT since, removed (runner.stage)."""
    if removed:
        console.print(f"{removed} outputs of inputs gone from INPUT removed (an input withdrawn from INPUT leaves "
                      "OUTPUT too; put it back and run again to write it again)", markup=False, highlight=False)


def _print_findings(findings, title: str = "findings", limit: int = 200, more: str | None = None) -> None:
    """The first ``limit`` findings as a table; paths are folded, never cut. When the table is
    cut, ``more`` says where the whole list is (e.g. ``--report FILE``)."""
    f = Table(title=title)
    f.add_column("kind", no_wrap=True)
    f.add_column("where", overflow="fold")
    f.add_column("detail", overflow="fold")
    for x in findings[:limit]:
        f.add_row(Text(x.kind), Text(x.where), Text(x.detail))   # never read as markup
    console.print(f)
    if len(findings) > limit:
        console.print(f"... and {len(findings) - limit} more" + (f"; {more}" if more else ""), markup=False, highlight=False)


def _print_anonymize(s, executor: str | None = None) -> None:
    if s.key_created:
        console.print(f"created a new secret key (fingerprint {s.key_fingerprint}) at {s.key_path}; "
                      "keep it safe and private: the same key gives the same substitutes next time", markup=False)
    t = Table(title=f"vindr anonymize — profile {s.profile}, key {s.key_fingerprint}")
    t.add_column("status")
    t.add_column("files", justify="right")
    for status in ("ok", "quarantined", "duplicate", "skipped", "not-dicom", "failed"):
        if s.counts.get(status):
            t.add_row(status, str(s.counts[status]))
    t.add_row("[bold]total", f"[bold]{s.total}")
    if executor:
        t.add_row(Text("executor", style="dim"), Text(executor, style="dim"))
    console.print(t)
    _print_reasons(s.reasons, "not written, and why", s.resumed)
    _print_gone(s.gone_removed)
    if s.counts.get("ok"):
        # the custodian's count, which the demo once computed from the manifest (new-user walk 5)
        # an output without Pixel Data has nothing to scan: counted apart, so that "not scanned"
        # means pixels left unread (--burned-in off), not 51 stripped files of a DICOMDIR (new-user walk 6)
        unscanned = s.counts["ok"] - s.scanned - s.no_pixels
        scan = (f"{s.masked} of {s.counts['ok']} written images had boxes masked (burned-in text"
                + (f"; {s.no_pixels} without Pixel Data, nothing to scan" if s.no_pixels else "")
                + (f"; {unscanned} not scanned" if unscanned > 0 else "") + ")")
        console.print(f"pixels: {scan}; {s.pixels_modified} had their Pixel Data rewritten "
                      "(manifest: redactions, pixels_modified)", markup=False, highlight=False)
    console.print(f"manifest: {s.manifest}")
    if s.linkage:
        console.print(f"linkage (PHI, mode 0600, keep it away from the release): {s.linkage}")


@app.command()
def decode(
    input: Path = typer.Argument(..., help="A de-identified DICOM tree (e.g. vindr anonymize output; others need --allow-identified), a .zip, or one file. Only a vindr anonymize OUTPUT is named after its paths; any other INPUT by keyed hashes of them."),
    output: Path = typer.Argument(..., help="Folder for the images and images.parquet (not inside INPUT)."),
    size: Optional[str] = typer.Option(None, "--size", help="N: long side N, aspect kept; WxH: exact size. Default: full size."),
    window: str = typer.Option("header", "--window", help="header | minmax | percentile:LO,HI | C,W | kaggle."),
    window_index: int = typer.Option(0, "--window-index", help="Which of several header windows / VOI LUTs (0-based); an image with fewer uses its first (images.parquet: window_center, window_width, lut)."),
    bits: int = typer.Option(8, "--bits", help="8 or 16 bits per pixel."),
    fmt: str = typer.Option("png", "--format", help="png | npy."),
    resample: str = typer.Option("area", "--resample", help="area (box average) | lanczos."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto (cuda when nvImageCodec and a GPU are there)."),
    workers: int = typer.Option(0, "--workers", "-j", callback=_count, help="Worker processes (0: all cores)."),
    threads: int = typer.Option(0, "--threads", callback=_count, help="Decoder threads per worker (0: cores / workers)."),
    executor: str = typer.Option("local", "--executor", help="local: worker processes here (-j) | dask: a Dask cluster (--scheduler; README 'Cluster')."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler for --executor dask: tcp://HOST:PORT or tls://HOST:PORT (default $VINDR_SCHEDULER, read only with --executor dask)."),
    task_timeout: float = typer.Option(1800.0, "--task-timeout", help="Seconds one input may take before it becomes a failed row (its worker is killed; the local pool with -j > 1, or Dask; README 'Cluster')."),
    allow_identified: bool = typer.Option(False, "--allow-identified", help="Decode an INPUT that is not de-identified; outputs and rows are then named by keyed hashes, never by input paths."),
    rebuild_state: bool = typer.Option(False, "--rebuild-state", help="Set damaged state files (OUTPUT/.vindr) aside and process again the inputs they recorded."),
    max_inflate: int = typer.Option(256 << 20, "--max-inflate", help="Most bytes a deflated data set may inflate to, or a .zip member may declare (default 256 MiB)."),
    max_pixels: int = typer.Option(1 << 28, "--max-pixels", help="Most samples (rows x columns x frames x samples) an image may declare; refused before decoding (default 2^28)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any input failed, or if no input is DICOM."),
) -> None:
    """Decode and window radiographs (PS3.3 C.11) into PNG/npy images, with images.parquet."""
    from vindr_cli.pixels.batch import decode_tree
    from vindr_cli.pixels.resize import parse_size
    from vindr_cli.pixels.task import DecodeConfig
    from vindr_cli.runner.executor import default_workers
    from vindr_cli.runner.backend import open_executor

    n = workers or default_workers()
    spec = parse_size(size)          # a RequestError (exit 2 in main) when malformed
    cfg = DecodeConfig(output=str(output), size=spec, window=window, window_index=window_index,
                       bits=bits, fmt=fmt, resample=resample, device=device,
                       threads=threads or max(1, default_workers() // n), max_pixels=max_pixels,
                       max_inflate=max_inflate)
    try:
        with open_executor(executor, scheduler, input=input, output=output, task_timeout=task_timeout,
                           say=_note, waiting=_waiting) as ex:
            summary = decode_tree(input, output, cfg, workers=n, console=console, allow_identified=allow_identified,
                                  rebuild_state=rebuild_state, executor=ex)
    except KeyboardInterrupt:
        _interrupted("interrupted: finished images are kept; run the same command again to resume")
    t = Table(title="vindr decode")
    t.add_column("status")
    t.add_column("count", justify="right")
    for status in ("ok", "skipped", "not-dicom", "failed"):
        if summary.counts.get(status):
            t.add_row(status if status != "ok" else "ok (images)", str(summary.counts[status]))
    t.add_row("[bold]inputs", f"[bold]{summary.inputs}")
    _executor_row(t, ex, n)
    console.print(t)
    if summary.counts.get("ok", 0) > summary.inputs:     # 38 ok of 36 inputs puzzled a new user (walk 7)
        console.print("(ok counts images: each frame of a multi-frame file is an image of its own)", highlight=False)
    if summary.backends:
        console.print("decoders: " + ", ".join(f"{b} {n}" for b, n in summary.backends.most_common()))
    _print_reasons(summary.reasons, "not decoded, and why", summary.resumed)
    _print_gone(summary.gone_removed)
    console.print(f"images table: {summary.table}")
    for line in summary.warnings:
        err.print("[bold yellow]warning:[/] ", end="")
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if strict and (summary.counts.get("failed") or summary.warnings):
        raise typer.Exit(1)


@app.command("select")
def select_cmd(
    anon_dir: Path = typer.Argument(..., help="A de-identified tree: the OUTPUT of vindr anonymize (with its manifest.parquet)."),
    output: Path = typer.Option(..., "--output", "-o", help="SELECTION folder: selection.parquet/.json, recipe.toml, worklist.csv, dicom/."),
    recipe: str = typer.Option("vindr-cxr", "--recipe", help="vindr-cxr | vindr-spinexr, or a recipe TOML file."),
    n: Optional[int] = typer.Option(None, "--n", help="Exactly N images (default: the recipe's sampling.n, else every qualifying image)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling order."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV/Parquet with image_id,label for the recipe's sampling proportions."),
    workers: int = typer.Option(0, "--workers", "-j", callback=_count, help="Worker processes (0: all cores)."),
    rebuild_state: bool = typer.Option(False, "--rebuild-state", help="Set damaged state files (SELECTION/.vindr) aside and read again the images they recorded."),
    executor: str = typer.Option("local", "--executor", help="local: worker processes here (-j) | dask: a Dask cluster (--scheduler; README 'Cluster')."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler for --executor dask: tcp://HOST:PORT or tls://HOST:PORT (default $VINDR_SCHEDULER, read only with --executor dask)."),
    task_timeout: float = typer.Option(1800.0, "--task-timeout", help="Seconds one input may take before it becomes a failed row (its worker is killed; the local pool with -j > 1, or Dask; README 'Cluster')."),
    replace: bool = typer.Option(False, "--replace", help="Replace a selection SELECTION holds from another recipe, seed, --n or --labels (refused without it: its dicom/ and worklist.csv may be with the annotators)."),
) -> None:
    """Choose the images of a release: recipe criteria, pixel QC, near-duplicates, sampling; hand-off files."""
    from vindr_cli.curate.recipe import load_recipe
    from vindr_cli.curate.select import select
    from vindr_cli.runner.executor import default_workers
    from vindr_cli.runner.backend import open_executor

    spec = load_recipe(recipe)
    try:
        with open_executor(executor, scheduler, input=anon_dir, output=output, task_timeout=task_timeout,
                           say=_note, waiting=_waiting) as ex:
            s = select(anon_dir, output, spec, seed=seed, n=n, labels_path=labels, workers=workers or default_workers(),
                       console=console, rebuild_state=rebuild_state, executor=ex, replace=replace)
    except KeyboardInterrupt:
        _interrupted("interrupted: images read so far are kept; run the same command again to resume")
    t = Table(title=f"vindr select ({spec.name})")
    t.add_column("images")
    t.add_column("count", justify="right")
    t.add_row("[bold]selected", f"[bold]{s.selected}")
    for reason, k in sorted(s.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        t.add_row(Text(f"excluded: {reason}"), str(k))
    t.add_row("images (manifest rows ok)", str(s.images))
    _executor_row(t, ex, workers or default_workers())
    console.print(t)
    console.print("(an image may have several reasons; each is counted)", highlight=False)
    if s.resumed:
        console.print(f"resumed: {s.resumed} images were already read")
    d = s.dicoms
    console.print(f"dicom/: {d.get('linked', 0)} linked, {d.get('copied', 0)} copied, {d.get('kept', 0)} kept, "
                  f"{d.get('removed', 0)} removed", highlight=False)
    console.print(Text(f"selection table: {s.table}"))
    for line in s.warnings:
        err.print("[bold yellow]warning:[/] ", end="")
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if not s.selected and s.images and max(s.reasons.get("body-part-unknown", 0), s.reasons.get("view-unknown", 0)) == s.images:
        # new-user walk 4: --profile vindr removes both; "write a recipe" sent the user the wrong way
        err.print("[bold yellow]warning:[/] no image was selected: every image of ANON_DIR lacks the BodyPartExamined "
                  "or the ViewPosition the recipe reads (not in the export, or removed: the vindr profile removes both): "
                  "keep them (--profile basic), or use a recipe whose criteria do not need them (README 'vindr select')",
                  soft_wrap=True)
    elif not s.selected:
        err.print("[bold yellow]warning:[/] no image was selected (the table counts why): the presets take adult chest "
                  "or spine CR/DX radiographs; for other images write a recipe (--recipe FILE.toml, README "
                  "'vindr select')", soft_wrap=True)


@app.command()
def split(
    annotations: Path = typer.Argument(..., help="VinDr-CXR/Kaggle boxes, VinDr-CXR image labels or VinDr-SpineXR CSV (detected from the header)."),
    meta: Path = typer.Option(..., "--meta", help="anonymize manifest.parquet, or CSV/Parquet with image_id, study_id, patient_id [, rows, columns]."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for split.csv, split_report.json/.png, annotations.csv."),
    linkage: Optional[Path] = typer.Option(None, "--linkage", help="Linkage table: translate annotations keyed by the hospital's original UIDs into the release's ids."),
    preset: Optional[str] = typer.Option(None, "--preset", help="vindr-cxr (15,000/3,000 images) | vindr-spinexr (4,000/1,000 studies)."),
    test_size: Optional[str] = typer.Option(None, "--test-size", help="N units or a fraction F in (0, 1)."),
    unit: Optional[str] = typer.Option(None, "--unit", help="images | studies | patients (default images; a preset fixes it)."),
    seed: int = typer.Option(0, "--seed"),
    order: int = typer.Option(1, "--order", help="2: also balance label pairs (slower)."),
    count: str = typer.Option("images", "--count", help="images | readers: what a label's weight counts."),
    strict: bool = typer.Option(False, "--strict", help="Any bad annotation row is fatal (exit 1)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Label set (default: the form's published one): vinbigdata | vindr-cxr | vindr-spinexr, or a TOML file in the same form (schemas/labels/)."),
    selection: Optional[Path] = typer.Option(None, "--selection", help="Output of vindr select: split only its selected images (annotations of others are left out and counted)."),
) -> None:
    """Split annotated images into train/test: whole patients per side, multi-label stratified, exact size."""
    from vindr_cli.release import render_split_report
    from vindr_cli.release.handoff import run_split

    for path, what in ((annotations, "ANNOTATIONS"), (meta, "--meta"), (linkage, "--linkage")):
        if path is not None and not path.is_file():
            _fail(f"{what} file does not exist")
    result, notes = run_split(annotations, meta, output, linkage=linkage, preset=preset, test_size=test_size,
                              unit=unit, seed=seed, strict=strict, order=order, count=count, labels=labels,
                              selection=selection)
    for note in notes:
        console.print(note, markup=False, highlight=False)
    render_split_report(result, console)


@app.command()
def release(
    anon_dir: Path = typer.Argument(..., help="The anonymized tree (output of vindr anonymize)."),
    split_dir: Path = typer.Option(..., "--split", help="Output folder of vindr split."),
    output: Path = typer.Option(..., "--output", "-o", help="The release folder to create (must not exist)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Output of vindr decode on ANON_DIR: decoded images go in, COCO/YOLO boxes follow them."),
    fuse_readers: bool = typer.Option(False, "--fuse-readers", help="Fuse reader boxes (WBF, IoU 0.4) in the COCO/YOLO exports."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Label set (default: the one vindr split recorded in DIR/labels.json): vinbigdata | vindr-cxr | vindr-spinexr, or a TOML file in the same form (schemas/labels/)."),
    selection: Optional[Path] = typer.Option(None, "--selection", help="Output of vindr select: release only its selected images (others, and their annotations, are left out and counted); its recipe goes in the datasheet."),
    multiframe: Optional[str] = typer.Option(None, "--multiframe", help="first | every | exclude: a multi-frame image as frame 0, as one image per frame (<image_id>_<frame>), or not at all. Default: the selection's policy, else first."),
    audit_report: Optional[Path] = typer.Option(None, "--audit-report", help="The JSON of vindr audit ANON_DIR --report FILE.json, of ANON_DIR as it is now (a report of another tree or state is refused): its status goes in the datasheet (else: not audited)."),
    licence: Optional[str] = typer.Option(None, "--licence", help="Licence the datasheet states (default: not set, which the datasheet says the custodian must choose)."),
    review: Optional[Path] = typer.Option(None, "--review", help="The folder vindr review ran on (default: the selection, else ANON_DIR, when it holds decisions)."),
    allow_unreviewed: bool = typer.Option(False, "--allow-unreviewed", help="Release even while flagged images are undecided in vindr review (the datasheet says so)."),
    accept_audit_findings: bool = typer.Option(False, "--accept-audit-findings", help="Release although --audit-report has findings (the datasheet records it, with their counts by kind). Without it such a report is refused."),
) -> None:
    """Materialise the release: train/ and test/ with DICOM (and images), annotations in VinDr CSV, Kaggle, COCO and YOLO forms, and a datasheet."""
    from vindr_cli.release.build import build_release

    s = build_release(anon_dir, split_dir, output, images_dir=images, fuse_readers=fuse_readers, labels=labels,
                      selection=selection, multiframe=multiframe, audit_report=audit_report, licence=licence,
                      review=review, allow_unreviewed=allow_unreviewed, accept_audit_findings=accept_audit_findings)
    if s.bad_rows:
        err.print(f"[bold yellow]warning:[/] {len(s.bad_rows)} annotation row(s) of the split left out:")
        for b in s.bad_rows.rows[:20]:
            err.print(f"  {b}", markup=False, highlight=False)
    t = Table(title=f"vindr release -> {output}")
    t.add_column("split")
    t.add_column("images", justify="right")
    t.add_column("boxes (COCO)", justify="right")
    for side in ("train", "test"):
        t.add_row(side, str(s.images.get(side, 0)), str(s.boxes.get(side, 0)))
    console.print(t)
    console.print(f"{s.linked} files hard-linked, {s.copied} copied; label set {s.label_set or '-'}; "
                  f"datasheet: {output / 'README.md'}", markup=False, highlight=False)
    for reason, n in sorted(s.dropped.items()):
        console.print(f"left out: {n} image(s) of the split, {reason}", markup=False, highlight=False)
    for reason, n in sorted(s.dropped_rows.items()):
        console.print(f"left out: {n} annotation row(s), {reason}", markup=False, highlight=False)
    for reason, n in sorted(s.not_split.items()):
        console.print(f"left out: {n} selected image(s) not in the split, {reason}", markup=False, highlight=False)
    mf = s.multiframe
    if mf.get("images"):
        console.print(f"multi-frame: {mf['images']} image(s), policy {mf['policy']} ({mf['source']}): "
                      f"{mf['frames_released']} frame(s) released, {mf['excluded']} excluded", markup=False, highlight=False)
    console.print(f"audit: {s.audit}; licence: {s.licence}", markup=False, highlight=False)
    rv = s.review
    console.print("review: " + ("not reviewed" if rv["status"] == "not reviewed" else
                                f"{rv['decided']} flagged image(s) decided, {rv['undecided']} undecided"
                                + (" (--allow-unreviewed)" if rv["undecided"] else "")
                                + f"; left out: {rv['excluded']} excluded, {rv['more_redaction']} for more redaction"),
                  markup=False, highlight=False)
    for line in s.warnings:
        err.print("[bold yellow]warning:[/] ", end="")
        err.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def validate(
    release_dir: Path = typer.Argument(..., help="A release written by vindr release."),
    no_hash: bool = typer.Option(False, "--no-hash", help="Skip re-hashing every DICOM file's pixel data."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Check classes against this label set instead of the release's labels.json: vinbigdata | vindr-cxr | vindr-spinexr, or a TOML file in the same form (schemas/labels/)."),
    near_duplicates: bool = typer.Option(True, "--near-duplicates/--no-near-duplicates", help="Decode every image for its perceptual hash (the one vindr select uses) and report near-duplicates on both sides."),
) -> None:
    """Check a release: schemas, images exist, boxes in bounds, known classes, no leakage between sides. Exit 1 on any finding."""
    from vindr_cli.release.validate import validate_release

    if not release_dir.is_dir() or not (release_dir / "images.csv").is_file():
        _fail("RELEASE is not a release folder (no images.csv; build one with vindr release)")
    rep = validate_release(release_dir, check_hashes=not no_hash, labels=labels, near_duplicates=near_duplicates)
    t = Table(title="vindr validate")
    t.add_column("checked")
    t.add_column("count", justify="right")
    t.add_row("images", str(rep.images))
    t.add_row("boxes (CSV)", str(rep.boxes))
    t.add_row("pixel hashes re-computed", str(rep.checked_hashes))
    if near_duplicates:
        t.add_row("perceptual hashes (undecodable)", f"{rep.perceptual_hashes} ({rep.unhashable})")
    t.add_row("[bold]findings", f"[bold]{len(rep.findings)}")
    console.print(t)
    if rep.findings:
        _print_findings(rep.findings)
        raise typer.Exit(1)
    console.print("[green]no findings[/]")


@app.command()
def baseline(
    release_dir: Path = typer.Argument(..., help="A release written by vindr release."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for report.json/.md, pr_curves.png, examples.png, test_predictions.csv (for vindr evaluate --pred), weights, checkpoints."),
    task: str = typer.Option("both", "--task", help="detect | classify | both (shared backbone)."),
    size: int = typer.Option(1024, "--size", help="Training image size (long side, letterboxed)."),
    epochs: int = typer.Option(30, "--epochs"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    seed: int = typer.Option(0, "--seed"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Default 16."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Default 2e-3 x batch/16 (AdamW, cosine)."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Stop training after this many seconds, then evaluate."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over even if OUTPUT holds a checkpoint."),
    workers: int = typer.Option(0, "--workers", "-j", callback=_count, help="Decode workers when the release has no decoded images (0: all cores)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Label set (default: the release's labels.json): vinbigdata | vindr-cxr | vindr-spinexr, or a TOML file in the same form (schemas/labels/)."),
    model: str = typer.Option("tiny", "--model", help="Model preset (schemas/baseline/models.toml): tiny (CPU default) | small | base (GPU, 1024 px, bf16)."),
) -> None:
    """Train a small detector + normal/abnormal classifier on train/, evaluate on test/, and judge whether the release is learnable. Exit 1 on a failing verdict."""

    try:
        import torch  # noqa: F401
    except ImportError:
        _fail("vindr baseline needs PyTorch: pip install 'vindr[baseline]' "
              "(on CPU-only machines install torch==2.13.0 first)")
    import shlex

    from vindr_cli.baseline.presets import resolve_model
    from vindr_cli.baseline.release_data import release_samples, release_submission
    from vindr_cli.baseline.train import CheckpointMismatch, train_baseline
    from vindr_cli.runner.pool import default_workers

    if task not in ("detect", "classify", "both"):
        _fail("--task must be detect, classify or both")
    if size < 32 or epochs < 1 or (batch_size is not None and batch_size < 1) or (lr is not None and lr <= 0) \
            or (time_budget is not None and time_budget <= 0):
        _fail("--size must be >= 32, --epochs and --batch-size >= 1, --lr and --time-budget > 0")
    if device not in ("auto", "cpu", "cuda"):
        _fail("--device must be auto, cpu or cuda")
    resolve_model(model)   # an unknown preset: exit 2 before the release is read
    try:
        train, test, classes, source = release_samples(release_dir, cache=output / "decoded", size=size,
                                                       workers=workers or default_workers(), labels=labels)
        console.print(f"{len(train)} train and {len(test)} test images ({source}); {len(classes)} classes")
        spec, eval_args = release_submission(release_dir, classes, labels)
        rep = train_baseline(train, test, classes, task=task, size=size, epochs=epochs, batch_size=batch_size,
                             lr=lr, device=device, seed=seed, out_dir=output, time_budget_s=time_budget,
                             resume=not no_resume, model=model, submission=spec,
                             progress=lambda m: console.log(m, markup=False, highlight=False))
    except CheckpointMismatch:
        _fail("OUTPUT holds a checkpoint from a run with other options: add --no-resume to start over, "
              "or choose another -o folder")
    r = rep.run
    t = Table(title=f"vindr baseline — verdict: {rep.verdict.upper()}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    if rep.detection:
        for name, value in (("mAP@0.4 (VOC, test)", rep.map40), ("mAP@0.5 (VOC, test)", rep.map50)):
            # None: no class has a box in test (all "No finding", hostile11: a TypeError, exit 3)
            t.add_row(name, "n/a (no test box)" if value is None else f"{value:.3f}")
    if rep.classification and rep.auroc is not None:
        ci = rep.classification.get("auroc_ci95") or [float("nan")] * 2
        t.add_row("AUROC normal/abnormal (95% CI)", f"{rep.auroc:.3f} ({ci[0]:.3f}-{ci[1]:.3f})")
    t.add_row("device", r.device if r.device_name in ("", r.device) else f"{r.device} ({r.device_name})")
    t.add_row("model", r.model)
    t.add_row("epochs done", f"{r.epochs_done}/{r.epochs}{' (time budget)' if r.stopped_by_budget else ''}")
    if r.train_images_per_s:
        t.add_row("train images/s", f"{r.train_images_per_s:.1f}")
    console.print(t)
    s = Table(title="sanity checks")
    for c in ("check", "status", "message"):
        s.add_column(c)
    for c in rep.sanity:
        s.add_row(c["check"], c["status"], c["message"])
    console.print(s)
    console.print(f"report: {output / 'report.md'}", markup=False, highlight=False)
    console.print(f"test predictions (Kaggle submission form, DICOM pixels): {output / 'test_predictions.csv'}; "
                  f"score them with: vindr evaluate {eval_args} --pred {shlex.quote(str(output / 'test_predictions.csv'))}",
                  markup=False, highlight=False, soft_wrap=True)
    if rep.verdict == "fail":
        raise typer.Exit(1)


@app.command()
def evaluate(
    gt: Path = typer.Option(..., "--gt", help="Ground truth: VinDr-CXR/Kaggle train.csv or VinDr-SpineXR CSV."),
    pred: Path = typer.Option(..., "--pred", help="Kaggle submission (image_id,PredictionString) or one box per row."),
    iou: float = typer.Option(0.4, "--iou", help="IoU threshold; a match needs IoU > this (VOC, VinBigData)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    fuse_readers: bool = typer.Option(False, "--fuse-readers", help="Fuse the readers' boxes per class (WBF, IoU >= 0.4)."),
    coco: bool = typer.Option(False, "--coco", help="Also report COCO AP@[.5:.95] (pycocotools-style)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse to score if any row is malformed (exit 1)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Label set (default: RELEASE/labels.json for a GT in RELEASE/annotations/, else the GT form's published one): vinbigdata | vindr-cxr | vindr-spinexr, a TOML file in the same form (schemas/labels/), or a release's labels.json."),
) -> None:
    """Score detections: PASCAL VOC 2010 all-point mAP at IoU > 0.4 per class (VinBigData convention)."""
    from vindr_cli.evaluate import evaluate as run
    from vindr_cli.evaluate import render, to_json

    result = run(gt, pred, iou=iou, fuse_readers=fuse_readers, coco=coco, strict=strict, labels=labels)
    if as_json:
        typer.echo(to_json(result))
    else:
        render(result, console)


@app.command()
def info(
    path: Path = typer.Argument(..., help="An export: folder, .zip, DICOMDIR media or one file."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    workers: int = typer.Option(0, "--workers", "-j", callback=_count, help="Worker processes (0: all cores)."),
    executor: str = typer.Option("local", "--executor", help="local: worker processes here (-j) | dask: a Dask cluster (--scheduler; README 'Cluster')."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler for --executor dask: tcp://HOST:PORT or tls://HOST:PORT (default $VINDR_SCHEDULER, read only with --executor dask)."),
    task_timeout: float = typer.Option(1800.0, "--task-timeout", help="Seconds one input may take before it becomes a failed row (its worker is killed; the local pool with -j > 1, or Dask; README 'Cluster')."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any input failed, or if PATH holds no file or no DICOM file."),
) -> None:
    """Summarise an export: files, DICOM or not, patients, studies, series, modalities, syntaxes, sizes."""
    from vindr_cli.info import render, to_json
    from vindr_cli.info.scan import scan
    from vindr_cli.runner.executor import default_workers
    from vindr_cli.runner.backend import open_executor

    if not path.exists():
        _fail("PATH does not exist")
    with open_executor(executor, scheduler, input=path, task_timeout=task_timeout, say=_note, waiting=_waiting) as ex:
        summary, warnings = scan(path, workers=workers or default_workers(), console=err if as_json else console,
                                 executor=ex)
    if as_json:
        typer.echo(to_json(summary))
    else:
        render(summary, console)
        console.print(f"executor: {_executor(ex, workers or default_workers())}", markup=False, highlight=False)
    for line in warnings:
        err.print("[bold yellow]warning:[/] ", end="")
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if strict and (warnings or summary.get("failed")):     # as anonymize and decode --strict (README)
        raise typer.Exit(1)


def _not_a_tree(folder: Path) -> str | None:
    """What a folder audit is pointed at is, when it is another stage's output, not a tree:
    a release (images.csv, datasheet.json) or a selection (selection.json, selection.parquet).
    Audited as it is, each of its files was a finding with no word of why (new-user walk 5)."""
    if (folder / "manifest.parquet").exists():
        return None
    if (folder / "images.csv").is_file() and (folder / "datasheet.json").is_file():
        return "a vindr release"
    if (folder / "selection.json").is_file() and (folder / "selection.parquet").is_file():
        return "a vindr select output"
    return None


@app.command()
def audit(
    output: Path = typer.Argument(..., help="An anonymized tree written by `vindr anonymize`."),
    linkage: Optional[Path] = typer.Option(None, "--linkage", help="Linkage table to search for original values (default: <OUTPUT>.linkage.parquet beside OUTPUT, when present)."),
    as_json: bool = typer.Option(False, "--json", help="Print counts and every finding as JSON instead of tables."),
    report_file: Optional[Path] = typer.Option(None, "--report", metavar="FILE", help="Write every finding to FILE (.json: as --json; else tab-separated). Not inside OUTPUT."),
    pixels: bool = typer.Option(True, "--pixels/--no-pixels", help="Read every frame of every image for burned-in text (OCR; on by default) and report readable text that is not an allowed marker, and any change inside the anonymizer's masks, with frame and box, never the text. --no-pixels checks headers, paths and hashes only."),
    locate: bool = typer.Option(False, "--locate", help="Also print, to this terminal only (stderr), the real path of each finding shown as <name N> or (withheld), so the file can be found and removed. Never written to --report or --json."),
    workers: int = typer.Option(0, "--workers", "-j", callback=_count, help="Worker processes (0: all cores)."),
    executor: str = typer.Option("local", "--executor", help="local: worker processes here (-j) | dask: a Dask cluster (--scheduler; README 'Cluster')."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler for --executor dask: tcp://HOST:PORT or tls://HOST:PORT (default $VINDR_SCHEDULER, read only with --executor dask)."),
    task_timeout: float = typer.Option(1800.0, "--task-timeout", help="Seconds one input may take before it becomes a not-audited finding (its worker is killed; the local pool with -j > 1, or Dask; README 'Cluster')."),
) -> None:
    """Scan an anonymized tree for residual PHI before it leaves the hospital. Exit 1 on any finding."""
    from vindr_cli.deid.audit import audit as run
    from vindr_cli.deid.linkage import default_linkage_path
    from vindr_cli.errors import FindingsError, RequestError
    from vindr_cli.runner.backend import open_executor
    from vindr_cli.runner.executor import default_workers

    if not output.is_dir():
        raise RequestError("OUTPUT is not a folder")
    link = linkage or default_linkage_path(output)
    if linkage is not None and not linkage.is_file():
        raise RequestError("--linkage file does not exist")
    if report_file is not None:
        rp = report_file.resolve()
        if rp == output.resolve() or output.resolve() in rp.parents:
            raise RequestError("--report FILE must not be inside OUTPUT (it would become part of the release)")
        if not rp.parent.is_dir():
            raise RequestError("--report FILE: its folder does not exist")
    kind = _not_a_tree(output)
    if kind:
        err.print(f"[bold yellow]warning:[/] OUTPUT is {kind}, not a vindr anonymize OUTPUT: audit the tree it was "
                  "made from (vindr audit ANON_DIR --report FILE.json; the release's datasheet records that report); "
                  "here its own tables and images are findings (stray-file, unreadable, missing manifest)",
                  soft_wrap=True)
    if not link.is_file():
        err.print("[bold yellow]warning:[/] no linkage table found, so no original value can be searched for; "
                  "only structural checks run. Pass --linkage FILE for a full audit.", soft_wrap=True)
    from vindr_cli.runner.pool import progress_bar

    # the executor first: its connect spinner and the progress bar are each a live display (one at a time)
    with open_executor(executor, scheduler, input=output, task_timeout=task_timeout, say=_note, waiting=_waiting,
                       secret="the linkage table" if link.is_file() else None) as ex:
        with progress_bar(err, transient=True) as bar:     # on stderr: --json output stays clean
            task = bar.add_task("audit", total=None, rate="")
            report = run(output, link if link.is_file() else None, pixels=pixels,
                         progress=lambda done, total: bar.update(task, completed=done, total=total),
                         executor=ex, workers=workers or default_workers())
    n = len(report.findings)
    if report_file is not None:
        text = report.to_json() + "\n" if report_file.suffix.lower() == ".json" else report.to_tsv()
        try:
            report_file.write_text(text, encoding="utf-8")
        except OSError as exc:     # this one write only: a path the user chose
            raise RequestError(f"--report FILE cannot be written ({type(exc).__name__})") from None
    if as_json:
        typer.echo(report.to_json())
    else:
        t = Table(title="vindr audit")
        t.add_column("checked")
        t.add_column("count", justify="right")
        t.add_row("files", str(report.files))
        t.add_row("DICOM files", str(report.dicom_files))
        t.add_row("original values searched", str(report.terms) if report.linkage else "none (no linkage table)")
        for kind, k in report.counts().items():
            t.add_row(f"findings: {kind}", str(k))
        t.add_row("[bold]findings", f"[bold]{n}")
        _executor_row(t, ex, workers or default_workers())
        console.print(t)
        if n:
            _print_findings(report.findings, more=f"--report FILE lists all {n}" if report_file is None
                            else f"all {n} are in {report_file}")
        else:
            console.print("[green]no findings[/]")
    if report_file is not None and not as_json:
        console.print(f"report: {report_file}", markup=False, highlight=False)
    if locate:      # the custodian's own terminal only: real names, never in a file vindr writes
        from vindr_cli.runner.sources import printable

        for shown, real in report.locations():
            real = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in printable(real))
            err.print(Text(f"{shown} = OUTPUT/{real}"), highlight=False, soft_wrap=True)
    if n:
        raise FindingsError(f"{n} finding{'s' if n != 1 else ''}: the tree must not leave the hospital as it is")


@app.command()
def push(
    selection: Path = typer.Argument(..., help="A folder written by `vindr select` (selection.parquet + dicom/)."),
    dicomweb: str = typer.Option(..., "--dicomweb", metavar="URL", help="The server's DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web (Orthanc). No credentials in it."),
    user: Optional[str] = typer.Option(None, "--user", help="HTTP Basic user (default $VINDR_DICOMWEB_USER); the password is read from $VINDR_DICOMWEB_PASSWORD only, and never printed."),
    batch: int = typer.Option(20, "--batch", help="Files per STOW-RS request (at most 64 MiB each)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the server on each request; an unreachable server fails the rest of the run without more waits."),
) -> None:
    """Store the selected images in a PACS by STOW-RS (DICOMweb); SELECTION/push.parquet says per file stored | already | failed. Exit 1 when any failed."""
    from vindr_cli.curate.push import PASSWORD_ENV, USER_ENV, push_selection
    from vindr_cli.errors import FindingsError
    from vindr_cli.runner.pool import progress_bar

    import time

    user = user if user is not None else (os.environ.get(USER_ENV) or None)
    start = time.monotonic()
    with progress_bar(console) as bar:
        task = bar.add_task("push", total=None, rate="")
        summary = push_selection(selection, dicomweb, user=user, password=os.environ.get(PASSWORD_ENV),
                                 batch_size=batch, timeout=timeout,
                                 progress=lambda done, total: bar.update(
                                     task, completed=done, total=total,
                                     rate=f"{done / max(time.monotonic() - start, 1e-6):.1f} files/s"))
    t = Table(title="vindr push")
    t.add_column("status")
    t.add_column("files", justify="right")
    for status in ("stored", "already", "failed"):
        if summary.counts.get(status):
            t.add_row(status, str(summary.counts[status]))
    t.add_row("[bold]selected", f"[bold]{summary.total}")
    console.print(t)
    _print_reasons({k: n for k, n in summary.reasons.items() if k[0] == "failed"}, "not stored, and why", 0)
    console.print(f"server: {summary.url}  ({summary.requests} requests, {summary.bytes_sent / 1e6:.1f} MB sent)", markup=False, highlight=False)
    console.print(f"push table: {summary.table}", markup=False, highlight=False)
    if summary.failed:
        raise FindingsError(f"{summary.failed} of {summary.total} selected files are not on the server "
                            "(push.parquet says why); the same command retries them")


@app.command()
def review(
    review_dir: Path = typer.Argument(..., help="A de-identified tree (vindr anonymize OUTPUT) or a SELECTION folder (vindr select output)."),
    tree: Optional[Path] = typer.Option(None, "--tree", help="The de-identified tree of a SELECTION (default: the folder beside it whose manifest.parquet selection.json names by hash)."),
    audit_report: Optional[Path] = typer.Option(None, "--audit-report", help="The JSON of vindr audit --report: its pixel findings make the residual-text queue."),
    spot: int = typer.Option(20, "--spot", callback=_count, help="Untouched images in the spot-check queue (a seeded random sample)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the spot-check sample."),
    port: int = typer.Option(0, "--port", callback=_port, help="Port on 127.0.0.1 (0: a free one)."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Who decides: written with each decision."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL only; do not open a browser."),
    whole_tree: bool = typer.Option(False, "--whole-tree", help="Of a SELECTION, queue every image of its table, the ones it excluded too (default: the selected images, those the review excluded, and the near-duplicates of a selected image)."),
) -> None:
    """A local web page (127.0.0.1, a token in the URL) to confirm redactions, QC flags and duplicates; decisions go to DIR/.vindr/review.parquet. Ctrl-C stops it."""
    from vindr_cli.review.server import serve

    def ready(url, srv, app):
        t = Table(title=f"vindr review -> {review_dir}")
        t.add_column("queue")
        t.add_column("images", justify="right")
        t.add_column("undecided", justify="right")
        state = app.state()
        for q, p in state["progress"].items():
            t.add_row(q, str(p["total"]), str(p["total"] - p["decided"]))
        console.print(t)
        console.print(f"open: {url}", markup=False, highlight=False, soft_wrap=True)
        console.print("the URL holds the access token: do not share it. Ctrl-C stops the server.", markup=False, highlight=False)

    import signal

    # Ctrl-C (SIGINT) and SIGTERM stop the server, even when it was started from a shell or a
    # test run in the background, where SIGINT is inherited ignored (POSIX, no job control)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    serve(review_dir, port=port, reviewer=reviewer, tree=tree, audit_report=audit_report, spot=spot, seed=seed,
          open_browser=not no_browser, ready=ready, whole_tree=whole_tree)


def app_for(argv: list[str]) -> typer.Typer:
    """The app to run for these arguments: when the first one names a command exactly, a copy
    of ``app`` with only that command registered, so that typer builds one command's options
    (from its signature) instead of all twelve; otherwise ``app`` itself (``vindr --help``,
    ``--version``, a misspelt command with its suggestions). The command, its options, help
    and errors are the same objects either way (tests/test_cli_params.py compares them)."""
    import copy

    from typer.main import get_command_name

    if not argv or argv[0].startswith("-"):
        return app
    named = [c for c in app.registered_commands
             if (c.name or get_command_name(c.callback.__name__)) == argv[0]]
    if len(named) != 1 or app.registered_groups:
        return app
    one = copy.copy(app)
    one.registered_commands = named
    return one


CLOSED_STREAM = ("error: {name} is closed: vindr writes its summary, warnings and next steps there; "
                 "send it to a file or /dev/null instead (> FILE, 2> FILE)")


def refuse_closed_streams() -> None:
    """A command started with stdout or stderr closed (``vindr info X >&-``: Python then has
    ``sys.stdout is None``, and rich and Click drop every line silently) printed nothing and
    exited 0 -- an info, an audit's findings or a refusal lost without a sign. It is a request
    that cannot run: exit 2 before anything is read or written, as ``cat`` fails on a closed
    stdout (new-user walk 5). The one line goes to the stream still open, if any."""
    from vindr_cli.errors import EXIT_REQUEST

    closed = [name for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)) if stream is None]
    if not closed:
        return
    if sys.stderr is not None:
        sys.stderr.write(CLOSED_STREAM.format(name=closed[0]) + "\n")
    raise SystemExit(EXIT_REQUEST)


def main() -> None:
    refuse_closed_streams()
    from vindr_cli.startup import one_blas_thread

    one_blas_thread(command=sys.argv[1] if len(sys.argv) > 1 else None)   # before numpy (issue 13)
    from vindr_cli.dicomio.quiet import quiet_pydicom_when_imported

    quiet_pydicom_when_imported()    # pydicom is imported only by a command that reads DICOM
    from vindr_cli.dicomio.lazy import defer_pydicom_backends

    defer_pydicom_backends()         # its codecs, GDCM, Pillow, downloader: loaded on first use
    previous = stop_on_sigterm()
    try:
        _run_app()
    finally:
        _restore_sigterm(previous)


def _run_app() -> None:
    from vindr_cli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, VindrError

    try:
        app_for(sys.argv[1:])()        # only the command asked for is built (start-up, issue 13)
    except SystemExit as exc:
        if exc.code == 1 and type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            closed_pipe()              # Click's own EPIPE path (typer.echo of --json): exit 1 there
        if exc.code == EXIT_INTERRUPTED and not _INTERRUPT_SAID:
            # typer turns Ctrl-C into a silent Exit(130): audit, split, release, baseline... said nothing
            err.print(INTERRUPTED, markup=False, highlight=False, soft_wrap=True)
        if exc.code == EXIT_INTERRUPTED and len(_TERMINATED) > 1:
            sys.exit(EXIT_TERMINATED)
        raise
    except KeyboardInterrupt:  # pragma: no cover
        err.print("interrupted: finished work is kept; run the same command again to resume")
        sys.exit(EXIT_TERMINATED if len(_TERMINATED) > 1 else EXIT_INTERRUPTED)
    except VindrError as exc:
        # the one place where vindr's errors become messages and exit codes (see errors.py)
        for line in exc.details:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        if str(exc):
            err.print("[bold red]error:[/] ", end="")
            err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        # A traceback would print local values: file content, paths, names. Never by default.
        if os.environ.get("VINDR_DEBUG") == "1":
            raise
        err.print(f"internal error ({type(exc).__name__}); details withheld because they may hold PHI. "
                  "Set VINDR_DEBUG=1 to see the traceback on a machine where that is safe.", highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERNAL)
