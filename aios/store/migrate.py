"""Ordered SQL migrations recorded in a table, applied under an advisory lock.

Files `migrations/NNNN_name.sql` run in order, each in its own transaction together with
its row in `aios_migrations`. A transaction-level advisory lock makes two migrators at
once safe: the second waits, then sees the first's rows and applies nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from aios.errors import MigrationError

# Any fixed 64-bit number works; it only has to be the same for every migrator.
MIGRATION_LOCK_ID = 0x41_49_4F_53  # "AIOS"
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS aios_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
TAKE_LOCK = "SELECT pg_advisory_xact_lock(%s)"
APPLIED_VERSIONS = "SELECT version FROM aios_migrations"
RECORD_MIGRATION = "INSERT INTO aios_migrations (version, name) VALUES (%s, %s)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("aios.store").joinpath("migrations").iterdir():
        match = MIGRATION_FILE.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


async def migrate(database_url: str) -> list[Migration]:
    """Apply every migration not yet recorded; return those applied by this call."""
    applied_now: list[Migration] = []
    try:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            for migration in available_migrations():
                async with conn.transaction():
                    await conn.execute(TAKE_LOCK, (MIGRATION_LOCK_ID,))
                    await conn.execute(CREATE_MIGRATIONS_TABLE)
                    cursor = await conn.execute(APPLIED_VERSIONS)
                    done = {row[0] for row in await cursor.fetchall()}
                    if migration.version in done:
                        continue
                    await conn.execute(migration.sql.encode())
                    await conn.execute(RECORD_MIGRATION, (migration.version, migration.name))
                    applied_now.append(migration)
    except psycopg.Error as exc:
        raise MigrationError(f"migrating {redact_url(database_url)} failed: {exc}") from exc
    return applied_now


def redact_url(database_url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", database_url)
