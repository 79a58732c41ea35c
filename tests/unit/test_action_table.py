"""One table of actions keyed by frame type (assistant.action_table.ACTION_TABLE): the action names, the frames a
route parses, the WebSocket routes, the schema, each action's bucket and each command's handler come from it, so an
action cannot be routed, parsed or answered by one of them and missing from another."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assistant.action_table import ACTION_NAMES, ACTION_TABLE, ACTIONS, frames_of, parse_client_frame
from assistant.command_frames import Ping
from assistant.commands import COMMAND_HANDLERS, command_rate_limits
from assistant.environment import COMMANDS_FN, SETTINGS, Kind
from assistant.protocol import protocol_json_schema
from assistant.route_table import ROUTES
from assistant.settings import CommandsSettings

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_every_action_has_a_route_to_the_function_the_table_names_and_nothing_else_does() -> None:
    routed = {route.route_key: route.function.name for route in ROUTES if not route.route_key.startswith("$")}
    assert routed == {ACTION_NAMES[frame]: route.function for frame, route in ACTION_TABLE.items()}
    assert {route.route_key for route in ROUTES if route.route_key.startswith("$")} == {
        "$connect",
        "$disconnect",
        "$default",
    }


def test_every_command_has_exactly_one_handler_keyed_by_its_frame_type() -> None:
    assert set(COMMAND_HANDLERS) == set(frames_of(COMMANDS_FN))


def test_every_action_is_charged_against_a_rate_limit_its_function_reads() -> None:
    for frame, route in ACTION_TABLE.items():
        setting = SETTINGS[route.rate_limit]
        assert setting.kind is Kind.RATE_LIMIT, ACTION_NAMES[frame]
        assert route.function in setting.functions, ACTION_NAMES[frame]
    # The commands function's buckets, by action, read from its own settings.
    settings = CommandsSettings.model_validate({"table_name": "t", "callback_url": "c", "queue_url": "q"})
    limits = command_rate_limits(lambda env: getattr(settings, SETTINGS[env].field))
    assert set(limits) == {ACTION_NAMES[frame] for frame in frames_of(COMMANDS_FN)}
    assert str(limits["ping"]) == SETTINGS[ACTION_TABLE[Ping].rate_limit].default


def test_the_schema_lists_every_action_and_only_those() -> None:
    client = protocol_json_schema()["$defs"]["clientFrame"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in client["oneOf"]} == {frame.__name__ for frame in ACTION_TABLE}


def test_every_action_has_its_row_in_the_protocol_docs() -> None:
    documented = set(re.findall(r"^\| `([A-Za-z]+)` \|", PROTOCOL_DOC.read_text(encoding="utf-8"), re.MULTILINE))
    assert set(ACTIONS) <= documented


@pytest.mark.parametrize("frame", list(ACTION_TABLE), ids=lambda frame: ACTION_NAMES[frame])
def test_a_frame_of_each_action_parses_into_its_model(frame: type) -> None:
    name = ACTION_NAMES[frame]
    example = {
        "sendMessage": {"message": "hi"},
        "requestUpload": {"fileName": "a.png", "contentType": "image/png", "size": 10},
        "getAttachment": {"uploadId": "u_" + "0" * 24},
        "cancel": {"messageId": "m1"},
        "getHistory": {"conversationId": "c1"},
        "renameConversation": {"conversationId": "c1", "title": "A title"},
        "deleteConversation": {"conversationId": "c1"},
    }.get(name, {})
    parsed = parse_client_frame(json.dumps({"action": name, **example}), max_message_chars=100)
    assert type(parsed) is frame


def test_each_route_function_answers_exactly_the_actions_the_table_routes_to_it() -> None:
    # The handlers' own tables (keyed by frame type) against the table of actions: an action routed to a function
    # that has no handler for it, or a handler of an action routed elsewhere, fails here.
    import commands
    import send_message

    assert set(send_message.ACTIONS) == set(frames_of("send_message"))
    assert set(commands.ACTIONS) == set(frames_of("commands"))
