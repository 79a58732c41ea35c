"""Fixtures shared by every test suite: fake AWS credentials, moto-backed AWS services, a controllable clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.utilities.utils import load_resource

from scripts.local_stack.aws.resources import create_table
from tests.aws_call_recording import (  # noqa: F401 - pytest's hooks: the least-privilege proof's recording
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_deselected,
    pytest_runtest_protocol,
    pytest_unconfigure,
)

REGION = "us-east-1"
TABLE_NAME = "assistant-test"

# Powertools reads these when a handler module's Logger and Metrics are created, at its first import in this process,
# whichever test module imports it first (pytest imports every module while collecting, in any order). Set here so
# no import order can leave the in-process handlers without a metrics namespace, as Lambda never would. (Functions
# run as deployed, in processes of their own with their exact environment, are checked in
# tests/infra/test_deployed_environment.py and the e2e suite.)
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "assistant-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AssistantTest")


@dataclass
class FakeClock:
    """A clock that moves only when a test says so; pass it wherever code takes ``clock=``."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class PagingTable:
    """Forces tiny query pages so the store's pagination is exercised; everything else goes to the real table."""

    def __init__(self, table: Any, page_size: int) -> None:
        self._table = table
        self._page_size = page_size
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def query(self, **kwargs: Any) -> Any:
        self.queries += 1
        return self._table.query(Limit=self._page_size, **kwargs)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """Fake credentials and region, and no shared config, so no test can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return REGION


@pytest.fixture
def aws(aws_env: str) -> Iterator[None]:
    """Every boto3 call inside the test goes to moto's in-process backends."""
    with mock_aws():
        yield


@pytest.fixture
def ddb_table(aws: None) -> Any:
    """The single table as the stacks declare it (pk/sk strings, on-demand, TTL on ``expiresAt``)."""
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    create_table(dynamodb.meta.client, TABLE_NAME)
    table = dynamodb.Table(TABLE_NAME)
    table.wait_until_exists()
    return table


@dataclass(frozen=True)
class CognitoPool:
    """A moto user pool with an app client that allows USER_PASSWORD_AUTH, and one confirmed user."""

    client: Any
    region: str
    user_pool_id: str
    client_id: str
    username: str
    password: str
    user_sub: str

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    def create_user(self, username: str, password: str) -> str:
        """Create a confirmed user (permanent password) and return its ``sub``."""
        self.client.admin_create_user(
            UserPoolId=self.user_pool_id,
            Username=username,
            TemporaryPassword=password,
            MessageAction="SUPPRESS",
        )
        self.client.admin_set_user_password(
            UserPoolId=self.user_pool_id, Username=username, Password=password, Permanent=True
        )
        attributes = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=username)["UserAttributes"]
        return next(a["Value"] for a in attributes if a["Name"] == "sub")

    def login(self, username: str | None = None, password: str | None = None, client_id: str | None = None) -> Any:
        """The ``AuthenticationResult`` of a USER_PASSWORD_AUTH sign-in (AccessToken, IdToken, RefreshToken)."""
        result = self.client.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=client_id or self.client_id,
            AuthParameters={"USERNAME": username or self.username, "PASSWORD": password or self.password},
        )
        return result["AuthenticationResult"]

    def access_token(self, **login: Any) -> str:
        return str(self.login(**login)["AccessToken"])

    def id_token(self, **login: Any) -> str:
        return str(self.login(**login)["IdToken"])

    def add_client(self, name: str) -> str:
        """Another app client of the same pool (tokens of it must not open our connections)."""
        return _create_client(self.client, self.user_pool_id, name)

    @staticmethod
    def jwks() -> dict[str, Any]:
        """The public JWKS moto signs every pool's tokens with (served over HTTP only in server mode)."""
        document: dict[str, Any] = load_resource("cognitoidp/resources/jwks-public.json")
        return document


def _create_client(client: Any, user_pool_id: str, name: str) -> str:
    response = client.create_user_pool_client(
        UserPoolId=user_pool_id,
        ClientName=name,
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )
    return str(response["UserPoolClient"]["ClientId"])


@pytest.fixture
def cognito_pool(aws: None) -> CognitoPool:
    client = boto3.client("cognito-idp", region_name=REGION)
    user_pool_id = client.create_user_pool(PoolName="assistant-test")["UserPool"]["Id"]
    client_id = _create_client(client, user_pool_id, "web")
    pool = CognitoPool(
        client=client,
        region=REGION,
        user_pool_id=user_pool_id,
        client_id=client_id,
        username="alice",
        password="Correct-Horse-9-battery",
        user_sub="",
    )
    sub = pool.create_user(pool.username, pool.password)
    return replace(pool, user_sub=sub)
