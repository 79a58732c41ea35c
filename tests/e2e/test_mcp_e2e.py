"""MCP tools through the whole local stack, as ``make dev`` runs it (each function in processes of its own with its
deployed environment): a real WebSocket client asks, the offline model calls the MCP tool, the worker calls the
server over the real MCP protocol and the user sees the ``tool`` frames and the result.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from scripts.local_stack.local_definition import LocalDefinition
from tests.e2e.conftest import (
    e2e_settings,
    new_user,
    of_message,
    open_socket,
    receive_until,
    reply_text,
    running_stack,
    send_message,
    stack_info,
)
from tests.mcp_servers import running_test_server

pytestmark = pytest.mark.e2e


async def _ask(stack: object, text: str) -> tuple[list[dict], str]:
    info = stack_info(stack)  # type: ignore[arg-type]
    user = new_user(stack, "mcp")  # type: ignore[arg-type]
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, text)
        frames = of_message(await receive_until(ws, "done", message_id=accepted["messageId"]), accepted["messageId"])
    return frames, reply_text(frames, accepted["messageId"])


def _tools(frames: list[dict]) -> list[tuple[str, str]]:
    return [(frame["name"], frame["status"]) for frame in frames if frame["type"] == "tool"]


async def test_make_dev_offers_the_demo_servers_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSISTANT_FILE", raising=False)
    with running_stack(e2e_settings(log_dir=tmp_path)) as stack:
        assert isinstance(stack.definition, LocalDefinition)
        assert stack.definition.demo is not None, "without ASSISTANT_FILE the stack runs the demo MCP server"

        frames, text = await _ask(stack, "Use the word_count tool on: the quick brown fox")

    assert _tools(frames) == [("demo__word_count", "started"), ("demo__word_count", "done")], text
    assert text == "The demo__word_count tool returned: 4"
    assert frames[-1]["type"] == "done"


async def test_an_mcp_server_named_in_assistant_file_is_offered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = resources.files("assistant").joinpath("assistant.toml").read_text(encoding="utf-8")
    with running_test_server() as server:
        definition = tmp_path / "my-assistant.toml"
        definition.write_text(
            packaged + f'\n[[mcp_servers]]\nname = "orders"\nurl = "{server.url}"\n', encoding="utf-8"
        )
        monkeypatch.setenv("ASSISTANT_FILE", str(definition))
        with running_stack(e2e_settings(log_dir=tmp_path / "logs")) as stack:
            assert stack.definition is not None
            assert stack.definition.demo is None, "a definition of the user's own gets no demo server"

            frames, text = await _ask(stack, "use the word_count tool on: one two three")
            failed, failure = await _ask(stack, "use the explode tool on: on purpose")

    assert _tools(frames) == [("orders__word_count", "started"), ("orders__word_count", "done")]
    assert text == "The orders__word_count tool returned: 3"
    assert _tools(failed) == [("orders__explode", "started"), ("orders__explode", "failed")]
    assert "exploded: on purpose" in failure
    assert failed[-1]["type"] == "done"
