"""A soak of runs while 30% of effect calls fail with 503 (Retry-After: 0) or 500: no effect twice.

The runs go in batches (each settled before the next starts), so the soak's size does not
decide how many runs wait in Temporal at once. The breaker's behaviour is logged: what it did
during the soak (opens, half-open probes, refused attempts) goes in the report's notes.
"""

from __future__ import annotations

import random
import time

import pytest

from aios.client import AiosClient
from aios.models.run import RunStatus
from tests.faults.breaker_watch import watch_breaker
from tests.faults.report import FULL, REPORT, SEED, Row
from tests.faults.support import account, assert_clean, settle, start_runs
from tests.support.effect_server import EffectServer, Fault

pytestmark = pytest.mark.integration

SOAK_RUNS = 500 if FULL else 10
SOAK_BATCH = 100
FAULT_RATE = 0.3
# Per batch: a run's three effects, each retried through 30% faults and, at worst, an open
# breaker's 30 s cool-downs (Temporal retries up to 10 times, backing off to 30 s).
SETTLE_SECONDS = 300
# The whole soak: five batches, each as long as its breaker opens make it (30 s per open; a
# full-size soak has taken 150 to 600 s); the suite's default of 300 s per test is too short.
SOAK_TIMEOUT = 1800 if FULL else 300


def _connector_faults(rng: random.Random, count: int) -> list[Fault]:
    faults = []
    for _ in range(count):
        if rng.random() < FAULT_RATE:
            faults.append(Fault(status=503, retry_after=0) if rng.random() < 0.5 else Fault(status=500))
        else:
            faults.append(Fault())
    return faults


@pytest.mark.timeout(SOAK_TIMEOUT)
async def test_connector_faults_at_30_percent_apply_no_effect_twice(
    aios_client: AiosClient, effect_server: EffectServer, task_queue: str
) -> None:
    rng = random.Random(SEED + 2)
    # Enough faults for every first try and its retries; past the queue, calls succeed.
    faults = _connector_faults(rng, SOAK_RUNS * 3 * 3)
    effect_server.faults.extend(faults)
    injected = sum(1 for f in faults if f.status is not None)
    row = REPORT.add(Row("connector faults 30% (503/500)", SOAK_RUNS))
    began = time.monotonic()
    database_url = aios_client.settings.resolved_database_url
    outcomes: dict[str, RunStatus | None] = {}
    async with watch_breaker("http", task_queue, database_url) as breaker:
        for offset in range(0, SOAK_RUNS, SOAK_BATCH):
            size = min(SOAK_BATCH, SOAK_RUNS - offset)
            run_ids = await start_runs(aios_client, effect_server.url, "soak", size, offset)
            outcomes.update(await settle(aios_client, run_ids, SETTLE_SECONDS))
        row.seconds = time.monotonic() - began
        await breaker.settle_reports(database_url)
    consumed = faults[: len(faults) - len(effect_server.faults)]
    failed_answers = sum(1 for f in consumed if f.status is not None)
    await account(row, aios_client, effect_server, outcomes)
    row.notes += f"{injected} faults queued, {failed_answers} hit (answered 503/500, then retried). "
    row.notes += breaker.summary()
    assert failed_answers > 0  # the faults really were hit
    # The health rows Postgres holds (what `aios status` shows) agree with the breaker's log;
    # an open circuit lasts a 30 s cool-down, long enough for a 5 s report to show it.
    assert breaker.states_seen, "the worker never reported its breakers' health"
    assert breaker.reported_opened == breaker.opened, breaker.summary()
    if breaker.opened:
        assert breaker.states_seen & {"open", "half_open"}, breaker.summary()
    assert_clean(row, SOAK_RUNS)
