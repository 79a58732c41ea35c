"""How the system is wired, in one import: the names the CDK stacks, the local stack and the handlers share.

Each name is declared once, in the module that owns it; this module gathers them so a caller need not know which:

- ``assistant.environment``: every environment variable (:data:`SETTINGS`); ``assistant.stage_settings``: a
  stage's values;
- ``assistant.function_specs``: the Lambda functions (the WebSocket routes are ``assistant.route_table``'s, built
  from the table of actions in ``assistant.action_table``);
- ``assistant.providers``: the model provider profiles and what each can do;
- ``assistant.resources``: the table, the bucket, the queue, the key's secret, the metrics, the platform's limits.

Nothing here touches AWS or imports a heavy dependency: the CDK app imports it at synth time and the Lambda handlers
at cold start.
"""

from __future__ import annotations

from typing import Any

from assistant.environment import (
    DEFAULT_MAX_MESSAGE_CHARS,
    MAX_TOKEN_RECHECK_SECONDS,
    SETTINGS,
    STAGE_SETTINGS,
    Env,
    InvalidSetting,
    MissingSetting,
    Setting,
)
from assistant.function_specs import (
    AUTHORIZER,
    COMMANDS,
    CONNECT,
    DEFAULT,
    DISCONNECT,
    FUNCTIONS,
    POWERTOOLS_ENV,
    SEND_MESSAGE,
    WORKER,
    FunctionSpec,
    function_environment,
)
from assistant.providers import (
    BEDROCK_INFERENCE_PROFILE_PREFIXES,
    PROVIDER_CAPABILITIES,
    ModelProvider,
    ProviderCapabilities,
)
from assistant.resources import (
    AUTH_QUERY_PARAMETER,
    BUCKET,
    CONNECTION_TTL_SECONDS,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    MESSAGE_TTL_SECONDS,
    OPENAI_SECRET_NAME_FORMAT,
    QUEUE,
    TABLE,
    TOKEN_LEEWAY_SECONDS,
    USAGE_TTL_SECONDS,
    BucketAction,
    BucketGrant,
    BucketSpec,
    Metric,
    QueueSpec,
    TableAction,
    TableSpec,
    set_openai_key_command,
)


def __getattr__(name: str) -> Any:
    """The route table (``assistant.route_table``) and a stage's values (``assistant.stage_settings``), imported
    when asked for: the functions never need them, and the route table is built from the client frames' pydantic
    models, which the authorizer keeps off its cold start."""
    if name in ("ROUTES", "RouteSpec", "ROUTE_SELECTION_EXPRESSION"):
        from assistant import route_table

        return getattr(route_table, name)
    if name in ("STAGE_DEFAULTS", "StageSettings"):
        from assistant import stage_settings

        return getattr(stage_settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUTHORIZER",
    "AUTH_QUERY_PARAMETER",
    "BEDROCK_INFERENCE_PROFILE_PREFIXES",
    "BUCKET",
    "COMMANDS",
    "CONNECT",
    "CONNECTION_TTL_SECONDS",
    "DEFAULT",
    "DEFAULT_MAX_MESSAGE_CHARS",
    "DISCONNECT",
    "FUNCTIONS",
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_TOKEN_RECHECK_SECONDS",
    "MESSAGE_TTL_SECONDS",
    "OPENAI_SECRET_NAME_FORMAT",
    "POWERTOOLS_ENV",
    "PROVIDER_CAPABILITIES",
    "QUEUE",
    "SEND_MESSAGE",
    "SETTINGS",
    "STAGE_SETTINGS",
    "TABLE",
    "TOKEN_LEEWAY_SECONDS",
    "USAGE_TTL_SECONDS",
    "WORKER",
    "BucketAction",
    "BucketGrant",
    "BucketSpec",
    "Env",
    "FunctionSpec",
    "InvalidSetting",
    "Metric",
    "MissingSetting",
    "ModelProvider",
    "ProviderCapabilities",
    "QueueSpec",
    "Setting",
    "TableAction",
    "TableSpec",
    "function_environment",
    "set_openai_key_command",
]
