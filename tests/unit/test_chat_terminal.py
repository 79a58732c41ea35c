"""The terminal client's output: who it is connected as, which conversation it continues, the ``assistant>`` prefix
after tool lines, word wrapping, and a renewed token after ``token_expired``."""

from __future__ import annotations

import asyncio
import io
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scripts.chat.events import (
    Connected,
    ConversationItem,
    ConversationList,
    Disconnected,
    HistoryMessage,
    HistoryReceived,
    ReplyFinished,
    ServerError,
    TextReceived,
    ToolUpdate,
    Usage,
)
from scripts.chat.session import ChatSession
from scripts.chat.terminal import TerminalChat, WordWrapper, message_refusal

ROOT = Path(__file__).resolve().parents[2]


class StubClient:
    def __init__(self, conversation_id: str | None = None) -> None:
        self.session = ChatSession(conversation_id=conversation_id)
        self.sent: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        self.sent.append(dict(frame))


def terminal(client: StubClient, width: int = 40) -> tuple[TerminalChat, io.StringIO]:
    out = io.StringIO()
    return TerminalChat(client, out=out, username="demo", width=width), out  # type: ignore[arg-type]


def wrap(pieces: list[str], width: int, column: int = 0) -> str:
    wrapper = WordWrapper(width)
    wrapper.start(column)
    return "".join(wrapper.feed(piece) for piece in pieces) + wrapper.finish()


def test_wrapping_breaks_between_words_even_when_a_word_arrives_in_pieces() -> None:
    text = wrap(["The quick brown fox jum", "ps over the la", "zy dog and keeps running far away"], width=20)
    lines = text.split("\n")
    assert all(len(line) <= 20 for line in lines), lines
    assert " ".join(lines) == "The quick brown fox jumps over the lazy dog and keeps running far away"
    assert "jumps" in lines[1] or "jumps" in lines[0]


def test_wrapping_counts_the_prefix_and_keeps_newlines_and_indentation() -> None:
    text = wrap(["one two three four five\n", "  - indented item\n", "x"], width=20, column=11)
    first, second, third, fourth = text.split("\n")
    assert len(first) + 11 <= 20
    assert second == "three four five"
    assert third == "  - indented item"
    assert fourth == "x"
    # A word longer than a line is written whole, on a line of its own.
    assert wrap(["a " + "y" * 30 + " b"], width=20) == "a\n" + "y" * 30 + "\nb"


async def test_says_whom_it_is_connected_as_and_which_conversation_it_continues() -> None:
    client = StubClient()
    chat, out = terminal(client)
    chat._show(Connected(1))
    await asyncio.sleep(0)
    assert client.sent == [{"action": "listConversations"}]
    items = (ConversationItem("c_2", "Trip to Kyoto", "2026-05-02"), ConversationItem("c_1", "Old", "2026-05-01"))
    chat._show(ConversationList(items))
    text = out.getvalue()
    assert "Connected as demo." in text
    assert 'Continuing conversation "Trip to Kyoto" (c_2). /new starts a new one' in text
    assert client.session.conversation_id == "c_2"
    # A later /list prints the list itself.
    chat._show(ConversationList(items))
    assert "* c_2" in out.getvalue()


async def test_a_given_conversation_is_the_one_continued_and_no_conversation_says_so() -> None:
    client = StubClient(conversation_id="c_1")
    chat, out = terminal(client)
    chat._show(Connected(1))
    chat._show(ConversationList((ConversationItem("c_2", "New", "x"), ConversationItem("c_1", "Old", "y"))))
    assert 'Continuing conversation "Old" (c_1)' in out.getvalue()
    empty = StubClient()
    chat, out = terminal(empty)
    chat._show(Connected(1))
    chat._show(ConversationList(()))
    assert "No conversations yet: your first message starts one." in out.getvalue()


def test_the_assistant_prefix_comes_back_after_a_tool_line() -> None:
    chat, out = terminal(StubClient(), width=100)
    chat._show(TextReceived("m1", "Let me check.", own=True))
    chat._show(ToolUpdate("m1", "current_time", "started", own=True))
    chat._show(ToolUpdate("m1", "current_time", "done", own=True))
    chat._show(TextReceived("m1", "It is noon.", own=True))
    chat._show(ReplyFinished("m1", "done", "", own=True, usage=Usage(3, 4), model="offline-demo"))
    assert out.getvalue().splitlines() == [
        "assistant> Let me check.",
        "  [tool current_time: started]",
        "  [tool current_time: done]",
        "assistant> It is noon.",
        "  [3 in / 4 out tokens, offline-demo]",
    ]


def test_a_long_reply_wraps_at_word_boundaries() -> None:
    chat, out = terminal(StubClient(), width=30)
    reply = "According to the current_time tool, it is 21:04 (UTC+09:00) on Wednesday in Asia/Tokyo."
    for start in range(0, len(reply), 7):
        chat._show(TextReceived("m1", reply[start : start + 7], own=True))
    chat._show(ReplyFinished("m1", "done", reply, own=True))
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 30 for line in lines), lines
    assert " ".join(lines).removeprefix("assistant> ") == reply


def test_token_expired_is_a_renewal_not_an_error() -> None:
    session = ChatSession()
    message_id, _ = session.send_message("hello")
    events = session.handle({"type": "error", "code": "token_expired", "message": "expired"})
    assert events == [ServerError(None, "token_expired", "expired")]
    assert session.in_flight == message_id, "the refused message is re-sent after the reconnect, not failed"
    assert [f["messageId"] for f in session.unaccepted_frames()] == [message_id]
    chat, out = terminal(StubClient())
    chat._show(events[0])
    chat._show(Disconnected("session expired; renewed the token", 0.0))
    assert "error" not in out.getvalue()
    assert "renewing the token" in out.getvalue()


def test_history_marks_stopped_and_failed_replies() -> None:
    chat, out = terminal(StubClient(), width=100)
    messages = (
        HistoryMessage("user", "Tell me a story", "m1"),
        HistoryMessage("assistant", "Once upon a time", "m1", status="cancelled"),
        HistoryMessage("user", "And now?", "m2"),
        HistoryMessage("assistant", "", "m2", status="failed"),
        HistoryMessage("user", "Hi", "m3"),
        HistoryMessage("assistant", "Hello!", "m3", status="done"),
    )
    chat._show(HistoryReceived("c1", messages))
    assert out.getvalue().splitlines() == [
        "--- conversation c1 ---",
        "you> Tell me a story",
        "assistant> Once upon a time",
        "  [stopped]",
        "you> And now?",
        "assistant> ",
        "  [failed]",
        "you> Hi",
        "assistant> Hello!",
        "---",
    ]


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("x" * 16_000, ""),
        ("x" * 16_001, "16,001 characters long; the limit is 16,000"),
        ("x" * 20_000, "20,000 characters long"),
        ("漢" * 6_000, "KB once encoded; a message must fit in 32 KB"),  # 6,000 characters, 36 KB as sent
    ],
)
async def test_a_message_over_the_limits_is_refused_with_a_message_and_never_sent(text: str, refused: str) -> None:
    client = StubClient()
    chat, out = terminal(client, width=100)
    if not refused:
        assert message_refusal(text) == ""
        return
    assert await chat._handle_line(text) is True  # the prompt comes back
    assert refused in out.getvalue()
    assert "Not sent" in out.getvalue()
    assert client.sent == []
    assert client.session.in_flight is None


PASTE_PROBE = """
import asyncio
from scripts.chat.terminal import LineReader

async def main():
    line = await LineReader(asyncio.get_running_loop()).read("you> ")
    print("READ", len(line), line.count("\\n"), line.endswith("second line"), flush=True)

asyncio.run(main())
"""


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_long_multi_line_paste_is_read_whole_from_a_terminal() -> None:
    """A terminal in line mode cuts a line at 4,095 characters and ends a message at each newline of a paste; read
    through readline, a bracketed paste of 20,000 characters and two lines is one message, whole."""
    master, slave = os.openpty()
    env = dict(os.environ, TERM="xterm")
    probe = subprocess.Popen(
        [sys.executable, "-c", PASTE_PROBE], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env
    )
    os.close(slave)
    try:
        assert b"you> " in _read_until(master, b"you> ")
        paste = ("\x1b[200~" + "x" * 20_000 + "\nsecond line" + "\x1b[201~").encode()
        for start in range(0, len(paste), 1024):  # as a terminal delivers it, in pieces
            os.write(master, paste[start : start + 1024])
            time.sleep(0.002)
        os.write(master, b"\r")
        shown = _read_until(master, b"READ").decode(errors="replace") + _read_until(master, b"\n").decode()
        assert "READ 20012 1 True" in shown, shown[-200:]
    finally:
        probe.kill()
        probe.wait()
        os.close(master)


def _read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


class ConnectingClient(StubClient):
    """Connects a moment after ``start`` and answers the conversation list a moment later, as a server does."""

    def __init__(self) -> None:
        super().__init__()
        self.events: asyncio.Queue[Any] = asyncio.Queue()

    def start(self) -> None:
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        await asyncio.sleep(0.05)
        await self.events.put(Connected(1))
        await asyncio.sleep(0.05)
        await self.events.put(ConversationList((ConversationItem("c_1", "Trip to Kyoto", "2026-05-02"),)))

    async def close(self) -> None:
        pass


async def test_the_first_prompt_comes_after_connected_and_where_messages_go(monkeypatch: pytest.MonkeyPatch) -> None:
    client = ConnectingClient()
    chat, out = terminal(client, width=100)

    class PromptThenEnd:
        def __init__(self, _loop: Any) -> None:
            pass

        async def read(self, prompt: str) -> str | None:
            chat.write(prompt)
            return None  # end of input: the session ends

    monkeypatch.setattr("scripts.chat.terminal.LineReader", PromptThenEnd)
    assert await chat.run() == 0
    text = out.getvalue()
    assert text.index("Connected as demo.") < text.index("you> ")
    assert text.index('Continuing conversation "Trip to Kyoto"') < text.index("you> ")
