"""The realistic side-by-side's figures: what a measuring process reported, and the latency bound.

Imports neither LangGraph nor temporalio, so the report and the plot can read it anywhere.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.realistic_servers import ModelTiming
from bench.report import percentile

LEVELS_VARIABLE = "AIOS_BENCH_REALISTIC_LEVELS"
DEFAULT_LEVELS = (10, 50, 100)
BUDGET_VARIABLE = "AIOS_BENCH_REALISTIC_BUDGET"
DEFAULT_BUDGET = 75.0  # seconds a batch may take: keeps the default run under 5 minutes
STEPS = 5  # actions per run; one in five (step APPROVAL_AT) needs an approval
APPROVAL_AT = 3
APPROVAL_DELAY = 0.200  # seconds from the run waiting to the client's approval
EFFECT_SECONDS = 0.030  # the effect server's service time per POST
INLINE_VARIABLE = "AIOS_BENCH_REALISTIC_INLINE"
TIMING = ModelTiming()  # 150 ms ± 50 ms per model answer, seeded


def levels_from_env() -> list[int]:
    """AIOS_BENCH_REALISTIC_LEVELS=10,50,100 (the default): the concurrent runs of each batch."""
    text = os.environ.get(LEVELS_VARIABLE, "")
    if not text.strip():
        return list(DEFAULT_LEVELS)
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"{LEVELS_VARIABLE}={text!r}: expected counts like 10,50,100") from None
    if not levels or min(levels) < 1:
        raise SystemExit(f"{LEVELS_VARIABLE}={text!r}: expected positive counts like 10,50,100")
    return levels


def inline_from_env() -> bool:
    """AIOS_BENCH_REALISTIC_INLINE=1 (the default): aios's `http` actions are `inline` (each
    POST rides in the next think, as LangGraph's act node does it in its process); 0: each is
    an activity on the connector's task queue."""
    text = os.environ.get(INLINE_VARIABLE, "1").strip()
    if text not in ("0", "1"):
        raise SystemExit(f"{INLINE_VARIABLE}={text!r}: expected 1 (inline actions) or 0 (task queue)")
    return text == "1"


def budget_from_env() -> float:
    """AIOS_BENCH_REALISTIC_BUDGET=75 (the default): seconds a batch may take before its
    unfinished runs are abandoned."""
    text = os.environ.get(BUDGET_VARIABLE, "").strip()
    if not text:
        return DEFAULT_BUDGET
    try:
        budget = float(text)
    except ValueError:
        raise SystemExit(f"{BUDGET_VARIABLE}={text!r}: expected seconds, like 75") from None
    if not budget > 0:
        raise SystemExit(f"{BUDGET_VARIABLE}={text!r}: expected a positive number of seconds")
    return budget


def ideal_run_seconds(label: str) -> float:
    """A run's time with zero overhead: its K+1 model answers, K POSTs and the approval delay."""
    task = json.dumps({"bench": label}, sort_keys=True)
    model = sum(
        TIMING.seconds({"messages": [{"role": "user", "content": task}] + [{"role": "tool"}] * done})
        for done in range(STEPS + 1)
    )
    return model + STEPS * EFFECT_SECONDS + APPROVAL_DELAY


@dataclass
class LevelFigures:
    """One batch: `runs` started at once, `run_seconds` of those that finished within its budget."""

    runs: int
    steps: int  # of the finished runs
    seconds: float
    run_seconds: list[float]
    cpu: dict[str, float | None]
    transactions: int | None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds

    @property
    def unfinished(self) -> int:
        return self.runs - len(self.run_seconds)

    def run_latency(self, fraction: float) -> float:
        """A percentile over all the batch's runs; infinite when it falls on an unfinished one."""
        return percentile(self.run_seconds + [math.inf] * self.unfinished, fraction)

    @property
    def bound(self) -> float:
        """The latency bound in steps/s: concurrency / the ideal per-step latency of these runs."""
        ideal = statistics.fmean(ideal_run_seconds(f"n{self.runs}-{i}") for i in range(self.runs))
        return self.runs / (ideal / STEPS)

    def cpu_ms_per_step(self, part: str) -> float | None:
        seconds = self.cpu.get(part)
        return None if seconds is None or not self.steps else seconds * 1000 / self.steps

    def transactions_per_step(self) -> float | None:
        return None if self.transactions is None or not self.steps else self.transactions / self.steps


@dataclass
class SideResult:
    side: str
    workload: str
    levels: list[LevelFigures] = field(default_factory=list)
    base_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    temporal_rss_mb: float | None = None
    run_ids: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SideResult:
        levels = [LevelFigures(**level) for level in data.pop("levels")]
        return cls(levels=levels, **data)

    @property
    def cpu_parts(self) -> tuple[str, ...]:
        """LangGraph needs no Temporal server: its reading there is other load, not LangGraph's."""
        return ("process", "temporal", "postgres") if self.side == "aios" else ("process", "postgres")
