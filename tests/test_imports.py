"""The package's module import graph is acyclic (function-level imports included).

Data flows one way (STYLE.md): data -> patterns -> program -> solver -> solution -> maps /
analysis. A module that imports one further down that chain, even lazily inside a function,
closes a cycle; this test walks every ``import`` statement of every module with :mod:`ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cvxnn

PACKAGE = Path(cvxnn.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Edges ``module -> cvxnn module it imports`` (top-level and inside functions; not the
    ``TYPE_CHECKING`` blocks, which never run)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for n in ast.walk(node))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = _resolve(name, is_package, node)
                # "from . import x" / "from .pkg import submodule": the submodule is the target
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            for t in targets:
                if t in modules and t != name and t != "cvxnn":
                    graph[name].add(t)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state:
            found = visit(u)
            if found:
                return found
    return None


def test_graph_sees_lazy_imports():
    """The walker must see function-level imports, or the acyclicity test proves nothing."""
    graph = import_graph()
    assert "cvxnn.native" in graph["cvxnn.backends.native_adapter"]  # imported inside a method
    assert "cvxnn.backends.cvxpy_adapter" in graph["cvxnn.program"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_import_graph_is_acyclic():
    cycle = _find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_solution_layer_does_not_reach_up():
    """The solution layer imports neither the builders, the solvers nor the maps built on it."""
    graph = import_graph()
    for low in ("cvxnn.solution", "cvxnn.losses", "cvxnn.patterns", "cvxnn._validation", "cvxnn.penalties",
                "cvxnn.constraints", "cvxnn._lam_max"):  # _lam_max: usable by the native solvers
        reached = graph[low] & {"cvxnn.builders", "cvxnn.vector", "cvxnn.maps", "cvxnn.program",
                                "cvxnn.backends.registry", "cvxnn.path", "cvxnn.estimators"}
        assert not reached, f"{low} imports {sorted(reached)}"


def test_native_solvers_may_use_lam_max_penalties_and_constraints():
    """cvxnn._lam_max, cvxnn.penalties and cvxnn.constraints reach no native module (transitively),
    so cvxnn.native can import them without closing a cycle."""
    graph = import_graph()
    for start in ("cvxnn._lam_max", "cvxnn.penalties", "cvxnn.constraints", "cvxnn.backends.cvxpy_adapter"):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        native = sorted(m for m in seen if m.startswith("cvxnn.native"))
        assert not native, f"{start} reaches {native}"
