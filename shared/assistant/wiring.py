"""The one declaration of how the system is wired.

The CDK stacks (``infra/``) and the local stack (``scripts/local_stack``) both read this module, so a route, a
handler, a key or an environment variable is named exactly once. Nothing here touches AWS or imports a heavy
dependency: the CDK app imports it at synth time and the Lambda handlers at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

# --- Limits that are part of the protocol -----------------------------------------------------------------------

#: API Gateway WebSocket frame limit. Every payload the worker posts stays below it.
MAX_FRAME_BYTES: Final = 32 * 1024
#: API Gateway WebSocket message limit (a message may span several frames).
MAX_MESSAGE_BYTES: Final = 128 * 1024
#: Default limit on the characters of one user message (a stage may change it).
DEFAULT_MAX_MESSAGE_CHARS: Final = 16_000
#: API Gateway closes a connection after 2 hours, so connection records live a little longer than that.
CONNECTION_TTL_SECONDS: Final = 3 * 60 * 60
#: Clock skew tolerated on token times, by the authorizer and by the routes that end expired connections.
TOKEN_LEEWAY_SECONDS: Final = 30
#: The longest a stage may trust Cognito's "still accepted" about a token: a revoked token is refused within this.
MAX_TOKEN_RECHECK_SECONDS: Final = 60
#: How long a message record is kept for deduplication and cancel (far beyond SQS's 5-minute dedup window).
MESSAGE_TTL_SECONDS: Final = 7 * 24 * 60 * 60
#: How long a per-user daily usage counter is kept after its day.
USAGE_TTL_SECONDS: Final = 3 * 24 * 60 * 60


# --- Environment variables --------------------------------------------------------------------------------------


class Env(StrEnum):
    """Names of the environment variables the functions read. Values are never secrets."""

    TABLE_NAME = "TABLE_NAME"
    QUEUE_URL = "QUEUE_URL"
    CALLBACK_URL = "CALLBACK_URL"
    USER_POOL_ID = "USER_POOL_ID"
    USER_POOL_CLIENT_ID = "USER_POOL_CLIENT_ID"
    #: Overrides where the authorizer reads the JWKS and which issuer it expects (local stack and tests).
    COGNITO_ISSUER = "COGNITO_ISSUER"
    COGNITO_JWKS_URL = "COGNITO_JWKS_URL"
    #: How long a Cognito ``GetUser`` answer that a token is still accepted is trusted per container, in seconds
    #: (``assistant.revocation``): the most a signed-out, disabled or deleted user keeps access.
    TOKEN_RECHECK_SECONDS = "TOKEN_RECHECK_SECONDS"
    OPENAI_SECRET_NAME = "OPENAI_SECRET_NAME"
    #: Any Responses-compatible server (local stack: the offline model). Not a secret.
    OPENAI_BASE_URL = "OPENAI_BASE_URL"
    #: What the model server can do beyond streaming a response: a :class:`ModelProvider` value; optional
    #: (unset: ``openai``). See docs/providers.md.
    MODEL_PROVIDER = "MODEL_PROVIDER"
    MAX_MESSAGE_CHARS = "MAX_MESSAGE_CHARS"
    DAILY_MESSAGE_QUOTA = "DAILY_MESSAGE_QUOTA"
    DAILY_OUTPUT_TOKEN_QUOTA = "DAILY_OUTPUT_TOKEN_QUOTA"
    DAILY_INPUT_TOKEN_QUOTA = "DAILY_INPUT_TOKEN_QUOTA"
    #: Per-user token buckets, ``"<burst>/<per minute>"`` (see ``assistant.stores.rate_limits``).
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
    #: The private bucket attachments are uploaded to (``uploads/``) and kept in once attached (``files/``).
    UPLOAD_BUCKET_NAME = "UPLOAD_BUCKET_NAME"
    #: The largest image and PDF one upload may be, in bytes.
    MAX_IMAGE_BYTES = "MAX_IMAGE_BYTES"
    MAX_PDF_BYTES = "MAX_PDF_BYTES"
    #: Bytes one user may ask to upload per UTC day (``quota_exceeded`` beyond it).
    DAILY_UPLOAD_BYTES_QUOTA = "DAILY_UPLOAD_BYTES_QUOTA"
    #: ``$connect`` of one user (each costs an authorizer and a connect invocation), refused with 429.
    RATE_LIMIT_CONNECT = "RATE_LIMIT_CONNECT"
    #: Open connections one user may hold; the newest beyond it is refused at ``$connect``.
    MAX_CONNECTIONS_PER_USER = "MAX_CONNECTIONS_PER_USER"
    #: Messages of one user that may wait in the queue at once; more are refused at intake (``rate_limited``).
    MAX_WAITING_MESSAGES = "MAX_WAITING_MESSAGES"
    #: Conversations one user may keep; `newConversation` beyond it is refused with `quota_exceeded`.
    MAX_CONVERSATIONS_PER_USER = "MAX_CONVERSATIONS_PER_USER"
    #: Days a conversation, its turns and its message records are kept after their last use (a DynamoDB TTL,
    #: refreshed when the conversation is used); ``0``: kept until deleted (see docs/deploy.md, "Your users' data").
    RETENTION_DAYS = "RETENTION_DAYS"
    FLUSH_INTERVAL_MS = "FLUSH_INTERVAL_MS"
    FLUSH_CHARS = "FLUSH_CHARS"
    #: Frames of a steadily streaming reply are coalesced on an interval growing from FLUSH_INTERVAL_MS to this.
    FLUSH_MAX_INTERVAL_MS = "FLUSH_MAX_INTERVAL_MS"
    MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"
    MODEL_OVERRIDE = "MODEL_OVERRIDE"
    #: How long to wait for the model's first byte (and between chunks) before retrying; optional.
    MODEL_READ_TIMEOUT_MS = "MODEL_READ_TIMEOUT_MS"
    #: Path of the assistant definition to load instead of the packaged ``assistant.toml``; optional. Deployed: the
    #: file ``--context assistantFile=...`` put in the definition layer; locally: the developer's or the local
    #: stack's own (with the demo MCP server).
    ASSISTANT_FILE = "ASSISTANT_FILE"
    # Powertools reads these itself.
    SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"


class ModelProvider(StrEnum):
    """Provider profiles: which server of the Responses API a stage talks to. The conversation is ours in every one
    (stored turns are the input of every request); they differ in what the server keeps between requests and how it
    authenticates, which :attr:`capabilities` declares once for the model client, the stack and the docs."""

    #: OpenAI: stored responses, background mode for resumable definitions (a reply survives a dropped stream or
    #: a handed-back worker), stream resume, tool rounds continued with ``previous_response_id``, Stop cancels.
    OPENAI = "openai"
    #: Any other server of the Responses API (vLLM, Ollama, LM Studio, llama.cpp): stateless. Only
    #: ``POST /responses``; no ``store``, ``background`` or ``previous_response_id``; a dropped stream is retried
    #: from the start of the turn.
    OPENAI_COMPATIBLE = "openai-compatible"
    #: Amazon Bedrock's OpenAI-compatible endpoint on ``bedrock-runtime`` (AWS's recommended one): synchronous, so
    #: stateless like ``openai-compatible``. Every request is SigV4-signed with the function's own role by the
    #: ``openai`` SDK's Bedrock provider (``assistant.bedrock``): no key anywhere.
    BEDROCK = "bedrock"
    #: Amazon Bedrock's ``bedrock-mantle`` endpoint: stored responses, background inference (a response outlives its
    #: stream, is retrieved and cancelled) and ``previous_response_id``; its own IAM service (``bedrock-mantle:``),
    #: signed the same way.
    BEDROCK_MANTLE = "bedrock-mantle"

    @property
    def capabilities(self) -> ProviderCapabilities:
        return PROVIDER_CAPABILITIES[self]

    def base_url(self, region: str) -> str | None:
        """The provider's Responses endpoint in ``region``; ``None``: the SDK's default (OpenAI) or whatever
        ``OPENAI_BASE_URL`` names (self-hosted servers have no fixed address)."""
        template = self.capabilities.base_url_template
        return template.format(region=region) if template else None


@dataclass(frozen=True)
class ProviderCapabilities:
    """What a provider's Responses endpoint supports beyond one streamed response, and how it authenticates."""

    #: ``store=true``, ``responses.retrieve`` and ``previous_response_id``.
    stored_responses: bool
    #: ``background=true`` and ``responses.cancel`` (needs stored responses): a response outlives its stream.
    background: bool
    #: ``responses.retrieve(id, stream=True, starting_after=N)`` re-streams a background response's events.
    stream_resume: bool
    #: ``reasoning={"effort": ...}`` is accepted.
    reasoning: bool
    #: ``tool_choice`` is honoured (the last permitted tool round forbids tools with ``"none"``).
    tool_choice: bool
    #: ``truncation="auto"``: the server drops the oldest input itself when it outgrows the window.
    truncation_auto: bool
    #: ``secret``: an API key in the stage's secret; ``optional_secret``: a key only if the server wants one;
    #: ``aws_sigv4``: no key at all, every request SigV4-signed with the function's role by the SDK's Bedrock
    #: provider for :attr:`bedrock_endpoint` (``assistant.bedrock``).
    auth: Literal["secret", "optional_secret", "aws_sigv4"]
    #: The endpoint, ``{region}`` filled in from the function's region; ``None``: the SDK's default or
    #: ``OPENAI_BASE_URL``. An explicit ``OPENAI_BASE_URL`` always wins (and is signed the same way).
    base_url_template: str | None = None
    #: Which of Bedrock's endpoints the SDK's provider signs for (``runtime``: SigV4 service ``bedrock``;
    #: ``mantle``: service ``bedrock-mantle``); ``None`` for a provider that is not Bedrock.
    bedrock_endpoint: Literal["runtime", "mantle"] | None = None
    #: The model a stage of this profile uses without ``--context model=...`` (its IAM grant names it); ``None``:
    #: the packaged definition's model. Model ids differ per Bedrock endpoint, so each profile names its own.
    default_model: str | None = None
    #: The kinds of attachment the profile's models read (``image``: ``input_image``; ``pdf``: ``input_file``); a
    #: message with another kind is refused at intake with ``unsupported_attachment`` (docs/providers.md).
    reads_attachments: tuple[Literal["image", "pdf"], ...] = ("image", "pdf")
    #: How a file is handed to the model: ``url`` (a short-lived presigned GET the provider fetches) or ``inline``
    #: (a base64 ``data:`` URL in the request). See docs/providers.md for why each profile uses which.
    attachment_transport: Literal["url", "inline"] = "inline"
    #: The ``reasoning_effort`` values the profile's models take; ``None``: every value the SDK knows. A definition
    #: with another value is refused at synth and at load (:func:`definition_refusal`), naming field and profile.
    reasoning_efforts: tuple[str, ...] | None = None


PROVIDER_CAPABILITIES: Final[dict[ModelProvider, ProviderCapabilities]] = {
    ModelProvider.OPENAI: ProviderCapabilities(
        stored_responses=True,
        background=True,
        stream_resume=True,
        reasoning=True,
        tool_choice=True,
        truncation_auto=True,
        auth="secret",
        # OpenAI fetches image and file URLs itself, so a deployed stage sends a presigned GET, not megabytes of
        # base64 in every request; a bucket it cannot reach (the local stack's moto on 127.0.0.1) falls back to
        # inline data (assistant.attachments.AttachmentReader).
        attachment_transport="url",
    ),
    # One profile for every self-hosted server, so it claims only what all of them do (docs/providers.md has the
    # table with sources): `reasoning` is never sent, since Ollama answers 400 when it is sent to a model that does
    # not think and the profile cannot know the model; `tool_choice` counts as ignored, since Ollama ignores it
    # (its Responses API takes `tools` but not `tool_choice`), so the last tool round offers no tools at all.
    ModelProvider.OPENAI_COMPATIBLE: ProviderCapabilities(
        stored_responses=False,
        background=False,
        stream_resume=False,
        reasoning=False,
        tool_choice=False,
        truncation_auto=False,
        auth="optional_secret",
    ),
    # AWS: "Requests on bedrock-runtime are always synchronous, server-side tools aren't available, and only the
    # default project is supported": no background, no stored responses to retrieve or continue. Function tools,
    # tool_choice and reasoning effort are part of the Responses API it serves (docs/providers.md).
    ModelProvider.BEDROCK: ProviderCapabilities(
        stored_responses=False,
        background=False,
        stream_resume=False,
        reasoning=True,
        tool_choice=True,
        truncation_auto=False,
        auth="aws_sigv4",
        # AWS's base URL for the Responses API on bedrock-runtime (the SDK's provider defaults to the same):
        # https://docs.aws.amazon.com/bedrock/latest/userguide/inference-responses-api.html
        base_url_template="https://bedrock-runtime.{region}.amazonaws.com/openai/v1",
        bedrock_endpoint="runtime",
        # bedrock-runtime ids carry a version suffix: "Model ID openai.gpt-oss-120b-1:0",
        # https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-openai.html
        default_model="openai.gpt-oss-120b-1:0",
        # GPT OSS reads text only (model-parameters-openai.html above): images and PDFs are refused at intake.
        reads_attachments=(),
        # GPT OSS takes reasoning effort "low", "medium" or "high" (model-parameters-openai.html above); the gpt-5
        # family's "minimal" and "none" are refused.
        reasoning_efforts=("low", "medium", "high"),
    ),
    # AWS documents asynchronous (background) inference and stateful conversations (stored responses,
    # previous_response_id) on bedrock-mantle; not a re-stream of a running response from an event offset, so a
    # dropped stream is recovered by polling the stored response (what the model client does anyway).
    ModelProvider.BEDROCK_MANTLE: ProviderCapabilities(
        stored_responses=True,
        background=True,
        stream_resume=False,
        reasoning=True,
        tool_choice=True,
        truncation_auto=False,
        auth="aws_sigv4",
        # AWS gives mantle's base URL as .../v1 (inference-responses-api.html above; a few models are served under
        # /openai/v1 instead, the SDK provider's own default, so the model's row in AWS's table decides, and
        # OPENAI_BASE_URL overrides). GPT OSS models are served there under /v1.
        base_url_template="https://bedrock-mantle.{region}.api.aws/v1",
        bedrock_endpoint="mantle",
        # Mantle ids have no version suffix (its /v1/models catalog); AWS names Responses API access to the GPT
        # OSS models among mantle's reasons to exist (inference-responses-api.html above).
        default_model="openai.gpt-oss-120b",
        reads_attachments=(),
        reasoning_efforts=("low", "medium", "high"),
    ),
}

#: The geography prefixes of Bedrock's system-defined cross-region inference profiles (a bedrock-runtime model id
#: such as ``us.anthropic...``); the default models (:attr:`ProviderCapabilities.default_model`) are plain ids.
BEDROCK_INFERENCE_PROFILE_PREFIXES: Final = ("us.", "eu.", "apac.", "global.", "jp.", "au.", "ca.", "us-gov.")


class MissingSetting(RuntimeError):
    """A function was deployed without an environment variable it needs: a wiring bug, not bad input.

    Declared here, not in ``assistant.settings``, so the authorizer can raise it without importing pydantic."""


class InvalidSetting(RuntimeError):
    """A function's environment variable holds a value its settings refuse (a stage's limit out of range, say)."""


# --- The model key ----------------------------------------------------------------------------------------------

#: Each stage's secret holding the model's API key (``infra.names.openai_secret_name`` fills it in).
OPENAI_SECRET_NAME_FORMAT: Final = "gpt-assistant/{stage}/openai-api-key"


def set_openai_key_command(secret_name: str) -> str:
    """The command an operator runs to put the key into ``secret_name`` (named in the worker's log)."""
    prefix, _, rest = OPENAI_SECRET_NAME_FORMAT.partition("{stage}")
    if secret_name.startswith(prefix) and secret_name.endswith(rest):
        stage = secret_name[len(prefix) : len(secret_name) - len(rest)]
        return f".venv/bin/python -m scripts.set_openai_key --stage {stage}"
    return f"aws secretsmanager put-secret-value --secret-id {secret_name} --secret-string file://<file with the key>"


# --- Metrics ----------------------------------------------------------------------------------------------------


class Metric(StrEnum):
    """Custom metrics the functions emit (Powertools EMF); the stack's alarms watch some of them."""

    MESSAGES_ACCEPTED = "MessagesAccepted"
    REPLIES_COMPLETED = "RepliesCompleted"
    REPLIES_CANCELLED = "RepliesCancelled"
    REPLIES_FAILED = "RepliesFailed"
    DUPLICATE_DELIVERIES = "DuplicateDeliveries"
    OUTPUT_TOKENS = "OutputTokens"
    INPUT_TOKENS = "InputTokens"
    TIME_TO_FIRST_TEXT = "TimeToFirstText"
    FRAMES_POSTED = "FramesPosted"
    BAD_REQUESTS = "BadRequests"
    AUTH_DENIED = "AuthDenied"
    AUTH_ALLOWED = "AuthAllowed"
    CONNECTIONS_OPENED = "ConnectionsOpened"
    CONNECTIONS_CLOSED = "ConnectionsClosed"
    CONNECTIONS_REFUSED = "ConnectionsRefused"
    CONNECTIONS_EXPIRED = "ConnectionsExpired"
    #: A route found the connection's token revoked in Cognito (signed out, disabled, deleted) and closed it.
    CONNECTIONS_REVOKED = "ConnectionsRevoked"
    #: A route closed a connection that kept sending past its rate limits (``assistant.refusals``).
    CONNECTIONS_CLOSED_FOR_FLOODING = "ConnectionsClosedForFlooding"
    #: Cognito could not be asked whether a token was revoked (throttled, down): ``$connect`` refused, frames let
    #: through unchecked for a while (``assistant.revocation``).
    REVOCATION_CHECKS_UNAVAILABLE = "RevocationChecksUnavailable"
    RATE_LIMITED = "RateLimited"
    ROUTE_REQUESTS = "RouteRequests"
    RECORDS_RECEIVED = "RecordsReceived"
    #: An MCP server could not be listed, a call to it failed or timed out, or its tool reported an error.
    MCP_TOOL_FAILURES = "McpToolFailures"
    #: Per reply (one value per finished reply, so CloudWatch's statistics give the distribution): delta frames
    #: posted, and checkpoint writes to the message record. What a reply costs in API Gateway and DynamoDB requests.
    FRAMES_PER_REPLY = "FramesPerReply"
    CHECKPOINT_WRITES_PER_REPLY = "CheckpointWritesPerReply"
    #: Turns and message records of deleted conversations removed by the worker (``assistant.stores.erasure``).
    ITEMS_ERASED = "ItemsErased"


# --- Table ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """One DynamoDB table holds every record; see ``docs/architecture.md`` for the item types."""

    partition_key: str = "pk"
    sort_key: str = "sk"
    ttl_attribute: str = "expiresAt"


TABLE: Final = TableSpec()


class TableAction(StrEnum):
    """The DynamoDB actions a function may be granted on the table (the values are IAM action names).

    A transaction needs no action of its own: IAM authorizes each of its ``Put``/``Update``/``Delete`` items as
    ``PutItem``/``UpdateItem``/``DeleteItem`` (and a ``ConditionCheck`` as ``ConditionCheckItem``).
    """

    GET_ITEM = "dynamodb:GetItem"
    BATCH_GET_ITEM = "dynamodb:BatchGetItem"
    PUT_ITEM = "dynamodb:PutItem"
    UPDATE_ITEM = "dynamodb:UpdateItem"
    DELETE_ITEM = "dynamodb:DeleteItem"
    QUERY = "dynamodb:Query"
    #: Erasing a conversation's items in batches of 25 (``assistant.stores.erasure``).
    BATCH_WRITE_ITEM = "dynamodb:BatchWriteItem"
    #: A transaction's check that a conversation still exists (a reply in a deleted conversation writes nothing).
    CONDITION_CHECK_ITEM = "dynamodb:ConditionCheckItem"


# --- Attachments bucket -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketSpec:
    """The private bucket of attachments. A client posts a file under :attr:`upload_prefix` (a presigned POST that
    only ``requestUpload`` signs); the worker moves it under :attr:`file_prefix` when its message is answered, so
    what was never attached is removed by the lifecycle rule after :attr:`unattached_expiry_days`."""

    upload_prefix: str = "uploads/"
    file_prefix: str = "files/"
    unattached_expiry_days: int = 1
    #: How long a presigned POST (``upload``) and a presigned GET (``attachment``, and a file handed to a model by
    #: URL) stay valid.
    upload_url_seconds: int = 10 * 60
    download_url_seconds: int = 10 * 60


BUCKET: Final = BucketSpec()


class BucketAction(StrEnum):
    """S3 actions a function may be granted on one prefix of the attachments bucket (IAM action names)."""

    #: Also what a presigned POST signed with the role's credentials is authorized as.
    PUT_OBJECT = "s3:PutObject"
    #: Also ``HeadObject``, a ranged GET and what a presigned GET is authorized as.
    GET_OBJECT = "s3:GetObject"
    DELETE_OBJECT = "s3:DeleteObject"


@dataclass(frozen=True)
class BucketGrant:
    action: BucketAction
    prefix: str


# --- Queue ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueSpec:
    """The FIFO queue between ``sendMessage`` and the worker."""

    #: Attempts before a message goes to the dead-letter queue; the worker sends the user an ``error`` frame on
    #: the last one.
    max_receive_count: int = 3
    #: Records per worker invocation. A reply streams for seconds, and records in one batch are answered one after
    #: another, so a batch of several users would make each wait behind the others: one record per invocation lets
    #: Lambda answer every user's group in parallel. The worker still handles larger batches correctly (a failed
    #: record fails the rest of its group, and only its group).
    batch_size: int = 1
    #: SQS FIFO wants the visibility timeout well above the consumer's timeout (6x is the usual rule).
    visibility_timeout_factor: int = 6
    retention_days: int = 4
    dlq_retention_days: int = 14


QUEUE: Final = QueueSpec()


# --- Functions and routes ---------------------------------------------------------------------------------------


#: What Powertools itself reads in every handler: the service name for logs, the log level, and the namespace
#: without which ``Metrics`` refuses to flush (``SchemaValidationError``), failing every invocation that adds a
#: metric. Every function gets them by construction, so no spec can forget them.
POWERTOOLS_ENV: Final = (Env.SERVICE_NAME, Env.METRICS_NAMESPACE, Env.LOG_LEVEL)


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function: where its handler lives and what it needs."""

    name: str
    #: ``module.function`` relative to ``lambdas/``.
    handler: str
    description: str
    timeout_seconds: int
    memory_mb: int = 512
    #: Every variable the function reads. :data:`POWERTOOLS_ENV` is always added, so list only the function's own.
    env: tuple[Env, ...] = ()
    reads_openai_secret: bool = False
    #: Calls the definition's MCP servers, so it may read the secrets they name (and nothing else does).
    calls_mcp_servers: bool = False
    posts_to_connections: bool = False
    #: May post to and close connections: a route that finds the connection's token expired says so and closes it.
    closes_connections: bool = False
    sends_to_queue: bool = False
    #: Exactly the table actions the function's code path calls (see :class:`TableAction`); empty: no access.
    table_actions: tuple[TableAction, ...] = ()
    #: Exactly the S3 actions, per key prefix, the function's code path uses on the attachments bucket.
    bucket_grants: tuple[BucketGrant, ...] = ()

    def __post_init__(self) -> None:
        own = tuple(name for name in self.env if name not in POWERTOOLS_ENV)
        object.__setattr__(self, "env", (*POWERTOOLS_ENV, *own))


_COMMON_ENV = (Env.TABLE_NAME,)

AUTHORIZER: Final = FunctionSpec(
    name="authorizer",
    handler="authorizer.handler",
    description="$connect REQUEST authorizer: verifies the Cognito access token in ?Auth=",
    timeout_seconds=10,
    memory_mb=256,
    env=(
        Env.USER_POOL_ID,
        Env.USER_POOL_CLIENT_ID,
        Env.COGNITO_ISSUER,
        Env.COGNITO_JWKS_URL,
        # Asks Cognito's GetUser whether the token was revoked (assistant.revocation): authorized by the token
        # itself, so no IAM grant.
        Env.TOKEN_RECHECK_SECONDS,
    ),
)
#: What the route functions need to answer ``token_expired`` or ``token_revoked`` and close the connection (see
#: assistant.routes): the ``@connections`` endpoint, and how often a connection's token is re-checked with Cognito.
_CLOSES_EXPIRED = (Env.CALLBACK_URL, Env.TOKEN_RECHECK_SECONDS)
_ATTACHMENT_ENV = (Env.UPLOAD_BUCKET_NAME, Env.MAX_IMAGE_BYTES, Env.MAX_PDF_BYTES)
_QUOTAS = (Env.DAILY_MESSAGE_QUOTA, Env.DAILY_INPUT_TOKEN_QUOTA, Env.DAILY_OUTPUT_TOKEN_QUOTA)

CONNECT: Final = FunctionSpec(
    name="connect",
    handler="connect.handler",
    description="$connect: records the connection under its user",
    timeout_seconds=10,
    env=(*_COMMON_ENV, Env.MAX_CONNECTIONS_PER_USER, Env.RATE_LIMIT_CONNECT),
    # Records this connection and counts it against the cap (a transaction of a Put and an Update); at the cap,
    # reclaims records whose $disconnect never came (Query, GetItem, a Delete and Update transaction, UpdateItem).
    table_actions=(
        TableAction.QUERY,
        TableAction.GET_ITEM,
        TableAction.PUT_ITEM,
        TableAction.UPDATE_ITEM,
        TableAction.DELETE_ITEM,
    ),
)
DISCONNECT: Final = FunctionSpec(
    name="disconnect",
    handler="disconnect.handler",
    description="$disconnect: deletes the connection record",
    timeout_seconds=10,
    env=_COMMON_ENV,
    # Deletes the record and uncounts it (a transaction of a Delete and an Update).
    table_actions=(TableAction.DELETE_ITEM, TableAction.UPDATE_ITEM),
)
SEND_MESSAGE: Final = FunctionSpec(
    name="send_message",
    handler="send_message.handler",
    description="sendMessage (validates, records, enqueues; answers `accepted`), requestUpload, getAttachment",
    timeout_seconds=10,
    env=(
        *_COMMON_ENV,
        *_CLOSES_EXPIRED,
        *_QUOTAS,
        Env.QUEUE_URL,
        Env.MAX_MESSAGE_CHARS,
        Env.RATE_LIMIT_SEND_MESSAGE,
        Env.MAX_WAITING_MESSAGES,
        Env.RETENTION_DAYS,
        # Attachments: requestUpload signs uploads, sendMessage checks them, getAttachment signs downloads.
        *_ATTACHMENT_ENV,
        Env.RATE_LIMIT_REQUEST_UPLOAD,
        Env.RATE_LIMIT_GET_ATTACHMENT,
        Env.DAILY_UPLOAD_BYTES_QUOTA,
        # Which kinds of file the stage's model reads (refused at intake otherwise).
        Env.MODEL_PROVIDER,
    ),
    sends_to_queue=True,
    closes_connections=True,
    # requestUpload signs a POST under uploads/ (authorized as PutObject when the client posts); sendMessage reads
    # each upload's first bytes (a ranged GetObject); getAttachment signs a GET of an attached file.
    bucket_grants=(
        BucketGrant(BucketAction.PUT_OBJECT, BUCKET.upload_prefix),
        BucketGrant(BucketAction.GET_OBJECT, BUCKET.upload_prefix),
        BucketGrant(BucketAction.GET_OBJECT, BUCKET.file_prefix),
    ),
    # The rate-limit bucket, today's usage and the conversation (or the current-conversation pointer) in one
    # BatchGetItem (GetItem for the bucket again after a lost race); a first conversation (a transaction of two
    # Puts); the message record with the user's waiting set, the bucket's token and the conversation's title, recency
    # and expiry (a transaction of a Put and three Updates; GetItem for a repeated id).
    table_actions=(
        TableAction.BATCH_GET_ITEM,
        TableAction.GET_ITEM,
        TableAction.PUT_ITEM,
        TableAction.UPDATE_ITEM,
    ),
)
COMMANDS: Final = FunctionSpec(
    name="commands",
    handler="commands.handler",
    description="cancel, newConversation, listConversations, getHistory, getUsage, ping, rename and delete",
    timeout_seconds=20,
    env=(
        *_COMMON_ENV,
        *_CLOSES_EXPIRED,
        *_QUOTAS,
        Env.OPENAI_SECRET_NAME,
        Env.OPENAI_BASE_URL,
        Env.MODEL_PROVIDER,
        Env.MODEL_READ_TIMEOUT_MS,
        Env.ASSISTANT_FILE,
        Env.RATE_LIMIT_NEW_CONVERSATION,
        Env.RATE_LIMIT_GET_HISTORY,
        Env.RATE_LIMIT_LIST_CONVERSATIONS,
        Env.RATE_LIMIT_CANCEL,
        Env.RATE_LIMIT_PING,
        Env.RATE_LIMIT_GET_USAGE,
        Env.RATE_LIMIT_RENAME_CONVERSATION,
        Env.RATE_LIMIT_DELETE_CONVERSATION,
        Env.RATE_LIMIT_DELETE_ALL_DATA,
        Env.MAX_CONVERSATIONS_PER_USER,
        Env.RETENTION_DAYS,
        # deleteConversation and deleteAllData hand the erasure of turns and messages to the worker.
        Env.QUEUE_URL,
    ),
    # cancel also stops a running background response (openai profile); getHistory reads only the table.
    reads_openai_secret=True,
    closes_connections=True,
    # conversationUpdated, conversationDeleted and dataDeleted reach every tab of the user.
    posts_to_connections=True,
    sends_to_queue=True,
    # Rate limits (GetItem, UpdateItem); cancel (UpdateItem, GetItem); newConversation (a transaction of two Puts);
    # listConversations and getHistory (Query: conversations, turns); getUsage (GetItem); rename (UpdateItem);
    # deleteConversation (DeleteItem of the conversation and its pointer; Query of the user's live messages to stop
    # them); deleteAllData (the same, conversations in BatchWriteItem batches); the user's connections (Query) and
    # those API Gateway reports gone (a transaction of a Delete and an Update).
    table_actions=(
        TableAction.GET_ITEM,
        TableAction.PUT_ITEM,
        TableAction.UPDATE_ITEM,
        TableAction.QUERY,
        TableAction.DELETE_ITEM,
        TableAction.BATCH_WRITE_ITEM,
    ),
)
DEFAULT: Final = FunctionSpec(
    name="default",
    handler="default.handler",
    description="$default: answers everything unroutable with an error frame",
    timeout_seconds=5,
    memory_mb=256,
    env=_CLOSES_EXPIRED,
    closes_connections=True,
)
WORKER: Final = FunctionSpec(
    name="worker",
    handler="worker.handler",
    description="FIFO consumer: streams the model's reply to every connection of the user",
    # The model's worst case: retries before the first token plus a long reply with tool rounds.
    timeout_seconds=300,
    memory_mb=1024,
    env=(
        *_COMMON_ENV,
        Env.CALLBACK_URL,
        # To bring a failed record back sooner than the (long) visibility timeout; see MessageQueue.retry_soon.
        Env.QUEUE_URL,
        Env.OPENAI_SECRET_NAME,
        Env.OPENAI_BASE_URL,
        Env.MODEL_PROVIDER,
        *_QUOTAS,
        Env.FLUSH_INTERVAL_MS,
        Env.FLUSH_MAX_INTERVAL_MS,
        Env.FLUSH_CHARS,
        Env.MAX_RECEIVE_COUNT,
        Env.MODEL_OVERRIDE,
        Env.MODEL_READ_TIMEOUT_MS,
        Env.ASSISTANT_FILE,
        Env.RETENTION_DAYS,
        *_ATTACHMENT_ENV,
    ),
    reads_openai_secret=True,
    calls_mcp_servers=True,
    # A message's uploads are read and moved under files/ (GetObject, PutObject, DeleteObject of the upload);
    # earlier turns' files are read (or signed, for a provider that fetches URLs); a deleted conversation's files
    # are deleted.
    bucket_grants=(
        BucketGrant(BucketAction.GET_OBJECT, BUCKET.upload_prefix),
        BucketGrant(BucketAction.DELETE_OBJECT, BUCKET.upload_prefix),
        BucketGrant(BucketAction.GET_OBJECT, BUCKET.file_prefix),
        BucketGrant(BucketAction.PUT_OBJECT, BUCKET.file_prefix),
        BucketGrant(BucketAction.DELETE_OBJECT, BUCKET.file_prefix),
    ),
    posts_to_connections=True,
    # The message (GetItem; claim is a transaction of Updates; checkpoints are UpdateItem), the finished turn
    # (a Put in the transaction that finishes the message), the conversation (GetItem, UpdateItem) and its earlier
    # turns (Query), the user's connections (Query) and those API Gateway reports gone (a transaction of a Delete
    # and the connection counter's Update). The claim and the finishing transaction check that the conversation
    # still exists (ConditionCheckItem); erasing deleted conversations' turns and messages (Query, BatchWriteItem).
    table_actions=(
        TableAction.GET_ITEM,
        TableAction.PUT_ITEM,
        TableAction.UPDATE_ITEM,
        TableAction.QUERY,
        TableAction.DELETE_ITEM,
        TableAction.BATCH_WRITE_ITEM,
        TableAction.CONDITION_CHECK_ITEM,
    ),
)

FUNCTIONS: Final[tuple[FunctionSpec, ...]] = (AUTHORIZER, CONNECT, DISCONNECT, SEND_MESSAGE, COMMANDS, DEFAULT, WORKER)


@dataclass(frozen=True)
class RouteSpec:
    """A WebSocket route. ``returns_response`` routes answer the sender through a ``$default`` route response."""

    route_key: str
    function: FunctionSpec
    returns_response: bool = True


#: The query-string parameter that carries the Cognito access token (part of the protocol: docs/protocol.md).
AUTH_QUERY_PARAMETER: Final = "Auth"
#: API Gateway selects the route from this expression.
ROUTE_SELECTION_EXPRESSION: Final = "$request.body.action"

ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec("$connect", CONNECT, returns_response=False),
    RouteSpec("$disconnect", DISCONNECT, returns_response=False),
    RouteSpec("$default", DEFAULT),
    RouteSpec("sendMessage", SEND_MESSAGE),
    RouteSpec("requestUpload", SEND_MESSAGE),
    RouteSpec("getAttachment", SEND_MESSAGE),
    RouteSpec("cancel", COMMANDS),
    RouteSpec("newConversation", COMMANDS),
    RouteSpec("listConversations", COMMANDS),
    RouteSpec("getHistory", COMMANDS),
    RouteSpec("ping", COMMANDS),
    RouteSpec("getUsage", COMMANDS),
    RouteSpec("renameConversation", COMMANDS),
    RouteSpec("deleteConversation", COMMANDS),
    RouteSpec("deleteAllData", COMMANDS),
)


@dataclass(frozen=True)
class StageDefaults:
    """Values both the stack's stage config and the local stack start from."""

    daily_message_quota: int = 200
    daily_output_token_quota: int = 200_000
    #: Conversations resend their history, so input runs ahead of output; this bounds a runaway conversation.
    daily_input_token_quota: int = 2_000_000
    #: ``"<burst>/<per minute>"``: fits a person chatting, not a script.
    rate_limit_send_message: str = "10/30"
    rate_limit_new_conversation: str = "5/10"
    rate_limit_get_history: str = "20/60"
    rate_limit_list_conversations: str = "20/60"
    #: Generous: Stop must always work (repeats are no-ops, but each is still a Lambda run and a write).
    rate_limit_cancel: str = "30/60"
    #: Generous: a page keeps its connection alive with pings, and a flaky network makes a client reconnect.
    rate_limit_ping: str = "30/120"
    rate_limit_get_usage: str = "20/60"
    #: A person renames or deletes a conversation now and then; a script looping over them is what these bound.
    rate_limit_rename_conversation: str = "10/30"
    rate_limit_delete_conversation: str = "10/30"
    #: Each reads and deletes every conversation of the user, and nobody needs it twice in a row.
    rate_limit_delete_all_data: str = "2/2"
    #: A person attaches a few files to a message (at most 4), and opens attachments in history now and then.
    rate_limit_request_upload: str = "10/20"
    rate_limit_get_attachment: str = "30/60"
    #: Per file (the issue's defaults): screenshots and photos, and documents.
    max_image_bytes: int = 10 * 1024 * 1024
    max_pdf_bytes: int = 20 * 1024 * 1024
    #: What one user may ask to upload in a UTC day: a bound on the bucket's bill.
    daily_upload_bytes_quota: int = 200 * 1024 * 1024
    #: A page load is one connect; a reconnect loop or a script opening sockets is what this bounds.
    rate_limit_connect: str = "20/30"
    max_connections_per_user: int = 10
    #: One user's replies are answered one at a time, so a longer line only delays them.
    max_waiting_messages: int = 5
    #: listConversations reads them all, and each keeps its turns: a bound on what one user stores.
    max_conversations_per_user: int = 1000
    #: Off: conversations are kept until their user deletes them. A stage that must keep data no longer than a
    #: stated period sets it (``retention_days`` / ``RETENTION_DAYS``).
    retention_days: int = 0
    #: The first text of a reply goes out at once and the next ~100 ms later; a steady stream is coalesced into a frame
    #: at most every 350 ms (a gap a reader does not notice as a stall; ~75 frames per 1000 tokens at 40 tokens/s, ~65
    #: at 50, instead of one per token). See ``assistant.push.DeltaCoalescer``.
    flush_interval_ms: int = 100
    flush_max_interval_ms: int = 350
    flush_chars: int = 2_000
    #: A Cognito answer that a token is still accepted is trusted this long per container: a signed-out, disabled or
    #: deleted user is refused at ``$connect`` and at the next frame within it (``assistant.revocation``).
    token_recheck_seconds: int = 60
    #: Cognito app client token lifetimes. A short access token bounds what a stolen one is worth (the page and the
    #: terminal client renew it from the refresh token); the refresh token bounds how long a sign-in lasts.
    access_token_validity_minutes: int = 15
    refresh_token_validity_days: int = 7


STAGE_DEFAULTS: Final = StageDefaults()


def function_environment(spec: FunctionSpec, values: Mapping[Env, str | None]) -> dict[str, str]:
    """The environment ``spec``'s function gets from a stack's ``values``: exactly the variables its spec declares.

    The CDK stack and the local stack both build every function's environment here, so neither can give a function
    a variable it does not declare, nor forget one it does. ``values`` has the stack's value of each variable;
    ``None`` leaves a variable unset on purpose (an optional one, as a deployed stack leaves ``OPENAI_BASE_URL``).
    A declared variable missing from ``values`` is a wiring bug, refused with its name.
    """
    missing = [name.value for name in spec.env if name not in values]
    if missing:
        raise MissingSetting(
            f"function {spec.name} declares {', '.join(missing)} in wiring but the stack provides no value"
        )
    return {name.value: value for name in spec.env if (value := values[name]) is not None}
