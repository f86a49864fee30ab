"""The effect ledger: every external effect is recorded before and after it happens.

`begin` records the intent under the effect's key. A key seen before with the same
request returns what is known (a finished outcome is replayed, never performed again);
with a different request it is a conflict. `finish` records the outcome.

Given a `SubjectVault`, the outcome's response and error (and a webhook event's) are sealed
with the key of the subject the effect's run serves (aios/governance/subjects.py), and read back opened:
after `aios memory forget` they read as "[forgotten]", while state, attempts and the request
hash (what makes a replay safe) stay as they were.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry.trace import SpanKind
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from aios.errors import EffectConflict, EffectNotInDoubt
from aios.governance.subjects import Opener, SubjectKey, SubjectVault
from aios.observability.telemetry import tracer

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


def _sql_span(summary: str) -> AbstractContextManager[object]:
    """A client span per ledger statement, named and attributed as OpenTelemetry's DB conventions say."""
    return tracer().start_as_current_span(
        summary,
        kind=SpanKind.CLIENT,
        attributes={"db.system.name": "postgresql", "db.query.summary": summary},
    )


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
    vault: SubjectVault | None = None,
) -> EffectRecord:
    """Record the intent; return the row as it now stands (attempts == 1: first time)."""
    digest = request_hash(request)
    with _sql_span("INSERT aios_effects"):
        cursor = await conn.execute(BEGIN_EFFECT, (key, run_id, action, connector, digest))
        row = await cursor.fetchone()
    if row is None:  # the key exists and is finished: nothing was updated
        cursor = await conn.execute(FIND_EFFECT, (key,))
        row = await cursor.fetchone()
        assert row is not None, "a finished effect row cannot disappear"
    stored_hash, *stored = row
    if stored_hash != digest:
        raise EffectConflict(
            f"effect {key!r} was first requested with different parameters; a new effect needs a new key"
        )
    return await _opened(conn, vault, (stored[0], stored[1], stored[2], stored[3]))


async def finish(
    conn: AsyncConnection[Any],
    *,
    key: str,
    state: EffectState,
    response: dict[str, Any] | None = None,
    error: str = "",
    vault: SubjectVault | None = None,
) -> None:
    sealer = await _sealer(conn, vault, key)
    with _sql_span("UPDATE aios_effects"):
        await conn.execute(FINISH_EFFECT, (state, *_sealed(sealer, response, error), key))


async def _sealer(conn: AsyncConnection[Any], vault: SubjectVault | None, key: str) -> SubjectKey | None:
    """The key of the subject this effect's run serves, if it has one (one round trip)."""
    if vault is None:
        return None
    with _sql_span("SELECT aios_subject_keys"):
        return await vault.key_for_effect(conn, key)


def _sealed(
    sealer: SubjectKey | None, response: dict[str, Any] | None, error: str
) -> tuple[Jsonb | None, str]:
    if sealer is not None and response is not None:
        response = sealer.seal(response)
    return Jsonb(response) if response is not None else None, sealer.seal_text(
        error
    ) if sealer is not None else error


async def _opener(conn: AsyncConnection[Any], vault: SubjectVault | None, values: list[Any]) -> Opener:
    """Opens what was sealed; without a vault every sealed value reads as forgotten."""
    return await vault.opener(conn, values) if vault is not None else Opener({})


async def _opened(
    conn: AsyncConnection[Any], vault: SubjectVault | None, row: tuple[EffectState, Any, str, int]
) -> EffectRecord:
    state, response, error, attempts = row
    opener = await _opener(conn, vault, [response, error])
    opened = opener.open_mapping(response) if response is not None else None
    return EffectRecord(state=state, response=opened, error=opener.open(error), attempts=attempts)


LIST_EFFECTS = """
SELECT effect_key, run_id, action, connector, state, attempts, error, created_at, updated_at
FROM aios_effects WHERE (%(run_id)s::text IS NULL OR run_id = %(run_id)s)
ORDER BY created_at DESC LIMIT %(limit)s
"""


async def list_effects(
    conn: AsyncConnection[Any],
    *,
    run_id: str | None = None,
    limit: int = 100,
    vault: SubjectVault | None = None,
) -> list[dict[str, Any]]:
    cursor = await conn.execute(LIST_EFFECTS, {"run_id": run_id, "limit": limit})
    columns = [column.name for column in cursor.description or []]
    rows = [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]
    opener = await _opener(conn, vault, [row["error"] for row in rows])
    return [{**row, "error": opener.open(row["error"])} for row in rows]


# Only finished effects are forgotten: a pending or unknown one still needs an answer.
PRUNE_EFFECTS = """
DELETE FROM aios_effects
WHERE state IN ('succeeded', 'failed') AND updated_at < now() - make_interval(days => %s)
"""


async def prune(conn: AsyncConnection[Any], *, older_than_days: int) -> int:
    cursor = await conn.execute(PRUNE_EFFECTS, (older_than_days,))
    return cursor.rowcount


# -- reconciliation (docs/ARCHITECTURE.md, decision 4): settling an effect whose outcome is unknown --

# Conditional: only an open effect is settled, so the first conclusive answer wins and a
# finished outcome is never rewritten. The row as it then stands comes back either way.
RESOLVE_EFFECT = """
UPDATE aios_effects SET state = %s, response = %s, error = %s, updated_at = now()
WHERE effect_key = %s AND state IN ('pending', 'unknown')
RETURNING state, response, error, attempts
"""
FIND_EFFECT_STATE = "SELECT state, response, error, attempts FROM aios_effects WHERE effect_key = %s"


async def find(
    conn: AsyncConnection[Any], key: str, *, vault: SubjectVault | None = None
) -> EffectRecord | None:
    with _sql_span("SELECT aios_effects"):
        cursor = await conn.execute(FIND_EFFECT_STATE, (key,))
        row = await cursor.fetchone()
    if row is None:
        return None
    return await _opened(conn, vault, (row[0], row[1], row[2], row[3]))


FIND_EFFECTS = (
    "SELECT effect_key, state, response, error, attempts FROM aios_effects WHERE effect_key = ANY(%s)"
)


async def find_many(
    conn: AsyncConnection[Any], keys: list[str], *, vault: SubjectVault | None = None
) -> dict[str, EffectRecord]:
    """The rows of these keys that exist, in one query, opened with one opener."""
    with _sql_span("SELECT aios_effects"):
        cursor = await conn.execute(FIND_EFFECTS, (keys,))
        rows = await cursor.fetchall()
    opener = await _opener(conn, vault, [value for row in rows for value in (row[2], row[3])])
    return {
        str(key): EffectRecord(
            state=state,
            response=opener.open_mapping(response) if response is not None else None,
            error=opener.open(error),
            attempts=attempts,
        )
        for key, state, response, error, attempts in rows
    }


async def resolve(
    conn: AsyncConnection[Any],
    *,
    key: str,
    state: Literal["succeeded", "failed"],
    response: dict[str, Any] | None = None,
    error: str = "",
    vault: SubjectVault | None = None,
) -> EffectRecord | None:
    """Settle an open (pending/unknown) effect; return the row as it stands (None: no such key)."""
    sealer = await _sealer(conn, vault, key)
    with _sql_span("UPDATE aios_effects"):
        cursor = await conn.execute(RESOLVE_EFFECT, (state, *_sealed(sealer, response, error), key))
        row = await cursor.fetchone()
    if row is None:  # already finished (someone answered first), or never recorded
        return await find(conn, key, vault=vault)
    return await _opened(conn, vault, (row[0], row[1], row[2], row[3]))


# Only an `unknown` effect is the operator's to settle: a pending one may still be answered
# by its call, and a finished one has its answer. Conditional, so two operators cannot both win.
OPERATOR_SETTLE = """
UPDATE aios_effects SET state = %s, response = coalesce(%s, response), error = %s, resolved_by = %s,
    resolution_note = %s, resolved_at = now(), updated_at = now()
WHERE effect_key = %s AND state = 'unknown'
RETURNING run_id, action
"""
FIND_FOR_OPERATOR = "SELECT state, run_id, resolved_by FROM aios_effects WHERE effect_key = %s"
OPERATOR_VIEW = """
SELECT state, response, error, resolved_by, coalesce(resolution_note, '') FROM aios_effects
WHERE effect_key = %s
"""


@dataclass(frozen=True)
class ResolvedRecord:
    state: EffectState
    response: dict[str, Any] | None
    error: str
    resolved_by: str | None
    resolution_note: str


async def operator_view(
    conn: AsyncConnection[Any], key: str, *, vault: SubjectVault | None = None
) -> ResolvedRecord | None:
    """An effect's outcome with who settled it by hand, if anyone; None: no such effect."""
    with _sql_span("SELECT aios_effects"):
        row = await (await conn.execute(OPERATOR_VIEW, (key,))).fetchone()
    if row is None:
        return None
    state, response, error, resolved_by, note = row
    opener = await _opener(conn, vault, [response, error, note])
    opened = opener.open_mapping(response) if response is not None else None
    return ResolvedRecord(state, opened, opener.open(error), resolved_by, opener.open(note))


@dataclass(frozen=True)
class OperatorSettlement:
    effect_key: str
    run_id: str
    action: str
    state: Literal["succeeded", "failed"]
    sealed_with: SubjectKey | None = None  # the subject's key, for the audit row that goes with it


async def settle_by_operator(
    conn: AsyncConnection[Any],
    *,
    key: str,
    applied: bool,
    by: str,
    note: str,
    response: dict[str, Any] | None = None,
    vault: SubjectVault | None = None,
) -> OperatorSettlement:
    """unknown -> succeeded (applied) or failed (not applied), in the operator's name; what the
    operator says of the effect is sealed with its subject's key, like any response."""
    state: Literal["succeeded", "failed"] = "succeeded" if applied else "failed"
    error = "" if applied else f"not applied, says {by}" + (f": {note}" if note else "")
    sealer = await _sealer(conn, vault, key)
    sealed_note = sealer.seal_text(note) if sealer is not None else note
    with _sql_span("UPDATE aios_effects"):
        cursor = await conn.execute(
            OPERATOR_SETTLE, (state, *_sealed(sealer, response, error), by, sealed_note, key)
        )
        row = await cursor.fetchone()
    if row is not None:
        return OperatorSettlement(key, run_id=row[0], action=row[1], state=state, sealed_with=sealer)
    found = await (await conn.execute(FIND_FOR_OPERATOR, (key,))).fetchone()
    if found is None:
        raise EffectNotInDoubt(f"no effect {key!r} in the ledger; `aios effects RUN` lists a run's effects")
    current, _, resolved_by = found
    settled = f" (settled by {resolved_by})" if resolved_by else ""
    raise EffectNotInDoubt(
        f"effect {key!r} is {current}{settled}, not unknown: only an effect whose outcome is "
        "unknown can be resolved by hand"
    )


# A redelivered event (same event id) inserts nothing: the caller learns it is a duplicate.
RECORD_WEBHOOK_EVENT = """
INSERT INTO aios_webhook_events (event_id, source, effect_key, payload)
VALUES (%s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
RETURNING received_at
"""
# The first event received for an effect is its answer: later contradicting ones lose.
FIRST_WEBHOOK_EVENT = """
SELECT event_id, payload FROM aios_webhook_events WHERE effect_key = %s
ORDER BY received_at, event_id LIMIT 1
"""


async def record_webhook_event(
    conn: AsyncConnection[Any],
    *,
    event_id: str,
    source: str,
    effect_key: str,
    payload: dict[str, Any],
    vault: SubjectVault | None = None,
) -> bool:
    """Keep a webhook event once; False when its event id was received before. Its response
    and error are sealed for the effect's subject; the rest routes it, so stays readable."""
    sealer = await _sealer(conn, vault, effect_key)
    if sealer is not None:
        payload = {**payload, **_sealed_event_fields(sealer, payload)}
    with _sql_span("INSERT aios_webhook_events"):
        cursor = await conn.execute(RECORD_WEBHOOK_EVENT, (event_id, source, effect_key, Jsonb(payload)))
        return await cursor.fetchone() is not None


def _sealed_event_fields(sealer: SubjectKey, payload: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "response" in payload:
        fields["response"] = sealer.seal(payload["response"])
    if isinstance(payload.get("error"), str):
        fields["error"] = sealer.seal_text(payload["error"])
    return fields


async def first_webhook_event(
    conn: AsyncConnection[Any], effect_key: str, *, vault: SubjectVault | None = None
) -> dict[str, Any] | None:
    """The payload of the first webhook event received for this effect, if any, opened."""
    with _sql_span("SELECT aios_webhook_events"):
        cursor = await conn.execute(FIRST_WEBHOOK_EVENT, (effect_key,))
        row = await cursor.fetchone()
    if row is None:
        return None
    payload = dict(row[1])
    opener = await _opener(conn, vault, [payload.get("response"), payload.get("error")])
    if "response" in payload:
        payload["response"] = opener.open_mapping(payload["response"])
    if isinstance(payload.get("error"), str):
        payload["error"] = opener.open(payload["error"])
    return payload
