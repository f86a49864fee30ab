"""workflows/versions.py and the code agree: every `workflow.patched` call names a listed id."""

from __future__ import annotations

import ast
from pathlib import Path

from workflows import versions
from workflows.versions import GENERATIONS, PATCHES, RECORDED_GENERATION, VERSIONS, patches_up_to

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
PATCH_CALLS = {"patched", "deprecate_patch"}


def _patch_arguments() -> list[tuple[str, ast.expr]]:
    """(where, argument) of every `workflow.patched(...)` / `deprecate_patch(...)` in workflows/."""
    found = []
    for path in sorted(WORKFLOWS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if node.func.attr in PATCH_CALLS and node.args:
                found.append((f"{path.name}:{node.lineno}", node.args[0]))
    return found


def _named_id(argument: ast.expr) -> str | None:
    """The id a call names through a constant of versions.py; None for anything else."""
    if isinstance(argument, ast.Name):
        value = getattr(versions, argument.id, None)
        return value if isinstance(value, str) else None
    return None


def test_every_patched_call_names_a_listed_id_through_its_constant() -> None:
    calls = _patch_arguments()
    assert len(calls) >= len(VERSIONS), "the patched() calls were not found"
    unlisted = [where for where, argument in calls if _named_id(argument) not in PATCHES]
    assert unlisted == [], "each patched() call names a constant of workflows/versions.py listed in VERSIONS"


def test_every_listed_id_is_called_somewhere() -> None:
    called = {_named_id(argument) for _, argument in _patch_arguments()}
    assert sorted(PATCHES - called) == []


def test_every_id_is_listed_once_in_a_known_generation() -> None:
    ids = [version.patch for version in VERSIONS]
    assert len(ids) == len(set(ids))
    assert {version.generation for version in VERSIONS} <= set(GENERATIONS)
    assert RECORDED_GENERATION in GENERATIONS
    assert all(version.changed and version.legacy and version.where for version in VERSIONS)


def test_the_list_runs_oldest_first() -> None:
    generations = [version.generation for version in VERSIONS]
    assert generations == sorted(generations)
    assert patches_up_to(1) == frozenset()
    assert patches_up_to(max(GENERATIONS)) == PATCHES
