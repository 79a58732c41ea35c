"""cancel, newConversation, listConversations, getHistory, getUsage and ping: each answers the sender."""

from __future__ import annotations

from assistant import runtime
from assistant.commands import CommandLimits, CommandService
from assistant.events import MessageEvent
from assistant.protocol import ServerFrame, parse_client_frame
from assistant.routes import websocket_route


def run_command(event: MessageEvent) -> ServerFrame | None:
    settings = runtime.settings()
    frame = parse_client_frame(event.body, max_message_chars=settings.max_message_chars)
    service = CommandService(
        conversations=runtime.conversations(),
        turns=runtime.turns(),
        messages=runtime.messages(),
        usage=runtime.usage(),
        rate_limiter=runtime.rate_limiter(),
        limits=CommandLimits(
            quotas=settings.quotas(),
            rate_limits={
                "newConversation": settings.rate_limit_new_conversation,
                "getHistory": settings.rate_limit_get_history,
                "listConversations": settings.rate_limit_list_conversations,
            },
            max_conversations=settings.max_conversations_per_user,
        ),
        model=runtime.model_client,
    )
    return service.handle(event.request_context.authorizer.user_id, frame)


handler = websocket_route(run_command)
