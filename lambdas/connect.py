"""$connect (after the authorizer allowed it): remember the connection under its user, one record per tab."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from assistant import runtime
from assistant.events import ConnectEvent
from assistant.observability import WEBSOCKET_CORRELATION_PATH, Metric, logger, metrics


@logger.inject_lambda_context(correlation_id_path=WEBSOCKET_CORRELATION_PATH)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = parse(event=event, model=ConnectEvent)
    user_id = parsed.request_context.authorizer.user_id
    runtime.connections().add(user_id, parsed.request_context.connection_id, now=time.time())
    metrics.add_metric(name=Metric.CONNECTIONS_OPENED.value, unit=MetricUnit.Count, value=1)
    logger.info("Connected", extra={"userId": user_id})
    return {"statusCode": 200}
