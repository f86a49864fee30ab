"""What activities need from the process that hosts them, opened once per worker."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from aios.settings import Settings


@dataclass(frozen=True)
class ActivityDeps:
    settings: Settings
    pool: AsyncConnectionPool


async def open_deps(settings: Settings) -> ActivityDeps:
    pool = AsyncConnectionPool(
        settings.resolved_database_url, min_size=1, max_size=10, open=False, name="aios"
    )
    await pool.open(wait=True, timeout=30)
    return ActivityDeps(settings=settings, pool=pool)


async def close_deps(deps: ActivityDeps) -> None:
    await deps.pool.close()
