"""One error family: every error aios defines is in the typed tree, and no failure type is a string.

The names of the failures that travel through Temporal are wire values (recorded histories and
running workflows compare `cause.type`), so they are pinned here: renaming such a class fails
this test, which is the moment to add a patch rather than to edit the string.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from datetime import timedelta
from pathlib import Path

import pytest

from aios import errors
from aios.errors import AiosError, application_error
from connectors import errors as connector_errors
from connectors.errors import CONNECTOR_ERRORS, ConnectorError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("aios", "activities", "workflows", "connectors", "workers")
# Control flow inside the codec server's HTTP parser: never leaves the module.
PRIVATE_ERRORS = {"aios.temporal.codec_server._Refused"}

# The `type` of each failure aios sends through Temporal, exactly as old runs see it.
WIRE_NAMES = {
    errors.EffectConflict: "EffectConflict",
    errors.EffectFailed: "EffectFailed",
    errors.UnknownConnector: "UnknownConnector",
    errors.NoSlotYet: "NoSlotYet",
    errors.ModelNotConfigured: "ModelNotConfigured",
    errors.MemoryUnavailable: "MemoryUnavailable",
    errors.CompactionUnavailable: "CompactionUnavailable",
    errors.CompactionNotFound: "CompactionNotFound",
    errors.ActMissing: "ActMissing",
    errors.ActionFailed: "ActionFailed",
    errors.DelegationRefused: "DelegationRefused",
    errors.DelegationFailed: "DelegationFailed",
    connector_errors.ConnectorError: "ConnectorError",
    connector_errors.TransportError: "TransportError",
    connector_errors.ConnectFailed: "ConnectFailed",
    connector_errors.TimeoutError_: "TimeoutError_",
    connector_errors.ServerError: "ServerError",
    connector_errors.RateLimited: "RateLimited",
    connector_errors.CircuitOpen: "CircuitOpen",
    connector_errors.ClientError: "ClientError",
    connector_errors.Conflict: "Conflict",
    connector_errors.NotConfigured: "NotConfigured",
}


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        for module in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if not module.name.endswith(".__main__"):  # runs the CLI when imported
                names.append(module.name)
    return names


def _defined_errors() -> list[type[BaseException]]:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
                found.append(value)
    return found


def test_every_error_class_aios_defines_is_in_the_typed_tree() -> None:
    strays = [
        f"{error.__module__}.{error.__qualname__}"
        for error in _defined_errors()
        if not issubclass(error, (AiosError, ConnectorError))
    ]
    assert sorted(set(strays) - PRIVATE_ERRORS) == []


def _string_failure_types(path: Path) -> list[str]:
    """`type="..."` given to a call, and string constants listed as non-retryable error types."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            literal = isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str)
            listed = isinstance(keyword.value, ast.List | ast.Tuple | ast.Set) and any(
                isinstance(item, ast.Constant) for item in keyword.value.elts
            )
            if (keyword.arg == "type" and literal) or (keyword.arg == "non_retryable_error_types" and listed):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_failure_type_is_a_string_literal() -> None:
    sources = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    assert sources, "the packages were not found"
    assert [hit for path in sources for hit in _string_failure_types(path)] == []


@pytest.mark.parametrize("kind", list(WIRE_NAMES), ids=lambda kind: kind.__name__)
def test_the_names_that_reach_temporal_keep_their_values(kind: type[Exception]) -> None:
    assert application_error(kind, "m", non_retryable=True).type == WIRE_NAMES[kind]


def test_the_connector_error_list_names_every_connector_error() -> None:
    defined = {
        value
        for value in vars(connector_errors).values()
        if inspect.isclass(value) and issubclass(value, ConnectorError)
    }
    assert set(CONNECTOR_ERRORS) == defined
    assert len(CONNECTOR_ERRORS) == len(defined)


def test_application_error_carries_the_class_name_and_the_retry_advice() -> None:
    final = application_error(errors.EffectFailed, "this effect already failed", non_retryable=True)
    waited = application_error(
        connector_errors.RateLimited, "slow down", non_retryable=False, next_retry_delay=timedelta(seconds=3)
    )
    assert (final.type, final.non_retryable, final.message) == (
        "EffectFailed",
        True,
        "this effect already failed",
    )
    assert (waited.type, waited.non_retryable, waited.next_retry_delay) == (
        "RateLimited",
        False,
        timedelta(seconds=3),
    )
