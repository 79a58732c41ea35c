"""What a message may be: the documented limits, checked before it is sent (docs/protocol.md)."""

from __future__ import annotations

import json

from assistant.wiring import DEFAULT_MAX_MESSAGE_CHARS

#: docs/protocol.md: a message frame must fit API Gateway's 32 KB frame, whatever the character limit says (over it,
#: the gateway closes the connection before the server could answer, and a re-send on reconnect would close the next).
MAX_FRAME_BYTES = 32 * 1024


def message_refusal(text: str, max_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> str:
    """Why ``text`` cannot be sent as a message (over the documented limits), or "" if it can."""
    if len(text) > max_chars:
        return (
            f"Not sent: this message is {len(text):,} characters long; the limit is {max_chars:,}. "
            "Shorten it and send again."
        )
    # Encoded as the client sends it, with room for the ids it carries.
    frame = {"action": "sendMessage", "message": text, "messageId": "m_" + "0" * 24, "conversationId": "c_" + "0" * 32}
    size = len(json.dumps(frame).encode())
    if size > MAX_FRAME_BYTES:
        return (
            f"Not sent: this message is {size / 1024:.1f} KB once encoded; a message must fit in 32 KB (emoji and "
            "non-Latin scripts take several bytes a character). Shorten it and send again."
        )
    return ""
