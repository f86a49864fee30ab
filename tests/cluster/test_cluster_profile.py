"""`aios dev up --profile cluster`: the real Temporal server on Postgres, on a stack of its own.

A run started through the `aios` CLI, served by an `aios worker` process, completes; its history
is in the `temporal` database; after the server restarts the run is still there; `aios dev down`
stops everything. `make test-cluster` builds the binaries first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from aios.settings import load_settings
from aios.stack import cluster
from tests.support.stacks import data_dir, own_stack_env

AIOS = [sys.executable, "-m", "aios.cli"]


@pytest.fixture(scope="module")
def cluster_env() -> Iterator[dict[str, str]]:
    shared = load_settings()
    if not cluster.binary(shared, cluster.SERVER).exists():
        pytest.skip("the cluster's binaries are not built: `make test-cluster` builds them")
    env = own_stack_env(
        shared, "cluster", "cluster", AIOS_TASK_QUEUE=f"cluster-{uuid.uuid4().hex[:6]}", COLUMNS="250"
    )
    yield env
    subprocess.run([*AIOS, "dev", "down"], env=env, capture_output=True, check=False)
    shutil.rmtree(data_dir(env), ignore_errors=True)


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
