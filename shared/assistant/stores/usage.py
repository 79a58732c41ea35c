"""Each user's usage per UTC day: messages, input and output tokens. Quotas are checked against these counters.

The counters are written by the message store, inside the transactions that claim and finish a message (so a
redelivery never counts twice); this module only reads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Quotas is configuration (assistant.limits); re-exported for the stores and services that apply it with usage.
from assistant.limits import Quotas as Quotas
from assistant.stores.keys import key, usage_sk
from assistant.stores.timestamps import utc_day


@dataclass(frozen=True)
class DailyUsage:
    day: str
    messages: int
    input_tokens: int
    output_tokens: int

    @classmethod
    def from_item(cls, day: str, item: Mapping[str, Any] | None) -> DailyUsage:
        """``item``: the day's counters as stored (``None``: nothing counted yet that day)."""
        item = item or {}
        return cls(
            day=day,
            messages=int(item.get("messages", 0)),
            input_tokens=int(item.get("inputTokens", 0)),
            output_tokens=int(item.get("outputTokens", 0)),
        )


class UsageStore:
    def __init__(self, table: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def today(self, user_id: str, *, now: float | None = None) -> DailyUsage:
        """Today's (UTC) usage of a user, read consistently (quotas are checked against it)."""
        when = self._clock() if now is None else now
        item = self._table.get_item(Key=self.day_key(user_id, now=when), ConsistentRead=True).get("Item")
        return DailyUsage.from_item(utc_day(when), item)

    @staticmethod
    def day_key(user_id: str, *, now: float) -> dict[str, str]:
        """Where the user's usage of the UTC day of ``now`` is counted (to read it with other items)."""
        return key(user_id, usage_sk(utc_day(now)))
