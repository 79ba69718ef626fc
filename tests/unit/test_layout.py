"""The walls of the architecture (docs/DECISIONS.md, "Layout"), kept by reading every import.

Every import in a file counts: module level, inside functions, and under ``TYPE_CHECKING``, since
each one is a dependency a reader has to follow and a cycle waiting to happen.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("kqueue", "sim")
#: Runtime modules allowed to import the simulator: the command composes runtime and twin.
SIM_IMPORTERS = ("kqueue.cli",)
#: What ``sim`` may import of ``kqueue``: the shared pure rules and the error hierarchy.
SIM_MAY_IMPORT = ("kqueue.policy", "kqueue.errors")
#: What ``kqueue.policy`` may import of the project: itself and the errors.
POLICY_MAY_IMPORT = ("kqueue.policy", "kqueue.errors")


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name ``module`` imports, relative imports resolved."""
    names = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in MODULES else base)
    return names


def _owner(name: str) -> str | None:
    """The project module a dotted name lives in (``kqueue.policy.config.Config`` -> its module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        targets = {_owner(name) for name in _imported_names(module, path)}
        # a package's __init__ is where its public names live; importing it is not a cycle
        # with its own modules unless the package's __init__ imports back
        graph[module] = {t for t in targets if t and t != module and t not in PACKAGES}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_no_import_cycle_in_kqueue_or_sim():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    # Given a graph with a three-module loop and a tail
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    # Then exactly that loop is reported
    assert _cycles(graph) == [["a", "b", "c"]]


def test_sim_imports_only_policy_and_errors_of_kqueue():
    graph = _graph()
    wrong = {
        module: sorted(
            t for t in targets if t.startswith("kqueue") and not _within(t, SIM_MAY_IMPORT)
        )
        for module, targets in graph.items()
        if _within(module, ("sim",))
    }
    assert {m: t for m, t in wrong.items() if t} == {}


def test_runtime_imports_sim_only_from_the_command():
    graph = _graph()
    wrong = {
        module: sorted(t for t in targets if _within(t, ("sim",)))
        for module, targets in graph.items()
        if _within(module, ("kqueue",)) and not _within(module, SIM_IMPORTERS)
    }
    assert {m: t for m, t in wrong.items() if t} == {}


def test_policy_imports_nothing_above_it():
    graph = _graph()
    wrong = {
        module: sorted(t for t in targets if not _within(t, POLICY_MAY_IMPORT))
        for module, targets in graph.items()
        if _within(module, ("kqueue.policy",))
    }
    assert {m: t for m, t in wrong.items() if t} == {}


def test_public_api_all_names_exactly_what_it_exports():
    import kqueue

    tree = ast.parse((ROOT / "kqueue" / "__init__.py").read_text())
    bound = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy = [  # names bound on first use (``_LAZY``, PEP 562 ``__getattr__``)
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["_LAZY"]
    ]
    bound |= set(ast.literal_eval(lazy[0])) if lazy else set()
    assert sorted(kqueue.__all__) == sorted(bound)
    assert len(set(kqueue.__all__)) == len(kqueue.__all__)
    for name in kqueue.__all__:
        assert getattr(kqueue, name) is not None, name


def test_at_most_six_modules_directly_in_kqueue():
    modules = sorted(p.name for p in (ROOT / "kqueue").glob("*.py"))
    assert len(modules) <= 6, modules


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_tests_mirror_the_packages():
    flat = sorted(p.name for p in (ROOT / "tests").glob("test_*.py"))
    assert flat == [], "tests live in tests/unit/<area>/, tests/integration/ or tests/docs/"
