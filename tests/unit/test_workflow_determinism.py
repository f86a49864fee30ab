"""workflows/ is deterministic by construction: what the sandbox no longer checks at run time.

The worker passes the project's own workflow modules through Temporal's sandbox (workers/main.py:
they are imported once per process, not once per run), so the sandbox's run-time guards no
longer see their calls. This reads their source instead: no clock, randomness, environment or
I/O is called, no such module is imported outside `workflow.unsafe.imports_passed_through()`,
and no module-level state is ever changed (a passed-through module is shared by every run in
the process). The replay tests then prove the histories replay, with and without the sandbox.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
# Modules whose use in workflow code is never deterministic.
FORBIDDEN_MODULES = {
    "os",
    "sys",
    "time",
    "random",
    "secrets",
    "uuid",
    "socket",
    "threading",
    "subprocess",
    "multiprocessing",
    "httpx",
    "psycopg",
    "requests",
    "logging",
}
# Calls on allowed modules that read the clock (the `workflow` API has its own: workflow.now()).
FORBIDDEN_ATTRIBUTES = {"now", "utcnow", "today", "fromtimestamp", "time", "monotonic", "perf_counter"}
FORBIDDEN_BUILTINS = {"open", "input", "print", "id", "hash", "exec", "eval", "breakpoint"}
MUTATORS = {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault", "add"}


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(WORKFLOWS.glob("*.py"))]


def _passed_through_imports(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside `with workflow.unsafe.imports_passed_through():`."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
            "imports_passed_through" in ast.unparse(item.context_expr) for item in node.items
        ):
            lines.update(child.lineno for child in ast.walk(node) if isinstance(child, ast.stmt))
    return lines


def _imported_modules(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module.split(".")[0]]
    return []


def _module_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def import_problems(name: str, tree: ast.Module) -> list[str]:
    passed = _passed_through_imports(tree)
    return [
        f"{name}:{node.lineno} imports {module}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno not in passed
        for module in _imported_modules(node)
        if module in FORBIDDEN_MODULES
    ]


def call_problems(name: str, tree: ast.Module) -> list[str]:
    module_names = _module_level_names(tree)
    return [
        f"{name}:{getattr(node, 'lineno', '?')} {problem}"
        for node in ast.walk(tree)
        if (problem := _problem(node, module_names)) is not None
    ]


def _is_module_state(node: ast.expr, module_names: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in module_names


def _problem(node: ast.AST, module_names: set[str]) -> str | None:
    if isinstance(node, ast.Global | ast.Nonlocal):
        return f"rebinds {', '.join(node.names)}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_BUILTINS:
        return f"calls {node.func.id}()"
    if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
        return None if ast.unparse(node.value) == "workflow" else f"reads the clock: {ast.unparse(node)}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
        changes = _is_module_state(node.func.value, module_names)
        return f"changes module state: {ast.unparse(node.func)}" if changes else None
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
        changes = _is_module_state(node.value, module_names)
        return f"changes module state: {ast.unparse(node)}" if changes else None
    return None


@pytest.mark.parametrize(("path", "tree"), _sources(), ids=lambda value: getattr(value, "name", ""))
def test_no_nondeterministic_module_is_imported(path: Path, tree: ast.Module) -> None:
    # time, randomness and I/O come only through the `workflow` API
    assert import_problems(path.name, tree) == []


@pytest.mark.parametrize(("path", "tree"), _sources(), ids=lambda value: getattr(value, "name", ""))
def test_no_clock_builtin_io_or_global_state_is_used(path: Path, tree: ast.Module) -> None:
    assert call_problems(path.name, tree) == [], "found in workflow code"


def test_the_checks_catch_what_they_forbid() -> None:
    bad = ast.parse(
        "import time\n"
        "with workflow.unsafe.imports_passed_through():\n    import httpx\n"
        "SEEN = []\n"
        "def step():\n    SEEN.append(datetime.now())\n    global X\n    print(workflow.now())\n"
        "    SEEN[0] = 1\n"
    )
    assert import_problems("bad.py", bad) == ["bad.py:1 imports time"]
    assert sorted(call_problems("bad.py", bad)) == [
        "bad.py:6 changes module state: SEEN.append",
        "bad.py:6 reads the clock: datetime.now",
        "bad.py:7 rebinds X",
        "bad.py:8 calls print()",
        "bad.py:9 changes module state: SEEN[0]",
    ]
