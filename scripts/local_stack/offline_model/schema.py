"""What the offline model accepts, and the OpenAI-shaped errors it answers with.

Requests are validated as strictly as the real API would for the parts we implement, so a client bug (a missing
``call_id``, a non-function tool, a too-small ``max_output_tokens``) fails here the way it would against OpenAI
instead of passing silently. Which top-level parameters exist at all is a profile's business
(:mod:`.rules`); of those, the ones the offline model does not act on are accepted and ignored.
Input items are normalised into the shape a stored response keeps as its context (what ``previous_response_id``
continues), the shape OpenAI's conversation items have.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

#: The value of ``model`` on every response: this server is not a language model.
OFFLINE_MODEL_NAME = "offline-demo"


_M = TypeVar("_M", bound=BaseModel)


class ApiError(Exception):
    """An error answered with OpenAI's body shape ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# --- Request models ---------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TextPart(_Model):
    type: Literal["input_text", "output_text", "text"]
    text: str


class ImagePart(_Model):
    """``input_image``: by URL (``image_url``, a ``data:`` URL or one the server fetches) or an uploaded file id."""

    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto", "original"] | None = None

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class FilePart(_Model):
    """``input_file``: inline (``file_data``, a ``data:`` URL, with ``filename``), by URL or by file id."""

    type: Literal["input_file"]
    file_data: str | None = None
    file_url: str | None = None
    file_id: str | None = None
    filename: str | None = None

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def _part_kind(raw: Any) -> str:
    return str(raw.get("type", "")) if isinstance(raw, dict) else str(getattr(raw, "type", ""))


ContentPart = Annotated[
    Annotated[TextPart, Tag("input_text")]
    | Annotated[TextPart, Tag("output_text")]
    | Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("input_image")]
    | Annotated[FilePart, Tag("input_file")],
    Discriminator(_part_kind),
]


class MessageIn(_Model):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def files(self) -> list[dict[str, Any]]:
        """The message's image and file parts, as stored (only a user message may carry them)."""
        if isinstance(self.content, str):
            return []
        return [part.stored() for part in self.content if isinstance(part, ImagePart | FilePart)]


class FunctionCallIn(_Model):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutputIn(_Model):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[TextPart]

    def text(self) -> str:
        return self.output if isinstance(self.output, str) else "".join(part.text for part in self.output)


class SummaryPart(_Model):
    type: Literal["summary_text"]
    text: str


class ReasoningItemIn(_Model):
    """A reasoning item sent back as input, as OpenAI asks of a client that keeps the context itself."""

    type: Literal["reasoning"]
    id: str = Field(min_length=1)
    summary: list[SummaryPart] = Field(default_factory=list)
    encrypted_content: str | None = None


def _item_kind(raw: Any) -> str:
    # Easy input messages (``{"role": ..., "content": ...}``) carry no ``type``.
    if isinstance(raw, dict):
        return str(raw.get("type", "message"))
    return str(getattr(raw, "type", "message"))


InputItem = Annotated[
    Annotated[MessageIn, Tag("message")]
    | Annotated[FunctionCallIn, Tag("function_call")]
    | Annotated[FunctionCallOutputIn, Tag("function_call_output")]
    | Annotated[ReasoningItemIn, Tag("reasoning")],
    Discriminator(_item_kind),
]


class FunctionToolIn(_Model):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": True if self.strict is None else self.strict,
        }


class ConversationRef(_Model):
    id: str


class ReasoningIn(_Model):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class CreateResponse(_Model):
    model: str = Field(min_length=1)
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[FunctionToolIn] = Field(default_factory=list)
    # The real API's floor; a client that asks for less is broken against OpenAI too.
    max_output_tokens: int | None = Field(default=None, ge=16)
    metadata: dict[str, str] | None = None
    conversation: str | ConversationRef | None = None
    previous_response_id: str | None = None
    stream: bool = False
    #: Generate server-side whatever happens to the connection, as OpenAI's background mode does.
    background: bool = False
    store: bool | None = None
    reasoning: ReasoningIn | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    truncation: Literal["auto", "disabled"] | None = None
    #: ``"none"`` is honoured (no tool call is planned); a forced choice is accepted and otherwise ignored.
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None


def parse_body(model: type[_M], raw: Any) -> _M:
    """Validate a request body, turning pydantic's complaint into the 400 the real API would give."""
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise ApiError(400, f"Invalid request: {param or 'body'}: {first['msg']}", param=param) from None


# --- Stored item shapes -----------------------------------------------------------------------------------------


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(
    role: str,
    text: str,
    *,
    item_id: str | None = None,
    status: str = "completed",
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    part = output_text_part(text) if role == "assistant" else {"type": "input_text", "text": text}
    parts = [part] if text or not files else []
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "role": role,
        "status": status,
        "content": [*parts, *(files or [])],
    }


def function_call_item(
    call_id: str, name: str, arguments: str, *, item_id: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id or new_id("fc"),
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def function_call_output_item(call_id: str, output: str) -> dict[str, Any]:
    return {
        "id": new_id("fco"),
        "type": "function_call_output",
        "call_id": call_id,
        "output": output,
        "status": "completed",
    }


def reasoning_item(*, item_id: str | None = None, summary: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A reasoning item as OpenAI returns it without ``include=["reasoning.encrypted_content"]``."""
    return {"id": item_id or new_id("rs"), "type": "reasoning", "summary": summary or []}


def stored_items(
    request_input: str | list[MessageIn | FunctionCallIn | FunctionCallOutputIn | ReasoningItemIn],
) -> list[dict[str, Any]]:
    """The request's input as stored items (the context a later ``previous_response_id`` continues)."""
    if isinstance(request_input, str):
        return [message_item("user", request_input)]
    items: list[dict[str, Any]] = []
    for item in request_input:
        if isinstance(item, MessageIn):
            items.append(message_item(item.role, item.text(), files=item.files()))
        elif isinstance(item, FunctionCallIn):
            items.append(function_call_item(item.call_id, item.name, item.arguments))
        elif isinstance(item, ReasoningItemIn):
            items.append(reasoning_item(item_id=item.id, summary=[part.model_dump() for part in item.summary]))
        else:
            items.append(function_call_output_item(item.call_id, item.text()))
    return items
