"""MCP tools through the real protocol: a server built with the ``mcp`` SDK on 127.0.0.1, the SDK's client, and the
model client driven through the real ``openai`` SDK against the offline model, which calls a tool when asked to
"use the <name> tool on ...".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.definition import AssistantDefinition, DefinitionError, load_definition
from assistant.model import ModelClient, ModelEvent, ModelTimeouts, ReplyCompleted, TextDelta, ToolEvent
from assistant.tools import ToolContext, default_registry, mcp_session
from assistant.tools.mcp_config import McpServerConfig, secret_env_var
from assistant.tools.mcp_specs import MAX_NAME_CHARS, function_name, function_tool
from assistant.tools.mcp_tools import FAILED_LISTING_TTL_S, LISTING_TTL_S, McpTools, cap, env_secret
from scripts.local_stack.mcp_demo import RunningMcpServer
from scripts.local_stack.offline_model import OfflineModelServer, Pace
from tests.mcp_servers import HUGE_RESULT_CHARS, running_test_server

REPO = Path(__file__).resolve().parents[2]
CONTEXT = ToolContext(user_id="user-1", conversation_id="conv-1", message_id="msg-1")
NAME_RE = r"^[A-Za-z0-9_-]{1,64}$"


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[RunningMcpServer]:
    with running_test_server() as running:
        yield running


@pytest.fixture(scope="module")
def offline_model() -> Iterator[OfflineModelServer]:
    with OfflineModelServer(pace=Pace.instant()) as running:
        yield running


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _server(url: str, **options: Any) -> McpServerConfig:
    return McpServerConfig.model_validate({"name": "tests", "url": url, **options})


def _tools(*servers: McpServerConfig, secrets: dict[str, str] | None = None, **options: Any) -> McpTools:
    values = secrets or {}

    def secret(name: str) -> str:
        return values[name]

    return McpTools(servers, secret=secret, **options)


def _call(tools: McpTools, name: str, arguments: dict[str, Any], context: ToolContext = CONTEXT) -> Any:
    offered = tools.offer()
    return tools.invoke(offered[name], json.dumps(arguments), context)


# --- Listing and offering ---------------------------------------------------------------------------------------


def test_every_tool_is_offered_under_a_prefixed_name_ending_with_its_own(mcp_server: RunningMcpServer) -> None:
    offered = _tools(_server(mcp_server.url)).offer()

    assert set(offered) == {
        "tests__word_count",
        "tests__explode",
        "tests__slow_echo",
        "tests__huge",
        "tests__repeat",
        "tests__whoami",
    }
    for name, tool in offered.items():
        assert name.endswith(tool.tool)
        assert tool.spec["name"] == name
        assert tool.spec["type"] == "function"


def test_a_strict_schema_is_sent_strict_and_one_with_optional_parameters_is_not(mcp_server: RunningMcpServer) -> None:
    offered = _tools(_server(mcp_server.url)).offer()

    word_count = offered["tests__word_count"].spec
    assert word_count["strict"] is True
    assert word_count["parameters"] == {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    assert word_count["description"] == "Count the words in a text."
    repeat = offered["tests__repeat"].spec
    assert repeat["strict"] is False
    assert repeat["parameters"]["required"] == ["text"]  # as the server declared it: `times` stays optional


def test_the_allow_list_holds_for_offering_and_calling(mcp_server: RunningMcpServer) -> None:
    tools = _tools(_server(mcp_server.url, allowed_tools=["word_count"]))

    assert set(tools.offer()) == {"tests__word_count"}


def test_an_empty_allow_list_offers_no_tool(mcp_server: RunningMcpServer) -> None:
    """``allowed_tools = []`` is an operator switching a server's tools off, not leaving the list out (``None``
    offers every tool): a server the definition allows nothing of gives the model nothing."""
    assert _tools(_server(mcp_server.url, allowed_tools=[])).offer() == {}
    assert _tools(_server(mcp_server.url)).offer()  # the same server without a list offers its tools


def test_an_unreachable_server_is_left_out_and_the_others_are_offered(mcp_server: RunningMcpServer) -> None:
    dead = McpServerConfig(name="dead", url=f"http://127.0.0.1:{_free_port()}/mcp")
    tools = _tools(dead, _server(mcp_server.url, allowed_tools=["word_count"]))

    started = time.monotonic()
    offered = tools.offer()

    assert set(offered) == {"tests__word_count"}
    assert time.monotonic() - started < mcp_session.LIST_TIMEOUT_S + 2


def test_listings_are_cached_per_container_and_failures_retried_later(
    mcp_server: RunningMcpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    listed: list[list[str]] = []
    real = mcp_session.list_tools

    def counting(endpoints: Any) -> Any:
        listed.append(sorted(endpoints))
        return real(endpoints)

    monkeypatch.setattr(mcp_session, "list_tools", counting)
    dead = McpServerConfig(name="dead", url=f"http://127.0.0.1:{_free_port()}/mcp")
    tools = _tools(_server(mcp_server.url), dead, clock=lambda: now[0])

    tools.offer()
    tools.offer()
    assert listed == [["dead", "tests"]]
    now[0] += FAILED_LISTING_TTL_S
    tools.offer()
    assert listed[-1] == ["dead"]
    now[0] += LISTING_TTL_S
    tools.offer()
    assert listed[-1] == ["dead", "tests"]


def test_a_caller_inside_an_event_loop_can_list_and_call(mcp_server: RunningMcpServer) -> None:
    """A sync caller on a thread that runs an event loop (anyio.run would refuse to nest there)."""
    import asyncio

    async def from_async_code() -> Any:
        return _call(_tools(_server(mcp_server.url)), "tests__word_count", {"text": "a b"})

    assert asyncio.run(from_async_code()).output == "2"


def test_builtin_names_win_over_mcp_names(mcp_server: RunningMcpServer) -> None:
    offered = _tools(_server(mcp_server.url)).offer(reserved={"tests__word_count"})

    assert "tests__word_count" not in offered
    assert "tests__repeat" in offered


# --- Calling ----------------------------------------------------------------------------------------------------


def test_a_result_comes_back_as_text(mcp_server: RunningMcpServer) -> None:
    result = _call(_tools(_server(mcp_server.url)), "tests__word_count", {"text": "one two three"})

    assert result.ok
    assert result.output == "3"


def test_a_failing_tool_is_an_error_result_with_its_message(mcp_server: RunningMcpServer) -> None:
    result = _call(_tools(_server(mcp_server.url)), "tests__explode", {"reason": "on purpose"})

    assert not result.ok
    assert json.loads(result.output) == {"error": "Error executing tool explode: exploded: on purpose"}


def test_a_slow_tool_times_out_as_an_error_result(mcp_server: RunningMcpServer) -> None:
    tools = _tools(_server(mcp_server.url, timeout_seconds=0.5))

    started = time.monotonic()
    result = _call(tools, "tests__slow_echo", {"text": "late"})

    assert time.monotonic() - started < 3
    assert not result.ok
    assert "did not answer within 0.5 seconds" in json.loads(result.output)["error"]


def test_a_server_gone_after_listing_is_an_error_result() -> None:
    with running_test_server() as running:
        tools = _tools(_server(running.url))
        offered = tools.offer()
    result = tools.invoke(offered["tests__word_count"], '{"text": "a b"}', CONTEXT)

    assert not result.ok
    assert "could not be reached" in json.loads(result.output)["error"]


def test_a_huge_result_is_capped_with_a_note(mcp_server: RunningMcpServer) -> None:
    result = _call(_tools(_server(mcp_server.url, max_result_chars=5_000)), "tests__huge", {"text": "ab"})

    assert result.ok
    assert len(result.output) <= 5_000
    assert f"the tool returned {HUGE_RESULT_CHARS} characters" in result.output


def test_bad_arguments_are_refused_before_anything_is_sent(mcp_server: RunningMcpServer) -> None:
    tools = _tools(_server(mcp_server.url))
    tool = tools.offer()["tests__word_count"]

    assert json.loads(tools.invoke(tool, "not json", CONTEXT).output) == {"error": "The arguments are not valid JSON."}
    assert not tools.invoke(tool, "[1, 2]", CONTEXT).ok


def test_the_user_id_and_token_are_sent_only_when_the_definition_says_so(mcp_server: RunningMcpServer) -> None:
    anonymous = _call(_tools(_server(mcp_server.url)), "tests__whoami", {})
    assert json.loads(anonymous.output) == {"user": None, "authorization": None}

    named = _tools(_server(mcp_server.url, send_user_id=True, secret="tests-token"), secrets={"tests-token": "s3cr3t"})
    assert json.loads(_call(named, "tests__whoami", {}).output) == {"user": "user-1", "authorization": "Bearer s3cr3t"}


def test_a_missing_secret_leaves_the_server_out() -> None:
    server = _server("https://mcp.invalid/mcp", secret="nowhere")

    assert _tools(server, secrets={}).offer() == {}


# --- Through the model client: the reply goes on whatever the server does ----------------------------------------


def _reply(offline_model: OfflineModelServer, servers: list[McpServerConfig], text: str) -> list[ModelEvent]:
    definition = AssistantDefinition(
        name="MCP test",
        model="gpt-5-mini",
        instructions="Be brief.",
        tools=("current_time",),
        max_output_tokens=1000,
        mcp_servers=tuple(servers),
    )
    client = ModelClient.create(
        api_key="test-key",
        base_url=offline_model.base_url,
        definition=definition,
        tools=default_registry(),
        timeouts=ModelTimeouts(connect_s=2, read_s=5, write_s=2, pool_s=2),
        mcp_tools=_tools(*servers),
    )
    return list(client.stream_reply(text=text, context=CONTEXT))


def _text(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_a_tool_result_reaches_the_reply(mcp_server: RunningMcpServer, offline_model: OfflineModelServer) -> None:
    events = _reply(offline_model, [_server(mcp_server.url)], "Use the word_count tool on: the quick brown fox")

    assert [e for e in events if isinstance(e, ToolEvent)] == [
        ToolEvent("tests__word_count", "started"),
        ToolEvent("tests__word_count", "done"),
    ]
    assert _text(events) == "The tests__word_count tool returned: 4"
    assert isinstance(events[-1], ReplyCompleted)
    offered = [r.body["tools"] for r in offline_model.requests if r.path == "/v1/responses" and r.method == "POST"]
    assert {"current_time", "tests__word_count"} <= {tool["name"] for tool in offered[-1]}


@pytest.mark.parametrize(
    ("request_text", "options", "expected"),
    [
        ("use the explode tool on: test", {}, "exploded: test"),
        ("use the slow_echo tool on: hi", {"timeout_seconds": 0.5}, "did not answer within 0.5 seconds"),
    ],
)
def test_a_failing_or_slow_tool_ends_in_a_completed_reply(
    mcp_server: RunningMcpServer,
    offline_model: OfflineModelServer,
    request_text: str,
    options: dict[str, Any],
    expected: str,
) -> None:
    events = _reply(offline_model, [_server(mcp_server.url, **options)], request_text)

    assert [e.status for e in events if isinstance(e, ToolEvent)] == ["started", "failed"]
    assert expected in _text(events)
    assert isinstance(events[-1], ReplyCompleted)


def test_an_unreachable_server_ends_in_a_completed_reply(offline_model: OfflineModelServer) -> None:
    dead = McpServerConfig(name="dead", url=f"http://127.0.0.1:{_free_port()}/mcp")

    events = _reply(offline_model, [dead], "use the word_count tool on: a b c")

    assert not [e for e in events if isinstance(e, ToolEvent)]
    assert "isn't offered" in _text(events)
    assert isinstance(events[-1], ReplyCompleted)


# --- Names, schemas, limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "tool"),
    [
        ("orders", "lookup_order"),
        ("a" * 32, "b" * 30),
        ("a" * 32, "c" * 50),
        ("srv", "dotted.name/with spaces"),
        ("srv", "x" * 128),
    ],
)
def test_function_names_fit_the_providers_rules(server: str, tool: str) -> None:
    import re

    name = function_name(server, tool)

    assert re.match(NAME_RE, name), name
    assert len(name) <= MAX_NAME_CHARS
    if re.match(r"^[A-Za-z0-9_-]{1,56}$", tool):
        assert name.endswith(tool)
    assert function_name(server, tool) == name
    assert function_name(server + "2" if len(server) < 32 else server[:-1], tool) != name


def test_schemas_strict_mode_cannot_express_go_non_strict() -> None:
    nested = {
        "type": "object",
        "properties": {"filter": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
        "required": ["filter"],
    }
    assert function_tool("t", "d", nested)["strict"] is True
    assert function_tool("t", "d", nested)["parameters"]["properties"]["filter"]["additionalProperties"] is False
    loose = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": True}
    assert function_tool("t", "d", loose)["strict"] is False
    unknown = {"type": "object", "properties": {"q": {"type": "string", "contentMediaType": "x"}}, "required": ["q"]}
    assert function_tool("t", "d", unknown)["strict"] is False
    bare: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    assert function_tool("t", "", bare)["parameters"]["properties"] == {}
    assert "$schema" not in function_tool("t", "", bare)["parameters"]


def test_cap_keeps_short_text_and_marks_a_cut() -> None:
    assert cap("short", 200) == "short"
    capped = cap("x" * 10_000, 300)
    assert len(capped) <= 300
    assert capped.endswith("only the first 300 are shown]")


# --- The definition ---------------------------------------------------------------------------------------------


def _definition_file(tmp_path: Path, servers: str) -> Path:
    path = tmp_path / "assistant.toml"
    path.write_text(
        textwrap.dedent(
            """
            name = "T"
            model = "gpt-5-mini"
            instructions = "Be brief."
            max_output_tokens = 1000
            """
        )
        + textwrap.dedent(servers),
        encoding="utf-8",
    )
    return path


def test_the_definition_names_servers_with_name_and_url(tmp_path: Path) -> None:
    path = _definition_file(
        tmp_path,
        """
        [[mcp_servers]]
        name = "orders"
        url = "https://mcp.example.com/mcp"
        allowed_tools = ["lookup_order"]
        secret = "orders-mcp-token"
        send_user_id = true
        """,
    )
    (server,) = load_definition(path).mcp_servers

    assert (server.name, server.url, server.allowed_tools) == (
        "orders",
        "https://mcp.example.com/mcp",
        ("lookup_order",),
    )
    assert (server.secret, server.send_user_id) == ("orders-mcp-token", True)
    assert load_definition().mcp_servers == ()


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ('name = "has space"\nurl = "https://a.example/mcp"', "mcp_servers.0.name"),
        ('name = "a"\nurl = "http://mcp.example.com/mcp"', "must use https"),
        ('name = "a"\nurl = "ftp://mcp.example.com/mcp"', "http(s) URL"),
        ('name = "a"\nurl = "https://user:pw@mcp.example.com/mcp"', "credentials"),
        ('name = "a"\nurl = "https://a.example/mcp"\ntoken = "x"', "Extra inputs"),
        ('name = "a"\nurl = "https://a.example/mcp"\nsecret = "no spaces allowed"', "mcp_servers.0.secret"),
    ],
)
def test_a_bad_server_entry_fails_loading_with_the_field(tmp_path: Path, entry: str, complaint: str) -> None:
    path = _definition_file(tmp_path, "\n[[mcp_servers]]\n" + entry + "\n")

    with pytest.raises(DefinitionError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        load_definition(path)


def test_two_servers_may_not_share_a_name(tmp_path: Path) -> None:
    entry = '\n[[mcp_servers]]\nname = "a"\nurl = "https://a.example/mcp"\n'
    with pytest.raises(DefinitionError, match="same name"):
        load_definition(_definition_file(tmp_path, entry * 2))


def test_plain_http_is_accepted_on_this_machine_only() -> None:
    assert McpServerConfig(name="local", url="http://127.0.0.1:8765/mcp").is_local
    assert McpServerConfig(name="local", url="http://localhost:8765/mcp").is_local
    assert not McpServerConfig(name="remote", url="https://mcp.example.com/mcp").is_local


def test_local_secrets_come_from_the_environment() -> None:
    assert secret_env_var("orders-mcp-token") == "MCP_SECRET_ORDERS_MCP_TOKEN"
    read = env_secret({"MCP_SECRET_ORDERS_MCP_TOKEN": " tok "})
    assert read("orders-mcp-token") == "tok"
    with pytest.raises(LookupError, match="MCP_SECRET_OTHER"):
        read("other")


# --- Cold starts ------------------------------------------------------------------------------------------------

_WORKER_COLD_START = """
import json, sys
import worker  # the handler module, as Lambda imports it
from assistant import clients
from assistant.settings import ModelSettings
client = clients.ModelClients(ModelSettings.from_env()).client_for("test-key")
client._toolbox.offer()  # what every reply does before its first request
print(json.dumps({"mcp": "mcp" in sys.modules, "servers": len(client._toolbox.offer().mcp)}))
"""


def _worker_imports(tmp_path: Path, definition: Path | None) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join((str(REPO / "shared"), str(REPO / "lambdas"))),
        "POWERTOOLS_SERVICE_NAME": "worker",
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("ASSISTANT_FILE", None)
    if definition is not None:
        env["ASSISTANT_FILE"] = str(definition)
    completed = subprocess.run(
        [sys.executable, "-c", _WORKER_COLD_START], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_the_worker_does_not_import_the_mcp_sdk_without_servers(tmp_path: Path) -> None:
    assert _worker_imports(tmp_path, None) == {"mcp": False, "servers": 0}


def test_the_worker_imports_the_mcp_sdk_when_its_definition_names_a_server(
    tmp_path: Path, mcp_server: RunningMcpServer
) -> None:
    definition = _definition_file(tmp_path, f'\n[[mcp_servers]]\nname = "tests"\nurl = "{mcp_server.url}"\n')

    assert _worker_imports(tmp_path, definition) == {"mcp": True, "servers": 6}


# --- The offline model calls MCP tools when asked ---------------------------------------------------------------


def _asked(text: str, tools: dict[str, Any]) -> Any:
    from scripts.local_stack.offline_model.replies import plan_reply

    return plan_reply([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}], tools)


@pytest.mark.parametrize(
    ("text", "name", "arguments"),
    [
        ("Use the word_count tool on: the quick brown fox", "demo__word_count", {"text": "the quick brown fox"}),
        ("please call the `lookup_order` tool for 'A-1001'.", "demo__lookup_order", {"order_id": "A-1001"}),
        ("call lookup_order for A-1002", "demo__lookup_order", {"order_id": "A-1002"}),
        ("use the repeat tool on: hi", "t__repeat", {"text": "hi"}),  # optional `times` left to the server
    ],
)
def test_the_offline_model_calls_an_offered_tool_whose_name_ends_with_the_one_asked_for(
    text: str, name: str, arguments: dict[str, Any]
) -> None:
    from scripts.local_stack.offline_model.replies import ToolCallReply

    string = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    tools = {
        "current_time": None,
        "demo__word_count": string,
        "demo__lookup_order": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
        "t__repeat": {**string, "properties": {"text": {"type": "string"}, "times": {"type": "integer"}}},
    }

    assert _asked(text, tools) == ToolCallReply(name, json.dumps(arguments))


def test_the_offline_model_says_so_when_the_tool_asked_for_is_not_offered() -> None:
    from scripts.local_stack.offline_model.replies import TextReply

    reply = _asked("use the word_count tool on: a b", {"current_time": None})

    assert isinstance(reply, TextReply)
    assert "isn't offered" in reply.text
    assert isinstance(_asked("please use my name", {"demo__word_count": None}), TextReply)
