"""Erase a user's conversations: ``python -m scripts.delete_user_data --stage dev --username NAME`` (or ``--local``
for the stack ``make dev`` runs).

What ``deleteAllData`` does for a user, run by an operator (an erasure request that reached you, not the app):
every conversation record at once, replies still streaming stopped, then every turn and message record, in
``BatchWriteItem`` batches, until none is left, and every attached file (with its upload record) in the attachments
bucket; files uploaded but never attached expire with the bucket's lifecycle rule within a day. Today's usage
counters and rate-limit buckets are kept (a quota must not reset by deleting), as are the user's open connections
and the Cognito user itself (delete that with ``aws cognito-idp admin-delete-user`` if the account goes too). See
docs/deploy.md, "Your users' data".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from infra.names import DEFAULT_STAGE, OutputKey, stack_name
from scripts.stack_outputs import load_outputs

#: The local stack's connect info (``make dev`` writes it).
LOCAL_STACK_JSON = Path(".local/stack.json")
#: Erasure runs until nothing is left; each run is bounded, and this many is far beyond any real partition.
_MAX_RUNS = 1_000


@dataclass(frozen=True)
class Erased:
    user_id: str
    conversations: int
    stopped_replies: int
    turns: int
    messages: int


def erase_user(table: Any, user_id: str, *, s3: Any = None, bucket: str | None = None) -> Erased:
    """Delete every conversation of ``user_id`` and erase what they leave (see the module's docstring)."""
    from assistant.stores.conversations import ConversationStore
    from assistant.stores.erasure import UserDataEraser
    from assistant.stores.messages import MessageStore

    conversations = ConversationStore(table).delete_all(user_id)
    messages = MessageStore(table)
    stopped = 0
    for record in messages.unfinished(user_id):
        # A streaming reply stops at its worker's next frame and its worker removes the record when it ends.
        if messages.request_cancel(user_id, record.message_id) is not None:
            stopped += 1
    from assistant.attachments import AttachmentFiles

    files = AttachmentFiles(table=table, s3=s3, bucket=bucket, transport="inline") if s3 and bucket else None
    eraser = UserDataEraser(table, files=files)
    turns = erased_messages = 0
    for _ in range(_MAX_RUNS):
        result = eraser.erase_orphans(user_id)
        turns += result.turns
        erased_messages += result.messages
        if result.finished:
            break
    return Erased(user_id, conversations, stopped, turns, erased_messages)


def user_id_of(cognito: Any, pool_id: str, username: str) -> str:
    """The user's ``sub``: what the table's partitions are keyed by (usernames can be reused, ``sub`` never)."""
    user = cognito.admin_get_user(UserPoolId=pool_id, Username=username)
    for attribute in user.get("UserAttributes", []):
        if attribute["Name"] == "sub":
            return str(attribute["Value"])
    raise LookupError(f"user {username!r} has no sub attribute")


def deployed_bucket(session: Any, stage: str) -> str | None:
    """The stage's attachments bucket (``infra.attachments``: its name carries ``-files-``), if it has one."""
    resources = session.client("cloudformation").describe_stack_resources(StackName=stack_name(stage))
    buckets = [
        r["PhysicalResourceId"]
        for r in resources["StackResources"]
        if r["ResourceType"] == "AWS::S3::Bucket" and "-files-" in r["PhysicalResourceId"]
    ]
    return buckets[0] if buckets else None


def deployed_table(session: Any, stage: str) -> tuple[Any, str]:
    """The stage's table (the stack's only ``AWS::DynamoDB::Table``) and its user pool id."""
    pool_id = load_outputs(stage, session.client("cloudformation"), (OutputKey.USER_POOL_ID,))[OutputKey.USER_POOL_ID]
    resources = session.client("cloudformation").describe_stack_resources(StackName=stack_name(stage))
    tables = [
        r["PhysicalResourceId"] for r in resources["StackResources"] if r["ResourceType"] == "AWS::DynamoDB::Table"
    ]
    if len(tables) != 1:
        raise LookupError(f"stack {stack_name(stage)} has {len(tables)} DynamoDB tables; expected one")
    return session.resource("dynamodb").Table(tables[0]), str(pool_id)


def local_table(stack_json: Path) -> tuple[Any, Any, str]:
    """The local stack's table, its Cognito client and user pool id, from ``.local/stack.json``."""
    from scripts.local_stack.aws.moto_server import FAKE_CREDENTIALS, REGION
    from scripts.local_stack.aws.resources import local_table_name
    from scripts.local_stack.settings import STAGE

    if not stack_json.exists():
        raise FileNotFoundError(f"{stack_json} not found: start the local stack with `make dev` first")
    info = json.loads(stack_json.read_text())
    endpoint = info["cognitoEndpoint"]
    resource = boto3.resource("dynamodb", endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS)
    cognito = boto3.client("cognito-idp", endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS)
    table_name = info.get("tableName") or local_table_name(STAGE)
    return resource.Table(table_name), cognito, str(info["userPoolId"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stage", default=None, help=f"the deployed stage (default {DEFAULT_STAGE})")
    where.add_argument("--local", action="store_true", help="the local stack `make dev` runs (.local/stack.json)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--username", help="the Cognito username (or e-mail) of the user")
    who.add_argument("--user-id", help="the user's Cognito sub, for a user already deleted from Cognito")
    parser.add_argument("--region", default=None, help="defaults to your AWS profile's region")
    parser.add_argument("--stack-json", type=Path, default=LOCAL_STACK_JSON, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.local:
        from scripts.local_stack.aws.moto_server import FAKE_CREDENTIALS, REGION
        from scripts.local_stack.settings import STAGE

        table, cognito, pool_id = local_table(args.stack_json)
        endpoint = json.loads(args.stack_json.read_text())["cognitoEndpoint"]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS)
        bucket: str | None = f"{STAGE}-attachments"  # scripts.local_stack.aws.resources.create_upload_bucket
    else:
        session = boto3.Session(region_name=args.region)
        table, pool_id = deployed_table(session, args.stage or DEFAULT_STAGE)
        cognito = session.client("cognito-idp")
        s3 = session.client("s3")
        bucket = deployed_bucket(session, args.stage or DEFAULT_STAGE)
    try:
        user_id = args.user_id or user_id_of(cognito, pool_id, args.username)
    except cognito.exceptions.UserNotFoundException:
        print(f"No user {args.username!r} in pool {pool_id}; pass --user-id if it was deleted.", file=sys.stderr)
        return 1
    erased = erase_user(table, user_id, s3=s3, bucket=bucket)
    print(
        f"Erased user {erased.user_id}: {erased.conversations} conversations, {erased.turns} turns, "
        f"{erased.messages} message records ({erased.stopped_replies} unfinished replies stopped). "
        "Today's usage counters are kept."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
