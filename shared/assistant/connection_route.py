"""The handler shape of ``$connect`` and ``$disconnect``: the event parsed into its model, the function's answer
returned as the status API Gateway reads.

Apart from :mod:`assistant.routes` because these two never see a frame: importing the protocol's models would only
lengthen the cold start of ``$connect``, which is on every page load's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from assistant import tracing
from assistant.observability import WEBSOCKET_CORRELATION_PATH, logger, metrics

#: A Lambda handler of the WebSocket API (every route's, here and in :mod:`assistant.routes`).
LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
EventT = TypeVar("EventT", bound=BaseModel)


def connection_route(event_model: type[EventT], action: Callable[[EventT], dict[str, Any]]) -> LambdaHandler:
    """The Lambda handler of ``$connect`` or ``$disconnect``: the event parsed into ``event_model``, then
    ``action``'s answer (its ``statusCode`` is what API Gateway reads; a non-2xx one refuses a connection)."""

    @tracing.capture_handler
    @logger.inject_lambda_context(correlation_id_path=WEBSOCKET_CORRELATION_PATH)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return action(event_model.model_validate(event))

    return handler
