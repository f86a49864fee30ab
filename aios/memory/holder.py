"""Which worker holds the embedded memory store: one process at a time, on any machine.

An embedded store (Qdrant Edge, or qdrant-client's local mode) lives in one process's files.
With several workers, one of them holds it and serves the memory task queue; the others reach
memory through Temporal (docs/ARCHITECTURE.md, "Several workers, one memory"). The election is
a Postgres advisory lock on a connection of its own, because Postgres is what every worker
shares, on one machine or many, and a lock that dies with its holder's connection hands over
by itself when the holder is killed. The store's own file lock still guards its files on disk.

Postgres is the truth for memory (documents and their vectors); a store is an index of it. A
holder on another machine, or on another data directory, than the last one has an index that
may have missed writes, so it rebuilds the index from Postgres before it serves.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

import psycopg

from aios.memory.service import MemoryService
from aios.memory.vectors import StoreBusy

log = logging.getLogger("aios.memory")

# The first key of the two-key advisory lock: aios memory stores (the second is the store's name).
ADVISORY_CLASS = 0x41_10_5E_ED


def holder_queue(store: str) -> str:
    """The task queue the holder of `store` serves (the collection's name, one per embedder)."""
    return f"memory/{store}"


class MemoryHolder:
    """Takes, keeps and gives back the holder's role for one embedded store."""

    def __init__(self, service: MemoryService, database_url: str, store: str, place: str) -> None:
        self._service = service
        self._database_url = database_url
        self.store = store
        self.place = f"{socket.gethostname()}:{place}"
        self._lock: psycopg.AsyncConnection[Any] | None = None
        self.held_elsewhere = False
        """The last try lost the lock to another worker, which serves the queue (not a process
        that only has the store's files open: a CLI command, which serves nothing)."""

    @property
    def holding(self) -> bool:
        return self._lock is not None

    async def try_take(self) -> bool:
        """Become the holder if nobody is: the lock, then the store's files, then its index."""
        conn = await psycopg.AsyncConnection.connect(self._database_url, autocommit=True)
        try:
            won = await _fetch_bool(conn, "SELECT pg_try_advisory_lock(%s::int, hashtext(%s))", self.store)
            self.held_elsewhere = not won
            if won:
                self._service.caught_up.clear()  # recalls wait until the index is rebuilt
                await self._service.open()
        except StoreBusy as busy:  # a CLI command has the files open: try again later
            log.info("memory store %s: lock won but its files are busy (%s)", self.store, busy)
            won = False
        except BaseException:
            self._service.caught_up.set()
            await conn.close()
            raise
        if not won:
            self._service.caught_up.set()
            await conn.close()
            return False
        self._lock = conn
        try:
            await self._catch_up(conn)
        except BaseException:
            await self.give_back("the memory store could not catch up with Postgres")
            raise
        finally:
            self._service.caught_up.set()
        return True

    async def _catch_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Rebuild the index when the last holder was elsewhere; then record this place."""
        cursor = await conn.execute("SELECT place FROM aios_memory_holders WHERE store = %s", (self.store,))
        row = await cursor.fetchone()
        if row is not None and row[0] != self.place:
            log.info("memory store %s was last held at %s: rebuilding its index", self.store, row[0])
            await self._service.reindex()
        await conn.execute(
            "INSERT INTO aios_memory_holders (store, place) VALUES (%s, %s) "
            "ON CONFLICT (store) DO UPDATE SET place = excluded.place, taken_at = now()",
            (self.store, self.place),
        )

    async def still_holding(self) -> bool:
        """False once the lock's connection is gone (Postgres restarted): the role is lost."""
        if self._lock is None:
            return False
        try:
            await self._lock.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    async def give_back(self, reason: str) -> None:
        """Close the store and let the lock go, so another worker can take over."""
        await self._service.release_store(reason)
        if self._lock is not None:
            with contextlib.suppress(psycopg.Error):
                await self._lock.close()
            self._lock = None


async def _fetch_bool(conn: psycopg.AsyncConnection[Any], query: str, store: str) -> bool:
    cursor = await conn.execute(query, (ADVISORY_CLASS, store))
    row = await cursor.fetchone()
    return bool(row and row[0])
