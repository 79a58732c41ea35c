"""cancel, newConversation, listConversations, getHistory, getUsage, ping, renameConversation, deleteConversation
and deleteAllData: each answers the sender (the last three also tell the user's other tabs)."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: no collection passes over what the container keeps for life
# (assistant.coldstart).
with collection_paused():
    from assistant import function_dependencies as build
    from assistant.lifecycle import PerContainer
    from assistant.protocol import ClientFrame, ServerFrame
    from assistant.routes import MessageEvent, actions_of, websocket_route
    from assistant.settings import CommandsSettings
    from assistant.wiring import COMMANDS

#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.commands(CommandsSettings.from_env()))


def run_command(event: MessageEvent, frame: ClientFrame) -> ServerFrame | None:
    # The service dispatches on the frame's action (its rate limits are per action too).
    context = event.request_context
    return dependencies().commands().handle(context.authorizer.user_id, frame, connection_id=context.connection_id)


handler = websocket_route(
    dict.fromkeys(actions_of(COMMANDS), run_command),
    connections_api=lambda: dependencies().connections_api(),
    revocation=lambda: dependencies().revocation,
    refusals=lambda: dependencies().refusals,
)
