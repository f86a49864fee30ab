"""Temporal and Postgres restarted under in-flight runs, on a stack of this test's own.

Never the shared stack: `aios dev up` runs here on its own ports and data dir (as
tests/integration/test_dev_stack.py does). Starting a stack costs tens of seconds, so these run
only at full size (AIOS_FAULTS_FULL=1, `make faults`) or with AIOS_FAULTS_RESTARTS=1.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.client import AiosClient
from aios.settings import Settings, load_settings
from aios.stack import cluster, postgres, temporal
from aios.stack.process import terminate
from tests.faults.report import FULL, REPORT, SEED, Row
from tests.faults.support import WorkerProcess, account, assert_clean, settle, start_runs, wait_for_effects
from tests.support.effect_server import EffectServer, Fault
from tests.support.stacks import own_stack_env as own_stack_env_for
from tests.support.stacks import running

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (FULL or os.environ.get("AIOS_FAULTS_RESTARTS") == "1"),
        reason="needs its own stack: AIOS_FAULTS_FULL=1 or AIOS_FAULTS_RESTARTS=1",
    ),
]

RESTART_RUNS = 10


PROFILE = os.environ.get("AIOS_TEMPORAL_PROFILE", "dev")


@pytest.fixture(scope="module")
def own_stack_env() -> Iterator[dict[str, str]]:
    """A stack of the module's own, of the profile the suite runs on (`make test-cluster`: cluster)."""
    with running(own_stack_env_for(load_settings(), f"faults-{PROFILE}", PROFILE)) as env:
        yield env


@pytest.fixture
def own_settings(own_stack_env: dict[str, str], task_queue: str) -> Settings:
    return Settings(
        data_dir=Path(own_stack_env["AIOS_DATA_DIR"]),
        temporal_address=own_stack_env["AIOS_TEMPORAL_ADDRESS"],
        temporal_ui_port=int(own_stack_env["AIOS_TEMPORAL_UI_PORT"]),
        postgres_port=int(own_stack_env["AIOS_POSTGRES_PORT"]),
        codec_port=int(own_stack_env["AIOS_CODEC_PORT"]),
        task_queue=task_queue,
        temporal_profile=PROFILE,
    )


def _stop_temporal(settings: Settings) -> None:
    """Stop the Temporal server process alone (the cluster's Web UI server stays up)."""
    files = cluster.server_files(settings) if PROFILE == "cluster" else temporal.files(settings)
    pid = files.read_pid()
    assert pid is not None, "the own stack's Temporal is not running"
    terminate(pid)
    files.pid_file.unlink(missing_ok=True)


def _restart(settings: Settings, service: str) -> None:
    if service == "temporal":
        _stop_temporal(settings)
        time.sleep(1.0)
        (cluster.start if PROFILE == "cluster" else temporal.start)(settings, print)
    else:
        postgres.stop(settings)
        time.sleep(1.0)
        postgres.start(settings)


def _on_cluster() -> str:
    return " (cluster profile)" if PROFILE == "cluster" else ""


@pytest.mark.parametrize("service", ["temporal", "postgres"])
async def test_a_restart_under_in_flight_runs_loses_nothing(
    service: str,
    own_stack_env: dict[str, str],
    own_settings: Settings,
    effect_server: EffectServer,
) -> None:
    rng = random.Random(SEED + 3)
    task_queue = own_settings.task_queue
    log = Path(own_stack_env["AIOS_DATA_DIR"]) / f"worker-{service}.log"
    row = REPORT.add(Row(f"{service} restarted under in-flight runs{_on_cluster()}", RESTART_RUNS))
    began = time.monotonic()
    worker = WorkerProcess(task_queue, log, settings=own_settings)
    try:
        client = await AiosClient.connect(own_settings)
        effect_server.faults.extend(
            Fault(hang_seconds=rng.uniform(0.5, 1.5)) if rng.random() < 0.5 else Fault()
            for _ in range(RESTART_RUNS * 3)
        )
        run_ids = await start_runs(client, effect_server.url, service[:4], RESTART_RUNS, 0)
        await wait_for_effects(effect_server, 1, within=60)
        await asyncio.to_thread(_restart, own_settings, service)
        client = await AiosClient.connect(own_settings)  # a fresh connection after the restart
        outcomes = await settle(client, run_ids, 180)
        row.seconds = time.monotonic() - began
        await account(row, client, effect_server, outcomes)
        assert worker.alive  # the worker rode out the restart without being restarted itself
    finally:
        worker.stop()
    assert_clean(row, RESTART_RUNS)
