"""The AWS resources the CDK stack declares, created in moto from ``assistant.wiring``: the table, the FIFO queue
and its dead-letter queue, the OpenAI key's secret, the attachments bucket, and the Cognito pool with its demo
user."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from assistant.wiring import BUCKET, QUEUE, TABLE
from scripts.local_stack.aws.moto_server import REGION, client

DEMO_USERNAME = "demo@example.com"


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
    upload_bucket: str


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


def local_table_name(prefix: str) -> str:
    """The local stack's table (``scripts.delete_user_data --local`` finds it by this name)."""
    return f"{prefix}-assistant"


def provision(
    endpoint: str,
    *,
    prefix: str = "local",
    visibility_timeout_s: int = 30,
    openai_api_key: str | None = None,
) -> Resources:
    """Create the table, the FIFO queue and its DLQ, the OpenAI secret and the Cognito pool with its demo user."""
    table_name = local_table_name(prefix)
    create_table(client("dynamodb", endpoint), table_name)

    queue_url, queue_arn, dlq_url, dlq_arn = create_queues(endpoint, prefix, visibility_timeout_s)

    secret_name = f"{prefix}/openai-api-key"
    # Without a key the offline model is used; it ignores the key, but the code path that reads it stays the same.
    client("secretsmanager", endpoint).create_secret(Name=secret_name, SecretString=openai_api_key or "offline")

    pool_id, client_id, username, password = _create_user_pool(endpoint, prefix)
    upload_bucket = create_upload_bucket(endpoint, prefix)
    return Resources(
        upload_bucket=upload_bucket,
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


def create_upload_bucket(endpoint: str, prefix: str) -> str:
    """The attachments bucket as the stack declares it (infra.attachments): encrypted, public access blocked, CORS
    for the page's POSTs and GETs, unattached uploads expiring after a day (moto stores these; it does not act on
    the lifecycle rule)."""
    s3 = client("s3", endpoint)
    name = f"{prefix}-attachments"
    s3.create_bucket(Bucket=name)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_cors(
        Bucket=name,
        CORSConfiguration={
            "CORSRules": [{"AllowedMethods": ["POST", "GET"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"]}]
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "unattached-uploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": BUCKET.upload_prefix},
                    "Expiration": {"Days": BUCKET.unattached_expiry_days},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
    return name


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
        # The deployed client's flows (SRP and refresh; no USER_PASSWORD_AUTH), plus the admin flow the gateway's
        # one-click demo sign-in uses server side, with moto's credentials (never the page's).
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH"],
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
