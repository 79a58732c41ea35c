"""Signing in: the :class:`TokenSource` the client asks for access tokens, and Cognito's SRP sign-in (USER_SRP_AUTH).

SRP proves the password without sending it: Cognito's app client allows no USER_PASSWORD_AUTH. The SRP math is
pycognito's (a maintained implementation of Cognito's protocol); the calls, their errors and the tokens are ours.
The client needs no AWS credentials: ``InitiateAuth`` and ``RespondToAuthChallenge`` are public APIs, called unsigned.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

# --- Signing in -------------------------------------------------------------------------------------------------


class AuthenticationFailed(Exception):
    """The credentials are wrong or Cognito wants something this client cannot do; retrying will not help."""


class TokenSource(Protocol):
    """Where the client gets a Cognito access token. Blocking; the client calls it in a thread."""

    def access_token(self) -> str: ...

    def invalidate(self) -> None:
        """The server refused the last token: the next :meth:`access_token` must not return it."""


def srp_sign_in(cognito: Any, *, user_pool_id: str, client_id: str, username: str, password: str) -> dict[str, Any]:
    """Cognito's answer to a USER_SRP_AUTH sign-in: ``AuthenticationResult``, or the challenge that comes after the
    password (``NEW_PASSWORD_REQUIRED``, MFA...). ``cognito`` is a boto3 ``cognito-idp`` client; its ClientErrors
    (``NotAuthorizedException`` for a wrong password) propagate."""
    from pycognito.aws_srp import AWSSRP

    srp = AWSSRP(username=username, password=password, pool_id=user_pool_id, client_id=client_id, client=cognito)
    parameters = srp.get_auth_params()
    challenge: dict[str, Any] = cognito.initiate_auth(
        AuthFlow="USER_SRP_AUTH", ClientId=client_id, AuthParameters=parameters
    )
    if challenge.get("ChallengeName") != "PASSWORD_VERIFIER":
        return challenge
    session = {"Session": challenge["Session"]} if challenge.get("Session") else {}
    answer: dict[str, Any] = cognito.respond_to_auth_challenge(
        ClientId=client_id,
        ChallengeName="PASSWORD_VERIFIER",
        ChallengeResponses=srp.process_challenge(challenge["ChallengeParameters"], parameters),
        **session,
    )
    return answer


class CognitoSignIn:
    """SRP sign-in against a Cognito user pool (moto's in the local stack), refreshed before it expires."""

    #: Sign in again this long before the token expires, so a reconnect never presents an expired token.
    EXPIRY_MARGIN_S = 60.0

    def __init__(
        self,
        *,
        user_pool_id: str,
        client_id: str,
        username: str,
        password: str,
        region: str,
        endpoint_url: str | None = None,
        cognito: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cognito is None:
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config

            # InitiateAuth is public: no AWS credentials needed (nor wanted) on a user's machine.
            cognito = boto3.client(
                "cognito-idp",
                region_name=region,
                endpoint_url=endpoint_url or None,
                config=Config(signature_version=UNSIGNED, retries={"max_attempts": 3, "mode": "standard"}),
            )
        self._cognito = cognito
        self._user_pool_id = user_pool_id
        self._client_id = client_id
        self._username = username
        self._password = password
        self._clock = clock
        self._token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0

    def access_token(self) -> str:
        if self._token is not None and self._clock() < self._expires_at - self.EXPIRY_MARGIN_S:
            return self._token
        if self._refresh_token is not None:
            with contextlib.suppress(AuthenticationFailed):
                return self._authenticate(
                    lambda: self._cognito.initiate_auth(
                        AuthFlow="REFRESH_TOKEN_AUTH",
                        ClientId=self._client_id,
                        AuthParameters={"REFRESH_TOKEN": self._refresh_token},
                    )
                )
            self._refresh_token = None
        return self._authenticate(
            lambda: srp_sign_in(
                self._cognito,
                user_pool_id=self._user_pool_id,
                client_id=self._client_id,
                username=self._username,
                password=self._password,
            )
        )

    def invalidate(self) -> None:
        self._token = None

    def seconds_left(self) -> float:
        """How long the current access token stays valid (0 without one): the client renews before it runs out."""
        return max(0.0, self._expires_at - self._clock()) if self._token is not None else 0.0

    def _authenticate(self, call: Callable[[], dict[str, Any]]) -> str:
        from botocore.exceptions import ClientError

        try:
            response = call()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"NotAuthorizedException", "UserNotFoundException", "UserNotConfirmedException"}:
                raise AuthenticationFailed(f"Sign-in refused: {exc.response['Error'].get('Message', code)}") from None
            if code in {"InvalidParameterException", "ResourceNotFoundException", "PasswordResetRequiredException"}:
                raise AuthenticationFailed(f"Sign-in impossible ({code}): {exc}") from None
            raise  # throttling, 5xx: the connection loop backs off and tries again
        if "AuthenticationResult" not in response:
            challenge = response.get("ChallengeName", "an unknown challenge")
            raise AuthenticationFailed(
                f"Cognito asks for {challenge}; finish it in the web page or with the user admin script first."
            )
        result = response["AuthenticationResult"]
        self._token = str(result["AccessToken"])
        self._refresh_token = str(result.get("RefreshToken") or self._refresh_token or "") or None
        self._expires_at = self._clock() + float(result.get("ExpiresIn", 3600))
        return self._token
