"""One runner for every batch stage (anonymize, decode, info): :func:`run_stage`.

The runner owns, for every stage, in the driver process:

* the settings check and refusal (``OUTPUT/.vindr/<stage>.json``; nothing is written
  until the request is known to run, then :meth:`Stage.prepare` may create what the
  workers need, e.g. a key file);
* discovery, the journal(s) and resume: an input is skipped when every table holds its
  rows, none of them ``failed``, and every ``ok`` row's output file is intact
  (:meth:`Stage.verify`); failed inputs are tried again;
* the ONE rename policy: workers write temporary files under ``OUTPUT/.vindr/tmp``; only
  the driver renames them into place (:meth:`Run.rename`), then journals the input. The
  driver is the single writer of journals, tables and final names;
* the progress bar, the tallies (counts per status, reasons) and warnings (no input, or
  no DICOM input), and the final tables (temp name, then rename, in discovery order),
  streamed from where the rows lie (:mod:`.rowstore`: the driver holds no row dicts, only
  a key and an integer per input; a bounded batch while writing).

A stage supplies only what differs (:class:`Stage`): its settings, its per-input task and
worker setup (module-level functions, run through an :class:`~vindr_cli.runner.executor.Executor`),
how inputs are keyed, its tables, and how a result is placed. Adding a stage is one new
subclass; adding an executor is one new ``Executor`` class.
"""
from __future__ import annotations

import errno
import os
import queue
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from vindr_cli.atomic import remove_stale_parts
from vindr_cli.runner.discover import STATE_DIR, discover
from vindr_cli.runner.executor import (TIMED_OUT, Executor, InProcessExecutor, ItemFailed, ProcessExecutor,
                                       make_executor)
from vindr_cli.runner.faults import named_faults
from vindr_cli.runner.lock import OutputLock
from vindr_cli.runner import paths
from vindr_cli.runner.pool import progress_bar
from vindr_cli.runner.sources import Source
from vindr_cli.runner.state import Settings, StageState, StateDamaged, output_intact
from vindr_cli.tables import WrittenRows

NOT_DICOM = "not-dicom"


def tmp_dir(output: Path) -> Path:
    """Where workers write; the driver renames from here into place."""
    return output / STATE_DIR / "tmp"


@dataclass(frozen=True)
class Table:
    """A table a stage produces. ``schema`` None: kept in memory only (not journaled or
    written). ``journal`` None: ``OUTPUT/.vindr/<stage>.journal.jsonl``."""

    name: str
    schema: str | None = None
    path: Path | None = None
    journal: Path | None = None
    mode: int = 0o644
    journal_stage: str | None = None     # the <stage> in the default journal file name


@dataclass
class Survey:
    """A first pass over the inputs before a stage's work (:meth:`Stage.survey`), through the
    same executor: ``task(setup(config), source)`` for every one of ``sources`` (``setup``
    once per worker; module-level functions, pickled like the stage's), each result handed
    to ``take(source, result)`` in the driver (an :class:`~vindr_cli.runner.executor.ItemFailed`
    for one the executor could not finish). Nothing of it is journaled or stored: a re-run
    recomputes it. ``label``: the progress bar's. ``more``: asked once this pass is done, a
    further pass to run (None: none), e.g. over the inputs that what this one found makes
    needed."""

    task: Callable[[Any, Any], Any]
    setup: Callable[[Any], Any]
    config: Any
    sources: Sequence[Source]
    take: Callable[[Source, Any], None]
    label: str = "survey"
    more: Callable[[], "Survey | None"] | None = None


@dataclass
class StageSummary:
    inputs: int = 0
    resumed: int = 0
    counts: Counter = field(default_factory=Counter)     # rows of the primary table per status
    reasons: Counter = field(default_factory=Counter)    # (status, reason) for rows not ok
    warnings: list[str] = field(default_factory=list)    # PHI-free lines for the user
    gone_removed: int = 0                                # outputs of inputs gone from INPUT, removed (_remove_gone)
    # every table, discovery order: a journaled table as its written file, read back when
    # iterated (tables.WrittenRows); a table kept in memory as a list
    rows: dict[str, Any] = field(default_factory=dict)


class Stage:
    """What a stage supplies to :func:`run_stage`. Override what differs."""

    name: str = "stage"                 # settings file name and progress label
    task: Callable[[Any, Any], Any]     # module-level: task(ctx, source) -> result (never raises for bad input)
    setup: Callable[[Any], Any]         # module-level: setup(config) -> ctx, once per worker
    output: Path | None = None          # None: the stage writes nothing (no settings, no journal)
    primary: str = "rows"               # the table whose statuses are tallied
    compared: tuple[str, ...] = ()      # settings a re-run must repeat
    ok_status: str = "ok"
    rebuild_state: bool = False         # --rebuild-state: damaged state files are set aside, not refused
    # the primary table's ``output`` is a file this stage wrote under OUTPUT: removed once its
    # input has left INPUT (_remove_gone); False where ``output`` names something else (select
    # copies the anonymize manifest's, a path in ANON_DIR)
    owns_outputs: bool = False

    # --- what the stage is asked to do ------------------------------------------------
    def config(self) -> Any:
        """The worker config (pickled once per worker: no secret in it)."""
        return None

    def settings(self) -> dict[str, Any]:
        return {}

    def explain(self, name: str, old: Any, new: Any) -> str | None:
        """A better message for a refused setting (None: the generic one)."""
        return None

    def tables(self) -> list[Table]:
        """Tables in journal order (an input's rows go to each, in this order)."""
        return [Table(self.primary)]

    def key(self, src: Source) -> str:
        return src.rel

    # --- hooks ---------------------------------------------------------------------------
    def settings_lost(self, previous: dict[str, dict[str, list[dict]]]) -> None:
        """OUTPUT has no (intact) settings file. Default: refuse when earlier results exist,
        since they cannot be checked against this request (a stage whose outputs record
        their own settings overrides this with a check of the outputs)."""
        if any(previous.values()):
            raise StateDamaged(f"OUTPUT holds results of an earlier {self.name} run but no intact settings file "
                               f"(.vindr/{self.name}.json): they cannot be checked against this request; "
                               "use a new OUTPUT folder")

    def prepare(self) -> None:
        """The request will run: create what workers read (after the settings check)."""

    def begin(self, run: Run) -> None:
        """Previous rows are loaded (``run.done``); work is about to start."""

    def place(self, run: Run, src: Source, result: Any) -> list[tuple[str, dict[str, list[dict]]]]:
        """Put a finished input's files in place; return ``[(input key, {table: rows})]``
        to journal (a stage may re-journal an earlier input, e.g. a duplicate's loser).
        Default: ``result`` is ``{"rows": {table: rows}, "files": [(tmp, final rel)]}``; a
        final name the path guard refuses makes the input ``failed`` (:meth:`failed`)."""
        try:
            run.place_all(result.get("files", ()))
        except paths.PathViolation as exc:
            return [(run.keys[src.rel], self.unplaced(result["rows"], exc.reason))]
        return [(run.keys[src.rel], result["rows"])]

    def unplaced(self, rows: dict[str, list[dict]], reason: str) -> dict[str, list[dict]]:
        """An input's rows once its outputs could not be placed: one ``failed`` row per
        table (the first row's identity, no output), with the guard's fixed reason."""
        return {t: [{**rs[0], "status": "failed", "reason": reason, "output": None}] for t, rs in rows.items() if rs}

    def failed(self, src: Source, reason: str) -> Any:
        """The result of ``task`` for an input the executor could not finish (e.g. its worker
        died), with a fixed ``reason``: built in the driver by the task's own path for an
        input known to be unreadable (``Source.missing_reason``), which opens nothing."""
        ctx = getattr(self, "_driver_ctx", None)
        if ctx is None:
            ctx = self._driver_ctx = self.setup(self.config())
        return self.task(ctx, replace(src, missing_reason=reason))

    def survey(self, run: Run, sources: Sequence[Source]) -> Survey | None:
        """A first pass to run over the inputs before the work (None: none); run before
        :meth:`is_done` is asked, so that what it finds may make a done input's output stale."""
        return None

    def items(self, todo: Sequence[Source]) -> Iterable[Source]:
        """What the executor is given for ``todo``: the sources, or copies that carry what the
        survey found for each (``Source.peers``). Default: ``todo`` as it is."""
        return todo

    def is_done(self, run: Run, key: str) -> bool:
        """Skip on a re-run: every table has the input, none failed, outputs exist."""
        if any(key not in run.done[t.name] for t in run.tables):
            return False
        rows = run.done[self.primary][key]
        if not rows or any(r["status"] == "failed" for r in rows):
            return False
        assert self.output is not None
        return all(r["status"] != self.ok_status
                   or (paths.is_placed(self.output, r.get("output")) and self.verify(self.output / r["output"], r))
                   for r in rows)

    def verify(self, path: Path, row: dict) -> bool:
        """An ``ok`` row's output is still what was written: it exists, has the size the row
        records (``output_bytes``), and a PNG or npy image is whole. False: redo the input."""
        return output_intact(path, row)


class Run:
    """The driver's view of one run, passed to the stage's hooks."""

    def __init__(self, stage: Stage, sources: Sequence[Source], tables: list[Table],
                 states: dict[str, StageState] | None = None):
        self.stage = stage
        self.output = stage.output
        self.sources = list(sources)
        self.keys = {s.rel: stage.key(s) for s in self.sources}
        self.order = {k: i for i, k in enumerate(self.keys.values())}
        self.tables = tables
        self.done: dict[str, dict[str, list[dict]]] = {t.name: {} for t in tables}
        self._states = states or {}

    def rename(self, tmp: str | Path, rel: str) -> None:
        """Move a worker's temporary file to its final name under OUTPUT (the only place
        a final output name is written), through the path guard (:mod:`.paths`): raises
        ``paths.PathViolation`` (nothing moved) when ``rel`` would leave OUTPUT or pass
        through a symbolic link."""
        assert self.output is not None
        paths.place(self.output, tmp, rel)

    def place_all(self, files) -> None:
        """Rename every ``(tmp, rel)`` of one input, or none: on a refused name the
        ones already placed are removed again, the temp files deleted, and
        ``paths.PathViolation`` raised."""
        files = list(files)
        done: list[str] = []
        try:
            for rel in (rel for _, rel in files):
                paths.check_rel(rel)
            for tmp, rel in files:
                self.rename(tmp, rel)
                done.append(rel)
        except paths.PathViolation:
            for rel in done:
                self.remove(rel)
            for tmp, _ in files:
                Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, rel: str) -> None:
        assert self.output is not None
        paths.remove(self.output, rel)

    def record(self, key: str, rows: dict[str, list[dict]]) -> None:
        """Journal an input's rows, table by table in the stage's order (an input counts as
        done only when the last table has it). A journaled table keeps only where the rows
        lie (``done[table]`` is the state's :class:`~vindr_cli.runner.rowstore.RowStore`);
        a table kept in memory keeps the rows."""
        for t in self.tables:
            if t.name not in rows:
                continue
            state = self._states.get(t.name)
            if state is not None:
                state.append(key, rows[t.name])
                if self.done[t.name] is not state.rows:      # a stage that replaced done[table]
                    self.done[t.name][key] = state.rows[key]
            else:
                self.done[t.name][key] = rows[t.name]


def _states(stage: Stage, tables: list[Table]) -> dict[str, StageState]:
    out = {}
    for t in tables:
        if t.schema is None or t.path is None or stage.output is None:
            continue
        out[t.name] = StageState(stage.output, t.journal_stage or stage.name, t.schema, t.path,
                                 journal=t.journal, mode=t.mode, rebuild=stage.rebuild_state)
    return out


def _warnings(sources: Sequence[Source], counts: Counter) -> list[str]:
    if not sources:
        return ["found no files to read: nothing to do (is it the right folder?)"]
    total = sum(counts.values())
    if total and counts[NOT_DICOM] == total:
        return [f"none of the {len(sources)} input files is DICOM: nothing was read (is it the right folder?)"]
    if total and counts["failed"] and counts[NOT_DICOM] + counts["failed"] == total:
        # every DICOM input damaged or unreadable: the run did nothing, and said so only in its table
        return [f"none of the {total} inputs could be read: {counts['failed']} failed, {counts[NOT_DICOM]} not "
                "DICOM (the table says why; is it a damaged or incomplete copy?)"]
    return []


def _in_order(run: Run, sources: Sequence[Source], name: str, tally: StageSummary | None) -> Iterator[dict]:
    """Table ``name``'s rows in discovery order, read one input at a time (from disk for a
    journaled table); the primary table's are tallied into ``tally`` on the way."""
    done = run.done[name]
    for s in sources:
        for r in done.get(run.keys[s.rel], ()):
            if tally is not None:
                tally.counts[r["status"]] += 1
                if r["status"] != run.stage.ok_status:
                    tally.reasons[(r["status"], r.get("reason"))] += 1
            yield r


def _remove_gone(run: Run) -> int:
    """Remove the outputs that an earlier run wrote for inputs no longer in INPUT (a withdrawn
    patient, a recalled study) and that no current row names (a duplicate's or a new input's
    output may have the same name), once the run's work is complete. Called before the final
    tables are written: until then the journal or the old table still lists the gone inputs'
    rows, so a run killed during the removal does it again (a file already gone is passed
    over); a file that cannot be removed stops the run (an OutputFault, exit 2: named_faults)
    before any table drops its row. Returns how many files were removed."""
    stage, output = run.stage, run.output
    assert output is not None
    done, present = run.done[stage.primary], set(run.keys.values())
    gone = {r["output"] for key in list(done) if key not in present for r in done[key]
            if r.get("status") == stage.ok_status and r.get("output")}
    if not gone:
        return 0
    for key in present:                      # a name a current row holds stays
        for r in done.get(key, ()):
            gone.discard(r.get("output"))
    removed = 0
    for rel in sorted(gone):
        if paths.is_placed(output, rel):
            removed += 1
        paths.remove(output, rel)
        if paths.is_placed(output, rel):     # not removable (permissions): stop, exit 2, nothing dropped
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(output / rel))
        paths.prune_empty(output, rel)
    return removed


# a first pass over at most this many inputs runs in the driver rather than in a fresh local pool:
# a header read takes ~3 ms, a pool's start ~0.1-0.2 s on 2 busy cores (bench/README.md, studyterms)
SURVEY_HERE = 64


def _survey(executor: Executor, survey: Survey, console: Console | None) -> None:
    """Run ``survey`` through ``executor`` (a local pool: in this process for at most
    :data:`SURVEY_HERE` inputs, under the pool's time limit, :func:`_here`) with its own
    progress bar (results to ``survey.take``)."""
    start = time.monotonic()
    if isinstance(executor, ProcessExecutor) and len(survey.sources) <= SURVEY_HERE:
        results = _here(executor, survey)
    else:
        results = executor.run(survey.task, survey.sources, setup=survey.setup, config=survey.config)
    stream = _with_progress(results, console, survey.label, len(survey.sources), start)
    try:
        for src, result in stream:
            survey.take(src, result)
    finally:
        stream.close()


def _here(pool: ProcessExecutor, survey: Survey) -> Iterator[tuple[Source, Any]]:
    """``survey`` in this process (no pool to start for a few cheap header reads), each input
    under ``pool.task_timeout`` as in the pool (mends: a read that hangs, on a dead mount or a
    FUSE file, stalled the run before the second pass's time limit could fail it). The reads run
    in a daemon thread, one at a time; the first that overruns the limit is
    ``ItemFailed(TIMED_OUT)`` (the survey's ``take`` ignores it; the second pass reads the file
    in the pool, under the limit), the thread is left behind (a daemon: it does not hold the
    exit) and the rest go to ``pool``."""
    if pool.task_timeout is None:
        yield from InProcessExecutor().run(survey.task, survey.sources, setup=survey.setup, config=survey.config)
        return
    sources = list(survey.sources)
    box: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        try:
            ctx = survey.setup(survey.config)
            for src in sources:
                if stop.is_set():
                    return
                box.put((src, survey.task(ctx, src)))
        except BaseException as exc:        # raised in the driver, as the in-process run would
            box.put(exc)

    threading.Thread(target=work, daemon=True, name="vindr-survey").start()
    try:
        for i, src in enumerate(sources):
            try:
                got = box.get(timeout=pool.task_timeout)
            except queue.Empty:
                stop.set()
                yield src, ItemFailed(TIMED_OUT)
                if i + 1 < len(sources):
                    yield from pool.run(survey.task, sources[i + 1:], setup=survey.setup, config=survey.config)
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()


def _with_progress(results, console: Console | None, label: str, total: int, start: float):
    """``results`` (an executor's ``(source, result)`` stream) under a progress bar named
    ``label`` whose rate counts from ``start``; the stream closed however the loop ends (an
    error, Ctrl-C: the executor drops what has not started)."""
    try:
        with progress_bar(console) as progress:
            bar = progress.add_task(label, total=total, rate="")
            for done, item in enumerate(results, 1):
                yield item
                progress.update(bar, completed=done,
                                rate=f"{done / max(time.monotonic() - start, 1e-6):.1f} files/s")
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def run_stage(stage: Stage, input_path: Path, *, executor: Executor | None = None, workers: int = 1,
              console: Console | None = None, sources: Sequence[Source] | None = None) -> StageSummary:
    """Run ``stage`` over every input under ``input_path`` (or ``sources``) through
    ``executor`` (default: ``workers`` local processes); see the module docstring.

    A stage that writes OUTPUT holds ``OUTPUT/.vindr/lock`` for the whole run (a second
    run is refused, :class:`~vindr_cli.runner.lock.OutputLocked`), and a write that fails
    for lack of space, a read-only file system or permissions, in the driver or a worker,
    stops the run with an :class:`~vindr_cli.errors.OutputFault` (exit 2, a re-run resumes)."""
    lock = OutputLock(stage.output) if stage.output is not None else None
    targets = [p for t in stage.tables() for p in (t.path, t.journal) if p is not None]
    try:
        with named_faults(stage.output, targets):
            return _run_stage(stage, input_path, executor, workers, console, sources, lock)
    finally:
        if lock is not None:
            lock.release()


def _run_stage(stage: Stage, input_path: Path, executor: Executor | None, workers: int,
               console: Console | None, sources: Sequence[Source] | None, lock: OutputLock | None) -> StageSummary:
    output = stage.output
    if lock is not None and lock.path.parent.is_dir():
        lock.acquire()            # an OUTPUT made before: one run at a time, before anything is read
    settings = None
    tables = stage.tables()
    if output is not None:
        settings = Settings(output, stage.name, rebuild=stage.rebuild_state)
        settings.check(stage.settings(), stage.compared, stage.explain)
        paths.check_state_dir(output, STATE_DIR)     # never write state through a linked .vindr
    states = _states(stage, tables)
    try:
        return _run_states(stage, input_path, executor, workers, console, sources, lock, settings, tables, states)
    finally:
        for s in states.values():            # whatever happened: no file left open
            s.release()


def _run_states(stage: Stage, input_path: Path, executor: Executor | None, workers: int, console: Console | None,
                sources: Sequence[Source] | None, lock: OutputLock | None, settings: Settings | None,
                tables: list[Table], states: dict[str, StageState]) -> StageSummary:
    output = stage.output
    previous = {name: s.previous() for name, s in states.items()}   # refuses a foreign table before anything is written
    if settings is not None and settings.lost():
        stage.settings_lost(previous)
    if sources is None:
        sources = discover(Path(input_path))
    if lock is not None and not lock.held:
        lock.acquire()            # a new OUTPUT: created only now that the request is known to run
        if settings is not None:  # another run may have begun it meanwhile
            settings.check(stage.settings(), stage.compared, stage.explain)
        previous = {name: s.previous() for name, s in states.items()}
    stage.prepare()
    if output is not None and settings is not None:
        settings.write(stage.settings())
        remove_stale_parts(output)
        shutil.rmtree(tmp_dir(output), ignore_errors=True)
        if tmp_dir(output).is_symlink() or tmp_dir(output).is_file():   # planted: never write through it
            tmp_dir(output).unlink()
        paths.real_dirs(output, f"{STATE_DIR}/tmp")
    run = Run(stage, sources, tables, states)
    for name, prev in previous.items():
        run.done[name] = prev
    stage.begin(run)                         # before `todo`: a stage may drop previous rows it cannot keep
    # the first pass before `todo` (review 11): what it finds may make a done input's output stale
    # (its study gained a file naming someone its output spells), which is_done then says
    survey = stage.survey(run, sources) if sources else None
    while survey is not None:
        n = len(survey.sources)
        _survey(executor.sized(workers, n) if executor is not None else make_executor(workers, n), survey, console)
        survey = survey.more() if survey.more is not None else None
    todo = [s for s in sources if not (output is not None and stage.is_done(run, run.keys[s.rel]))]
    summary = StageSummary(inputs=len(sources), resumed=len(sources) - len(todo))
    executor = executor.sized(workers, len(todo)) if executor is not None else make_executor(workers, len(todo))
    start = time.monotonic()
    results = executor.run(stage.task, stage.items(todo), setup=stage.setup, config=stage.config())
    stream = _with_progress(results, console, stage.name, len(todo), start)
    try:
        for src, result in stream:
            if isinstance(result, ItemFailed):      # e.g. its worker died: the stage's failed row(s)
                result = stage.failed(src, result.reason)
            for key, rows in stage.place(run, src, result):
                run.record(key, rows)
    finally:
        stream.close()                       # the bar ended and the results closed before the states
        for s in states.values():
            s.close()
    # completed: before the tables drop the gone inputs' rows; an INPUT where nothing at all was
    # found (a mount not mounted: the warning says so) removes nothing
    if output is not None and stage.owns_outputs and sources:
        summary.gone_removed = _remove_gone(run)
    for t in tables:                         # the same order as the journals
        rows = _in_order(run, sources, t.name, summary if t.name == stage.primary else None)
        if t.name in states:                 # streamed from disk to the table, a batch at a time
            states[t.name].finish(rows)
            summary.rows[t.name] = WrittenRows(states[t.name].table_path)
        else:
            summary.rows[t.name] = list(rows)
    if output is not None:
        tmp = tmp_dir(output)
        if tmp.is_dir() and not any(tmp.iterdir()):
            tmp.rmdir()
    summary.warnings = _warnings(sources, summary.counts)
    return summary


__all__ = ["NOT_DICOM", "Run", "Stage", "StageSummary", "Survey", "Table", "run_stage", "tmp_dir"]
