"""The value types of a stage's limits: a rate limit, the daily quotas and the retention period.

They are configuration, not data: settings (``assistant.environment``, ``assistant.settings``) and the CDK app's
stage (``infra.stage``) build them from plain values, and the stores (``assistant.stores``) apply them. Nothing here
imports boto3 or pydantic, so reading a stage at synth time, or the authorizer's environment at cold start, costs
neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from assistant.environment import MAX_RETENTION_DAYS as MAX_RETENTION_DAYS

if TYPE_CHECKING:
    from assistant.stores.usage import DailyUsage

_LIMIT_FORMAT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_DAY_S: Final = 24 * 60 * 60


@dataclass(frozen=True)
class RateLimit:
    """``burst`` requests at once, then ``per_minute`` on average (a token bucket: ``assistant.stores.rate_limits``)."""

    burst: int
    per_minute: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_minute <= 0:
            raise ValueError(f"a rate limit needs burst >= 1 and per_minute > 0, got {self}")

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"<burst>/<per minute>"``, e.g. ``"10/30"``: the form stage settings and environment variables use."""
        match = _LIMIT_FORMAT.match(text)
        if not match:
            raise ValueError(f"rate limit {text!r} must look like '<burst>/<per minute>', e.g. '10/30'")
        return cls(burst=int(match.group(1)), per_minute=float(match.group(2)))

    def __str__(self) -> str:
        return f"{self.burst}/{self.per_minute:g}"


@dataclass(frozen=True)
class Quotas:
    """A user's daily allowance (UTC days), from the stage's settings."""

    messages: int
    input_tokens: int
    output_tokens: int

    def exhausted_by(self, usage: DailyUsage) -> str | None:
        """What is used up today, or ``None``: the public reason a new message is refused."""
        if usage.messages >= self.messages:
            return "You have reached today's message limit. It resets at midnight UTC."
        if usage.output_tokens >= self.output_tokens or usage.input_tokens >= self.input_tokens:
            return "You have used today's token allowance. It resets at midnight UTC."
        return None


@dataclass(frozen=True)
class Retention:
    """How long conversations are kept after their last use. ``days == 0``: off (conversations and turns carry no
    TTL; message records keep their own short one)."""

    days: int = 0

    @property
    def enabled(self) -> bool:
        return self.days > 0

    @property
    def seconds(self) -> int | None:
        return self.days * _DAY_S if self.days > 0 else None

    def expires_at(self, now: float) -> int | None:
        """The TTL (epoch seconds) of an item written or used at ``now``; ``None`` when retention is off."""
        return int(now) + self.days * _DAY_S if self.days > 0 else None


#: Retention off: the default of every store.
NO_RETENTION: Final = Retention()
