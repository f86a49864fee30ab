"""The budget ledger: tokens and cost reserved before each model call.

A reservation is keyed by run and turn, so a replayed or retried activity finds its own
reservation instead of counting twice. Reservations for one agent are serialised by an
advisory lock so two runs cannot both squeeze under the daily cap.
"""

from __future__ import annotations

import datetime
from typing import Any

from psycopg import AsyncConnection

from aios.models.run import (
    BudgetCap,
    BudgetGrant,
    BudgetRequest,
    CacheSavings,
    Settlement,
    budget_day,
)
from aios.store.transactions import atomic

LOCK_AGENT = "SELECT pg_advisory_xact_lock(hashtext('aios-budget:' || %s))"
# One round trip after the lock (its own statement: under READ COMMITTED its snapshot then
# includes what the previous holder of the lock committed).
STATE_UNDER_LOCK = """
SELECT EXISTS (SELECT 1 FROM aios_budget_reservations WHERE reservation_key = %(key)s),
       run.tokens, run.cost, day.tokens, day.cost
FROM (SELECT coalesce(sum(tokens), 0) AS tokens, coalesce(sum(cost), 0) AS cost
      FROM aios_budget_reservations WHERE run_id = %(run)s) AS run,
     (SELECT coalesce(sum(tokens), 0) AS tokens, coalesce(sum(cost), 0) AS cost
      FROM aios_budget_reservations WHERE agent = %(agent)s AND day = %(day)s) AS day
"""
DAY_TOTALS = """
SELECT coalesce(sum(tokens), 0), coalesce(sum(cost), 0)
FROM aios_budget_reservations WHERE agent = %s AND day = %s
"""
INSERT_RESERVATION = """
INSERT INTO aios_budget_reservations (reservation_key, agent, run_id, day, tokens, cost)
VALUES (%s, %s, %s, %s, %s, %s)
"""
SETTLE_RESERVATION = """
UPDATE aios_budget_reservations
SET tokens = %(tokens)s, cost = %(cost)s, cached = %(cached)s,
    saved_tokens = %(saved_tokens)s, saved_cost = %(saved_cost)s
WHERE reservation_key = %(reservation_key)s
"""

RUN_SAVINGS = """
SELECT run_id, count(*), coalesce(sum(saved_tokens), 0), coalesce(sum(saved_cost), 0)
FROM aios_budget_reservations WHERE cached AND run_id = ANY(%s) GROUP BY run_id
"""


def today() -> datetime.date:
    """The current budget day (a UTC calendar day; `aios.models.run.budget_day` defines it)."""
    return budget_day(datetime.datetime.now(datetime.UTC))


async def _totals(conn: AsyncConnection[Any], query: str, params: tuple[Any, ...]) -> tuple[int, float]:
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


async def reserve(conn: AsyncConnection[Any], request: BudgetRequest) -> BudgetGrant:
    """Reserve within the caps, or refuse with the cap that would be exceeded. One transaction."""
    async with atomic(conn):
        await conn.execute(LOCK_AGENT, (request.agent,))
        cursor = await conn.execute(
            STATE_UNDER_LOCK,
            {"key": request.reservation_key, "run": request.run_id, "agent": request.agent, "day": today()},
        )
        row = await cursor.fetchone()
        assert row is not None
        already = bool(row[0])
        run_tokens, run_cost, day_tokens, day_cost = int(row[1]), float(row[2]), int(row[3]), float(row[4])
        if already:
            return BudgetGrant(
                granted=True,
                run_tokens=run_tokens,
                run_cost=run_cost,
                day_tokens=day_tokens,
                day_cost=day_cost,
            )
        cap, refusal = _exceeded_cap(request, run_tokens, run_cost, day_tokens, day_cost)
        if refusal:
            return BudgetGrant(
                granted=False,
                reason=refusal,
                cap=cap,
                run_tokens=run_tokens,
                run_cost=run_cost,
                day_tokens=day_tokens,
                day_cost=day_cost,
            )
        await conn.execute(
            INSERT_RESERVATION,
            (
                request.reservation_key,
                request.agent,
                request.run_id,
                today(),
                request.tokens,
                request.cost,
            ),
        )
        return BudgetGrant(
            granted=True,
            run_tokens=run_tokens + request.tokens,
            run_cost=run_cost + request.cost,
            day_tokens=day_tokens + request.tokens,
            day_cost=day_cost + request.cost,
        )


def _exceeded_cap(
    request: BudgetRequest, run_tokens: int, run_cost: float, day_tokens: int, day_cost: float
) -> tuple[BudgetCap, str]:
    """Which cap the reservation would break (its kind and why), or ("", "")."""
    # What the run's children spent counts in its run budget (workflows/delegation.py).
    with_children = (run_tokens + request.delegated_tokens, run_cost + request.delegated_cost)
    checks: list[tuple[bool, BudgetCap, str, float, float]] = [
        (
            with_children[0] + request.tokens > request.tokens_per_run,
            "run",
            "tokens per run",
            with_children[0],
            request.tokens_per_run,
        ),
        (
            with_children[1] + request.cost > request.cost_per_run,
            "run",
            "cost per run",
            with_children[1],
            request.cost_per_run,
        ),
    ]
    checks += _ceiling_checks(request, with_children)
    # An operator's override lets this run's turns past the daily caps; they still count there.
    if not request.override_day:
        checks += [
            (
                day_tokens + request.tokens > request.tokens_per_day,
                "day",
                "tokens per day",
                day_tokens,
                request.tokens_per_day,
            ),
            (
                day_cost + request.cost > request.cost_per_day,
                "day",
                "cost per day",
                day_cost,
                request.cost_per_day,
            ),
        ]
    for exceeded, kind, cap, spent, limit in checks:
        if exceeded:
            return kind, f"the {cap} cap would be exceeded: {spent:g} spent of {limit:g}"
    return "", ""


def _ceiling_checks(
    request: BudgetRequest, spent: tuple[int, float]
) -> list[tuple[bool, BudgetCap, str, float, float]]:
    """A child run may spend no more than its parent had left when it delegated."""
    checks: list[tuple[bool, BudgetCap, str, float, float]] = []
    if request.ceiling_tokens is not None:
        over = spent[0] + request.tokens > request.ceiling_tokens
        checks.append((over, "run", "parent run's tokens", spent[0], request.ceiling_tokens))
    if request.ceiling_cost is not None:
        over = spent[1] + request.cost > request.ceiling_cost
        checks.append((over, "run", "parent run's cost", spent[1], request.ceiling_cost))
    return checks


async def settle(conn: AsyncConnection[Any], settlement: Settlement) -> None:
    """Replace the estimate with what the call actually used (and, for a cache hit, saved)."""
    await conn.execute(SETTLE_RESERVATION, settlement.model_dump())


async def day_spend(conn: AsyncConnection[Any], agent: str) -> tuple[int, float]:
    return await _totals(conn, DAY_TOTALS, (agent, today()))


async def cache_savings(conn: AsyncConnection[Any], run_ids: list[str]) -> dict[str, CacheSavings]:
    """What the model-response cache saved each of these runs (runs it saved nothing are left out)."""
    cursor = await conn.execute(RUN_SAVINGS, (run_ids,))
    return {
        row[0]: CacheSavings(hits=int(row[1]), tokens=int(row[2]), cost=float(row[3]))
        for row in await cursor.fetchall()
    }
