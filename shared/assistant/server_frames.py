"""What every frame the server sends has in common, the ``error`` frame every function may answer with, and the
route response that carries a frame to the sender. The other kinds live with the function that sends them
(:mod:`assistant.reply_frames`, :mod:`assistant.command_frames`, :mod:`assistant.message_frames`), so a function
builds only its own; :mod:`assistant.protocol` gathers them all (the schema, ``docs/protocol.md``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assistant.errors import AssistantError, ErrorCode, RateLimited


class ServerFrameModel(BaseModel):
    """A frame the server sends; each kind is a model with its own ``type``."""

    # A frame's serializer is built when one is first sent, not at import: each function sends only a few kinds.
    model_config = ConfigDict(populate_by_name=True, frozen=True, defer_build=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class ErrorFrame(ServerFrameModel):
    type: Literal["error"] = "error"
    message_id: str | None = Field(default=None, alias="messageId")
    code: ErrorCode
    message: str
    #: With ``rate_limited``: how long to wait before sending that kind of frame again.
    retry_after_ms: int | None = Field(default=None, alias="retryAfterMs")

    @classmethod
    def from_error(cls, error: AssistantError, *, message_id: str | None = None) -> ErrorFrame:
        retry_after_ms = error.retry_after_ms if isinstance(error, RateLimited) else None
        return cls(message_id=message_id, code=error.code, message=error.public_message, retry_after_ms=retry_after_ms)


def route_response(frame: ServerFrameModel | None, status_code: int = 200) -> dict[str, Any]:
    """The Lambda proxy answer API Gateway turns into a frame for the sender (routes with a route response)."""
    if frame is None:
        return {"statusCode": status_code}
    return {"statusCode": status_code, "body": frame.to_json()}
