"""`aios approvers` (who may decide, and where to reach them) and `aios approvals` (what
waits; `aios approvals serve`, the page behind the decision links)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import typer
from psycopg_pool import AsyncConnectionPool
from typer._click import Context  # typer's own click, the one TyperGroup subclasses
from typer.core import TyperGroup

from aios.approvals.approvers import ApproverBook
from aios.approvals.server import ApprovalServer
from aios.cli.common import fail, run, say, settings, table
from aios.cli.effects import is_loopback
from aios.cli.runs import list_approvals
from aios.client import AiosClient
from aios.settings import Settings

approvers_app = typer.Typer(help="Approvers: who may decide, where to reach them, their signing secret.")


class _ListByDefault(TyperGroup):
    """`aios approvals` lists what waits, as before it had commands; `aios approvals serve` serves."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


approvals_app = typer.Typer(
    cls=_ListByDefault, help="Runs waiting for a decision; `serve`: the page behind decision links."
)


@asynccontextmanager
async def _db(config: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(config.resolved_database_url, autocommit=True) as conn:
        yield conn


@approvers_app.command("add")
def add(
    name: str = typer.Argument(..., help="the name the manifest's policy.approvers uses"),
    email: str | None = typer.Option(None, "--email", help="where notifications and links are mailed"),
    webhook: str | None = typer.Option(None, "--webhook", help="a URL that gets a signed JSON POST"),
    quiet_hours: str | None = typer.Option(
        None, "--quiet-hours", help="22:00-07:00 (UTC): held until then, except critical notices"
    ),
) -> None:
    """Add an approver (with a fresh signing secret), or change where to reach one."""
    config = settings()

    async def go() -> None:
        async with _db(config) as conn:
            added = await ApproverBook.for_settings(config).add(
                conn, name, email=email, webhook=webhook, quiet_hours=quiet_hours
            )
        say(f"approver {name} {'added, with a new signing secret' if added else 'updated (same secret)'}")

    run(go())


@approvers_app.command("list")
def list_approvers() -> None:
    """Every approver and where they are reached (secrets are never shown here)."""
    config = settings()

    async def go() -> None:
        async with _db(config) as conn:
            found = await ApproverBook.for_settings(config).all(conn)
        rows = [(a.name, a.email or "", a.webhook or "", a.quiet_hours or "") for a in found]
        table("approvers", ("name", "email", "webhook", "quiet hours (UTC)"), rows)

    run(go())


@approvers_app.command("remove")
def remove(name: str = typer.Argument(...)) -> None:
    """Remove an approver: their links stop working at once (nothing can verify them)."""
    config = settings()

    async def go() -> None:
        async with _db(config) as conn:
            await ApproverBook.for_settings(config).remove(conn, name)
        say(f"approver {name} removed; links sent to them no longer verify")

    run(go())


@approvers_app.command("secret")
def secret(name: str = typer.Argument(...)) -> None:
    """Print the approver's webhook signing secret (hex), for the receiving side's check."""
    config = settings()

    async def go() -> None:
        async with _db(config) as conn:
            approver = await ApproverBook.for_settings(config).get(conn, name)
        if approver is None:
            fail(f"no approver named {name!r}; see `aios approvers list`", code=3)
        print(approver.secret.hex())

    run(go())


@approvals_app.command("list")
def list_waiting() -> None:
    """Every run waiting for a decision."""
    list_approvals()


@approvals_app.command("serve")
def serve(
    port: int | None = typer.Option(None, "--port", min=0, max=65535, help="default AIOS_APPROVALS_PORT"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind; loopback by default"),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="bind a non-loopback address"),
) -> None:
    """Serve the decision links' confirmation page until SIGINT/SIGTERM.

    Loopback by default: expose it through a reverse proxy that terminates TLS, and set
    AIOS_APPROVALS_URL to its public address so notifications carry that address.
    """
    if not is_loopback(host) and not allow_remote:
        fail(
            f"{host} is not a loopback address: put a TLS reverse proxy in front, then pass --allow-remote", 2
        )
    config = settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bind_port = config.approvals_port if port is None else port

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(bound_host: str, bound_port: int) -> None:
            say(
                f"listening on http://{bound_host}:{bound_port}/a/<token>; "
                f"links point at {config.resolved_approvals_url}"
            )

        client = await AiosClient.connect(config)
        async with AsyncConnectionPool(
            config.resolved_database_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
        ) as pool:
            server = ApprovalServer(client, pool, ApproverBook.for_settings(config))
            try:
                await server.serve(host=host, port=bind_port, stop=stop, on_ready=ready)
            except OSError as exc:
                fail(f"cannot listen on {host}:{bind_port}: {exc.strerror or exc}")

    run(go())
