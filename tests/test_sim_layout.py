"""The simulator's walls: imports run down (no cycle) and reach kqueue only through its policy."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What sim may import of kqueue (DESIGN.md: the simulator and the runtime share only the policy).
ALLOWED_KQUEUE = ("kqueue.policy", "kqueue.errors")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (ROOT / "sim").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``path`` imports: module level, in functions and under ``TYPE_CHECKING``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(name, path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported not in (name, "sim"):
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path of module names, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_sim_modules_import_each_other_without_a_cycle():
    assert _cycle(_graph()) is None


def test_sim_imports_nothing_of_kqueue_but_the_policy_and_the_errors():
    # Given every import in every sim module, wherever it is written
    outside = {
        f"{name} -> {imported}"
        for name, path in _modules().items()
        for imported in _imports(name, path)
        if imported.startswith("kqueue.")
        and not any(imported == ok or imported.startswith(ok + ".") for ok in ALLOWED_KQUEUE)
    }
    # Then none reaches past kqueue.policy and kqueue.errors
    assert not outside
