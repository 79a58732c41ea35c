"""The message routes end a connection whose token Cognito revoked: ``token_revoked``, then the close.

Every route function (``sendMessage``, the commands, ``$default``) reads the token from the authorizer's context and
asks its ``RevocationCheck``; Cognito is played by a counting stand-in here (moto in ``mock_aws`` mode cannot see the
check's urllib calls). tests/integration/test_token_revocation.py runs the real client against moto's server, and
tests/e2e/test_revocation.py all of it through real WebSockets.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import commands
import default
import pytest
import send_message

from assistant.refusals import REFUSALS_BEFORE_CLOSE
from assistant.revocation import RevocationCheck, RevocationCheckUnavailable, Verdict
from tests.connections_api import RecordingApi
from tests.handlers import reset_handlers
from tests.integration.conftest import Deployment

HANDLERS = {
    "sendMessage": (send_message, {"action": "sendMessage", "message": "still there?", "messageId": "m-revoked"}),
    "commands": (commands, {"action": "listConversations"}),
    "$default": (default, {"action": "nope"}),
}


class _Cognito:
    """GetUser as Cognito answers it for the tokens in :attr:`verdicts`, counting the calls."""

    def __init__(self, verdicts: dict[str, Verdict | Exception]) -> None:
        self.verdicts = verdicts
        self.calls: list[str] = []

    def get_user(self, token: str) -> Verdict:
        self.calls.append(token)
        verdict = self.verdicts[token]
        if isinstance(verdict, Exception):
            raise verdict
        return verdict


def _use(
    monkeypatch: pytest.MonkeyPatch, module: Any, cognito: _Cognito, *, recheck_seconds: float = 60
) -> RevocationCheck:
    """The module's dependencies as built, with Cognito played by ``cognito`` (the handlers look ``dependencies``
    up at each call)."""
    check = RevocationCheck(cognito.get_user, recheck_seconds=recheck_seconds)
    replaced = dataclasses.replace(module.dependencies(), revocation=check)
    monkeypatch.setattr(module, "dependencies", lambda: replaced)
    return check


def _event(deployment: Deployment, frame: dict[str, Any], token: str | None) -> dict[str, Any]:
    event = deployment.ws_event(frame["action"], frame)
    if token is not None:
        event["requestContext"]["authorizer"]["accessToken"] = token
    return event


@pytest.mark.parametrize("route", HANDLERS)
def test_a_connection_whose_token_was_revoked_is_told_and_closed(
    deployment: Deployment, recording_api: RecordingApi, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, frame = HANDLERS[route]
    cognito = _Cognito({"tok-revoked": "refused"})
    _use(monkeypatch, module, cognito)

    response = deployment.call(module.handler, _event(deployment, frame, "tok-revoked"))

    assert "body" not in response  # said by a post: a route response would arrive after the close
    assert recording_api.order() == [("post", "conn-a1"), ("delete", "conn-a1")]
    assert recording_api.calls[0][2]["type"] == "error"
    assert recording_api.calls[0][2]["code"] == "token_revoked"
    assert cognito.calls == ["tok-revoked"]
    if route == "sendMessage":
        # Refused before intake: nothing recorded, nothing queued.
        assert send_message.dependencies().messages.get("alice", "m-revoked") is None


def test_a_live_token_costs_one_get_user_per_interval_whatever_the_frames(
    deployment: Deployment, recording_api: RecordingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    cognito = _Cognito({"tok-live": "accepted"})
    check = _use(monkeypatch, commands, cognito)
    for _ in range(25):
        response = deployment.call(commands.handler, _event(deployment, {"action": "ping"}, "tok-live"))
        assert json.loads(response["body"]) == {"type": "pong"}
    assert cognito.calls == ["tok-live"]
    assert check.calls == 1
    assert recording_api.calls == []


def test_cognito_unavailable_lets_frames_through_and_asks_again_only_after_a_pause(
    deployment: Deployment, recording_api: RecordingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    cognito = _Cognito({"tok-live": RevocationCheckUnavailable("GetUser answered 500")})
    _use(monkeypatch, commands, cognito)
    for _ in range(10):
        response = deployment.call(commands.handler, _event(deployment, {"action": "ping"}, "tok-live"))
        assert json.loads(response["body"]) == {"type": "pong"}
    # One call, then a tenth of the interval (6 s) without asking: an outage does not multiply into a call a frame.
    assert cognito.calls == ["tok-live"]
    assert recording_api.calls == []


def test_a_connection_without_a_token_in_its_context_is_not_checked(
    deployment: Deployment, recording_api: RecordingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only connections opened before the authorizer passed the token on: they end when their token expires."""
    cognito = _Cognito({})
    _use(monkeypatch, commands, cognito)
    response = deployment.call(commands.handler, _event(deployment, {"action": "ping"}, None))
    assert json.loads(response["body"]) == {"type": "pong"}
    assert cognito.calls == []


def test_the_token_never_reaches_the_logs(
    deployment: Deployment,
    recording_api: RecordingApi,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "eyJ-secret-token-value"
    _use(monkeypatch, send_message, _Cognito({token: "refused"}))
    deployment.call(send_message.handler, _event(deployment, HANDLERS["sendMessage"][1], token))
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err + caplog.text


def test_a_connection_that_keeps_hitting_its_limits_is_told_and_closed(
    deployment: Deployment, recording_api: RecordingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #22: every refusal answers `rate_limited` and the connection survives, until it has been refused
    REFUSALS_BEFORE_CLOSE times within a minute (a client that ignores `retryAfterMs`): then it is closed."""
    monkeypatch.setenv("RATE_LIMIT_PING", "1/1")
    reset_handlers()
    _use(monkeypatch, commands, _Cognito({"tok-live": "accepted"}))
    answers = [
        deployment.call(commands.handler, _event(deployment, {"action": "ping"}, "tok-live"))
        for _ in range(REFUSALS_BEFORE_CLOSE + 1)
    ]

    frames = [json.loads(answer["body"]) for answer in answers if "body" in answer]
    assert frames[0] == {"type": "pong"}
    assert {frame["code"] for frame in frames[1:]} == {"rate_limited"}
    assert len(frames) == REFUSALS_BEFORE_CLOSE  # the pong, then every refusal but the last answered in the route
    assert recording_api.order() == [("post", "conn-a1"), ("delete", "conn-a1")]
    closing = recording_api.calls[0][2]
    assert closing["code"] == "rate_limited"
    assert closing["retryAfterMs"] == 60_000
