"""Workers SIGKILLed at seeded random moments: every run finishes, every effect once.

Reduced size inside `make test`; AIOS_FAULTS_FULL=1 (`make faults`) runs the full size.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from aios.client import AiosClient
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.faults.report import FULL, REPORT, SEED, Row
from tests.faults.support import (
    WorkerProcess,
    account,
    assert_clean,
    settle,
    start_runs,
    wait_for_effects,
)
from tests.support.effect_server import EffectServer, Fault

pytestmark = pytest.mark.integration

KILL_RUNS = 100 if FULL else 5
KILL_BATCH = 10 if FULL else 5
PAIR_RUNS = 20 if FULL else 4
# A killed activity is retried once its heartbeat times out (10 s): generous, still bounded.
SETTLE_SECONDS = 120


@pytest.fixture
def workers(task_queue: str) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def client_settings(stack_settings: Settings, task_queue: str) -> Settings:
    return stack_settings.model_copy(update={"task_queue": task_queue})


def _hangs(rng: random.Random, count: int) -> list[Fault]:
    """Some effect calls answer late (then apply normally), so kills often land mid-effect."""
    return [
        Fault(hang_seconds=rng.uniform(0.3, 1.2)) if rng.random() < 0.4 else Fault() for _ in range(count)
    ]


async def _retried_effects(client: AiosClient, run_ids: list[str]) -> int:
    async with await psycopg.AsyncConnection.connect(client.settings.resolved_database_url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM aios_effects WHERE run_id = ANY(%s) AND attempts > 1", (run_ids,)
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def test_worker_sigkilled_at_random_points_then_restarted(
    client_settings: Settings,
    task_queue: str,
    effect_server: EffectServer,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    client = await AiosClient.connect(client_settings)
    row = REPORT.add(Row("worker SIGKILL at random points, restarted", KILL_RUNS))
    began = time.monotonic()
    workers.append(WorkerProcess(task_queue, tmp_path / "worker.log"))
    outcomes: dict[str, RunStatus | None] = {}
    delays = []
    for offset in range(0, KILL_RUNS, KILL_BATCH):
        size = min(KILL_BATCH, KILL_RUNS - offset)
        effect_server.faults.extend(_hangs(rng, size * 3))
        seen = effect_server.total_effects()
        run_ids = await start_runs(client, effect_server.url, "kill", size, offset)
        await wait_for_effects(effect_server, seen + 1)
        delay = rng.uniform(0.0, 2.0)
        delays.append(round(delay, 2))
        await asyncio.sleep(delay)
        workers[-1].kill()
        workers.append(WorkerProcess(task_queue, tmp_path / "worker.log"))
        outcomes.update(await settle(client, run_ids, SETTLE_SECONDS))
    row.seconds = time.monotonic() - began
    await account(row, client, effect_server, outcomes)
    retried = await _retried_effects(client, list(outcomes))
    row.notes += (
        f"{len(delays)} kill(s), at {delays} s after the batch's first effect; "
        f"{retried} effect(s) were re-attempted after a kill and still applied once. "
    )
    assert_clean(row, KILL_RUNS)


async def test_two_workers_on_one_queue_one_killed_the_other_finishes(
    client_settings: Settings,
    task_queue: str,
    effect_server: EffectServer,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED + 1)
    client = await AiosClient.connect(client_settings)
    row = REPORT.add(Row("two workers, one SIGKILLed", PAIR_RUNS))
    began = time.monotonic()
    workers.append(WorkerProcess(task_queue, tmp_path / "a.log"))
    workers.append(WorkerProcess(task_queue, tmp_path / "b.log"))
    effect_server.faults.extend(_hangs(rng, PAIR_RUNS * 3))
    run_ids = await start_runs(client, effect_server.url, "pair", PAIR_RUNS, 0)
    await wait_for_effects(effect_server, 1)
    await asyncio.sleep(rng.uniform(0.2, 1.0))
    victim, survivor = workers[rng.randrange(2)], None
    victim.kill()
    survivor = next(w for w in workers if w is not victim)
    outcomes = await settle(client, run_ids, SETTLE_SECONDS)
    row.seconds = time.monotonic() - began
    assert survivor.alive  # nobody restarted anything: the survivor did all the rest
    await account(row, client, effect_server, outcomes)
    assert_clean(row, PAIR_RUNS)
