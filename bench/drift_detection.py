"""Drift detection: how many runs it takes to flag a 20-point shift in the action mix, and how
often an unchanged agent is flagged anyway.

Pure computation on the statistics the daily check uses (aios/drift/compare.py, stats.py),
with simulated runs: an agent whose runs take refund 50%, reply 30%, escalate 20% (one action
each), with a tenth of its steps sent for approval (a fifth of those rejected), 2% of runs
compensated, a confidence around 0.8 and about 1,200 tokens a run.

- false alarms: AGENTS unchanged agents over 30 simulated days of RUNS_PER_DAY runs, each day
  compared with the seven before (as the daily check does); a day counts once however many
  metrics moved;
- detection: for each window size (runs in the last day, the baseline holding seven days of
  the same rate), TRIALS simulated days where the mix moved 20 points (refund 30%, reply
  50%); the smallest window flagged in at least 90% of them.

No stack needed: `python -m bench drift_detection`.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

from aios.drift.compare import compare
from aios.drift.facts import RunFacts
from aios.drift.stats import MIN_RUNS
from bench.report import Section

DAYS = 30
BASELINE_DAYS = 7
RUNS_PER_DAY = int(os.environ.get("AIOS_BENCH_DRIFT_RUNS_PER_DAY", "100"))
AGENTS = int(os.environ.get("AIOS_BENCH_DRIFT_AGENTS", "50"))
TRIALS = int(os.environ.get("AIOS_BENCH_DRIFT_TRIALS", "200"))
WINDOWS = (20, 30, 50, 75, 100, 150, 200, 300)
STEADY = {"refund": 0.5, "reply": 0.3, "escalate": 0.2}
SHIFTED = {"refund": 0.3, "reply": 0.5, "escalate": 0.2}  # 20 points from refund to reply
DETECTED = 0.9
START = datetime(2026, 1, 1, tzinfo=UTC)


def simulated_run(rng: random.Random, mix: dict[str, float], day: int) -> RunFacts:
    action = rng.choices(list(mix), weights=list(mix.values()))[0]
    gated = int(rng.random() < 0.1)
    tokens = max(100, round(rng.gauss(1200, 300)))
    return RunFacts(
        version="v1",
        started_at=START + timedelta(days=day, seconds=rng.uniform(0, 86_399)),
        actions=(action,),
        gated=gated,
        rejected=int(gated and rng.random() < 0.2),
        confidences=(min(1.0, max(0.0, rng.gauss(0.8, 0.08))),),
        tokens=tokens,
        cost=tokens * 2e-6,
        compensated=rng.random() < 0.02,
    )


def moved_metrics(baseline: list[RunFacts], window: list[RunFacts]) -> list[str]:
    compared = compare(
        agent="sim",
        version="v1",
        against="baseline",
        baseline=baseline,
        window=window,
        span=(START, START),
        min_runs=MIN_RUNS,
    )
    return [row.metric for row in compared.moved]


def false_alarms(seed: int) -> tuple[int, int, dict[str, int]]:
    """(days flagged, days checked, flags per metric) over AGENTS unchanged agents' 30 days."""
    rng = random.Random(seed)
    flagged, checked, by_metric = 0, 0, dict[str, int]()
    for _ in range(AGENTS):
        days = [
            [simulated_run(rng, STEADY, day) for _ in range(RUNS_PER_DAY)]
            for day in range(DAYS + BASELINE_DAYS)
        ]
        for day in range(BASELINE_DAYS, DAYS + BASELINE_DAYS):
            baseline = [run for past in days[day - BASELINE_DAYS : day] for run in past]
            moved = moved_metrics(baseline, days[day])
            checked += 1
            flagged += bool(moved)
            for metric in moved:
                by_metric[metric] = by_metric.get(metric, 0) + 1
    return flagged, checked, by_metric


def detection_rate(seed: int, window_runs: int) -> float:
    """The share of TRIALS simulated days with a 20-point shift that flag the action mix."""
    rng = random.Random(seed)
    hits = 0
    for _ in range(TRIALS):
        baseline = [simulated_run(rng, STEADY, 0) for _ in range(window_runs * BASELINE_DAYS)]
        window = [simulated_run(rng, SHIFTED, 1) for _ in range(window_runs)]
        hits += "action_mix" in moved_metrics(baseline, window)
    return hits / TRIALS


async def measure() -> Section:
    section = Section(
        "Drift detection: a 20-point shift in the action mix, and false alarms",
        "python -m bench drift_detection",
        notes=f"Simulated runs (bench/drift_detection.py): mix {STEADY} shifted to {SHIFTED}; the "
        "action mix moves when PSI >= 0.1 and a chi-square test gives p < 0.001, rates and means "
        f"when |z| >= 3.29 and the move is large enough; at least {MIN_RUNS} runs per side "
        "(aios/drift/stats.py). The baseline holds seven days at the window's rate.",
    )
    rates = {size: detection_rate(1000 + size, size) for size in WINDOWS}
    for size, rate in rates.items():
        section.add(f"20-point shift flagged, window of {size} runs", f"{rate:.0%} of {TRIALS} days")
    smallest = next((size for size, rate in rates.items() if rate >= DETECTED), None)
    section.add(
        f"smallest window flagging the shift in >= {DETECTED:.0%} of days",
        f"{smallest} runs" if smallest else f"none up to {WINDOWS[-1]} runs",
    )
    flagged, checked, by_metric = false_alarms(7)
    section.add(
        f"false alarms, unchanged agent ({RUNS_PER_DAY} runs/day, {DAYS} days x {AGENTS} agents)",
        f"{flagged} of {checked} agent-days ({flagged / checked:.2%})"
        + (f"; by metric: {by_metric}" if by_metric else ""),
    )
    return section


if __name__ == "__main__":
    import asyncio

    asyncio.run(measure())
