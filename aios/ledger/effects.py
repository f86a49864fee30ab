"""The effect ledger: every external effect is recorded before and after it happens.

`begin` records the intent under the effect's key. A key seen before with the same
request returns what is known (a finished outcome is replayed, never performed again);
with a different request it is a conflict. `finish` records the outcome.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

EffectState = Literal["pending", "succeeded", "failed", "unknown"]

# One round trip: insert the intent, or on conflict bump the attempt count and return the row.
BEGIN_EFFECT = """
INSERT INTO aios_effects (effect_key, run_id, action, connector, request_hash, state)
VALUES (%s, %s, %s, %s, %s, 'pending')
ON CONFLICT (effect_key) DO UPDATE
    SET attempts = aios_effects.attempts + 1, updated_at = now()
    WHERE aios_effects.state IN ('pending', 'unknown')
RETURNING request_hash, state, response, error, attempts
"""
FIND_EFFECT = "SELECT request_hash, state, response, error, attempts FROM aios_effects WHERE effect_key = %s"
FINISH_EFFECT = """
UPDATE aios_effects SET state = %s, response = %s, error = %s, updated_at = now()
WHERE effect_key = %s
"""


class EffectConflict(Exception):
    """The same effect key arrived with a different request (Stripe's semantics)."""


@dataclass(frozen=True)
class EffectRecord:
    state: EffectState
    response: dict[str, Any] | None
    error: str
    attempts: int

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


def request_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def begin(
    conn: AsyncConnection[Any],
    *,
    key: str,
    run_id: str,
    action: str,
    connector: str,
    request: dict[str, Any],
) -> EffectRecord:
    """Record the intent; return the row as it now stands (attempts == 1: first time)."""
    digest = request_hash(request)
    cursor = await conn.execute(BEGIN_EFFECT, (key, run_id, action, connector, digest))
    row = await cursor.fetchone()
    if row is None:  # the key exists and is finished: nothing was updated
        cursor = await conn.execute(FIND_EFFECT, (key,))
        row = await cursor.fetchone()
        assert row is not None, "a finished effect row cannot disappear"
    stored_hash, state, response, error, attempts = row
    if stored_hash != digest:
        raise EffectConflict(
            f"effect {key!r} was first requested with different parameters; a new effect needs a new key"
        )
    return EffectRecord(state=state, response=response, error=error, attempts=attempts)


async def finish(
    conn: AsyncConnection[Any],
    *,
    key: str,
    state: EffectState,
    response: dict[str, Any] | None = None,
    error: str = "",
) -> None:
    await conn.execute(FINISH_EFFECT, (state, Jsonb(response) if response is not None else None, error, key))


LIST_EFFECTS = """
SELECT effect_key, run_id, action, connector, state, attempts, error, created_at, updated_at
FROM aios_effects WHERE (%(run_id)s::text IS NULL OR run_id = %(run_id)s)
ORDER BY created_at DESC LIMIT %(limit)s
"""


async def list_effects(
    conn: AsyncConnection[Any], *, run_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    cursor = await conn.execute(LIST_EFFECTS, {"run_id": run_id, "limit": limit})
    columns = [column.name for column in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]


# Only finished effects are forgotten: a pending or unknown one still needs an answer.
PRUNE_EFFECTS = """
DELETE FROM aios_effects
WHERE state IN ('succeeded', 'failed') AND updated_at < now() - make_interval(days => %s)
"""


async def prune(conn: AsyncConnection[Any], *, older_than_days: int) -> int:
    cursor = await conn.execute(PRUNE_EFFECTS, (older_than_days,))
    return cursor.rowcount
