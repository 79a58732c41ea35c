"""The table of actions, keyed by frame type (:data:`ACTION_TABLE`): which function answers each action a client may
send, and the per-user bucket it is charged against.

The action names, the frame union ``$default`` parses (:func:`parse_client_frame`), the WebSocket routes
(``assistant.route_table``) and the protocol's JSON Schema (``assistant.protocol``) all come from it. Adding an
action: its frame model (with the function's other frames), its row here, its handler
(``assistant.commands.COMMAND_HANDLERS`` or the ``send_message`` function's) and its row in docs/protocol.md.
The functions do not import this table: each parses only its own frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

from assistant.client_frames import ClientFrameModel, action_of, frame_union, parse_frame
from assistant.command_frames import (
    Cancel,
    DeleteAllData,
    DeleteConversation,
    GetHistory,
    GetUsage,
    ListConversations,
    NewConversation,
    Ping,
    RenameConversation,
)
from assistant.environment import COMMANDS_FN, SEND_MESSAGE_FN, Env
from assistant.message_frames import GetAttachment, RequestUpload, SendMessage


@dataclass(frozen=True)
class ActionRoute:
    """Where an action goes: the function API Gateway routes it to, and the setting of its per-user bucket."""

    function: str
    rate_limit: Env


#: Every action a client may send, keyed by its frame's type.
ACTION_TABLE: Final[Mapping[type[ClientFrameModel], ActionRoute]] = {
    SendMessage: ActionRoute(SEND_MESSAGE_FN, Env.RATE_LIMIT_SEND_MESSAGE),
    RequestUpload: ActionRoute(SEND_MESSAGE_FN, Env.RATE_LIMIT_REQUEST_UPLOAD),
    GetAttachment: ActionRoute(SEND_MESSAGE_FN, Env.RATE_LIMIT_GET_ATTACHMENT),
    Cancel: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_CANCEL),
    NewConversation: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_NEW_CONVERSATION),
    ListConversations: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_LIST_CONVERSATIONS),
    GetHistory: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_GET_HISTORY),
    Ping: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_PING),
    GetUsage: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_GET_USAGE),
    RenameConversation: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_RENAME_CONVERSATION),
    DeleteConversation: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_DELETE_CONVERSATION),
    DeleteAllData: ActionRoute(COMMANDS_FN, Env.RATE_LIMIT_DELETE_ALL_DATA),
}


#: Every action name, by frame type.
ACTION_NAMES: Final[Mapping[type[ClientFrameModel], str]] = {frame: action_of(frame) for frame in ACTION_TABLE}
ACTIONS: Final[frozenset[str]] = frozenset(ACTION_NAMES.values())


def frames_of(function: str) -> tuple[type[ClientFrameModel], ...]:
    """The frame types API Gateway routes to ``function`` (a ``FunctionSpec.name``)."""
    return tuple(frame for frame, route in ACTION_TABLE.items() if route.function == function)


if TYPE_CHECKING:
    #: Any client frame: to a type checker their common base class.
    ClientFrame: TypeAlias = ClientFrameModel
else:
    #: Any client frame: the discriminated union of every model of :data:`ACTION_TABLE`.
    ClientFrame = frame_union(ACTION_TABLE)


def parse_client_frame(body: str | None, *, max_message_chars: int) -> ClientFrame:
    """Parse a frame of any action (what ``$default`` does; a function parses only its own: ``parse_frame``)."""
    return parse_frame(body, max_message_chars=max_message_chars, frames=ACTION_TABLE, every_action=True)
