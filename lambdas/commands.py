"""cancel, newConversation, listConversations, getHistory, getUsage, ping, renameConversation, deleteConversation
and deleteAllData: each answers the sender (the last three also tell the user's other tabs)."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: no collection passes over what the container keeps for life
# (assistant.coldstart).
with collection_paused():
    from assistant.action_table import ClientFrame, frames_of
    from assistant.environment import COMMANDS_FN
    from assistant.function_dependencies import commands as build
    from assistant.lifecycle import PerContainer
    from assistant.routes import MessageEvent, websocket_route
    from assistant.server_frames import ServerFrameModel
    from assistant.settings import CommandsSettings

#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.commands(CommandsSettings.from_env()))


def run_command(event: MessageEvent, frame: ClientFrame) -> ServerFrameModel | None:
    # The service answers each frame with its handler (assistant.commands.COMMAND_HANDLERS, by frame type) after
    # taking a token from the action's bucket.
    context = event.request_context
    return dependencies().commands().handle(context.authorizer.user_id, frame, connection_id=context.connection_id)


#: Every command the table of actions routes here; the service answers each with its own handler.
ACTIONS = dict.fromkeys(frames_of(COMMANDS_FN), run_command)

handler = websocket_route(
    ACTIONS,
    connections_api=lambda: dependencies().connections_api(),
    revocation=lambda: dependencies().revocation,
    refusals=lambda: dependencies().refusals,
)
