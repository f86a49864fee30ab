"""`aios effects` (the ledger, and settling an effect in doubt by hand) and `aios webhook`.

`aios effects resolve KEY --applied | --not-applied` is the operator's answer for an effect
whose outcome reconciliation could not learn: the ledger and an audit row, then the waiting
run is told (`AiosClient.resolve_effect`).

`aios webhook` delivers a webhook event by hand (tests, scripts), or serves the HTTP endpoint.
Both paths go through `aios.ledger.webhooks.WebhookIngestor.ingest`: the event is kept once per
event id, then signalled to the effect's reconciler if one is running.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
from typing import Any

import psycopg
import typer
from typer._click import Context  # typer's own click, the one TyperGroup subclasses
from typer.core import TyperGroup

from aios.cli.common import fail, json_object, run, say, settings, table
from aios.client import AiosClient
from aios.governance.subjects import SubjectVault
from aios.ledger import effects
from aios.ledger.webhooks import WebhookIngestor, WebhookInvalid, WebhookServer, parse_event


class _ListByDefault(TyperGroup):
    """`aios effects [RUN]` lists, as it did before the group had commands; `aios effects
    resolve KEY ...` settles one."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


effects_app = typer.Typer(
    cls=_ListByDefault,
    help="The effect ledger: list effects; resolve one whose outcome is unknown.",
)


@effects_app.command("list")
def list_effects(
    run_id: str | None = typer.Argument(None, help="only this run's effects"),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
) -> None:
    """The effect ledger: every external effect, its key, state and attempts."""

    config = settings()

    async def fetch() -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(
            config.resolved_database_url, autocommit=True
        ) as conn:
            vault = SubjectVault.for_settings(config)
            return await effects.list_effects(conn, run_id=run_id, limit=limit, vault=vault)

    rows = run(fetch())
    table(
        f"effects{' of ' + run_id if run_id else ''}",
        ("key", "action", "connector", "state", "attempts", "updated", "error"),
        [
            (
                r["effect_key"],
                r["action"],
                r["connector"],
                r["state"],
                r["attempts"],
                r["updated_at"].isoformat(timespec="seconds"),
                r["error"][:80],
            )
            for r in rows
        ],
    )


@effects_app.command("resolve")
def resolve(
    effect_key: str = typer.Argument(
        ..., metavar="KEY", help="the effect's key (`aios effects RUN` lists them)"
    ),
    applied: bool | None = typer.Option(
        None,
        "--applied/--not-applied",
        help="what you found at the service: the effect happened, or it did not",
        show_default=False,
    ),
    by: str = typer.Option(..., "--as", help="who resolves it (recorded in the ledger and audit)"),
    note: str = typer.Option(
        ..., "--note", help="how you know (recorded), e.g. 'seen in the Stripe dashboard'"
    ),
    response: str | None = typer.Option(
        None, "--response", help="for --applied: what the service returned, as a JSON object (e.g. its id)"
    ),
) -> None:
    """Settle an effect whose outcome is unknown; its waiting run then continues or compensates."""
    if applied is None:
        fail("say what you found: --applied or --not-applied", code=2)
    if not by.strip():
        fail("--as needs a name", code=2)
    parsed: dict[str, Any] | None = None
    if response is not None:
        if not applied:
            fail("--response goes with --applied (a not-applied effect returned nothing)", code=2)
        parsed = json_object("--response", response, '{"id": "pi_123"}')

    async def go() -> None:
        client = await AiosClient.connect(settings())
        done = await client.resolve_effect(effect_key, applied=applied, by=by, note=note, response=parsed)
        told = "the run was told and reads it from the ledger" if done.run_told else done.run_note
        say(f"{done.effect_key}: {done.state} (resolved by {by}); run {done.run_id}: {told}")

    run(go())


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
    if not is_loopback(host) and not allow_remote:
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
