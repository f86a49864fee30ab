"""Waiting on runs in tests: poll the `state` query until a condition holds (bounded)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aios.client import AiosClient
from aios.models.run import RunState, RunStatus

POLL_SECONDS = 0.1


async def wait_for_state(
    client: AiosClient, run_id: str, condition: Callable[[RunState], bool], *, within: float = 30
) -> RunState:
    deadline = asyncio.get_running_loop().time() + within
    last: RunState | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await client.state(run_id)
        except Exception:  # the run may not have had its first workflow task yet
            last = None
        if last is not None and condition(last):
            return last
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"{run_id} never reached the expected state; last seen: {last}")


async def wait_for_status(
    client: AiosClient, run_id: str, status: RunStatus, *, within: float = 30
) -> RunState:
    return await wait_for_state(client, run_id, lambda state: state.status is status, within=within)
