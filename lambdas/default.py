"""$default: whatever no route matched. Always an `error` frame saying precisely what was wrong."""

from __future__ import annotations

from assistant import dependencies as build
from assistant.errors import UnknownAction
from assistant.events import MessageEvent
from assistant.lifecycle import PerContainer
from assistant.protocol import parse_client_frame
from assistant.routes import websocket_route
from assistant.settings import DefaultSettings
from assistant.wiring import DEFAULT_MAX_MESSAGE_CHARS

#: Built at the first invocation, kept for the container's life.
dependencies = PerContainer(lambda: build.default(DefaultSettings.from_env()))


def unroutable(event: MessageEvent) -> None:
    # Parsing names the problem: not JSON (bad_request), no or unknown action (unknown_action), ...
    frame = parse_client_frame(event.body, max_message_chars=DEFAULT_MAX_MESSAGE_CHARS)
    # A valid frame can only land here if its route is missing from the deployed API.
    raise UnknownAction(f"The action {frame.action!r} is not available on this endpoint.")


handler = websocket_route(unroutable, connections_api=lambda: dependencies().connections_api())
