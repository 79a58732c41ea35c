"""The terminal client's /rename, /delete and /export against a scripted server (the session's real frame handling)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from scripts.chat.events import ChatEvent
from scripts.chat.session import ChatSession
from scripts.chat.terminal import TerminalChat

OLDER = {
    "type": "history",
    "conversationId": "c_1",
    "messages": [
        {"role": "user", "text": "First question", "messageId": "m1"},
        {"role": "assistant", "text": "First **answer**", "messageId": "m1", "status": "done"},
    ],
}
NEWER = {
    "type": "history",
    "conversationId": "c_1",
    "cursor": "2026-01-01T00:00:01.000Z#m2",
    "messages": [
        {"role": "user", "text": "Second question", "messageId": "m2"},
        {"role": "assistant", "text": "Half an ans", "messageId": "m2", "status": "cancelled"},
    ],
}


class ScriptedServer:
    """Answers each frame as the server does, through the session's own frame handling."""

    def __init__(self) -> None:
        self.session = ChatSession(conversation_id="c_1")
        self.events: asyncio.Queue[ChatEvent] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        self.sent.append(dict(frame))
        action = frame["action"]
        if action == "getHistory":
            answer = OLDER if frame.get("before") == NEWER["cursor"] else NEWER
        elif action == "renameConversation":
            answer = {"type": "conversationUpdated", "conversationId": frame["conversationId"], "title": frame["title"]}
        elif action == "deleteConversation":
            answer = {"type": "conversationDeleted", "conversationId": frame["conversationId"]}
        else:
            raise AssertionError(frame)
        for event in self.session.handle(answer):
            self.events.put_nowait(event)


async def _run(lines: list[str]) -> tuple[ScriptedServer, str]:
    server = ScriptedServer()
    out = io.StringIO()
    chat = TerminalChat(server, out=out, username="demo", width=80)  # type: ignore[arg-type]
    printer = asyncio.create_task(chat._print_events())
    for line in lines:
        await chat._handle_line(line)
    printer.cancel()
    return server, out.getvalue()


async def test_rename_sends_the_title_and_shows_the_new_one() -> None:
    server, out = await _run(["/rename Trip to Kyoto"])
    assert server.sent == [{"action": "renameConversation", "conversationId": "c_1", "title": "Trip to Kyoto"}]
    assert 'Conversation c_1 is now "Trip to Kyoto".' in out


async def test_delete_asks_then_deletes_and_the_next_message_starts_a_new_conversation() -> None:
    server, out = await _run(["/delete"])
    assert server.sent == [{"action": "deleteConversation", "conversationId": "c_1"}]
    assert "Conversation c_1 deleted" in out
    assert server.session.conversation_id is None
    assert server.session.delete_frame() is None


async def test_export_reads_every_history_page_and_writes_markdown_oldest_first(tmp_path: Path) -> None:
    target = tmp_path / "chat.md"
    server, out = await _run(["/rename Questions", f"/export {target}"])
    history = [frame for frame in server.sent if frame["action"] == "getHistory"]
    assert history == [
        {"action": "getHistory", "conversationId": "c_1"},
        {"action": "getHistory", "conversationId": "c_1", "before": NEWER["cursor"]},
    ]
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Questions\n")
    assert text.index("First question") < text.index("First **answer**") < text.index("Second question")
    assert "Half an ans\n\n*(stopped)*" in text
    assert f"Exported 4 messages to {target}." in out
    assert "First question" not in out  # collected, not printed
