import asyncio

import psycopg
import pytest

from aios.errors import MigrationError
from aios.store.migrate import available_migrations, migrate


async def _recorded_versions(url: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute("SELECT version FROM aios_migrations ORDER BY version")
        return [row[0] for row in await cursor.fetchall()]


async def test_migrating_twice_applies_everything_once(scratch_database: str) -> None:
    first = await migrate(scratch_database)
    second = await migrate(scratch_database)
    expected = [m.version for m in available_migrations()]
    assert [m.version for m in first] == expected
    assert second == []
    assert await _recorded_versions(scratch_database) == expected


async def test_two_concurrent_migrators_apply_each_migration_once(scratch_database: str) -> None:
    results = await asyncio.gather(*(migrate(scratch_database) for _ in range(2)))
    applied = sorted(m.version for result in results for m in result)
    assert applied == [m.version for m in available_migrations()]
    assert await _recorded_versions(scratch_database) == applied


async def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(MigrationError, match=r"postgresql://me:\*\*\*@127.0.0.1:1/x"):
        await migrate("postgresql://me:pw@127.0.0.1:1/x?connect_timeout=2")
