"""``vindr decode`` as a library call: every input through the pool, images.parquet, resume."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from vindr_cli.pixels.output import FORMATS
from vindr_cli.pixels.task import DecodeConfig, decode_one, setup
from vindr_cli.pixels.window import parse_window_mode
from vindr_cli.runner.atomic import remove_stale_parts
from vindr_cli.runner.discover import discover
from vindr_cli.runner.pool import run_pool
from vindr_cli.runner.sources import enclosing_output, is_within
from vindr_cli.runner.state import SettingsChanged, StageState


class DecodeRequestError(ValueError):
    """The request cannot run (one line)."""


@dataclass
class DecodeSummary:
    inputs: int = 0
    images: int = 0
    resumed: int = 0
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    backends: Counter = field(default_factory=Counter)
    table: Path | None = None


def _done(rows: list[dict] | None, out: Path) -> bool:
    """Finished inputs are skipped on a re-run; failed ones are tried again."""
    if not rows or any(r["status"] == "failed" for r in rows):
        return False
    return all(r["status"] != "ok" or (out / r["output"]).is_file() for r in rows)


def decode_tree(input_path: Path, output: Path, cfg: DecodeConfig, *, workers: int,
                console: Console | None = None) -> DecodeSummary:
    input_path, output = input_path.resolve(), output.resolve()
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
    if cfg.device not in ("cpu", "cuda", "auto"):
        raise DecodeRequestError("--device must be cpu, cuda or auto")
    if cfg.device == "cuda":
        from vindr_cli.pixels.gpu import gpu_available

        if not gpu_available():
            raise DecodeRequestError("--device cuda: no CUDA GPU with nvImageCodec here (use cpu or auto)")
    cfg = DecodeConfig(**{**cfg.__dict__, "output": str(output)})
    state = StageState(output, "decode", "images", output / "images.parquet")
    settings = {"size": repr(cfg.size), "window": cfg.window, "window_index": cfg.window_index, "bits": cfg.bits,
                "format": cfg.fmt, "resample": cfg.resample}
    try:
        state.check_settings(settings, tuple(settings))
    except SettingsChanged as exc:
        raise DecodeRequestError(str(exc)) from None
    remove_stale_parts(output)
    sources = discover(input_path)
    try:
        done = state.previous()
    except SettingsChanged as exc:
        raise DecodeRequestError(str(exc)) from None
    todo = [s for s in sources if not _done(done.get(s.rel), output)]
    summary = DecodeSummary(inputs=len(sources), resumed=len(sources) - len(todo), table=state.table_path)

    def on_result(src, rows) -> None:
        done[src.rel] = rows
        state.append(src.rel, rows)

    try:
        run_pool(todo, decode_one, setup=setup, config=cfg, workers=workers, on_result=on_result,
                 description="decode", console=console)
    finally:
        state.close()
    rows = [r for s in sources for r in done.get(s.rel, [])]
    state.finish(rows)
    for r in rows:
        summary.counts[r["status"]] += 1
        if r["status"] == "ok":
            summary.images += 1
            summary.backends[r["backend"]] += 1
        else:
            summary.reasons[(r["status"], r["reason"])] += 1
    return summary
