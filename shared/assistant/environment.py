"""Every environment variable a function reads, each declared once (:data:`SETTINGS`): its kind and bounds, its
default, whether a stage may set it and which functions get it (:class:`assistant.setting.Setting`).

From it come each function's declared environment (``FunctionSpec.env``), its typed settings (``assistant.settings``),
a stage's values and their check at synth (``assistant.stage_settings.StageSettings``, which
``infra.stage.StageConfig`` extends: the same :meth:`Setting.parse` the functions run), the CDK and local
environments and docs/settings.md. Adding a stage-tunable limit: its :class:`Env` member and :class:`Setting` here,
the field of each function's settings class that reads it (``assistant.settings``), and its use.

Nothing here imports pydantic, boto3 or aws_cdk: the authorizer reads it at cold start, the CDK app at synth.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from assistant.providers import ModelProvider
from assistant.resources import QUEUE
from assistant.setting import InvalidSetting as InvalidSetting
from assistant.setting import Kind, Setting
from assistant.setting import MissingSetting as MissingSetting


class Env(StrEnum):
    """Names of the environment variables the functions read (:data:`SETTINGS` says what each one is).
    Values are never secrets: the model key is read from Secrets Manager."""

    TABLE_NAME = "TABLE_NAME"
    QUEUE_URL = "QUEUE_URL"
    CALLBACK_URL = "CALLBACK_URL"
    USER_POOL_ID = "USER_POOL_ID"
    USER_POOL_CLIENT_ID = "USER_POOL_CLIENT_ID"
    COGNITO_ISSUER = "COGNITO_ISSUER"
    COGNITO_JWKS_URL = "COGNITO_JWKS_URL"
    TOKEN_RECHECK_SECONDS = "TOKEN_RECHECK_SECONDS"
    OPENAI_SECRET_NAME = "OPENAI_SECRET_NAME"
    OPENAI_BASE_URL = "OPENAI_BASE_URL"
    MODEL_PROVIDER = "MODEL_PROVIDER"
    MAX_MESSAGE_CHARS = "MAX_MESSAGE_CHARS"
    DAILY_MESSAGE_QUOTA = "DAILY_MESSAGE_QUOTA"
    DAILY_OUTPUT_TOKEN_QUOTA = "DAILY_OUTPUT_TOKEN_QUOTA"
    DAILY_INPUT_TOKEN_QUOTA = "DAILY_INPUT_TOKEN_QUOTA"
    RATE_LIMIT_SEND_MESSAGE = "RATE_LIMIT_SEND_MESSAGE"
    RATE_LIMIT_NEW_CONVERSATION = "RATE_LIMIT_NEW_CONVERSATION"
    RATE_LIMIT_GET_HISTORY = "RATE_LIMIT_GET_HISTORY"
    RATE_LIMIT_LIST_CONVERSATIONS = "RATE_LIMIT_LIST_CONVERSATIONS"
    RATE_LIMIT_CANCEL = "RATE_LIMIT_CANCEL"
    RATE_LIMIT_PING = "RATE_LIMIT_PING"
    RATE_LIMIT_GET_USAGE = "RATE_LIMIT_GET_USAGE"
    RATE_LIMIT_RENAME_CONVERSATION = "RATE_LIMIT_RENAME_CONVERSATION"
    RATE_LIMIT_DELETE_CONVERSATION = "RATE_LIMIT_DELETE_CONVERSATION"
    RATE_LIMIT_DELETE_ALL_DATA = "RATE_LIMIT_DELETE_ALL_DATA"
    RATE_LIMIT_REQUEST_UPLOAD = "RATE_LIMIT_REQUEST_UPLOAD"
    RATE_LIMIT_GET_ATTACHMENT = "RATE_LIMIT_GET_ATTACHMENT"
    RATE_LIMIT_CONNECT = "RATE_LIMIT_CONNECT"
    UPLOAD_BUCKET_NAME = "UPLOAD_BUCKET_NAME"
    MAX_IMAGE_BYTES = "MAX_IMAGE_BYTES"
    MAX_PDF_BYTES = "MAX_PDF_BYTES"
    DAILY_UPLOAD_BYTES_QUOTA = "DAILY_UPLOAD_BYTES_QUOTA"
    MAX_CONNECTIONS_PER_USER = "MAX_CONNECTIONS_PER_USER"
    MAX_WAITING_MESSAGES = "MAX_WAITING_MESSAGES"
    MAX_CONVERSATIONS_PER_USER = "MAX_CONVERSATIONS_PER_USER"
    RETENTION_DAYS = "RETENTION_DAYS"
    FLUSH_INTERVAL_MS = "FLUSH_INTERVAL_MS"
    FLUSH_CHARS = "FLUSH_CHARS"
    FLUSH_MAX_INTERVAL_MS = "FLUSH_MAX_INTERVAL_MS"
    MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"
    MODEL_OVERRIDE = "MODEL_OVERRIDE"
    MODEL_READ_TIMEOUT_MS = "MODEL_READ_TIMEOUT_MS"
    ASSISTANT_FILE = "ASSISTANT_FILE"
    # Powertools reads these itself.
    SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"


#: What Powertools itself reads in every handler: the service name for logs, the log level, and the namespace
#: without which ``Metrics`` refuses to flush (``SchemaValidationError``), failing every invocation that adds a
#: metric. Every function gets them by construction, so no spec can forget them.
POWERTOOLS_ENV: Final = (Env.SERVICE_NAME, Env.METRICS_NAMESPACE, Env.LOG_LEVEL)

#: The functions, by ``FunctionSpec.name``.
AUTHORIZER_FN: Final = "authorizer"
CONNECT_FN: Final = "connect"
DISCONNECT_FN: Final = "disconnect"
DEFAULT_FN: Final = "default"
SEND_MESSAGE_FN: Final = "send_message"
COMMANDS_FN: Final = "commands"
WORKER_FN: Final = "worker"
ALL_FUNCTIONS: Final = (AUTHORIZER_FN, CONNECT_FN, DISCONNECT_FN, SEND_MESSAGE_FN, COMMANDS_FN, DEFAULT_FN, WORKER_FN)
#: Functions that touch the table.
_TABLE_USERS: Final = (CONNECT_FN, DISCONNECT_FN, SEND_MESSAGE_FN, COMMANDS_FN, WORKER_FN)
#: Message routes that end a connection whose token expired or was revoked (``assistant.routes``).
_CLOSING_ROUTES: Final = (SEND_MESSAGE_FN, COMMANDS_FN, DEFAULT_FN)
#: Functions that count usage against the daily quotas, or report it.
_QUOTA_USERS: Final = (SEND_MESSAGE_FN, COMMANDS_FN, WORKER_FN)
#: Functions that build a model client (the worker answers; ``commands`` cancels a background response).
_MODEL_USERS: Final = (COMMANDS_FN, WORKER_FN)
#: Functions that read, write or sign attachments.
_ATTACHMENT_USERS: Final = (SEND_MESSAGE_FN, WORKER_FN)


def _limit(env: Env, functions: tuple[str, ...], default: str, doc: str) -> Setting:
    return Setting(env, functions, doc, kind=Kind.RATE_LIMIT, default=default, stage=True)


def _count(
    env: Env, functions: tuple[str, ...], default: int, doc: str, *, minimum: int = 1, maximum: int | None = None
) -> Setting:
    return Setting(
        env, functions, doc, kind=Kind.INT, default=str(default), minimum=minimum, maximum=maximum, stage=True
    )


#: The longest a stage may trust Cognito's "still accepted" about a token: a revoked token is refused within this.
MAX_TOKEN_RECHECK_SECONDS: Final = 60
#: A stage's default limit on the characters of one user message.
DEFAULT_MAX_MESSAGE_CHARS: Final = 16_000
#: Ten years: beyond this, "retention" is not a limit anyone states.
MAX_RETENTION_DAYS: Final = 3650
#: Coalescing intervals beyond this would read as a stalled reply; the worker's flush loop assumes it.
MAX_FLUSH_INTERVAL_MS: Final = 2_000

_SETTINGS: tuple[Setting, ...] = (
    # --- Wired by the stack: names and addresses of the stage's own resources --------------------------------------
    Setting(Env.TABLE_NAME, _TABLE_USERS, "The stage's DynamoDB table."),
    Setting(
        Env.QUEUE_URL,
        (SEND_MESSAGE_FN, COMMANDS_FN, WORKER_FN),
        "The FIFO queue: sendMessage enqueues, commands hands erasures over, the worker re-queues a failed record "
        "sooner than the visibility timeout would.",
    ),
    Setting(
        Env.CALLBACK_URL,
        (*_CLOSING_ROUTES, WORKER_FN),
        "The stage's @connections endpoint: the worker posts replies, routes close expired connections.",
    ),
    Setting(Env.USER_POOL_ID, (AUTHORIZER_FN,), "The Cognito user pool whose access tokens are accepted."),
    Setting(Env.USER_POOL_CLIENT_ID, (AUTHORIZER_FN,), "The app client whose tokens are accepted."),
    Setting(
        Env.COGNITO_ISSUER,
        (AUTHORIZER_FN,),
        "Overrides the token issuer expected (local stack and tests); unset: the user pool's.",
        optional=True,
    ),
    Setting(
        Env.COGNITO_JWKS_URL,
        (AUTHORIZER_FN,),
        "Overrides where the authorizer reads the JWKS (local stack and tests); unset: the user pool's.",
        optional=True,
    ),
    Setting(
        Env.UPLOAD_BUCKET_NAME,
        _ATTACHMENT_USERS,
        "The private bucket attachments are uploaded to (uploads/) and kept in once attached (files/).",
    ),
    Setting(
        Env.OPENAI_SECRET_NAME,
        _MODEL_USERS,
        "The secret holding the model's API key; unset on a Bedrock stage (requests are signed with the role).",
        optional=True,
    ),
    Setting(
        Env.OPENAI_BASE_URL,
        _MODEL_USERS,
        "Any Responses-compatible server (the local stack's offline model, a self-hosted one); unset: the "
        "provider's own endpoint.",
        optional=True,
    ),
    Setting(
        Env.MODEL_PROVIDER,
        (SEND_MESSAGE_FN, *_MODEL_USERS),
        "Which server of the Responses API the stage talks to and what it can do (docs/providers.md); sendMessage "
        "reads which kinds of attachment its models take.",
        kind=Kind.CHOICE,
        default=ModelProvider.OPENAI.value,
        choices=tuple(provider.value for provider in ModelProvider),
    ),
    Setting(
        Env.MODEL_OVERRIDE,
        (WORKER_FN,),
        "The stage's model instead of the definition's (``--context model=...``).",
        optional=True,
    ),
    Setting(
        Env.MODEL_READ_TIMEOUT_MS,
        _MODEL_USERS,
        "How long to wait for the model's first byte (and between chunks) before retrying; unset: the model "
        "client's default.",
        kind=Kind.INT,
        optional=True,
        minimum=100,
        maximum=120_000,
    ),
    Setting(
        Env.ASSISTANT_FILE,
        _MODEL_USERS,
        "The assistant definition to load instead of the packaged assistant.toml (``--context assistantFile=...``).",
        optional=True,
    ),
    Setting(
        Env.MAX_RECEIVE_COUNT,
        (WORKER_FN,),
        "Deliveries of a message before it goes to the dead-letter queue (the queue's redrive policy): the worker "
        "tells the user on the last one.",
        kind=Kind.INT,
        default=str(QUEUE.max_receive_count),
        minimum=1,
    ),
    Setting(Env.SERVICE_NAME, ALL_FUNCTIONS, "Powertools: the service name in logs and metrics (the function's name)."),
    Setting(
        Env.METRICS_NAMESPACE,
        ALL_FUNCTIONS,
        "Powertools: the metrics namespace, without which every invocation that adds a metric fails.",
    ),
    Setting(Env.LOG_LEVEL, ALL_FUNCTIONS, "Powertools: the log level.", default="INFO"),
    # --- A stage's limits (StageSettings): per-user buckets, caps, quotas, retention, streaming ----------------------
    _limit(Env.RATE_LIMIT_SEND_MESSAGE, (SEND_MESSAGE_FN,), "10/30", "sendMessage per user: a person chatting."),
    _limit(Env.RATE_LIMIT_NEW_CONVERSATION, (COMMANDS_FN,), "5/10", "newConversation per user."),
    _limit(Env.RATE_LIMIT_GET_HISTORY, (COMMANDS_FN,), "20/60", "getHistory per user."),
    _limit(Env.RATE_LIMIT_LIST_CONVERSATIONS, (COMMANDS_FN,), "20/60", "listConversations per user."),
    _limit(
        Env.RATE_LIMIT_CANCEL,
        (COMMANDS_FN,),
        "30/60",
        "cancel per user; generous, since Stop must always work (repeats are no-ops but still cost a run).",
    ),
    _limit(
        Env.RATE_LIMIT_PING,
        (COMMANDS_FN,),
        "30/120",
        "ping per user; generous, since a page keeps its connection alive with pings.",
    ),
    _limit(Env.RATE_LIMIT_GET_USAGE, (COMMANDS_FN,), "20/60", "getUsage per user."),
    _limit(Env.RATE_LIMIT_RENAME_CONVERSATION, (COMMANDS_FN,), "10/30", "renameConversation per user."),
    _limit(Env.RATE_LIMIT_DELETE_CONVERSATION, (COMMANDS_FN,), "10/30", "deleteConversation per user."),
    _limit(
        Env.RATE_LIMIT_DELETE_ALL_DATA,
        (COMMANDS_FN,),
        "2/2",
        "deleteAllData per user: it reads and deletes everything, and nobody needs it twice in a row.",
    ),
    _limit(Env.RATE_LIMIT_REQUEST_UPLOAD, (SEND_MESSAGE_FN,), "10/20", "requestUpload per user."),
    _limit(Env.RATE_LIMIT_GET_ATTACHMENT, (SEND_MESSAGE_FN,), "30/60", "getAttachment per user."),
    _limit(
        Env.RATE_LIMIT_CONNECT,
        (CONNECT_FN,),
        "20/30",
        "$connect per user (refused with HTTP 429): a reconnect loop or a script opening sockets.",
    ),
    _count(
        Env.MAX_CONNECTIONS_PER_USER,
        (CONNECT_FN,),
        10,
        "Open connections one user may hold; the newest beyond it is refused at $connect.",
    ),
    _count(
        Env.MAX_WAITING_MESSAGES,
        (SEND_MESSAGE_FN,),
        5,
        "Messages of one user waiting in the queue at once; more are refused at intake (rate_limited).",
    ),
    _count(
        Env.MAX_CONVERSATIONS_PER_USER,
        (COMMANDS_FN,),
        1000,
        "Conversations one user may keep; newConversation beyond it is refused with quota_exceeded.",
    ),
    _count(
        Env.MAX_MESSAGE_CHARS,
        (SEND_MESSAGE_FN,),
        DEFAULT_MAX_MESSAGE_CHARS,
        "Characters of one user message (message_too_long beyond).",
    ),
    _count(Env.DAILY_MESSAGE_QUOTA, _QUOTA_USERS, 200, "Messages per user per UTC day."),
    _count(Env.DAILY_OUTPUT_TOKEN_QUOTA, _QUOTA_USERS, 200_000, "Output tokens per user per UTC day."),
    _count(
        Env.DAILY_INPUT_TOKEN_QUOTA,
        _QUOTA_USERS,
        2_000_000,
        "Input tokens per user per UTC day: conversations resend their history, so input runs ahead of output.",
    ),
    _count(Env.MAX_IMAGE_BYTES, _ATTACHMENT_USERS, 10 * 1024 * 1024, "The largest image one upload may be."),
    _count(Env.MAX_PDF_BYTES, _ATTACHMENT_USERS, 20 * 1024 * 1024, "The largest PDF one upload may be."),
    _count(
        Env.DAILY_UPLOAD_BYTES_QUOTA,
        (SEND_MESSAGE_FN,),
        200 * 1024 * 1024,
        "Bytes one user may ask to upload per UTC day (quota_exceeded beyond): a bound on the bucket's bill.",
    ),
    _count(
        Env.RETENTION_DAYS,
        (SEND_MESSAGE_FN, COMMANDS_FN, WORKER_FN),
        0,
        "Days a conversation, its turns and its message records are kept after their last use (a DynamoDB TTL, "
        'pushed back by every use); 0: kept until the user deletes them (docs/deploy.md, "Your users\' data").',
        minimum=0,
        maximum=MAX_RETENTION_DAYS,
    ),
    _count(
        Env.FLUSH_INTERVAL_MS,
        (WORKER_FN,),
        100,
        "The first text of a reply goes out at once, the next after this; 0: no coalescing "
        "(assistant.push.DeltaCoalescer).",
        minimum=0,
        maximum=MAX_FLUSH_INTERVAL_MS,
    ),
    _count(
        Env.FLUSH_MAX_INTERVAL_MS,
        (WORKER_FN,),
        350,
        "A steady stream is coalesced on an interval growing from flush_interval_ms to this: a gap a reader does "
        "not notice as a stall.",
        minimum=0,
        maximum=MAX_FLUSH_INTERVAL_MS,
    ),
    _count(
        Env.FLUSH_CHARS,
        (WORKER_FN,),
        2_000,
        "A frame goes out early once this many characters wait (frames stay under API Gateway's 32 KB).",
        maximum=16_000,
    ),
    _count(
        Env.TOKEN_RECHECK_SECONDS,
        (AUTHORIZER_FN, *_CLOSING_ROUTES),
        MAX_TOKEN_RECHECK_SECONDS,
        "How long Cognito's answer that a token is still accepted is trusted per container: a signed-out, "
        "disabled or deleted user is refused within it (assistant.revocation).",
        maximum=MAX_TOKEN_RECHECK_SECONDS,
    ),
)

#: Every setting, by variable.
SETTINGS: Final[Mapping[Env, Setting]] = {setting.env: setting for setting in _SETTINGS}
#: The settings a stage may set, in declaration order.
STAGE_SETTINGS: Final[tuple[Setting, ...]] = tuple(setting for setting in _SETTINGS if setting.stage)


def variables_of(function: str) -> tuple[Env, ...]:
    """The variables ``function``'s environment declares, in table order."""
    return tuple(setting.env for setting in _SETTINGS if function in setting.functions)
