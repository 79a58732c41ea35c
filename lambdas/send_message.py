"""sendMessage: validate, record, enqueue; the route response is the `accepted` frame."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: 15-20 % off the cold start (assistant.coldstart).
with collection_paused():
    from aws_lambda_powertools.metrics import MetricUnit

    from assistant import dependencies as build
    from assistant.events import MessageEvent
    from assistant.lifecycle import PerContainer
    from assistant.observability import Metric, metrics
    from assistant.protocol import Accepted, SendMessage
    from assistant.routes import websocket_route
    from assistant.settings import SendMessageSettings

#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.send_message(SendMessageSettings.from_env()))


def send_message(event: MessageEvent, frame: SendMessage) -> Accepted:
    accepted = (
        dependencies()
        .intake()
        .accept(
            user_id=event.request_context.authorizer.user_id,
            connection_id=event.request_context.connection_id,
            frame=frame,
        )
    )
    metrics.add_metric(name=Metric.MESSAGES_ACCEPTED.value, unit=MetricUnit.Count, value=1)
    return accepted


handler = websocket_route(
    {"sendMessage": send_message},
    connections_api=lambda: dependencies().connections_api(),
    revocation=lambda: dependencies().revocation,
    max_message_chars=lambda: dependencies().settings.max_message_chars,
)
