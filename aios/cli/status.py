"""`aios status`, `aios prune-effects`, `aios trace`: what the system is doing and did."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import typer

from aios import stack
from aios.cli.common import fail, report_problems, run, say, settings, table
from aios.ledger import effects, health
from aios.observability.tracefile import read_spans, render, trace_of_run

app = typer.Typer()


async def _query(call: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(
        settings().resolved_database_url, autocommit=True
    ) as conn:
        return await call(conn)


@app.command("status")
def status() -> None:
    """The local stack's health and every connector's circuit breaker, as workers report it."""
    config = settings()
    states = stack.status(config)
    table("services", ("service", "where", "state"), [(s.name, s.location, s.state) for s in states])
    report_problems(states)
    if any(s.name == "postgres" and s.state.startswith(("down", "foreign")) for s in states):
        raise typer.Exit(1)
    rows = run(_query(health.recent))
    if not rows:
        say("no worker has reported connector health in the last 2 minutes (is `aios worker` running?)")
        return
    table(
        "connector breakers",
        ("connector", "worker", "state", "consecutive failures", "window failures/calls", "times opened"),
        [
            (
                r["connector"],
                r["worker_id"],
                r["state"],
                r["consecutive_failures"],
                f"{r['window_failures']}/{r['window_calls']}",
                r["times_opened"],
            )
            for r in rows
        ],
    )


@app.command("prune-effects")
def prune_effects(
    days: int | None = typer.Option(None, "--days", min=1, help="default: AIOS_EFFECT_RETENTION_DAYS"),
) -> None:
    """Forget finished effects older than the retention period (pending/unknown ones stay)."""
    keep = days or settings().effect_retention_days

    async def prune(conn: psycopg.AsyncConnection[Any]) -> int:
        return await effects.prune(conn, older_than_days=keep)

    say(f"forgot {run(_query(prune))} finished effect(s) older than {keep} days")


# The standard samplers that drop runs; an unknown name makes the SDK trace every run.
DROPPING_SAMPLERS = ("always_off", "traceidratio", "parentbased_always_off", "parentbased_traceidratio")


def _sampling_note() -> str:
    """Why a run may have no trace at all: a sampler that keeps only some runs (README)."""
    sampler = os.environ.get("OTEL_TRACES_SAMPLER", "")
    if sampler not in DROPPING_SAMPLERS:
        return ""
    return f" OTEL_TRACES_SAMPLER={sampler} keeps only some runs' traces: this one may not have been kept."


@app.command("trace")
def show_trace(run_id: str = typer.Argument(..., help="the run whose trace to print")) -> None:
    """Print a run's trace as a tree, from the local span file (when no OTLP endpoint is set)."""
    path = settings().resolved_trace_file
    roots = trace_of_run(read_spans([path.with_suffix(".old.jsonl"), path]), run_id)
    if not roots:
        fail(
            f"no spans of {run_id} in {path}. Spans are written there when OTEL_EXPORTER_OTLP_ENDPOINT "
            f"is unset; with it set, look the run up in your trace backend instead.{_sampling_note()}"
        )
    for line in render(roots):
        say(line)
