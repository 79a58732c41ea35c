"""MCP tools in the deployed shape: ``sendMessage`` → FIFO queue → worker → the real ``openai`` SDK against the
offline model → the real MCP protocol to a server built with the ``mcp`` SDK → ``tool`` frames and the result in
the reply. The definition comes from ``ASSISTANT_FILE``, as a stage deployed with ``--context assistantFile``
loads it; the server's token from (moto's) Secrets Manager, as deployed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import connect
import pytest
import send_message

from assistant.wiring import Env
from scripts.local_stack.mcp_demo import RunningMcpServer
from tests.conftest import REGION
from tests.handlers import reset_handlers
from tests.integration.conftest import Deployment
from tests.mcp_servers import running_test_server

TOKEN_SECRET = "tests-mcp-token"


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[RunningMcpServer]:
    with running_test_server() as running:
        yield running


def _use_definition(deployment: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, servers: str) -> None:
    from importlib import resources

    packaged = resources.files("assistant").joinpath("assistant.toml").read_text(encoding="utf-8")
    path = tmp_path / "assistant.toml"
    path.write_text(packaged + servers, encoding="utf-8")
    monkeypatch.setenv(Env.ASSISTANT_FILE.value, str(path))
    reset_handlers()


def _ask(deployment: Deployment, text: str) -> tuple[str, list[dict]]:
    response = deployment.call(connect.handler, deployment.ws_event("$connect", user="alice", connection="conn-a1"))
    assert response["statusCode"] == 200
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": text})
    assert accepted is not None
    assert accepted["type"] == "accepted"
    assert deployment.deliver(deployment.receive()) == []
    frames = [f for f in deployment.frames("conn-a1") if f.get("messageId") == accepted["messageId"]]
    return accepted["messageId"], frames


def _text(frames: list[dict]) -> str:
    return "".join(f["text"] for f in sorted((f for f in frames if f["type"] == "delta"), key=lambda f: f["seq"]))


def _tools(frames: list[dict]) -> list[tuple[str, str]]:
    return [(f["name"], f["status"]) for f in frames if f["type"] == "tool"]


def test_an_mcp_tool_result_reaches_the_user(
    deployment: Deployment, mcp_server: RunningMcpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use_definition(
        deployment, monkeypatch, tmp_path, f'\n[[mcp_servers]]\nname = "orders"\nurl = "{mcp_server.url}"\n'
    )

    _, frames = _ask(deployment, "Use the word_count tool on: one two three four five")

    assert _tools(frames) == [("orders__word_count", "started"), ("orders__word_count", "done")]
    assert _text(frames) == "The orders__word_count tool returned: 5"
    assert frames[-1]["type"] == "done"


@pytest.mark.parametrize(
    ("message", "options", "expected"),
    [
        ("use the explode tool on: kaboom", "", "exploded: kaboom"),
        ("use the slow_echo tool on: hi", "timeout_seconds = 0.5\n", "did not answer within 0.5 seconds"),
    ],
)
def test_a_failing_or_slow_mcp_tool_still_ends_in_a_reply(
    deployment: Deployment,
    mcp_server: RunningMcpServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    message: str,
    options: str,
    expected: str,
) -> None:
    _use_definition(
        deployment, monkeypatch, tmp_path, f'\n[[mcp_servers]]\nname = "t"\nurl = "{mcp_server.url}"\n{options}'
    )

    _, frames = _ask(deployment, message)

    assert [status for _, status in _tools(frames)] == ["started", "failed"]
    assert expected in _text(frames)
    assert frames[-1]["type"] == "done"


def test_an_unreachable_mcp_server_still_ends_in_a_reply(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _use_definition(
        deployment, monkeypatch, tmp_path, f'\n[[mcp_servers]]\nname = "t"\nurl = "http://127.0.0.1:{port}/mcp"\n'
    )

    _, frames = _ask(deployment, "what time is it in Tokyo?")

    assert _tools(frames) == [("current_time", "started"), ("current_time", "done")]
    assert frames[-1]["type"] == "done"


def test_the_token_comes_from_secrets_manager_and_the_user_id_only_when_asked_for(
    deployment: Deployment, mcp_server: RunningMcpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    boto3.client("secretsmanager", region_name=REGION).create_secret(Name=TOKEN_SECRET, SecretString="tok-123")
    _use_definition(
        deployment,
        monkeypatch,
        tmp_path,
        f'\n[[mcp_servers]]\nname = "t"\nurl = "{mcp_server.url}"\nsecret = "{TOKEN_SECRET}"\nsend_user_id = true\n',
    )

    _, frames = _ask(deployment, "use the whoami tool")

    assert _tools(frames) == [("t__whoami", "started"), ("t__whoami", "done")]
    reported = json.loads(_text(frames).removeprefix("The t__whoami tool returned: "))
    assert reported == {"user": "alice", "authorization": "Bearer tok-123"}
