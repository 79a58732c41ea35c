"""API Gateway WebSocket events as typed models.

Powertools' parser models describe the events but drop ``requestContext.authorizer``, which carries the user the
``$connect`` authorizer verified. API Gateway repeats that context on every later event of the connection, so the
handlers trust it instead of re-verifying a token (the token is not even sent again).
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from aws_lambda_powertools.utilities.parser.models.apigw_websocket import (
    APIGatewayWebSocketConnectEventRequestContext,
    APIGatewayWebSocketDisconnectEventRequestContext,
    APIGatewayWebSocketMessageEventRequestContext,
)
from pydantic import BaseModel, ConfigDict, Field

from assistant.wiring import TOKEN_LEEWAY_SECONDS


class AuthorizerContext(BaseModel):
    """What ``lambdas/authorizer.py`` puts in its policy's ``context``."""

    model_config = ConfigDict(populate_by_name=True)

    user_id: str = Field(alias="userId", min_length=1)
    username: str = ""
    #: The access token's expiry (epoch seconds). API Gateway hands context values back as strings.
    expires_at: int | None = Field(default=None, alias="exp")

    def expired(self, now: float) -> bool:
        """Whether the connection outlived its token (with the verifier's clock-skew leeway)."""
        return self.expires_at is not None and now > self.expires_at + TOKEN_LEEWAY_SECONDS


class _WithAuthorizer(BaseModel):
    authorizer: AuthorizerContext


class ConnectRequestContext(APIGatewayWebSocketConnectEventRequestContext, _WithAuthorizer):
    pass


class DisconnectRequestContext(APIGatewayWebSocketDisconnectEventRequestContext, _WithAuthorizer):
    pass


class MessageRequestContext(APIGatewayWebSocketMessageEventRequestContext, _WithAuthorizer):
    pass


class ConnectEvent(APIGatewayWebSocketConnectEventModel):
    request_context: ConnectRequestContext = Field(alias="requestContext")


class DisconnectEvent(APIGatewayWebSocketDisconnectEventModel):
    request_context: DisconnectRequestContext = Field(alias="requestContext")


class MessageEvent(APIGatewayWebSocketMessageEventModel):
    request_context: MessageRequestContext = Field(alias="requestContext")
    body: str | None = Field(None, alias="body")
