"""What every API Gateway WebSocket event carries, as typed models: the fields the handlers read, validated.

``requestContext.authorizer`` carries the user the ``$connect`` authorizer verified. API Gateway repeats that context
on every later event of the connection, so the handlers trust it instead of re-verifying the token's signature; the
token it carries is only ever sent to Cognito, to learn whether it was revoked since (``assistant.revocation``).

Each route's own event model lives with the code that parses it, so a function builds only the models it reads:
``MessageEvent`` in :mod:`assistant.routes`, ``ConnectEvent`` and ``DisconnectEvent`` in their handler modules.
Powertools' parser models were the first version of these, but importing one imports all of them (the parser
package builds every event model it ships, with ``IPvAnyNetwork`` and ``datetime`` fields we never read). Fields the
handlers do not read are not modelled (pydantic ignores them).
"""

from __future__ import annotations

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


class RequestContext(BaseModel):
    """What every event's ``requestContext`` carries; each route's event adds its own route key and type."""

    authorizer: AuthorizerContext
    connection_id: str = Field(alias="connectionId", min_length=1)
    request_id: str = Field(alias="requestId")
    stage: str = ""
