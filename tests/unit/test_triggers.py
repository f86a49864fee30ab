"""A manifest's triggers are checked when it loads, each error naming what is wrong."""

from __future__ import annotations

import pytest

from aios.models.triggers import ScheduleTrigger, TriggersSpec


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "x"}, "needs exactly one of `cron` and `every`"),
        ({"name": "x", "cron": "0 9 * * 1-5", "every": "PT1H"}, "needs exactly one of `cron` and `every`"),
        ({"name": "x", "cron": "9am"}, "is not a cron expression"),
        ({"name": "x", "every": "PT1H", "timezone": "Mars/Olympus"}, "is not an IANA time zone"),
        ({"name": "Nightly", "every": "PT1H"}, "should match pattern"),
        ({"name": "x", "every": "PT1H", "overlap": "sometimes"}, "'skip', 'buffer_one' or 'allow'"),
    ],
)
def test_a_bad_schedule_is_refused_with_its_reason(fields: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError, match=None) as refused:
        ScheduleTrigger.model_validate(fields)
    assert expected in str(refused.value)


def test_schedule_names_are_unique_within_an_agent() -> None:
    twice = {"name": "x", "every": "PT1H"}
    with pytest.raises(ValueError, match="must be unique"):
        TriggersSpec.model_validate({"schedule": [twice, twice]})


def test_a_cron_schedule_in_a_time_zone_is_accepted() -> None:
    trigger = ScheduleTrigger.model_validate(
        {"name": "mornings", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}
    )
    assert (trigger.cron, trigger.every, trigger.overlap) == ("0 9 * * 1-5", None, "skip")
