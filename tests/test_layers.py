"""The import layers of src/ingest: every import points down the order, and none go round.

One job: read every module of src/ingest with `ast` (no import is executed) and
fail on an import that points up the layer order of docs/architecture.md, on
one between two packages of the same layer, and on any cycle of imports.
Every import counts: at the top, inside a function, or under TYPE_CHECKING,
since each is a dependency a reader has to follow.

The order, lowest first (a module may import its own package and anything
in a lower layer; names below are under `ingest`):

    (the package itself), model, errors      values and the error tree
    stages                                   the pure stages and the fetcher
    config | store                           the editors' file | the database
    runtime                                  the pipeline and its helpers
    service.health                           judging the heartbeats (pure)
    service.daemon                           what every long-running process shares
    service.scheduler | service.distributed  the embedded and the distributed service
    web                                      what downstream sites read
    cli                                      the command line
    demo                                     the offline demonstration of it all
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# lowest first, below `ingest` ("" is the package itself); the units of one layer may not
# import one another
_LAYERS: tuple[tuple[str, ...], ...] = (
    ("", "model", "errors"),
    ("stages",),
    ("config", "store"),
    ("runtime",),
    ("service.health", "service.subscriber"),
    ("service.daemon",),
    ("service.scheduler", "service.distributed"),
    ("web",),
    ("cli",),
    ("demo",),
)
LAYERS = tuple(tuple(f"ingest.{u}".rstrip(".") for u in units) for units in _LAYERS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / "ingest").rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module imported) for every `ingest` import of one module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ingest":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.split(".")[0] != "ingest":
                continue
            for alias in node.names:  # `from pkg import submodule` depends on the submodule
                sub = f"{module}.{alias.name}"
                yield node.lineno, sub if sub in MODULES else module


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, {})
        for line, target in _imports(name, path):
            if target != name:
                edges.setdefault(target, line)
    return graph


GRAPH = _graph()


def _unit(name: str) -> tuple[int, str]:
    """The layer (its index) and the unit (the longest prefix in LAYERS) of a module."""
    best: tuple[int, str] | None = None
    for rank, units in enumerate(LAYERS):
        for unit in units:
            if (name == unit or name.startswith(unit + ".")) and (
                best is None or len(unit) > len(best[1])
            ):
                best = (rank, unit)
    assert best is not None, f"{name} is in no layer: add it to LAYERS and docs/architecture.md"
    return best


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 50  # the walk found the package
    for name in MODULES:
        _unit(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name: str) -> None:
    rank, unit = _unit(name)
    wrong = []
    for target, line in GRAPH[name].items():
        if target not in MODULES:
            wrong.append(f"line {line}: {target} is no module of src/ingest")
            continue
        their_rank, their_unit = _unit(target)
        if their_unit != unit and their_rank >= rank:
            where = "up" if their_rank > rank else "across"
            wrong.append(f"line {line}: imports {target} ({where}: {their_unit})")
    assert not wrong, f"{MODULES[name]}:\n" + "\n".join(wrong)


def _cycles() -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, {}):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_checks_catch_an_upward_import_and_a_cycle() -> None:
    """The rules themselves: a stage importing the store is up, two modules that import
    each other are a cycle (checked on a copy of the graph, not on the source)."""
    assert _unit("ingest.stages.fetch")[0] < _unit("ingest.store.db")[0]
    assert _unit("ingest.service.scheduler")[1] != _unit("ingest.service.distributed.worker")[1]
    saved = dict(GRAPH)
    try:
        GRAPH["ingest.model"] = {**GRAPH["ingest.model"], "ingest.errors": 1}
        GRAPH["ingest.errors"] = {**GRAPH["ingest.errors"], "ingest.model": 1}
        assert ["ingest.errors", "ingest.model"] in _cycles()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)
