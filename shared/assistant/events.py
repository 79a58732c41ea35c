"""API Gateway WebSocket events as typed models: the fields the handlers read, validated.

``requestContext.authorizer`` carries the user the ``$connect`` authorizer verified. API Gateway repeats that context
on every later event of the connection, so the handlers trust it instead of re-verifying the token's signature; the
token it carries is only ever sent to Cognito, to learn whether it was revoked since (``assistant.revocation``).

Powertools' parser models were the first version of these, but importing one imports all of them (the parser
package builds every event model it ships, with ``IPvAnyNetwork`` and ``datetime`` fields we never read): a third of
a route handler's cold start. Fields the handlers do not read are not modelled (pydantic ignores them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from assistant.wiring import TOKEN_LEEWAY_SECONDS


class AuthorizerContext(BaseModel):
    """What ``lambdas/authorizer.py`` puts in its policy's ``context``."""

    model_config = ConfigDict(populate_by_name=True)

    user_id: str = Field(alias="userId", min_length=1)
    username: str = ""
    #: The access token's expiry (epoch seconds). API Gateway hands context values back as strings.
    expires_at: int | None = Field(default=None, alias="exp")
    #: The access token the connection was opened with (a secret: hidden from ``repr`` and validation errors).
    #: ``None`` only for a connection opened before the authorizer passed it on.
    access_token: SecretStr | None = Field(default=None, alias="accessToken")

    def expired(self, now: float) -> bool:
        """Whether the connection outlived its token (with the verifier's clock-skew leeway)."""
        return self.expires_at is not None and now > self.expires_at + TOKEN_LEEWAY_SECONDS


class _RequestContext(BaseModel):
    authorizer: AuthorizerContext
    connection_id: str = Field(alias="connectionId", min_length=1)
    request_id: str = Field(alias="requestId")
    stage: str = ""


class ConnectRequestContext(_RequestContext):
    route_key: Literal["$connect"] = Field(alias="routeKey")
    event_type: Literal["CONNECT"] = Field(alias="eventType")


class DisconnectRequestContext(_RequestContext):
    route_key: Literal["$disconnect"] = Field(alias="routeKey")
    event_type: Literal["DISCONNECT"] = Field(alias="eventType")
    disconnect_status_code: int | None = Field(default=None, alias="disconnectStatusCode")
    disconnect_reason: str = Field(default="", alias="disconnectReason")


class MessageRequestContext(_RequestContext):
    route_key: str = Field(alias="routeKey")
    event_type: Literal["MESSAGE"] = Field(alias="eventType")


class ConnectEvent(BaseModel):
    request_context: ConnectRequestContext = Field(alias="requestContext")


class DisconnectEvent(BaseModel):
    request_context: DisconnectRequestContext = Field(alias="requestContext")


class MessageEvent(BaseModel):
    request_context: MessageRequestContext = Field(alias="requestContext")
    body: str | None = Field(None, alias="body")
