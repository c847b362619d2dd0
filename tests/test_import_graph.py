"""The packages import each other in one direction only: no import cycle.

Imports are read from the source (ast), so the test sees what a reader sees; an import deferred
into a function (DeepSpeed, timm) counts too: deferring an import does not remove the dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"optimizers": "nightbench.optimizers", "suites": "nightbench.suites", "reports": "nightbench.reports"}


def _module_name(path: Path) -> str:
    root, *rest = path.relative_to(REPO).with_suffix("").parts
    parts = [PACKAGES[root], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The modules of the project that `path` imports anywhere ("from pkg import mod" counts as mod)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            found |= submodules or {base}
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for root in PACKAGES for p in (REPO / root).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    return {name: {i for i in _imports(path, name, set(modules)) if i in modules and i != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    graph = import_graph()
    assert "nightbench.suites.engine" in graph and graph["nightbench.suites.engine"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
