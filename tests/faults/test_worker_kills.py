"""Workers SIGKILLed at seeded random moments: every run finishes, every effect once.

Also with a saga: a later step refused for good makes the run undo its first effect, with
kills landing mid-effect and mid-undo; each effect and each undo is applied once.

Reduced size inside `make test`; AIOS_FAULTS_FULL=1 (`make faults`) runs the full size.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from aios.client import AiosClient
from aios.models.manifest import AgentManifest
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.faults.report import FULL, REPORT, SEED, Row
from tests.faults.support import (
    REFUSED_PATH,
    SAGA_ACTIONS,
    SAGA_UNDO,
    WorkerProcess,
    account,
    assert_clean,
    saga_manifest,
    settle,
    start_manifests,
    start_runs,
    three_step_manifest,
    wait_for_effects,
)
from tests.support.effect_server import EffectServer, Fault

pytestmark = pytest.mark.integration

KILL_RUNS = 100 if FULL else 5
KILL_BATCH = 10 if FULL else 5
SAGA_RUNS = 100 if FULL else 6
SAGA_BATCH = 10 if FULL else 6
PAIR_RUNS = 20 if FULL else 4
# A killed activity is retried once its heartbeat times out (2 s): generous, still bounded.
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


async def _retried_effects(client: AiosClient, run_ids: list[str], *, action: str | None = None) -> int:
    """Effects whose ledger row was begun more than once: a kill interrupted them."""
    async with await psycopg.AsyncConnection.connect(client.settings.resolved_database_url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM aios_effects WHERE run_id = ANY(%s) AND attempts > 1"
            " AND (%s::text IS NULL OR action = %s)",
            (run_ids, action, action),
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


@dataclass
class KillRig:
    """One worker subprocess at a time on the test's queue; each batch of runs ends in a kill."""

    client: AiosClient
    server: EffectServer
    workers: list[WorkerProcess]
    task_queue: str
    log: Path
    rng: random.Random
    delays: list[float] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # time.monotonic() of each SIGKILL

    async def run_in_batches(self, manifests: list[AgentManifest], batch: int) -> dict[str, RunStatus | None]:
        """Start each batch, SIGKILL the worker at a seeded moment, start a new one, settle the batch."""
        if not self.workers:
            self.workers.append(WorkerProcess(self.task_queue, self.log))
        outcomes: dict[str, RunStatus | None] = {}
        for offset in range(0, len(manifests), batch):
            chunk = manifests[offset : offset + batch]
            self.server.faults.extend(_hangs(self.rng, len(chunk) * 3))
            seen = self.server.total_effects()
            run_ids = await start_manifests(self.client, chunk, offset)
            try:
                await wait_for_effects(self.server, seen + 1)
            except AssertionError as stuck:
                raise AssertionError(f"{stuck}; the worker's log ends:\n{self._log_tail()}") from stuck
            delay = self.rng.uniform(0.0, 2.0)
            self.delays.append(round(delay, 2))
            await asyncio.sleep(delay)
            self.kills.append(time.monotonic())
            self.workers[-1].kill()
            self.workers.append(WorkerProcess(self.task_queue, self.log))
            outcomes.update(await settle(self.client, run_ids, SETTLE_SECONDS))
        return outcomes

    def recoveries(self) -> list[float]:
        """For each kill that interrupted an effect: seconds until a live worker re-attempted it."""
        return [r for kill in self.kills if (r := self.server.retried_after(kill)) is not None]

    def _log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


async def test_worker_sigkilled_at_random_points_then_restarted(
    client_settings: Settings,
    task_queue: str,
    effect_server: EffectServer,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    client = await AiosClient.connect(client_settings)
    rig = KillRig(client, effect_server, workers, task_queue, tmp_path / "worker.log", random.Random(SEED))
    row = REPORT.add(Row("worker SIGKILL at random points, restarted", KILL_RUNS))
    began = time.monotonic()
    manifests = [three_step_manifest(effect_server.url, "kill") for _ in range(KILL_RUNS)]
    outcomes = await rig.run_in_batches(manifests, KILL_BATCH)
    row.seconds = time.monotonic() - began
    await account(row, client, effect_server, outcomes)
    retried = await _retried_effects(client, list(outcomes))
    row.recoveries = rig.recoveries()
    row.notes += (
        f"{len(rig.delays)} kill(s), at {rig.delays} s after the batch's first effect; "
        f"{retried} effect(s) were re-attempted after a kill and still applied once. "
    )
    assert_clean(row, KILL_RUNS)


async def test_a_refused_step_compensates_exactly_once_despite_kills(
    client_settings: Settings,
    task_queue: str,
    effect_server: EffectServer,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    """reserve, then ship; the server refuses some ships for good (422), so those runs release."""
    client = await AiosClient.connect(client_settings)
    rng = random.Random(SEED + 4)
    rig = KillRig(client, effect_server, workers, task_queue, tmp_path / "worker.log", rng)
    row = REPORT.add(Row("step refused for good, saga compensates, SIGKILLs", SAGA_RUNS))
    effect_server.refusals[REFUSED_PATH] = 422
    # Seeded, about half refused; at least one of each, so both outcomes are always exercised.
    refused = [rng.random() < 0.5 for _ in range(SAGA_RUNS)]
    refused[0], refused[-1] = True, False
    manifests = [saga_manifest(effect_server.url, "saga", ship_refused=r) for r in refused]
    began = time.monotonic()
    outcomes = await rig.run_in_batches(manifests, SAGA_BATCH)
    row.seconds = time.monotonic() - began
    expected = {
        run_id: RunStatus.COMPENSATED if r else RunStatus.COMPLETED
        for run_id, r in zip(outcomes, refused, strict=True)
    }
    effects_when = {RunStatus.COMPLETED: SAGA_ACTIONS, RunStatus.COMPENSATED: ("reserve", SAGA_UNDO)}
    await account(row, client, effect_server, outcomes, effects_when=effects_when, expected_status=expected)
    undone = effect_server.effects_for(f"/{SAGA_UNDO}")
    row.recoveries = rig.recoveries()
    retried = await _retried_effects(client, list(outcomes), action=SAGA_UNDO)
    row.notes += (
        f"{sum(refused)} run(s) had their ship refused (422, final), {undone} release(s) applied; "
        f"{len(rig.delays)} kill(s), at {rig.delays} s after the batch's first effect; {retried} "
        f"release(s) were re-attempted after a kill and still applied once. "
    )
    assert row.compensated == sum(refused) == undone, row
    assert effect_server.effects_for(f"/{REFUSED_PATH}") == 0
    assert_clean(row, SAGA_RUNS)


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
    killed_at = time.monotonic()
    victim.kill()
    survivor = next(w for w in workers if w is not victim)
    outcomes = await settle(client, run_ids, SETTLE_SECONDS)
    row.seconds = time.monotonic() - began
    assert survivor.alive  # nobody restarted anything: the survivor did all the rest
    recovered = effect_server.retried_after(killed_at)
    row.recoveries = [recovered] if recovered is not None else []
    await account(row, client, effect_server, outcomes)
    assert_clean(row, PAIR_RUNS)
