"""Typed settings per function, read from the environment ``assistant.environment.SETTINGS`` gives it.

Each function has one settings class here, whose fields are exactly the variables ``assistant.environment.SETTINGS``
gives it: a field is named after its :class:`~assistant.environment.Env` member (``queue_url`` is ``QUEUE_URL``), so
nothing maps names by hand, and a class that drifts from its function's variables fails at import. Defaults and
checks come from the declaration too (:meth:`Setting.parse <assistant.environment.Setting.parse>`, the same check a
stage's value gets at synth). A required field missing from the environment fails with the variable's name
(:class:`MissingSetting`) instead of a ``KeyError`` deep inside a handler; every value is validated once per
container. Nothing here is a secret: the model key is read from Secrets Manager.

The authorizer has no class here: it reads its variables itself (``assistant.token_verifier.verifier_from_env``),
to keep pydantic off the path of every page load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from assistant.environment import (
    COMMANDS_FN,
    CONNECT_FN,
    DEFAULT_FN,
    DISCONNECT_FN,
    POWERTOOLS_ENV,
    SEND_MESSAGE_FN,
    SETTINGS,
    WORKER_FN,
    Env,
    InvalidSetting,
    MissingSetting,
    variables_of,
)
from assistant.limits import Quotas, RateLimit, Retention
from assistant.providers import ModelProvider

__all__ = [
    "CommandsSettings",
    "ConnectSettings",
    "DefaultSettings",
    "DisconnectSettings",
    "InvalidSetting",
    "MissingSetting",
    "ModelSettings",
    "SendMessageSettings",
    "WorkerSettings",
]


def _default(env: Env) -> Any:
    """The field's default, from the setting's declaration (:data:`assistant.environment.SETTINGS`)."""
    return SETTINGS[env].default_value()


#: Not a variable of the spec: Lambda's runtime sets the region itself.
_REGION_FIELD = "region"


class _EnvironmentSettings(BaseModel):
    """Settings read from the environment: each field is the variable of the same name (upper case)."""

    # Each function reads one of these classes: built (pydantic's schema and validator) when it is first used, not
    # all of them when this module is imported, which a handler's cold start would pay for.
    model_config = ConfigDict(frozen=True, defer_build=True)

    #: The function whose environment this class reads (a ``FunctionSpec.name``); its fields must be exactly the
    #: variables ``assistant.environment.SETTINGS`` gives that function (Powertools' own aside).
    function: ClassVar[str | None] = None

    region: str = "us-east-1"

    @classmethod
    def variables(cls) -> frozenset[Env]:
        return frozenset(Env[name.upper()] for name in cls.model_fields if name != _REGION_FIELD)

    @model_validator(mode="before")
    @classmethod
    def _parse_declared(cls, values: Any) -> Any:
        """Every declared variable's value goes through its :meth:`Setting.parse
        <assistant.environment.Setting.parse>`: the one check a stage's value also gets at synth."""
        if not isinstance(values, Mapping):
            return values
        return {name: _parsed(name, value) for name, value in values.items()}

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
        function = cls.__dict__.get("function")
        if function is None:
            return
        declared = set(variables_of(function)) - set(POWERTOOLS_ENV)
        if cls.variables() != declared:
            raise TypeError(
                f"{cls.__name__} reads {sorted(v.value for v in cls.variables())} but SETTINGS gives {function} "
                f"{sorted(v.value for v in declared)}: the fields of a function's settings are its variables"
            )


def _parsed(field: str, value: Any) -> Any:
    setting = SETTINGS.get(Env[field.upper()]) if field.upper() in Env.__members__ else None
    if setting is None or value is None:
        return value
    return setting.parse(value if isinstance(value, str) else str(value))


class _Table(_EnvironmentSettings):
    table_name: str


class _Callback(_EnvironmentSettings):
    #: The stage's ``@connections`` endpoint (routes close expired connections through it; the worker posts).
    callback_url: str


class _ClosesConnections(_Callback):
    """What a message route needs to end a connection whose token expired or was revoked (assistant.routes)."""

    #: How long Cognito's "still accepted" about a connection's token is trusted (``assistant.revocation``).
    token_recheck_seconds: int = _default(Env.TOKEN_RECHECK_SECONDS)


class _Quotas(_EnvironmentSettings):
    daily_message_quota: int = _default(Env.DAILY_MESSAGE_QUOTA)
    daily_output_token_quota: int = _default(Env.DAILY_OUTPUT_TOKEN_QUOTA)
    daily_input_token_quota: int = _default(Env.DAILY_INPUT_TOKEN_QUOTA)

    def quotas(self) -> Quotas:
        return Quotas(
            messages=self.daily_message_quota,
            input_tokens=self.daily_input_token_quota,
            output_tokens=self.daily_output_token_quota,
        )


class _Retention(_EnvironmentSettings):
    #: ``0``: no expiry; else days a conversation and its items are kept after their last use (a DynamoDB TTL).
    retention_days: int = _default(Env.RETENTION_DAYS)

    def retention(self) -> Retention:
        return Retention(days=self.retention_days)


class _Attachments(_EnvironmentSettings):
    upload_bucket_name: str
    max_image_bytes: int = _default(Env.MAX_IMAGE_BYTES)
    max_pdf_bytes: int = _default(Env.MAX_PDF_BYTES)


class ModelSettings(_EnvironmentSettings):
    """What building a model client reads (the worker's and the ``commands`` function's)."""

    #: ``None``: no secret (a Bedrock stage signs with its role); a profile that needs one then fails with its name.
    openai_secret_name: str | None = None
    openai_base_url: str | None = None
    model_provider: ModelProvider = ModelProvider(_default(Env.MODEL_PROVIDER))
    #: ``None``: the model client's default (see ``assistant.model.ModelTimeouts``).
    model_read_timeout_ms: int | None = None
    #: ``None``: the packaged ``assistant.toml``.
    assistant_file: str | None = None


class ConnectSettings(_Table):
    function = CONNECT_FN

    max_connections_per_user: int = _default(Env.MAX_CONNECTIONS_PER_USER)
    rate_limit_connect: RateLimit = _default(Env.RATE_LIMIT_CONNECT)


class DisconnectSettings(_Table):
    function = DISCONNECT_FN


class DefaultSettings(_ClosesConnections):
    function = DEFAULT_FN


class SendMessageSettings(_Table, _ClosesConnections, _Quotas, _Retention, _Attachments):
    function = SEND_MESSAGE_FN

    #: Which kinds of attachment the stage's model reads; nothing else of the model is used here.
    model_provider: ModelProvider = ModelProvider(_default(Env.MODEL_PROVIDER))
    rate_limit_request_upload: RateLimit = _default(Env.RATE_LIMIT_REQUEST_UPLOAD)
    rate_limit_get_attachment: RateLimit = _default(Env.RATE_LIMIT_GET_ATTACHMENT)
    daily_upload_bytes_quota: int = _default(Env.DAILY_UPLOAD_BYTES_QUOTA)
    queue_url: str
    max_message_chars: int = _default(Env.MAX_MESSAGE_CHARS)
    rate_limit_send_message: RateLimit = _default(Env.RATE_LIMIT_SEND_MESSAGE)
    max_waiting_messages: int = _default(Env.MAX_WAITING_MESSAGES)


class CommandsSettings(_Table, _ClosesConnections, _Quotas, _Retention, ModelSettings):
    function = COMMANDS_FN

    queue_url: str
    rate_limit_new_conversation: RateLimit = _default(Env.RATE_LIMIT_NEW_CONVERSATION)
    rate_limit_get_history: RateLimit = _default(Env.RATE_LIMIT_GET_HISTORY)
    rate_limit_list_conversations: RateLimit = _default(Env.RATE_LIMIT_LIST_CONVERSATIONS)
    rate_limit_cancel: RateLimit = _default(Env.RATE_LIMIT_CANCEL)
    rate_limit_ping: RateLimit = _default(Env.RATE_LIMIT_PING)
    rate_limit_get_usage: RateLimit = _default(Env.RATE_LIMIT_GET_USAGE)
    rate_limit_rename_conversation: RateLimit = _default(Env.RATE_LIMIT_RENAME_CONVERSATION)
    rate_limit_delete_conversation: RateLimit = _default(Env.RATE_LIMIT_DELETE_CONVERSATION)
    rate_limit_delete_all_data: RateLimit = _default(Env.RATE_LIMIT_DELETE_ALL_DATA)
    max_conversations_per_user: int = _default(Env.MAX_CONVERSATIONS_PER_USER)


class WorkerSettings(_Table, _Callback, _Quotas, _Retention, _Attachments, ModelSettings):
    function = WORKER_FN

    #: To bring a failed record back sooner than the (long) visibility timeout; see MessageQueue.retry_soon.
    queue_url: str
    model_override: str | None = None
    flush_interval_ms: int = _default(Env.FLUSH_INTERVAL_MS)
    flush_max_interval_ms: int = _default(Env.FLUSH_MAX_INTERVAL_MS)
    flush_chars: int = _default(Env.FLUSH_CHARS)
    max_receive_count: int = _default(Env.MAX_RECEIVE_COUNT)


#: Every function's settings class (the authorizer reads its own: ``assistant.token_verifier.verifier_from_env``).
FUNCTION_SETTINGS: tuple[type[_EnvironmentSettings], ...] = (
    ConnectSettings,
    DisconnectSettings,
    DefaultSettings,
    SendMessageSettings,
    CommandsSettings,
    WorkerSettings,
)
