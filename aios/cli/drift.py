"""`aios agents drift ...`: how agent versions moved from their baseline, and the daily check."""

from __future__ import annotations

import json
from datetime import timedelta

import typer

from aios.cli.common import run, say, settings, table
from aios.cli.digest import time_of_day, time_zone
from aios.client import AiosClient
from aios.drift.check import value_text
from aios.models.drift import Comparison, DriftReport, DriftWindows

app = typer.Typer()
WINDOW_HOURS = typer.Option(24.0, "--window-hours", min=0.1, help="the window: the last this many hours")
BASELINE_DAYS = typer.Option(7.0, "--baseline-days", min=0.1, help="the baseline: this many days before it")
MIN_RUNS = typer.Option(20, "--min-runs", min=2, help="runs per side below which nothing is judged")


async def _client() -> AiosClient:
    return await AiosClient.connect(settings())


def _windows(window_hours: float, baseline_days: float, min_runs: int) -> DriftWindows:
    return DriftWindows(
        window=timedelta(hours=window_hours), baseline=timedelta(days=baseline_days), min_runs=min_runs
    )


@app.command("drift")
def drift(
    name: str = typer.Argument(..., help="the agent's name, e.g. refund-desk"),
    as_json: bool = typer.Option(False, "--json", help="the comparisons as JSON, for scripts"),
    window_hours: float = WINDOW_HOURS,
    baseline_days: float = BASELINE_DAYS,
    min_runs: int = MIN_RUNS,
) -> None:
    """Compare each version's last day with its baseline (and a live canary with live); records nothing."""
    windows = _windows(window_hours, baseline_days, min_runs)

    async def go() -> list[Comparison]:
        return await (await _client()).drift(name, windows=windows)

    comparisons = run(go())
    if as_json:
        typer.echo(json.dumps([comparison.model_dump(mode="json") for comparison in comparisons], indent=2))
        return
    if not comparisons:
        say(f"{name}: no ended live runs in the last {window_hours:g}h; nothing to compare (no alarm)")
    for comparison in comparisons:
        _show(comparison, min_runs)


def _show(comparison: Comparison, min_runs: int) -> None:
    title = (
        f"{comparison.agent} {comparison.version} vs {comparison.against}: "
        f"{comparison.window_runs} runs in the window, {comparison.baseline_runs} in the {comparison.against}"
    )
    rows = [
        (
            row.metric,
            value_text(row.baseline),
            value_text(row.window),
            row.statistic,
            "MOVED" if row.moved else "",
        )
        for row in comparison.metrics
    ]
    table(title, ("metric", comparison.against, "window", "statistic", "moved?"), rows)
    if not comparison.enough:
        say(f"too few runs to judge (at least {min_runs} on each side): no alarm", "yellow")
    elif comparison.moved:
        say(f"drift: {', '.join(row.metric for row in comparison.moved)}", "bold red")
    else:
        say("nothing moved")


@app.command("drift-check")
def drift_check(
    window_hours: float = WINDOW_HOURS, baseline_days: float = BASELINE_DAYS, min_runs: int = MIN_RUNS
) -> None:
    """Run the daily drift check now (through a worker): alarms go to the audit trail and the inbox."""
    windows = _windows(window_hours, baseline_days, min_runs)

    async def go() -> DriftReport:
        return await (await _client()).check_drift(windows)

    report = run(go())
    judged = sum(1 for comparison in report.comparisons if comparison.enough)
    say(f"drift check: {len(report.comparisons)} comparison(s), {judged} with enough runs")
    for key in report.alarms:
        say(f"alarm {key}", "bold red")
    say(f"{report.new_alarms} new alarm(s) recorded (an alarm is recorded once a day)")


@app.command("drift-schedule")
def drift_schedule(
    at: str = typer.Option("06:00", "--at", help="the time of day, HH:MM"),
    timezone: str = typer.Option("UTC", "--timezone", help="an IANA time zone, e.g. Europe/Paris"),
    window_hours: float = WINDOW_HOURS,
    baseline_days: float = BASELINE_DAYS,
    min_runs: int = MIN_RUNS,
) -> None:
    """Check every agent for drift every day at a time (a Temporal Schedule, `aios-drift`)."""
    moment, zone = time_of_day(at), time_zone(timezone)
    windows = _windows(window_hours, baseline_days, min_runs)

    async def go() -> bool:
        return await (await _client()).schedule_drift(at=moment, timezone=zone, windows=windows)

    verb = "scheduled" if run(go()) else "rescheduled"
    say(f"drift check {verb}: every day at {moment:%H:%M} {zone}")


@app.command("drift-unschedule")
def drift_unschedule() -> None:
    """Stop the daily drift check."""

    async def go() -> bool:
        return await (await _client()).unschedule_drift()

    say("drift check unscheduled" if run(go()) else "no drift check was scheduled")
