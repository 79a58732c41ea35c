"""Amazon Bedrock through the ``openai`` SDK's own provider: every request SigV4-signed with the function's role.

A Bedrock stage (``bedrock``, ``bedrock-mantle`` profiles) keeps no model key anywhere. ``openai.providers.bedrock``
signs each request itself (botocore's ``SigV4Auth``; service ``bedrock`` for the ``runtime`` endpoint,
``bedrock-mantle`` for ``mantle``), from whatever :func:`role_credentials` returns at that moment, so IAM decides
every call on the role's own policy: no bearer token, no token minting, no ``CallWithBearerToken`` grant.

Credentials come from botocore's default chain, resolved once per container and kept by its session: in Lambda the
execution role's (from the environment, or from the container credentials endpoint under SnapStart, which botocore
refreshes before they expire). The SDK freezes them once per request (``get_frozen_credentials``), so a refreshed
set is used from the next request on without rebuilding the client. Passing the provider explicitly (rather than
letting the SDK pick its default source) also keeps ``AWS_BEARER_TOKEN_BEDROCK`` and ``AWS_BEDROCK_BASE_URL`` in the
environment from silently switching a stage to bearer tokens or another endpoint.

``openai`` and botocore's session are imported on first use, by the functions that call the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from botocore.session import Session

__all__ = ["BedrockEndpoint", "BedrockSigning", "role_credentials"]

#: ``runtime``: ``bedrock-runtime.<region>.amazonaws.com/openai/v1``; ``mantle``: ``bedrock-mantle.<region>.api.aws``.
BedrockEndpoint = Literal["runtime", "mantle"]


@cache
def _session() -> Session:
    """One botocore session per container: it resolves the credential chain once and keeps (and, for refreshable
    credentials, refreshes) what it found, so asking it before every request costs next to nothing."""
    from botocore.session import get_session

    return get_session()


def role_credentials() -> Any:
    """The function's credentials from botocore's default chain (in Lambda: the execution role's), as botocore's
    credentials object: the SDK freezes it per request, which refreshes refreshable credentials when due."""
    credentials = _session().get_credentials()
    if credentials is None:
        raise RuntimeError(
            "No AWS credentials to sign Bedrock requests with: the function's role (or, locally, the AWS credentials "
            "in the environment) must be available"
        )
    return credentials


@dataclass(frozen=True)
class BedrockSigning:
    """How the model client reaches Bedrock: which endpoint, in which region, signed with which credentials."""

    endpoint: BedrockEndpoint
    region: str
    #: Returns botocore credentials (or an object with ``access_key``/``secret_key``/``token``), asked before
    #: every request.
    credentials: Callable[[], object] = field(default=role_credentials, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.region:
            raise ValueError("a SigV4 signature is valid in one region: the region must be known")

    def sdk_provider(self, base_url: str | None) -> Any:
        """The SDK's Bedrock provider for ``openai.OpenAI(provider=...)``. ``base_url``: the endpoint to call
        (``None``: the SDK's default for the endpoint and region); requests to it are signed all the same, so a
        VPC endpoint, a proxy or a test server on 127.0.0.1 sees exactly what Bedrock would."""
        from openai.providers import bedrock

        return bedrock(
            endpoint=self.endpoint,
            region=self.region,
            base_url=base_url,
            credential_provider=self.credentials,
        )
