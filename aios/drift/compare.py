"""Comparing two sets of runs metric by metric (pure: runs in, a `Comparison` out).

The windows: the last `window` before the check's instant, against the `baseline` period just
before it, per manifest version (a new version has no baseline yet: "too few runs"). A live
canary's version is compared with the live version's runs of the same window instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from aios.drift.facts import NO_ACTION, RunFacts
from aios.drift.stats import Judgement, judge_mean, judge_mix, judge_rate
from aios.models.drift import Comparison, DriftWindows, MetricRow

METRICS = (
    "action_mix",
    "approval_rate",
    "rejection_rate",
    "compensation_rate",
    "mean_confidence",
    "tokens_per_run",
    "cost_per_run",
)


def action_counts(runs: Sequence[RunFacts]) -> Counter[str]:
    """How often each action was taken, a run without any counting once as NO_ACTION."""
    counts: Counter[str] = Counter()
    for run in runs:
        counts.update(run.actions or (NO_ACTION,))
    return counts


def judgements(baseline: Sequence[RunFacts], window: Sequence[RunFacts]) -> dict[str, Judgement]:
    """Every metric of the two sides (the statistics are explained in aios/drift/stats.py)."""
    return {
        "action_mix": judge_mix(action_counts(baseline), action_counts(window)),
        "approval_rate": judge_rate(
            sum(run.gated for run in baseline),
            sum(len(run.actions) for run in baseline),
            sum(run.gated for run in window),
            sum(len(run.actions) for run in window),
        ),
        "rejection_rate": judge_rate(
            sum(run.rejected for run in baseline),
            sum(run.gated for run in baseline),
            sum(run.rejected for run in window),
            sum(run.gated for run in window),
        ),
        "compensation_rate": judge_rate(
            sum(run.compensated for run in baseline),
            len(baseline),
            sum(run.compensated for run in window),
            len(window),
        ),
        "mean_confidence": judge_mean(
            [value for run in baseline for value in run.confidences],
            [value for run in window for value in run.confidences],
        ),
        "tokens_per_run": judge_mean([run.tokens for run in baseline], [run.tokens for run in window]),
        "cost_per_run": judge_mean([run.cost for run in baseline], [run.cost for run in window]),
    }


def compare(
    *,
    agent: str,
    version: str,
    against: str,
    baseline: Sequence[RunFacts],
    window: Sequence[RunFacts],
    span: tuple[datetime, datetime],
    min_runs: int,
) -> Comparison:
    """One comparison; with fewer than `min_runs` runs on a side, the values without a verdict."""
    enough = len(baseline) >= min_runs and len(window) >= min_runs
    rows = [
        MetricRow(
            metric=name,
            baseline=judged.baseline,
            window=judged.window,
            statistic=judged.statistic if enough else "too few runs",
            moved=judged.moved and enough,
        )
        for name, judged in judgements(baseline, window).items()
    ]
    return Comparison(
        agent=agent,
        version=version,
        against=against,
        window_from=span[0],
        window_to=span[1],
        baseline_runs=len(baseline),
        window_runs=len(window),
        enough=enough,
        metrics=rows,
    )


def spans(
    as_of: datetime, windows: DriftWindows
) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """(baseline, window) periods ending at `as_of`, each [start, end)."""
    window_start = as_of - windows.window
    return (window_start - windows.baseline, window_start), (window_start, as_of)


def agent_comparisons(
    agent: str,
    runs: Sequence[RunFacts],
    *,
    as_of: datetime,
    windows: DriftWindows,
    canary: str | None = None,
) -> list[Comparison]:
    """Each version run in the window against its own baseline; a live canary's version also
    against the live version (the one with the most runs in the window besides it)."""
    (b_start, b_end), (w_start, w_end) = spans(as_of, windows)
    in_window = [run for run in runs if w_start <= run.started_at < w_end]
    in_baseline = [run for run in runs if b_start <= run.started_at < b_end]
    versions = Counter(run.version for run in in_window)
    found = [
        compare(
            agent=agent,
            version=version,
            against="baseline",
            baseline=[run for run in in_baseline if run.version == version],
            window=[run for run in in_window if run.version == version],
            span=(w_start, w_end),
            min_runs=windows.min_runs,
        )
        for version, _ in versions.most_common()
    ]
    live = next((version for version, _ in versions.most_common() if version != canary), None)
    if canary is not None and canary in versions and live is not None:
        found.append(
            compare(
                agent=agent,
                version=canary,
                against=f"live {live}",
                baseline=[run for run in in_window if run.version == live],
                window=[run for run in in_window if run.version == canary],
                span=(w_start, w_end),
                min_runs=windows.min_runs,
            )
        )
    return found
