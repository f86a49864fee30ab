"""A soak of runs while 30% of effect calls fail with 503 (Retry-After: 0) or 500: no effect twice."""

from __future__ import annotations

import random
import time

import pytest

from aios.client import AiosClient
from tests.faults.report import FULL, REPORT, SEED, Row
from tests.faults.support import account, assert_clean, settle, start_runs
from tests.support.effect_server import EffectServer, Fault

pytestmark = pytest.mark.integration

SOAK_RUNS = 100 if FULL else 10
FAULT_RATE = 0.3


def _connector_faults(rng: random.Random, count: int) -> list[Fault]:
    faults = []
    for _ in range(count):
        if rng.random() < FAULT_RATE:
            faults.append(Fault(status=503, retry_after=0) if rng.random() < 0.5 else Fault(status=500))
        else:
            faults.append(Fault())
    return faults


async def test_connector_faults_at_30_percent_apply_no_effect_twice(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    rng = random.Random(SEED + 2)
    # Enough faults for every first try and its retries; past the queue, calls succeed.
    faults = _connector_faults(rng, SOAK_RUNS * 3 * 3)
    effect_server.faults.extend(faults)
    injected = sum(1 for f in faults if f.status is not None)
    row = REPORT.add(Row("connector faults 30% (503/500)", SOAK_RUNS))
    began = time.monotonic()
    run_ids = await start_runs(aios_client, effect_server.url, "soak", SOAK_RUNS, 0)
    outcomes = await settle(aios_client, run_ids, 120)
    row.seconds = time.monotonic() - began
    consumed = faults[: len(faults) - len(effect_server.faults)]
    failed_answers = sum(1 for f in consumed if f.status is not None)
    await account(row, aios_client, effect_server, outcomes)
    row.notes += f"{injected} faults queued, {failed_answers} hit (answered 503/500, then retried). "
    assert failed_answers > 0  # the faults really were hit
    assert_clean(row, SOAK_RUNS)
