"""``vindr anonymize`` as a library call: check the request, run every input through the
pool, place outputs, keep the journal for resume, write the manifest and linkage tables."""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from vindr_cli import __version__
from vindr_cli.deid.keyfile import load_key
from vindr_cli.deid.linkage import LINKAGE_MODE, default_linkage_path, journal_path
from vindr_cli.deid.profile import Profile
from vindr_cli.deid.substitutes import Substitutes
from vindr_cli.deid.task import LAYOUTS, AnonConfig, anonymize_one, setup
from vindr_cli.runner.atomic import remove_stale_parts
from vindr_cli.runner.discover import discover
from vindr_cli.runner.pool import run_pool
from vindr_cli.runner.sources import enclosing_output, is_within
from vindr_cli.runner.state import STATE_DIR, SettingsChanged, StageState

DUPLICATE = "same SOP Instance UID as an earlier input; not written again"
RESUME_SETTINGS = ("key_fingerprint", "profile_fingerprint", "input_fingerprint", "uid_root", "layout",
                   "allow_burned_in")
UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
FINAL = {"ok", "quarantined", "failed", "not-dicom", "skipped", "duplicate"}


class RequestError(ValueError):
    """The request cannot run (bad paths, key, profile); one line, no PHI."""


@dataclass
class Summary:
    total: int = 0
    resumed: int = 0
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    output: Path | None = None
    manifest: Path | None = None
    linkage: Path | None = None
    key_created: bool = False
    key_path: Path | None = None
    key_fingerprint: str = ""
    profile: str = ""


def check_paths(input_path: Path, output: Path, key_path: Path, linkage: Path | None) -> None:
    if not input_path.exists():
        raise RequestError("INPUT does not exist")
    if is_within(output, input_path) or is_within(input_path, output):
        raise RequestError("OUTPUT must not be inside INPUT (nor INPUT inside OUTPUT)")
    if is_within(key_path, output):
        raise RequestError("the key file must not be inside OUTPUT (it would be released)")
    if linkage is not None and is_within(linkage, output):
        raise RequestError("the linkage table holds PHI and must not be inside OUTPUT")
    if enclosing_output(output) is not None or (linkage is not None and enclosing_output(linkage) is not None):
        raise RequestError("OUTPUT and the linkage table must not be inside another vindr output folder")


def _run_record(cfg: AnonConfig, subs: Substitutes) -> dict:
    p = cfg.profile
    removed = sorted(f"{t:08X}" for t, r in p.rules.items() if r.action == "X")
    return {
        "tool": f"vindr {__version__}",
        "profile": p.name, "profile_source": p.source, "profile_fingerprint": p.fingerprint(),
        "options": sorted(p.options), "dates": p.dates, "uid_root": cfg.uid_root, "layout": cfg.layout,
        "key_fingerprint": subs.fingerprint(), "allow_burned_in": cfg.allow_burned_in,
        "removed_tags": removed, "mode": p.mode,
    }


def anonymize(
    input_path: Path,
    output: Path,
    *,
    key_path: Path,
    profile: Profile,
    workers: int,
    uid_root: str = "2.25",
    layout: str = "tree",
    allow_burned_in: bool = False,
    linkage: Path | None = None,
    write_linkage: bool = True,
    console: Console | None = None,
) -> Summary:
    input_path, output = input_path.resolve(), output.resolve()
    if layout not in LAYOUTS:
        raise RequestError(f"--layout must be one of {', '.join(LAYOUTS)}")
    if not UID_ROOT.match(uid_root) or len(uid_root) > 32:
        raise RequestError("--uid-root must be a valid UID root (digits and dots, no leading zeros), "
                           "at most 32 characters so that new UIDs (with ≥ 100 random bits) fit in 64")
    link_path = (linkage or default_linkage_path(output)).resolve() if write_linkage else None
    check_paths(input_path, output, key_path.resolve(), link_path)
    try:
        key, created = load_key(key_path)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    cfg = AnonConfig(str(output), key, profile, uid_root, layout, allow_burned_in)
    subs = Substitutes(key, uid_root)
    state = StageState(output, "anonymize", "anonymize_manifest", output / "manifest.parquet")
    record = _run_record(cfg, subs)
    record["input_fingerprint"] = subs.hexid("input-root", str(input_path), 16)   # keyed: the path may hold PHI
    try:
        state.check_settings(record, RESUME_SETTINGS)
    except SettingsChanged as exc:
        raise RequestError(str(exc)) from None
    link_state = None
    if link_path is not None:
        link_state = StageState(output, "linkage", "linkage", link_path, journal=journal_path(link_path),
                                mode=LINKAGE_MODE)
    remove_stale_parts(output)

    sources = discover(input_path)
    try:
        done = {k: rows[0] for k, rows in state.previous().items() if rows and rows[0]["status"] in FINAL}
        link_done = {k: rows[0] for k, rows in link_state.previous().items()} if link_state else {}
    except SettingsChanged as exc:
        raise RequestError(str(exc)) from None
    keys = {s.rel: subs.hexid("input-path", s.rel, 24) for s in sources}
    todo = [s for s in sources if not _is_done(done.get(keys[s.rel]), output)
            or (link_state is not None and keys[s.rel] not in link_done)]
    summary = Summary(total=len(sources), resumed=len(sources) - len(todo), output=output,
                      manifest=state.table_path, linkage=link_path, key_created=created, key_path=key_path,
                      key_fingerprint=subs.fingerprint(), profile=profile.name)
    claimed = {r["sop_uid"]: k for k, r in done.items() if r.get("status") == "ok" and r.get("sop_uid")}
    key_order = {keys[s.rel]: i for i, s in enumerate(sources)}

    def record(row: dict, link: dict | None) -> None:
        # the linkage row first: an input counts as done only when both are journaled
        if link_state is not None and link is not None:
            link["status"], link["output"] = row["status"], row.get("output")
            link_done[link["input_key"]] = link
            link_state.append(link["input_key"], [link])
        done[row["input_key"]] = row
        state.append(row["input_key"], [row])

    def on_result(src, res) -> None:
        row, link = res["manifest"], res["linkage"]
        if res["tmp"]:
            loser = _place(row, res["tmp"], output, claimed, key_order, done)
            if loser is not None:
                record(loser, link_done.get(loser["input_key"]))
        record(row, link)

    try:
        run_pool(todo, anonymize_one, setup=setup, config=cfg, workers=workers, on_result=on_result,
                 description="anonymize", console=console)
    finally:
        state.close()
        if link_state is not None:
            link_state.close()
    rows = [done[keys[s.rel]] for s in sources if keys[s.rel] in done]
    state.finish(rows)
    if link_state is not None:
        link_state.finish([link_done[keys[s.rel]] for s in sources if keys[s.rel] in link_done])
    tmp = output / STATE_DIR / "tmp"
    if tmp.is_dir() and not any(tmp.iterdir()):
        tmp.rmdir()
    for r in rows:
        summary.counts[r["status"]] += 1
        if r["status"] != "ok":
            summary.reasons[(r["status"], r["reason"])] += 1
    return summary


def _is_done(row: dict | None, output: Path) -> bool:
    """Finished inputs are skipped on a re-run; failed ones are tried again."""
    if row is None or row["status"] == "failed":
        return False
    if row["status"] == "ok":
        return bool(row.get("output")) and (output / row["output"]).is_file()
    return True


def _place(row: dict, tmp: str, output: Path, claimed: dict, key_order: dict, done: dict) -> dict | None:
    """Rename a finished temp file into place. Two inputs with one SOP Instance UID (even
    under different patients): the first in discovery order wins, whatever order the
    workers finished in. Returns the row of an input that lost its place, if any."""
    sop = row["sop_uid"]
    holder = claimed.get(sop)
    loser = None
    if holder is not None and holder != row["input_key"]:
        if key_order.get(holder, 1 << 62) < key_order[row["input_key"]]:
            os.unlink(tmp)
            row.update(status="duplicate", reason=DUPLICATE, output=None)
            return None
        loser = done.get(holder)
        if loser is not None:
            if loser.get("output") and loser["output"] != row["output"]:
                (output / loser["output"]).unlink(missing_ok=True)
            loser.update(status="duplicate", reason=DUPLICATE, output=None)
    dest = output / row["output"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    claimed[sop] = row["input_key"]
    return loser
