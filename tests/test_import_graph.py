"""The package's import graph: no cycles and no upward imports at module level.

Data flows one way (STYLE.md): config -> space -> models -> profiling/data/training/robustness
-> pareto -> constraints, objective, samplers, pruners, warmstart, storage -> study, transfer ->
plots, report -> cli. The catalogues every step reads (exceptions, the metric catalogue, units,
the trial record, the Optuna compat layer, the perturbation registry) sit below all of them.
Only module-level imports count (imports inside functions are how a lower step reaches an
optional higher one lazily, and ``if TYPE_CHECKING:`` imports never run); the graph is read
with :mod:`ast`, so nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "neuromosaic_optuna"
ROOT = Path(__file__).resolve().parent.parent
PKG_DIR = ROOT / PACKAGE

#: Stage of each top-level module or subpackage; an import may only go to the same or a lower
#: stage. A new module must be placed here (the test fails until it is).
STAGES: dict[str, int] = {
    "exceptions": 0, "_compat": 0, "_factory": 0, "metrics": 0, "units": 0, "record": 0,
    "robustness._registry": 0,
    "config": 1,
    "space": 2, "predictor": 2,
    "models": 3,
    "profiling": 4, "data": 4, "_idx": 4, "training": 4, "robustness": 4, "proxies": 4,
    "pareto": 5,
    "constraints": 6, "objective": 6, "samplers": 6, "pruners": 6, "warmstart": 6,
    "storage": 6,
    "study": 7, "transfer": 7, "reevaluate": 7,
    "plots": 8, "report": 8, "insights": 8,
    "cli": 9, "": 9,  # "": the package's own __init__ (the public facade)
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PKG_DIR.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports when it is imported (module level only)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{base}.{alias.name}"
                    out.add(sub if sub in modules else base)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {m for m in out if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _stage(module: str) -> int:
    rel = module.removeprefix(PACKAGE).removeprefix(".")
    while rel not in STAGES:  # a private module takes its package's stage
        rel = rel.rpartition(".")[0]
    return STAGES[rel]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := dfs(start)):
            return found
    return None


def test_the_graph_is_read_from_every_module() -> None:
    graph = _graph()
    assert len(graph) > 40
    assert f"{PACKAGE}.robustness._registry" in graph[f"{PACKAGE}.config"]
    assert f"{PACKAGE}.warmstart" in graph[f"{PACKAGE}.transfer"]
    # TYPE_CHECKING-only and function-level imports do not count
    assert f"{PACKAGE}.objective" not in graph[f"{PACKAGE}.warmstart._profile"]


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_at_module_level() -> None:
    assert _cycle(_graph()) is None


def test_every_module_has_a_stage() -> None:
    for module in _graph():
        rel = module.removeprefix(PACKAGE).removeprefix(".")
        top = rel.split(".")[0]
        assert top in STAGES or rel in STAGES, f"place {module} in STAGES"


def test_no_upward_imports() -> None:
    upward = sorted(f"{a} -> {b}" for a, targets in _graph().items() for b in targets
                    if _stage(b) > _stage(a))
    assert upward == []
