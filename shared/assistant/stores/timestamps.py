"""How the table writes times: ISO-8601 UTC with milliseconds and a ``Z``, so strings sort as times do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def iso_utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_day(seconds: float) -> str:
    """The UTC date, ``YYYY-MM-DD``: daily quotas reset at midnight UTC."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d")


def next_utc_midnight(seconds: float) -> str:
    """When the day of ``seconds`` ends (UTC), as :func:`iso_utc` writes it: when daily quotas reset."""
    day = datetime.fromtimestamp(seconds, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return iso_utc((day + timedelta(days=1)).timestamp())
