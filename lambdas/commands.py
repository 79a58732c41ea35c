"""cancel, newConversation, listConversations, getHistory and ping: each answers the sender."""

from __future__ import annotations

from assistant import runtime
from assistant.commands import CommandService
from assistant.events import MessageEvent
from assistant.protocol import ServerFrame, parse_client_frame
from assistant.routes import websocket_route


def run_command(event: MessageEvent) -> ServerFrame | None:
    frame = parse_client_frame(event.body, max_message_chars=runtime.settings().max_message_chars)
    service = CommandService(
        conversations=runtime.conversations(), messages=runtime.messages(), model=runtime.model_client
    )
    return service.handle(event.request_context.authorizer.user_id, frame)


handler = websocket_route(run_command)
