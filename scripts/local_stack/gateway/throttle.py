"""API Gateway's stage throttles, locally: token buckets shared by every user of the API.

What AWS documents (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-protect.html):
throttling uses "the token bucket algorithm, where a token counts for a request"; a stage and individual routes may
have target limits ("route-level throttling ... for specific stages or for individual routes"); requests over the
rate and burst get "429 Too Many Requests"; throttles are "targets rather than guaranteed request ceilings".

What it does not document, and what this gateway does instead:
- Whether the stage's default limit is one pool for all routes or a pool per route. The gateway keeps one pool for
  the stage and one for each route that has settings of its own: the stricter reading, so a flood seen here is at
  least as bad as in AWS.
- The exact answer to a throttled message on an open connection. The connection stays open (the 429 is per request)
  and the client gets an error frame shaped like API Gateway's other gateway errors, ``{"message": "Too Many
  Requests", "connectionId": ..., "requestId": ...}``; a throttled ``$connect`` is an HTTP 429 handshake refusal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from assistant.stage_throttles import StageThrottles, Throttle

#: The message of the frame (and of the $connect refusal's body) for a throttled request.
TOO_MANY_REQUESTS = "Too Many Requests"


class TokenBucket:
    """``burst_limit`` tokens at most, refilled at ``rate_limit`` a second; a request takes one or is refused."""

    def __init__(self, throttle: Throttle, clock: Callable[[], float] = time.monotonic) -> None:
        self._throttle = throttle
        self._clock = clock
        self._tokens = float(throttle.burst_limit)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(
            float(self._throttle.burst_limit), self._tokens + (now - self._at) * self._throttle.rate_limit
        )
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class StageThrottle:
    """The stage's pool and each route's own; one per gateway, so every connection and user draws from them."""

    def __init__(self, throttles: StageThrottles, clock: Callable[[], float] = time.monotonic) -> None:
        self._stage = TokenBucket(throttles.stage, clock)
        self._routes = {key: TokenBucket(throttle, clock) for key, throttle in throttles.routes}

    def allow(self, route_key: str) -> bool:
        """Whether a request to ``route_key`` may go on; a route with settings of its own never draws on the
        stage's pool (its settings replace the stage's for it)."""
        return self._routes.get(route_key, self._stage).take()
