"""Bedrock requests SigV4-signed by the ``openai`` SDK's own provider with the function's role, for both endpoints.

The client is the real SDK (``openai.providers.bedrock``), talking over HTTP to a recorder on 127.0.0.1 that keeps
each request. The recorder checks a signature the way AWS would: it recomputes it with botocore's SigV4 from the
request as received (method, URL, the headers the signature names, the body) and the secret key, so a request that
names the right service and region but was signed over anything else fails.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from assistant import bedrock, clients
from assistant.bedrock import BedrockSigning
from assistant.settings import ModelSettings
from assistant.wiring import Env, ModelProvider
from tests.handlers import reset_handlers
from tests.http_stub import StubRequest, http_stub

SECRET = "fake-secret-key"
SIGNATURE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
#: The Responses API's minimal completed response, enough for the SDK to parse ``responses.create``.
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 0,
    "status": "completed",
    "model": "m",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Recorder:
    received: list[Received] = []

    @classmethod
    def record(cls, request: StubRequest) -> None:
        cls.received.append(Received(request.method, request.path, dict(request.headers.items()), request.body))
        request.answer_json(200, RESPONSE if request.method == "POST" else {"object": "list", "data": []})


@pytest.fixture
def recorder() -> Iterator[str]:
    """The base URL of a server on 127.0.0.1 that records every request (``_Recorder.received``)."""
    _Recorder.received = []
    with http_stub(_Recorder.record) as origin:
        yield f"{origin}/v1"


def _header(received: Received, name: str) -> str | None:
    return next((value for key, value in received.headers.items() if key.lower() == name), None)


def _verify(received: Received, base_url: str, *, secret: str, region: str, service: str) -> re.Match[str]:
    """The request's SigV4 ``Authorization``, checked by recomputing the signature as AWS does; returns its parts."""
    authorization = _header(received, "authorization") or ""
    match = SIGNATURE.match(authorization)
    assert match is not None, authorization
    assert (match["region"], match["service"]) == (region, service)
    amz_date = _header(received, "x-amz-date")
    assert amz_date is not None
    assert amz_date.startswith(match["date"])
    assert _header(received, "x-amz-content-sha256") == hashlib.sha256(received.body).hexdigest()
    origin = base_url.split("/v1")[0]
    signed = match["signed"].split(";")
    request = AWSRequest(
        method=received.method,
        url=origin + received.path,
        data=received.body,
        headers={name: _header(received, name) or "" for name in signed},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(match["key"], secret, _header(received, "x-amz-security-token")), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    assert match["signature"] == expected, "the signature does not cover the request as received"
    return match


def _client(signing: BedrockSigning, base_url: str) -> Any:
    import openai

    return openai.OpenAI(provider=signing.sdk_provider(base_url), max_retries=0)


# --- The SDK's provider: one signature per request, for the endpoint's own service and region --------------------


@pytest.mark.parametrize(("endpoint", "service"), [("runtime", "bedrock"), ("mantle", "bedrock-mantle")])
def test_each_endpoint_is_signed_for_its_own_service_and_region(
    recorder: str, endpoint: bedrock.BedrockEndpoint, service: str
) -> None:
    role = Credentials("ASIAWORKERROLE000000", SECRET, "role-session-token")
    client = _client(BedrockSigning(endpoint, "eu-central-1", credentials=lambda: role), recorder)
    client.responses.create(model="m", input="Hello")
    [received] = _Recorder.received
    assert (received.method, received.path) == ("POST", "/v1/responses")
    match = _verify(received, recorder, secret=SECRET, region="eu-central-1", service=service)
    assert match["key"] == "ASIAWORKERROLE000000"
    # A role's credentials are temporary: the session token travels with the request and is itself signed.
    assert _header(received, "x-amz-security-token") == "role-session-token"
    assert "x-amz-security-token" in match["signed"].split(";")
    assert json.loads(received.body)["input"] == "Hello"


def test_long_term_credentials_send_no_session_token(recorder: str) -> None:
    client = _client(BedrockSigning("runtime", "us-west-2", credentials=lambda: Credentials("AKID", SECRET)), recorder)
    client.models.list()
    [received] = _Recorder.received
    _verify(received, recorder, secret=SECRET, region="us-west-2", service="bedrock")
    assert _header(received, "x-amz-security-token") is None


def test_a_signature_over_another_body_is_refused_by_the_check(recorder: str) -> None:
    """The recorder's check itself: a request whose body changed after signing fails it (the check can fail)."""
    client = _client(BedrockSigning("mantle", "us-east-1", credentials=lambda: Credentials("AKID", SECRET)), recorder)
    client.responses.create(model="m", input="Hello")
    [received] = _Recorder.received
    tampered = Received(received.method, received.path, received.headers, received.body.replace(b"Hello", b"Bye"))
    with pytest.raises(AssertionError):
        _verify(tampered, recorder, secret=SECRET, region="us-east-1", service="bedrock-mantle")
    with pytest.raises(AssertionError):
        _verify(received, recorder, secret="another-secret", region="us-east-1", service="bedrock-mantle")


class _Session:
    """botocore's session as :func:`assistant.bedrock.role_credentials` sees it."""

    def __init__(self, credentials: object) -> None:
        self.credentials = credentials

    def get_credentials(self) -> object:
        return self.credentials


def test_credentials_the_role_refreshes_are_used_from_the_next_request_on(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda hands a container new role credentials (SnapStart: from its credentials endpoint, which botocore
    refreshes before they expire): the same client signs its next request with them, nothing is rebuilt."""
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        issued.append(f"ASIAROTATED{len(issued):09d}")
        # Within botocore's mandatory refresh window: every use refreshes, as if each set were about to expire.
        expiry = datetime.now(UTC) + timedelta(minutes=5)
        return {"access_key": issued[-1], "secret_key": SECRET, "token": "t", "expiry_time": expiry.isoformat()}

    role = RefreshableCredentials.create_from_metadata(refresh(), refresh_using=refresh, method="container-role")
    monkeypatch.setattr(bedrock, "_session", lambda: _Session(role))
    client = _client(BedrockSigning("runtime", "eu-west-1"), recorder)  # the default: role_credentials
    client.models.list()
    client.models.list()
    keys = [
        _verify(r, recorder, secret=SECRET, region="eu-west-1", service="bedrock")["key"] for r in _Recorder.received
    ]
    assert len(set(keys)) == 2
    assert set(keys) <= set(issued)


def test_without_credentials_the_request_is_not_sent(recorder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    monkeypatch.setattr(bedrock, "_session", lambda: _Session(None))
    with pytest.raises(RuntimeError, match="No AWS credentials"):
        bedrock.role_credentials()
    with pytest.raises(openai.OpenAIError):
        _client(BedrockSigning("mantle", "eu-west-1"), recorder).models.list()
    assert _Recorder.received == []


def test_a_signing_needs_a_region() -> None:
    with pytest.raises(ValueError, match="region"):
        BedrockSigning("runtime", "")


# --- The runtime: which credential and endpoint each profile's model client gets ---------------------------------


@pytest.fixture
def bedrock_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (Env.OPENAI_BASE_URL, Env.OPENAI_SECRET_NAME, Env.MODEL_OVERRIDE, Env.ASSISTANT_FILE):
        monkeypatch.delenv(name.value, raising=False)
    for variable in ("AWS_PROFILE", "AWS_BEDROCK_BASE_URL", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(Env.MODEL_PROVIDER.value, ModelProvider.BEDROCK.value)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    # The execution role's credentials, where Lambda puts them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAWORKERROLE000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "role-session")
    bedrock._session.cache_clear()
    reset_handlers()
    yield
    bedrock._session.cache_clear()
    reset_handlers()


def _model_clients() -> clients.ModelClients:
    """What a function that talks to the model builds from its environment in a new container."""
    return clients.ModelClients(ModelSettings.from_env())


def _never_read_secrets(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a Bedrock stage must never ask Secrets Manager for a model key")


@pytest.mark.parametrize(
    ("provider", "service"), [(ModelProvider.BEDROCK, "bedrock"), (ModelProvider.BEDROCK_MANTLE, "bedrock-mantle")]
)
def test_a_bedrock_stage_signs_with_the_role_and_never_reads_a_secret(
    bedrock_env: None, recorder: str, monkeypatch: pytest.MonkeyPatch, provider: ModelProvider, service: str
) -> None:
    from aws_lambda_powertools.utilities import parameters

    monkeypatch.setattr(parameters, "get_secret", _never_read_secrets)
    monkeypatch.setenv(Env.MODEL_PROVIDER.value, provider.value)
    monkeypatch.setenv(Env.OPENAI_BASE_URL.value, recorder)  # an explicit endpoint wins, and is signed all the same
    # A bearer token lying around in the environment must not switch the stage away from the role.
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "a-stray-api-key")
    model = _model_clients()
    assert model.api_key() is None
    client = model()
    assert model() is client  # one client per container: it signs each request with the current credentials
    client._client.responses.create(model="m", input="Hello")
    client._client.models.list()
    assert [(r.method, r.path) for r in _Recorder.received] == [("POST", "/v1/responses"), ("GET", "/v1/models")]
    for received in _Recorder.received:
        match = _verify(received, recorder, secret=SECRET, region="eu-central-1", service=service)
        assert match["key"] == "ASIAWORKERROLE000000"
        assert _header(received, "x-amz-security-token") == "role-session"


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
    client = _model_clients()()
    assert str(client._client.base_url) == expected


def test_the_profiles_declare_their_signing_endpoint_and_default_model() -> None:
    assert ModelProvider.OPENAI.base_url("us-east-1") is None
    assert ModelProvider.OPENAI_COMPATIBLE.base_url("us-east-1") is None
    assert ModelProvider.BEDROCK.base_url("ap-northeast-1") == (
        "https://bedrock-runtime.ap-northeast-1.amazonaws.com/openai/v1"
    )
    runtime_profile, mantle = ModelProvider.BEDROCK.capabilities, ModelProvider.BEDROCK_MANTLE.capabilities
    assert (runtime_profile.auth, runtime_profile.bedrock_endpoint) == ("aws_sigv4", "runtime")
    assert (mantle.auth, mantle.bedrock_endpoint) == ("aws_sigv4", "mantle")
    # bedrock-runtime ids carry a version suffix, mantle's do not: the same model, named per endpoint.
    assert runtime_profile.default_model == "openai.gpt-oss-120b-1:0"
    assert mantle.default_model == "openai.gpt-oss-120b"
    for provider in (ModelProvider.OPENAI, ModelProvider.OPENAI_COMPATIBLE):
        assert provider.capabilities.bedrock_endpoint is None
        assert provider.capabilities.default_model is None


def test_an_openai_compatible_stage_without_a_secret_sends_a_placeholder_key(
    bedrock_env: None, recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities import parameters

    monkeypatch.setattr(parameters, "get_secret", _never_read_secrets)
    monkeypatch.setenv(Env.MODEL_PROVIDER.value, ModelProvider.OPENAI_COMPATIBLE.value)
    monkeypatch.setenv(Env.OPENAI_BASE_URL.value, recorder)
    model = _model_clients()
    assert model.api_key() == clients.NO_API_KEY
    model()._client.models.list()
    assert [_header(r, "authorization") for r in _Recorder.received] == [f"Bearer {clients.NO_API_KEY}"]


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
    assert model.api_key() == clients.NO_API_KEY
