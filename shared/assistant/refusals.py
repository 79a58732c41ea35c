"""Closing a connection that keeps hitting its limits.

A refused frame costs us little (one read of the user's bucket, no write), but it still spends the stage's shared
API Gateway pool, which every user draws on. A client that backs off as ``retryAfterMs`` says is refused a few times
at most; one that keeps sending is closed, so it has to reconnect (and ``$connect`` has a bucket of its own).

Counted per connection in the container's memory, not in the table: counting in DynamoDB would turn every refused
frame into a write, the very cost the refusal is meant to avoid. The price is that a flood spread over several warm
containers is closed after up to :data:`REFUSALS_BEFORE_CLOSE` refusals in each of them, a bounded number either way.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

__all__ = ["REFUSALS_BEFORE_CLOSE", "REFUSAL_WINDOW_SECONDS", "RefusalCounter"]

#: Refused frames on one connection within :data:`REFUSAL_WINDOW_SECONDS` that close it. Well above what a client
#: that honours ``retryAfterMs`` ever reaches (one refusal per kind of frame, then a wait), and above a burst of
#: every action at once (tests/e2e/test_flood.py refuses 35 frames of one connection in a few seconds).
REFUSALS_BEFORE_CLOSE: Final = 60
REFUSAL_WINDOW_SECONDS: Final = 60.0
#: Connections remembered per container; the oldest is forgotten first (a flooder is always among the newest).
_REMEMBERED: Final = 4096


@dataclass
class _Window:
    started_at: float
    refusals: int


class RefusalCounter:
    """Refusals per connection in fixed windows; :meth:`refuse` says when a connection has had enough."""

    def __init__(self, *, limit: int = REFUSALS_BEFORE_CLOSE, window_seconds: float = REFUSAL_WINDOW_SECONDS) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a refusal limit needs limit >= 1 and a positive window")
        self._limit = limit
        self._window_seconds = window_seconds
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def refuse(self, connection_id: str, now: float) -> bool:
        """Count one refused frame; ``True`` once the connection reached the limit within one window."""
        window = self._windows.pop(connection_id, None)
        if window is None or now - window.started_at >= self._window_seconds:
            window = _Window(started_at=now, refusals=0)
        window.refusals += 1
        self._windows[connection_id] = window
        while len(self._windows) > _REMEMBERED:
            self._windows.popitem(last=False)
        return window.refusals >= self._limit

    def forget(self, connection_id: str) -> None:
        self._windows.pop(connection_id, None)
