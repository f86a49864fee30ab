"""Whose stack holds a configured port (issue 17), against stand-in listeners of another checkout.

A stand-in is a real process listening on a free loopback port whose command line (and
environment) is the one the real service has: `--db-filename <dir>/temporal/temporal.db` for the
Temporal dev server, `-D <dir>/postgres/data` for the postmaster, `-m aios.codec_server` with
AIOS_DATA_DIR for the codec server. That is all stack.owner reads, so no real server is needed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aios.settings import Settings
from aios.stack.owner import describe, foreign_services
from tests.support.env import child_env
from tests.support.ports import free_port

AIOS = [sys.executable, "-m", "aios.cli"]
LISTEN = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); print('ready', flush=True); time.sleep(600)\n"
)
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ForeignStack:
    """Stand-ins for another checkout's Temporal, Postgres and codec server."""

    data_dir: Path
    temporal_port: int
    postgres_port: int
    codec_port: int
    pids: tuple[int, ...]


def _listen(port: int, *mimic: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", LISTEN, str(port), *mimic],
        env=env or child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


@pytest.fixture
def foreign_stack(tmp_path: Path) -> Iterator[ForeignStack]:
    other = tmp_path / "other-checkout" / ".aios"
    ports = free_port(), free_port(), free_port()
    processes = [
        _listen(ports[0], "--db-filename", str(other / "temporal" / "temporal.db")),
        _listen(ports[1], "-D", str(other / "postgres" / "data")),
        _listen(ports[2], "-m", "aios.codec_server", env=child_env(AIOS_DATA_DIR=str(other))),
    ]
    try:
        yield ForeignStack(other, *ports, tuple(p.pid for p in processes))
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _settings(data_dir: Path, stack: ForeignStack, **changes: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "temporal_address": f"127.0.0.1:{stack.temporal_port}",
        "temporal_ui_port": free_port(),
        "postgres_port": stack.postgres_port,
        "codec_port": stack.codec_port,
        "database_url": None,
        "payload_encryption": True,
        "temporal_api_key": None,
    }
    return Settings(**{**values, **changes})


def test_each_port_of_another_stack_is_named_with_its_owner(
    tmp_path: Path, foreign_stack: ForeignStack
) -> None:
    foreign = foreign_services(_settings(tmp_path / "ours", foreign_stack))
    assert [(f.key, f.port, f.data_dir) for f in foreign] == [
        ("temporal", foreign_stack.temporal_port, foreign_stack.data_dir),
        ("postgres", foreign_stack.postgres_port, foreign_stack.data_dir),
        ("codec server", foreign_stack.codec_port, foreign_stack.data_dir),
    ]
    [line] = describe(foreign)  # one owner, one line
    ports = f"{foreign_stack.temporal_port}, {foreign_stack.postgres_port} and {foreign_stack.codec_port}"
    assert line == (
        f"ports {ports} on 127.0.0.1 are served by a stack started from {foreign_stack.data_dir}: stop it, "
        "or move this one with AIOS_TEMPORAL_ADDRESS=127.0.0.1:<port>, AIOS_POSTGRES_PORT=<port> "
        "and AIOS_CODEC_PORT=<port>"
    )


def test_a_stack_started_from_this_data_directory_is_ours(foreign_stack: ForeignStack) -> None:
    # Even with no pid file: the listener's own command line names this data directory.
    assert foreign_services(_settings(foreign_stack.data_dir, foreign_stack)) == []


def test_the_pid_file_of_this_data_directory_claims_its_listener(
    tmp_path: Path, foreign_stack: ForeignStack
) -> None:
    ours = tmp_path / "ours"
    (ours / "run").mkdir(parents=True)
    (ours / "run" / "temporal.pid").write_text(f"{foreign_stack.pids[0]}\n")
    keys = [f.key for f in foreign_services(_settings(ours, foreign_stack))]
    assert keys == ["postgres", "codec server"]


def test_services_configured_elsewhere_are_not_checked(tmp_path: Path, foreign_stack: ForeignStack) -> None:
    settings = _settings(
        tmp_path / "ours",
        foreign_stack,
        temporal_address=f"temporal.example.com:{foreign_stack.temporal_port}",
        database_url=f"postgresql://aios@127.0.0.1:{foreign_stack.postgres_port}/aios",
        payload_encryption=False,
    )
    assert foreign_services(settings) == []


def test_a_port_held_by_something_else_names_the_process(tmp_path: Path, foreign_stack: ForeignStack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = _settings(tmp_path / "ours", foreign_stack, temporal_address=f"127.0.0.1:{port}")
        foreign = [f for f in foreign_services(settings) if f.key == "temporal"]
        [line] = describe(foreign)
    assert line.startswith(f"127.0.0.1:{port} is already in use by another process (pid ")
    assert line.endswith("stop it, or move this one with AIOS_TEMPORAL_ADDRESS=127.0.0.1:<port>")


def _moved_env(data_dir: Path, stack: ForeignStack) -> dict[str, str]:
    return child_env(
        AIOS_DATA_DIR=str(data_dir),
        AIOS_TEMPORAL_ADDRESS=f"127.0.0.1:{stack.temporal_port}",
        AIOS_TEMPORAL_UI_PORT=str(free_port()),
        AIOS_POSTGRES_PORT=str(stack.postgres_port),
        AIOS_CODEC_PORT=str(stack.codec_port),
        AIOS_DATABASE_URL=None,
        AIOS_PAYLOAD_ENCRYPTION=None,
        AIOS_TEMPORAL_API_KEY=None,
        COLUMNS="80",  # a narrow terminal: the refusal still is one line
    )


def test_dev_up_beside_a_foreign_stack_refuses_in_one_line(
    tmp_path: Path, foreign_stack: ForeignStack
) -> None:
    ours = tmp_path / "ours"
    env = _moved_env(ours, foreign_stack)
    up = subprocess.run(
        [*AIOS, "dev", "up"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert up.returncode == 1, up.stdout + up.stderr
    assert up.stderr.splitlines() == [
        f"error: {describe(foreign_services(_settings(ours, foreign_stack)))[0]}"
    ]
    assert f"served by a stack started from {foreign_stack.data_dir}" in up.stderr
    assert not ours.exists()  # nothing started, nothing written

    status = subprocess.run(
        [*AIOS, "dev", "status"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert status.returncode == 1
    problems = status.stderr.splitlines()  # Temporal, Postgres, the codec server: a line each
    assert [line.split(" is served by ")[0] for line in problems] == [
        f"error: 127.0.0.1:{port}"
        for port in (foreign_stack.temporal_port, foreign_stack.postgres_port, foreign_stack.codec_port)
    ]
    assert status.stdout.count("foreign (started from") == 3


def test_the_suite_stops_at_once_when_a_foreign_stack_holds_its_ports(
    tmp_path: Path, foreign_stack: ForeignStack
) -> None:
    env = _moved_env(tmp_path / "ours", foreign_stack)
    suite = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_ping_workflow.py",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert suite.returncode == pytest.ExitCode.USAGE_ERROR, suite.stdout + suite.stderr
    assert f"are served by a stack started from {foreign_stack.data_dir}" in suite.stdout
    assert " passed" not in suite.stdout
    assert " failed" not in suite.stdout
    assert not (tmp_path / "ours").exists()
