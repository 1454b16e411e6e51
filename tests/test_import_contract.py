"""The import contract of the layers (docs/architecture.md): read from the source, nothing imported.

- `schemas` imports nothing of ours; `pipeline` imports only `schemas` (anywhere, lazily too): the data
  side runs learned models from exported files, never through `training`.
- `training` imports `crisp` or `dags` nowhere at module level (entry-point functions may, lazily).
- No import cycle among the modules of `schemas`, `pipeline` and `training`, lazy imports included
  (the validate -> registry -> package -> validate circle ran through a function).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "pipeline", "training", "crisp")
ALLOWED = {"schemas": set(), "pipeline": {"schemas"}, "training": {"schemas", "pipeline"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(module-level imports, all imports) of our packages in one file, as dotted module names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top, every = set(), set()

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        return []

    for node in ast.walk(tree):
        every.update(n for n in names(node) if n.split(".")[0] in PACKAGES + ("dags",))
    for node in tree.body:  # module level, including `try:` / `if` blocks but not TYPE_CHECKING
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else []:
            top.update(n for n in names(sub) if n.split(".")[0] in PACKAGES + ("dags",))
    return top, every


def _sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_layers_import_only_downwards():
    problems = []
    for package, allowed in ALLOWED.items():
        for path in _sources(package):
            top, every = _imports(path)
            checked = every if package != "training" else top
            for name in sorted(checked):
                root = name.split(".")[0]
                if root != package and root not in allowed:
                    problems.append(f"{_module_name(path)} imports {name}")
    assert not problems, "layer violations:\n" + "\n".join(problems)


def test_no_import_cycle_below_the_wiring():
    modules = {_module_name(p): p for pkg in ALLOWED for p in _sources(pkg)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        _, every = _imports(path)  # lazy imports count: a cycle through a function is still a cycle
        # `from a.b import c` names a.b.c: keep the longest prefix that is one of our modules
        targets = set()
        for imported in every:
            parts = imported.split(".")
            found = next(
                (".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in modules),
                None,
            )
            if found and found != name:
                targets.add(found)
        graph[name] = targets
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1 and not nxt.startswith(node + ".") and not node.startswith(nxt + "."):
                cycles.append(
                    " -> ".join([*stack[stack.index(nxt) :], nxt]) if nxt in stack else f"{node} -> {nxt}"
                )
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_contract_catches_a_violation(tmp_path):
    """The checker itself can fail: a file importing training from pipeline is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from training.registry.versions import promote\n")
    _, every = _imports(bad)
    assert "training.registry.versions" in every
