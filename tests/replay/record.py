"""Record real AgentRun histories for the replay tests: `python -m tests.replay.record [PATH ...]`.

Each path runs on the dev server (`aios dev up`) with a worker in this process on a fresh
task queue; its finished history goes to tests/replay/histories/<path>.json, which CI
replays without a server. Recording overwrites <path>.json: after a patched change, keep
the old file under another name (e.g. approved.v1.json) while runs started on the old code
may still be open, since the tests replay every file. The compensated path logs one
activity failure with its traceback (the injected 400): that is the point of the path.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import CancelledError

from aios.client import AiosClient
from aios.errors import RunFailed
from aios.models.manifest import AgentManifest, BudgetSpec, ModelSpec
from aios.models.run import RunState, RunStatus
from aios.settings import load_settings
from aios.temporal.connection import connect
from tests.support.effect_server import EffectServer, Fault
from tests.support.manifests import FAST_SLA, noop_manifest, refund_like_manifest
from tests.support.runs import chain_histories, wait_for_status
from workers.main import run_worker

HISTORIES = Path(__file__).parent / "histories"
SMALL = {"customer": "c-1", "amount": 40}  # under the approval threshold of 100
LARGE = {"customer": "c-2", "amount": 250}  # over it: payout needs approval
CLEANUP_SECONDS = 15


class RecordingFailed(Exception):
    """A path did not end the way it should; its history would not show what it claims to."""


@dataclass(frozen=True)
class Run:
    """One recorded run: its fixed agent, its fresh id, and what drives it."""

    client: AiosClient
    effects: EffectServer
    agent: str
    run_id: str

    async def start(self, manifest: AgentManifest, task: dict[str, Any]) -> None:
        await self.client.start_run(self.agent, task, manifest=manifest, run_id=self.run_id)

    async def wait_for(self, status: RunStatus) -> RunState:
        return await wait_for_status(self.client, self.run_id, status)

    async def expect_end(self, status: RunStatus) -> None:
        final = await self.client.result(self.run_id)
        _expect(final.status is status, f"{self.run_id} ended {final.status}, not {status}: {final.outcome}")

    def refund_manifest(self, **fields: Any) -> AgentManifest:
        return refund_like_manifest(self.effects.url, name=self.agent, **fields)


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise RecordingFailed(problem)


# -- the paths: each starts its run and drives it to its end --------------------------------


async def auto(run: Run) -> None:
    await run.start(noop_manifest(3, name=run.agent), {"note": "replay"})
    await run.expect_end(RunStatus.COMPLETED)


async def approved(run: Run) -> None:
    await run.start(run.refund_manifest(), LARGE)
    waiting = await run.wait_for(RunStatus.WAITING_APPROVAL)
    step = waiting.pending_approval.step if waiting.pending_approval else None
    await run.client.decide(run.run_id, "approve", approver="alice", step=step)
    await run.expect_end(RunStatus.COMPLETED)


async def approved_by_signal(run: Run) -> None:
    await run.start(run.refund_manifest(), LARGE)
    await run.wait_for(RunStatus.WAITING_APPROVAL)
    await run.client.signal_decision(run.run_id, "approve", {"approver": "alice", "note": "ok"})
    await run.expect_end(RunStatus.COMPLETED)


async def rejected(run: Run) -> None:
    await run.start(run.refund_manifest(), LARGE)
    await run.wait_for(RunStatus.WAITING_APPROVAL)
    await run.client.decide(run.run_id, "reject", approver="alice", note="too much")
    await run.expect_end(RunStatus.COMPENSATED)


async def compensated(run: Run) -> None:
    # The charge goes through, the payout is refused with a 400 (not retried): the saga refunds.
    run.effects.faults.extend([Fault(), Fault(status=400)])
    await run.start(run.refund_manifest(), SMALL)
    await run.expect_end(RunStatus.COMPENSATED)


async def expired(run: Run) -> None:
    # Nobody answers: the SLA reminds, escalates, then applies its default (reject).
    await run.start(run.refund_manifest(sla=FAST_SLA), LARGE)
    await run.expect_end(RunStatus.COMPENSATED)


async def cancelled(run: Run) -> None:
    await run.start(run.refund_manifest(), LARGE)
    await run.wait_for(RunStatus.WAITING_APPROVAL)
    await run.client.cancel(run.run_id)
    try:
        await run.client.result(run.run_id)
    except RunFailed as failure:
        ended = failure.__cause__
        cancelled = isinstance(ended, WorkflowFailureError) and isinstance(ended.cause, CancelledError)
        _expect(cancelled, f"{run.run_id} failed: {failure}")
    else:
        raise RecordingFailed(f"{run.run_id} finished although it was cancelled")


async def paused(run: Run) -> None:
    # The kill switch: the run starts paused and goes on when the agent is resumed.
    await run.client.pause_agent(run.agent, by="replay")
    try:
        await run.start(noop_manifest(2, name=run.agent), {})
        await run.wait_for(RunStatus.PAUSED)
    finally:  # never leave the fixed agent paused for the next recording
        resumed = await run.client.resume_agent(run.agent, by="replay")
    _expect(run.run_id in resumed, f"resume_agent did not reach {run.run_id}: {resumed}")
    await run.expect_end(RunStatus.COMPLETED)


async def paused_at_gate(run: Run) -> None:
    # A pause sent while waiting for approval holds the approved action until the resume.
    await run.start(run.refund_manifest(), LARGE)
    await run.wait_for(RunStatus.WAITING_APPROVAL)
    await run.client.pause(run.run_id, by="alice", reason="checking something")
    await run.client.decide(run.run_id, "approve", approver="alice")
    await run.wait_for(RunStatus.PAUSED)
    await run.client.resume(run.run_id, by="alice")
    await run.expect_end(RunStatus.COMPLETED)


async def budget_paused(run: Run) -> None:
    # Each turn reserves 40 tokens against a cap of 100: the third turn waits for more budget.
    manifest = noop_manifest(
        3, name=run.agent, budget=BudgetSpec(tokens_per_run=100), model=ModelSpec(tokens_per_turn_estimate=40)
    )
    await run.start(manifest, {})
    await run.wait_for(RunStatus.PAUSED_BUDGET)
    await run.client.resume(run.run_id, by="alice", extra_tokens=10_000)
    await run.expect_end(RunStatus.COMPLETED)


async def continued(run: Run) -> None:
    # 299 inline steps (about 9 history events per 50 turns), 50 history events at most: the
    # run hands over to a fresh history at least once.
    manifest = noop_manifest(299, name=run.agent, budget=BudgetSpec(tokens_per_run=10_000_000))
    await run.client.start_run(
        run.agent, {"note": "long"}, manifest=manifest, run_id=run.run_id, max_history_events=50
    )
    await run.expect_end(RunStatus.COMPLETED)


PATHS: dict[str, Callable[[Run], Awaitable[None]]] = {
    driver.__name__: driver
    for driver in (
        auto,
        approved,
        approved_by_signal,
        rejected,
        compensated,
        expired,
        cancelled,
        paused,
        paused_at_gate,
        budget_paused,
        continued,
    )
}


# -- recording ------------------------------------------------------------------------------


async def record(path: str, client: AiosClient, effects: EffectServer) -> Path:
    # Agent names are fixed so histories stay comparable; run ids are fresh because budget
    # reservations and effects are keyed by run id.
    agent = f"replay-{path.replace('_', '-')}"
    run = Run(client, effects, agent, run_id=f"{agent}-{uuid.uuid4().hex[:8]}")
    try:
        await PATHS[path](run)
    except BaseException:
        await _end_abandoned(run)
        raise
    # A run that continued as new has several histories: the earlier ones go to <path>.runN.json.
    histories = await chain_histories(client.temporal, run.run_id)
    for number, history in enumerate(histories, start=1):
        target = HISTORIES / (f"{path}.json" if number == len(histories) else f"{path}.run{number}.json")
        target.write_text(_one_event_per_line(history))
    return target


def _one_event_per_line(history: WorkflowHistory) -> str:
    """`history.to_json()` without its indentation: a third of the size, and still diffable by event.

    `WorkflowHistory.from_json` reads it back like the Temporal CLI and Web UI exports.
    """
    events = [json.dumps(event, separators=(",", ":")) for event in history.to_json_dict()["events"]]
    return '{"events": [\n' + ",\n".join(events) + "\n]}\n"


async def _end_abandoned(run: Run) -> None:
    """Cancel a run whose path failed, so it releases its slot of the fixed agent and compensates."""
    try:
        await run.client.cancel(run.run_id)
        await asyncio.wait_for(run.client.result(run.run_id), CLEANUP_SECONDS)
    except Exception as problem:  # best effort: the original failure is what matters
        print(f"  could not clean up {run.run_id}: {problem!r}", file=sys.stderr)


async def record_all(paths: list[str]) -> None:
    queue = f"replay-record-{uuid.uuid4().hex[:8]}"
    # Unencrypted: CI replays these files with a different (or no) payload key.
    # Plain and whole payloads: CI replays the histories with neither the keys nor Postgres.
    plain = {"task_queue": queue, "payload_encryption": False, "payload_offload_threshold": 0}
    settings = load_settings().model_copy(update=plain)
    client = AiosClient(await connect(settings), settings)
    effects = EffectServer().start()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=queue))
    HISTORIES.mkdir(exist_ok=True)
    try:
        for path in paths:
            began = time.monotonic()
            written = await record(path, client, effects)
            size = written.stat().st_size // 1024
            print(f"{path:20} {time.monotonic() - began:5.1f}s  {size:4} KiB  {written.name}")
    finally:
        stop.set()
        await worker
        effects.stop()


def main(argv: list[str]) -> int:
    unknown = sorted(set(argv) - set(PATHS))
    if unknown:
        print(f"unknown paths {unknown}; known: {', '.join(PATHS)}", file=sys.stderr)
        return 2
    began = time.monotonic()
    asyncio.run(record_all(argv or list(PATHS)))
    print(f"recorded in {time.monotonic() - began:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
