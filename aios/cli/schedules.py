"""`aios schedules`: the Temporal Schedules of the agents' `triggers.schedule`."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime

import typer

from aios.cli.common import run, say, settings, table
from aios.client import AiosClient
from aios.triggers.schedules import ScheduleView

app = typer.Typer(
    help="Schedules that start agents: list, fire now, pause, resume (`aios agents apply` syncs)."
)
NAME = typer.Argument(..., help="AGENT/SCHEDULE, as `aios schedules list` shows it")


async def _client() -> AiosClient:
    return await AiosClient.connect(settings())


@app.command("list")
def list_schedules(as_json: bool = typer.Option(False, "--json", help="one JSON document")) -> None:
    """Every schedule aios owns, with its next and most recent firings."""

    async def go() -> list[ScheduleView]:
        return await (await _client()).schedules()

    views = run(go())
    if as_json:
        say(json.dumps([asdict(view) for view in views], default=str, indent=2))
        return
    if not views:
        say("no schedules: declare `triggers.schedule` in a manifest, then run `aios agents apply`")
        return
    rows = [
        (
            view.name,
            view.spec,
            view.overlap,
            "paused" if view.paused else "active",
            _times(view.next_fires),
            _times(view.recent_fires),
        )
        for view in views
    ]
    table("schedules", ("schedule", "when", "overlap", "state", "next", "recent"), rows)


@app.command()
def trigger(name: str = NAME) -> None:
    """Fire a schedule now; the run goes through admission like every firing."""

    async def go() -> None:
        await (await _client()).trigger_schedule(name)

    run(go())
    say(f"schedule {name}: fired (see `aios runs --agent {name.split('/', maxsplit=1)[0]}`)")


@app.command()
def pause(name: str = NAME, note: str = typer.Option("", "--note", help="why, shown in the Web UI")) -> None:
    """Stop a schedule firing until it is resumed."""

    async def go() -> None:
        await (await _client()).pause_schedule(name, note=note or "paused with aios schedules pause")

    run(go())
    say(f"schedule {name}: paused")


@app.command()
def resume(name: str = NAME) -> None:
    """Let a paused schedule fire again."""

    async def go() -> None:
        await (await _client()).pause_schedule(name, paused=False, note="resumed with aios schedules resume")

    run(go())
    say(f"schedule {name}: active")


def _times(moments: list[datetime]) -> str:
    return ", ".join(moment.strftime("%Y-%m-%d %H:%M:%SZ") for moment in moments) or "-"
