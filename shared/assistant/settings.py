"""Typed settings per function, read from the environment its ``FunctionSpec`` declares (:mod:`assistant.wiring`).

Each function has one settings class here, whose fields are exactly the variables its spec declares: a field is
named after its :class:`~assistant.wiring.Env` member (``queue_url`` is ``QUEUE_URL``), so nothing maps names by
hand, and a class that drifts from its spec fails at import. A required field (no default) missing from the
environment fails with the variable's name (:class:`MissingSetting`) instead of a ``KeyError`` deep inside a
handler; every value is validated once per container. Nothing here is a secret: the model key is read from
Secrets Manager.

The authorizer has no class here: it reads its five variables itself (``assistant.auth.verifier_from_env``), to
keep pydantic off the path of every page load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, ValidationError

from assistant.stores.rate_limits import RateLimit
from assistant.stores.retention import MAX_RETENTION_DAYS, Retention
from assistant.stores.usage import Quotas
from assistant.wiring import (
    COMMANDS,
    CONNECT,
    DEFAULT,
    DEFAULT_MAX_MESSAGE_CHARS,
    DISCONNECT,
    MAX_TOKEN_RECHECK_SECONDS,
    POWERTOOLS_ENV,
    QUEUE,
    SEND_MESSAGE,
    STAGE_DEFAULTS,
    WORKER,
    Env,
    FunctionSpec,
    InvalidSetting,
    MissingSetting,
    ModelProvider,
)

__all__ = [
    "CommandsSettings",
    "ConnectSettings",
    "DefaultSettings",
    "DisconnectSettings",
    "InvalidSetting",
    "MissingSetting",
    "ModelSettings",
    "RateLimitSetting",
    "SendMessageSettings",
    "WorkerSettings",
    "check_values",
]


def _rate_limit(value: object) -> RateLimit:
    return value if isinstance(value, RateLimit) else RateLimit.parse(str(value))


#: ``"<burst>/<per minute>"`` in the environment, a :class:`RateLimit` in the settings.
RateLimitSetting = Annotated[RateLimit, BeforeValidator(_rate_limit)]

#: Not a variable of the spec: Lambda's runtime sets the region itself.
_REGION_FIELD = "region"


class _EnvironmentSettings(BaseModel):
    """Settings read from the environment: each field is the variable of the same name (upper case)."""

    # Each function reads one of these classes: built (pydantic's schema and validator) when it is first used, not
    # all of them when this module is imported, which a handler's cold start would pay for.
    model_config = ConfigDict(frozen=True, defer_build=True)

    #: The function whose environment this class reads; its fields must be exactly that spec's variables.
    spec: ClassVar[FunctionSpec | None] = None

    region: str = "us-east-1"

    @classmethod
    def variables(cls) -> frozenset[Env]:
        return frozenset(Env[name.upper()] for name in cls.model_fields if name != _REGION_FIELD)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            name.name.lower(): value for name in cls.variables() if (value := env.get(name.value))
        }
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region:
            values[_REGION_FIELD] = region
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            if any(error["type"] != "missing" for error in exc.errors()):
                raise InvalidSetting(f"Invalid function environment: {exc}") from exc
            missing = [Env[str(error["loc"][0]).upper()].value for error in exc.errors()]
            raise MissingSetting(f"Environment variable {', '.join(missing)} is not set for this function.") from None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        declared = set(spec.env) - set(POWERTOOLS_ENV)
        if cls.variables() != declared:
            raise TypeError(
                f"{cls.__name__} reads {sorted(v.value for v in cls.variables())} but {spec.name}'s spec declares "
                f"{sorted(v.value for v in declared)}: the fields of a function's settings are its spec's variables"
            )


class _Table(_EnvironmentSettings):
    table_name: str


class _Callback(_EnvironmentSettings):
    #: The stage's ``@connections`` endpoint (routes close expired connections through it; the worker posts).
    callback_url: str


class _ClosesConnections(_Callback):
    """What a message route needs to end a connection whose token expired or was revoked (assistant.routes)."""

    #: How long Cognito's "still accepted" about a connection's token is trusted (``assistant.revocation``).
    token_recheck_seconds: int = Field(default=STAGE_DEFAULTS.token_recheck_seconds, ge=1, le=MAX_TOKEN_RECHECK_SECONDS)


class _Quotas(_EnvironmentSettings):
    daily_message_quota: PositiveInt = STAGE_DEFAULTS.daily_message_quota
    daily_output_token_quota: PositiveInt = STAGE_DEFAULTS.daily_output_token_quota
    daily_input_token_quota: PositiveInt = STAGE_DEFAULTS.daily_input_token_quota

    def quotas(self) -> Quotas:
        return Quotas(
            messages=self.daily_message_quota,
            input_tokens=self.daily_input_token_quota,
            output_tokens=self.daily_output_token_quota,
        )


class _Retention(_EnvironmentSettings):
    #: ``0``: no expiry; else days a conversation and its items are kept after their last use (a DynamoDB TTL).
    retention_days: int = Field(default=STAGE_DEFAULTS.retention_days, ge=0, le=MAX_RETENTION_DAYS)

    def retention(self) -> Retention:
        return Retention(days=self.retention_days)


class _Attachments(_EnvironmentSettings):
    upload_bucket_name: str
    max_image_bytes: PositiveInt = STAGE_DEFAULTS.max_image_bytes
    max_pdf_bytes: PositiveInt = STAGE_DEFAULTS.max_pdf_bytes


class ModelSettings(_EnvironmentSettings):
    """What building a model client reads (the worker's and the ``commands`` function's)."""

    #: ``None``: no secret (a Bedrock stage signs with its role); a profile that needs one then fails with its name.
    openai_secret_name: str | None = None
    openai_base_url: str | None = None
    model_provider: ModelProvider = ModelProvider.OPENAI
    #: ``None``: the model client's default (see ``assistant.model.ModelTimeouts``).
    model_read_timeout_ms: int | None = Field(default=None, ge=100, le=120_000)
    #: ``None``: the packaged ``assistant.toml``.
    assistant_file: str | None = None


class ConnectSettings(_Table):
    spec = CONNECT

    max_connections_per_user: PositiveInt = STAGE_DEFAULTS.max_connections_per_user
    rate_limit_connect: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_connect)


class DisconnectSettings(_Table):
    spec = DISCONNECT


class DefaultSettings(_ClosesConnections):
    spec = DEFAULT


class SendMessageSettings(_Table, _ClosesConnections, _Quotas, _Retention, _Attachments):
    spec = SEND_MESSAGE

    #: Which kinds of attachment the stage's model reads; nothing else of the model is used here.
    model_provider: ModelProvider = ModelProvider.OPENAI
    rate_limit_request_upload: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_request_upload)
    rate_limit_get_attachment: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_get_attachment)
    daily_upload_bytes_quota: PositiveInt = STAGE_DEFAULTS.daily_upload_bytes_quota
    queue_url: str
    max_message_chars: PositiveInt = DEFAULT_MAX_MESSAGE_CHARS
    rate_limit_send_message: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_send_message)
    max_waiting_messages: PositiveInt = STAGE_DEFAULTS.max_waiting_messages


class CommandsSettings(_Table, _ClosesConnections, _Quotas, _Retention, ModelSettings):
    spec = COMMANDS

    queue_url: str
    rate_limit_new_conversation: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_new_conversation)
    rate_limit_get_history: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_get_history)
    rate_limit_list_conversations: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_list_conversations)
    rate_limit_cancel: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_cancel)
    rate_limit_ping: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_ping)
    rate_limit_get_usage: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_get_usage)
    rate_limit_rename_conversation: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_rename_conversation)
    rate_limit_delete_conversation: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_delete_conversation)
    rate_limit_delete_all_data: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_delete_all_data)
    max_conversations_per_user: PositiveInt = STAGE_DEFAULTS.max_conversations_per_user


class WorkerSettings(_Table, _Callback, _Quotas, _Retention, _Attachments, ModelSettings):
    spec = WORKER

    #: To bring a failed record back sooner than the (long) visibility timeout; see MessageQueue.retry_soon.
    queue_url: str
    model_override: str | None = None
    flush_interval_ms: int = Field(default=STAGE_DEFAULTS.flush_interval_ms, ge=0, le=2_000)
    flush_max_interval_ms: int = Field(default=STAGE_DEFAULTS.flush_max_interval_ms, ge=0, le=2_000)
    flush_chars: int = Field(default=STAGE_DEFAULTS.flush_chars, ge=1, le=16_000)
    max_receive_count: PositiveInt = QUEUE.max_receive_count


#: Every function's settings class (the authorizer's are ``assistant.auth.verifier_from_env``).
FUNCTION_SETTINGS: tuple[type[_EnvironmentSettings], ...] = (
    ConnectSettings,
    DisconnectSettings,
    DefaultSettings,
    SendMessageSettings,
    CommandsSettings,
    WorkerSettings,
)


def check_values(environ: Mapping[str, str]) -> None:
    """Validate the variables present in ``environ`` as the functions that read them will (a stage's limits, say,
    before anything starts); raises :class:`InvalidSetting` naming a bad one. Absent variables are not checked."""
    for settings in FUNCTION_SETTINGS:
        try:
            settings.from_env(environ)
        except MissingSetting:
            continue  # another function's variable, absent here: this checks only the values present
