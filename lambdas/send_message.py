"""sendMessage: validate, record, enqueue; the route response is the `accepted` frame."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from assistant import runtime
from assistant.events import MessageEvent
from assistant.intake import IntakeLimits, MessageIntake
from assistant.observability import Metric, metrics
from assistant.protocol import Accepted, SendMessage, parse_client_frame
from assistant.routes import websocket_route


def send_message(event: MessageEvent) -> Accepted:
    settings = runtime.settings()
    frame = parse_client_frame(event.body, max_message_chars=settings.max_message_chars)
    if not isinstance(frame, SendMessage):
        raise TypeError(f"sendMessage route received a {type(frame).__name__} frame")
    intake = MessageIntake(
        conversations=runtime.conversations(),
        messages=runtime.messages(),
        usage=runtime.usage(),
        rate_limiter=runtime.rate_limiter(),
        limits=IntakeLimits(
            quotas=settings.quotas(),
            rate_limit=settings.rate_limit_send_message,
            max_waiting=settings.max_waiting_messages,
        ),
        sqs_client=runtime.sqs(),
        queue_url=settings.require("queue_url"),
    )
    accepted = intake.accept(
        user_id=event.request_context.authorizer.user_id,
        connection_id=event.request_context.connection_id,
        frame=frame,
    )
    metrics.add_metric(name=Metric.MESSAGES_ACCEPTED.value, unit=MetricUnit.Count, value=1)
    return accepted


handler = websocket_route(send_message)
