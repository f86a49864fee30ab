"""What activities need from the process that hosts them, opened once per worker."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from psycopg_pool import AsyncConnectionPool

from aios.settings import Settings
from connectors.actions.base import ActionConnector
from connectors.actions.http import HttpActionConnector
from connectors.actions.noop import NoopConnector

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass
class ActivityDeps:
    settings: Settings
    pool: AsyncConnectionPool
    http: httpx.AsyncClient
    connectors: dict[str, ActionConnector] = field(default_factory=dict)


async def open_deps(settings: Settings) -> ActivityDeps:
    # Autocommit: a ledger intent must be durable before the connector is called.
    pool = AsyncConnectionPool(
        settings.resolved_database_url,
        min_size=1,
        max_size=10,
        open=False,
        name="aios",
        kwargs={"autocommit": True},
    )
    await pool.open(wait=True, timeout=30)
    http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
    connectors: dict[str, ActionConnector] = {
        "noop": NoopConnector(),
        "http": HttpActionConnector(http),
    }
    return ActivityDeps(settings=settings, pool=pool, http=http, connectors=connectors)


async def close_deps(deps: ActivityDeps) -> None:
    await deps.http.aclose()
    await deps.pool.close()
