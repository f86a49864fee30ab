"""The tool loop's cost per turn: reading the told steps' results from the ledger, and the prompt.

A run's eight last steps are real effects (the `action.execute` activity against a loopback
effect server, so the ledger rows hold real responses, sealed with the run's subject key). Each
turn after the first, the think activity reads those rows in one query, opens them and builds
the tool messages: that is all the loop adds to a turn, and what is timed here. The prompt grows
by the results' text; its size is reported beside the bare "done" messages it replaces.
"""

from __future__ import annotations

import time
import uuid

import httpx
from temporalio.testing import ActivityEnvironment

from activities.actions import ActionActivities
from activities.deps import close_deps, open_deps
from activities.tool_results import ledger_results, tool_messages
from aios.models.run import TOLD_STEPS, ActionCall, DoneStep
from aios.settings import load_settings
from bench.report import Section, summarize_ms
from connectors.actions.http import HttpActionConnector
from tests.support.effect_server import EffectServer

TURNS = 300


async def measure() -> Section:
    section = Section(
        title="The tool loop: what telling the model its results adds to a turn",
        command="python -m bench tool_loop",
        notes=f"{TURNS} turns, each told the results of the run's last {TOLD_STEPS} steps (real "
        "`action.execute` effects against a loopback server, sealed per subject): one Postgres "
        "query, opening the sealed responses, building the OpenAI-style tool messages.",
    )
    server = EffectServer().start()
    deps = await open_deps(load_settings(), memory=False)
    run_id = f"bench-tools-{uuid.uuid4().hex[:8]}"
    actions = ActionActivities(deps, {"http": HttpActionConnector(httpx.AsyncClient(timeout=10))})
    try:
        done = []
        for step in range(1, TOLD_STEPS + 1):
            call = ActionCall(
                run_id=run_id,
                step=step,
                effect_key=f"{run_id}/step-{step}/charge",
                action="charge",
                connector="http",
                params={"customer": "c-bench", "amount": 100 + step},
                target=f"{server.url}/effects/charge",
            )
            await ActivityEnvironment().run(actions.execute, call)
            done.append(
                DoneStep(
                    step=step,
                    action="charge",
                    status="executed",
                    params=call.params,
                    effect_key=call.effect_key,
                )
            )
        names = ["charge"] * TOLD_STEPS
        samples, prompt = [], 0
        for _ in range(TURNS):
            started = time.perf_counter()
            async with deps.pool.connection() as conn:
                ledger = await ledger_results(conn, done, deps.subjects)
            messages = tool_messages(names, done, ledger)
            samples.append(time.perf_counter() - started)
            prompt = sum(len(message.content) for message in messages)
    finally:
        await close_deps(deps)
        server.stop()
    section.add("added per turn (read, open, build)", summarize_ms(samples))
    section.add(
        f"prompt text of {TOLD_STEPS} results", f"{prompt} characters (was {4 * TOLD_STEPS}: 'done' each)"
    )
    return section
