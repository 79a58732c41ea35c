"""Builders of what the functions depend on: AWS clients, the table, the model's credential and the model client.

No state lives here: each handler module builds its own dependencies from its own settings with these functions,
once per container (``assistant.lifecycle.PerContainer``), and keeps them itself. Heavy modules are imported inside
the builders, so a cold start pays only for what that function uses; ``openai`` in particular is imported only by
the functions that talk to the model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from assistant.settings import ModelSettings

if TYPE_CHECKING:
    from assistant.bedrock import BedrockSigning
    from assistant.errors import ModelNotConfigured
    from assistant.model import ModelClient
    from assistant.tools.mcp_config import McpServerConfig
    from assistant.tools.mcp_tools import McpTools

#: Route handlers must answer within API Gateway's 29 s; AWS calls get short timeouts and botocore's standard retries.
#: (A Lambda container runs one invocation at a time; the larger pool is for the local stack, where the handlers of
#: many concurrent invocations share one process and its clients.)
_AWS_CONFIG = Config(
    connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=50
)
#: How long a fetched OpenAI key is reused before Secrets Manager is asked again (rotation takes effect by then).
SECRET_MAX_AGE_SECONDS = 300


def table(table_name: str, region: str) -> Any:
    return boto3.resource("dynamodb", region_name=region, config=_AWS_CONFIG).Table(table_name)


def s3(region: str) -> Any:
    """SigV4 (presigned POSTs and GETs are signed with it; S3 refuses SigV2 in most regions)."""
    config = _AWS_CONFIG.merge(Config(signature_version="s3v4"))
    return boto3.client("s3", region_name=region, config=config)


def sqs(region: str) -> Any:
    return boto3.client("sqs", region_name=region, config=_AWS_CONFIG)


def connections_api(callback_url: str) -> Any:
    """The stage's ``@connections`` client (boto3's ``apigatewaymanagementapi``)."""
    from assistant.push import management_client

    return management_client(callback_url)


def _secret_value(secret_name: str) -> str | None:
    """The secret's trimmed value, cached by Powertools for :data:`SECRET_MAX_AGE_SECONDS`; ``None`` if it does
    not exist or was never given one."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_name, max_age=SECRET_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as error:
        # Powertools wraps the SDK's error; the ClientError it raised from is the exception's context.
        if _error_code(error.__context__) != "ResourceNotFoundException":
            raise
        return None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


#: What the SDK is given for a server that wants no key (it refuses to start without one; such servers ignore it).
NO_API_KEY = "no-key"


class ModelClients:
    """A function's model client, for the current key: a rotated key gets a new client within the secret's max
    age. A Bedrock stage has no key: its client is built once and signs every request with the role's current
    credentials itself. Built once per container by the functions that talk to the model (the worker,
    ``commands``); calling it returns the client, so it is what a service takes as its ``model``."""

    def __init__(self, settings: ModelSettings, *, model_override: str | None = None) -> None:
        self._settings = settings
        self._model_override = model_override
        self._lock = threading.Lock()
        self._client: tuple[str | None, ModelClient] | None = None

    def __call__(self) -> ModelClient:
        key = self.api_key()
        with self._lock:
            # One client per key (the client and its connection pool, with the TLS session to the model, are
            # reused by every later invocation); a new key replaces it.
            if self._client is None or self._client[0] != key:
                self._client = (key, self.client_for(key))
            return self._client[1]

    def api_key(self) -> str | None:
        """The model's credential, as the provider profile's ``auth`` says: the stage's secret (``secret``), the
        secret if it holds a key and :data:`NO_API_KEY` otherwise (``optional_secret``), or ``None`` for a profile
        whose requests are SigV4-signed with the function's role (``aws_sigv4``; Secrets Manager is never asked)."""
        config = self._settings
        auth = config.model_provider.capabilities.auth
        if auth == "aws_sigv4":
            return None
        if auth == "optional_secret":
            value = _secret_value(config.openai_secret_name) if config.openai_secret_name else None
            return value or NO_API_KEY
        return self.openai_api_key()

    def openai_api_key(self) -> str:
        """The OpenAI key from Secrets Manager, cached by Powertools for :data:`SECRET_MAX_AGE_SECONDS`.

        The stack creates the secret without a value, so a stage whose key was never set is told apart from an
        outage: the user gets ``model_not_configured`` and the operator a log line with the command that fixes it.
        """
        from assistant.wiring import Env, MissingSetting

        secret_name = self._settings.openai_secret_name
        if not secret_name:
            raise MissingSetting(f"Environment variable {Env.OPENAI_SECRET_NAME.value} is not set for this function.")
        value = _secret_value(secret_name)
        if value is None:
            raise _model_not_configured(secret_name)
        return value

    def bedrock_signing(self) -> BedrockSigning | None:
        """How a Bedrock profile's requests are signed (its endpoint, the function's region, the role's credentials
        from botocore's chain); ``None`` for a profile with an API key."""
        endpoint = self._settings.model_provider.capabilities.bedrock_endpoint
        if endpoint is None:
            return None
        from assistant.bedrock import BedrockSigning

        return BedrockSigning(endpoint=endpoint, region=self._settings.region)

    def client_for(self, api_key: str | None) -> ModelClient:
        """A new model client with ``api_key``, or signed with the function's role where the profile says so (the
        SDK, the definition, its tools and MCP servers)."""
        from pathlib import Path

        from assistant.definition import load_definition
        from assistant.model import ModelClient, ModelTimeouts
        from assistant.tools.builtin import default_registry

        config = self._settings
        timeouts = ModelTimeouts()
        if config.model_read_timeout_ms is not None:
            timeouts = ModelTimeouts(read_s=config.model_read_timeout_ms / 1000)
        definition = load_definition(Path(config.assistant_file) if config.assistant_file else None)
        signing = self.bedrock_signing() if api_key is None else None
        return ModelClient.create(
            api_key=api_key,
            # An explicit OPENAI_BASE_URL wins (a proxy, a VPC endpoint, the local stack; a Bedrock profile signs
            # requests to it all the same); otherwise the profile's own endpoint in the function's region
            # (Bedrock), or the SDK's default (OpenAI).
            base_url=config.openai_base_url or config.model_provider.base_url(config.region),
            sdk_provider=signing.sdk_provider if signing is not None else None,
            definition=definition,
            tools=default_registry(),
            model_override=self._model_override,
            provider=config.model_provider,
            timeouts=timeouts,
            mcp_tools=mcp_tools(definition.mcp_servers),
        )


def _error_code(error: BaseException | None) -> str | None:
    response = getattr(error, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _model_not_configured(secret_name: str) -> ModelNotConfigured:
    from assistant.errors import ModelNotConfigured
    from assistant.observability import logger
    from assistant.wiring import set_openai_key_command

    logger.error(
        "The model key was never set: this stage cannot answer until an operator sets it",
        extra={"secret": secret_name, "fix": set_openai_key_command(secret_name)},
    )
    return ModelNotConfigured("This assistant has no model key configured yet. Please tell its operator.")


def mcp_tools(servers: Sequence[McpServerConfig]) -> McpTools | None:
    """The definition's MCP servers as tools, with their bearer tokens from Secrets Manager; ``None`` without
    servers (then nothing of the ``mcp`` SDK is ever imported)."""
    if not servers:
        return None
    from assistant.tools.mcp_tools import McpTools

    return McpTools(servers, secret=mcp_secret, on_failure=_count_mcp_failure)


def mcp_secret(name: str) -> str:
    """An MCP server's token, cached like the model key (a rotation takes effect within the max age)."""
    value = _secret_value(name)
    if value is None:
        raise LookupError(f"the secret {name} does not exist or has no value")
    return value


def _count_mcp_failure(kind: str) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from assistant.observability import Metric, metrics

    metrics.add_metric(name=Metric.MCP_TOOL_FAILURES.value, unit=MetricUnit.Count, value=1)
