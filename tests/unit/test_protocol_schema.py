"""One source for the protocol: the published JSON Schema is generated from the pydantic models, and the docs'
examples and the frames our clients send are checked against it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scripts.chat.session import ChatSession
from scripts.protocol_schema import SCHEMA_FILE, render
from tests.protocol import frame_errors

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_the_published_schema_is_generated_from_the_models() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "docs/protocol.schema.json is stale: run `.venv/bin/python -m scripts.protocol_schema`"
    )
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def _doc_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    decoder, examples = json.JSONDecoder(), []
    for block in blocks:
        index = 0
        while block[index:].strip():
            index += len(block[index:]) - len(block[index:].lstrip())
            example, index = decoder.raw_decode(block, index)
            examples.append(example)
    assert len(examples) > 20
    return examples


@pytest.mark.parametrize("example", _doc_examples(), ids=lambda e: e.get("action") or e.get("type"))
def test_every_example_in_the_protocol_doc_is_a_valid_frame(example: dict[str, Any]) -> None:
    definition = "clientFrame" if "action" in example else "serverFrame"
    assert frame_errors(example, definition) == [], example


def test_every_frame_the_terminal_client_sends_isframe_errors() -> None:
    session = ChatSession()
    session.conversation_id = "c_6f1d0c2a9b7e4d3f8a1b2c3d"
    _, sent = session.send_message("Hello", message_id="m-0001")
    frames = [
        sent,
        session.cancel_frame("m-0001"),
        session.new_conversation_frame(),
        session.list_conversations_frame(),
        session.history_frame(),
        session.ping_frame(),
    ]
    for frame in frames:
        assert frame is not None
        assert frame_errors(frame, "clientFrame") == [], frame


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "sendMessage", "message": "hi", "messageId": "a#b"},
        {"action": "sendMessage"},
        {"action": "launchRockets"},
        {"action": "getHistory"},
    ],
)
def test_the_schema_refuses_what_the_server_refuses(frame: dict[str, Any]) -> None:
    assert frame_errors(frame, "clientFrame") != []
