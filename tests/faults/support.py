"""What the fault scenarios share: worker subprocesses, three-step manifests, outcome accounting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from aios.client import AiosClient
from aios.models.manifest import AgentManifest, PolicySpec, RiskClass
from aios.models.run import RunStatus
from tests.faults.report import Row
from tests.support.effect_server import EffectServer
from tests.support.manifests import http_action, unique_agent

ACTIONS = ("reserve", "charge", "confirm")


def three_step_manifest(base_url: str, prefix: str) -> AgentManifest:
    # One agent per run: agents share concurrency slots by name, and slot waits would blur timings.
    return AgentManifest.model_validate(
        {
            "name": unique_agent(prefix),
            "actions": {name: http_action(base_url, name, RiskClass.LOW) for name in ACTIONS},
            "policy": PolicySpec(approvers=["alice"]),
        }
    )


class WorkerProcess:
    """`aios worker` as a subprocess on a given queue, so it can be SIGKILLed."""

    def __init__(
        self, task_queue: str, log: Path | None = None, base_env: dict[str, str] | None = None
    ) -> None:
        env = {**(base_env or os.environ), "AIOS_TASK_QUEUE": task_queue}
        self._log = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aios.cli", "worker"], env=env, stdout=self._log, stderr=self._log
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not subprocess.DEVNULL:
            self._log.close()  # type: ignore[union-attr]


async def wait_for_effects(server: EffectServer, count: int, within: float = 30) -> None:
    for _ in range(int(within / 0.05)):
        if server.total_effects() >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server never saw {count} effect(s)")


async def start_runs(client: AiosClient, base_url: str, prefix: str, count: int, offset: int) -> list[str]:
    ids = []
    for i in range(count):
        manifest = three_step_manifest(base_url, prefix)
        task = {"customer": f"c-{offset + i}", "amount": 10}
        ids.append((await client.start_run(manifest.name, task, manifest=manifest)).run_id)
    return ids


async def settle(client: AiosClient, run_ids: list[str], within: float) -> dict[str, RunStatus | None]:
    """Each run's final status, or None when it did not finish within the time (lost)."""

    async def one(run_id: str) -> RunStatus | None:
        try:
            return (await asyncio.wait_for(client.result(run_id), timeout=within)).status
        except TimeoutError:
            return None

    statuses = await asyncio.gather(*(one(run_id) for run_id in run_ids))
    return dict(zip(run_ids, statuses, strict=True))


async def ledger(client: AiosClient, run_ids: list[str]) -> list[tuple[str, str, str]]:
    async with await psycopg.AsyncConnection.connect(client.settings.resolved_database_url) as conn:
        cursor = await conn.execute(
            "SELECT run_id, action, state FROM aios_effects WHERE run_id = ANY(%s)", (run_ids,)
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in await cursor.fetchall()]


async def account(
    row: Row, client: AiosClient, server: EffectServer, outcomes: dict[str, RunStatus | None]
) -> Row:
    """Fill the row from the outcomes, the server's counts and the ledger; return it for asserts.

    A completed run must have each of its actions `succeeded` once in the ledger, and the server
    must have applied exactly as many effects as the ledger holds successes.
    """
    rows = await ledger(client, list(outcomes))
    succeeded: dict[str, list[str]] = {}
    for run_id, action, state in rows:
        if state == "succeeded":
            succeeded.setdefault(run_id, []).append(action)
    row.completed = sum(1 for s in outcomes.values() if s is RunStatus.COMPLETED)
    row.compensated = sum(1 for s in outcomes.values() if s is RunStatus.COMPENSATED)
    row.duplicates = server.duplicates()
    lost = {run_id for run_id, s in outcomes.items() if s not in (RunStatus.COMPLETED, RunStatus.COMPENSATED)}
    for run_id, status in outcomes.items():
        if status is RunStatus.COMPLETED and sorted(succeeded.get(run_id, [])) != sorted(ACTIONS):
            lost.add(run_id)
    ledger_successes = sum(len(actions) for actions in succeeded.values())
    if server.total_effects() != ledger_successes:
        row.notes += f"server applied {server.total_effects()} effects, ledger has {ledger_successes}. "
        lost.add("<ledger mismatch>")
    row.lost = len(lost)
    if lost:
        row.notes += (
            f"not finished or inconsistent: {sorted(lost)[:5]} {[outcomes.get(r) for r in sorted(lost)[:5]]}"
        )
    return row


def assert_clean(row: Row, expected_runs: int) -> None:
    assert row.duplicates == 0, row
    assert row.lost == 0, row
    assert row.completed + row.compensated == expected_runs, row
