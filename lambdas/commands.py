"""cancel, newConversation, listConversations, getHistory, getUsage and ping: each answers the sender."""

from __future__ import annotations

from assistant import dependencies as build
from assistant.events import MessageEvent
from assistant.lifecycle import PerContainer
from assistant.protocol import ServerFrame, parse_client_frame
from assistant.routes import websocket_route
from assistant.settings import CommandsSettings
from assistant.wiring import DEFAULT_MAX_MESSAGE_CHARS

#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.commands(CommandsSettings.from_env()))


def run_command(event: MessageEvent) -> ServerFrame | None:
    deps = dependencies()
    # The message limit is sendMessage's; a command frame carries no message.
    frame = parse_client_frame(event.body, max_message_chars=DEFAULT_MAX_MESSAGE_CHARS)
    return deps.commands().handle(event.request_context.authorizer.user_id, frame)


handler = websocket_route(run_command, connections_api=lambda: dependencies().connections_api())
