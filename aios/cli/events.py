"""`aios events`: send an event, list and show them, serve the signed HTTP and mail channels."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import typer
from aiosmtpd.smtp import SMTP

from aios.cli.common import fail, json_object, run, say, settings, table
from aios.client import AiosClient, EventSummary
from aios.events.http import EventServer
from aios.events.mail import MailChannel
from aios.models.events import Published

app = typer.Typer(help="Events that start agents: send, list, show; serve the HTTP and mail channels.")
DEFAULT_HTTP_PORT = 8235
DEFAULT_MAIL_PORT = 2525


async def _client() -> AiosClient:
    return await AiosClient.connect(settings())


@app.command()
def send(
    topic: str = typer.Argument(..., help="e.g. refund.requested"),
    event_id: str = typer.Option(None, "--id", help="the de-duplication key; by default a new one"),
    data: str = typer.Option("{}", "--data", help="the event's fields, a JSON object"),
) -> None:
    """Keep an event and start each subscriber's run once (a resend of the same --id starts nothing)."""
    fields = json_object("--data", data, '{"customer": "c-1"}')

    async def go() -> Published:
        return await (await _client()).send_event(topic, fields, event_id=event_id, source="cli")

    published = run(go())
    kept = "kept" if published.new else "already kept (a redelivery: nothing new starts)"
    say(f"event {published.event.event_id} ({published.event.topic}): {kept}")
    for delivery in published.deliveries:
        say(f"  {delivery.agent}: {delivery.outcome} {delivery.run_id} {delivery.detail}".rstrip())
    if not published.deliveries:
        say("  no agent subscribes to this topic (`aios agents apply` sets subscriptions)")


@app.command("list")
def list_events(
    topic: str = typer.Option(None, "--topic", help="only this topic"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
) -> None:
    """Recent events, newest first."""

    async def go() -> list[EventSummary]:
        return await (await _client()).events(topic=topic, limit=limit)

    rows = [
        (
            row.event_id,
            row.topic,
            row.source,
            f"{row.received_at:%Y-%m-%d %H:%M:%S}",
            row.subscribers,
            row.outcomes,
        )
        for row in run(go())
    ]
    table("events", ("event", "topic", "source", "received", "subscribers", "outcomes"), rows)


@app.command()
def show(event_id: str = typer.Argument(...)) -> None:
    """An event and the runs it caused, with their state."""

    async def go() -> Published:
        return await (await _client()).event(event_id)

    published = run(go())
    event = published.event
    say(f"event {event.event_id}  topic {event.topic}  from {event.source}  at {published.received_at}")
    say(json.dumps(event.data, indent=2, sort_keys=True))
    rows = [
        (
            delivery.agent,
            delivery.outcome,
            delivery.run_id,
            delivery.run_status or "-",
            delivery.detail,
        )
        for delivery in published.deliveries
    ]
    table("runs it caused", ("agent", "delivery", "run", "run state", "detail"), rows)


@app.command()
def serve(
    port: int = typer.Option(DEFAULT_HTTP_PORT, "--port", min=0, max=65535, help="HTTP; 0 picks a free port"),
    mail_port: int = typer.Option(
        DEFAULT_MAIL_PORT, "--mail-port", min=-1, max=65535, help="SMTP; -1: no mail"
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind; loopback by default"),
) -> None:
    """Serve `POST /events` (signed, AIOS_EVENTS_SECRET) and mail to <agent>@AIOS_MAIL_DOMAIN."""
    config = settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def go() -> None:
        client = await _client()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = EventServer(client.events_bus, config, client.connection)
        mail = None
        if mail_port >= 0:
            channel = MailChannel(client.events_bus, config.mail_domain)
            limit = config.mail_max_bytes
            mail = await loop.create_server(lambda: SMTP(channel, data_size_limit=limit), host, mail_port)
            bound = mail.sockets[0].getsockname()
            say(f"mail to <agent>@{config.mail_domain} on smtp://{bound[0]}:{bound[1]}")

        def ready(bound_host: str, bound_port: int) -> None:
            say(f"listening on http://{bound_host}:{bound_port}/events (Ctrl-C stops)")

        try:
            await server.serve(host=host, port=port, stop=stop, on_ready=ready)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        finally:
            if mail is not None:
                mail.close()

    run(go())
