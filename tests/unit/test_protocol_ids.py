"""Client-chosen ids (``messageId``, ``conversationId``) at the protocol level.

They end up inside DynamoDB keys (``MSG#<id>``, ``CONV#<id>``) and SQS deduplication ids, so anything outside
:data:`assistant.protocol.ID_PATTERN`, above all ``#`` (the key separator), must be refused by the parser with
``bad_request`` on every action that carries one, before any handler sees it.
"""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from assistant.errors import AssistantError, ErrorCode
from assistant.protocol import ID_PATTERN, ClientFrame, new_id, parse_client_frame

MAX_CHARS = 16_000


def _client_models() -> list[type[BaseModel]]:
    union = get_args(ClientFrame)[0]
    return list(get_args(union))


def _id_fields() -> list[tuple[str, str]]:
    """``(action, field)`` for every client frame field constrained to :data:`ID_PATTERN`, read from the models."""
    found = []
    for model in _client_models():
        (action,) = get_args(model.model_fields["action"].annotation)  # Literal["..."]
        schema = model.model_json_schema(by_alias=True)
        for name, prop in schema["properties"].items():
            patterns = {prop.get("pattern"), *(p.get("pattern") for p in prop.get("anyOf", []))}
            if ID_PATTERN in patterns:
                found.append((action, name))
    return sorted(found)


ID_FIELDS = _id_fields()
#: What a valid frame of each action needs besides the field under test.
VALID: dict[str, dict[str, Any]] = {
    "sendMessage": {"message": "hi"},
    "cancel": {"messageId": "m_ok"},
    "getHistory": {"conversationId": "c_ok"},
    "renameConversation": {"conversationId": "c_ok", "title": "A title"},
    "deleteConversation": {"conversationId": "c_ok"},
    "getAttachment": {"uploadId": "u_ok"},
}

BAD_IDS = [
    pytest.param("#", id="hash"),
    pytest.param("a#b", id="hash-inside"),
    pytest.param("USER#someone-else", id="key-prefix"),
    pytest.param("m_1#", id="hash-at-end"),
    pytest.param(" ", id="space"),
    pytest.param("a b", id="space-inside"),
    pytest.param(" a", id="leading-space"),
    pytest.param("a ", id="trailing-space"),
    pytest.param("", id="empty"),
    pytest.param("x" * 65, id="too-long"),
    pytest.param("m_" + "x" * 63, id="too-long-prefixed"),
    pytest.param("é", id="unicode-letter"),
    pytest.param("日本", id="unicode-cjk"),
    pytest.param("\uff41", id="fullwidth-a"),
    pytest.param("\u0661", id="arabic-digit"),
    pytest.param("a\u200bb", id="zero-width-space"),
    pytest.param("😀", id="emoji"),
    pytest.param("/", id="slash"),
    pytest.param("a/b", id="slash-inside"),
    pytest.param("../etc", id="path"),
    pytest.param("a\n", id="trailing-newline"),
    pytest.param("\n", id="newline"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a.b", id="dot"),
    pytest.param("a:b", id="colon"),
    pytest.param("a%23b", id="percent"),
    pytest.param("a+b", id="plus"),
]
NOT_STRINGS = [pytest.param(42, id="int"), pytest.param(True, id="bool"), pytest.param([], id="list")]
GOOD_IDS = ["a", "Z", "0", "x" * 64, "A-z_0-9", "-", "_", new_id("m"), new_id("c")]


def _frame(action: str, field: str, value: Any) -> str:
    return json.dumps({"action": action, **VALID.get(action, {}), field: value})


def _refused(body: str) -> AssistantError:
    with pytest.raises(AssistantError) as caught:
        parse_client_frame(body, max_message_chars=MAX_CHARS)
    return caught.value


def test_every_id_carrying_action_is_covered() -> None:
    # Read from the models, so a new action with an id is covered here automatically; these must stay in it.
    assert set(ID_FIELDS) >= {
        ("sendMessage", "messageId"),
        ("sendMessage", "conversationId"),
        ("cancel", "messageId"),
        ("getHistory", "conversationId"),
    }


@pytest.mark.parametrize(("action", "field"), ID_FIELDS)
@pytest.mark.parametrize("bad", BAD_IDS)
def test_an_id_outside_the_pattern_is_a_bad_request(action: str, field: str, bad: str) -> None:
    error = _refused(_frame(action, field, bad))

    assert error.code is ErrorCode.BAD_REQUEST
    assert f"`{field}`" in error.public_message


@pytest.mark.parametrize(("action", "field"), ID_FIELDS)
@pytest.mark.parametrize("bad", NOT_STRINGS)
def test_an_id_that_is_not_a_string_is_a_bad_request(action: str, field: str, bad: Any) -> None:
    assert _refused(_frame(action, field, bad)).code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(("action", "field"), ID_FIELDS)
def test_a_hash_written_as_a_json_escape_is_refused_too(action: str, field: str) -> None:
    body = _frame(action, field, "aXb").replace('"aXb"', '"a\\u0023b"')
    assert json.loads(body)[field] == "a#b"

    assert _refused(body).code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(("action", "field"), ID_FIELDS)
@pytest.mark.parametrize("good", GOOD_IDS)
def test_an_id_inside_the_pattern_is_accepted_as_sent(action: str, field: str, good: str) -> None:
    frame = parse_client_frame(_frame(action, field, good), max_message_chars=MAX_CHARS)

    assert frame.model_dump(by_alias=True)[field] == good
