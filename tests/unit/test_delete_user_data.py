"""``scripts.delete_user_data`` against moto: finds the stage's table and the user's ``sub``, erases that user's
conversations, turns and messages, and keeps their usage counters and everyone else's data."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from assistant.attachments import file_key
from assistant.stores.conversations import ConversationStore
from assistant.stores.keys import key, message_sk
from assistant.stores.turns import Turn, TurnStatus
from scripts import delete_user_data
from tests.conftest import REGION, CognitoPool

NOW = 1_764_000_000.0
FILES_BUCKET = "gpt-assistant-dev-files-123456789012-us-east-1"


def _attached_file(table: Any, user_id: str) -> str:
    """A file attached to the user's newest conversation: its object under files/ and its upload record."""
    items = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :conv)",
        ExpressionAttributeValues={":pk": f"USER#{user_id}", ":conv": "CONV#"},
    )["Items"]
    conversation = str(items[0]["sk"]).removeprefix("CONV#")
    table.put_item(
        Item={
            **key(user_id, "UPLOAD#u_1"),
            "fileName": "a.png",
            "contentType": "image/png",
            "size": 3,
            "conversationId": conversation,
        }
    )
    boto3.client("s3", region_name=REGION).put_object(Bucket=FILES_BUCKET, Key=file_key(user_id, "u_1"), Body=b"abc")
    return file_key(user_id, "u_1")


def _user_with_data(table: Any, user_id: str, conversations: int) -> None:
    store = ConversationStore(table)
    for n in range(conversations):
        conversation = store.create(user_id, now=NOW + n)
        table.put_item(
            Item=Turn(
                conversation.conversation_id, f"m{n}", "2026-01-01T00:00:00.000Z", "q", "a", TurnStatus.DONE
            ).to_item(user_id)
        )
        table.put_item(
            Item={
                **key(user_id, message_sk(f"m{n}")),
                "userId": user_id,
                "messageId": f"m{n}",
                "conversationId": conversation.conversation_id,
                "status": "done",
                "createdAt": "2026-01-01T00:00:00.000Z",
            }
        )
    table.put_item(Item={**key(user_id, "USAGE#2026-01-01"), "messages": conversations})


def _prefixes(table: Any, user_id: str) -> set[str]:
    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"USER#{user_id}"})
    return {str(item["sk"]).split("#")[0] for item in items["Items"]}


class _CloudFormation:
    """The two calls the script makes, as CloudFormation answers them for a deployed stage."""

    def __init__(self, table_name: str, pool_id: str) -> None:
        self._table_name, self._pool_id = table_name, pool_id

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        assert StackName == "GptAssistant-dev"
        return {"Stacks": [{"Outputs": [{"OutputKey": "UserPoolId", "OutputValue": self._pool_id}]}]}

    def describe_stack_resources(self, StackName: str) -> dict[str, Any]:
        return {
            "StackResources": [
                {"ResourceType": "AWS::SQS::Queue", "PhysicalResourceId": "q"},
                {"ResourceType": "AWS::DynamoDB::Table", "PhysicalResourceId": self._table_name},
                {"ResourceType": "AWS::S3::Bucket", "PhysicalResourceId": FILES_BUCKET},
            ]
        }


class _Session:
    def __init__(self, cloudformation: _CloudFormation) -> None:
        self._cloudformation = cloudformation

    def client(self, service: str) -> Any:
        return self._cloudformation if service == "cloudformation" else boto3.client(service, region_name=REGION)

    def resource(self, service: str) -> Any:
        return boto3.resource(service, region_name=REGION)


def test_the_script_erases_one_user_by_username_and_keeps_usage_and_others(
    ddb_table: Any, cognito_pool: CognitoPool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    user_id = delete_user_data.user_id_of(cognito_pool.client, cognito_pool.user_pool_id, cognito_pool.username)
    _user_with_data(ddb_table, user_id, conversations=30)
    _user_with_data(ddb_table, "someone-else", conversations=2)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=FILES_BUCKET)
    theirs, kept = _attached_file(ddb_table, user_id), _attached_file(ddb_table, "someone-else")
    session = _Session(_CloudFormation(ddb_table.name, cognito_pool.user_pool_id))
    monkeypatch.setattr(delete_user_data.boto3, "Session", lambda region_name=None: session)

    assert delete_user_data.main(["--stage", "dev", "--username", cognito_pool.username]) == 0

    assert _prefixes(ddb_table, user_id) == {"USAGE"}
    assert _prefixes(ddb_table, "someone-else") == {"CONV", "CURRENT", "TURN", "MSG", "USAGE", "UPLOAD"}
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket=FILES_BUCKET).get("Contents", [])]
    assert stored == [kept]
    assert theirs not in stored
    printed = capsys.readouterr().out
    assert f"Erased user {user_id}: 30 conversations, 30 turns, 30 message records" in printed


def test_an_unknown_username_changes_nothing(
    ddb_table: Any, cognito_pool: CognitoPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    _user_with_data(ddb_table, "someone-else", conversations=1)
    session = _Session(_CloudFormation(ddb_table.name, cognito_pool.user_pool_id))
    monkeypatch.setattr(delete_user_data.boto3, "Session", lambda region_name=None: session)

    assert delete_user_data.main(["--stage", "dev", "--username", "nobody@example.com"]) == 1
    assert "TURN" in _prefixes(ddb_table, "someone-else")
