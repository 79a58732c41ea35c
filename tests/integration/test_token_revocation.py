"""Cognito's GetUser as the revocation check (``assistant.revocation``), against moto's server over real HTTP.

The five ways a token stops working in Cognito (sign-out everywhere, admin sign-out, disabled, deleted, revoked
refresh token) must each make ``GetUser`` refuse it, locally too: four of them moto does by itself, ``RevokeToken``
only with ``moto_patches.revoke_cognito_tokens``. The checker's own client (urllib, no boto3) talks to the server the
way the authorizer does in the local stack.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from assistant.revocation import RevocationCheck, RevocationCheckUnavailable, TokenRefused, cognito_get_user
from scripts.local_stack.aws.moto_server import MotoServer, client
from scripts.local_stack.aws.resources import generate_password


@dataclass(frozen=True)
class Pool:
    endpoint: str
    idp: Any
    pool_id: str
    client_id: str


@dataclass(frozen=True)
class SignedIn:
    username: str
    access_token: str
    refresh_token: str


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    server = MotoServer()
    endpoint = server.start()
    try:
        idp = client("cognito-idp", endpoint)
        pool_id = idp.create_user_pool(PoolName=f"revocation-{uuid.uuid4().hex[:6]}")["UserPool"]["Id"]
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="web",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            EnableTokenRevocation=True,
        )["UserPoolClient"]["ClientId"]
        yield Pool(endpoint=endpoint, idp=idp, pool_id=pool_id, client_id=client_id)
    finally:
        server.stop()


def sign_in(pool: Pool) -> SignedIn:
    username = f"user-{uuid.uuid4().hex[:8]}"
    password = generate_password()
    pool.idp.admin_create_user(UserPoolId=pool.pool_id, Username=username, MessageAction="SUPPRESS")
    pool.idp.admin_set_user_password(UserPoolId=pool.pool_id, Username=username, Password=password, Permanent=True)
    tokens = pool.idp.initiate_auth(
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )["AuthenticationResult"]
    return SignedIn(username=username, access_token=tokens["AccessToken"], refresh_token=tokens["RefreshToken"])


REVOCATIONS: dict[str, Callable[[Pool, SignedIn], object]] = {
    "GlobalSignOut": lambda pool, user: pool.idp.global_sign_out(AccessToken=user.access_token),
    "AdminUserGlobalSignOut": lambda pool, user: pool.idp.admin_user_global_sign_out(
        UserPoolId=pool.pool_id, Username=user.username
    ),
    "AdminDisableUser": lambda pool, user: pool.idp.admin_disable_user(UserPoolId=pool.pool_id, Username=user.username),
    "AdminDeleteUser": lambda pool, user: pool.idp.admin_delete_user(UserPoolId=pool.pool_id, Username=user.username),
    "RevokeToken": lambda pool, user: pool.idp.revoke_token(Token=user.refresh_token, ClientId=pool.client_id),
}


@pytest.mark.parametrize("revoke", REVOCATIONS.values(), ids=REVOCATIONS.keys())
def test_get_user_accepts_a_live_token_and_refuses_it_once_revoked(
    pool: Pool, revoke: Callable[[Pool, SignedIn], object]
) -> None:
    get_user = cognito_get_user(pool.endpoint)
    user = sign_in(pool)
    bystander = sign_in(pool)
    assert get_user(user.access_token) == "accepted"
    revoke(pool, user)
    assert get_user(user.access_token) == "refused"
    # Only that user's tokens: another user's stay good.
    assert get_user(bystander.access_token) == "accepted"


def test_revoke_token_also_ends_the_refresh_token_and_only_the_tokens_it_issued(pool: Pool) -> None:
    get_user = cognito_get_user(pool.endpoint)
    user = sign_in(pool)
    refreshed = pool.idp.initiate_auth(
        ClientId=pool.client_id, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters={"REFRESH_TOKEN": user.refresh_token}
    )["AuthenticationResult"]["AccessToken"]
    # A second sign-in of the same user (another device) has its own refresh token.
    other_device = pool.idp.initiate_auth(
        ClientId=pool.client_id, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters={"REFRESH_TOKEN": user.refresh_token}
    )["AuthenticationResult"]["AccessToken"]
    second = sign_in_again(pool, user)
    pool.idp.revoke_token(Token=user.refresh_token, ClientId=pool.client_id)
    assert get_user(user.access_token) == "refused"
    assert get_user(refreshed) == "refused"
    assert get_user(other_device) == "refused"
    assert get_user(second) == "accepted"
    with pytest.raises(pool.idp.exceptions.NotAuthorizedException):
        pool.idp.initiate_auth(
            ClientId=pool.client_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": user.refresh_token},
        )
    # Revoking again (a second Sign out click, a retry) succeeds, as in Cognito.
    pool.idp.revoke_token(Token=user.refresh_token, ClientId=pool.client_id)


def sign_in_again(pool: Pool, user: SignedIn) -> str:
    """A second sign-in of ``user`` by password reset to a known one (moto keeps no password we could reuse)."""
    password = generate_password()
    pool.idp.admin_set_user_password(UserPoolId=pool.pool_id, Username=user.username, Password=password, Permanent=True)
    tokens = pool.idp.initiate_auth(
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user.username, "PASSWORD": password},
    )["AuthenticationResult"]
    return str(tokens["AccessToken"])


def test_a_forged_token_is_refused_and_an_unreachable_cognito_is_no_verdict(pool: Pool) -> None:
    assert cognito_get_user(pool.endpoint)("not-a-token") == "refused"
    with pytest.raises(RevocationCheckUnavailable):
        # A port nothing listens on (the moto server's own port plus one is not guaranteed free: use port 9).
        cognito_get_user("http://127.0.0.1:9/", timeout_seconds=1)("anything")


def test_the_check_asks_cognito_once_per_interval_and_remembers_a_refusal(pool: Pool) -> None:
    now = [1000.0]
    check = RevocationCheck(cognito_get_user(pool.endpoint), recheck_seconds=60, clock=lambda: now[0])
    user = sign_in(pool)
    for _ in range(50):
        assert check.check(user.access_token) is True
    assert check.calls == 1, "a token Cognito accepted is not asked about again within the interval"
    pool.idp.global_sign_out(AccessToken=user.access_token)
    now[0] += 59
    assert check.check(user.access_token) is True, "still within the interval: the answer is trusted"
    now[0] += 2
    with pytest.raises(TokenRefused):
        check.check(user.access_token)
    for _ in range(20):
        with pytest.raises(TokenRefused):
            check.check(user.access_token)
    assert check.calls == 2, "a refused token is remembered as refused"
