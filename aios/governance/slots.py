"""Freeing the concurrency slots of runs that ended without releasing them.

A run frees its slot in its last record. A run that never gets there (terminated, timed
out, its workflow deleted) would hold it for ever, and its agent's queued runs would wait
for ever. Temporal knows which runs have ended, so the slots of those runs are freed:

- on demand, by the slot activity when an agent is at its limit (a queued run does not wait
  for a sweep), and
- every `AIOS_SLOT_SWEEP_SECONDS` by each worker's own background loop (so `aios status`
  and the metrics do not count dead runs while nobody queues).

The worker's loop rather than a Temporal Schedule: nothing to create, upgrade or delete
per namespace, it runs wherever a worker runs (the only place a slot can matter), a
SIGKILLed worker's slots are swept by its peers or its restart, and it adds no workflow
histories. Both paths ask Temporal, never a clock: a lease that expires would free the slot
of a run that is merely slow (waiting days for an approval is normal).
"""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg import AsyncConnection
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from aios.ledger import runs

# At most this many describe calls at once: a sweep over many agents stays gentle.
DESCRIBE_CONCURRENCY = 8
# One sweep at a time across all workers (any fixed number distinct from the other locks).
SWEEP_LOCK = 0x41494F53_534C4F54  # "AIOSSLOT"
TRY_SWEEP_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"


async def run_has_ended(client: Client, run_id: str) -> bool:
    """True when the run's latest execution is closed, or Temporal has no such workflow.

    By workflow id, without a Temporal run id: a run continued as new or reset is its latest
    execution, still running, and keeps its slot.
    """
    try:
        described = await client.get_workflow_handle(run_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return described.status not in (None, WorkflowExecutionStatus.RUNNING)


async def sweep(conn: AsyncConnection[Any], client: Client) -> list[tuple[str, str]] | None:
    """Free every agent's slots held by ended runs, unless another worker is sweeping (None)."""
    async with conn.transaction():
        row = await (await conn.execute(TRY_SWEEP_LOCK, (SWEEP_LOCK,))).fetchone()
        if row is None or not row[0]:
            return None
        return await free_ended_slots(conn, client)


async def free_ended_slots(
    conn: AsyncConnection[Any], client: Client, *, agent: str | None = None
) -> list[tuple[str, str]]:
    """Release every slot (of `agent`, or of all agents) held by a run that has ended;
    return the (agent, run id) pairs freed. A describe that fails frees nothing."""
    holders = await runs.slot_holders(conn, agent)
    gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def ended(run_id: str) -> bool:
        async with gate:
            try:
                return await run_has_ended(client, run_id)
            except RPCError:  # Temporal unreachable: keep the slot, ask again next time
                return False

    verdicts = await asyncio.gather(*(ended(run_id) for _, run_id in holders))
    freed = [holder for holder, gone in zip(holders, verdicts, strict=True) if gone]
    for holder_agent, run_id in freed:
        await runs.release_slot(conn, agent=holder_agent, run_id=run_id)
    return freed
