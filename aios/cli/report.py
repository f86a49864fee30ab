"""`aios report`: what automation is worth, per agent, since a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from aios.cli.common import fail, run, say, settings, table
from aios.client import AiosClient
from aios.errors import ReportWindowInvalid
from aios.models.report import AgentValue, ValueReport
from aios.report.window import parse_since

app = typer.Typer()

COLUMNS = (
    "agent",
    "runs",
    "completed",
    "compensated",
    "other",
    "touches",
    "touches/run",
    "saved (min)",
    "net (min)",
    "tokens",
    "cost (USD)",
    "cache saved (tokens)",
    "cache saved (USD)",
)


@app.command("report")
def report(
    since: str = typer.Option(
        "7d", "--since", help="a span back from now (30m, 12h, 7d, 2w) or a date (2026-12-01)"
    ),
    agent: str | None = typer.Option(None, "--agent", help="only this agent"),
    minutes_per_touch: float | None = typer.Option(
        None,
        "--minutes-per-touch",
        min=0,
        help="what one touch costs a person (default: AIOS_MINUTES_PER_TOUCH)",
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON object, for scripts"),
) -> None:
    """Per agent: live runs, completed/compensated, a person's touches per run, the minutes saved
    net of those touches (manifest `value:`), tokens and cost, and what the model-response cache
    saved. The figure to steer by."""
    try:
        start = parse_since(since, now=datetime.now(UTC))
    except ReportWindowInvalid as exc:
        fail(str(exc), code=exc.exit_code)
    config = settings()

    async def go() -> ValueReport:
        client = await AiosClient.connect(config)
        return await client.report(since=start, agent=agent, minutes_per_touch=minutes_per_touch)

    show(run(go()), as_json=as_json)


def show(found: ValueReport, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(found.model_dump(mode="json"), indent=2), flush=True)
        return
    since = found.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not found.agents:
        say(f"no live runs started since {since}")
        return
    table(
        f"what automation is worth: live runs started since {since}",
        COLUMNS,
        map(_cells, [*found.agents, found.total]),
    )
    say(
        "saved: completed runs x value.minutes_saved_per_run (+ value.minutes_saved_per_action per executed "
        f"step); touches (approvals, resumes, effects resolved) x {found.minutes_per_touch:g} min each"
    )
    unpriced = [row.agent for row in found.agents if not row.value_declared]
    if unpriced:
        say(f"no `value:` in the manifest, so 0 minutes saved: {', '.join(unpriced)}")


def _cells(row: AgentValue) -> tuple[object, ...]:
    return (
        row.agent,
        row.runs,
        row.completed,
        row.compensated,
        row.other,
        row.touches,
        f"{row.touches_per_run:.2f}",
        f"{row.minutes_saved_gross:g}",
        f"{row.minutes_saved_net:g}",
        row.tokens,
        f"{row.cost:.4f}",
        row.cache_tokens_saved,
        f"{row.cache_cost_saved:.4f}",
    )
