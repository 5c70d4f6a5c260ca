"""The README's code map (section "Architecture") stays true to the tree: every package of
vindr_cli/ has its entry, every module is named in its package's entry, and every module the
map names exists. A new user reads the map to find where a rule lives; a module missing from
it (six were, plus every synth/ module but two) or one that no longer exists sends them astray.
The README's options and commands are checked against the CLI too (quoted ``vindr CMD ... --opt``).
"""
from __future__ import annotations

import re
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "vindr_cli"


def _code_map() -> dict[str, str]:
    """{entry name ('cli.py', 'runner', ...): its text} of the map's vindr_cli/ block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    arch = text.split("\n## Architecture\n", 1)[1]
    block = arch.split("```", 2)[1]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        m = re.match(r"^  (\w+(?:\.py)?)/?\s", line)
        if m:
            current = m.group(1)
            entries[current] = ""
        elif not line.startswith("   "):
            current = None          # schemas/, sample_dicoms/, bench/, tests/ or the fence
        if current is not None:
            entries[current] += line + "\n"
    return entries


def test_every_package_and_module_is_in_the_map():
    entries = _code_map()
    missing = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if path.name == "__init__.py" or rel.as_posix() == "__main__.py":
            continue
        if len(rel.parts) == 1:
            if rel.name not in entries:
                missing.append(rel.as_posix())
            continue
        pkg = rel.parts[0]
        if pkg not in entries:
            missing.append(f"{pkg}/ (package)")
        elif not re.search(rf"(?<![\w/]){re.escape(path.name)}", entries[pkg]):
            missing.append(rel.as_posix())
    assert not missing, "README 'Architecture' does not name: " + ", ".join(missing)


def test_every_module_in_the_map_exists():
    gone = []
    for entry, text in _code_map().items():
        if entry.endswith(".py"):
            if not (PKG / entry).is_file():
                gone.append(entry)
            continue
        for name in re.findall(r"(?<![\w/.])([a-z_0-9]+\.py)\b", text):
            if not (PKG / entry / name).is_file() and not (PKG / name).is_file():
                gone.append(f"{entry}/{name}")
    assert not gone, "README 'Architecture' names modules that do not exist: " + ", ".join(gone)


def test_the_commands_and_options_the_readme_shows_exist():
    from vindr_cli.cli import app

    cmd = typer.main.get_command(app)
    opts = {name: {o for p in c.params for o in (*p.opts, *p.secondary_opts)} for name, c in cmd.commands.items()}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    wrong = []
    for m in re.finditer(r"^### `vindr (\w+)(?: ([^`]*))?`", readme, re.M):
        if m.group(1) not in opts:
            wrong.append(f"vindr {m.group(1)}")
            continue
        for o in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])\b", m.group(2) or ""):
            if o not in opts[m.group(1)]:
                wrong.append(f"vindr {m.group(1)} {o}")
    # command lines in the README's code blocks: `$V cmd ...` / `vindr cmd ...`
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            m = re.search(r"(?:\$V|\bvindr) (\w+)(.*)", line.split("#")[0])
            if m is None or m.group(1) not in opts:
                continue
            for o in re.findall(r"\s(--[a-z][a-z0-9-]*|-[a-z])\b", m.group(2)):
                if o not in opts[m.group(1)]:
                    wrong.append(f"vindr {m.group(1)} {o}")
    assert len(opts) >= 12
    assert not wrong, "README shows commands/options the CLI does not have: " + ", ".join(wrong)
