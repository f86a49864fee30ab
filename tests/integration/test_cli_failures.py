"""Every CLI command's server-side failure is one line and a documented exit code.

Temporal down, Postgres down, an unknown run: each through the real `aios` CLI in a
subprocess, with the settings moved to a port where nothing listens for the "down" cases.
"""

from __future__ import annotations

import subprocess

import pytest

from aios.errors import RunNotFound, ServerUnavailable
from aios.settings import Settings
from tests.support.cli import run_aios
from tests.support.env import child_env
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def aios(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_aios(*args, env=env)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command", [("show", "some-run"), ("runs",), ("approvals",), ("approve", "r", "--as", "a")]
)
def test_temporal_down_is_one_line_exit_5(stack_settings: Settings, command: tuple[str, ...]) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    result = aios(child_env(stack_settings, AIOS_TEMPORAL_ADDRESS=nowhere, COLUMNS="80"), *command)
    assert result.returncode == ServerUnavailable.exit_code, result
    line = one_line(result)
    assert line.startswith(f"error: cannot reach Temporal at {nowhere}") and "aios dev up" in line, line


@pytest.mark.parametrize("command", [("effects", "list"), ("audit", "verify"), ("run", "refund-desk")])
def test_postgres_down_is_one_line_exit_5(stack_settings: Settings, command: tuple[str, ...]) -> None:
    port = free_port()
    env = child_env(stack_settings, AIOS_POSTGRES_PORT=str(port), AIOS_DATABASE_URL=None, COLUMNS="80")
    result = aios(env, *command)
    assert result.returncode != 0, result
    line = one_line(result)
    assert "cannot reach" in line and str(port) in line, line


def test_an_unknown_run_is_one_line_exit_3(stack_settings: Settings) -> None:
    result = aios(child_env(stack_settings, COLUMNS="80"), "show", "no-such-run-anywhere")
    assert result.returncode == RunNotFound.exit_code, result
    assert (
        one_line(result) == "error: no run 'no-such-run-anywhere' in this namespace; `aios runs` lists them"
    )
