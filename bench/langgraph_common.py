"""What both sides of the LangGraph side-by-side share: sizes, the manifest, CPU and memory readings.

Imports neither LangGraph nor temporalio, so each side's process pays only for its own stack.
"""

from __future__ import annotations

import resource
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from aios.models.manifest import ActionSpec, AgentManifest, BudgetSpec, MemorySpec, PolicySpec, RiskClass
from bench.report import percentile

# Sizes: the whole benchmark takes about two minutes on 2 cores.
STEPS_SHORT = 3  # K1 of the marginal per-step cost
STEPS_LONG = 9  # K2; also the K of every concurrent run
APPROVAL_AT = 2  # the step whose action is high risk: it waits for an approval
# Each side is measured in PASSES processes, the sides taking turns, so a change in the
# machine's other load hits them alike; the figures below are per pass.
PASSES = 2
SEQUENTIAL_RUNS = 10  # per K, one after another, K1 and K2 alternating
CONCURRENT_RUNS = 10  # N runs in flight at once
CONCURRENT_ROUNDS = 2  # batches of N; the median batch over all passes is reported
APPROVER = "operator"


# -- the shared manifest ----------------------------------------------------------------


def loop_manifest(
    steps: int,
    approval_at: int,
    *,
    name: str,
    effects_url: str | None = None,
    concurrent_runs: int = 1,
    inline: bool = False,
) -> AgentManifest:
    """K actions `step_1..step_K`, all low risk but `step_<approval_at>`, which is high (approval).

    Without `effects_url` each action is a `noop`; with it, an `http` POST to
    `<effects_url>/effects/<action>` (`inline`: performed inside the run's workflow task). Memory
    is off, recall (top_k 0) and remembering (remember: none): LangGraph's loop has none.
    """
    actions = {}
    for index in range(1, steps + 1):
        risk = RiskClass.HIGH if index == approval_at else RiskClass.LOW
        if effects_url is None:
            actions[f"step_{index}"] = ActionSpec(connector="noop", risk=risk)
        else:
            target = f"{effects_url}/effects/step_{index}"
            actions[f"step_{index}"] = ActionSpec(connector="http", risk=risk, target=target, inline=inline)
    return AgentManifest.model_validate(
        {
            "name": name,
            "actions": actions,
            "policy": PolicySpec(approvers=[APPROVER]),
            "turn_limit": steps + 1,
            "memory": MemorySpec(top_k=0, remember="none"),
            "budget": BudgetSpec(
                tokens_per_run=10_000_000,
                cost_per_run=1_000.0,
                tokens_per_day=1_000_000_000,
                cost_per_day=1_000_000.0,
                max_concurrent_runs=max(4, 2 * concurrent_runs),
            ),
        }
    )


# -- CPU and memory ---------------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    """The local servers whose CPU a side uses too (None: not local, not counted)."""

    temporal_pid: int | None
    postgres_pid: int | None


@dataclass(frozen=True)
class CpuReading:
    """Cumulative CPU seconds: this process, the Temporal server, the Postgres cluster."""

    process: float
    temporal: float | None
    postgres: float | None

    @classmethod
    def now(cls, servers: Servers) -> CpuReading:
        own = psutil.Process().cpu_times()
        return cls(own.user + own.system, _tree_cpu(servers.temporal_pid), _tree_cpu(servers.postgres_pid))

    def since(self, earlier: CpuReading) -> CpuReading:
        return CpuReading(
            self.process - earlier.process,
            _minus(self.temporal, earlier.temporal),
            _minus(self.postgres, earlier.postgres),
        )


def _tree_cpu(pid: int | None) -> float | None:
    """A server's CPU: its own, its live children's, and (in children_*) its exited children's.

    Postgres forks a backend per connection; a backend that exits is reaped by the postmaster,
    whose children_user/system then carry its CPU, so the sum stays whole across exits.
    """
    if pid is None:
        return None
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.Error:
                continue  # exited in between: counted in the parent's children_* from now on
            total += child_times.user + child_times.system
    except psutil.Error:
        return None
    return total


def _minus(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else later - earlier


def rss_mb(pid: int | None = None) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


def peak_rss_mb() -> float:
    """This process's own peak RSS. Not `ru_maxrss`: Linux carries it over `exec` from the
    parent at fork time, so a child of `make bench` (after the 100k-memory bench) reads ~1 GB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# -- what one side's measuring process reports ------------------------------------------


@dataclass
class SideFigures:
    """One side's measurements; JSON between the measuring process and the report."""

    side: str
    run_seconds: dict[str, list[float]] = field(default_factory=dict)  # str(K) -> sequential runs
    rounds: list[float] = field(default_factory=list)  # steps/s of each concurrent batch
    concurrent_steps: int = 0
    cpu: dict[str, float | None] = field(default_factory=dict)  # CPU s over the concurrent phase
    base_rss_mb: float = 0.0  # after the warm-up runs, before the measured ones
    peak_rss_mb: float = 0.0
    temporal_rss_mb: float | None = None
    passes: int = 0
    memory_detached: int = 0  # aios: passes whose worker ran without its embedded memory store

    def absorb(self, later: SideFigures) -> None:
        """Add a later pass's figures to these."""
        for steps, seconds in later.run_seconds.items():
            self.run_seconds.setdefault(steps, []).extend(seconds)
        self.rounds += later.rounds
        self.concurrent_steps += later.concurrent_steps
        for part, seconds in later.cpu.items():
            mine = self.cpu.get(part, 0.0)
            self.cpu[part] = None if mine is None or seconds is None else mine + seconds
        self.base_rss_mb = max(self.base_rss_mb, later.base_rss_mb)
        self.peak_rss_mb = max(self.peak_rss_mb, later.peak_rss_mb)
        self.passes += 1
        self.memory_detached += later.memory_detached
        if later.temporal_rss_mb is not None:
            self.temporal_rss_mb = max(self.temporal_rss_mb or 0.0, later.temporal_rss_mb)

    def runs(self, steps: int) -> list[float]:
        return self.run_seconds[str(steps)]

    @property
    def throughput(self) -> float:
        return statistics.median(self.rounds)

    def per_step(self, steps: int, fraction: float) -> float:
        """Run time / K at a percentile, seconds."""
        return percentile(self.runs(steps), fraction) / steps

    def marginal(self, fraction: float) -> float:
        """Seconds per extra step, at a percentile over pairs of adjacent runs (one at K1, one at K2).

        Each pair gives (run time at K2 - run time at K1) / (K2 - K1): the per-run costs (start,
        approval, end) cancel out, and adjacent runs share the machine's load of the moment.
        """
        pairs = zip(self.runs(STEPS_SHORT), self.runs(STEPS_LONG), strict=True)
        return percentile(
            [(longer - shorter) / (STEPS_LONG - STEPS_SHORT) for shorter, longer in pairs], fraction
        )

    @property
    def cpu_parts(self) -> tuple[str, ...]:
        """Whose CPU is the side's: LangGraph needs no Temporal server (its reading is other load)."""
        return ("process", "temporal", "postgres") if self.side == "aios" else ("process", "postgres")

    def cpu_total_ms_per_step(self) -> float:
        return sum(value for part in self.cpu_parts if (value := self.cpu_ms_per_step(part)) is not None)

    def cpu_ms_per_step(self, part: str) -> float | None:
        seconds = self.cpu.get(part)
        return (
            None if seconds is None or not self.concurrent_steps else seconds * 1000 / self.concurrent_steps
        )
