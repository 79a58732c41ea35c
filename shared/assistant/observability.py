"""Logger and metrics shared by every handler (Powertools).

The correlation id of a WebSocket event is API Gateway's request id; of a queued message, the message id, so one
search finds a message from ``sendMessage`` through the worker. Message text is never logged.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

from assistant.resources import Metric

__all__ = ["WEBSOCKET_CORRELATION_PATH", "Metric", "logger", "metrics"]

#: API Gateway's id of the WebSocket request (Powertools ships no constant for WebSocket events).
WEBSOCKET_CORRELATION_PATH = "requestContext.requestId"

logger = Logger()
metrics = Metrics()
