"""Typed access to the environment each function gets (names declared in :mod:`assistant.wiring`).

Every value is validated once per container; a missing required variable fails with the variable's name instead
of a ``KeyError`` deep inside a handler. Nothing here is a secret: the OpenAI key is read from Secrets Manager.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, ValidationError

from assistant.stores.rate_limits import RateLimit
from assistant.stores.usage import Quotas
from assistant.wiring import DEFAULT_MAX_MESSAGE_CHARS, QUEUE, STAGE_DEFAULTS, Env, MissingSetting, ModelProvider

__all__ = ["MissingSetting", "RateLimitSetting", "Settings"]


def _rate_limit(value: object) -> RateLimit:
    return value if isinstance(value, RateLimit) else RateLimit.parse(str(value))


#: ``"<burst>/<per minute>"`` in the environment, a :class:`RateLimit` in the settings.
RateLimitSetting = Annotated[RateLimit, BeforeValidator(_rate_limit)]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    table_name: str | None = None
    queue_url: str | None = None
    callback_url: str | None = None
    user_pool_id: str | None = None
    user_pool_client_id: str | None = None
    cognito_issuer: str | None = None
    cognito_jwks_url: str | None = None
    openai_secret_name: str | None = None
    openai_base_url: str | None = None
    model_provider: ModelProvider = ModelProvider.OPENAI
    model_override: str | None = None
    #: ``None``: the packaged ``assistant.toml``.
    assistant_file: str | None = None
    #: ``None``: the model client's default (see ``assistant.model.ModelTimeouts``).
    model_read_timeout_ms: int | None = Field(default=None, ge=100, le=120_000)
    region: str = "us-east-1"
    max_message_chars: PositiveInt = DEFAULT_MAX_MESSAGE_CHARS
    daily_message_quota: PositiveInt = STAGE_DEFAULTS.daily_message_quota
    daily_output_token_quota: PositiveInt = STAGE_DEFAULTS.daily_output_token_quota
    daily_input_token_quota: PositiveInt = STAGE_DEFAULTS.daily_input_token_quota
    rate_limit_send_message: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_send_message)
    rate_limit_new_conversation: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_new_conversation)
    rate_limit_get_history: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_get_history)
    rate_limit_list_conversations: RateLimitSetting = RateLimit.parse(STAGE_DEFAULTS.rate_limit_list_conversations)
    max_connections_per_user: PositiveInt = STAGE_DEFAULTS.max_connections_per_user
    max_waiting_messages: PositiveInt = STAGE_DEFAULTS.max_waiting_messages
    max_conversations_per_user: PositiveInt = STAGE_DEFAULTS.max_conversations_per_user
    flush_interval_ms: int = Field(default=STAGE_DEFAULTS.flush_interval_ms, ge=0, le=2_000)
    flush_max_interval_ms: int = Field(default=STAGE_DEFAULTS.flush_max_interval_ms, ge=0, le=2_000)
    flush_chars: int = Field(default=STAGE_DEFAULTS.flush_chars, ge=1, le=16_000)
    max_receive_count: PositiveInt = QUEUE.max_receive_count

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        names = {
            "table_name": Env.TABLE_NAME,
            "queue_url": Env.QUEUE_URL,
            "callback_url": Env.CALLBACK_URL,
            "user_pool_id": Env.USER_POOL_ID,
            "user_pool_client_id": Env.USER_POOL_CLIENT_ID,
            "cognito_issuer": Env.COGNITO_ISSUER,
            "cognito_jwks_url": Env.COGNITO_JWKS_URL,
            "openai_secret_name": Env.OPENAI_SECRET_NAME,
            "openai_base_url": Env.OPENAI_BASE_URL,
            "model_provider": Env.MODEL_PROVIDER,
            "model_override": Env.MODEL_OVERRIDE,
            "assistant_file": Env.ASSISTANT_FILE,
            "model_read_timeout_ms": Env.MODEL_READ_TIMEOUT_MS,
            "max_message_chars": Env.MAX_MESSAGE_CHARS,
            "daily_message_quota": Env.DAILY_MESSAGE_QUOTA,
            "daily_output_token_quota": Env.DAILY_OUTPUT_TOKEN_QUOTA,
            "daily_input_token_quota": Env.DAILY_INPUT_TOKEN_QUOTA,
            "rate_limit_send_message": Env.RATE_LIMIT_SEND_MESSAGE,
            "rate_limit_new_conversation": Env.RATE_LIMIT_NEW_CONVERSATION,
            "rate_limit_get_history": Env.RATE_LIMIT_GET_HISTORY,
            "rate_limit_list_conversations": Env.RATE_LIMIT_LIST_CONVERSATIONS,
            "max_connections_per_user": Env.MAX_CONNECTIONS_PER_USER,
            "max_waiting_messages": Env.MAX_WAITING_MESSAGES,
            "max_conversations_per_user": Env.MAX_CONVERSATIONS_PER_USER,
            "flush_interval_ms": Env.FLUSH_INTERVAL_MS,
            "flush_chars": Env.FLUSH_CHARS,
            "flush_max_interval_ms": Env.FLUSH_MAX_INTERVAL_MS,
            "max_receive_count": Env.MAX_RECEIVE_COUNT,
        }
        values: dict[str, str] = {field: env[var.value] for field, var in names.items() if env.get(var.value)}
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region:
            values["region"] = region
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise MissingSetting(f"Invalid function environment: {exc}") from exc

    def quotas(self) -> Quotas:
        return Quotas(
            messages=self.daily_message_quota,
            input_tokens=self.daily_input_token_quota,
            output_tokens=self.daily_output_token_quota,
        )

    def require(self, field: str) -> str:
        """The value of a setting this function cannot work without."""
        value = getattr(self, field)
        if not value:
            raise MissingSetting(f"Environment variable {Env[field.upper()].value} is not set for this function.")
        return str(value)
