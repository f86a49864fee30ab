"""`aios digest`: the daily digest of what waits and what the workforce did, sent to approvers."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from aios.cli.common import fail, run, say, settings
from aios.client import AiosClient
from aios.models.notify import NoticeOutcome

app = typer.Typer(help="The daily digest: send it now, or every day at a time.")
TO = typer.Option(..., "--to", help="an approver's name (`aios approvers add`); repeat for more")


async def _client() -> AiosClient:
    return await AiosClient.connect(settings())


@app.command()
def send(to: list[str] = TO) -> None:
    """Send today's digest now (once a day per person: a second send the same day sends nothing)."""

    async def go() -> NoticeOutcome:
        return await (await _client()).send_digest(to)

    outcome = run(go())
    for name in outcome.unreachable:
        say(f"{name}: no such approver (add one with `aios approvers add {name} --email ...`)", "yellow")
    delivered, in_doubt = len(outcome.delivered), len(outcome.in_doubt)
    say(f"digest: {delivered} delivered (today's, now or before), {in_doubt} in doubt")
    if outcome.held_until is not None:
        say(f"the rest goes at {outcome.held_until.isoformat(timespec='minutes')} (quiet hours)")


@app.command()
def schedule(
    to: list[str] = TO,
    at: str = typer.Option("08:00", "--at", help="the time of day, HH:MM"),
    timezone: str = typer.Option("UTC", "--timezone", help="an IANA time zone, e.g. Europe/Paris"),
) -> None:
    """Send the digest every day at a time (a Temporal Schedule, `aios-digest`)."""
    moment, zone = time_of_day(at), time_zone(timezone)

    async def go() -> bool:
        return await (await _client()).schedule_digest(to, at=moment, timezone=zone)

    created = run(go())
    verb = "scheduled" if created else "rescheduled"
    say(f"digest {verb}: every day at {moment:%H:%M} {zone}, to {', '.join(to)}")


@app.command()
def unschedule() -> None:
    """Stop the daily digest."""

    async def go() -> bool:
        return await (await _client()).unschedule_digest()

    say("digest unscheduled" if run(go()) else "no digest was scheduled")


def time_of_day(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r} is not a time of day; give HH:MM, e.g. --at 08:00", code=2)


def time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        fail(
            f"--timezone {name!r} is not a time zone; give an IANA name, e.g. --timezone Europe/Paris", code=2
        )
    return name
