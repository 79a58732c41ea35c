"""The `$connect` authorizer handler with tokens minted by moto's Cognito."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import authorizer
import jwt
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm
from moto.cognitoidp.models import cognitoidp_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.utilities.utils import load_resource

from assistant.revocation import REFUSED_ERRORS, RevocationCheck, RevocationCheckUnavailable, Verdict
from assistant.token_verifier import TokenVerifier
from tests.conftest import CognitoPool
from tests.integration.conftest import ACCOUNT, API_ID, STAGE, LambdaContext

METHOD_ARN = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/{STAGE}/$connect"


@pytest.fixture
def verifier(cognito_pool: CognitoPool, monkeypatch: pytest.MonkeyPatch) -> TokenVerifier:
    # moto's in-process Cognito serves no JWKS over HTTP, so the verifier reads moto's public key directly.
    verifier = TokenVerifier(
        issuer=cognito_pool.issuer, client_id=cognito_pool.client_id, jwks_source=cognito_pool.jwks
    )
    monkeypatch.setattr(authorizer, "dependencies", lambda: verifier)
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
    token = cognito_pool.access_token()
    policy = _authorize({"Auth": token})
    statement = policy["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == [METHOD_ARN]
    assert policy["principalId"] == cognito_pool.user_sub
    # The token's expiry goes with the connection, so every later route can end it when the token does; the token
    # itself, so every later route can ask Cognito whether it was revoked since.
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert policy["context"] == {
        "userId": cognito_pool.user_sub,
        "username": cognito_pool.username,
        "exp": expires_at,
        "accessToken": token,
    }


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


# --- Each check of the verifier, seen as the policy the gateway gets ---------------------------------------------
#
# Every token below is wrong in exactly one way (the control, `_moto_signed("RS256", ...)` with the same claims,
# is allowed), so dropping any one check of the verifier turns exactly its token's Deny into an Allow.


def _assert_denied(policy: dict[str, Any]) -> None:
    statements = policy["policyDocument"]["Statement"]
    assert [s["Effect"] for s in statements] == ["Deny"]
    assert statements[0]["Resource"] == [METHOD_ARN.rsplit("/", 1)[0] + "/*"]
    assert policy["principalId"] == "anonymous"
    assert not policy.get("context")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(pool: CognitoPool, **overrides: Any) -> dict[str, Any]:
    """An access token's claims as moto's Cognito writes them for the pool's user."""
    now = int(time.time())
    claims = {
        "iss": pool.issuer,
        "sub": pool.user_sub,
        "client_id": pool.client_id,
        "token_use": "access",
        "iat": now,
        "auth_time": now,
        "exp": now + 3600,
        "jti": "a1b2c3d4-0000-4000-8000-000000000000",
        "username": pool.username,
    }
    claims.update(overrides)
    return claims


def _moto_signed(alg: str, claims: dict[str, Any]) -> str:
    """A token with header ``alg`` made with moto's Cognito signing key (kid "dummy"), or keyless for none/HMAC."""
    jwk = load_resource("cognitoidp/resources/jwks-private.json")
    private_key = RSAAlgorithm.from_jwk(json.dumps(jwk))
    headers = {"kid": "dummy"}
    if alg == "none":
        return jwt.encode(claims, "", algorithm="none", headers=headers)
    if alg == "HS256":
        # The algorithm-confusion attack: HMAC keyed with the (public) verification key.
        pem = private_key.public_key().public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = (
            _b64(json.dumps({"alg": "HS256", "typ": "JWT", **headers}).encode())
            + "."
            + _b64(json.dumps(claims).encode())
        )
        return f"{signing_input}.{_b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    return jwt.encode(claims, private_key, algorithm=alg, headers=headers)  # type: ignore[arg-type]


def test_a_token_signed_like_moto_signs_is_allowed(cognito_pool: CognitoPool, verifier: TokenVerifier) -> None:
    # The control for the tests below: the helper's tokens are valid unless a test makes them wrong.
    policy = _authorize({"Auth": _moto_signed("RS256", _claims(cognito_pool))})
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert policy["principalId"] == cognito_pool.user_sub


def test_an_access_token_of_another_app_client_is_denied(cognito_pool: CognitoPool, verifier: TokenVerifier) -> None:
    token = cognito_pool.access_token(client_id=cognito_pool.add_client("another-app"))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["token_use"] == "access"  # only the client is wrong
    assert claims["client_id"] != cognito_pool.client_id

    _assert_denied(_authorize({"Auth": token}))


def test_an_id_token_carrying_our_client_id_is_denied(cognito_pool: CognitoPool, verifier: TokenVerifier) -> None:
    # Minted by moto's own Cognito, with our client id in `client_id` too: only token_use is wrong.
    pool = cognitoidp_backends[DEFAULT_ACCOUNT_ID][cognito_pool.region].user_pools[cognito_pool.user_pool_id]
    token, _ = pool.create_jwt(
        cognito_pool.client_id, cognito_pool.username, "id", extra_data={"client_id": cognito_pool.client_id}
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["token_use"], claims["client_id"]) == ("id", cognito_pool.client_id)

    _assert_denied(_authorize({"Auth": token}))


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "PS256"])
def test_a_token_with_any_algorithm_but_rs256_is_denied(
    cognito_pool: CognitoPool, verifier: TokenVerifier, alg: str
) -> None:
    # RS512 and PS256 are even signed with moto's real key: only the algorithm is wrong.
    _assert_denied(_authorize({"Auth": _moto_signed(alg, _claims(cognito_pool))}))


# --- Revocation: Cognito's GetUser is asked after every local check passed ----------------------------------------


def _moto_get_user(pool: CognitoPool) -> Callable[[str], Verdict]:
    """GetUser through boto3 against moto in-process (``mock_aws`` does not intercept the authorizer's urllib)."""

    def get_user(token: str) -> Verdict:
        try:
            pool.client.get_user(AccessToken=token)
        except ClientError as error:
            if error.response["Error"]["Code"] in REFUSED_ERRORS:
                return "refused"
            raise RevocationCheckUnavailable(str(error)) from None
        return "accepted"

    return get_user


def _revocation_checked_verifier(
    pool: CognitoPool, monkeypatch: pytest.MonkeyPatch, get_user: Callable[[str], Verdict]
) -> RevocationCheck:
    revocation = RevocationCheck(get_user, recheck_seconds=60)
    verifier = TokenVerifier(issuer=pool.issuer, client_id=pool.client_id, jwks_source=pool.jwks, revocation=revocation)
    monkeypatch.setattr(authorizer, "dependencies", lambda: verifier)
    return revocation


def test_a_token_of_a_user_who_signed_out_everywhere_is_denied(
    cognito_pool: CognitoPool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    revocation = _revocation_checked_verifier(cognito_pool, monkeypatch, _moto_get_user(cognito_pool))
    token = cognito_pool.access_token()
    assert _authorize({"Auth": token})["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    cognito_pool.client.global_sign_out(AccessToken=token)
    # A fresh container (nothing cached) refuses it at once; this one within the recheck interval (60 s).
    revocation = _revocation_checked_verifier(cognito_pool, monkeypatch, _moto_get_user(cognito_pool))
    _assert_denied(_authorize({"Auth": token}))
    assert revocation.calls == 1
    assert [getattr(record, "reason", None) for record in caplog.records][-1] == "revoked"


def test_a_connect_costs_one_get_user_and_a_reconnect_within_the_interval_none(
    cognito_pool: CognitoPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    revocation = _revocation_checked_verifier(cognito_pool, monkeypatch, _moto_get_user(cognito_pool))
    token = cognito_pool.access_token()
    for _ in range(5):
        assert _authorize({"Auth": token})["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert revocation.calls == 1
    # Forged and expired tokens are refused before Cognito is asked: they cost no call.
    _authorize({"Auth": "garbage"})
    _authorize({"Auth": _moto_signed("RS256", _claims(cognito_pool, exp=int(time.time()) - 3600))})
    assert revocation.calls == 1


def test_cognito_unavailable_fails_the_connect_instead_of_admitting_an_unchecked_token(
    cognito_pool: CognitoPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(token: str) -> Verdict:
        raise RevocationCheckUnavailable("GetUser answered 400 TooManyRequestsException")

    _revocation_checked_verifier(cognito_pool, monkeypatch, unavailable)
    # The Lambda fails, so API Gateway answers the client 500 and the client retries later.
    with pytest.raises(RevocationCheckUnavailable):
        _authorize({"Auth": cognito_pool.access_token()})
