"""The import graph is the data flow: layers only import downward, and no module circles.

Bottom to top (the README's Layout section draws the same):

0. ``schemas``: contracts (events, settings, topics, Redis keys, tensors).
1. ``online_ctr``, ``simulator``: pure code on the contracts.
2. ``encoder_server``: the encoders; rooms ``client``, ``serving`` and
   ``training`` over its shared root modules, none importing another room.
3. ``wiring``: builds connections, the embedder, model store and learner from settings.
4. ``streams``: the workers; rooms ``health`` < ``kafka`` < ``join`` < ``counters``,
   ``learner``, with the worker's assembly (``worker``, ``agents``) at the root.
5. ``api``: the HTTP API, reading what the workers write (never Faust).
6. ``bertctr``: the CLI, the demo, the harness.

Every import counts, also those inside functions or under ``TYPE_CHECKING``:
a loop hidden there is still a loop for the reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "schemas": set(),
    "online_ctr": {"schemas"},
    "simulator": {"schemas"},
    "encoder_server": {"schemas"},
    "wiring": {"schemas", "online_ctr", "encoder_server"},
    "streams": {"schemas", "online_ctr", "encoder_server", "wiring"},
    "api": {"schemas", "online_ctr", "encoder_server", "wiring", "streams"},
    "bertctr": {"schemas", "online_ctr", "simulator", "encoder_server", "wiring", "streams", "api"},
}
#: rooms inside a package: which other rooms of the same package each may import
#: ("" is the package's own top-level modules)
ROOMS = {
    "encoder_server": {
        "": set(),
        "client": {""},
        "serving": {""},
        "training": {""},
    },
    "streams": {
        "health": set(),
        "kafka": {"health"},
        "join": {"health", "kafka"},
        "counters": {"health", "kafka", "join"},
        "learner": {"health", "kafka"},
        "": {"health", "kafka", "join", "counters", "learner"},
    },
}


def modules() -> dict[str, Path]:
    out = {}
    for package in ALLOWED:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported(path: Path, known: set[str]) -> Iterator[str]:
    """The project modules ``path`` imports (``from a import b``: ``a.b`` if a module)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                yield name


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {m: set(imported(p, known)) - {m} for m, p in found.items()}


def test_packages_import_only_the_layers_below() -> None:
    upward = sorted(
        f"{m} imports {d}"
        for m, deps in graph().items()
        for d in deps
        if (a := m.split(".")[0]) != (b := d.split(".")[0]) and b not in ALLOWED[a]
    )
    assert upward == []


def room(module: str) -> tuple[str, str]:
    """``(package, room)``: ``streams.join.book`` is in room ``join`` of ``streams``."""
    parts = module.split(".")
    rooms = ROOMS.get(parts[0], {})
    return parts[0], parts[1] if len(parts) > 2 and parts[1] in rooms else ""


def test_rooms_import_only_the_rooms_below() -> None:
    found = modules()
    assert {room(m) for m in found} >= {(p, r) for p, rs in ROOMS.items() for r in rs}
    crossing = sorted(
        f"{m} imports {d}"
        for m, deps in graph().items()
        for d in deps
        if (a := room(m))[0] == (b := room(d))[0]
        and a[0] in ROOMS
        and a[1] != b[1]
        and b[1] not in ROOMS[a[0]][a[1]]
    )
    assert crossing == []


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_in_a_circle() -> None:
    # a package's __init__ re-exporting its modules is not a circle of meaning
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph().items()}
    assert circles(edges) == []


def test_the_checks_can_fail() -> None:
    assert circles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert "schemas" not in ALLOWED["schemas"] and "bertctr" not in ALLOWED["streams"]
    assert room("streams.join.book") == ("streams", "join")
    assert room("streams.worker") == ("streams", "")
    assert "learner" not in ROOMS["streams"]["kafka"]
