"""How the table writes times: ISO-8601 UTC with milliseconds and a ``Z``, so strings sort as times do."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_day(seconds: float) -> str:
    """The UTC date, ``YYYY-MM-DD``: daily quotas reset at midnight UTC."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d")
