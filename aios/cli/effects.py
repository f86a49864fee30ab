"""`aios webhook`: deliver a webhook event by hand (tests, scripts), or serve the HTTP endpoint.

Both paths go through `aios.webhooks.WebhookIngestor.ingest`: the event is kept once per
event id, then signalled to the effect's reconciler if one is running.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
from typing import Any

import typer

from aios.cli.common import fail, run, say, settings
from aios.webhooks import WebhookIngestor, WebhookInvalid, WebhookServer, parse_event

webhook_app = typer.Typer(
    help="Webhook events that settle effects whose outcome is unknown.", no_args_is_help=True
)

DEFAULT_PORT = 8787


@webhook_app.command("send")
def send(
    source: str = typer.Option(..., "--source", help="who sends it, e.g. stripe"),
    event_id: str = typer.Option(..., "--event-id", help="the sender's event id (de-duplication key)"),
    effect: str = typer.Option(..., "--effect", help="the effect's key (its idempotency key)"),
    outcome: str = typer.Option(..., "--outcome", help="succeeded or failed"),
    response: str | None = typer.Option(
        None, "--response", help='the effect\'s result as a JSON object, e.g. \'{"id": "fx_1"}\''
    ),
    error: str = typer.Option("", "--error", help="why the effect failed"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Deliver one webhook event, exactly as `POST /webhooks/<source>` would."""
    body: dict[str, Any] = {"id": event_id, "effect_key": effect, "outcome": outcome, "error": error}
    if response is not None:
        try:
            body["response"] = json.loads(response)
        except json.JSONDecodeError as exc:
            fail(f"--response is not valid JSON: {exc}")
    try:
        event = parse_event(source, body)
    except WebhookInvalid as exc:
        fail(str(exc), code=2)
    config = settings()

    async def go() -> None:
        async with WebhookIngestor(config) as ingestor:
            result = await ingestor.ingest(event)
        if as_json:
            say(json.dumps(result.as_json()))
        elif result.duplicate:
            say(f"event {event.event_id}: duplicate, {result.note}")
        else:
            say(f"event {event.event_id} for {event.effect_key}: {result.note}")

    run(go())


@webhook_app.command("serve")
def serve(
    port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help="0 picks a free port"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind; loopback by default"),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="bind a non-loopback address (no signatures are checked!)"
    ),
) -> None:
    """Serve `POST /webhooks/<source>` until SIGINT/SIGTERM.

    The body: {"id": "evt_1", "effect_key": "<key>", "outcome": "succeeded"|"failed",
    "response": {...}, "error": "..."}. Answers 200 (kept, or a duplicate), 400 (malformed,
    with the reason), 503 (not kept: deliver again).
    """
    if not _is_loopback(host) and not allow_remote:
        fail(
            f"{host} is not a loopback address, and this endpoint checks no signatures: anyone who "
            "reaches it can settle effects. Put it behind a proxy that verifies the sender, then "
            "pass --allow-remote.",
            code=2,
        )
    config = settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(bound_host: str, bound_port: int) -> None:
            say(f"listening on http://{bound_host}:{bound_port}/webhooks/<source> (Ctrl-C stops)")

        async with WebhookIngestor(config) as ingestor:
            try:
                await WebhookServer(ingestor).serve(host=host, port=port, stop=stop, on_ready=ready)
            except OSError as exc:
                fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")

    run(go())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
