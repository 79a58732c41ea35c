"""moto's server and the AWS resources the CDK stack declares, created from ``assistant.wiring``."""

from __future__ import annotations

import functools
import json
import logging
import secrets
import string
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from assistant.wiring import QUEUE, TABLE

REGION = "us-east-1"
DEMO_USERNAME = "demo@example.com"
#: moto accepts any credentials; these only keep botocore from looking for real ones.
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoServer:
    """moto's threaded server on 127.0.0.1; port 0 picks a free one."""

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint = ""

    def start(self) -> str:
        # werkzeug logs every request at INFO on stderr; the console is for the connect info and errors.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        keep_fifo_order_on_redelivery()
        serialise_moto_dynamodb()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        # moto keeps its backends in process-wide state that outlives the server: clear it, so a stack started
        # later in the same process (tests, benchmarks) provisions into an empty account.
        if self.endpoint:
            request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - our own server on 127.0.0.1
                pass
        self._server.stop()


#: moto's DynamoDB backend methods that read or write a table's items.
_MOTO_DYNAMODB_ITEM_METHODS = (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
)
_moto_lock = threading.RLock()


def serialise_moto_dynamodb() -> None:
    """Run moto's DynamoDB item operations one at a time (process-wide, idempotent).

    moto 5.2.5's ``transact_write_items`` deep-copies the whole table as a backup and, when a condition fails,
    restores that copy; its threaded server runs requests concurrently, so the copy can fail ("dictionary changed
    size during iteration", a 500 to the caller) and the restore can silently undo other requests' writes. DynamoDB
    itself has neither problem. Under concurrency (the throughput benchmark, two tabs, several users) that loses
    replies the product delivered correctly, so the local stack applies this when it starts moto.
    """
    from moto.dynamodb.models import DynamoDBBackend

    for name in _MOTO_DYNAMODB_ITEM_METHODS:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_serialised", False):
            continue

        def locked(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _moto_lock:
                return __method(*args, **kwargs)

        functools.update_wrapper(locked, method)
        locked._serialised = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


def keep_fifo_order_on_redelivery() -> None:
    """Make moto redeliver a FIFO group's failed records in order, as SQS does.

    moto 5.2.5 counts a received message whose visibility timeout has expired as still "in flight" for its group.
    When records b and c of a group both fail and become visible again, b is skipped because c still looks in
    flight, and c is delivered before b. A message that is visible again no longer holds its group in SQS, so it
    must not here either. (Process-wide, but only ever makes moto more faithful; checked by test_poller.py.)
    """
    from moto.sqs.models import Queue

    def pending_message_groups(queue: Any) -> set[str]:
        return {
            message.group_id
            for message in queue._pending_messages
            if message.group_id is not None and not message.visible
        }

    Queue.pending_message_groups = property(pending_message_groups)  # type: ignore[method-assign, assignment]


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS)


@dataclass(frozen=True)
class Resources:
    """Names and ids of what :func:`provision` created; the values the functions' environment is wired from."""

    endpoint: str
    table_name: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    secret_name: str
    user_pool_id: str
    user_pool_client_id: str
    #: The ``iss`` claim moto puts in its tokens; the authorizer must expect exactly this.
    cognito_issuer: str
    jwks_url: str
    demo_username: str
    demo_password: str


def generate_password(length: int = 20) -> str:
    """A password that satisfies Cognito's default policy: every character class, from ``secrets``."""
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#%+-=?@^_")
    chars = [secrets.choice(c) for c in classes]
    alphabet = "".join(classes)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def create_table(ddb: Any, table_name: str) -> None:
    """The single table as the stack declares it: keys and TTL from ``wiring.TABLE``, on-demand."""
    ddb.create_table(
        TableName=table_name,
        KeySchema=[
            {"AttributeName": TABLE.partition_key, "KeyType": "HASH"},
            {"AttributeName": TABLE.sort_key, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": TABLE.partition_key, "AttributeType": "S"},
            {"AttributeName": TABLE.sort_key, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TABLE.ttl_attribute},
    )


def provision(
    endpoint: str,
    *,
    prefix: str = "local",
    visibility_timeout_s: int = 30,
    openai_api_key: str | None = None,
) -> Resources:
    """Create the table, the FIFO queue and its DLQ, the OpenAI secret and the Cognito pool with its demo user."""
    table_name = f"{prefix}-assistant"
    create_table(client("dynamodb", endpoint), table_name)

    queue_url, queue_arn, dlq_url, dlq_arn = create_queues(endpoint, prefix, visibility_timeout_s)

    secret_name = f"{prefix}/openai-api-key"
    # Without a key the offline model is used; it ignores the key, but the code path that reads it stays the same.
    client("secretsmanager", endpoint).create_secret(Name=secret_name, SecretString=openai_api_key or "offline")

    pool_id, client_id, username, password = _create_user_pool(endpoint, prefix)
    return Resources(
        endpoint=endpoint,
        table_name=table_name,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        secret_name=secret_name,
        user_pool_id=pool_id,
        user_pool_client_id=client_id,
        cognito_issuer=f"https://cognito-idp.{REGION}.amazonaws.com/{pool_id}",
        jwks_url=f"{endpoint}/{pool_id}/.well-known/jwks.json",
        demo_username=username,
        demo_password=password,
    )


def create_queues(endpoint: str, prefix: str, visibility_timeout_s: int) -> tuple[str, str, str, str]:
    sqs = client("sqs", endpoint)
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}-messages-dlq.fifo",
        Attributes={"FifoQueue": "true", "MessageRetentionPeriod": str(QUEUE.dlq_retention_days * 86_400)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-messages.fifo",
        Attributes={
            "FifoQueue": "true",
            # The sender sets MessageDeduplicationId itself (the message id), as in the deployed stack.
            "ContentBasedDeduplication": "false",
            "VisibilityTimeout": str(visibility_timeout_s),
            "MessageRetentionPeriod": str(QUEUE.retention_days * 86_400),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": QUEUE.max_receive_count}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return queue_url, queue_arn, dlq_url, dlq_arn


def _create_user_pool(endpoint: str, prefix: str) -> tuple[str, str, str, str]:
    idp = client("cognito-idp", endpoint)
    pool_id = idp.create_user_pool(PoolName=f"{prefix}-users", AutoVerifiedAttributes=["email"])["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=f"{prefix}-web",
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    password = generate_password()
    idp.admin_create_user(
        UserPoolId=pool_id,
        Username=DEMO_USERNAME,
        UserAttributes=[{"Name": "email", "Value": DEMO_USERNAME}, {"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
    )
    idp.admin_set_user_password(UserPoolId=pool_id, Username=DEMO_USERNAME, Password=password, Permanent=True)
    return pool_id, client_id, DEMO_USERNAME, password
