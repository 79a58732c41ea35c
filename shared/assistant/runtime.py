"""Per-container dependencies, built on first use and reused by every invocation of a warm Lambda.

Handlers ask for what they need (a store, the queue client, the model client) instead of building it at import,
so a cold start pays only for what that function uses; ``openai`` in particular is imported only by the functions
that talk to the model. Tests and the local stack call :func:`reset` after changing the environment.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.auth import TokenVerifier
    from assistant.bedrock_auth import BedrockTokenSource
    from assistant.errors import ModelNotConfigured
    from assistant.model import ModelClient
    from assistant.push import Broadcaster
    from assistant.reply import ReplyService
    from assistant.stores.connections import ConnectionStore
    from assistant.stores.conversations import ConversationStore
    from assistant.stores.messages import MessageStore
    from assistant.stores.rate_limits import RateLimiter
    from assistant.stores.turns import TurnStore
    from assistant.stores.usage import UsageStore
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


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def table() -> Any:
    return boto3.resource("dynamodb", region_name=settings().region, config=_AWS_CONFIG).Table(
        settings().require("table_name")
    )


@cache
def sqs() -> Any:
    return boto3.client("sqs", region_name=settings().region, config=_AWS_CONFIG)


@cache
def connections() -> ConnectionStore:
    from assistant.stores.connections import ConnectionStore

    return ConnectionStore(table())


@cache
def conversations() -> ConversationStore:
    from assistant.stores.conversations import ConversationStore

    return ConversationStore(table())


@cache
def turns() -> TurnStore:
    from assistant.stores.turns import TurnStore

    return TurnStore(table())


@cache
def messages() -> MessageStore:
    from assistant.stores.messages import MessageStore

    return MessageStore(table())


@cache
def usage() -> UsageStore:
    from assistant.stores.usage import UsageStore

    return UsageStore(table())


@cache
def rate_limiter() -> RateLimiter:
    from assistant.stores.rate_limits import RateLimiter

    return RateLimiter(table())


@cache
def connections_api() -> Any:
    """The stage's ``@connections`` client (boto3's ``apigatewaymanagementapi``)."""
    from assistant.push import management_client

    return management_client(settings().require("callback_url"))


@cache
def broadcaster() -> Broadcaster:
    from assistant.push import Broadcaster

    return Broadcaster(connections_api(), connections())


def token_verifier() -> TokenVerifier:
    """The authorizer's verifier. It lives in :mod:`assistant.auth` (cached there), because the authorizer imports
    neither this module nor boto3 nor pydantic: it is on the path of every page load."""
    from assistant import auth

    return auth.token_verifier()


def openai_api_key() -> str:
    """The OpenAI key from Secrets Manager, cached by Powertools for :data:`SECRET_MAX_AGE_SECONDS`.

    The stack creates the secret without a value, so a stage whose key was never set is told apart from an outage:
    the user gets ``model_not_configured`` and the operator a log line with the command that fixes it.
    """
    secret_name = settings().require("openai_secret_name")
    value = _secret_value(secret_name)
    if value is None:
        raise _model_not_configured(secret_name)
    return value


def _secret_value(secret_name: str) -> str | None:
    """The secret's trimmed value; ``None`` if it does not exist or was never given one."""
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


def model_api_key() -> str | Callable[[], str]:
    """The model's credential, as the provider profile's ``auth`` says: the stage's secret (``secret``), the
    secret if it holds a key and :data:`NO_API_KEY` otherwise (``optional_secret``), or a source of short-lived
    Bedrock API keys minted from the function's role (``bedrock_iam``; Secrets Manager is never asked)."""
    config = settings()
    auth = config.model_provider.capabilities.auth
    if auth == "bedrock_iam":
        return bedrock_token_source()
    if auth == "optional_secret":
        value = _secret_value(config.openai_secret_name) if config.openai_secret_name else None
        return value or NO_API_KEY
    return openai_api_key()


@cache
def bedrock_token_source() -> BedrockTokenSource:
    """One source of Bedrock API keys per container (it caches the key it minted), for the function's region."""
    from assistant.bedrock_auth import BedrockTokenSource

    return BedrockTokenSource(settings().region)


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


def model_client() -> ModelClient:
    """The model client for the current key: a rotated key gets a new client within the secret's max age. A Bedrock
    stage's client is built once: its key source (the same object every time) mints fresh keys itself."""
    return _model_client_for(model_api_key())


@lru_cache(maxsize=1)
def _model_client_for(api_key: str | Callable[[], str]) -> ModelClient:
    from pathlib import Path

    from assistant.definition import load_definition
    from assistant.model import ModelClient, ModelTimeouts
    from assistant.tools.builtin import default_registry

    config = settings()
    timeouts = ModelTimeouts()
    if config.model_read_timeout_ms is not None:
        timeouts = ModelTimeouts(read_s=config.model_read_timeout_ms / 1000)
    definition = load_definition(Path(config.assistant_file) if config.assistant_file else None)
    return ModelClient.create(
        api_key=api_key,
        # An explicit OPENAI_BASE_URL wins (a proxy, the local stack); otherwise the profile's own endpoint in the
        # function's region (Bedrock), or the SDK's default (OpenAI).
        base_url=config.openai_base_url or config.model_provider.base_url(config.region),
        definition=definition,
        tools=default_registry(),
        model_override=config.model_override,
        provider=config.model_provider,
        timeouts=timeouts,
        mcp_tools=mcp_tools(definition.mcp_servers),
    )


def mcp_tools(servers: Sequence[McpServerConfig]) -> McpTools | None:
    """The definition's MCP servers as tools, with their bearer tokens from Secrets Manager; ``None`` without
    servers (then nothing of the ``mcp`` SDK is ever imported)."""
    if not servers:
        return None
    from assistant.tools.mcp_tools import McpTools

    return McpTools(servers, secret=mcp_secret, on_failure=_count_mcp_failure)


def mcp_secret(name: str) -> str:
    """An MCP server's token, cached like the model key (a rotation takes effect within the max age)."""
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(name, max_age=SECRET_MAX_AGE_SECONDS)
    if not isinstance(value, str) or not value.strip():
        raise LookupError(f"the secret {name} has no value")
    return value.strip()


def _count_mcp_failure(kind: str) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from assistant.observability import Metric, metrics

    metrics.add_metric(name=Metric.MCP_TOOL_FAILURES.value, unit=MetricUnit.Count, value=1)


@cache
def reply_service() -> ReplyService:
    from assistant.reply import ReplyLimits, ReplyService

    config = settings()
    return ReplyService(
        messages=messages(),
        conversations=conversations(),
        turns=turns(),
        usage=usage(),
        broadcaster=broadcaster(),
        model=model_client,
        limits=ReplyLimits(
            quotas=config.quotas(),
            flush_interval_s=config.flush_interval_ms / 1000,
            flush_max_interval_s=config.flush_max_interval_ms / 1000,
            flush_chars=config.flush_chars,
            max_receive_count=config.max_receive_count,
        ),
    )


def reset() -> None:
    """Forget every cached dependency (tests and the local stack change the environment between runs)."""
    from aws_lambda_powertools.utilities import parameters

    # Powertools keeps the secret and its boto3 client; a new environment may mean a new endpoint.
    parameters.clear_caches()
    for cached in (
        settings,
        table,
        sqs,
        connections,
        conversations,
        turns,
        messages,
        usage,
        rate_limiter,
        connections_api,
        broadcaster,
        _model_client_for,
        bedrock_token_source,
        reply_service,
    ):
        cached.cache_clear()
    auth = sys.modules.get("assistant.auth")
    if auth is not None:
        auth.token_verifier.cache_clear()
