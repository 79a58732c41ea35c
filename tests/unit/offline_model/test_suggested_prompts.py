"""The offline model answers what the chat page suggests, and shows what the page can render (README's screenshot)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from scripts.local_stack.offline_model.replies import TextReply, ToolCallReply, plan_reply
from tests.unit.offline_model import CALC_TOOL

INDEX = Path(__file__).resolve().parents[3] / "web" / "index.html"
#: The tools `make dev` offers: the built-in ones and the demo MCP server's (named ``<server>__<tool>``).
OFFERED: dict[str, Any] = {
    "current_time": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    "calculate": CALC_TOOL["parameters"],
    "demo__word_count": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}
WEBSOCKETS = "Explain WebSockets in three bullet points"


class _Suggestions(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._inside = tag == "button" and "suggestion" in (dict(attrs).get("class") or "").split()
        if self._inside:
            self.found.append("")

    def handle_endtag(self, tag: str) -> None:
        self._inside = False if tag == "button" else self._inside

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.found[-1] += data


def suggestions() -> list[str]:
    parser = _Suggestions()
    parser.feed(INDEX.read_text())
    return [text.strip() for text in parser.found]


def answer(message: str) -> TextReply | ToolCallReply:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": message}]}
    return plan_reply([item], OFFERED)


def markdown_parts(text: str) -> dict[str, Any]:
    """What a Markdown renderer would make of the reply's blocks: bullets (top-level and nested), numbered items,
    fenced code, table rows."""
    lines = text.splitlines()
    fences = [i for i, line in enumerate(lines) if line.startswith("```")]
    table = [line for line in lines if line.startswith("|") and line.endswith("|")]
    return {
        "bullets": [line for line in lines if re.match(r"- \S", line)],
        "nested": [line for line in lines if re.match(r" +- \S", line)],
        "numbered": [line for line in lines if re.match(r"\d+\. \S", line)],
        "fences": [lines[i] for i in fences],
        "table": table,
        "table_separator": any(re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", line) for line in table),
    }


def test_every_suggested_prompt_gets_a_fitting_answer() -> None:
    """Each prompt the page suggests, as `make dev` offers tools; a suggestion added to the page without an answer
    here fails this test."""
    expected_calls = {
        "What time is it in Tokyo?": ("current_time", {"timezone": "Asia/Tokyo"}),
        "calculate 2**10 / 3": ("calculate", {"expression": "2**10 / 3"}),
        "use the word_count tool on: the quick brown fox": ("demo__word_count", {"text": "the quick brown fox"}),
    }
    prompts = suggestions()
    assert set(prompts) == {*expected_calls, WEBSOCKETS}, "a new suggestion needs an answer (and a line here)"
    for prompt, (tool, arguments) in expected_calls.items():
        reply = answer(prompt)
        assert isinstance(reply, ToolCallReply), prompt
        assert (reply.name, json.loads(reply.arguments)) == (tool, arguments)
    reply = answer(WEBSOCKETS)
    assert isinstance(reply, TextReply)
    assert "understand" not in reply.text
    parts = markdown_parts(reply.text)
    assert len(parts["bullets"]) == 3, "three bullet points, as asked"
    assert reply.text.startswith("WebSockets in three bullet points:\n\n- ")


def test_the_websockets_answer_has_a_list_a_code_block_and_a_table() -> None:
    """The README's screenshot (a list, a code block with Copy, a table) comes from this prompt."""
    reply = answer(WEBSOCKETS)
    assert isinstance(reply, TextReply)
    parts = markdown_parts(reply.text)
    assert parts["fences"] == ["```javascript", "```"]
    assert "new WebSocket(" in reply.text
    assert len(parts["table"]) >= 3
    assert parts["table_separator"]
    assert all(row.count("|") == 4 for row in parts["table"]), "every row has the header's three columns"
    assert "offline demo model" in reply.text  # never passed off as a real model's answer


@pytest.mark.parametrize(
    "message",
    ["Show me some Markdown", "Give me a table of the planets", "A code example in Python, please", "Make a list"],
)
def test_asked_for_markdown_a_table_code_or_a_list_it_shows_all_three(message: str) -> None:
    reply = answer(message)
    assert isinstance(reply, TextReply)
    parts = markdown_parts(reply.text)
    assert parts["nested"]
    assert parts["numbered"]
    assert parts["fences"] == ["```python", "```"]
    assert parts["table_separator"]


@pytest.mark.parametrize(
    ("message", "opening"),
    [
        # The benchmark's long prompt and the story prompt keep their long prose replies (streaming to watch).
        ("Explain how a FIFO queue keeps order", "You asked about a FIFO queue keeps order"),
        ("Tell me a long story about a list of dragons", "Once upon a time"),
        ("Hello!", "Hello! I'm the offline demo model"),
    ],
)
def test_other_messages_keep_their_replies(message: str, opening: str) -> None:
    reply = answer(message)
    assert isinstance(reply, TextReply)
    assert reply.text.startswith(opening)


def test_the_markdown_streams_whole_through_the_responses_api(client: Any) -> None:
    """Streamed token by token, the reply reassembles to the same Markdown: line breaks and fences intact."""
    events = list(client.responses.create(model="m", input=WEBSOCKETS, stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    reply = answer(WEBSOCKETS)
    assert isinstance(reply, TextReply)
    assert text == reply.text
