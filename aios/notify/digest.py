"""The daily digest: everything open for a person, and what the workforce did in the last day.

One notice per day (its `ref` is the day), delivered like every notice: one ledger effect per
recipient and channel, so a digest fired twice the same day goes out once. The open items are
the inbox's (aios/inbox/collect.py); the day's work is read from the run mirrors and the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg import AsyncConnection

from aios.models.inbox import InboxItem
from aios.models.notify import Notice

DIGEST_AGENT = "workforce"  # what the subject names: "[aios] workforce daily digest: 2026-12-04"
SHOWN_ITEMS = 30  # the newest; a longer inbox is summed up: `aios inbox` shows the rest
RUNS_OF_THE_DAY = """
SELECT status, count(*), coalesce(sum((state->>'cost_spent')::float), 0) FROM aios_runs
WHERE mode = 'live' AND updated_at > now() - interval '1 day' GROUP BY status ORDER BY status
"""
EFFECTS_OF_THE_DAY = """
SELECT state, count(*) FROM aios_effects
WHERE created_at > now() - interval '1 day' AND action NOT LIKE 'notify:%%' GROUP BY state ORDER BY state
"""


@dataclass(frozen=True)
class DayOfWork:
    """The last day's runs (by status), their spend, and the external effects (by state)."""

    runs: dict[str, int]
    spend: float
    effects: dict[str, int]


async def day_of_work(conn: AsyncConnection[Any]) -> DayOfWork:
    cursor = await conn.execute(RUNS_OF_THE_DAY)
    run_rows = await cursor.fetchall()
    cursor = await conn.execute(EFFECTS_OF_THE_DAY)
    effect_rows = await cursor.fetchall()
    return DayOfWork(
        runs={str(status): int(count) for status, count, _ in run_rows},
        spend=round(sum(float(cost) for _, _, cost in run_rows), 4),
        effects={str(state): int(count) for state, count in effect_rows},
    )


def digest_notice(day: date, recipients: list[str], items: list[InboxItem], work: DayOfWork) -> Notice:
    """The digest as a notice: a one-line summary, the open items, the day's work."""
    waiting = f"{len(items)} item(s) wait for a person" if items else "nothing waits for a person"
    done = sum(work.runs.values())
    return Notice(
        kind="digest",
        run_id="digest",
        agent=DIGEST_AGENT,
        ref=day.isoformat(),
        recipients=recipients,
        summary=f"{waiting}; in the last day {done} run(s) moved, spending {work.spend:g}.",
        action=day.isoformat(),
        context={
            "open": _open_lines(items),
            "runs": _counts(work.runs),
            "effects": _counts(work.effects),
            "spend": f"{work.spend:g}",
        },
    )


def _open_lines(items: list[InboxItem]) -> str:
    # Newest first: a daily digest is read for what came since yesterday; `aios inbox` has all.
    newest = sorted(items, key=lambda item: item.since, reverse=True)
    lines = [f"\n- {item.title}\n  settle: {item.command}" for item in newest[:SHOWN_ITEMS]]
    if len(items) > SHOWN_ITEMS:
        lines.append(f"\n- and {len(items) - SHOWN_ITEMS} more: aios inbox")
    return "".join(lines) or "none"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"
