"""The package's import graph: every module imports, no import cycle among modules, and the
layering the Architecture promises — annotations/ depends on none of evaluate/, release/,
baseline/; evaluate/ on neither release/ nor baseline/; release/ never on baseline/."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "vindr_cli"
LAYERED = ("annotations", "evaluate", "release", "baseline")


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = ["vindr_cli", *p.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):   # function-level imports too
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                if n in mods and n != mod:
                    graph[mod].add(n)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _package(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERED else None


def test_no_import_cycles_among_annotations_evaluate_release_baseline():
    # a package's __init__ re-exporting its modules is not a cycle: the edge back to the package
    # (``from vindr_cli.annotations.x import`` runs __init__ first) is not in the graph.
    # Scope: the layered packages (other packages' graphs are their owners' to check).
    ours = [c for c in _cycles(_graph()) if any(_package(m) for m in c)]
    assert ours == []


def test_layering_of_annotations_evaluate_release_baseline():
    allowed = {"annotations": set(), "evaluate": {"annotations"}, "release": {"annotations", "evaluate"},
               "baseline": {"annotations", "evaluate"}}
    bad = []
    for mod, deps in _graph().items():
        src = _package(mod)
        for d in deps:
            dst = _package(d)
            if src and dst and dst != src and dst not in allowed[src]:
                bad.append(f"{mod} -> {d}")
    assert bad == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("mod", sorted(m for m in _modules() if m.split(".")[-1] != "__main__"))
def test_every_module_imports(mod):
    if mod.startswith("vindr_cli.baseline") or mod.startswith("vindr_cli.pixels.gpu"):
        pytest.importorskip("torch")
    importlib.import_module(mod)
