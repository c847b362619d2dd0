"""The packages import each other in one direction only (ARCHITECTURE's three rooms), and no module cycle.

The direction rule, per package (`ALLOWED`): optimizers imports neither of the others; suites imports
optimizers; reports imports optimizers and suites (the run layout, a suite's findings). The one
exception is the command line, which builds reports: the modules in `COMMAND_LINE` may import
reports, and nothing else may. Within a package modules import each other freely, without cycles.

Imports are read from the source (ast), so the test sees what a reader sees; an import deferred
into a function (DeepSpeed, timm) counts too: deferring an import does not remove the dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

from nightbench.optimizers import nsgd

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"optimizers": "nightbench.optimizers", "suites": "nightbench.suites", "reports": "nightbench.reports"}
ALLOWED = {"optimizers": set(), "suites": {"optimizers"}, "reports": {"optimizers", "suites"}}
# The command line is the one place that builds reports: `nightbench report` and the end of
# `nightbench leaderboard` (cli.cmd_leaderboard hands the board a callback that writes it).
COMMAND_LINE = {"nightbench.suites.cli"}


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


def package_of(module: str) -> str:
    """'nightbench.suites.engine' -> 'suites'."""
    return module.split(".")[1]


def wrong_way_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import across packages that the direction rule does not allow, as 'a -> b'."""
    wrong = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            source_package, target_package = package_of(module), package_of(target)
            if source_package == target_package or target_package in ALLOWED[source_package]:
                continue
            if target_package == "reports" and module in COMMAND_LINE:
                continue
            wrong.append(f"{module} -> {target}")
    return wrong


def test_the_direction_check_finds_planted_wrong_way_imports():
    graph = {"nightbench.optimizers.lars": {"nightbench.suites.layout"},
             "nightbench.suites.engine": {"nightbench.reports.load", "nightbench.optimizers.lars"},
             "nightbench.suites.cli": {"nightbench.reports.html"},
             "nightbench.reports.load": {"nightbench.suites.layout", "nightbench.reports.html"}}
    assert wrong_way_imports(graph) == ["nightbench.optimizers.lars -> nightbench.suites.layout",
                                        "nightbench.suites.engine -> nightbench.reports.load"]


def test_the_packages_import_each_other_in_one_direction():
    graph = import_graph()
    assert any(package_of(t) == "reports" for t in graph["nightbench.suites.cli"])  # the graph sees deferred imports
    assert any(package_of(t) == "suites" for t in graph["nightbench.reports.load"])
    assert wrong_way_imports(graph) == []


def test_the_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    graph = import_graph()
    assert "nightbench.suites.engine" in graph and graph["nightbench.suites.engine"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


PACKAGE = Path(nsgd.__file__).parent


def _imports_inside_the_package(path: Path) -> set[str]:
    """Sibling modules a module imports (relative imports, at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_the_package_modules_import_each_other_without_cycles():
    graph = {p.stem: _imports_inside_the_package(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert "registry" not in graph["timm_bridge"] and "timm_bridge" in graph["registry"]
    visiting, done = set(), set()

    def visit(module: str, path: tuple) -> None:
        assert module not in visiting, f"import cycle: {' -> '.join(path + (module,))}"
        if module in done or module not in graph:
            return
        visiting.add(module)
        for target in graph[module]:
            visit(target, path + (module,))
        visiting.discard(module)
        done.add(module)

    for module in graph:
        visit(module, ())
