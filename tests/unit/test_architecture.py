"""The house rules of docs/architecture.md, checked on the source (issue 26): which room may
import which, no import circles (imports inside functions and under ``TYPE_CHECKING``
included), no module over 500 lines, one writer of the vector store."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS: dict[str, set[str]] = {
    # room: the rooms it may import (besides itself)
    "retrieval": set(),
    "db": set(),
    "ingest": {"db", "retrieval"},
    "services": {"db", "ingest", "retrieval"},
    "eval": {"services", "ingest", "db", "retrieval"},  # kb eval --history replays through services
    "api": {"services", "ingest", "db", "retrieval"},
    "cli": {"services", "ingest", "eval", "db", "retrieval"},
    "bench": {"eval", "ingest", "db", "retrieval"},
}
MAX_LINES = 500
STORE_WRITES = {"upsert", "delete_document", "set_groups", "optimize"}
"""Methods of a ``VectorStore`` that change points."""
STORE_WRITERS = {
    "ingest/indexing.py",  # the one write path (issue 26)
    "bench/store.py",  # measures the raw engine on synthetic points, in its own folder
}


def _modules() -> Iterator[tuple[str, Path]]:
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


@cache
def _graph() -> dict[str, set[str]]:
    """Module -> the product modules it imports, wherever the import statement is."""
    modules = dict(_modules())

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for imported in names:
                found = resolve(imported)
                if found and found != name:
                    targets.add(found)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_each_room_imports_only_the_rooms_below_it(room):
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in _graph().items()
        if name.split(".")[0] == room
        for target in targets
        if target.split(".")[0] not in ROOMS[room] | {room}
    )
    assert wrong == []


def test_no_product_module_is_over_500_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for _, path in _modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_only_the_indexing_module_writes_to_the_store():
    writes = []
    for _, path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        if rel in STORE_WRITERS or rel.startswith("retrieval/stores/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in STORE_WRITES
                and "store" in ast.unparse(node.func.value)
            ):
                writes.append(f"{rel}:{node.lineno} {ast.unparse(node.func)}")
    assert writes == []
