"""The budget day (the daily caps' unit) and which cap refuses a reservation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from aios.ledger.budget import _exceeded_cap
from aios.models.run import BudgetRequest, budget_day, next_budget_day


def request(**fields: object) -> BudgetRequest:
    base: dict[str, object] = {
        "agent": "a",
        "run_id": "r",
        "reservation_key": "r/turn-1",
        "tokens": 40,
        "cost": 0.0,
        "tokens_per_run": 1000,
        "cost_per_run": 1.0,
        "tokens_per_day": 60,
        "cost_per_day": 1.0,
    }
    return BudgetRequest.model_validate(base | fields)


def test_the_budget_day_is_the_utc_calendar_day() -> None:
    late_in_new_york = datetime(2026, 3, 1, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert budget_day(late_in_new_york) == date(2026, 3, 2)
    assert next_budget_day(late_in_new_york) == datetime(2026, 3, 3, tzinfo=UTC)


def test_the_next_budget_day_is_always_ahead_and_within_a_day() -> None:
    for moment in (
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        datetime(2028, 2, 28, 12, 0, tzinfo=UTC),
    ):
        turns = next_budget_day(moment)
        assert timedelta(0) < turns - moment <= timedelta(days=1)
        assert (turns.hour, turns.minute, turns.second, turns.microsecond) == (0, 0, 0, 0)


def test_a_refusal_says_which_kind_of_cap() -> None:
    assert _exceeded_cap(request(), 0, 0.0, 40, 0.0)[0] == "day"
    assert _exceeded_cap(request(tokens_per_run=50), 40, 0.0, 40, 0.0)[0] == "run"  # run first
    assert _exceeded_cap(request(), 0, 0.0, 0, 0.0) == ("", "")


def test_the_day_override_lifts_only_the_daily_caps() -> None:
    assert _exceeded_cap(request(override_day=True), 0, 0.0, 1_000, 5.0) == ("", "")
    kind, reason = _exceeded_cap(request(override_day=True, tokens_per_run=50), 40, 0.0, 1_000, 5.0)
    assert (kind, "tokens per run" in reason) == ("run", True)
