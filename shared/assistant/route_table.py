"""The WebSocket API's routes: ``$connect``, ``$disconnect``, ``$default`` and one per action of the table of actions
(``assistant.action_table.ACTION_TABLE``), each to the function the table names.

The CDK stack (``infra.websocket``) and the local gateway (``scripts.local_stack.gateway``) both build their routes
from :data:`ROUTES`. Not in ``assistant.function_specs``: the table is keyed by the frames' pydantic models, which the
authorizer (it reads the function specs) keeps off its cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from assistant.action_table import ACTION_NAMES, ACTION_TABLE
from assistant.function_specs import CONNECT, DEFAULT, DISCONNECT, FUNCTIONS, FunctionSpec

#: API Gateway selects the route from this expression.
ROUTE_SELECTION_EXPRESSION: Final = "$request.body.action"


@dataclass(frozen=True)
class RouteSpec:
    """A WebSocket route. ``returns_response`` routes answer the sender through a ``$default`` route response."""

    route_key: str
    function: FunctionSpec
    returns_response: bool = True


_FUNCTIONS_BY_NAME: Final = {function.name: function for function in FUNCTIONS}

ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec("$connect", CONNECT, returns_response=False),
    RouteSpec("$disconnect", DISCONNECT, returns_response=False),
    RouteSpec("$default", DEFAULT),
    *(RouteSpec(ACTION_NAMES[frame], _FUNCTIONS_BY_NAME[route.function]) for frame, route in ACTION_TABLE.items()),
)
