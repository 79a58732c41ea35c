"""$default: whatever no route matched. Always an `error` frame saying precisely what was wrong."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: no collection passes over what the container keeps for life
# (assistant.coldstart).
with collection_paused():
    from assistant.action_table import ACTION_TABLE, ClientFrame
    from assistant.errors import UnknownAction
    from assistant.function_dependencies import default as build
    from assistant.lifecycle import PerContainer
    from assistant.routes import MessageEvent, websocket_route
    from assistant.settings import DefaultSettings

#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.default(DefaultSettings.from_env()))


def unroutable(event: MessageEvent, frame: ClientFrame) -> None:
    # Parsing named any other problem: not JSON (bad_request), no or unknown action (unknown_action), ...
    # A valid frame can only land here if its route is missing from the deployed API.
    raise UnknownAction(f"The action {frame.action!r} is not available on this endpoint.")


handler = websocket_route(
    dict.fromkeys(ACTION_TABLE, unroutable),
    connections_api=lambda: dependencies().connections_api(),
    revocation=lambda: dependencies().revocation,
    refusals=lambda: dependencies().refusals,
    every_action=True,
)
