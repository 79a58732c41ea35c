"""The admin scripts against moto: a CloudFormation stack with the real output keys, Secrets Manager, Cognito."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.names import OutputKey, openai_secret_name, stack_name
from scripts import create_user, set_openai_key, web_config
from scripts.stack_outputs import MissingOutputError, load_outputs

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        cognito = boto3.client("cognito-idp", region_name=REGION)
        pool_id = cognito.create_user_pool(PoolName="p", UsernameAttributes=["email"])["UserPool"]["Id"]
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secrets.create_secret(Name=openai_secret_name("dev"), SecretString="placeholder")
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        outputs = {
            OutputKey.USER_POOL_ID: pool_id,
            OutputKey.OPENAI_SECRET_NAME: openai_secret_name("dev"),
            OutputKey.WEBSOCKET_URL: "wss://abc123.execute-api.us-east-1.amazonaws.com/dev",
            OutputKey.USER_POOL_CLIENT_ID: "client123",
            OutputKey.REGION: REGION,
        }
        template = {
            "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        cloudformation.create_stack(StackName=stack_name("dev"), TemplateBody=json.dumps(template))
        yield {"cognito": cognito, "secrets": secrets, "cloudformation": cloudformation, "pool_id": pool_id}


def test_outputs_are_read_from_the_stages_stack(aws: dict[str, Any]) -> None:
    outputs = load_outputs("dev", aws["cloudformation"], (OutputKey.USER_POOL_ID,))
    assert outputs[OutputKey.USER_POOL_ID] == aws["pool_id"]
    with pytest.raises(MissingOutputError, match=OutputKey.DEAD_LETTER_ALARM_NAME):
        load_outputs("dev", aws["cloudformation"], (OutputKey.DEAD_LETTER_ALARM_NAME,))


def test_set_openai_key_stores_the_key_without_printing_it(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert set_openai_key.main(["--stage", "dev", "--region", REGION], read_key=lambda _: "sk-test-123\n") == 0
    stored = aws["secrets"].get_secret_value(SecretId=openai_secret_name("dev"))["SecretString"]
    assert stored == "sk-test-123"
    captured = capsys.readouterr()
    assert "sk-test-123" not in captured.out + captured.err


def test_set_openai_key_refuses_an_empty_key(aws: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="empty"):
        set_openai_key.set_openai_key(
            "dev", "  \n", cloudformation=aws["cloudformation"], secretsmanager=aws["secrets"]
        )
    assert aws["secrets"].get_secret_value(SecretId=openai_secret_name("dev"))["SecretString"] == "placeholder"


def test_create_user_makes_a_user_who_can_sign_in_at_once(aws: dict[str, Any]) -> None:
    password = "Correct-Horse-9-Battery"
    assert create_user.main(["--stage", "dev", "--email", "ada@example.com"], read_password=lambda _: password) == 0
    user = aws["cognito"].admin_get_user(UserPoolId=aws["pool_id"], Username="ada@example.com")
    assert user["UserStatus"] == "CONFIRMED"
    # Running it again re-sets the password instead of failing on the existing user.
    create_user.create_user(
        "dev", "ada@example.com", password + "!", cloudformation=aws["cloudformation"], cognito=aws["cognito"]
    )


def test_create_user_refuses_mismatched_passwords(aws: dict[str, Any]) -> None:
    answers = iter(["First-Password-1", "Other-Password-2"])
    assert (
        create_user.main(["--stage", "dev", "--email", "bob@example.com"], read_password=lambda _: next(answers)) == 1
    )
    users = aws["cognito"].list_users(UserPoolId=aws["pool_id"])["Users"]
    assert users == []


def test_missing_stack_names_the_stage(aws: dict[str, Any]) -> None:
    with pytest.raises(aws["cloudformation"].exceptions.ClientError, match=stack_name("prod")):
        load_outputs("prod", aws["cloudformation"])


def test_web_config_writes_what_the_page_reads(aws: dict[str, Any], tmp_path: Any) -> None:
    out = tmp_path / "config.json"
    assert web_config.main(["--stage", "dev", "--region", REGION, "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {
        "websocketUrl": "wss://abc123.execute-api.us-east-1.amazonaws.com/dev",
        "userPoolId": aws["pool_id"],
        "userPoolClientId": "client123",
        "region": REGION,
    }
