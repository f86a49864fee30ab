"""aios and LangGraph side by side: the same agent loop, the same Postgres, one run (issue #7).

The loop (bench/langgraph_common.py): K actions proposed one per turn by aios's offline model,
graded by aios's policy, one of them high risk so it waits for an approval that the driver
gives at once, each action a no-op side effect. aios runs it as an `AgentRun` through
`AiosClient` with the production worker in the measuring process (bench/langgraph_aios.py);
LangGraph as a think -> gate -> act StateGraph with `interrupt` at the gate and
AsyncPostgresSaver in its own schema of aios's database (bench/langgraph_loop.py).

Each side is measured in processes of its own (bench/langgraph_measure.py), the sides taking
turns: per-step latency both as run time / K and as the marginal cost of a step between K1 and
K2, throughput of N concurrent runs, CPU per step (the side's process, the Temporal server, the
Postgres cluster) and peak RSS. Then crash recovery (bench/langgraph_crash.py). The figures go
to docs/BENCHMARKS.md and a plot to docs/benchmarks-langgraph.png.
"""

from __future__ import annotations

import datetime
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from aios.settings import Settings, load_settings
from bench.langgraph_common import (
    APPROVAL_AT,
    CONCURRENT_ROUNDS,
    CONCURRENT_RUNS,
    PASSES,
    SEQUENTIAL_RUNS,
    STEPS_LONG,
    STEPS_SHORT,
    Servers,
    SideFigures,
)
from bench.langgraph_crash import CRASH_AT, CRASH_STEPS, Child, CrashOutcome, crash_all
from bench.report import Section, machine

SIDES = ("aios", "langgraph", "langgraph-async")
LABELS = {
    "aios": "aios",
    "langgraph": "LangGraph (durability=sync)",
    "langgraph-async": "LangGraph (durability=async, its default)",
}
PLOT = Path("docs/benchmarks-langgraph.png")
PAR = 1.0  # "at least on par": aios's latency <= LangGraph's, its steps/s >= LangGraph's
DETACHED = b"long-term memory is detached"  # what aios's worker logs without its memory store
COMMAND = "make bench  (python -m bench langgraph_side_by_side)"


async def measure() -> Section:
    settings = load_settings()
    servers = local_servers(settings)
    for stale in (settings.data_dir / "logs").glob("bench-langgraph-measure-*.log"):
        stale.unlink()
    sides: dict[str, SideFigures] = {side: SideFigures(side) for side in SIDES}
    for pass_ in range(PASSES):
        for side in SIDES[pass_ % len(SIDES) :] + SIDES[: pass_ % len(SIDES)]:
            sides[side].absorb(await _measure_side(side, servers, settings))
    crashes = await crash_all(settings)
    section = Section("Side by side with LangGraph: the same agent loop, the same Postgres", COMMAND)
    _report(section, sides, crashes)
    from bench.langgraph_plot import plot

    plot(sides, crashes, PLOT)
    section.notes = _notes()
    print(f"  wrote {PLOT}")
    return section


def local_servers(settings: Settings) -> Servers:
    """The local servers' pids, to read their CPU; None for a server that is not local."""
    from aios.stack import postgres, temporal

    temporal_pid = temporal.files(settings).read_pid() if settings.temporal_is_local else None
    postgres_pid = postgres.running_pid(settings) if settings.postgres_is_local else None
    return Servers(temporal_pid, postgres_pid)


async def _measure_side(side: str, servers: Servers, settings: Settings) -> SideFigures:
    print(f"  measuring {LABELS[side]} ...", flush=True)
    log = settings.data_dir / "logs" / f"bench-langgraph-measure-{side}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pids = []
    if servers.temporal_pid:
        pids += ["--temporal-pid", str(servers.temporal_pid)]
    if servers.postgres_pid:
        pids += ["--postgres-pid", str(servers.postgres_pid)]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / f"{side}.json"
        logged = log.stat().st_size if log.exists() else 0
        child = await Child.spawn(log, "-m", "bench.langgraph_measure", side, str(out), *pids)
        try:
            await child.finished()
        finally:
            await child.stop()
        figures = SideFigures(**json.loads(out.read_text()))
    # An embedded memory store serves one process: when another holds it (a test, another
    # worker), aios's worker starts without it and its RSS is smaller by the store's index.
    figures.memory_detached = int(DETACHED in log.read_bytes()[logged:])
    return figures


# -- the report -------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _latency(figures: SideFigures) -> str:
    return (
        f"p50 {_ms(figures.per_step(STEPS_LONG, 0.5))}, p95 {_ms(figures.per_step(STEPS_LONG, 0.95))} "
        f"(K={STEPS_LONG}, n={len(figures.runs(STEPS_LONG))})"
    )


def _marginal(figures: SideFigures) -> str:
    return f"p50 {_ms(figures.marginal(0.5))}, p95 {_ms(figures.marginal(0.95))}"


def _throughput(figures: SideFigures) -> str:
    spread = f"{min(figures.rounds):.1f}-{max(figures.rounds):.1f}"
    return f"{figures.throughput:.1f} steps/s (median of {len(figures.rounds)} batches; range {spread})"


def _cpu(figures: SideFigures) -> str:
    labels = {"process": "its process", "temporal": "Temporal server", "postgres": "Postgres"}
    shown = [
        f"{labels[part]} {value:.1f}"
        for part in figures.cpu_parts
        if (value := figures.cpu_ms_per_step(part)) is not None
    ]
    text = f"{figures.cpu_total_ms_per_step():.1f} ms/step = " + " + ".join(shown)
    background = figures.cpu_ms_per_step("temporal")
    if "temporal" not in figures.cpu_parts and background is not None:
        text += f" (the Temporal server, unused by it, burned {background:.1f} meanwhile: other load)"
    return text


def _memory(figures: SideFigures) -> str:
    text = f"peak RSS {figures.peak_rss_mb:.0f} MB (after warm-up {figures.base_rss_mb:.0f} MB)"
    if figures.temporal_rss_mb is not None:
        opened = figures.passes - figures.memory_detached
        text += (
            f", its embedded memory store open in {opened} of {figures.passes} passes; plus the "
            f"Temporal dev server it needs, RSS {figures.temporal_rss_mb:.0f} MB"
        )
    return text


def _crash(outcome: CrashOutcome) -> str:
    action = outcome.crashed_action
    return (
        f"{action} killed mid-effect: {outcome.posts.get(action, 0)} POST(s) reached the server, "
        f"{outcome.applied.get(action, 0)} applied; repeated side effects: {outcome.repeated}; "
        f"{outcome.finished}; {outcome.recovery_s:.1f} s from the kill to the run's end"
    )


def _report(section: Section, sides: dict[str, SideFigures], crashes: list[CrashOutcome]) -> None:
    section.add("machine, date", f"{machine()}, {datetime.date.today().isoformat()}")
    section.add(
        "loop",
        f"K1={STEPS_SHORT} and K2={STEPS_LONG} steps, step {APPROVAL_AT} waits for an approval; "
        f"{PASSES * SEQUENTIAL_RUNS} sequential runs per K, N={CONCURRENT_RUNS} concurrent runs x "
        f"{PASSES * CONCURRENT_ROUNDS} batches at K2, per side, in {PASSES} passes (processes) "
        "per side, the sides taking turns",
    )
    for name, row in ROWS:
        for side, figures in sides.items():
            section.add(f"{name}: {LABELS[side]}", row(figures))
    _ratios(section, sides["aios"], sides["langgraph"])
    for outcome in crashes:
        section.add(f"crash recovery: {outcome.side}", _crash(outcome))
    section.add("crash target", _crash_verdict(crashes))


ROWS: list[tuple[str, Callable[[SideFigures], str]]] = [
    ("per-step latency, run time / K", _latency),
    ("per-step latency, marginal", _marginal),
    ("throughput", _throughput),
    ("CPU per step (concurrent batches)", _cpu),
    ("memory", _memory),
]


def _ratios(section: Section, aios: SideFigures, langgraph: SideFigures) -> None:
    latency = aios.per_step(STEPS_LONG, 0.5) / langgraph.per_step(STEPS_LONG, 0.5)
    marginal = aios.marginal(0.5) / langgraph.marginal(0.5)
    throughput = aios.throughput / langgraph.throughput
    cpu = aios.cpu_total_ms_per_step() / langgraph.cpu_total_ms_per_step()
    versus = "aios / LangGraph (sync)"
    section.add(
        f"ratio {versus}: per-step latency p50, run time / K", f"{latency:.2f}x ({_par(latency <= PAR)})"
    )
    section.add(
        f"ratio {versus}: per-step latency p50, marginal", f"{marginal:.2f}x ({_par(marginal <= PAR)})"
    )
    section.add(f"ratio {versus}: throughput", f"{throughput:.2f}x ({_par(throughput >= PAR)})")
    section.add(f"ratio {versus}: CPU per step, all processes", f"{cpu:.2f}x")
    section.add(
        f"ratio {versus}: peak RSS of the side's process", f"{aios.peak_rss_mb / langgraph.peak_rss_mb:.2f}x"
    )


def _par(met: bool) -> str:
    return "meets the at-least-on-par target" if met else "misses the at-least-on-par target"


def _crash_verdict(crashes: list[CrashOutcome]) -> str:
    by_side = {outcome.side: outcome for outcome in crashes}
    aios, plain = by_side["aios"], by_side["langgraph, plain POST"]
    met = aios.repeated == 0 and plain.repeated > 0
    return (
        f"{'met' if met else 'not met'}: aios repeated {aios.repeated} side effect(s), "
        f"LangGraph with a plain POST repeated {plain.repeated}"
    )


def _notes() -> str:
    return f"""\
![aios and LangGraph side by side](benchmarks-langgraph.png)

The loop is the same on both sides: K actions proposed one per turn by aios's offline model
(`connectors/model/offline.py`, the same chat request aios's think activity builds), graded by
aios's policy function, step {APPROVAL_AT} high risk so it waits for an approval that the driver
gives as soon as the run waits, and K + 1 turns (the last says "done"). aios runs it as an
`AgentRun` started with `AiosClient.start_run` (admission reads Postgres), approved with
`decide` (an update) when the run's history shows `AiosState = waiting_approval` (a long
poll, not polling), awaited with `result`; the production worker (`workers.main.run_worker`)
runs in the measuring process on a fresh task queue. Per step aios reserves and settles the
model budget, executes the action through the effect ledger (two writes), records the audit
events and the state mirror, and Temporal persists the history. LangGraph runs a
think -> gate -> act StateGraph (the gate calls `interrupt`, the driver answers with
`Command(resume=...)`) checkpointed by AsyncPostgresSaver on a pool of 10 connections (as
aios's worker) in schema `bench_langgraph` of the same database: three checkpoints per step,
each before the next node starts with durability `sync` (what aios guarantees; the ratios use
it), while LangGraph's default `async` writes them alongside the next node. Memory is off on
both, recall and remembering (LangGraph has none). Each side runs in processes of its own, one
at a time, the sides taking turns pass by pass.

Per-step latency: run time / K over sequential runs at K2, and the marginal cost of a step,
(run time at K2 - run time at K1) / (K2 - K1) for each pair of adjacent runs (the K1 and K2
runs alternate), which leaves out the per-run costs (start, approval, end). Throughput: N runs
at K2 started at once. CPU: CPU seconds over the concurrent batches divided by their steps,
for the side's own process (client and, for aios, the worker), the Temporal dev server and the whole Postgres
cluster (postmaster and every backend, exited ones included). The servers are shared with
whatever else runs on the machine, so their figures include that load; LangGraph's total leaves
the Temporal server out (it needs none), and what that server burned meanwhile shows the size
of the other load. Memory: peak RSS of the side's
process; aios also needs the Temporal server, whose RSS is shown beside it.

Crash recovery: a loop of {CRASH_STEPS} steps whose every action POSTs to a loopback counting
server (`tests/support/effect_server.py`, which applies a POST once per Idempotency-Key and every
keyless POST). The server applies step {CRASH_AT}'s POST (the approved one) and holds its answer,
and the process that sent it is SIGKILLed then: after the effect, before the step is
checkpointed. aios: the worker is killed and a new `aios worker` picks the run up; the killed
action is retried once its 10 s heartbeat timeout expires, which is most of the recovery time,
and is sent again with the same Idempotency-Key (its ledger row says it was begun, not
finished), so the server applies it once. LangGraph: a new process resumes the thread from its
last checkpoint with `ainvoke(None)` and the act node runs again; with a plain POST the server
applies it twice, with a key the node derives from the thread and step it applies it once.
Both therefore send the request twice; what keeps aios's effect single is the key its ledger
sends for every effect, which the downstream service must honour. Timings on this machine
move by tens of percent with other load; see the machine row."""
