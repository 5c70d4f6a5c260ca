"""vindr_cli's import graph (read with ast: nothing is imported) has no cycle.

Every ``import`` counts, top-level or inside a function (a lazy import is still a
dependency), and importing ``a.b.c`` also runs ``a/b/__init__.py``, so the package's
``__init__`` is an edge too. A cycle makes the import order matter and blocks moving a
module into a worker or a cluster process.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "vindr_cli"



def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest vindr_cli module a dotted name refers to (a name imported from a
    module is not a module: ``from a.b import f`` depends on ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _with_parents(mod: str, modules: dict[str, Path]) -> set[str]:
    """Importing a.b.c executes a/__init__ and a/b/__init__ first."""
    out, parts = set(), mod.split(".")
    for i in range(1, len(parts) + 1):
        m = ".".join(parts[:i])
        if m in modules:
            out.add(m)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                names = [f"{prefix}.{a.name}" for a in node.names] + [prefix]
            for n in names:
                if n.split(".")[0] != "vindr_cli":
                    continue
                target = _resolve(n, modules)
                if target:
                    edges |= _with_parents(target, modules)
        # a module's own packages are already being imported when it runs: not edges
        graph[mod] = {e for e in edges if e != mod and not mod.startswith(e + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    g = import_graph()
    # sanity: the reader sees real edges, lazy (in-function) ones included
    assert "vindr_cli.tables" in g["vindr_cli.runner.state"]
    assert "vindr_cli.deid.batch" in g["vindr_cli.cli"]
    assert "vindr_cli.runner.stage" in g["vindr_cli.pixels.batch"]


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, f"import cycles: {[sorted(c) for c in found]}"


def test_layers():
    """tables and atomic writes are leaves under the runner; the runner knows no stage."""
    g = import_graph()
    assert not {m for m in g["vindr_cli.tables"] if m.startswith("vindr_cli.runner")}
    assert not {m for m in g["vindr_cli.atomic"] if m.startswith("vindr_cli")}
    stages = ("vindr_cli.deid", "vindr_cli.pixels", "vindr_cli.info", "vindr_cli.release", "vindr_cli.baseline")
    for mod, deps in g.items():
        if mod.startswith("vindr_cli.runner"):
            assert not {d for d in deps if d.startswith(stages)}, mod


LAYERED = ("annotations", "evaluate", "release", "baseline")


def _layer(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERED else None


def test_layering_of_annotations_evaluate_release_baseline():
    """annotations/ depends on none of evaluate/, release/, baseline/; evaluate/ on neither
    release/ nor baseline/; release/ never on baseline/."""
    allowed = {"annotations": set(), "evaluate": {"annotations"}, "release": {"annotations", "evaluate"},
               "baseline": {"annotations", "evaluate"}}
    bad = []
    for mod, deps in import_graph().items():
        src = _layer(mod)
        for d in deps:
            dst = _layer(d)
            if src and dst and dst != src and dst not in allowed[src]:
                bad.append(f"{mod} -> {d}")
    assert bad == []


@pytest.mark.parametrize("mod", sorted(m for m in _modules() if m.split(".")[-1] != "__main__"))
def test_every_module_imports(mod):
    if mod.startswith("vindr_cli.baseline") or mod.startswith("vindr_cli.pixels.gpu"):
        pytest.importorskip("torch")
    importlib.import_module(mod)


if __name__ == "__main__":
    for c in cycles(import_graph()):
        print(sorted(c))
