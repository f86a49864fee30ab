"""Entry point of the `aios` command."""

from __future__ import annotations

import asyncio
import logging

import typer

from aios.cli import (
    agents,
    audit,
    deploy,
    dev,
    digest,
    drift,
    events,
    inbox,
    memory,
    report,
    runs,
    schedules,
    status,
)
from aios.cli.approvals import approvals_app, approvers_app
from aios.cli.common import console, fail, run, settings
from aios.cli.effects import effects_app, webhook_app
from aios.client import AiosClient
from aios.store.migrate import migrate as apply_migrations
from aios.store.migrate import redact_url

app = typer.Typer(
    help="aios: an operating system for a digital workforce, conducted by Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev.app, name="dev")
agents.app.registered_commands += drift.app.registered_commands
app.add_typer(agents.app, name="agents")
app.add_typer(audit.app, name="audit")
app.add_typer(memory.app, name="memory")
app.add_typer(schedules.app, name="schedules")
app.add_typer(events.app, name="events")
app.add_typer(effects_app, name="effects")
app.add_typer(webhook_app, name="webhook")
app.add_typer(approvers_app, name="approvers")
app.add_typer(approvals_app, name="approvals")
app.add_typer(digest.app, name="digest")
app.registered_commands += runs.app.registered_commands
app.registered_commands += status.app.registered_commands
app.registered_commands += inbox.app.registered_commands
app.registered_commands += report.app.registered_commands
db_app = typer.Typer(help="The Postgres schema.")
app.add_typer(db_app, name="db")
app.add_typer(deploy.app, name="deploy")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (safe to run twice, or from two processes at once)."""
    config = settings()
    applied = run(apply_migrations(config.resolved_database_url))
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none (schema current)"
    console.print(f"{redact_url(config.resolved_database_url)}: applied {names}", highlight=False)


@app.command()
def worker() -> None:
    """Run a worker for every aios workflow and activity; stops cleanly on SIGTERM/SIGINT."""
    from workers.main import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(run_worker(settings()))


@app.command()
def ping(
    message: str = typer.Argument("hello from aios", help="text recorded in the audit trail"),
    actor: str = typer.Option("operator", "--as", help="who is pinging"),
) -> None:
    """Run the walking-skeleton workflow: client -> Temporal -> worker -> Postgres."""
    config = settings()

    async def go() -> None:
        client = await AiosClient.connect(config)
        handle = await client.start_ping(message, actor=actor)
        console.print(f"started {handle.id}; waiting for a worker…", highlight=False)
        try:
            result = await asyncio.wait_for(handle.result(), timeout=60)
        except TimeoutError:
            fail(
                f"{handle.id} did not finish within 60s. Is a worker running on task queue "
                f"{config.task_queue!r}? Start one with `aios worker`; the run will then finish."
            )
        console.print(f"audit row {result.audit_id} recorded for {result.workflow_id!r}")
        console.print(f"[bold]See the run:[/] {client.run_url(result.workflow_id)}", highlight=False)

    run(go())
