"""What the compose file's aios containers run, run on the host against the cluster profile.

No Docker engine runs here, so the image's commands are read from docker-compose.yml and the
Dockerfile and run as host processes, with each service's environment translated from the
compose network to this stack's loopback addresses. The image installs the package with the
`memory-local` extra and the embedder's weights; the project's venv holds the same install, so
it stands in for the image's Python. The keyring is a copy the running user owns with mode
0600, as compose's `user: AIOS_UID` makes it inside the container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from aios.settings import load_settings
from aios.stack import cluster
from tests.support.ports import free_port
from tests.support.stacks import data_dir, own_stack_env, running

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)
# The compose network's names, and what stands for them on this host (None: left unset).
DROPPED = ("AIOS_QDRANT_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "AIOS_DATABASE_URL")


def compose_services() -> dict[str, Any]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert isinstance(services, dict)
    return services


def dockerfile_command() -> list[str]:
    [line] = [
        line
        for line in (ROOT / "infra/docker/Dockerfile").read_text().splitlines()
        if line.startswith("CMD ")
    ]
    command = json.loads(line.removeprefix("CMD "))
    assert isinstance(command, list)
    return [str(part) for part in command]


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, str]]:
    shared = load_settings()
    if not cluster.binary(shared, cluster.SERVER).exists():
        pytest.skip("the cluster's binaries are not built: `make test-cluster` builds them")
    with running(own_stack_env(shared, "image", "cluster", AIOS_TASK_QUEUE="aios", COLUMNS="250")) as env:
        yield env


def container_env(
    service: dict[str, Any], stack: dict[str, str], secrets: Path, home: Path
) -> dict[str, str]:
    """The service's compose environment, its network names replaced by this stack's."""
    env = {key: value for key, value in stack.items() if not key.startswith(("AIOS_", "OTEL_"))}
    env.update({"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": str(home)})
    for key in ("AIOS_POSTGRES_PORT", "AIOS_DATA_DIR", "AIOS_TASK_QUEUE", "AIOS_TEMPORAL_UI_PORT"):
        env[key] = stack[key]
    for key, value in service.get("environment", {}).items():
        if key in DROPPED:
            continue
        text = str(value)
        text = text.replace("temporal:7233", stack["AIOS_TEMPORAL_ADDRESS"])
        text = text.replace("/run/aios", str(secrets))
        env[key] = text
    return env


def on_host(command: list[str], ports: dict[str, int]) -> list[str]:
    """The container's command bound to loopback, on free ports of this host."""
    swapped = [ports.get(part, part) for part in command]
    return ["127.0.0.1" if part == "0.0.0.0" else str(part) for part in swapped]


@pytest.fixture
def secrets(stack: dict[str, str], tmp_path: Path) -> Path:
    """The stack's keyring, copied where compose mounts infra/secrets, owned by us, mode 0600."""
    keyring = data_dir(stack) / "keys" / "payload-keys"  # aios.temporal.codec.default_key_file
    directory = tmp_path / "secrets"
    directory.mkdir()
    copy = directory / "payload-keys"
    shutil.copyfile(keyring, copy)
    copy.chmod(0o600)
    return directory


def _aios(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["aios", *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_worker_image_command_serves_runs_with_memory(
    stack: dict[str, str], secrets: Path, tmp_path: Path
) -> None:
    services = compose_services()
    worker_service = services["aios-worker"]
    assert worker_service["command"] == dockerfile_command()
    env = container_env(worker_service, stack, secrets, tmp_path)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(worker_service["command"], env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        runs = []
        for _ in range(2):
            ran = _aios(env, "run", "noop-worker", "--input", '{"customer": "c-image"}', "--wait")
            assert ran.returncode == 0, ran.stdout + ran.stderr + (tmp_path / "worker.log").read_text()
            runs.append(next(w.rstrip(":") for w in ran.stdout.split() if w.startswith("noop-worker-")))
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    url = f"postgresql://aios@127.0.0.1:{stack['AIOS_POSTGRES_PORT']}/aios"
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT indexed FROM aios_memories WHERE source_run = %s", (runs[0],)).fetchall()
    assert rows and all(indexed for (indexed,) in rows), rows  # remembered, and indexed by the worker
    assert "holding the memory store" in (tmp_path / "worker.log").read_text()


ENDPOINTS = {
    "aios-approvals": (("8235",), "/a/not-a-token"),
    "aios-events": (("8236", "2525"), "/events"),
}


@pytest.mark.parametrize("service", sorted(ENDPOINTS))
def test_the_endpoint_services_answer(
    stack: dict[str, str], secrets: Path, tmp_path: Path, service: str
) -> None:
    ports, path = ENDPOINTS[service]
    definition = compose_services()[service]
    free = {port: free_port() for port in ports}
    env = container_env(definition, stack, secrets, tmp_path)
    server = subprocess.Popen(on_host(definition["command"], free), env=env, cwd=tmp_path)
    try:
        answer = _request(free[ports[0]], path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert 400 <= answer < 500, answer  # served, and the bad link or unsigned event refused


def _request(port: int, path: str) -> int:
    for _ in range(100):
        try:
            method = "POST" if path == "/events" else "GET"
            return httpx.request(
                method, f"http://127.0.0.1:{port}{path}", content=b"{}", timeout=5
            ).status_code
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered on 127.0.0.1:{port}")
