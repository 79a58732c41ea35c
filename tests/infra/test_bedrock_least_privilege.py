"""Least privilege for the model calls of a Bedrock stage, proven both ways like the AWS calls of
tests/infra/test_least_privilege.py.

The ``openai`` SDK's Bedrock provider signs model calls itself (SigV4 over httpx, not botocore), so the botocore
recorder never sees them. Here each function's model client is built the way the function builds it
(``clients.ModelClients`` from the environment the synthesized template gives it, signing with role credentials)
and pointed at a recording SigV4 front of the offline model on 127.0.0.1, which notes every request (method, path,
the service its signature was made for, and the model) and passes it on. Every call the worker and ``commands``
make on the paths they take (a reply with a tool round, a Stop, a resumed reply, the ``cancel`` route's cancel) is
mapped to the IAM action and resource AWS authorizes it by, and evaluated against that function's policy in the
``provider=bedrock`` and ``provider=bedrock-mantle`` templates:

- ``bedrock`` (bedrock-runtime): a streamed ``POST /openai/v1/responses`` is
  ``bedrock:InvokeModelWithResponseStream`` on the foundation model, plus ``bedrock:InvokeModel`` on the account's
  default project, which the OpenAI-compatible APIs check besides the model (infra/bedrock.py cites both);
- ``bedrock-mantle``: ``POST /v1/responses`` is ``bedrock-mantle:CreateInference``, ``GET /v1/responses/{id}``
  ``GetInference`` and ``POST /v1/responses/{id}/cancel`` ``CancelInference``, on the default project
  (AWS's managed policy AmazonBedrockMantleInferenceAccess and the Service Authorization Reference).

A call no statement allows fails, and so does a Bedrock grant no call uses.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from assistant import bedrock
from assistant.clients import ModelClients
from assistant.model import ModelClient, ReplyCompleted, ResponseStarted, StopReply, TextDelta
from assistant.settings import CommandsSettings, WorkerSettings
from assistant.tools import ToolContext
from assistant.wiring import ModelProvider
from scripts.local_stack.offline_model import OfflineModelServer, Pace, Profile
from tests.http_stub import StubRequest, http_stub
from tests.infra.least_privilege import ACCOUNT, PARTITION, REGION, Arns, FunctionPolicy, Requirement, glob_match
from tests.infra.test_bedrock_provider import _synth

CONTEXT = ToolContext(user_id="user-1", conversation_id=None, message_id="msg-1")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")


@dataclass(frozen=True)
class ModelCall:
    method: str
    path: str
    service: str
    region: str
    model: str | None
    stream: bool


class _SigV4Front:
    """Notes each SigV4-signed request and passes it on to the offline model (which takes a bearer key), streaming
    the answer back as it comes. The signature itself is checked by tests/unit/test_bedrock_signing.py."""

    upstream: str = ""
    calls: list[ModelCall] = []

    @classmethod
    def pass_on(cls, request: StubRequest) -> None:
        scope = _SCOPE.search(request.headers.get("Authorization", ""))
        assert scope is not None, f"an unsigned model call: {request.method} {request.path}"
        sent = request.json()
        cls.calls.append(
            ModelCall(
                method=request.method,
                path=urllib.parse.urlsplit(request.path).path,
                service=scope["service"],
                region=scope["region"],
                model=sent.get("model"),
                stream=bool(sent.get("stream")) or "stream=true" in request.path,
            )
        )
        upstream = urllib.parse.urlsplit(cls.upstream)
        connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=10)
        # bedrock-runtime serves the Responses API under /openai/v1, mantle under /v1: the offline model under /v1.
        path = re.sub(r"^/openai/v1", "/v1", request.path)
        connection.request(
            request.method,
            path,
            body=request.body or None,
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        # HTTP/1.0: the body runs to the end of the connection, streamed as it comes.
        request.start(answer.status, {"Content-Type": answer.getheader("Content-Type", "application/json")})
        while chunk := answer.read1(65536):
            request.write(chunk)
        connection.close()


@dataclass
class Stage:
    provider: ModelProvider
    template: dict[str, Any]
    front_url: str
    server: OfflineModelServer

    def model_client(self, handler: str, monkeypatch: pytest.MonkeyPatch) -> ModelClient:
        """The model client ``handler``'s function builds in a new container (as assistant.function_dependencies builds
        it), from exactly the environment the template gives it, with the role's credentials where Lambda puts them."""
        environment = FunctionPolicy(self.template, Arns(self.template), handler).environment
        for name in environment:
            monkeypatch.setenv(name, environment[name])
        monkeypatch.setenv("OPENAI_BASE_URL", self.front_url)  # an explicit endpoint is signed all the same
        monkeypatch.setenv("AWS_REGION", REGION)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAWORKERROLE000000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "role-secret")
        monkeypatch.setenv("AWS_SESSION_TOKEN", "role-session")
        bedrock._session.cache_clear()
        if handler == "worker.handler":
            worker = WorkerSettings.from_env()
            return ModelClients(worker, model_override=worker.model_override)()
        return ModelClients(CommandsSettings.from_env())()


def _stage(provider: ModelProvider, tmp: Any) -> Iterator[Stage]:
    _, template = _synth(tmp, provider=provider.value)
    profile: Profile = "openai" if provider.capabilities.stored_responses else "stateless"
    with OfflineModelServer(pace=Pace.instant(), profile=profile) as server:
        _SigV4Front.upstream = server.base_url
        with http_stub(_SigV4Front.pass_on) as origin:
            try:
                base = "/openai/v1" if provider is ModelProvider.BEDROCK else "/v1"
                yield Stage(provider, dict(template.to_json()), origin + base, server)
            finally:
                bedrock._session.cache_clear()


@pytest.fixture(scope="module")
def runtime_stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    yield from _stage(ModelProvider.BEDROCK, tmp_path_factory.mktemp("bedrock-lp"))


@pytest.fixture(scope="module")
def mantle_stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    yield from _stage(ModelProvider.BEDROCK_MANTLE, tmp_path_factory.mktemp("mantle-lp"))


def _requirements(call: ModelCall) -> list[Requirement]:
    """What AWS authorizes one model call by (see the module docstring)."""
    project = f"arn:{PARTITION}:{call.service}:{call.region}:{ACCOUNT}:project/default"
    what = f"{call.method} {call.path}"
    if call.service == "bedrock":
        assert (call.method, call.path) == ("POST", "/openai/v1/responses"), what
        action = "bedrock:InvokeModelWithResponseStream" if call.stream else "bedrock:InvokeModel"
        model = f"arn:{PARTITION}:bedrock:{call.region}::foundation-model/{call.model}"
        return [Requirement(action, model, what), Requirement("bedrock:InvokeModel", project, what)]
    assert call.service == "bedrock-mantle", what
    if (call.method, call.path) == ("POST", "/v1/responses"):
        return [Requirement("bedrock-mantle:CreateInference", project, what)]
    if call.method == "POST" and re.fullmatch(r"/v1/responses/[^/]+/cancel", call.path):
        return [Requirement("bedrock-mantle:CancelInference", project, what)]
    if call.method == "GET" and re.fullmatch(r"/v1/responses/[^/]+", call.path):
        return [Requirement("bedrock-mantle:GetInference", project, what)]
    raise AssertionError(f"a model call the proof cannot map: {what}")


#: Bedrock grants no call of the suites uses, kept on purpose: (function glob, action, resource glob, why).
EXEMPT: tuple[tuple[str, str, str, str], ...] = (
    (
        "worker.handler",
        "bedrock:InvokeModel",
        "arn:*:bedrock:*::foundation-model/*",
        "AWS does not say which of the two invoke actions a streamed request to the OpenAI-compatible Responses API "
        "is authorized by, and its own policy for those APIs grants both on the model "
        "(https://docs.aws.amazon.com/bedrock/latest/userguide/inference.html); without it a deploy could fail "
        "every reply with AccessDenied",
    ),
)


def _exempt(handler: str, action: str, resource: str) -> bool:
    return any(
        glob_match(function, handler) and glob_match(exempt, action, case_sensitive=False) and glob_match(arn, resource)
        for function, exempt, arn, _why in EXEMPT
    )


def _prove(stage: Stage, calls_by_handler: dict[str, list[ModelCall]]) -> None:
    """Every call allowed by its function's role, every Bedrock grant of every function used by some call."""
    arns = Arns(stage.template)
    problems: list[str] = []
    handlers = {
        resource["Properties"]["Handler"]
        for resource in stage.template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
        and str(resource["Properties"].get("Handler", "")).endswith(".handler")
    }
    for handler in sorted(handlers):
        policy = FunctionPolicy(stage.template, arns, handler)
        used = [r for call in calls_by_handler.get(handler, []) for r in _requirements(call)]
        problems += [f"{handler}: {r.call} needs {r.action} on {r.resource}" for r in used if not policy.allows(r)]
        for grant in policy.grants:
            if not grant.action.lower().startswith("bedrock"):
                continue  # the botocore proof covers every other grant
            if not _exempt(handler, grant.action, grant.resource) and not any(
                glob_match(grant.action, r.action, case_sensitive=False) and glob_match(grant.resource, r.resource)
                for r in used
            ):
                problems.append(f"{handler}: grants {grant.action} on {grant.resource}, which no model call uses")
    if problems:
        raise AssertionError("\n".join(problems))


def _stop_after_the_first_words(client: ModelClient, text: str) -> str:
    reply = client.stream_reply(text=text, context=CONTEXT)
    response_id = ""
    for event in reply:
        if isinstance(event, ResponseStarted):
            response_id = event.response_id
        if isinstance(event, TextDelta):
            break
    try:
        raise StopReply
    except StopReply:
        reply.close()
    return response_id


def test_the_runtime_stage_grants_exactly_what_its_model_calls_need(
    runtime_stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _SigV4Front.calls.clear()
    worker = runtime_stage.model_client("worker.handler", monkeypatch)
    list(worker.stream_reply(text="What time is it in Tokyo?", context=CONTEXT))  # a tool round: two responses
    _stop_after_the_first_words(worker, "Tell me a long story about a lighthouse")
    worker_calls = list(_SigV4Front.calls)
    assert {(c.service, c.region) for c in worker_calls} == {("bedrock", REGION)}
    assert len(worker_calls) == 3
    # The commands function builds a model client too, but a synchronous endpoint has nothing to cancel.
    _SigV4Front.calls.clear()
    assert runtime_stage.model_client("commands.handler", monkeypatch).cancel_response("resp_x") is False
    assert _SigV4Front.calls == []

    _prove(runtime_stage, {"worker.handler": worker_calls})


def test_the_mantle_stage_grants_exactly_what_its_model_calls_need(
    mantle_stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _SigV4Front.calls.clear()
    worker = mantle_stage.model_client("worker.handler", monkeypatch)
    completed = list(worker.stream_reply(text="What time is it in Tokyo?", context=CONTEXT))
    # A redelivered message picks the reply up from the stored response (mantle re-streams nothing: it reads it).
    assert isinstance(completed[-1], ReplyCompleted)
    list(worker.resume_reply(response_id=completed[-1].response_id, context=CONTEXT))
    # A Stop while the model is generating: the running response is cancelled.
    mantle_stage.server.pace = Pace(first_token_s=0.0, tokens_per_s=50.0, reasoning_s=0.0)
    running = _stop_after_the_first_words(worker, "Tell me a long story about a lighthouse")
    worker_calls = list(_SigV4Front.calls)
    assert {(c.service, c.region) for c in worker_calls} == {("bedrock-mantle", REGION)}
    assert {(c.method, re.sub(r"resp_\w+", "{id}", c.path)) for c in worker_calls} >= {
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/{id}"),
        ("POST", "/v1/responses/{id}/cancel"),
    }
    # The cancel route stops a response the worker is waiting on.
    _SigV4Front.calls.clear()
    mantle_stage.server.pace = Pace(first_token_s=30.0, tokens_per_s=50.0, reasoning_s=0.0)
    slow = mantle_stage.model_client("commands.handler", monkeypatch)
    assert slow.cancel_response(running) is True
    commands_calls = list(_SigV4Front.calls)
    assert [(c.method, c.path) for c in commands_calls] == [("POST", f"/v1/responses/{running}/cancel")]
    mantle_stage.server.pace = Pace.instant()

    _prove(mantle_stage, {"worker.handler": worker_calls, "commands.handler": commands_calls})


def test_the_proof_fails_on_a_grant_removed_and_on_one_never_used(mantle_stage: Stage) -> None:
    """The mutants: the worker without GetInference, and a grant no recorded call uses."""
    call = ModelCall("GET", "/v1/responses/resp_1", "bedrock-mantle", REGION, None, False)
    template = json.loads(json.dumps(mantle_stage.template))
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "bedrock-mantle:GetInference" in actions:
                statement["Action"] = [a for a in actions if a != "bedrock-mantle:GetInference"]
    with pytest.raises(
        AssertionError, match=re.escape("worker.handler: GET /v1/responses/resp_1 needs bedrock-mantle:GetInference")
    ):
        _prove(Stage(mantle_stage.provider, template, "", mantle_stage.server), {"worker.handler": [call]})
    # A function that never cancels anything (no call recorded for it) holding CancelInference.
    with pytest.raises(
        AssertionError, match=r"commands\.handler: grants bedrock-mantle:CancelInference .* no model call"
    ):
        _prove(mantle_stage, {"worker.handler": [call]})
