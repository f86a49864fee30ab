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
from datetime import datetime
from typing import Any, Literal

import psycopg
import typer
from psycopg_pool import AsyncConnectionPool

from aios.cli.common import fail, run, say, settings, table
from aios.memory import documents
from aios.memory.embedders import EmbedderUnavailable
from aios.memory.factory import build_service, lock_file
from aios.memory.messages import ForgetRequest, MemoryFilter, MemoryRecallRequest, RememberRequest
from aios.memory.service import MemoryService
from aios.memory.vectors import StoreBusy, holder
from aios.settings import Settings

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
    limit: int = typer.Option(50, "--limit", min=1),
) -> None:
    """The newest memories, from Postgres."""
    config = settings()

    async def go() -> None:
        async with _memory(config, "none", _echo) as service, service.pool.connection() as conn:
            docs = await documents.listing(conn, agent=agent, subject=subject, limit=limit)
        rows = [
            (d.memory_id[:8], d.created_at.date(), d.agent, d.subject, d.kind, d.importance, d.text)
            for d in docs
        ]
        table(f"{len(rows)} memories", ["id", "date", "agent", "subject", "kind", "imp", "text"], rows)

    run(go())


@app.command("forget")
def forget(
    subject: str = typer.Option(..., "--subject", help="who or what to forget"),
    agent: str | None = typer.Option(None, "--agent", help="only this agent's memories"),
    keep_runs: bool = typer.Option(False, "--keep-runs", help="keep finished runs' mirrors of the subject"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Remove a subject from Postgres (memories, finished runs' mirrors) and from Qdrant."""
    config = settings()

    async def go() -> None:
        async with _memory(config, "write", _echo) as service:
            report = await service.forget(
                ForgetRequest(subject=subject, agent=agent), include_runs=not keep_runs
            )
        if as_json:
            say(report.model_dump_json(indent=2))
            return
        say(
            f"forgot {subject!r}: {report.documents} memory documents and {report.run_mirrors} run mirrors "
            f"deleted from Postgres; {report.vectors} vectors deleted from Qdrant"
            + (f", {report.vectors_pending} left to the store's owner" if report.vectors_pending else "")
        )
        if report.note:
            say(report.note)

    run(go())


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
            return await run_mirror(conn, run_id)

    found = run(fetch())
    if found is None:
        fail(f"no working memory for {run_id!r}: `aios runs` lists runs; runs are mirrored after a step")
    task, state, updated_at = found
    say(f"task: {json.dumps(task, sort_keys=True)}")
    say(f"mirrored at {updated_at.isoformat(timespec='seconds')}")
    if state.recalled:
        say("recalled at the start:")
        for memory in state.recalled:
            say(f"  - {memory}")
    print_state(state)
