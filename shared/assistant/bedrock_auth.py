"""Short-lived Amazon Bedrock API keys minted from the function's own IAM role.

A Bedrock stage (``bedrock``, ``bedrock-mantle`` profiles) keeps no model key anywhere: a short-term Bedrock API key
is a SigV4-presigned ``CallWithBearerToken`` request signed with the role's credentials, which
``aws-bedrock-token-generator`` builds offline (no AWS call). It carries the role's permissions, works only in the
region it was signed for, and dies with the credentials that signed it (12 hours at most).

:class:`BedrockTokenSource` is handed to the ``openai`` SDK as its ``api_key``: the SDK calls it before every
request, so it must be cheap. It keeps one key and mints another when the key is older than the refresh interval or
the role's credentials have changed (Lambda hands a container new ones on its own schedule), long before the key
or its credentials expire. ``aws_bedrock_token_generator`` and botocore's session are imported on first use, so the
functions that never call the model do not pay for them at cold start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING

from assistant.wiring import BEDROCK_TOKEN_LIFETIME_SECONDS, BEDROCK_TOKEN_REFRESH_SECONDS

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from botocore.session import Session

__all__ = ["BedrockTokenSource", "MintToken", "mint_token"]

#: Builds a key from frozen credentials, a region and a lifetime in seconds.
MintToken = Callable[["Credentials", str, int], str]


def mint_token(credentials: Credentials, region: str, lifetime_seconds: int) -> str:
    """A Bedrock API key signed with ``credentials`` for ``region`` (the official generator; no network call)."""
    from aws_bedrock_token_generator import provide_token  # type: ignore[import-untyped]  # ships no py.typed

    return provide_token(
        region=region,
        # Duck-typed: the generator only calls .load() on its credential provider.
        aws_credentials_provider=_Fixed(credentials),
        expiry=timedelta(seconds=lifetime_seconds),
    )


def role_credentials() -> Credentials | None:
    """The function's credentials as one consistent (frozen) set, from botocore's default chain (in Lambda: the
    execution role's, from the environment)."""
    from botocore.credentials import Credentials

    current = _session().get_credentials()
    if current is None:
        return None
    frozen = current.get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


@cache
def _session() -> Session:
    """One botocore session per container: it resolves the credential chain once and keeps (and, for refreshable
    credentials, refreshes) what it found, so asking it before every request costs next to nothing."""
    from botocore.session import get_session

    return get_session()


@dataclass(frozen=True)
class _Fixed:
    """The generator's credential-provider interface over credentials we already hold."""

    credentials: Credentials

    def load(self) -> Credentials:
        return self.credentials


@dataclass
class _Minted:
    token: str
    at: float
    #: Which credentials signed it: new credentials (a rotated role session) get a new key at once.
    signer: tuple[str, str | None]


class BedrockTokenSource:
    """A callable that returns a valid Bedrock API key for ``region``, minting a new one only when needed."""

    def __init__(
        self,
        region: str,
        *,
        credentials: Callable[[], Credentials | None] = role_credentials,
        mint: MintToken = mint_token,
        clock: Callable[[], float] = time.monotonic,
        refresh_after_seconds: float = BEDROCK_TOKEN_REFRESH_SECONDS,
        lifetime_seconds: int = BEDROCK_TOKEN_LIFETIME_SECONDS,
    ) -> None:
        if not region:
            raise ValueError("a Bedrock API key is valid in one region: the region must be known")
        if not 0 < refresh_after_seconds < lifetime_seconds:
            raise ValueError("a key must be replaced before it expires: 0 < refresh_after_seconds < lifetime_seconds")
        self.region = region
        self._credentials = credentials
        self._mint = mint
        self._clock = clock
        self._refresh_after = refresh_after_seconds
        self._lifetime = lifetime_seconds
        self._minted: _Minted | None = None
        # The local stack runs many invocations' threads in one process; one mint at a time is plenty.
        self._lock = threading.Lock()

    def __call__(self) -> str:
        credentials = self._credentials()
        if credentials is None:
            raise RuntimeError(
                "No AWS credentials to sign a Bedrock API key with: the function's role (or, locally, the AWS "
                "credentials in the environment) must be available"
            )
        signer = (credentials.access_key, credentials.token)
        with self._lock:
            now = self._clock()
            minted = self._minted
            if minted is None or minted.signer != signer or now - minted.at >= self._refresh_after:
                minted = _Minted(self._mint(credentials, self.region, self._lifetime), now, signer)
                self._minted = minted
            return minted.token
