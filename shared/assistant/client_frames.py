"""What every frame a client sends has in common, and parsing one: :func:`parse_frame` turns a WebSocket body into the
model of its action, or an ``error`` frame's precise reason.

This is a contract (``docs/protocol.md``); clients depend on the field names. The frames themselves live with the
function that answers them (:mod:`assistant.message_frames`, :mod:`assistant.command_frames`), so a function builds
only its own; the table of actions (:mod:`assistant.action_table`) names every one.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from assistant.errors import BadRequest, TooLarge, UnknownAction
from assistant.resources import MAX_FRAME_BYTES

#: Ids a client may choose: short, URL- and key-safe, so they can be used in DynamoDB keys and SQS dedup ids.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

ClientId = Annotated[str, Field(pattern=ID_PATTERN)]
#: Where a page of ``history`` or ``conversations`` ends: ``<ISO-8601 UTC time>#<id>``, as the server gave it.
CURSOR_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,15}Z#[A-Za-z0-9_-]{1,64}$"
Cursor = Annotated[str, Field(pattern=CURSOR_PATTERN)]
#: The most turns one ``history`` page shows, and conversations one ``conversations`` page lists.
MAX_HISTORY_TURNS = 200
MAX_CONVERSATIONS_PAGE = 100

#: Refused in a name a user gives (a conversation's title, a file's name): control characters (line breaks
#: included), lone surrogates, noncharacters, and the bidirectional overrides and isolates that would let a name
#: display as something it is not.
REFUSED_NAME_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)


def clean_name(field: str, value: str) -> str:
    """``value`` unless it holds a refused character (:data:`REFUSED_NAME_CHARS`) or is blank: the check of every
    name a user gives; the error names ``field``."""
    refused = REFUSED_NAME_CHARS.search(value)
    if refused is not None:
        raise ValueError(f"{field} must not contain U+{ord(refused.group()):04X} (control or formatting characters)")
    if not value.strip():
        raise ValueError(f"{field} must not be blank")
    return value


def new_id(prefix: str) -> str:
    """A server-assigned id: ``prefix`` + 24 hex chars (fits :data:`ID_PATTERN`)."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class ClientFrameModel(BaseModel):
    """A frame a client sends: one model per action (``assistant.action_table.ACTION_TABLE``)."""

    # Unknown fields are ignored rather than rejected so older servers accept newer clients. A model's validator is
    # built when a frame of it is first parsed, not at import: each route parses only its own actions' frames.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    action: str


def frame_union(frames: Iterable[type[ClientFrameModel]]) -> Any:
    """The discriminated union of ``frames``, which pydantic validates by ``action``."""
    return Annotated[Union[tuple(frames)], Field(discriminator="action")]  # noqa: UP007 (a runtime-built union)


@functools.cache
def _validator(frames: tuple[type[ClientFrameModel], ...]) -> TypeAdapter[ClientFrameModel]:
    """The validator of ``frames`` (one route's), built at its first frame and kept for the container's life."""
    return TypeAdapter(frame_union(frames))


@functools.cache
def _actions(frames: tuple[type[ClientFrameModel], ...]) -> frozenset[str]:
    """The actions of ``frames`` (one route's), read once per container rather than at every frame."""
    return frozenset(action_of(frame) for frame in frames)


def action_of(frame: type[ClientFrameModel]) -> str:
    """The ``action`` a frame model takes (its ``Literal``)."""
    (action,) = get_args(frame.model_fields["action"].annotation)
    return str(action)


#: A client frame is one WebSocket frame, which API Gateway caps at 32 KB; a message's text must fit in it.
MAX_CLIENT_FRAME_BYTES = MAX_FRAME_BYTES
#: Digits a JSON number may have. Python refuses to convert integers over 4300 digits (a ValueError deep in the
#: parser); no field of the protocol needs more than a handful.
_MAX_NUMBER_CHARS = 100
#: What SQS accepts in a message body (and so what a message's text may contain), minus Unicode's noncharacters.
_REFUSED_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(1, 17))
    + "]"
)


def _bounded_number(text: str) -> float | int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise BadRequest(f"A number in the frame has more than {_MAX_NUMBER_CHARS} characters.")
    return float(text) if any(c in text for c in ".eE") else int(text)


def _no_constant(name: str) -> Any:
    raise BadRequest(f"`{name}` is not valid JSON.")


def _load_json(body: str) -> Any:
    try:
        return json.loads(body, parse_int=_bounded_number, parse_float=_bounded_number, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise BadRequest("The frame is not valid JSON.") from None
    except RecursionError:
        raise BadRequest("The frame is nested too deeply.") from None


def parse_frame(
    body: str | None, *, max_message_chars: int, frames: Iterable[type[ClientFrameModel]], every_action: bool = False
) -> ClientFrameModel:
    """Parse one client frame into the model of its action, one of ``frames`` (a function's own: the frames the
    table of actions routes to it, ``assistant.action_table``), raising an :class:`AssistantError` with the
    protocol's code for bad input.

    Hostile but valid JSON (deep nesting, huge numbers, lone surrogates) is a ``bad_request`` like any other bad
    input, never an ``internal`` error: nothing downstream sees it. ``every_action``: ``frames`` are every action's
    (``$default``'s parse), so an action not among them is an ``unknown_action``; otherwise they are one function's,
    which API Gateway routes to it by their action, so another action (known or not) is the caller's mistake, a
    ``bad_request``.
    """
    taken = tuple(frames)
    names = _actions(taken)
    if body is None or not body.strip():
        raise BadRequest("The frame is empty; send a JSON object with an `action`.")
    if len(body) > MAX_CLIENT_FRAME_BYTES or len(body.encode("utf-8", "surrogatepass")) > MAX_CLIENT_FRAME_BYTES:
        raise TooLarge(f"The frame is over {MAX_CLIENT_FRAME_BYTES} bytes, the size of one WebSocket frame.")
    raw = _load_json(body)
    if not isinstance(raw, dict):
        raise BadRequest("The frame must be a JSON object.")
    action = raw.get("action")
    if not isinstance(action, str) or (every_action and action not in names):
        raise UnknownAction(f"Unknown action {action!r}; expected one of {sorted(names)}.")
    if action not in names:
        raise BadRequest(f"This function does not take {action!r} frames; it takes {sorted(names)}.")
    message = raw.get("message")
    if action == "sendMessage" and isinstance(message, str):
        if len(message) > max_message_chars:
            raise TooLarge(f"The message has {len(message)} characters; the limit is {max_message_chars}.")
        refused = _REFUSED_CHARS.search(message)
        if refused is not None:
            raise BadRequest(
                f"The message contains U+{ord(refused.group()):04X}, which is not a character that can be sent "
                "(control characters, lone surrogates and noncharacters are refused)."
            )
    try:
        return _validator(taken).validate_python(raw)
    except ValidationError as exc:
        raise BadRequest(_describe(exc, names)) from None


def _describe(exc: ValidationError, actions: Iterable[str]) -> str:
    parts = []
    tags = set(actions)  # the union's tag in each error's location
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if p not in tags) or "frame"
        parts.append(f"`{where}`: {error['msg']}")
    return "Invalid frame: " + "; ".join(parts)
