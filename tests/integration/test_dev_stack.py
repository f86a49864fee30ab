"""`aios dev up | status | down` as a user runs them, on a stack of its own (own ports and dir)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aios.settings import Settings, load_settings
from aios.stack import temporal
from aios.temporal.connection import connect
from tests.support.env import child_env
from tests.support.ports import free_port

AIOS = [sys.executable, "-m", "aios.cli"]


@pytest.fixture(scope="module")
def own_stack_env() -> Iterator[dict[str, str]]:
    shared = load_settings()
    binary = temporal.find_binary(shared)
    assert binary is not None, "the session stack fixture builds the Temporal CLI first"
    # Under the project, not /tmp/pytest-of-root (mode 700): under root the local Postgres
    # runs as the `postgres` user, which must reach its cluster directory.
    data_dir = (shared.data_dir / "test-stacks" / uuid.uuid4().hex[:8]).resolve()
    data_dir.mkdir(parents=True)
    env = child_env(
        TEMPORAL_CLI=str(binary.resolve()),
        AIOS_DATA_DIR=str(data_dir),
        AIOS_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        AIOS_TEMPORAL_UI_PORT=str(free_port()),
        AIOS_POSTGRES_PORT=str(free_port()),
        AIOS_CODEC_PORT=str(free_port()),
        AIOS_DATABASE_URL=None,
    )
    yield env
    subprocess.run([*AIOS, "dev", "down"], env=env, capture_output=True, check=False)
    shutil.rmtree(data_dir, ignore_errors=True)


def _aios(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIOS, *args], env=env, capture_output=True, text=True, timeout=180, check=False)


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        data_dir=Path(env["AIOS_DATA_DIR"]),
        temporal_address=env["AIOS_TEMPORAL_ADDRESS"],
        temporal_ui_port=int(env["AIOS_TEMPORAL_UI_PORT"]),
        postgres_port=int(env["AIOS_POSTGRES_PORT"]),
    )


async def _start_marker_workflow(settings: Settings) -> str:
    client = await connect(settings)
    workflow_id = f"marker-{uuid.uuid4().hex[:8]}"
    # Nobody polls this queue: the run only has to exist and survive a restart.
    await client.start_workflow("Ping", id=workflow_id, task_queue="nobody-polls-this")
    return workflow_id


async def _workflow_exists(settings: Settings, workflow_id: str) -> bool:
    client = await connect(settings)
    description = await client.get_workflow_handle(workflow_id).describe()
    return description.id == workflow_id


async def test_up_status_down_and_runs_survive_a_restart(own_stack_env: dict[str, str]) -> None:
    env = own_stack_env
    settings = _settings(env)

    first = _aios(env, "dev", "up")
    assert first.returncode == 0, first.stderr
    assert first.stdout.index("Temporal Web UI") < first.stdout.index("postgres")
    assert "started" in first.stdout

    again = _aios(env, "dev", "up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout

    async with httpx.AsyncClient(base_url=settings.temporal_ui_url, timeout=10) as ui:
        page = await ui.get("/")
        ui_settings = (await ui.get("/api/v1/settings")).json()
    assert page.status_code == 200
    assert "_app/immutable" in page.text  # the Temporal UI's SvelteKit bundle
    assert ui_settings["Version"].startswith("2.")

    healthy = _aios(env, "dev", "status")
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.count("healthy") == 3  # Temporal, Postgres, the codec server

    logs = _aios(env, "dev", "logs", "postgres", "--lines", "5")
    assert logs.returncode == 0
    assert "postgres.log" in logs.stdout
    unknown = _aios(env, "dev", "logs", "nginx")
    assert unknown.returncode == 1
    assert "choose one of: temporal, postgres" in unknown.stderr

    workflow_id = await _start_marker_workflow(settings)
    assert _aios(env, "dev", "down").returncode == 0
    stopped = _aios(env, "dev", "status")
    assert stopped.returncode == 1
    assert "down" in stopped.stdout

    assert _aios(env, "dev", "up").returncode == 0
    assert await _workflow_exists(settings, workflow_id)


def test_up_beside_another_checkouts_stack_refuses_in_one_line(own_stack_env: dict[str, str]) -> None:
    # The module's stack stands for another checkout's: same ports, another data directory.
    assert _aios(own_stack_env, "dev", "up").returncode == 0
    other = Path(own_stack_env["AIOS_DATA_DIR"] + "-other")
    env = {**own_stack_env, "AIOS_DATA_DIR": str(other), "COLUMNS": "80"}
    result = _aios(env, "dev", "up")
    assert result.returncode == 1
    owner = own_stack_env["AIOS_DATA_DIR"]
    assert result.stderr.splitlines() == [
        f"error: ports {_port(env['AIOS_TEMPORAL_ADDRESS'])}, {env['AIOS_TEMPORAL_UI_PORT']}, "
        f"{env['AIOS_POSTGRES_PORT']} and {env['AIOS_CODEC_PORT']} on 127.0.0.1 are served by a stack "
        f"started from {owner}: stop it, or move this one with AIOS_TEMPORAL_ADDRESS=127.0.0.1:<port>, "
        "AIOS_TEMPORAL_UI_PORT=<port>, AIOS_POSTGRES_PORT=<port> and AIOS_CODEC_PORT=<port>"
    ]
    assert not other.exists()  # nothing adopted, nothing started there
    status = _aios(env, "dev", "status")
    assert status.returncode == 1
    assert status.stdout.count("foreign (started from") == 3
    assert _aios(own_stack_env, "dev", "status").returncode == 0  # its owner still sees it as its own


def _port(address: str) -> str:
    return address.rsplit(":", 1)[1]


def test_busy_port_is_reported_without_a_traceback(own_stack_env: dict[str, str]) -> None:
    env = {**own_stack_env, "AIOS_DATA_DIR": own_stack_env["AIOS_DATA_DIR"] + "-busy"}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        env["AIOS_TEMPORAL_ADDRESS"] = f"127.0.0.1:{squatter.getsockname()[1]}"
        result = _aios(env, "dev", "up")
    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "AIOS_TEMPORAL_ADDRESS" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_setting_stops_start_up_with_the_variable_named(
    own_stack_env: dict[str, str],
) -> None:
    result = _aios({**own_stack_env, "AIOS_POSTGRES_PORT": "lots"}, "dev", "status")
    assert result.returncode == 2
    assert "AIOS_POSTGRES_PORT" in result.stderr
    assert "Traceback" not in result.stderr
