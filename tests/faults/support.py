"""What the fault scenarios share: worker subprocesses, manifests, outcome and consistency accounting."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from aios.client import AiosClient
from aios.errors import RunFailed
from aios.governance import audit
from aios.models.manifest import AgentManifest, PolicySpec, RiskClass
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.faults.report import Row
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import http_action, unique_agent

ACTIONS = ("reserve", "charge", "confirm")
# The saga scenario: reserve (undone by release), then ship, which the server may refuse for good.
SAGA_ACTIONS = ("reserve", "ship")
SAGA_UNDO = "release"
REFUSED_PATH = "ship-refused"
FINAL_LEDGER_STATES = frozenset({"succeeded", "failed"})
# Step outcomes in the audit trail (step "step-N") that say an effect happened: an action, or its undo.
EFFECT_OUTCOMES = frozenset({"executed", "compensated"})
PROBLEMS_SHOWN = 5


def three_step_manifest(base_url: str, prefix: str) -> AgentManifest:
    # One agent per run: agents share concurrency slots by name, and slot waits would blur timings.
    return AgentManifest.model_validate(
        {
            "name": unique_agent(prefix),
            "actions": {name: http_action(base_url, name, RiskClass.LOW) for name in ACTIONS},
            "policy": PolicySpec(approvers=["alice"]),
        }
    )


def saga_manifest(base_url: str, prefix: str, *, ship_refused: bool) -> AgentManifest:
    """reserve (undone by release), then ship; a refused ship fails for good and the run compensates."""
    ship = http_action(base_url, REFUSED_PATH if ship_refused else "ship", RiskClass.LOW)
    return AgentManifest.model_validate(
        {
            "name": unique_agent(prefix),
            "actions": {
                "reserve": http_action(base_url, "reserve", RiskClass.LOW, compensation=SAGA_UNDO),
                "ship": ship,
                SAGA_UNDO: http_action(base_url, SAGA_UNDO, RiskClass.LOW, compensation_only=True),
            },
            "policy": PolicySpec(approvers=["alice"]),
        }
    )


class WorkerProcess:
    """`aios worker` as a subprocess on a given queue, so it can be SIGKILLed."""

    def __init__(
        self,
        task_queue: str,
        log: Path | None = None,
        settings: Settings | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        env = child_env(settings, AIOS_TASK_QUEUE=task_queue, **(env or {}))
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
    manifests = [three_step_manifest(base_url, prefix) for _ in range(count)]
    return await start_manifests(client, manifests, offset)


async def start_manifests(client: AiosClient, manifests: Sequence[AgentManifest], offset: int) -> list[str]:
    ids = []
    for i, manifest in enumerate(manifests):
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
        except RunFailed as failure:  # a run must never fail outright: lost, and said why
            print(f"{run_id} failed: {failure}")
            return None

    statuses = await asyncio.gather(*(one(run_id) for run_id in run_ids))
    return dict(zip(run_ids, statuses, strict=True))


@dataclass(frozen=True)
class Effect:
    key: str
    run_id: str
    action: str
    state: str


@dataclass(frozen=True)
class AuditEvent:
    key: str
    step: str
    action: str
    outcome: str


@dataclass
class Records:
    """What Postgres holds about a set of runs: ledger rows, audit events, mirrored status."""

    effects: dict[str, list[Effect]]
    events: dict[str, list[AuditEvent]]
    mirrored: dict[str, str]


async def records(client: AiosClient, run_ids: list[str]) -> Records:
    found = Records(effects={}, events={}, mirrored={})
    async with await psycopg.AsyncConnection.connect(client.settings.resolved_database_url) as conn:
        for key, run_id, action, state in await _rows(
            conn, "SELECT effect_key, run_id, action, state FROM aios_effects WHERE run_id = ANY(%s)", run_ids
        ):
            found.effects.setdefault(run_id, []).append(Effect(key, run_id, action, state))
        for key, run_id, step, action, outcome in await _rows(
            conn,
            "SELECT event_key, run_id, step, action, outcome FROM aios_audit WHERE run_id = ANY(%s)",
            run_ids,
        ):
            found.events.setdefault(run_id, []).append(AuditEvent(key, step, action, outcome))
        for run_id, status in await _rows(
            conn, "SELECT run_id, status FROM aios_runs WHERE run_id = ANY(%s)", run_ids
        ):
            found.mirrored[run_id] = status
    return found


async def _rows(conn: psycopg.AsyncConnection[Any], query: str, run_ids: list[str]) -> list[tuple[str, ...]]:
    cursor = await conn.execute(query, (run_ids,))
    return [tuple(str(value) for value in row) for row in await cursor.fetchall()]


def run_problems(
    run_id: str, status: RunStatus, found: Records, server: EffectServer, expected: tuple[str, ...] | None
) -> list[str]:
    """Where the ledger, the server, the run's record and its audit trail disagree about one run.

    `expected`: the actions (and undos) that must have taken effect, when the outcome fixes them.
    """
    effects = found.effects.get(run_id, [])
    # Per idempotency key: succeeded means applied once at the server, failed means never.
    problems = [
        f"{e.key}: ledger says {e.state}, server applied it {server.applied.get(e.key, 0)} time(s)"
        for e in effects
        if e.state not in FINAL_LEDGER_STATES or server.applied.get(e.key, 0) != int(e.state == "succeeded")
    ]
    done = sorted(e.action for e in effects if e.state == "succeeded")
    if expected is not None and done != sorted(expected):
        problems.append(f"{run_id} ended {status.value} with effects {done}, expected {sorted(expected)}")
    if found.mirrored.get(run_id) != status.value:
        problems.append(f"{run_id} ended {status.value}, its record says {found.mirrored.get(run_id)}")
    return problems + _audit_problems(run_id, status, found.events.get(run_id, []), done)


def _audit_problems(run_id: str, status: RunStatus, events: list[AuditEvent], done: list[str]) -> list[str]:
    """The run's events are all there (e1..eN, none lost to a kill), end once, name each effect once."""
    numbers = sorted(int(e.key.rpartition("/e")[2]) for e in events)
    problems = []
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"{run_id}: audit events are not e1..e{len(numbers)}: {numbers[:10]}...")
    finishes = [e.outcome for e in events if e.action == "finish"]
    if finishes != [status.value]:
        problems.append(f"{run_id} ended {status.value}, its audit trail finishes {finishes}")
    effected = sorted(e.action for e in events if e.step.startswith("step-") and e.outcome in EFFECT_OUTCOMES)
    if effected != done:
        problems.append(f"{run_id}: audit trail names effects {effected}, the ledger {done}")
    return problems


async def account(
    row: Row,
    client: AiosClient,
    server: EffectServer,
    outcomes: dict[str, RunStatus | None],
    *,
    effects_when: Mapping[RunStatus, tuple[str, ...]] | None = None,
    expected_status: Mapping[str, RunStatus] | None = None,
) -> Row:
    """Fill the row from the outcomes, the server's counts, the ledger and the audit trail.

    A run counts as lost when it did not finish, or finished other than `expected_status` says,
    or when any of these disagree about it: the server's count per idempotency key, the ledger's
    final state for that key, the actions its outcome implies (`effects_when`, by default a
    completed run has every one of ACTIONS), its mirrored record and its audit trail. The audit
    chain must verify end to end.
    """
    found = await records(client, list(outcomes))
    row.completed = sum(1 for s in outcomes.values() if s is RunStatus.COMPLETED)
    row.compensated = sum(1 for s in outcomes.values() if s is RunStatus.COMPENSATED)
    row.duplicates = server.duplicates()
    unfinished = {r for r, s in outcomes.items() if s not in (RunStatus.COMPLETED, RunStatus.COMPENSATED)}
    by_run = _problems_by_run(outcomes, found, server, effects_when, expected_status or {})
    inconsistent = {run_id for run_id, found_problems in by_run.items() if found_problems}
    chain, problems = await _scenario_problems(client, server, found)
    problems = [p for found_problems in by_run.values() for p in found_problems] + problems
    lost = unfinished | inconsistent
    row.lost = len(lost) + (1 if problems and not lost else 0)
    finished = len(outcomes) - len(unfinished)
    row.notes += (
        f"ledger (per key, against the server), run records and audit trails agree for "
        f"{finished - len(inconsistent)} of {finished} finished runs; {chain}. "
    )
    if lost:
        shown = sorted(lost)[:PROBLEMS_SHOWN]
        row.notes += f"not finished or inconsistent: {shown} {[outcomes.get(r) for r in shown]}. "
    if problems:
        row.notes += f"{len(problems)} problem(s): {problems[:PROBLEMS_SHOWN]}. "
    return row


def _problems_by_run(
    outcomes: dict[str, RunStatus | None],
    found: Records,
    server: EffectServer,
    effects_when: Mapping[RunStatus, tuple[str, ...]] | None,
    expected_status: Mapping[str, RunStatus],
) -> dict[str, list[str]]:
    """Each finished run's problems, none when everything about it agrees."""
    effects_when = effects_when if effects_when is not None else {RunStatus.COMPLETED: ACTIONS}
    by_run = {}
    for run_id, status in outcomes.items():
        if status is None:
            continue
        by_run[run_id] = run_problems(run_id, status, found, server, effects_when.get(status))
        wanted = expected_status.get(run_id, status)
        if wanted is not status:
            by_run[run_id].append(f"{run_id} ended {status.value}, expected {wanted.value}")
    return by_run


async def _scenario_problems(
    client: AiosClient, server: EffectServer, found: Records
) -> tuple[str, list[str]]:
    """Scenario-wide: nothing applied outside the ledger, and the audit chain intact (and a note)."""
    problems = []
    ledger_successes = sum(e.state == "succeeded" for effects in found.effects.values() for e in effects)
    if server.total_effects() != ledger_successes:
        problems.append(f"server applied {server.total_effects()} effects, ledger has {ledger_successes}")
    async with await psycopg.AsyncConnection.connect(client.settings.resolved_database_url) as conn:
        report = await audit.verify(conn)
    if report.broken is not None:
        problems.append(f"audit chain broken: {report.broken.describe()}")
    verdict = "verifies" if report.ok else "is BROKEN"
    return f"afterwards the whole audit chain {verdict} ({report.rows_checked} rows)", problems


def assert_clean(row: Row, expected_runs: int) -> None:
    assert row.duplicates == 0, row
    assert row.lost == 0, row
    assert row.completed + row.compensated == expected_runs, row
