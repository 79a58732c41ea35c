"""What every WebSocket route handler does around its one line of logic.

Parse the event (Powertools model plus the authorizer context), run the route, and turn the outcome into the
route response: the route's frame, an ``error`` frame with the protocol's code for an :class:`AssistantError`, or an
``internal`` error frame for anything unexpected. The unexpected case is logged with its traceback and counted; the
user sees only a generic message and the request id to quote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from assistant import tracing
from assistant.errors import AssistantError, ErrorCode, TokenExpired
from assistant.events import MessageEvent
from assistant.observability import WEBSOCKET_CORRELATION_PATH, Metric, logger, metrics
from assistant.protocol import ErrorFrame, ServerFrame, route_response
from assistant.push import post_then_close

RouteAction = Callable[[MessageEvent], ServerFrame | None]
LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def websocket_route(action: RouteAction, *, connections_api: Callable[[], Any]) -> LambdaHandler:
    """The route's Lambda handler; ``connections_api`` gives the function's ``@connections`` client (to close a
    connection whose token expired)."""

    @tracing.capture_handler
    @logger.inject_lambda_context(correlation_id_path=WEBSOCKET_CORRELATION_PATH)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        parsed = MessageEvent.model_validate(event)
        logger.append_keys(
            userId=parsed.request_context.authorizer.user_id,
            connectionId=parsed.request_context.connection_id,
            routeKey=parsed.request_context.route_key,
        )
        metrics.add_metric(name=Metric.ROUTE_REQUESTS.value, unit=MetricUnit.Count, value=1)
        if parsed.request_context.authorizer.expired(time.time()):
            return _end_expired_connection(parsed, connections_api())
        try:
            return route_response(action(parsed))
        except AssistantError as error:
            refused = Metric.RATE_LIMITED if error.code is ErrorCode.RATE_LIMITED else Metric.BAD_REQUESTS
            metrics.add_metric(name=refused.value, unit=MetricUnit.Count, value=1)
            logger.info("Request refused", extra={"code": error.code.value})
            return route_response(ErrorFrame.from_error(error))
        except Exception:
            logger.exception("Route failed")
            request_id = parsed.request_context.request_id
            return route_response(
                ErrorFrame(code=ErrorCode.INTERNAL, message=f"Something went wrong (request {request_id}).")
            )

    return handler


def _end_expired_connection(event: MessageEvent, connections_api: Any) -> dict[str, Any]:
    """The connection outlived its access token: say so, then close it (a route response would arrive after the
    close, so the frame is posted first). The client signs in again and reconnects."""
    metrics.add_metric(name=Metric.CONNECTIONS_EXPIRED.value, unit=MetricUnit.Count, value=1)
    logger.info("Connection ended: its access token expired")
    expired = TokenExpired("Your sign-in has expired. Sign in again to continue.")
    post_then_close(connections_api, event.request_context.connection_id, ErrorFrame.from_error(expired))
    return route_response(None)
