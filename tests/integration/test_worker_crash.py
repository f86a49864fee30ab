"""SIGKILL the worker in the middle of an effect; a new worker finishes the run, every effect once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from aios.client import AiosClient
from aios.models.manifest import AgentManifest, PolicySpec, RiskClass
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.support.effect_server import EffectServer, Fault
from tests.support.env import child_env
from tests.support.manifests import http_action, unique_agent

ACTIONS = ("reserve", "charge", "confirm")


def _three_step_manifest(base_url: str, *, inline: bool) -> AgentManifest:
    return AgentManifest.model_validate(
        {
            "name": unique_agent("crash"),
            "actions": {name: http_action(base_url, name, RiskClass.LOW, inline=inline) for name in ACTIONS},
            "policy": PolicySpec(approvers=["alice"]),
        }
    )


class WorkerProcess:
    def __init__(self, task_queue: str, settings: Settings) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aios.cli", "worker"],
            env=child_env(settings, AIOS_TASK_QUEUE=task_queue),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def workers(task_queue: str) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


async def _wait_for_effects(server: EffectServer, count: int) -> None:
    for _ in range(600):
        if server.total_effects() >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server never saw {count} effect(s)")


# inline: the effect runs inside the run's workflow task; the new worker takes the run over when
# that task times out, and performs again through the ledger what the killed one had begun.
@pytest.mark.parametrize("inline", [False, True], ids=["queue", "inline"])
async def test_sigkill_mid_effect_then_a_new_worker_finishes_with_every_effect_once(
    stack_settings: Settings,
    task_queue: str,
    effect_server: EffectServer,
    workers: list[WorkerProcess],
    inline: bool,
) -> None:
    # The second effect is applied only after 3 s: the worker dies while waiting for it.
    effect_server.faults.extend([Fault(), Fault(hang_seconds=3)])
    client = await AiosClient.connect(stack_settings.model_copy(update={"task_queue": task_queue}))
    manifest = _three_step_manifest(effect_server.url, inline=inline)
    workers.append(WorkerProcess(task_queue, stack_settings))
    started = await client.start_run(manifest.name, {"customer": "c-7", "amount": 10}, manifest=manifest)

    await _wait_for_effects(effect_server, 1)
    await asyncio.sleep(1.0)  # the second call is now in flight
    workers[0].kill()
    workers.append(WorkerProcess(task_queue, stack_settings))

    final = await asyncio.wait_for(client.result(started.run_id), timeout=120)
    assert final.status is RunStatus.COMPLETED
    assert [step.action for step in final.steps] == list(ACTIONS)
    assert effect_server.duplicates() == 0
    assert sorted(effect_server.applied.values()) == [1, 1, 1]
    async with await psycopg.AsyncConnection.connect(stack_settings.resolved_database_url) as conn:
        cursor = await conn.execute(
            "SELECT action, state, attempts FROM aios_effects WHERE run_id = %s ORDER BY action",
            (started.run_id,),
        )
        ledger = await cursor.fetchall()
    assert {(action, state) for action, state, _ in ledger} == {(a, "succeeded") for a in ACTIONS}
    attempts = {action: count for action, _, count in ledger}
    assert attempts["charge"] >= 2  # the killed attempt, then the one that found the key
