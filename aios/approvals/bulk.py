"""Deciding every waiting run at once (`aios approve --all`): one signal per run, sent together.

A signal is durable once the Temporal server records it, so the operator is done when the
command returns: each run takes the decision when it next runs and judges it as any other (one
for a step it no longer waits at, or from someone it does not accept, is refused and recorded
in its audit trail). `aios approve RUN` uses the `decide` update instead, which answers whether
the decision counted but waits for the run's workflow task: a thousand of those take as long
as the worker needs to run a thousand tasks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from aios.approvals.links import Verdict
from aios.models.run import RunState

SENT_AT_ONCE = 32  # signals in flight together: enough to keep a server busy, few enough to be fair


@dataclass
class BulkDecision:
    """What `decide_every_waiting_run` did, run by run."""

    sent: list[str] = field(default_factory=list)
    """Runs the decision was delivered to (each judges it as it wakes)."""
    not_theirs: list[str] = field(default_factory=list)
    """Runs waiting for other approvers: left alone."""
    ended: list[str] = field(default_factory=list)
    """Runs that ended between the listing and the signal."""


async def decide_every_waiting_run(
    temporal: Client,
    waiting: list[RunState],
    verdict: Verdict,
    *,
    approver: str,
    note: str = "",
    agent: str | None = None,
) -> BulkDecision:
    """Send `verdict` to each waiting run (of `agent`) that `approver` may decide, for its pending step."""
    outcome = BulkDecision()
    gate = asyncio.Semaphore(SENT_AT_ONCE)

    async def send(run_id: str, step: int) -> None:
        decision = {"approver": approver, "note": note, "step": step}
        async with gate:
            try:
                await temporal.get_workflow_handle(run_id).signal(verdict, decision)
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                outcome.ended.append(run_id)
                return
        outcome.sent.append(run_id)

    mine: dict[str, int] = {}  # run id -> the step it waits at
    for state in waiting:
        if agent is not None and state.agent != agent:
            continue
        pending = state.pending_approval
        if pending is None or approver not in pending.approvers:
            outcome.not_theirs.append(state.run_id)
        else:
            mine[state.run_id] = pending.step
    await asyncio.gather(*(send(run_id, step) for run_id, step in mine.items()))
    return outcome
