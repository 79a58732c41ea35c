"""The ``$connect`` authorizer's answer: an IAM policy allowing the connection for a valid Cognito access token.

Allow puts the user in the policy's context, which API Gateway hands to every later event of the connection, and
with it the access token: the only way a route can ask Cognito, at a later frame, whether the token was revoked
since (``assistant.revocation``; Cognito has no check by user or token id). The context lives in API Gateway for
the connection's life and reaches only this stack's functions; nothing stores it, the access log names only
``principalId`` (``infra.websocket.ACCESS_LOG_FORMAT``), and the token itself is never logged.

Every page load waits for this, so it imports only what verification needs: pyjwt with its RSA backend,
Powertools' logger and metrics, and the verifier reading its variables itself (no pydantic settings, no boto3: its
one AWS call, Cognito's unsigned ``GetUser``, goes over urllib; see docs/benchmarks.md, "Cold start").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponseWebSocket,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from assistant import tracing
from assistant.observability import Metric, logger, metrics
from assistant.resources import AUTH_QUERY_PARAMETER
from assistant.token_verifier import InvalidToken, TokenVerifier

AuthorizerHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def connect_authorizer(verifier: Callable[[], TokenVerifier]) -> AuthorizerHandler:
    """The authorizer's Lambda handler, checking the ``Auth`` query parameter with ``verifier()``."""

    @tracing.capture_handler
    @logger.inject_lambda_context
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        request = APIGatewayAuthorizerRequestEvent(event)
        token = (request.query_string_parameters or {}).get(AUTH_QUERY_PARAMETER, "")
        try:
            principal = verifier().verify(token)
        except InvalidToken as denied:
            logger.info("Connection denied", extra={"reason": str(denied)})
            metrics.add_metric(name=Metric.AUTH_DENIED.value, unit=MetricUnit.Count, value=1)
            policy = APIGatewayAuthorizerResponseWebSocket.from_route_arn(request.method_arn, principal_id="anonymous")
            policy.deny_all_routes()
            return policy.asdict()
        policy = APIGatewayAuthorizerResponseWebSocket.from_route_arn(
            request.method_arn,
            principal_id=principal.user_id,
            # API Gateway repeats this context in every later event of the connection: `exp` lets each route end
            # the connection when its token does, `accessToken` lets it end the connection when Cognito revokes it.
            context={
                "userId": principal.user_id,
                "username": principal.username,
                "exp": principal.expires_at,
                "accessToken": token,
            },
        )
        policy.allow_route("$connect")
        metrics.add_metric(name=Metric.AUTH_ALLOWED.value, unit=MetricUnit.Count, value=1)
        return policy.asdict()

    return handler
