"""API Gateway's own throttles for the WebSocket stage: one declaration read by the stack (``infra.websocket``) and
by the local gateway (``scripts.local_stack.gateway.throttle``), so a flood looks the same in ``make dev`` as in AWS.

These pools are shared by every user of the API (AWS WAF cannot be attached to a WebSocket API); per-user fairness
is ``assistant.stores.rate_limits``. ``$connect`` and ``sendMessage`` get pools of their own (route settings), so a
flood of cheap frames (ping, getUsage, ...) spends the stage's pool and nobody's ability to connect or to send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Throttle:
    """One token bucket: ``rate_limit`` requests per second steady, ``burst_limit`` at most at once."""

    rate_limit: float
    burst_limit: int

    def __post_init__(self) -> None:
        if self.rate_limit <= 0 or self.burst_limit <= 0:
            raise ValueError(f"a throttle needs a positive rate and burst, got {self}")


@dataclass(frozen=True)
class StageThrottles:
    """The stage's default throttle and the routes that override it (``RouteSettings`` in CloudFormation)."""

    stage: Throttle
    routes: tuple[tuple[str, Throttle], ...] = ()

    def for_route(self, route_key: str) -> Throttle | None:
        """The route's own throttle; ``None``: the route draws from the stage's."""
        return dict(self.routes).get(route_key)


#: Routes with pools of their own: connecting and sending must survive a flood of everything else.
OWN_POOL_ROUTES: Final = ("$connect", "sendMessage")


def stage_throttles(rate_limit: float, burst_limit: int) -> StageThrottles:
    """The stage's pool and one of the same size for each of ``OWN_POOL_ROUTES``."""
    throttle = Throttle(rate_limit, burst_limit)
    return StageThrottles(stage=throttle, routes=tuple((route, throttle) for route in OWN_POOL_ROUTES))


#: Any stage but ``prod`` (and the local stack): 30 requests/s, burst 60, per pool. The pool is shared by every user,
#: so its burst stays at least twice the largest per-user bucket's (30: ``ping``, ``cancel``): one user spending their
#: whole bucket at once leaves the pool to the others. (At 10/s, burst 20, one user's own burst of pings emptied it.)
DEV_THROTTLES: Final = stage_throttles(30.0, 60)
#: ``prod``: 50 requests/s, burst 100, per pool (docs/scaling.md, "Our own route throttle").
PROD_THROTTLES: Final = stage_throttles(50.0, 100)
