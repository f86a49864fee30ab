"""The conductor's overhead: agent runs of K no-op steps vs the same K activities, bare.

One run of this module measures, against the same local dev server and Postgres:

- the conductor: `AgentRun` with a manifest of K low-risk `noop` actions (the offline model
  proposes one per turn, so K steps = K + 1 turns), started through `AiosClient.start_run`;
- the bare baseline: a plain temporalio workflow (defined below) that runs the very activity
  the conductor runs per step, `action.execute` with the `noop` connector (effect ledger
  included), K times in sequence as regular activities;
- two reference variants of the bare workflow: a pure no-op activity (no Postgres), and
  `action.execute` as local activities (what that lever buys for the steps themselves).

Each variant gets CONCURRENT_ROUNDS batches of CONCURRENT_RUNS runs at once (throughput,
steps/s) and SEQUENTIAL_RUNS runs one after another (per-step latency: run time / K, and the
time between consecutive step completions read from the run's history). The variants take
turns batch by batch and run by run, so a change in the machine's background load hits them
alike; the ratio is taken per pair of batches. The conductor runs on the production worker
(`workers.main.run_worker`), the bare workflow on a worker with the same workflow runner,
each in this process on a fresh task queue.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from activities.actions import ActionActivities
    from activities.deps import close_deps, open_deps
    from aios.client import AiosClient
    from aios.models.manifest import ActionSpec, AgentManifest, BudgetSpec, PolicySpec, RiskClass
    from aios.models.run import ActionCall, ActionResult, RunStatus
    from aios.settings import load_settings
    from bench.report import Section, percentile, summarize_ms
    from workers.main import run_worker, workflow_runner

STEPS = 5  # K: no-op steps per run
CONCURRENT_RUNS = 20  # N: runs in flight at once, for throughput
CONCURRENT_ROUNDS = 5  # batches of N per variant; medians are reported
SEQUENTIAL_RUNS = 10  # runs one after another per variant, for per-step latency
TARGET_RATIO = 0.87  # the target: at most 15% overhead

STEP_ACTIVITY = "action.execute"  # what the conductor runs for each executed step
LOCAL_ACTIVITY_MARKER = "core_local_activity"  # how the SDK records a local activity in history
NOOP_ACTIVITY = "bench.noop"
STEP_TIMEOUT = timedelta(seconds=60)
RESULT_TIMEOUT = 120.0  # seconds: a run that takes longer than this is a broken benchmark

T = TypeVar("T")


# -- the bare baseline ------------------------------------------------------------------


@activity.defn(name=NOOP_ACTIVITY)
async def noop_step(call: ActionCall) -> ActionResult:
    """A step that does nothing at all: no ledger, no connector."""
    return ActionResult(status="succeeded", response={"noop": True, "action": call.action})


@workflow.defn(name="BenchBareSteps")
class BareStepsWorkflow:
    """K steps in sequence, nothing else: no model, policy, budget, slot or audit record."""

    @workflow.run
    async def run(self, steps: int, activity_name: str, local: bool) -> int:
        run_id = workflow.info().workflow_id
        for step in range(1, steps + 1):
            action = f"step_{step}"
            call = ActionCall(
                run_id=run_id,
                step=step,
                effect_key=f"{run_id}/step-{step}/{action}",
                action=action,
                connector="noop",
            )
            if local:
                await workflow.execute_local_activity(
                    activity_name, call, start_to_close_timeout=STEP_TIMEOUT, result_type=ActionResult
                )
            else:
                await workflow.execute_activity(
                    activity_name, call, start_to_close_timeout=STEP_TIMEOUT, result_type=ActionResult
                )
        return steps


# -- the variants -----------------------------------------------------------------------

StartRun = Callable[[str], Awaitable[str]]  # label -> workflow id
AwaitRun = Callable[[str], Awaitable[None]]  # raises unless the run did its K steps


@dataclass
class Variant:
    """One way of running K steps, and what was measured of it."""

    name: str
    start: StartRun
    wait: AwaitRun
    step_activity: str | None  # whose completions time the steps in history; None: no events
    rounds: list[float] = field(default_factory=list)  # steps/s of each batch of N runs
    per_step: list[float] = field(default_factory=list)  # run time / K, seconds
    sequential: list[str] = field(default_factory=list)  # workflow ids of the sequential runs
    gaps: list[float] = field(default_factory=list)  # between consecutive step completions
    activity_dispatch: list[float] = field(default_factory=list)  # step schedule-to-start
    workflow_dispatch: list[float] = field(default_factory=list)  # workflow task schedule-to-start

    @property
    def throughput(self) -> float:
        return statistics.median(self.rounds)

    def throughput_text(self) -> str:
        spread = f"{min(self.rounds):.1f}-{max(self.rounds):.1f}"
        return f"{self.throughput:.1f} steps/s (median of {len(self.rounds)} batches; range {spread})"


def bench_manifest() -> AgentManifest:
    """K auto-approved no-op actions; a fresh agent name, so budgets and slots are its own."""
    actions = {f"step_{i}": ActionSpec(connector="noop", risk=RiskClass.LOW) for i in range(1, STEPS + 1)}
    return AgentManifest.model_validate(
        {
            "name": f"bench-{uuid.uuid4().hex[:8]}",
            "actions": actions,
            "policy": PolicySpec(approvers=["operator"]),
            "turn_limit": STEPS + 1,
            "budget": BudgetSpec(
                tokens_per_run=10_000_000,
                cost_per_run=1_000.0,
                tokens_per_day=1_000_000_000,
                cost_per_day=1_000_000.0,
                max_concurrent_runs=2 * CONCURRENT_RUNS,
            ),
        }
    )


def conductor_variant(client: AiosClient, task_queue: str) -> Variant:
    manifest = bench_manifest()

    async def start(label: str) -> str:
        task = {"bench": label}
        started = await client.start_run(manifest.name, task, manifest=manifest, task_queue=task_queue)
        return started.run_id

    async def wait(run_id: str) -> None:
        final = await _within(client.result(run_id), run_id)
        executed = [step for step in final.steps if step.status == "executed"]
        if final.status is not RunStatus.COMPLETED or len(executed) != STEPS:
            raise RuntimeError(
                f"conductor run {run_id} ended {final.status.value} with {len(executed)} of "
                f"{STEPS} steps executed: {final.outcome}"
            )

    return Variant("conductor", start, wait, STEP_ACTIVITY)


def bare_variant(client: Client, task_queue: str, name: str, activity_name: str, *, local: bool) -> Variant:
    async def start(label: str) -> str:
        handle = await client.start_workflow(
            BareStepsWorkflow.run,
            args=[STEPS, activity_name, local],
            id=f"bench-bare-{label}-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
        )
        return handle.id

    async def wait(run_id: str) -> None:
        handle = client.get_workflow_handle(run_id, result_type=int)
        done = await _within(handle.result(), run_id)
        if done != STEPS:
            raise RuntimeError(f"bare run {run_id} did {done} of {STEPS} steps")

    return Variant(name, start, wait, activity_name)


async def _within(result: Awaitable[T], run_id: str) -> T:
    try:
        return await asyncio.wait_for(result, RESULT_TIMEOUT)
    except TimeoutError:
        raise RuntimeError(f"run {run_id} did not finish within {RESULT_TIMEOUT:.0f}s") from None


# -- measuring --------------------------------------------------------------------------


async def _run_all(client: Client, variants: list[Variant]) -> None:
    for variant in variants:
        await variant.wait(await variant.start("warm-up"))
    for round_ in range(CONCURRENT_ROUNDS):
        for variant in _rotated(variants, round_):
            started = time.perf_counter()
            run_ids = await asyncio.gather(*(variant.start(f"c{round_}-{i}") for i in range(CONCURRENT_RUNS)))
            await asyncio.gather(*(variant.wait(run_id) for run_id in run_ids))
            variant.rounds.append(CONCURRENT_RUNS * STEPS / (time.perf_counter() - started))
    for index in range(SEQUENTIAL_RUNS):
        for variant in _rotated(variants, index):
            started = time.perf_counter()
            run_id = await variant.start(f"s{index}")
            await variant.wait(run_id)
            variant.per_step.append((time.perf_counter() - started) / STEPS)
            variant.sequential.append(run_id)
    for variant in variants:
        for run_id in variant.sequential:
            await _read_history(client, run_id, variant)


def _rotated(variants: list[Variant], shift: int) -> list[Variant]:
    shift %= len(variants)
    return variants[shift:] + variants[:shift]


async def _read_history(client: Client, run_id: str, variant: Variant) -> None:
    events = (await client.get_workflow_handle(run_id).fetch_history()).events
    at = {event.event_id: _seconds(event) for event in events}
    steps = {
        event.event_id
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == variant.step_activity
    }
    completions = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            scheduled = event.activity_task_started_event_attributes.scheduled_event_id
            if scheduled in steps:
                variant.activity_dispatch.append(at[event.event_id] - at[scheduled])
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            if event.activity_task_completed_event_attributes.scheduled_event_id in steps:
                completions.append(at[event.event_id])
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            completions += _local_completion(event, variant.step_activity)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            scheduled = event.workflow_task_started_event_attributes.scheduled_event_id
            variant.workflow_dispatch.append(at[event.event_id] - at[scheduled])
    if len(completions) != STEPS:
        raise RuntimeError(f"{run_id}: {len(completions)} step completions in history, expected {STEPS}")
    variant.gaps += [later - earlier for earlier, later in itertools.pairwise(completions)]


def _local_completion(event: HistoryEvent, activity_type: str | None) -> list[float]:
    """A local activity's marker carries its own completion time (the event's is the task's)."""
    attributes = event.marker_recorded_event_attributes
    if attributes.marker_name != LOCAL_ACTIVITY_MARKER:
        return []
    data = json.loads(attributes.details["data"].payloads[0].data)
    if data["activity_type"] != activity_type:
        return []
    done = data["complete_time"]
    return [done["seconds"] + done["nanos"] / 1e9]


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.ToMicroseconds() / 1e6


# -- the report -------------------------------------------------------------------------


def _p50_p95(samples_s: list[float]) -> str:
    if not samples_s:
        return "none (no regular activity: the steps ran as local activities)"
    ms = [sample * 1000 for sample in samples_s]
    return f"p50 {percentile(ms, 0.5):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms (n={len(ms)})"


NOTES = f"""\
The conductor is `AgentRun` with a manifest of K `noop` actions of low risk (auto-approved):
per run it acquires a slot, recalls, then for each of K + 1 turns thinks (budget reservation,
offline model, settlement), grades the proposal, executes it and records the state and audit
events, then releases the slot; starts go through `AiosClient.start_run` (admission reads
Postgres). The bare baseline runs the same `{STEP_ACTIVITY}` activity (noop connector, effect
ledger in Postgres) K times in a plain workflow, so the ratio is the conductor's own cost; it
is the median of per-pair ratios, a conductor batch against the bare batch next to it.
Per-step latency is run time / K over sequential runs; the step interval is the time between
consecutive step completions in the run's history; dispatch is schedule-to-start in history.

Levers in the conductor: local activities for cheap steps, yes (`think` and `record` are
local activities; slot, recall and each action are regular activities); eager activity
execution, requested by the worker but honoured only when the server enables
`system.enableActivityEagerExecution` and the activity is on the workflow's own task queue
(a step dispatch near 0 ms says the actions start eagerly; actions sent to a per-connector
queue never do); batched writes, partly (one `record` transaction per step carries that
step's audit events and the state mirror; the effect ledger and the budget each still write
twice per step). On the dev server every trip through history's transfer queue (each
workflow task and each non-eager activity task) waits for the queue reader, limited by
`history.transferProcessorMaxPollRPS` (20 reads/s by default for its single shard, ~40 ms a
trip): `aios dev up` raises it to 1000, which the dispatch figures reflect. The machine's
other load moves throughput by tens of percent between runs; latencies move less."""


async def measure() -> Section:
    settings = load_settings()
    section = Section(
        "Conductor overhead: agent runs vs bare workflows of K no-op steps",
        "make bench  (python -m bench conductor_overhead)",
        notes=NOTES,
    )
    conductor_queue = f"bench-conductor-{uuid.uuid4().hex[:8]}"
    bare_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    conductor_worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=conductor_queue))
    deps = await open_deps(settings, memory=False)  # the conductor's worker holds the store
    try:
        client = await AiosClient.connect(settings)
        bare_worker = Worker(
            client.temporal,
            task_queue=bare_queue,
            workflows=[BareStepsWorkflow],
            activities=[ActionActivities(deps, deps.connectors).execute, noop_step],
            workflow_runner=workflow_runner(),
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
        conductor = conductor_variant(client, conductor_queue)
        bare = bare_variant(client.temporal, bare_queue, "bare", STEP_ACTIVITY, local=False)
        pure = bare_variant(client.temporal, bare_queue, "pure no-op", NOOP_ACTIVITY, local=False)
        local = bare_variant(client.temporal, bare_queue, "local", STEP_ACTIVITY, local=True)
        async with bare_worker:
            await _run_all(client.temporal, [conductor, bare, pure, local])
    finally:
        stop.set()
        await conductor_worker
        await close_deps(deps)
    _report(section, conductor, bare, pure, local)
    return section


def _report(section: Section, conductor: Variant, bare: Variant, pure: Variant, local: Variant) -> None:
    ratios = [ours / theirs for ours, theirs in zip(conductor.rounds, bare.rounds, strict=True)]
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    section.add(
        "runs x steps",
        f"K={STEPS} steps; N={CONCURRENT_RUNS} concurrent runs x {CONCURRENT_ROUNDS} batches, "
        f"{SEQUENTIAL_RUNS} sequential runs, per variant",
    )
    section.add("conductor throughput", conductor.throughput_text())
    section.add("bare throughput (same activity)", bare.throughput_text())
    section.add(
        "ratio conductor / bare",
        f"{ratio:.2f} (overhead {(1 - ratio) * 100:.0f}%; range {min(ratios):.2f}-{max(ratios):.2f}; "
        f"{verdict} the >= {TARGET_RATIO} target)",
    )
    section.add("bare throughput (pure no-op activity)", pure.throughput_text())
    section.add("bare throughput (steps as local activities)", local.throughput_text())
    section.add("conductor per-step latency (run time / K)", _p50_p95(conductor.per_step))
    section.add("bare per-step latency (run time / K)", _p50_p95(bare.per_step))
    section.add("conductor step interval", _p50_p95(conductor.gaps))
    section.add("bare step interval", _p50_p95(bare.gaps))
    section.add("bare per-step latency, pure no-op activity", _p50_p95(pure.per_step))
    section.add("bare per-step latency, steps as local activities", _p50_p95(local.per_step))
    section.add("conductor step dispatch (activity schedule-to-start)", _p50_p95(conductor.activity_dispatch))
    section.add("conductor workflow task dispatch (schedule-to-start)", _p50_p95(conductor.workflow_dispatch))
    extra_ms = (statistics.median(conductor.per_step) - statistics.median(bare.per_step)) * 1000
    section.add("conductor's extra time per step (p50 difference)", f"{extra_ms:.1f} ms")
    section.add("sequential conductor run", summarize_ms([step * STEPS for step in conductor.per_step]))
