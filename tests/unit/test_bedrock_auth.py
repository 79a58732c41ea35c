"""Bedrock API keys minted from the role's credentials, and how the runtime hands them to the model client.

The keys are real: ``aws-bedrock-token-generator`` presigns offline, so fake credentials make a well-formed key whose
signed query (region, lifetime, access key) the tests read back. The model client is the real ``openai`` SDK, talking
to a recorder on 127.0.0.1 that keeps each request's ``Authorization`` header.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from botocore.credentials import Credentials

from assistant import runtime
from assistant.bedrock_auth import BedrockTokenSource, mint_token
from assistant.settings import ModelSettings
from assistant.wiring import (
    BEDROCK_TOKEN_LIFETIME_SECONDS,
    BEDROCK_TOKEN_REFRESH_SECONDS,
    Env,
    ModelProvider,
)
from tests.handlers import reset_handlers

KEY_PREFIX = "bedrock-api-key-"


def _signed_query(token: str) -> dict[str, str]:
    """The presigned request inside a Bedrock API key, as its query parameters."""
    assert token.startswith(KEY_PREFIX)
    url = base64.b64decode(token[len(KEY_PREFIX) :]).decode()
    host, _, query = url.partition("/?")
    assert host == "bedrock.amazonaws.com"
    return {name: values[0] for name, values in parse_qs(query).items()}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Role:
    """The role's credentials as botocore's chain would return them; ``rotate`` is Lambda handing out new ones."""

    def __init__(self) -> None:
        self.generation = 0
        self.calls = 0

    def rotate(self) -> None:
        self.generation += 1

    def __call__(self) -> Credentials:
        self.calls += 1
        return Credentials(
            f"ASIAFAKE{self.generation:012d}", "fake-secret-key", f"fake-session-token-{self.generation}"
        )


class CountingMint:
    def __init__(self) -> None:
        self.minted: list[str] = []

    def __call__(self, credentials: Credentials, region: str, lifetime_seconds: int) -> str:
        token = mint_token(credentials, region, lifetime_seconds)
        self.minted.append(token)
        return token


def test_a_minted_key_is_signed_for_the_region_with_the_role_credentials_and_a_short_lifetime() -> None:
    role = Role()
    token = BedrockTokenSource("eu-west-1", credentials=role)()
    query = _signed_query(token)
    assert query["Action"] == "CallWithBearerToken"
    assert query["X-Amz-Credential"].startswith("ASIAFAKE000000000000/")
    assert "/eu-west-1/bedrock/aws4_request" in query["X-Amz-Credential"]
    assert query["X-Amz-Expires"] == str(BEDROCK_TOKEN_LIFETIME_SECONDS)
    assert query["X-Amz-Security-Token"] == "fake-session-token-0"
    assert query["Version"] == "1"


def test_the_key_is_reused_until_the_refresh_interval_then_minted_again() -> None:
    clock, mint = FakeClock(), CountingMint()
    source = BedrockTokenSource("us-east-1", credentials=Role(), mint=mint, clock=clock)
    first = source()
    clock.now += BEDROCK_TOKEN_REFRESH_SECONDS - 1
    assert source() == first
    assert len(mint.minted) == 1
    clock.now += 1
    second = source()
    assert len(mint.minted) == 2
    assert second == mint.minted[-1]
    clock.now += 1
    assert source() == second


def test_new_role_credentials_get_a_new_key_at_once() -> None:
    clock, mint, role = FakeClock(), CountingMint(), Role()
    source = BedrockTokenSource("us-east-1", credentials=role, mint=mint, clock=clock)
    first = source()
    role.rotate()
    second = source()
    assert second != first
    assert _signed_query(second)["X-Amz-Security-Token"] == "fake-session-token-1"
    assert len(mint.minted) == 2


def test_the_refresh_comes_well_before_the_key_expires() -> None:
    assert BEDROCK_TOKEN_REFRESH_SECONDS * 4 <= BEDROCK_TOKEN_LIFETIME_SECONDS <= 12 * 60 * 60
    with pytest.raises(ValueError, match="before it expires"):
        BedrockTokenSource("us-east-1", refresh_after_seconds=3600, lifetime_seconds=3600)
    with pytest.raises(ValueError, match="region"):
        BedrockTokenSource("")


def test_no_credentials_is_an_error_that_says_so() -> None:
    source = BedrockTokenSource("us-east-1", credentials=lambda: None)
    with pytest.raises(RuntimeError, match="No AWS credentials"):
        source()


def test_the_default_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAENVIRONMENT00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-session")
    from assistant import bedrock_auth

    bedrock_auth._session.cache_clear()
    try:
        query = _signed_query(BedrockTokenSource("us-west-2")())
    finally:
        bedrock_auth._session.cache_clear()
    assert query["X-Amz-Credential"].startswith("ASIAENVIRONMENT00000/")
    assert query["X-Amz-Security-Token"] == "env-session"


# --- The runtime: which credential and endpoint the model client gets ------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    authorizations: list[str] = []
    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).authorizations.append(self.headers.get("Authorization", ""))
        type(self).paths.append(self.path)
        body = json.dumps({"object": "list", "data": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.authorizations = []
    _Recorder.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def bedrock_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (Env.OPENAI_BASE_URL, Env.OPENAI_SECRET_NAME, Env.MODEL_OVERRIDE, Env.ASSISTANT_FILE):
        monkeypatch.delenv(name.value, raising=False)
    monkeypatch.setenv(Env.MODEL_PROVIDER.value, ModelProvider.BEDROCK.value)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAWORKERROLE000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "role-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "role-session")
    from assistant import bedrock_auth

    bedrock_auth._session.cache_clear()
    reset_handlers()
    yield
    bedrock_auth._session.cache_clear()
    reset_handlers()


def _model_clients() -> runtime.ModelClients:
    """What a function that talks to the model builds from its environment in a new container."""
    return runtime.ModelClients(ModelSettings.from_env())


def _never_read_secrets(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a Bedrock stage must never ask Secrets Manager for a model key")


def test_a_bedrock_stage_sends_a_minted_key_and_never_reads_a_secret(
    bedrock_env: None, recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities import parameters

    monkeypatch.setattr(parameters, "get_secret", _never_read_secrets)
    monkeypatch.setenv(Env.OPENAI_BASE_URL.value, recorder)  # an explicit endpoint wins over the profile's
    model = _model_clients()
    client = model()
    assert model() is client  # one client per container: the key source refreshes itself
    client._client.models.list()
    client._client.models.list()
    assert _Recorder.paths == ["/v1/models", "/v1/models"]
    for authorization in _Recorder.authorizations:
        scheme, _, token = authorization.partition(" ")
        assert scheme == "Bearer"
        query = _signed_query(token)
        assert "/eu-central-1/bedrock/aws4_request" in query["X-Amz-Credential"]
        assert query["X-Amz-Credential"].startswith("ASIAWORKERROLE000000/")


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        (ModelProvider.BEDROCK, "https://bedrock-runtime.eu-central-1.amazonaws.com/openai/v1/"),
        (ModelProvider.BEDROCK_MANTLE, "https://bedrock-mantle.eu-central-1.api.aws/v1/"),
    ],
)
def test_a_bedrock_stage_talks_to_its_region_s_endpoint(
    bedrock_env: None, monkeypatch: pytest.MonkeyPatch, provider: ModelProvider, expected: str
) -> None:
    monkeypatch.setenv(Env.MODEL_PROVIDER.value, provider.value)
    model = _model_clients()
    client = model()
    assert str(client._client.base_url) == expected
    assert model.api_key() is model.bedrock_token_source()


def test_the_openai_profile_has_no_fixed_endpoint_and_bedrock_profiles_do() -> None:
    assert ModelProvider.OPENAI.base_url("us-east-1") is None
    assert ModelProvider.OPENAI_COMPATIBLE.base_url("us-east-1") is None
    assert ModelProvider.BEDROCK.base_url("ap-northeast-1") == (
        "https://bedrock-runtime.ap-northeast-1.amazonaws.com/openai/v1"
    )
    assert ModelProvider.BEDROCK_MANTLE.capabilities.auth == "bedrock_iam"
    assert ModelProvider.BEDROCK.capabilities.auth == "bedrock_iam"


def test_an_openai_compatible_stage_without_a_secret_sends_a_placeholder_key(
    bedrock_env: None, recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities import parameters

    monkeypatch.setattr(parameters, "get_secret", _never_read_secrets)
    monkeypatch.setenv(Env.MODEL_PROVIDER.value, ModelProvider.OPENAI_COMPATIBLE.value)
    monkeypatch.setenv(Env.OPENAI_BASE_URL.value, recorder)
    model = _model_clients()
    assert model.api_key() == runtime.NO_API_KEY
    model()._client.models.list()
    assert _Recorder.authorizations == [f"Bearer {runtime.NO_API_KEY}"]


def test_an_openai_compatible_stage_uses_the_secret_when_it_holds_a_key(
    bedrock_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities import parameters

    values = {"stage-key": "  sk-self-hosted  ", "empty": "  "}
    monkeypatch.setattr(parameters, "get_secret", lambda name, **_: values[name])
    monkeypatch.setenv(Env.MODEL_PROVIDER.value, ModelProvider.OPENAI_COMPATIBLE.value)
    monkeypatch.setenv(Env.OPENAI_SECRET_NAME.value, "stage-key")
    model = _model_clients()
    assert model.api_key() == "sk-self-hosted"
    monkeypatch.setenv(Env.OPENAI_SECRET_NAME.value, "empty")
    model = _model_clients()
    assert model.api_key() == runtime.NO_API_KEY
