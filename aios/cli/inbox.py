"""`aios inbox`: every item that needs a person, oldest first, with the command that settles it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import typer
from rich.text import Text

from aios.cli.common import console, run, settings
from aios.client import AiosClient
from aios.models.inbox import InboxItem

app = typer.Typer()


@app.command("inbox")
def inbox(
    as_json: bool = typer.Option(False, "--json", help="one JSON array, for scripts"),
    watch: bool = typer.Option(False, "--watch", help="show it again every few seconds (Ctrl-C stops)"),
    every: float = typer.Option(3.0, "--every", min=0.5, help="seconds between two reads with --watch"),
) -> None:
    """Approvals, budget pauses, effects in doubt, open breakers, stuck runs: what needs you."""
    config = settings()

    async def go() -> None:
        client = await AiosClient.connect(config)
        while True:
            items = await client.inbox()
            if watch and not as_json:
                console.clear()
            show(items, as_json=as_json)
            if not watch:
                return
            await asyncio.sleep(every)

    try:
        run(go())
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def show(items: list[InboxItem], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([item.model_dump(mode="json") for item in items], indent=2), flush=True)
        return
    now = datetime.now(UTC)
    if not items:
        console.print("inbox empty: nothing waits for a person", highlight=False)
        return
    console.print(Text(f"{len(items)} item(s) need a person, oldest first", style="bold"), highlight=False)
    for number, item in enumerate(items, start=1):
        _show_item(number, item, now)


def _show_item(number: int, item: InboxItem, now: datetime) -> None:
    waited = _age(now - item.since.astimezone(UTC))
    console.print(
        Text(f"\n{number}. [{item.kind.value}] ", style="bold")
        + Text(item.title)
        + Text(f"  ({waited} ago)"),
        highlight=False,
    )
    if item.run_id:
        console.print(Text(f"   run: {item.run_id}"), highlight=False)
    for name, value in item.context.items():
        if value in (None, "", [], {}):
            continue
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        console.print(Text(f"   {name}: {shown}"), highlight=False)
    console.print(Text("   suggested: ", style="bold") + Text(item.suggested), highlight=False)
    console.print(Text("   settle: ", style="bold green") + Text(item.command), highlight=False)
    for other in item.alternatives:
        console.print(Text("       or: ") + Text(other), highlight=False)
    if item.web_ui is not None:
        console.print(
            Text(f"   web UI: {item.web_ui.kind} {item.web_ui.name!r} with ")
            + Text(json.dumps(item.web_ui.json_input)),
            highlight=False,
        )


def _age(elapsed: timedelta) -> str:
    seconds = int(elapsed.total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
