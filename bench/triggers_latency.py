"""Triggers: how long from an event or a Schedule's firing to the agent run started, and
whether duplicated deliveries from concurrent senders start each event's run exactly once.

Against the real dev server and Postgres, a worker in this process. "Run started" is the
AgentRun's start time as Temporal recorded it, measured from just before the send (the same
machine's clock), so the figure covers keeping the event, admission (budget, kill switch,
canary reads), DispatchRun and its activity, and the run's start.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import timedelta

import httpx
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError

from aios.client import AiosClient
from aios.events.http import EventServer
from aios.events.signature import sign
from aios.governance.admission import AGENT_RUN
from aios.models.manifest import ActionSpec, AgentManifest, PolicySpec, RiskClass
from aios.models.triggers import EventTrigger, ScheduleTrigger, TriggersSpec
from aios.settings import load_settings
from bench.report import Section, summarize_ms
from workers.main import run_worker

LATENCY_SAMPLES = 30
SCHEDULE_FIRINGS = 15
FLOOD_EVENTS = 1000
DUPLICATE_SHARE = 0.2
SENDERS = 4
SECRET = "bench-secret"


def agent(topic: str) -> AgentManifest:
    return AgentManifest.model_validate(
        {
            "name": f"bench-{uuid.uuid4().hex[:8]}",
            "actions": {"note": ActionSpec(connector="noop", risk=RiskClass.LOW)},
            "policy": PolicySpec(approvers=["operator"]),
            "turn_limit": 2,
            "budget": {"tokens_per_day": 10**9, "cost_per_day": 10**6, "max_concurrent_runs": 50},
            "triggers": TriggersSpec(
                event=[EventTrigger(topic=topic)],
                schedule=[ScheduleTrigger(name="tick", every=timedelta(days=1), overlap="allow")],
            ),
        }
    )


async def started_after(temporal: Client, run_id: str, since: float) -> float:
    """Seconds from `since` (time.time()) to the run's recorded start."""
    for _ in range(3000):
        try:
            described = await temporal.get_workflow_handle(run_id).describe()
            return described.start_time.timestamp() - since
        except RPCError:
            await asyncio.sleep(0.005)
    raise TimeoutError(f"{run_id} never started")


async def measure() -> Section:
    settings = load_settings()
    section = Section(
        "Triggers: event and schedule to run started; duplicate deliveries",
        "make bench  (python -m bench triggers_latency)",
        notes="An event's latency covers keeping it (outbox), the subscriber's DispatchRun, admission "
        "and the AgentRun's start; a Schedule's covers the trigger request, the Schedule's action, "
        "DispatchRun and admission. The flood sends each event from one of 4 concurrent senders, "
        "a fifth of them twice (by another sender): runs started must equal distinct events.",
    )
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"task_queue": queue, "events_secret": SecretStr(SECRET)})
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=queue))
    try:
        client = await AiosClient.connect(settings)
        topic = f"bench{uuid.uuid4().hex[:6]}.tick"
        manifest = agent(topic)
        await client.apply([manifest])
        await _event_latency(client, manifest, topic, section)
        await _http_latency(client, manifest, topic, section)
        await _schedule_latency(client, manifest, section)
        await _flood(client, manifest, topic, section)
        await client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])
    finally:
        stop.set()
        await worker
    return section


async def _event_latency(client: AiosClient, manifest: AgentManifest, topic: str, section: Section) -> None:
    samples = []
    for index in range(LATENCY_SAMPLES):
        since = time.time()
        published = await client.send_event(topic, {"n": index})
        samples.append(await started_after(client.temporal, published.deliveries[0].run_id, since))
    section.add("event -> run started (AiosClient.send_event)", summarize_ms(samples))


async def _http_latency(client: AiosClient, manifest: AgentManifest, topic: str, section: Section) -> None:
    server = EventServer(client.events_bus, client.settings, client.connection)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        server.serve(host="127.0.0.1", port=0, stop=stop, on_ready=lambda _host, port: ready.set_result(port))
    )
    url = f"http://127.0.0.1:{await ready}/events"
    samples = []
    async with httpx.AsyncClient() as http:
        for index in range(LATENCY_SAMPLES):
            event_id = f"http-{uuid.uuid4().hex[:10]}"
            body = json.dumps({"id": event_id, "topic": topic, "data": {"n": index}}).encode()
            since = time.time()
            answer = await http.post(
                url, content=body, headers={"Aios-Signature": sign(SECRET, body, int(since))}
            )
            answer.raise_for_status()
            run_id = answer.json()["deliveries"][0]["run_id"]
            samples.append(await started_after(client.temporal, run_id, since))
    stop.set()
    await serving
    section.add("event -> run started (signed HTTP POST /events)", summarize_ms(samples))


async def _schedule_latency(client: AiosClient, manifest: AgentManifest, section: Section) -> None:
    name = f"{manifest.name}/tick"
    query = f"WorkflowType = '{AGENT_RUN}' AND AiosCause = 'schedule:{name}'"
    samples = []
    seen: set[str] = set()
    for _ in range(SCHEDULE_FIRINGS):
        # A firing's run is named by its time to the second: two in one second are one run.
        await asyncio.sleep(1.01 - time.time() % 1)
        since = time.time()
        await client.trigger_schedule(name)
        new: list[str] = []
        while not new:
            new = [
                execution.id
                async for execution in client.temporal.list_workflows(query)
                if execution.id not in seen
            ]
            if not new:
                await asyncio.sleep(0.01)
        seen.update(new)
        samples.append(await started_after(client.temporal, new[0], since))
    section.add("schedule trigger -> run started (through DispatchRun)", summarize_ms(samples))


async def _flood(client: AiosClient, manifest: AgentManifest, topic: str, section: Section) -> None:
    rng = random.Random(7)
    events = [f"flood-{uuid.uuid4().hex[:12]}" for _ in range(FLOOD_EVENTS)]
    deliveries = [(event_id, rng.randrange(SENDERS)) for event_id in events]
    deliveries += [
        (event_id, (sender + 1) % SENDERS)
        for event_id, sender in deliveries[: int(FLOOD_EVENTS * DUPLICATE_SHARE)]
    ]
    rng.shuffle(deliveries)
    query = f"WorkflowType = '{AGENT_RUN}' AND AiosAgent = '{manifest.name}'"
    before = (await client.temporal.count_workflows(query)).count
    lanes = [[event_id for event_id, sender in deliveries if sender == lane] for lane in range(SENDERS)]
    started = time.perf_counter()

    async def sender(lane: list[str]) -> None:
        for event_id in lane:
            await client.send_event(topic, {"flood": True}, event_id=event_id)

    await asyncio.gather(*(sender(lane) for lane in lanes))
    elapsed = time.perf_counter() - started
    count = 0
    for _ in range(600):
        count = (await client.temporal.count_workflows(query)).count - before
        if count >= FLOOD_EVENTS:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # a late duplicate would show up by now
    count = (await client.temporal.count_workflows(query)).count - before
    section.add(
        "flood: deliveries / distinct events / runs started",
        f"{len(deliveries)} / {FLOOD_EVENTS} / {count} "
        f"({len(deliveries) / elapsed:.0f} deliveries/s kept and dispatched)",
    )
