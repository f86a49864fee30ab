"""`aios dev up --profile cluster`: the real Temporal server on Postgres, on a stack of its own.

A run started through the `aios` CLI, served by an `aios worker` process, completes; its history
is in the `temporal` database; after the server restarts the run is still there; `aios dev down`
stops everything. `make test-cluster` builds the binaries first.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from aios.settings import load_settings
from aios.stack import cluster, temporal
from tests.support.env import child_env
from tests.support.ports import free_port

AIOS = [sys.executable, "-m", "aios.cli"]


def _frontend_port() -> int:
    """A port whose neighbours (the other services' ports, Temporal's layout) are free too, low
    enough for the membership ports (a smallint column)."""
    for _ in range(200):
        port = random.randrange(21000, 31000)
        if all(_free(port + offset) for offset in (0, 1, 2, 6, 10, -300, -299, -298, -294)):
            return port
    raise AssertionError("no free block of ports for the cluster's services")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def cluster_env() -> Iterator[dict[str, str]]:
    shared = load_settings()
    if not cluster.binary(shared, cluster.SERVER).exists():
        pytest.skip("the cluster's binaries are not built: `make test-cluster` builds them")
    data_dir = (shared.data_dir / "test-stacks" / f"cluster-{uuid.uuid4().hex[:8]}").resolve()
    (data_dir / "bin").mkdir(parents=True)
    for name in cluster.BUILDS:  # the project's builds, not a second go install
        (data_dir / "bin" / name).symlink_to(cluster.binary(shared, name).parent.resolve())
    binary = temporal.find_binary(shared)
    assert binary is not None
    env = child_env(
        TEMPORAL_CLI=str(binary.resolve()),
        AIOS_DATA_DIR=str(data_dir),
        AIOS_TEMPORAL_ADDRESS=f"127.0.0.1:{_frontend_port()}",
        AIOS_TEMPORAL_UI_PORT=str(free_port()),
        AIOS_POSTGRES_PORT=str(free_port()),
        AIOS_CODEC_PORT=str(free_port()),
        AIOS_APPROVALS_PORT=str(free_port()),
        AIOS_TEMPORAL_PROFILE="cluster",
        AIOS_TASK_QUEUE=f"cluster-{uuid.uuid4().hex[:6]}",
        AIOS_DATABASE_URL=None,
        COLUMNS="250",
    )
    yield env
    subprocess.run([*AIOS, "dev", "down"], env=env, capture_output=True, check=False)
    shutil.rmtree(data_dir, ignore_errors=True)


def _aios(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AIOS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _executions(env: dict[str, str], workflow_id: str) -> int:
    url = f"postgresql://aios@127.0.0.1:{env['AIOS_POSTGRES_PORT']}/temporal"
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM executions WHERE workflow_id = %s", (workflow_id,)
        ).fetchone()
        return int(row[0]) if row else 0


def test_a_run_on_the_real_server_completes_persists_and_survives_a_restart(
    cluster_env: dict[str, str],
) -> None:
    env = cluster_env
    up = _aios(env, "dev", "up")
    assert up.returncode == 0, up.stderr
    assert f"Temporal {cluster.SERVER_VERSION} on Postgres" in up.stdout
    again = _aios(env, "dev", "up")
    assert again.returncode == 0 and "already running" in again.stdout, again.stderr

    worker = subprocess.Popen(
        [*AIOS, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ran = _aios(env, "run", "noop-worker", "--wait", timeout=180)
        assert ran.returncode == 0, ran.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    run_id = next(word.rstrip(":") for word in ran.stdout.split() if word.startswith("noop-worker-"))
    assert _executions(env, run_id) == 1

    assert _aios(env, "dev", "down").returncode == 0
    assert _aios(env, "dev", "up").returncode == 0
    # Persistence and visibility both outlived the server: the run is listed, completed.
    listed = _aios(env, "runs")
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if run_id in line]
    assert "completed" in row
