"""`--since`: a span back from now (`7d`) or a date or time (`2026-12-01`, `2026-12-01T08:00Z`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aios.errors import ReportWindowInvalid

DEFAULT_SPAN = timedelta(days=7)
SPAN = re.compile(r"^(\d{1,6})([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
ACCEPTED = "a span back from now (30m, 12h, 7d, 2w), a date (2026-12-01) or a time (2026-12-01T08:00Z)"


def parse_since(text: str, *, now: datetime) -> datetime:
    """The instant `text` names; a date is its midnight and a time without an offset is UTC."""
    cleaned = text.strip().lower()
    span = SPAN.fullmatch(cleaned)
    if span is not None:
        return now - timedelta(**{UNITS[span.group(2)]: int(span.group(1))})
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportWindowInvalid(f"--since {text!r} is not a time: use {ACCEPTED}") from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
