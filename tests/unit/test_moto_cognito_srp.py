"""moto's Cognito as the local stack patches it (``verify_cognito_sign_in``): SRP really checks the password, and
a client may use only the flows it lists. The SRP client is pycognito's ``AWSSRP``, a library we did not write, so
the byte formats are Cognito's clients' own, not ours twice."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from pycognito.aws_srp import AWSSRP

from scripts.local_stack.aws.moto_patches import verify_cognito_sign_in
from tests.conftest import REGION, CognitoPool


@pytest.fixture(autouse=True)
def _verified_sign_in() -> None:
    verify_cognito_sign_in()


def _client(pool: CognitoPool, flows: list[str] | None) -> str:
    extra: dict[str, Any] = {"ExplicitAuthFlows": flows} if flows is not None else {}
    response = pool.client.create_user_pool_client(
        UserPoolId=pool.user_pool_id, ClientName="srp", GenerateSecret=False, **extra
    )
    return str(response["UserPoolClient"]["ClientId"])


def _srp(pool: CognitoPool, client_id: str, password: str, username: str | None = None) -> dict[str, Any]:
    srp = AWSSRP(
        username=username or pool.username,
        password=password,
        pool_id=pool.user_pool_id,
        client_id=client_id,
        client=boto3.client("cognito-idp", region_name=REGION),
    )
    tokens: dict[str, Any] = srp.authenticate_user()
    return tokens


def _code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


def test_srp_with_the_right_password_signs_in(cognito_pool: CognitoPool) -> None:
    client_id = _client(cognito_pool, ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    result = _srp(cognito_pool, client_id, cognito_pool.password)["AuthenticationResult"]
    user = cognito_pool.client.get_user(AccessToken=result["AccessToken"])
    assert user["Username"] == cognito_pool.username
    refreshed = cognito_pool.client.initiate_auth(
        AuthFlow="REFRESH_TOKEN_AUTH", ClientId=client_id, AuthParameters={"REFRESH_TOKEN": result["RefreshToken"]}
    )
    assert refreshed["AuthenticationResult"]["AccessToken"]


@pytest.mark.parametrize("password", ["wrong-password-1A", "", "x" * 200])
def test_srp_with_a_wrong_password_is_refused_as_cognito_refuses_it(cognito_pool: CognitoPool, password: str) -> None:
    client_id = _client(cognito_pool, ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    with pytest.raises(ClientError) as error:
        _srp(cognito_pool, client_id, password or cognito_pool.password[:-1])
    assert _code(error) == ("NotAuthorizedException", "Incorrect username or password.")


def test_a_refused_challenge_is_spent_and_a_replayed_answer_refused(cognito_pool: CognitoPool) -> None:
    client_id = _client(cognito_pool, None)
    idp = cognito_pool.client
    srp = AWSSRP(
        username=cognito_pool.username,
        password=cognito_pool.password,
        pool_id=cognito_pool.user_pool_id,
        client_id=client_id,
        client=idp,
    )
    challenge = idp.initiate_auth(AuthFlow="USER_SRP_AUTH", ClientId=client_id, AuthParameters=srp.get_auth_params())
    assert challenge["ChallengeName"] == "PASSWORD_VERIFIER"
    assert challenge["ChallengeParameters"]["USER_ID_FOR_SRP"] == cognito_pool.username
    answer = srp.process_challenge(challenge["ChallengeParameters"], srp.get_auth_params())
    forged = dict(answer, PASSWORD_CLAIM_SIGNATURE=answer["PASSWORD_CLAIM_SIGNATURE"][::-1])
    with pytest.raises(ClientError) as error:
        idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName="PASSWORD_VERIFIER",
            ChallengeResponses=forged,
            Session=challenge["Session"],
        )
    assert _code(error)[0] == "NotAuthorizedException"
    # The right answer to a challenge that was already refused does not sign in either.
    with pytest.raises(ClientError):
        idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName="PASSWORD_VERIFIER",
            ChallengeResponses=answer,
            Session=challenge["Session"],
        )


def test_the_signature_covers_the_timestamp(cognito_pool: CognitoPool) -> None:
    client_id = _client(cognito_pool, None)
    idp = cognito_pool.client
    srp = AWSSRP(
        username=cognito_pool.username,
        password=cognito_pool.password,
        pool_id=cognito_pool.user_pool_id,
        client_id=client_id,
        client=idp,
    )
    challenge = idp.initiate_auth(AuthFlow="USER_SRP_AUTH", ClientId=client_id, AuthParameters=srp.get_auth_params())
    answer = srp.process_challenge(challenge["ChallengeParameters"], srp.get_auth_params())
    answer["TIMESTAMP"] = answer["TIMESTAMP"].replace("UTC", "UTC ")
    with pytest.raises(ClientError) as error:
        idp.respond_to_auth_challenge(
            ClientId=client_id,
            ChallengeName="PASSWORD_VERIFIER",
            ChallengeResponses=answer,
            Session=challenge["Session"],
        )
    assert _code(error)[0] == "NotAuthorizedException"


def test_a_client_may_use_only_the_flows_it_lists(cognito_pool: CognitoPool) -> None:
    srp_only = _client(cognito_pool, ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    password_only = _client(cognito_pool, ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    default = _client(cognito_pool, None)
    for client_id in (srp_only, default):
        with pytest.raises(ClientError) as error:
            cognito_pool.login(client_id=client_id)
        assert _code(error) == ("InvalidParameterException", "USER_PASSWORD_AUTH flow not enabled for this client")
        with pytest.raises(ClientError) as error:
            cognito_pool.client.admin_initiate_auth(
                UserPoolId=cognito_pool.user_pool_id,
                ClientId=client_id,
                AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": cognito_pool.username, "PASSWORD": cognito_pool.password},
            )
        assert _code(error)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as error:
        _srp(cognito_pool, password_only, cognito_pool.password)
    assert _code(error) == ("InvalidParameterException", "USER_SRP_AUTH flow not enabled for this client")
    assert cognito_pool.login(client_id=password_only)["AccessToken"]
    assert _srp(cognito_pool, default, cognito_pool.password)["AuthenticationResult"]["AccessToken"]
