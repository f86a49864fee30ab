"""What a delegation costs: a run that hands its one step to a child run, vs the child alone.

Against the real local dev server and Postgres, with the production worker in this process:

- alone: a one-step `noop` agent run, started with `AiosClient.start_run`, to its result;
- delegated: a run whose one step is `connector: agent` to that agent (admitted by the
  `delegation.admit` activity, started as a child workflow, waited for), to its result;
- handoff: from the parent's start to its child's start (the parent's first turn, admission
  and the child workflow's start), from the two workflows' start times on the server.

The two kinds take turns run by run, so the machine's background load hits them alike.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from aios.client import AiosClient
from aios.governance.manifests import MANIFEST_DIR_VARIABLE
from aios.models.delegation import child_run_id
from aios.models.manifest import ActionSpec, AgentManifest, PolicySpec, RiskClass
from aios.models.run import RunStatus
from aios.settings import load_settings
from bench.report import Section, percentile, summarize_ms
from workers.main import run_worker

RUNS = 20  # of each kind, alternating
RESULT_TIMEOUT = 120.0


def _manifests() -> tuple[AgentManifest, AgentManifest]:
    suffix = uuid.uuid4().hex[:6]
    child = AgentManifest.model_validate(
        {
            "name": f"bench-child-{suffix}",
            "actions": {"step_one": ActionSpec(connector="noop", risk=RiskClass.LOW)},
            "policy": PolicySpec(approvers=["operator"]),
        }
    )
    parent = AgentManifest.model_validate(
        {
            "name": f"bench-parent-{suffix}",
            "actions": {"delegate": ActionSpec(connector="agent", agent=child.name, risk=RiskClass.LOW)},
            "policy": PolicySpec(approvers=["operator"]),
        }
    )
    return child, parent


async def _timed_run(client: AiosClient, manifest: AgentManifest) -> tuple[float, str]:
    began = time.perf_counter()
    started = await client.start_run(manifest.name, {"note": "bench"}, manifest=manifest)
    final = await client.result(started.run_id, within=RESULT_TIMEOUT)
    if final.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"{started.run_id} ended {final.status}: {final.outcome}")
    return time.perf_counter() - began, started.run_id


async def _handoff(client: AiosClient, parent_id: str, child_agent: str) -> float:
    parent = await client.handle(parent_id).describe()
    child = await client.handle(child_run_id(parent_id, 1, child_agent)).describe()
    return (child.start_time - parent.start_time).total_seconds()


async def measure() -> Section:
    section = Section(
        "Delegation: a step handed to a child run",
        "python -m bench delegation",
        notes="alone: a one-step noop run; delegated: a run whose one step starts that run as a "
        "child workflow (admission activity, child start, wait for its result); both through "
        "AiosClient to the final result. Runs alternate, one at a time.",
    )
    child, parent = _manifests()
    folder = Path(tempfile.mkdtemp(prefix="aios-bench-agents-"))
    (folder / f"{child.name}.yaml").write_text(yaml.safe_dump(child.model_dump(mode="json")))
    os.environ[MANIFEST_DIR_VARIABLE] = str(folder)  # where admission finds the child by name
    settings = load_settings()
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"task_queue": task_queue})
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=task_queue))
    try:
        client = await AiosClient.connect(settings)
        await _timed_run(client, child)  # warm-up: imports, connections, sandbox
        await _timed_run(client, parent)
        alone: list[float] = []
        delegated: list[float] = []
        handoffs: list[float] = []
        for _ in range(RUNS):
            alone.append((await _timed_run(client, child))[0])
            seconds, parent_id = await _timed_run(client, parent)
            delegated.append(seconds)
            handoffs.append(await _handoff(client, parent_id, child.name))
        section.add("child run alone", summarize_ms(alone))
        section.add("run delegating to it", summarize_ms(delegated))
        extra = percentile(delegated, 0.5) - percentile(alone, 0.5)
        section.add("delegation's extra, p50", f"{extra * 1000:.1f} ms")
        section.add("handoff: parent start -> child start", summarize_ms(handoffs))
    finally:
        stop.set()
        await worker
    return section


if __name__ == "__main__":
    asyncio.run(measure())
