"""Checks files on disk: `<agents dir>/<name>.checks.yaml`, beside the agent's manifest."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from aios.errors import ChecksInvalid, ManifestInvalid
from aios.governance.manifests import CHECKS_SUFFIX, agents_dir, dotted, read_yaml
from aios.models.checks import Check, ChecksFile, Expect, ParamBound

EXAMPLE = "checks: [{name: small refund, task: {amount: 20}, expect: {action: issue_refund}}]"


def checks_path(agent: str, directory: Path | None = None) -> Path:
    return (directory if directory is not None else agents_dir()) / f"{agent}{CHECKS_SUFFIX}"


def load_checks(path: Path) -> ChecksFile:
    """Read and validate a checks file; ChecksInvalid (one line: the field and the fix) if not."""
    if not path.is_file():
        raise ChecksInvalid(f"{path}: no such checks file; write one ({EXAMPLE}) or pass --checks FILE")
    try:
        content = read_yaml(path)
    except ManifestInvalid as exc:  # the YAML itself: line and column, already one line
        raise ChecksInvalid(str(exc)) from exc
    if not isinstance(content, dict):
        raise ChecksInvalid(
            f"{path}: expected a mapping with `agent:` and `checks:`, e.g. agent: NAME, {EXAMPLE}"
        )
    try:
        return ChecksFile.model_validate(content)
    except ValidationError as exc:
        raise ChecksInvalid(_describe(path, exc)) from exc


def _describe(path: Path, exc: ValidationError) -> str:
    """The first problem on one line, `<file>: checks[1].expect.approval: <reason>; <fix>`."""
    errors = exc.errors()
    first = errors[0]
    where = dotted(first["loc"])
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{path}: {where or 'top level'}: {_reason(first)}{more}"


def _reason(error: ErrorDetails) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        known = _known_fields(loc[:-1])
        return f"not a known field; use one of: {', '.join(known)}" if known else "not a known field"
    reason = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] != "missing" and isinstance(value, str | int | float | bool):
        reason += f" (got {value!r})"
    if error["type"] == "missing" and loc == ("checks",):
        reason += f"; add a list of checks, e.g. {EXAMPLE}"
    return reason


def _known_fields(loc: tuple[int | str, ...]) -> list[str]:
    """The fields allowed where an unknown one was found (the file, a check, expect, a bound)."""
    named = [part for part in loc if isinstance(part, str)]
    models: dict[tuple[str, ...], type[BaseModel]] = {
        (): ChecksFile,
        ("checks",): Check,
        ("checks", "expect"): Expect,
    }
    if len(named) == 4 and named[:3] == ["checks", "expect", "params"]:
        return sorted(ParamBound.model_fields)
    model = models.get(tuple(named))
    return sorted(model.model_fields) if model else []
