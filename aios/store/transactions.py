"""One transaction helper shared by the ledgers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus


@asynccontextmanager
async def atomic(conn: AsyncConnection[Any]) -> AsyncIterator[None]:
    """A transaction of its own, or the caller's when one is open.

    psycopg would nest a savepoint, two more round trips per use; nothing here rolls back
    part of a transaction, so joining the caller's is the same and cheaper (the agent run's
    bookkeeping joins three ledgers in one transaction per step).
    """
    if conn.info.transaction_status == TransactionStatus.INTRANS:
        yield
        return
    async with conn.transaction():
        yield
