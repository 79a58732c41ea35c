"""The stage's resources and the platform's limits: the table, the bucket, the queue, the model key's secret and the
metrics, named once for the CDK stack (``infra/``), the local stack and the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# --- Limits that are part of the protocol -----------------------------------------------------------------------

#: The query-string parameter that carries the Cognito access token (part of the protocol: docs/protocol.md).
AUTH_QUERY_PARAMETER: Final = "Auth"
#: API Gateway WebSocket frame limit. Every payload the worker posts stays below it.
MAX_FRAME_BYTES: Final = 32 * 1024
#: API Gateway WebSocket message limit (a message may span several frames).
MAX_MESSAGE_BYTES: Final = 128 * 1024
#: API Gateway closes a connection after 2 hours, so connection records live a little longer than that.
CONNECTION_TTL_SECONDS: Final = 3 * 60 * 60
#: Clock skew tolerated on token times, by the authorizer and by the routes that end expired connections.
TOKEN_LEEWAY_SECONDS: Final = 30
#: How long a message record is kept for deduplication and cancel (far beyond SQS's 5-minute dedup window).
MESSAGE_TTL_SECONDS: Final = 7 * 24 * 60 * 60
#: How long a per-user daily usage counter is kept after its day.
USAGE_TTL_SECONDS: Final = 3 * 24 * 60 * 60


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
