"""Logger and metrics shared by every handler (Powertools).

The correlation id of a WebSocket event is API Gateway's request id; of a queued message, the message id, so one
search finds a message from ``sendMessage`` through the worker. Message text is never logged.
"""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics

#: API Gateway's id of the WebSocket request (Powertools ships no constant for WebSocket events).
WEBSOCKET_CORRELATION_PATH = "requestContext.requestId"

logger = Logger()
metrics = Metrics()


class Metric(StrEnum):
    MESSAGES_ACCEPTED = "MessagesAccepted"
    REPLIES_COMPLETED = "RepliesCompleted"
    REPLIES_CANCELLED = "RepliesCancelled"
    REPLIES_FAILED = "RepliesFailed"
    DUPLICATE_DELIVERIES = "DuplicateDeliveries"
    OUTPUT_TOKENS = "OutputTokens"
    INPUT_TOKENS = "InputTokens"
    TIME_TO_FIRST_TEXT = "TimeToFirstText"
    FRAMES_POSTED = "FramesPosted"
    BAD_REQUESTS = "BadRequests"
    AUTH_DENIED = "AuthDenied"
    AUTH_ALLOWED = "AuthAllowed"
    CONNECTIONS_OPENED = "ConnectionsOpened"
    CONNECTIONS_CLOSED = "ConnectionsClosed"
    ROUTE_REQUESTS = "RouteRequests"
    RECORDS_RECEIVED = "RecordsReceived"
