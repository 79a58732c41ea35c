"""The WebSocket protocol, every frame in both directions, in one import (``docs/protocol.md``; the schema,
docs/protocol.schema.json, is generated from here).

Each frame is declared once, with the function that handles it, so a function builds only its own:
:mod:`assistant.client_frames` (what every client frame has, and parsing one), :mod:`assistant.message_frames`
(``sendMessage`` and attachments), :mod:`assistant.command_frames` (the commands), :mod:`assistant.reply_frames`
(a streaming reply), :mod:`assistant.server_frames` (what every server frame has, ``error``), and the table of
actions (:mod:`assistant.action_table`). The functions import those modules, not this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union

from pydantic import Field, TypeAdapter

from assistant.action_table import (
    ACTION_NAMES,
    ACTION_TABLE,
    ACTIONS,
    ActionRoute,
    ClientFrame,
    frames_of,
    parse_client_frame,
)
from assistant.client_frames import (
    CURSOR_PATTERN,
    ID_PATTERN,
    MAX_CLIENT_FRAME_BYTES,
    MAX_CONVERSATIONS_PAGE,
    MAX_HISTORY_TURNS,
    ClientFrameModel,
    ClientId,
    Cursor,
    action_of,
    frame_union,
    new_id,
    parse_frame,
)
from assistant.command_frames import (
    MAX_TITLE_CHARS,
    AttachmentInfo,
    Cancel,
    ConversationDeleted,
    ConversationFrame,
    Conversations,
    ConversationSummary,
    ConversationUpdated,
    DailyUsageFrame,
    DataDeleted,
    DeleteAllData,
    DeleteConversation,
    GetHistory,
    GetUsage,
    History,
    HistoryMessage,
    HistoryTool,
    ListConversations,
    NewConversation,
    Ping,
    Pong,
    RenameConversation,
)
from assistant.message_frames import (
    MAX_ATTACHMENTS,
    MAX_FILE_NAME_CHARS,
    UPLOAD_ID_PATTERN,
    Accepted,
    AttachmentFrame,
    GetAttachment,
    RequestUpload,
    SendMessage,
    UploadFrame,
    UploadId,
)
from assistant.reply_frames import Cancelled, Delta, Done, Reset, ToolActivity, ToolStatus, Usage
from assistant.server_frames import ErrorFrame, ServerFrameModel, route_response

_SERVER_FRAMES: tuple[type[ServerFrameModel], ...] = (
    Accepted,
    Delta,
    Reset,
    ToolActivity,
    Done,
    Cancelled,
    ErrorFrame,
    ConversationFrame,
    Conversations,
    History,
    Pong,
    DailyUsageFrame,
    ConversationUpdated,
    ConversationDeleted,
    DataDeleted,
    UploadFrame,
    AttachmentFrame,
)
if TYPE_CHECKING:
    #: Any server frame: to a type checker their common base class.
    ServerFrame: TypeAlias = ServerFrameModel
else:
    #: Any server frame: the union of every kind (the schema's ``serverFrame``).
    ServerFrame = Annotated[Union[_SERVER_FRAMES], Field(discriminator="type")]  # noqa: UP007 (built at run time)

__all__ = [
    "ACTIONS",
    "ACTION_NAMES",
    "ACTION_TABLE",
    "CURSOR_PATTERN",
    "ID_PATTERN",
    "MAX_ATTACHMENTS",
    "MAX_CLIENT_FRAME_BYTES",
    "MAX_CONVERSATIONS_PAGE",
    "MAX_FILE_NAME_CHARS",
    "MAX_HISTORY_TURNS",
    "MAX_TITLE_CHARS",
    "UPLOAD_ID_PATTERN",
    "Accepted",
    "ActionRoute",
    "AttachmentFrame",
    "AttachmentInfo",
    "Cancel",
    "Cancelled",
    "ClientFrame",
    "ClientFrameModel",
    "ClientId",
    "ConversationDeleted",
    "ConversationFrame",
    "ConversationSummary",
    "ConversationUpdated",
    "Conversations",
    "Cursor",
    "DailyUsageFrame",
    "DataDeleted",
    "DeleteAllData",
    "DeleteConversation",
    "Delta",
    "Done",
    "ErrorFrame",
    "GetAttachment",
    "GetHistory",
    "GetUsage",
    "History",
    "HistoryMessage",
    "HistoryTool",
    "ListConversations",
    "NewConversation",
    "Ping",
    "Pong",
    "RenameConversation",
    "RequestUpload",
    "Reset",
    "SendMessage",
    "ServerFrame",
    "ServerFrameModel",
    "ToolActivity",
    "ToolStatus",
    "UploadFrame",
    "UploadId",
    "Usage",
    "action_of",
    "frame_union",
    "frames_of",
    "new_id",
    "parse_client_frame",
    "parse_frame",
    "protocol_json_schema",
    "route_response",
]


# --- The JSON Schema ------------------------------------------------------------------------------------------

#: Where the generated schema lives; `python -m scripts.protocol_schema` writes it, a test fails when it is stale.
SCHEMA_ID = "urn:gpt-assistant:protocol"


def protocol_json_schema() -> dict[str, Any]:
    """The JSON Schema of every client and server frame, generated from the models above (the one source).

    ``clientFrame`` validates what a client may send (the models' validation rules), ``serverFrame`` what the
    server sends (as serialized: aliases, no nulls).
    """
    # At run time both are the unions of every frame (to a type checker, their base classes).
    client = TypeAdapter(ClientFrame).json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    server = TypeAdapter(ServerFrame).json_schema(by_alias=True, mode="serialization", ref_template="#/$defs/{model}")
    definitions = {**client.pop("$defs", {}), **server.pop("$defs", {})}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Serverless GPT assistant WebSocket protocol",
        "description": "Generated from shared/assistant/protocol.py; see docs/protocol.md. Do not edit by hand.",
        "oneOf": [{"$ref": "#/$defs/clientFrame"}, {"$ref": "#/$defs/serverFrame"}],
        "$defs": {"clientFrame": client, "serverFrame": server, **dict(sorted(definitions.items()))},
    }
