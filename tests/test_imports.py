"""The package's import graph has no cycle (a module importing, directly or through others, itself).

Edges come from every ``import`` statement in ``dml/`` with ``ast``, lazy imports inside functions included, since
a lazy import that closes a loop only moves the failure to run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dml

ROOT = Path(dml.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in paths and t != name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_the_package() -> None:
    graph = _import_graph()
    assert "dml.mining.registry" in graph["dml.mining.hardest_negative"]
    assert "dml.mining.hardest_negative" in graph["dml.mining.triplet_rule"]


def test_no_import_cycle() -> None:
    cycle = _find_cycle(_import_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_a_cycle_is_found() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_data_imports_no_later_stage() -> None:
    """Data flows one way (data -> model -> loss -> train -> eval -> diagnostics): ``dml.data`` needs only itself and
    ``dml.utils`` (and the root package's ``__version__``), so a dataset or loader works without the rest."""
    graph = _import_graph()
    outside = {
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("dml.data")
        for target in targets
        if target != "dml" and not target.startswith(("dml.data", "dml.utils"))
    }
    assert not outside, f"dml.data imports later stages: {sorted(outside)}"
