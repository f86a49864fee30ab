"""docker-compose.yml: structure always, and `docker compose config` wherever Compose v2 exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aios.stack.temporal import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
EXPECTED_SERVICES = {"postgres", "temporal", "temporal-ui", "qdrant", "jaeger", "aios-worker"}


def _compose() -> dict[str, object]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_file_has_every_service_of_the_server_deployment() -> None:
    services = _compose()["services"]
    assert isinstance(services, dict)
    assert set(services) >= EXPECTED_SERVICES
    assert services["aios-worker"]["build"]["dockerfile"] == "infra/docker/Dockerfile"


def test_every_published_port_is_bound_to_loopback() -> None:
    services = _compose()["services"]
    assert isinstance(services, dict)
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published, "the UIs and the frontend are published"
    assert all(str(port).startswith("127.0.0.1:") for port in published), published


def test_server_registers_the_same_search_attributes_as_the_dev_stack() -> None:
    script = (ROOT / "infra/temporal/register-search-attributes.sh").read_text()
    for name in SEARCH_ATTRIBUTES:
        assert name in script


def _is_compose_v2(command: list[str]) -> bool:
    version = subprocess.run([*command, "version"], capture_output=True, text=True, check=False)
    return version.returncode == 0 and "v2." in version.stdout


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    candidates = [[docker, "compose"]] if docker else []
    for binary in (shutil.which("docker-compose"), str(ROOT / ".aios/bin/docker-compose")):
        if binary and Path(binary).exists():
            candidates.append([binary])
    return next((command for command in candidates if _is_compose_v2(command)), None)


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no Compose v2 here (`make compose-check` builds one into .aios/bin)")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
