"""The `$connect` authorizer handler with tokens minted by moto's Cognito."""

from __future__ import annotations

from typing import Any

import authorizer
import pytest

from assistant import runtime
from assistant.auth import TokenVerifier
from tests.conftest import CognitoPool
from tests.integration.conftest import ACCOUNT, API_ID, STAGE, LambdaContext

METHOD_ARN = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/{STAGE}/$connect"


@pytest.fixture
def verifier(cognito_pool: CognitoPool, monkeypatch: pytest.MonkeyPatch) -> TokenVerifier:
    # moto's in-process Cognito serves no JWKS over HTTP, so the verifier reads moto's public key directly.
    verifier = TokenVerifier(
        issuer=cognito_pool.issuer, client_id=cognito_pool.client_id, jwks_source=cognito_pool.jwks
    )
    monkeypatch.setattr(runtime, "token_verifier", lambda: verifier)
    return verifier


def _authorize(query: dict[str, str] | None) -> dict[str, Any]:
    event = {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": {"Host": f"{API_ID}.execute-api.us-east-1.amazonaws.com"},
        "queryStringParameters": query,
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "conn-1", "stage": STAGE},
    }
    return authorizer.handler(event, LambdaContext())


def test_a_valid_access_token_is_allowed_with_the_user_in_the_context(
    cognito_pool: CognitoPool, verifier: TokenVerifier
) -> None:
    policy = _authorize({"Auth": cognito_pool.access_token()})
    statement = policy["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == [METHOD_ARN]
    assert policy["principalId"] == cognito_pool.user_sub
    assert policy["context"] == {"userId": cognito_pool.user_sub, "username": cognito_pool.username}


@pytest.mark.parametrize("query", [None, {}, {"Auth": ""}, {"Auth": "garbage"}, {"auth": "lower-case-name"}])
def test_missing_or_garbage_tokens_are_denied(
    query: dict[str, str] | None, verifier: TokenVerifier, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _authorize(query)
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "context" not in policy or not policy["context"]


def test_an_id_token_is_denied_and_no_token_reaches_the_logs(
    cognito_pool: CognitoPool, verifier: TokenVerifier, capsys: pytest.CaptureFixture[str]
) -> None:
    id_token = cognito_pool.id_token()
    policy = _authorize({"Auth": id_token})
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    access_token = cognito_pool.access_token()
    _authorize({"Auth": access_token})
    logged = capsys.readouterr()
    for token in (id_token, access_token):
        assert token not in logged.out
        assert token not in logged.err
        assert token.split(".")[2] not in logged.out  # not even the signature
