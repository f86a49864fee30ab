"""`aios memory`: inspect, search, write, forget and rebuild long-term memory.

The embedded vector store serves one process at a time. When a worker holds it, these commands
still work, each in the way that stays correct: `search` searches Postgres's copy of the vectors
exhaustively; `remember` and `forget` change Postgres (the source of truth) and leave the vector
writes and deletions to the worker, which applies them within a second; `reindex` refuses, since
rebuilding needs the store to itself. With a Qdrant server (AIOS_QDRANT_URL) all of them go to
the server directly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
import typer
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from aios.cli.common import fail, run, say, settings, table
from aios.memory import documents
from aios.memory.compaction import Compactor, UndoResult
from aios.memory.embedders import EmbedderUnavailable
from aios.memory.factory import build_service, lock_file
from aios.memory.messages import (
    ForgetReport,
    ForgetRequest,
    MemoryFilter,
    MemoryRecallRequest,
    RememberRequest,
)
from aios.memory.retention import Retention, RetentionReport, TemporalRuns, create_retention_schedule
from aios.memory.service import MemoryService
from aios.memory.vectors import StoreBusy, holder
from aios.settings import Settings
from aios.temporal.connection import connect

app = typer.Typer(help="Long-term memory: documents in Postgres, vectors in Qdrant.", no_args_is_help=True)

Access = Literal["owner", "read", "write", "none"]


@asynccontextmanager
async def _memory(
    config: Settings, access: Access, notice: Callable[[str], None]
) -> AsyncIterator[MemoryService]:
    """The service opened for `access`, falling back as the module docstring says when busy."""
    pool = AsyncConnectionPool(
        config.resolved_database_url, min_size=1, max_size=2, open=False, kwargs={"autocommit": True}
    )
    await pool.open(wait=True, timeout=30)
    try:
        service = build_service(config, pool)
        await _open(service, access, notice)
        try:
            yield service
        finally:
            await service.close()
    except EmbedderUnavailable as exc:
        fail(str(exc))
    except psycopg.errors.UndefinedTable:
        fail("the memory tables are missing: run `aios db migrate` (or `aios dev up`)")
    finally:
        await pool.close()


async def _open(service: MemoryService, access: Access, notice: Callable[[str], None]) -> None:
    if access == "none":
        service.open_detached("not opened by this command")
        return
    try:
        # A CLI never builds the HNSW index on open: that is the worker's (or reindex's) job.
        await service.open(optimize=False)
    except StoreBusy as exc:
        if access == "owner":
            fail(f"{exc}. `reindex` rebuilds the store and needs it to itself")
        if access == "read":
            notice(f"{exc}.\nSearching Postgres's copy of the vectors exhaustively instead.")
            await service.open_exhaustive()
        else:
            notice(
                f"{exc}.\nPostgres is changed now; that process applies the vector changes within a second."
            )
            service.open_detached(str(exc))


def _echo(message: str) -> None:
    say(message, style="yellow")


@app.command("info")
def info() -> None:
    """Which embedder and store are in use, and what memory holds."""
    config = settings()

    async def go() -> None:
        async with _memory(config, "none", _echo) as service:
            path = lock_file(config, service.embedder.name)
            busy = holder(path) if path is not None else None
            if busy is None:
                await _open(service, "read", _echo)
            facts = await service.info()
            if busy is not None:
                facts["store"] = f"held by {busy} ({path})"
            table("long-term memory", ["", "value"], facts.items())

    run(go())


@app.command("remember")
def remember(
    text: str = typer.Argument(..., help="what to remember"),
    agent: str = typer.Option(..., "--agent", help="whose memory"),
    subject: str = typer.Option("", "--subject", help="who or what it is about (empty: general)"),
    kind: str = typer.Option("note", "--kind", help="note, fact, outcome, ..."),
    tags: list[str] = typer.Option([], "--tag", help="a tag; repeat for several"),
    importance: float = typer.Option(0.5, "--importance", min=0, max=1),
    key: str | None = typer.Option(None, "--key", help="idempotency key; the same key rewrites"),
) -> None:
    """Write one memory (document, then vector)."""
    config = settings()
    request = RememberRequest(
        key=key or f"cli-{uuid.uuid4()}",
        agent=agent,
        text=text,
        kind=kind,
        subject=subject,
        tags=tags,
        importance=importance,
    )

    async def go() -> None:
        async with _memory(config, "write", _echo) as service:
            result = await service.remember(request)
        state = "indexed" if result.indexed else "pending (the store's owner indexes it)"
        verb = "remembered" if result.created else ("updated" if result.changed else "unchanged")
        say(f"{verb} {result.memory_id} ({result.tokens} tokens, {state})")

    run(go())


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: expected an ISO date or time such as 2026-11-01 or 2026-11-01T09:00+00:00", code=2)


@app.command("search")
def search(
    query: str = typer.Argument(..., help="what to look for, in words"),
    agent: str | None = typer.Option(None, "--agent"),
    subject: str | None = typer.Option(None, "--subject"),
    kinds: list[str] = typer.Option([], "--kind", help="a kind; repeat for several"),
    tags: list[str] = typer.Option([], "--tag", help="a tag; repeat for several"),
    since: str | None = typer.Option(None, "--since", help="ISO date or time"),
    until: str | None = typer.Option(None, "--until", help="ISO date or time"),
    top_k: int = typer.Option(5, "--top-k", min=1, max=100),
    budget: int = typer.Option(1500, "--budget", min=1, help="token budget of the result"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recall as an agent would: filters, then similarity + recency + importance, within a budget."""
    config = settings()
    request = MemoryRecallRequest(
        query=query,
        filter=MemoryFilter(
            agent=agent,
            subject=subject,
            kinds=kinds,
            tags=tags,
            since=_parse_time(since, "--since"),
            until=_parse_time(until, "--until"),
        ),
        top_k=top_k,
        token_budget=budget,
    )

    async def go() -> None:
        async with _memory(config, "read", _echo) as service:
            result = await service.recall(request)
        if as_json:
            say(result.model_dump_json(indent=2))
            return
        rows = [
            (f"{i.score:.3f}", f"{i.similarity:.3f}", i.created_at.date(), i.kind, i.subject, i.text)
            for i in result.items
        ]
        table(
            f"{len(rows)} memories, {result.tokens} tokens",
            ["score", "sim", "date", "kind", "subject", "text"],
            rows,
        )

    run(go())


@app.command("list")
def list_memories(
    agent: str | None = typer.Option(None, "--agent"),
    subject: str | None = typer.Option(None, "--subject"),
    source_run: str | None = typer.Option(None, "--run", help="only what this run remembered"),
    limit: int = typer.Option(50, "--limit", min=1),
) -> None:
    """The newest memories, from Postgres, each with the run it came from."""
    config = settings()

    async def go() -> None:
        async with _memory(config, "none", _echo) as service, service.pool.connection() as conn:
            docs = await documents.listing(
                conn, agent=agent, subject=subject, limit=limit, source_run=source_run
            )
        rows = [
            (
                d.memory_id[:8],
                d.created_at.date(),
                d.agent,
                d.subject,
                d.kind,
                d.importance,
                d.source_run or "-",
                d.text,
            )
            for d in docs
        ]
        columns = ["id", "date", "agent", "subject", "kind", "imp", "run", "text"]
        table(f"{len(rows)} memories", columns, rows)

    run(go())


@app.command("forget")
def forget(
    subject: str = typer.Option(..., "--subject", help="who or what to forget"),
    agent: str | None = typer.Option(None, "--agent", help="only this agent's memories and runs"),
    keep_runs: bool = typer.Option(
        False,
        "--keep-runs",
        help="keep the subject's runs (their mirrors in Postgres and Temporal's history)",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Remove a subject everywhere: memories (Postgres and Qdrant), compaction summaries, finished
    runs (Temporal and their mirrors in Postgres), and the subject's key, without which what its
    runs recorded (audit details, effect responses, webhook events) stays unreadable. Runs still
    going are kept, and the report says how many."""
    config = settings()

    async def go() -> ForgetReport:
        # Temporal first: if it cannot be reached nothing is forgotten, rather than half of it.
        client = None if keep_runs else await _temporal(config, "nothing was forgotten")
        async with _memory(config, "write", _echo) as service:
            runs = None if client is None else TemporalRuns(client, pool=service.pool)
            return await service.forget(
                ForgetRequest(subject=subject, agent=agent), include_runs=not keep_runs, runs=runs
            )

    report = run(go())
    if as_json:
        say(report.model_dump_json(indent=2))
        return
    say(_forget_summary(report))
    if report.note:
        say(report.note)


def _forget_summary(report: ForgetReport) -> str:
    pending = f" ({report.vectors_pending} left to the store's holder)" if report.vectors_pending else ""
    temporal = (
        f"{report.executions} executions deleted from Temporal (finished runs and their child workflows)"
        if report.temporal_checked
        else "Temporal left alone (--keep-runs)"
    )
    shredded = (
        f"; {report.subject_keys} subject key(s) destroyed, so what its runs recorded (audit details, "
        "effect responses, webhook events) reads as [forgotten]"
        if report.temporal_checked
        else ""
    )
    return (
        f"forgot {report.subject!r}: {report.documents} memory documents, {report.run_mirrors} run "
        f"mirrors, {report.compactions} compaction summaries and {report.cached_answers} cached model "
        f"answers deleted from Postgres; {report.vectors} "
        f"vectors deleted from Qdrant{pending}; {temporal}{shredded}"
    )


async def _temporal(config: Settings, consequence: str) -> Client:
    try:
        return await connect(config)
    except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
        fail(
            f"Temporal at {config.temporal_address} did not answer ({exc}); {consequence}. "
            "Start it with `aios dev up`, or point AIOS_TEMPORAL_ADDRESS at it"
        )


@app.command("reindex")
def reindex() -> None:
    """Rebuild Qdrant from Postgres (re-embedding rows of another model), then build the index."""
    config = settings()

    async def go() -> dict[str, Any]:
        async with _memory(config, "owner", _echo) as service:
            report = await service.reindex(progress=lambda line: say(line, style="dim"))
            return {"store": service.store.description if service.store else "-", **vars(report)}

    facts = run(go())
    say(json.dumps(facts, indent=2, default=str))


@app.command("show")
def show(run_id: str = typer.Argument(..., help="the run whose working memory to print")) -> None:
    """A run's working memory: its task and structured state as last mirrored to Postgres.

    Read from Postgres, not Temporal, so it works for finished runs and while no worker runs.
    """
    from aios.cli.runs import print_state
    from aios.ledger.runs import run_mirror

    async def fetch() -> Any:
        async with await psycopg.AsyncConnection.connect(settings().resolved_database_url) as conn:
            mirror = await run_mirror(conn, run_id)
            kept = await documents.listing(conn, agent=None, subject=None, limit=50, source_run=run_id)
            return mirror, kept

    found, remembered = run(fetch())
    if found is None:
        fail(f"no working memory for {run_id!r}: `aios runs` lists runs; runs are mirrored after a step")
    task, state, updated_at = found
    say(f"task: {json.dumps(task, sort_keys=True)}")
    say(f"mirrored at {updated_at.isoformat(timespec='seconds')}")
    if state.recalled:
        say("recalled at the start:")
        for memory in state.recalled:
            say(f"  - {memory}")
    if remembered:
        say("remembered at the end (aios memory list --run RUN):")
        for document in remembered:
            say(f"  - [{document.kind} {document.memory_id[:8]}] {document.text}")
    print_state(state)


# -- compactions ---------------------------------------------------------------------------------


def _sources(row: dict[str, Any]) -> str:
    """How many of the sources are archived now, read from the compaction's status."""
    count = row["sources"]
    return {"archived": str(count), "failed_check": f"0 of {count}", "undone": f"0 ({count} restored)"}.get(
        row["status"], str(count)
    )


def _fidelity(row: dict[str, Any]) -> str:
    if row["fidelity"] is None:
        return "-"
    return f"{row['fidelity']:.3f} (needs {row['threshold']:.2f})"


@app.command("compactions")
def compactions(
    subject: str | None = typer.Option(None, "--subject", help="only this subject's compactions"),
    agent: str | None = typer.Option(None, "--agent", help="only this agent's compactions"),
    limit: int = typer.Option(50, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What compaction did, newest first: the sources it archived and the summary's fidelity score
    (the worst-kept source's similarity to the summary). `undo-compaction ID` reverses one."""
    config = settings()

    async def go() -> list[dict[str, Any]]:
        async with _memory(config, "none", _echo) as service:
            return await Compactor(service).listing(agent=agent, subject=subject, limit=limit)

    found = run(go())
    if as_json:
        say(json.dumps(found, indent=2, default=str))
        return
    rows = [
        (
            row["compaction_id"],
            row["agent"],
            row["subject"] or "(general)",
            row["created_at"].isoformat(timespec="seconds"),
            _sources(row),
            _fidelity(row),
            row["status"],
        )
        for row in found
    ]
    table(
        f"{len(rows)} compactions",
        ["id", "agent", "subject", "when", "sources archived", "fidelity", "state"],
        rows,
    )


@app.command("undo-compaction")
def undo_compaction(
    compaction_id: str = typer.Argument(..., help="the id `aios memory compactions` shows"),
) -> None:
    """Restore a compaction's original memories (re-indexed) and delete its summary."""
    config = settings()
    try:
        wanted = str(uuid.UUID(compaction_id))
    except ValueError:
        fail(f"no compaction {compaction_id!r}: `aios memory compactions` lists them", code=2)

    async def go() -> UndoResult:
        async with _memory(config, "none", _echo) as service:
            known = await Compactor(service).get(wanted) is not None
        if not known:
            fail(f"no compaction {wanted!r}: `aios memory compactions` lists them")
        async with _memory(config, "write", _echo) as service:
            return await Compactor(service).undo(wanted)

    result = run(go())
    if result.note:
        say(f"nothing to undo: compaction {wanted} {result.note}")
        return
    say(
        f"undid compaction {wanted}: {result.restored} memories restored"
        + (", summary deleted" if result.summary_deleted else "")
    )


# -- retention -----------------------------------------------------------------------------------


@app.command("retention")
def retention(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="count what the policy would remove; change nothing"
    ),
    as_json: bool = typer.Option(False, "--json"),
    schedule: bool = typer.Option(
        False,
        "--schedule",
        help="instead, create (or replace) the Temporal Schedule that runs it in the worker",
    ),
    every_hours: float = typer.Option(24, "--every-hours", min=0.01, help="with --schedule: how often"),
) -> None:
    """Apply the retention policy (AIOS_RETENTION) once to Postgres, Qdrant and Temporal, and
    print what it archived and deleted in each."""
    config = settings()
    if schedule:
        run(_schedule_retention(config, timedelta(hours=every_hours)))
        return
    report = run(_apply_retention(config, dry_run))
    if as_json:
        totals = {what: count for _, what, count in report.by_store()}
        say(json.dumps({**report.model_dump(mode="json"), "totals": totals}, indent=2))
        return
    _print_retention(report)


async def _apply_retention(config: Settings, dry_run: bool) -> RetentionReport:
    policy = config.retention
    # Temporal is needed only by run rules; without it nothing is changed.
    client = await _temporal(config, "nothing was changed") if policy.runs else None
    async with _memory(config, "write", _echo) as service:
        runs = None if client is None else TemporalRuns(client, pool=service.pool)
        engine = Retention(
            service.pool, memory=service, runs=runs, progress=lambda line: say(line, style="dim")
        )
        return await engine.apply(policy, dry_run=dry_run)


async def _schedule_retention(config: Settings, every: timedelta) -> None:
    client = await _temporal(config, "no schedule was made")
    handle = await create_retention_schedule(client, task_queue=config.task_queue, every=every)
    hours = every.total_seconds() / 3600
    say(
        f"schedule {handle.id}: retention every {hours:g} hours on task queue {config.task_queue!r}; "
        "each pass applies the AIOS_RETENTION of the worker that runs it"
    )
    if config.retention.empty:
        say("note: this process has no retention rules; give the worker AIOS_RETENTION", style="yellow")


def _print_retention(report: RetentionReport) -> None:
    verb = "would be" if report.dry_run else "were"
    title = f"retention as of {report.as_of.isoformat(timespec='seconds')}" + (
        " (dry run)" if report.dry_run else ""
    )
    table(title, ["store", "what", "count"], report.by_store())
    rules = [(o.rule, f"{o.archived} archived, {o.deleted} deleted") for o in report.memory_rules] + [
        (
            o.rule,
            f"{o.runs} runs ({o.executions} executions) and {o.mirrors} mirrors deleted; "
            f"{o.still_going} kept, still going",
        )
        for o in report.run_rules
    ]
    if rules:
        table(f"by rule (what {verb} removed)", ["rule", "outcome"], rules)
    for note in report.notes:
        say(note, style="yellow")
