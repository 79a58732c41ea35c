"""The Lambda functions: what each runs, may do and is granted (the routes to them are ``assistant.route_table``).

The CDK stack (``infra/``) and the local stack (``scripts/local_stack``) both build every function from these specs:
its handler, timeout and memory, exactly the IAM grants its code path uses (proven against recorded calls by
tests/infra/test_least_privilege.py), and its environment, which comes from ``assistant.environment.SETTINGS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from assistant.environment import (
    AUTHORIZER_FN,
    COMMANDS_FN,
    CONNECT_FN,
    DEFAULT_FN,
    DISCONNECT_FN,
    POWERTOOLS_ENV,
    SEND_MESSAGE_FN,
    WORKER_FN,
    Env,
    MissingSetting,
    variables_of,
)
from assistant.resources import BUCKET, BucketAction, BucketGrant, TableAction


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function: where its handler lives and what it needs."""

    name: str
    #: ``module.function`` relative to ``lambdas/``.
    handler: str
    description: str
    timeout_seconds: int
    memory_mb: int = 512
    #: Every variable the function reads: those :data:`assistant.environment.SETTINGS` gives this function (by
    #: :attr:`name`) unless listed here (test doubles), :data:`POWERTOOLS_ENV` always included.
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
        own = tuple(name for name in (self.env or variables_of(self.name)) if name not in POWERTOOLS_ENV)
        object.__setattr__(self, "env", (*POWERTOOLS_ENV, *own))


AUTHORIZER: Final = FunctionSpec(
    name=AUTHORIZER_FN,
    handler="authorizer.handler",
    description="$connect REQUEST authorizer: verifies the Cognito access token in ?Auth=",
    timeout_seconds=10,
    memory_mb=256,
)

CONNECT: Final = FunctionSpec(
    name=CONNECT_FN,
    handler="connect.handler",
    description="$connect: records the connection under its user",
    timeout_seconds=10,
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
    name=DISCONNECT_FN,
    handler="disconnect.handler",
    description="$disconnect: deletes the connection record",
    timeout_seconds=10,
    # Deletes the record and uncounts it (a transaction of a Delete and an Update).
    table_actions=(TableAction.DELETE_ITEM, TableAction.UPDATE_ITEM),
)
SEND_MESSAGE: Final = FunctionSpec(
    name=SEND_MESSAGE_FN,
    handler="send_message.handler",
    description="sendMessage (validates, records, enqueues; answers `accepted`), requestUpload, getAttachment",
    timeout_seconds=10,
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
    name=COMMANDS_FN,
    handler="commands.handler",
    description="cancel, newConversation, listConversations, getHistory, getUsage, ping, rename and delete",
    timeout_seconds=20,
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
    name=DEFAULT_FN,
    handler="default.handler",
    description="$default: answers everything unroutable with an error frame",
    timeout_seconds=5,
    memory_mb=256,
    closes_connections=True,
)
WORKER: Final = FunctionSpec(
    name=WORKER_FN,
    handler="worker.handler",
    description="FIFO consumer: streams the model's reply to every connection of the user",
    # The model's worst case: retries before the first token plus a long reply with tool rounds.
    timeout_seconds=300,
    memory_mb=1024,
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
