"""One exception hierarchy for every stage, mapped to exit codes in one place (``cli.main``).

* :class:`RequestError` (exit 2): the request cannot run — bad arguments, paths, key,
  profile, settings that disagree with an earlier run, an input file that cannot be read
  as the format asked for, OUTPUT in use by another run, or OUTPUT that cannot be written
  (:class:`OutputFault`: full, read-only, no permission). The message is one line, holds
  no PHI, and says what to do.
* :class:`FindingsError` (exit 1): the work ran and found problems (bad rows under
  ``--strict``, audit/validate findings).
* Anything else is a bug (exit 3): printed without a traceback, since one would show
  file content; ``VINDR_DEBUG=1`` shows it.

Per-file failures (``dicomio.header.BadInput``, ``pixels.decode.DecodeError``,
``deid.engine.EngineError``) are :class:`InternalError` subclasses: every stage's worker
catches them and records a ``failed`` row with their fixed PHI-free reason, so one that
reaches ``cli.main`` escaped its handler — a bug (exit 3) whose reason may still be shown.

Library code raises these; only the CLI turns them into exit codes and messages. A
module may subclass them for callers that want to tell cases apart, but never catches a
bare ``ValueError`` to mean "bad request".
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_REQUEST = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143    # 128 + SIGTERM: stopped like Ctrl-C (finished work kept, a re-run resumes)
EXIT_CLOSED_PIPE = 141   # 128 + SIGPIPE: what cat or grep give when the reader of their output goes away


class VindrError(Exception):
    """Base of every error vindr raises on purpose. ``exit_code`` says how the CLI ends."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str = "", *, details: list[str] | None = None):
        super().__init__(message)
        self.details = list(details or [])   # extra PHI-free lines to print (e.g. bad rows)


class RequestError(VindrError):
    """The request cannot run (exit 2): one line, no PHI."""

    exit_code = EXIT_REQUEST


class OutputFault(RequestError):
    """Writing OUTPUT failed for a reason of the machine, not of any input (exit 2): no space,
    a quota, a read-only file system, permissions. The message names what and where (OUTPUT,
    or a path under it, never an input's name); nothing is left under a final name and the
    input being written is not marked failed, so the same command resumes once it is fixed."""


class FindingsError(VindrError):
    """The work found problems the user asked to be fatal (exit 1)."""

    exit_code = EXIT_FINDINGS


class InternalError(VindrError):
    """A state vindr should never reach (exit 3)."""

    exit_code = EXIT_INTERNAL


def exit_code_for(exc: BaseException) -> int:
    """The exit code for any exception: ours say theirs, KeyboardInterrupt 130, the rest 3."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, VindrError):
        return exc.exit_code
    return EXIT_INTERNAL
