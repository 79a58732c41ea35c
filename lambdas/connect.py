"""$connect (after the authorizer allowed it): remember the connection under its user, one record per tab."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: no collection passes over what the container keeps for life
# (assistant.coldstart).
with collection_paused():
    import time
    from typing import Any, Literal

    from aws_lambda_powertools.metrics import MetricUnit
    from pydantic import BaseModel, Field

    from assistant.connection_route import connection_route
    from assistant.errors import RateLimited
    from assistant.events import RequestContext
    from assistant.function_dependencies import connection as build
    from assistant.lifecycle import PerContainer
    from assistant.observability import Metric, logger, metrics
    from assistant.settings import ConnectSettings


class ConnectRequestContext(RequestContext):
    route_key: Literal["$connect"] = Field(alias="routeKey")
    event_type: Literal["CONNECT"] = Field(alias="eventType")


class ConnectEvent(BaseModel):
    request_context: ConnectRequestContext = Field(alias="requestContext")


#: A non-2xx answer to `$connect` makes API Gateway refuse the connection (the client sees this status).
TOO_MANY_CONNECTIONS = 429

#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.connection(ConnectSettings.from_env()))


def connect(parsed: ConnectEvent) -> dict[str, Any]:
    authorizer = parsed.request_context.authorizer
    deps = dependencies()
    connections = deps.connections
    try:
        # Before anything is written: a script reconnecting in a loop costs one read and one write per attempt.
        deps.rate_limiter.take(authorizer.user_id, "$connect", deps.settings.rate_limit_connect)
    except RateLimited:
        logger.info("Connection refused: connecting too often", extra={"userId": authorizer.user_id})
        metrics.add_metric(name=Metric.RATE_LIMITED.value, unit=MetricUnit.Count, value=1)
        return {"statusCode": TOO_MANY_CONNECTIONS, "body": "Too many connection attempts; try again shortly."}
    # Newest refused: the tabs a user already has keep working. Counted and recorded in one conditional write, so
    # parallel connects cannot all find room (ConnectionStore).
    opened = connections.add(
        authorizer.user_id,
        parsed.request_context.connection_id,
        now=time.time(),
        token_expires_at=authorizer.expires_at,
        cap=deps.settings.max_connections_per_user,
    )
    if not opened:
        logger.info("Connection refused: too many open connections", extra={"userId": authorizer.user_id})
        metrics.add_metric(name=Metric.CONNECTIONS_REFUSED.value, unit=MetricUnit.Count, value=1)
        return {"statusCode": TOO_MANY_CONNECTIONS, "body": "Too many open connections for this user."}
    metrics.add_metric(name=Metric.CONNECTIONS_OPENED.value, unit=MetricUnit.Count, value=1)
    logger.info("Connected", extra={"userId": authorizer.user_id})
    return {"statusCode": 200}


handler = connection_route(ConnectEvent, connect)
