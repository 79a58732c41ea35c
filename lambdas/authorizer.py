"""$connect REQUEST authorizer: the Cognito access token comes in the ``Auth`` query parameter.

Allow puts the user in the policy's context, which API Gateway hands to every later event of the connection.
The token itself is never logged.

Every page load waits for this function, so it imports only what verification needs: pyjwt with its RSA backend,
Powertools' logger and metrics, and the verifier reading its five variables itself (no pydantic settings, no
boto3: it makes no AWS call; see docs/benchmarks.md, "Cold start").
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponseWebSocket,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from assistant import auth, tracing
from assistant.auth import InvalidToken
from assistant.lifecycle import PerContainer
from assistant.observability import Metric, logger, metrics
from assistant.wiring import AUTH_QUERY_PARAMETER

#: Built at the first invocation, kept for the container's life: it caches the JWKS it fetched.
dependencies = PerContainer(lambda: auth.verifier_from_env(os.environ))


@tracing.capture_handler
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    token = (request.query_string_parameters or {}).get(AUTH_QUERY_PARAMETER, "")
    try:
        principal = dependencies().verify(token)
    except InvalidToken as denied:
        logger.info("Connection denied", extra={"reason": str(denied)})
        metrics.add_metric(name=Metric.AUTH_DENIED.value, unit=MetricUnit.Count, value=1)
        policy = APIGatewayAuthorizerResponseWebSocket.from_route_arn(request.method_arn, principal_id="anonymous")
        policy.deny_all_routes()
        return policy.asdict()
    policy = APIGatewayAuthorizerResponseWebSocket.from_route_arn(
        request.method_arn,
        principal_id=principal.user_id,
        # API Gateway repeats this context in every later event of the connection: `exp` lets each route end the
        # connection when its token does.
        context={"userId": principal.user_id, "username": principal.username, "exp": principal.expires_at},
    )
    policy.allow_route("$connect")
    metrics.add_metric(name=Metric.AUTH_ALLOWED.value, unit=MetricUnit.Count, value=1)
    return policy.asdict()
