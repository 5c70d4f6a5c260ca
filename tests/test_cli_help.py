"""`COLUMNS=80 vindr <cmd> --help` shows every option name whole, for every command."""
from __future__ import annotations

import pytest
import typer

from vindr_cli.cli import app

from helpers import run_cli

COMMANDS = sorted(typer.main.get_command(app).commands)


def _names(cmd: str) -> list[str]:
    command = typer.main.get_command(app).commands[cmd]
    names = []
    for p in command.params:
        if p.param_type_name == "option":
            names += [*p.opts, *p.secondary_opts]
    return names + ["--help"]


def test_every_command_is_covered():
    assert {"anonymize", "audit", "decode", "info", "split", "release", "validate", "evaluate", "baseline"} <= set(COMMANDS)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_at_80_columns_shows_every_option_name_whole(cmd):
    p = run_cli(cmd, "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    lines = p.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    words = {w.strip(",/[]()") for line in lines for w in line.split()}
    for name in _names(cmd):
        assert name in words, f"{cmd}: {name} is cut or missing"
    assert "…" not in p.stdout


def test_top_level_help_lists_every_command():
    p = run_cli("--help", env={"COLUMNS": "80"})
    for cmd in COMMANDS:
        assert f"  {cmd} " in p.stdout
