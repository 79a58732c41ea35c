"""$disconnect: forget the connection. Other tabs of the same user keep theirs."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: no collection passes over what the container keeps for life
# (assistant.coldstart).
with collection_paused():
    from typing import Any, Literal

    from aws_lambda_powertools.metrics import MetricUnit
    from pydantic import BaseModel, Field

    from assistant.connection_route import connection_route
    from assistant.events import RequestContext
    from assistant.function_dependencies import connection as build
    from assistant.lifecycle import PerContainer
    from assistant.observability import Metric, logger, metrics
    from assistant.settings import DisconnectSettings


class DisconnectRequestContext(RequestContext):
    route_key: Literal["$disconnect"] = Field(alias="routeKey")
    event_type: Literal["DISCONNECT"] = Field(alias="eventType")
    disconnect_status_code: int | None = Field(default=None, alias="disconnectStatusCode")
    disconnect_reason: str = Field(default="", alias="disconnectReason")


class DisconnectEvent(BaseModel):
    request_context: DisconnectRequestContext = Field(alias="requestContext")


#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.connection(DisconnectSettings.from_env()))


def disconnect(parsed: DisconnectEvent) -> dict[str, Any]:
    context_ = parsed.request_context
    dependencies().connections.remove(context_.authorizer.user_id, context_.connection_id)
    metrics.add_metric(name=Metric.CONNECTIONS_CLOSED.value, unit=MetricUnit.Count, value=1)
    logger.info("Disconnected", extra={"status": context_.disconnect_status_code, "reason": context_.disconnect_reason})
    return {"statusCode": 200}


handler = connection_route(DisconnectEvent, disconnect)
