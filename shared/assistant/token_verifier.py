"""Verification of Cognito access tokens (the ``?Auth=`` token of ``$connect``).

Only an access token (``token_use``) of this stack's app client opens a connection: not an ID token, nor a token of
any other app client of the pool. A verifier is built once per Lambda container: it fetches the key set once,
refetches only when a token names a key it has not seen (Cognito rotating its keys), and rate-limits those refetches
so a stream of forged ``kid`` values cannot turn the authorizer into a load generator against the JWKS endpoint.

A signature stays valid after Cognito revoked a token (a sign-out everywhere, a disabled or deleted user, a revoked
refresh token), so a verifier built for a function also asks Cognito itself (:mod:`assistant.revocation`), after
every local check passed: a forged or expired token never costs a call to Cognito.

Times are checked here rather than by pyjwt because pyjwt reads the wall clock itself; an injected clock keeps the
checks testable without sleeping or patching.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from assistant.environment import SETTINGS, Env, MissingSetting
from assistant.resources import TOKEN_LEEWAY_SECONDS
from assistant.revocation import RevocationCheck, TokenRefused, revocation_check_from_env

#: The only signature algorithm Cognito uses. Accepting any other (``none``, ``HS256`` keyed with the public key)
#: is the classic JWT confusion attack.
_ALGORITHM = "RS256"
#: The JWKS endpoint is part of the cold start of the authorizer; waiting longer than this would exceed what a
#: connecting client tolerates anyway.
_JWKS_TIMEOUT_SECONDS = 3.0
#: A Cognito JWKS is about 1 KB; anything far larger is not one.
_JWKS_MAX_BYTES = 64 * 1024
#: Plain http is allowed only to this host: the local stack's moto server.
_LOCAL_HTTP_HOSTS = frozenset({"127.0.0.1"})


@dataclass(frozen=True)
class Principal:
    """Who a verified token belongs to. ``user_id`` is the immutable ``sub``; usernames can be reused."""

    user_id: str
    username: str
    #: The token's ``exp`` (epoch seconds): the connection it opens ends with it (see assistant.routes).
    expires_at: int


class InvalidToken(Exception):
    """The token is not acceptable. The reason is short and never contains the token itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySetUnavailable(Exception):
    """The JWKS could not be fetched or parsed: an outage to report, not a verdict on the token."""


JwksSource = Callable[[], Mapping[str, Any]]


class TokenVerifier:
    """Verifies Cognito access tokens of one user pool and one app client."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        jwks_source: JwksSource,
        clock: Callable[[], float] = time.time,
        leeway_seconds: int = TOKEN_LEEWAY_SECONDS,
        max_token_bytes: int = 8192,
        min_refetch_interval_seconds: float = 60.0,
        revocation: RevocationCheck | None = None,
    ) -> None:
        if not issuer or not client_id:
            raise ValueError("issuer and client_id are required")
        self._issuer = issuer
        self._client_id = client_id
        self._jwks_source = jwks_source
        self._clock = clock
        self._leeway = leeway_seconds
        self._max_token_bytes = max_token_bytes
        self._min_refetch_interval = min_refetch_interval_seconds
        #: ``None``: signature and claims only (what a verifier without Cognito at hand can check).
        self._revocation = revocation
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        # The local stack serves several connections from threads of one process; Lambda never does.
        self._lock = threading.Lock()

    @classmethod
    def for_user_pool(
        cls,
        *,
        region: str,
        user_pool_id: str,
        client_id: str,
        issuer: str | None = None,
        jwks_url: str | None = None,
        revocation: RevocationCheck | None = None,
    ) -> TokenVerifier:
        """A verifier for a real pool; ``issuer``/``jwks_url`` override the AWS defaults (local stack)."""
        issuer = issuer or f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
        url = jwks_url or issuer.rstrip("/") + "/.well-known/jwks.json"
        return cls(issuer=issuer, client_id=client_id, jwks_source=url_jwks_source(url), revocation=revocation)

    def verify(self, token: str) -> Principal:
        """Return who ``token`` belongs to, or raise :class:`InvalidToken` (or :class:`KeySetUnavailable`)."""
        if not token or not isinstance(token, str):
            raise InvalidToken("missing token")
        # Checked before any parsing so an oversized value costs nothing; a JWT is ASCII, so chars == bytes.
        if len(token) > self._max_token_bytes:
            raise InvalidToken("token too long")
        if not token.isascii():
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") != _ALGORITHM:
            raise InvalidToken("unsupported algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing key id")
        key = self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[_ALGORITHM],
                issuer=self._issuer,
                options={
                    "require": ["exp", "iat", "iss", "sub"],
                    "verify_signature": True,
                    "verify_iss": True,
                    # Access tokens carry ``client_id`` instead of ``aud``; checked below.
                    "verify_aud": False,
                    # Checked below against the injected clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim {exc.claim}") from None
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        self._check_times(claims)
        if claims.get("token_use") != "access":
            raise InvalidToken("not an access token")
        if claims.get("client_id") != self._client_id:
            raise InvalidToken("wrong client")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("missing claim sub")
        if self._revocation is not None:
            # Raises RevocationCheckUnavailable when Cognito cannot answer: nobody is let in unchecked.
            try:
                self._revocation.check(token)
            except TokenRefused:
                raise InvalidToken("revoked") from None
        username = claims.get("username")
        # Pools that sign in by email may omit ``username``; the ``sub`` still identifies the user.
        return Principal(
            user_id=sub,
            username=username if isinstance(username, str) and username else sub,
            expires_at=int(_numeric(claims, "exp")),
        )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        exp = _numeric(claims, "exp")
        iat = _numeric(claims, "iat")
        if exp + self._leeway <= now:
            raise InvalidToken("expired")
        if iat > now + self._leeway:
            raise InvalidToken("not yet valid")
        if "nbf" in claims and _numeric(claims, "nbf") > now + self._leeway:
            raise InvalidToken("not yet valid")

    def _key_for(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            if self._keys is None:
                self._refresh()
            assert self._keys is not None
            key = self._keys.get(kid)
            if key is None and self._clock() - self._fetched_at >= self._min_refetch_interval:
                self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown key id")
        return key

    def _refresh(self) -> None:
        # Recorded before the call so a failing endpoint is not hammered either.
        self._fetched_at = self._clock()
        try:
            document = self._jwks_source()
            key_set = jwt.PyJWKSet.from_dict(dict(document))
        except (OSError, TypeError, ValueError, jwt.PyJWTError) as exc:
            raise KeySetUnavailable(f"cannot load the JWKS: {type(exc).__name__}") from exc
        keys = {
            key.key_id: key
            for key in key_set.keys
            if key.key_id
            and key.key_type == "RSA"
            and key.algorithm_name == _ALGORITHM
            and key.public_key_use in (None, "sig")
        }
        if not keys:
            raise KeySetUnavailable("the JWKS holds no RS256 signing key")
        self._keys = keys


def verifier_from_env(environ: Mapping[str, str]) -> TokenVerifier:
    """A verifier from the authorizer's variables, read directly (the authorizer builds it once per container).

    Not through :class:`assistant.settings.Settings`: the authorizer is on the path of every page load, and pydantic
    plus boto3 (which the settings and ``assistant.function_dependencies`` bring) would triple its cold start for
    five strings.
    """

    def required(name: Env) -> str:
        value = environ.get(name.value, "").strip()
        if not value:
            raise MissingSetting(f"Environment variable {name.value} is not set for this function.")
        return value

    return TokenVerifier.for_user_pool(
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        user_pool_id=required(Env.USER_POOL_ID),
        client_id=required(Env.USER_POOL_CLIENT_ID),
        issuer=environ.get(Env.COGNITO_ISSUER.value) or None,
        jwks_url=environ.get(Env.COGNITO_JWKS_URL.value) or None,
        revocation=revocation_check_from_env(environ, recheck_seconds=token_recheck_seconds(environ)),
    )


def token_recheck_seconds(environ: Mapping[str, str]) -> int:
    """``TOKEN_RECHECK_SECONDS`` (unset: the stage default), checked by the same :meth:`Setting.parse
    <assistant.environment.Setting.parse>` as the route functions' settings and the stage."""
    setting = SETTINGS[Env.TOKEN_RECHECK_SECONDS]
    raw = environ.get(setting.env.value, "").strip()
    value: int = setting.parse(raw) if raw else setting.default_value()
    return value


def _numeric(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    # bool is an int subclass; ``"exp": true`` is not a time.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"invalid claim {name}")
    return float(value)


def url_jwks_source(url: str, *, timeout_seconds: float = _JWKS_TIMEOUT_SECONDS) -> JwksSource:
    """A JWKS source reading ``url``: https anywhere, plain http only to the local stack on 127.0.0.1."""
    parsed = urllib.parse.urlsplit(url)
    local_http = parsed.scheme == "http" and parsed.hostname in _LOCAL_HTTP_HOSTS
    if not (parsed.scheme == "https" or local_http) or not parsed.hostname:
        raise ValueError("the JWKS URL must be https (or http://127.0.0.1 for the local stack)")

    def fetch() -> Mapping[str, Any]:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:  # noqa: S310 - scheme checked
            body = response.read(_JWKS_MAX_BYTES + 1)
        if len(body) > _JWKS_MAX_BYTES:
            raise ValueError("JWKS response too large")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("JWKS is not a JSON object")
        return document

    return fetch
