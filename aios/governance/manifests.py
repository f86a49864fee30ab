"""Agent manifests on disk: one YAML file per agent, `<agents dir>/<name>.yaml`.

Every failure becomes a ManifestInvalid whose message names the file and, for a validation
error, each offending field in dotted form, so an operator can fix the file without reading
a traceback.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from aios.errors import ManifestInvalid
from aios.models.manifest import NAME_PATTERN, AgentManifest

MANIFEST_DIR_VARIABLE = "AIOS_AGENTS_DIR"
DEFAULT_MANIFEST_DIR = Path("agents")
MANIFEST_SUFFIX = ".yaml"
CHECKS_SUFFIX = ".checks.yaml"


def agents_dir() -> Path:
    """$AIOS_AGENTS_DIR, else `agents/` relative to the current directory."""
    configured = os.environ.get(MANIFEST_DIR_VARIABLE, "").strip()
    return Path(configured) if configured else DEFAULT_MANIFEST_DIR


def manifest_path(name: str, directory: Path | None = None) -> Path:
    return (directory if directory is not None else agents_dir()) / f"{name}{MANIFEST_SUFFIX}"


def load_manifest(path: Path) -> AgentManifest:
    """Read, parse and validate one manifest; its `name` must be its file's name."""
    content = read_yaml(path)
    if not isinstance(content, dict):
        raise ManifestInvalid(f"{path}: {_not_a_mapping(content)}")
    try:
        manifest = AgentManifest.model_validate(content)
    except ValidationError as exc:
        raise ManifestInvalid(_describe(path, exc)) from exc
    if manifest.name != path.stem:
        # Agents are found by file name, so a mismatch would load under one name and run as another.
        raise ManifestInvalid(
            f"{path}: name {manifest.name!r} does not match the file name {path.stem!r}; "
            f"rename the file to {manifest.name}{MANIFEST_SUFFIX} or set `name: {path.stem}`"
        )
    return manifest


def find_manifest(name: str, directory: Path | None = None) -> AgentManifest:
    """The manifest of agent `name`, from `<directory>/<name>.yaml`."""
    folder = directory if directory is not None else agents_dir()
    path = manifest_path(name, folder)
    # The name pattern also keeps a name such as `../x` from reaching outside the folder.
    if re.fullmatch(NAME_PATTERN, name) is None or not path.is_file():
        raise ManifestInvalid(f"no agent named {name!r} in {folder}; {_known_agents(folder)}")
    return load_manifest(path)


def list_manifests(
    directory: Path | None = None,
) -> list[tuple[Path, AgentManifest | ManifestInvalid]]:
    """Every manifest file, sorted by name, with its manifest or the reason it is broken."""
    results: list[tuple[Path, AgentManifest | ManifestInvalid]] = []
    for path in _manifest_files(directory if directory is not None else agents_dir()):
        try:
            results.append((path, load_manifest(path)))
        except ManifestInvalid as exc:
            results.append((path, exc))
    return results


# -- reading ---------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, except that a key given twice is an error.

    Plain safe_load keeps the last of two equal keys, so a second `issue_refund:` block
    would silently replace the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestInvalid(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"{path}: cannot be read: {exc}") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # safe: a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise ManifestInvalid(f"{path}: {_yaml_problem(exc)}") from exc
    except yaml.YAMLError as exc:
        raise ManifestInvalid(f"{path}: invalid YAML: {exc}") from exc


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or exc.context or "syntax error"
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return f"invalid YAML: {problem}"
    # Marks count from 0; editors count lines and columns from 1.
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _manifest_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ManifestInvalid(
            f"the agents directory {folder} does not exist; run from the project directory "
            f"or set {MANIFEST_DIR_VARIABLE}"
        )
    # `<name>.checks.yaml` beside a manifest is its behaviour checks (aios/checks), not a manifest.
    return sorted(
        path
        for path in folder.glob(f"*{MANIFEST_SUFFIX}")
        if path.is_file() and not path.name.endswith(CHECKS_SUFFIX)
    )


def _known_agents(folder: Path) -> str:
    try:
        names = [path.stem for path in _manifest_files(folder)]
    except ManifestInvalid as exc:
        return str(exc)
    if not names:
        return f"there are no *{MANIFEST_SUFFIX} manifests there"
    return f"known agents: {', '.join(names)}"


# -- describing what is wrong ----------------------------------------------------------


def _not_a_mapping(content: object) -> str:
    expected = "expected a mapping of manifest fields (name, actions, policy, ...)"
    if content is None:
        return f"the file is empty; {expected}"
    kind = "a list" if isinstance(content, list) else f"a {type(content).__name__}"
    return f"the top level is {kind}; {expected}"


def _describe(path: Path, exc: ValidationError) -> str:
    """One line per problem: `<file>: <dotted.field.path>: <reason>`."""
    lines = []
    for error in exc.errors():
        where = dotted(error["loc"])
        prefix = f"{path}: {where}: " if where else f"{path}: "
        lines.append(prefix + _reason(error))
    return "\n".join(lines)


def dotted(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a field path: `checks[0].expect.approval`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _reason(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        known = _known_fields(error["loc"][:-1])
        return "not a known field" + (f"; known fields: {', '.join(known)}" if known else "")
    # Errors raised by the models' own validators arrive prefixed with "Value error, ".
    reason = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] != "missing" and isinstance(value, str | int | float | bool):
        reason += f" (got {value!r})"
    return reason


def _known_fields(loc: tuple[int | str, ...]) -> list[str]:
    """The fields of the model found at `loc`, walking down from AgentManifest."""
    model: type[BaseModel] = AgentManifest
    steps = iter(loc)
    for step in steps:
        field = model.model_fields.get(str(step))
        annotation = field.annotation if field is not None else None
        if typing.get_origin(annotation) is dict:
            next(steps, None)  # the mapping's key, e.g. an action's name
            annotation = typing.get_args(annotation)[1]
        annotation = _unless_none(annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def _unless_none(annotation: Any) -> Any:
    """`ValueSpec | None` -> ValueSpec: an optional section's fields are still its fields."""
    if isinstance(annotation, types.UnionType):
        present = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return present[0] if len(present) == 1 else annotation
    return annotation
