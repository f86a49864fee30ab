"""The headline side by side: aios and LangGraph on a realistic workload, the same servers, one run.

Both sides run the same agent: K=5 actions per run, each proposed by a model that is the
loopback OpenAI-compatible server (tests/support/fake_openai.py) answering real tool calls after
150 ms ± 50 ms (seeded per run and turn, bench/realistic_servers.py), each action an HTTP POST
with an Idempotency-Key to the loopback effect server (30 ms per POST), step 3 of 5 waiting for
an approval that a client gives 200 ms after the run waits. aios runs it as an `AgentRun`
(`http` actions, `openai` model) with the production worker in the measuring process;
LangGraph 1.x as the think -> gate -> act graph of bench/langgraph_loop.py, checkpointed by
AsyncPostgresSaver with durability "sync", its POST keyed by thread and step.

For each level N (AIOS_BENCH_REALISTIC_LEVELS, default 10,50,100) a batch of N runs starts at
once: steps/s, p50/p95 run latency, CPU per step by process (bench/langgraph_common.CpuReading),
Postgres transactions per step, RSS, and the latency bound N / (ideal per-step latency), the
throughput a side with zero overhead would reach. The servers run in this process, so their
CPU is neither side's.
"""

from __future__ import annotations

import datetime
import json
import math
import tempfile
from importlib import metadata
from pathlib import Path

from aios.settings import Settings, load_settings
from bench.history_counts import history_counts
from bench.langgraph_common import Servers as LocalServers
from bench.langgraph_crash import Child
from bench.langgraph_side_by_side import local_servers
from bench.realistic_figures import (
    APPROVAL_AT,
    APPROVAL_DELAY,
    BUDGET_VARIABLE,
    EFFECT_SECONDS,
    INLINE_VARIABLE,
    LEVELS_VARIABLE,
    STEPS,
    TIMING,
    LevelFigures,
    SideResult,
    budget_from_env,
    inline_from_env,
    levels_from_env,
)
from bench.realistic_floor import floor
from bench.realistic_servers import Servers
from bench.report import Section, machine
from tests.support.env import child_env

SIDES = ("aios", "langgraph")
LABELS = {"aios": "aios", "langgraph": "LangGraph (durability=sync, keyed POST)"}
PLOT = Path("docs/benchmarks-realistic.png")
COMMAND = "make bench  (python -m bench realistic_side_by_side)"
SIDE_TIMEOUT = 900.0  # seconds for one side's process: a longer one is a broken benchmark
THROUGHPUT_TARGETS = {10: 1.0, 50: 1.0, 100: 0.8}  # aios / LangGraph steps/s, per concurrency
LATENCY_TARGET = 1.1  # aios / LangGraph p95 run latency, at most
PART_LABELS = {"process": "its process", "temporal": "Temporal server", "postgres": "Postgres"}


async def measure() -> Section:
    settings = load_settings()
    levels = levels_from_env()
    servers = Servers.start(TIMING, EFFECT_SECONDS)
    try:
        results = {side: await measure_side(side, levels, servers, settings) for side in SIDES}
    finally:
        servers.stop()
    section = Section("Headline: a realistic workload side by side with LangGraph", COMMAND)
    report(section, results, levels)
    if results["aios"].run_ids:
        counts = await history_counts(settings, results["aios"].run_ids)
        floor(section, results["aios"], counts, results["langgraph"])
    from bench.realistic_plot import plot

    plot(results, PLOT)
    print(f"  wrote {PLOT}")
    section.notes = NOTES
    return section


async def measure_side(
    side: str, levels: list[int], servers: Servers, settings: Settings, workload: str = "realistic"
) -> SideResult:
    print(f"  measuring {LABELS[side]} ({workload}) at {levels} concurrent runs ...", flush=True)
    log = settings.data_dir / "logs" / f"bench-realistic-{side}-{workload}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / f"{side}.json"
        args = measure_args(side, out, levels, servers, local_servers(settings), workload=workload)
        env = child_env(AIOS_MODEL_BASE_URL=servers.model.url)
        child = await Child.spawn(log, "-m", "bench.realistic_measure", *args, env=env)
        try:
            await child.finished(within=SIDE_TIMEOUT)
        finally:
            await child.stop()
        return SideResult.from_json(json.loads(out.read_text()))


def measure_args(
    side: str, out: Path, levels: list[int], servers: Servers, pids: LocalServers, *, workload: str
) -> list[str]:
    args = [side, str(out), "--workload", workload, "--levels", ",".join(map(str, levels))]
    args += ["--steps", str(STEPS), "--approval-at", str(APPROVAL_AT), "--budget", str(budget_from_env())]
    if workload == "realistic":
        args += ["--approval-delay", str(APPROVAL_DELAY)]
        args += ["--model-url", servers.model.url, "--effects-url", servers.effects.url]
        args += ["--inline-effects"] if inline_from_env() else []
    if pids.temporal_pid:
        args += ["--temporal-pid", str(pids.temporal_pid)]
    if pids.postgres_pid:
        args += ["--postgres-pid", str(pids.postgres_pid)]
    return args


# -- the report -------------------------------------------------------------------------


def _cpu(result: SideResult, level: LevelFigures) -> str:
    if not level.steps:
        return "n/a: no run finished"
    parts = {part: level.cpu_ms_per_step(part) for part in result.cpu_parts}
    total = sum(value for value in parts.values() if value is not None)
    shown = " + ".join(f"{PART_LABELS[p]} {v:.1f}" for p, v in parts.items() if v is not None)
    text = f"{total:.1f} ms/step = {shown}"
    other = level.cpu_ms_per_step("temporal")
    if "temporal" not in result.cpu_parts and other is not None:
        text += f" (the Temporal server, unused by it, burned {other:.1f}: other load)"
    return text


def _latency(level: LevelFigures, fraction: float) -> str:
    seconds = level.run_latency(fraction)
    return f"> {level.seconds:.0f} s (unfinished)" if math.isinf(seconds) else f"{seconds:.2f} s"


def _throughput(level: LevelFigures) -> str:
    share = level.steps_per_second / level.bound
    text = (
        f"{level.steps_per_second:.1f} steps/s of a latency bound of {level.bound:.0f} "
        f"({share:.0%}); run latency p50 {_latency(level, 0.5)}, p95 {_latency(level, 0.95)}"
    )
    if level.unfinished:
        text += f"; {level.unfinished} of {level.runs} runs unfinished after {level.seconds:.0f} s, abandoned"
    return text


def _postgres(level: LevelFigures) -> str:
    per_step = level.transactions_per_step()
    return "n/a" if per_step is None else f"{per_step:.1f} transactions per step"


def _versions() -> str:
    names = ("langgraph", "langgraph-checkpoint-postgres", "temporalio")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def report(section: Section, results: dict[str, SideResult], levels: list[int]) -> None:
    section.add("machine, date", f"{machine()}, {datetime.date.today().isoformat()}")
    section.add("versions", _versions())
    section.add(
        "workload",
        f"K={STEPS} actions per run, model {TIMING.mean * 1000:.0f} ms ± {TIMING.spread * 1000:.0f} ms "
        f"(seed {TIMING.seed}) per answer with real tool calls, each action a POST "
        f"({EFFECT_SECONDS * 1000:.0f} ms), step {APPROVAL_AT} approved {APPROVAL_DELAY * 1000:.0f} ms "
        f"after it waits; one batch per level of {', '.join(map(str, levels))} concurrent runs "
        f"({LEVELS_VARIABLE}), each given {budget_from_env():.0f} s ({BUDGET_VARIABLE}); aios's `http` "
        + ("actions `inline`" if inline_from_env() else "actions on their connector's task queue")
        + f" ({INLINE_VARIABLE})",
    )
    for index, count in enumerate(levels):
        for side, result in results.items():
            level = result.levels[index]
            section.add(f"N={count}: {LABELS[side]}", _throughput(level))
            section.add(f"N={count} CPU per step: {LABELS[side]}", _cpu(result, level))
            section.add(f"N={count} Postgres: {LABELS[side]}", _postgres(level))
    for side, result in results.items():
        text = f"peak RSS {result.peak_rss_mb:.0f} MB (after warm-up {result.base_rss_mb:.0f} MB)"
        if result.temporal_rss_mb is not None:
            text += f"; plus the Temporal dev server it needs, RSS {result.temporal_rss_mb:.0f} MB"
        section.add(f"memory: {LABELS[side]}", text)
    for index, count in enumerate(levels):
        aios, langgraph = results["aios"].levels[index], results["langgraph"].levels[index]
        section.add(f"N={count}: ratio aios / LangGraph", _ratio(aios, langgraph, count))


def _ratio(aios: LevelFigures, langgraph: LevelFigures, count: int) -> str:
    if not langgraph.steps:
        return "n/a: no LangGraph run finished"
    throughput = aios.steps_per_second / langgraph.steps_per_second
    wanted = THROUGHPUT_TARGETS.get(count)
    text = f"steps/s {throughput:.2f}x" + (f" (target >= {wanted}x)" if wanted else "")
    latency = aios.run_latency(0.95) / langgraph.run_latency(0.95)
    shown = "n/a (unfinished runs)" if math.isinf(latency) else f"{latency:.2f}x"
    return f"{text}, run latency p95 {shown} (target <= {LATENCY_TARGET}x)"


NOTES = """\
![aios and LangGraph on the realistic workload](benchmarks-realistic.png)

Both sides do the same work against the same loopback servers, started once in the benchmark's
process (so their CPU is neither side's): the model server answers each chat request with the next
tool call in order (`step_1` .. `step_5`, then "done") after a latency drawn per run and turn from a
seeded generator, so the same run waits as long on either side; the effect server takes 30 ms per
POST and applies each Idempotency-Key once. aios's requests go through its `openai` model connector
and its `http` action connector (the effect ledger's key); LangGraph's through the same model
connector class and an httpx POST keyed by thread and step, so both are correct under a crash. The
approval: aios's client waits for `AiosState = waiting_approval` in the run's history, sleeps 200 ms
and calls `decide`; LangGraph's waits for `ainvoke` to return the interrupt, sleeps 200 ms and
resumes with `Command(resume=...)`. aios's `http` actions are `inline` (performed inside the
run's workflow task, as LangGraph's act node performs its POST in its process;
AIOS_BENCH_REALISTIC_INLINE=0 puts them on their connector's task queue). Memory is off on both
sides, recall and remembering: LangGraph's loop has none. The floor rows divide aios's Temporal
server CPU by the workflow tasks its runs' histories hold (bench/history_counts.py); the machine's
row adds aios's process and Postgres, the last row puts LangGraph's process and Postgres beside
aios's server: what aios could reach on these cores were all but its Temporal server as cheap as
LangGraph's, so a ratio above that row's is out of reach with this server in the loop.

The latency bound is N / (ideal per-step latency), the ideal run being its six model answers, five
POSTs and the approval delay with zero overhead (about 1.25 s, 0.25 s per step): the throughput N
concurrent runs reach if nothing but the servers' latency counts. How close a side gets to it is how
much its own overhead, and the two cores it shares with the servers, cost. CPU per step: CPU seconds
over the batch / its steps, for the side's process (client, driver and, for aios, the worker), the
Temporal dev server, and the whole Postgres cluster. Postgres transactions per step: the database's
commits and rollbacks over the batch (each autocommit statement is one). A batch may take 75 s
(AIOS_BENCH_REALISTIC_BUDGET): runs unfinished by then are abandoned (aios's terminated, LangGraph's
cancelled) so that they burn nothing in the next batch, and count as not done: steps/s counts
finished runs only, and a percentile that falls on an unfinished run shows as "> the batch's
length". Each batch is one sample: these figures move by tens of percent with the machine's other
load. The no-op loop below (zero-latency model and effects) isolates the per-step overhead."""
