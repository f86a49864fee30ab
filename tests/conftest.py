"""Shared fixtures: the real local stack (Temporal dev server, Postgres), started or reused.

The session stack uses the project's ordinary settings, so a developer's running
`aios dev up` is reused; whatever the fixture itself started it stops again at the end.
A stack on the configured ports that another data directory started is never reused.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from temporalio.client import Client

from aios import stack
from aios.settings import Settings, load_settings
from aios.stack import postgres, temporal
from aios.stack.owner import describe, foreign_services
from aios.temporal.connection import connect


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    # Embedded vector stores are one process's each: the suite keeps its own, away from .aios.
    settings = load_settings().model_copy(update={"qdrant_path": tmp_path_factory.mktemp("qdrant")})
    # Another checkout's stack on our ports would be talked to while the at-rest scans read this
    # checkout's files: stop the whole session at once with the reason, not with scattered failures.
    foreign = foreign_services(settings)
    if foreign:
        pytest.exit("\n".join(describe(foreign)), returncode=pytest.ExitCode.USAGE_ERROR)
    was_running = temporal.healthy(settings) and (
        not settings.postgres_is_local or postgres.running_pid(settings) is not None
    )
    stack.up(settings, progress=print)
    yield settings
    if not was_running:
        stack.down(settings)


@pytest.fixture(scope="session")
def database_url(stack_settings: Settings) -> str:
    return stack_settings.resolved_database_url


@pytest.fixture(scope="session")
async def temporal_client(stack_settings: Settings) -> AsyncIterator[Client]:
    yield await connect(stack_settings)


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so no test's worker picks up another test's tasks."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def scratch_database(database_url: str) -> Iterator[str]:
    """A new empty database on the session's Postgres, dropped afterwards."""
    name = f"aios_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    base, _, _ = database_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
