"""One Responses stream, whichever server sent it, turned into what the user sees and what the tool loop runs.

Servers of the Responses API agree on the terminal events and on little else between them:

- OpenAI sends ``response.created``, each function call in ``response.output_item.added`` (name and ``call_id``),
  its arguments in ``response.function_call_arguments.delta``/``.done`` and the whole item again in
  ``response.output_item.done``; text in ``response.output_text.delta`` then ``.done``; ``usage`` and the whole
  ``output`` in ``response.completed``; every event numbered by ``sequence_number``.
- Bridges and gateways in front of Chat Completions models (open-responses-server, LiteLLM and the like) may send
  no ``sequence_number`` and ``usage: null``, announce a call only in ``response.function_call_arguments.done``
  and in the completed response's ``output`` (never in ``response.output_item.done``), or send a text only in its
  ``.done`` event or in the final ``output``.

So every place a server may put a call or a text is read, and the completed response is the authority at the end:
a call found only there still runs, a text found only there still reaches the user, in order and once (what was
already shown is never shown again). A response that completes with neither text nor a call is an error (a silent
empty ``done`` would look like a bug of ours). A server that reports no usage is counted by estimate
(:mod:`assistant.token_estimates`): never 0 for a non-empty exchange.

``openai`` types are read by attribute with defaults (the SDK builds events without validating them, so a field a
server left out is simply absent); nothing here imports the SDK.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from assistant import tracing
from assistant.errors import ModelFailed, ModelIncomplete
from assistant.model_events import ModelEvent, ResponseStarted, ResponseUsage, TextDelta, UsageSink
from assistant.model_retry import FAILED_MESSAGE, StreamBroken, StreamErrorEvent
from assistant.token_estimates import text_tokens

if TYPE_CHECKING:
    from openai.types.responses import Response, ResponseStreamEvent

__all__ = [
    "EMPTY_MESSAGE",
    "ModelCall",
    "Round",
    "StreamProgress",
    "consume_stream",
    "final_text",
    "report_usage",
    "round_of",
]

logger = Logger(child=True)

EMPTY_MESSAGE = "The model returned an empty answer. Please try again."


@dataclass(frozen=True)
class ModelCall:
    """A function call the model made, as the tool loop runs it and sends it back."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Round:
    """A finished model response, reduced to what the tool loop needs."""

    response_id: str
    model: str
    input_tokens: int
    output_tokens: int
    calls: tuple[ModelCall, ...]
    #: The server reported no usage (or not all of it): the counts are estimates.
    estimated: bool = False
    #: What the request of this round sent, estimated, for a later round that continues it by id (the server
    #: counts the context it holds as input again).
    context_tokens: int = 0

    def usage(self) -> ResponseUsage:
        return ResponseUsage(self.response_id, self.input_tokens, self.output_tokens, estimated=self.estimated)


@dataclass
class _StreamedCall:
    """A call as its events arrive: whichever event names it first, the others fill in the rest."""

    item_id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""

    def call(self) -> ModelCall | None:
        if not self.name:
            return None  # nothing to run: the server never said which function
        call_id = self.call_id or self.item_id or _local_id("call")
        return ModelCall(call_id=call_id, name=self.name, arguments=self.arguments)


@dataclass
class StreamProgress:
    """What one attempt at a round has shown the caller and produced so far; decides between retrying and
    recovering, and is what a response that ends without usage is counted from."""

    response_id: str | None = None
    text: list[str] = field(default_factory=list)
    #: The ``sequence_number`` of the last event seen, ``None`` if the server numbers none: a stream can be resumed
    #: (``starting_after``) only where it is known.
    sequence_number: int | None = None
    #: Estimated input tokens of the request this attempt sent (0 when resuming a response another worker sent).
    input_tokens_estimate: int = 0
    #: Text shown per content part (``item_id``, ``content_index``), to tell what a ``.done`` event adds.
    _part_text: dict[tuple[str | None, int | None], str] = field(default_factory=dict)
    _calls: list[_StreamedCall] = field(default_factory=list)
    _calls_by_key: dict[str, _StreamedCall] = field(default_factory=dict)
    _announced: bool = False

    @property
    def visible(self) -> bool:
        return self.response_id is not None or bool(self.text)

    @property
    def shown_text(self) -> str:
        return "".join(self.text)

    def streamed_calls(self) -> tuple[ModelCall, ...]:
        return tuple(call for streamed in self._calls if (call := streamed.call()) is not None)

    def output_tokens_estimate(self) -> int:
        produced = self.shown_text + "".join(f"{c.name or ''} {c.arguments}" for c in self._calls)
        return text_tokens(produced)

    def estimated_usage(self) -> ResponseUsage | None:
        """For a response that ended without the provider saying what it cost: what was sent, and what it
        produced, in estimated tokens. ``None`` when no response started (nothing to count)."""
        if self.response_id is None:
            return None
        return ResponseUsage(
            self.response_id, self.input_tokens_estimate, self.output_tokens_estimate(), estimated=True
        )

    # --- Event bookkeeping ------------------------------------------------------------------------------------

    def started(self, response_id: str | None, model: str | None = None) -> ResponseStarted | None:
        """The response has a name now: announced once per stream read (a resumed response is announced again, as
        its stream says it was created). A server that never names it gets a local name, so the round is still
        recorded and counted."""
        if self._announced:
            return None
        self._announced = True
        self.response_id = response_id or self.response_id or _local_id("resp")
        return ResponseStarted(self.response_id, model)

    def add_text(self, item_id: str | None, content_index: int | None, text: str) -> None:
        self.text.append(text)
        key = (item_id, content_index)
        self._part_text[key] = self._part_text.get(key, "") + text

    def part_text(self, item_id: str | None, content_index: int | None) -> str:
        return self._part_text.get((item_id, content_index), "")

    def call_for(self, item_id: str | None, output_index: int | None) -> _StreamedCall:
        """The call an event is about, by item id where the server gives one, else by its place in the output."""
        keys = [key for key in (f"id:{item_id}" if item_id else None, _index_key(output_index)) if key]
        for key in keys:
            if key in self._calls_by_key:
                found = self._calls_by_key[key]
                break
        else:
            found = _StreamedCall(item_id=item_id)
            self._calls.append(found)
        for key in keys:
            self._calls_by_key.setdefault(key, found)
        found.item_id = found.item_id or item_id
        return found


def consume_stream(
    stream: Iterable[ResponseStreamEvent], progress: StreamProgress, sink: UsageSink, requested_at: float
) -> Generator[ModelEvent, None, Round]:
    """Turn one response's stream events (a new stream or a resumed one) into model events, until it ends.

    Returns the finished :class:`Round`; raises ``ModelFailed`` (failed, error-free empty answer),
    ``ModelIncomplete``, :class:`StreamErrorEvent` (an ``error`` event) or :class:`StreamBroken` (the stream ended
    without a terminal event). Whatever ends a response that started, its usage reaches ``sink`` first, except for
    a completed one, which the caller reports with the rest of its round.
    """
    first_text = True
    for event in stream:
        number = getattr(event, "sequence_number", None)
        if isinstance(number, int):
            progress.sequence_number = number
        kind = getattr(event, "type", None)
        if kind in ("response.created", "response.queued", "response.in_progress"):
            started = progress.started(_response_id(event), _response_model(event))
            if started is not None:
                yield started
        elif kind == "response.output_text.delta":
            delta = getattr(event, "delta", "") or ""
            if not delta:
                continue
            started = progress.started(None)
            if started is not None:
                yield started
            if first_text:
                first_text = False
                tracing.mark_since("model first token", requested_at)
            progress.add_text(getattr(event, "item_id", None), getattr(event, "content_index", None), delta)
            yield TextDelta(delta)
        elif kind == "response.output_text.done":
            # A server that streamed fewer deltas than the part's text (or none) says the whole of it here.
            item_id, index = getattr(event, "item_id", None), getattr(event, "content_index", None)
            yield from _show_rest(progress, progress.part_text(item_id, index), getattr(event, "text", "") or "")
        elif kind == "response.output_item.added" or kind == "response.output_item.done":
            item = getattr(event, "item", None)
            if getattr(item, "type", None) == "function_call":
                call = progress.call_for(getattr(item, "id", None), getattr(event, "output_index", None))
                call.call_id = getattr(item, "call_id", None) or call.call_id
                call.name = getattr(item, "name", None) or call.name
                arguments = getattr(item, "arguments", None)
                if arguments and (kind == "response.output_item.done" or not call.arguments):
                    call.arguments = arguments
        elif kind == "response.function_call_arguments.delta":
            call = progress.call_for(getattr(event, "item_id", None), getattr(event, "output_index", None))
            call.arguments += getattr(event, "delta", "") or ""
        elif kind == "response.function_call_arguments.done":
            call = progress.call_for(getattr(event, "item_id", None), getattr(event, "output_index", None))
            call.arguments = getattr(event, "arguments", None) or call.arguments
            # OpenAI names the function here too (an extra field to the SDK's type); so do some bridges.
            call.name = getattr(event, "name", None) or call.name
        elif kind == "response.completed":
            tracing.mark_since("model request", requested_at)
            # Read the stream to its end: httpx drops a connection whose body was left unread, and the next
            # request would then pay a new TCP and TLS handshake to the model before its first token.
            for _ in stream:
                pass
            return (yield from _complete(event.response, progress, sink))  # type: ignore[union-attr]
        elif kind == "response.failed":
            response = event.response  # type: ignore[union-attr]
            error = getattr(response, "error", None)
            logger.error(
                "Model response failed",
                extra={"response_id": response.id, "code": getattr(error, "code", None)},
            )
            progress.started(response.id)
            report_usage(sink, usage_of(response, progress))
            raise ModelFailed(FAILED_MESSAGE)
        elif kind == "response.incomplete":
            response = event.response  # type: ignore[union-attr]
            details = getattr(response, "incomplete_details", None)
            reason = getattr(details, "reason", None)
            logger.warning("Model response incomplete", extra={"response_id": response.id, "reason": reason})
            progress.started(response.id)
            # A reply cut off at max_output_tokens cost exactly that: it counts like any other.
            report_usage(sink, usage_of(response, progress))
            raise ModelIncomplete(incomplete_message(reason), reason=reason)
        elif kind == "error":
            raise StreamErrorEvent(getattr(event, "code", None))
    raise StreamBroken()


def _complete(response: Response, progress: StreamProgress, sink: UsageSink) -> Generator[ModelEvent, None, Round]:
    """The completed response is the authority: its calls replace the streamed ones where it lists any, its text
    adds what the stream did not show."""
    started = progress.started(response.id)
    if started is not None:
        yield started
    yield from _show_rest(progress, progress.shown_text, final_text(response))
    calls = final_calls(response) or progress.streamed_calls()
    finished = round_of(response, progress, calls)
    if not progress.shown_text and not calls:
        logger.error("Model returned an empty answer", extra={"response_id": finished.response_id})
        report_usage(sink, finished.usage())
        raise ModelFailed(EMPTY_MESSAGE)
    return finished


def round_of(response: Response, progress: StreamProgress, calls: tuple[ModelCall, ...] | None = None) -> Round:
    """A completed response as the tool loop takes it: its calls (the final ``output``'s unless given) and usage."""
    usage = usage_of(response, progress)
    return Round(
        response_id=usage.response_id,
        model=getattr(response, "model", None) or "",
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        calls=final_calls(response) if calls is None else calls,
        estimated=usage.estimated,
        context_tokens=progress.input_tokens_estimate + progress.output_tokens_estimate(),
    )


def _show_rest(progress: StreamProgress, shown: str, whole: str) -> Generator[ModelEvent, None, None]:
    """Show what ``whole`` has beyond ``shown``, once. A ``whole`` that does not extend what was shown cannot be
    patched into the user's copy (nothing shown is ever taken back), so it is logged and left."""
    if not whole or whole == shown:
        return
    if not whole.startswith(shown):
        logger.warning("A server's final text differs from the text it streamed; keeping what was shown")
        return
    rest = whole[len(shown) :]
    progress.add_text(None, None, rest)
    yield TextDelta(rest)


def final_text(response: Response) -> str:
    """The text of a response's ``output``: every ``output_text`` part of its messages, in order."""
    parts: list[str] = []
    for item in getattr(response, "output", None) or ():
        if getattr(item, "type", None) != "message":
            continue
        for part in getattr(item, "content", None) or ():
            if getattr(part, "type", None) == "output_text":
                parts.append(getattr(part, "text", "") or "")
    return "".join(parts)


def final_calls(response: Response) -> tuple[ModelCall, ...]:
    """The function calls a response's ``output`` lists, in order."""
    calls: list[ModelCall] = []
    for item in getattr(response, "output", None) or ():
        if getattr(item, "type", None) == "function_call" and getattr(item, "name", None):
            call_id = getattr(item, "call_id", None) or getattr(item, "id", None) or _local_id("call")
            calls.append(ModelCall(call_id=call_id, name=item.name, arguments=getattr(item, "arguments", "") or ""))
    return tuple(calls)


def usage_of(response: Response, progress: StreamProgress) -> ResponseUsage:
    """What a finished response cost: the server's count where it gave one, the estimate for what it left out (no
    ``usage``, or a zero count for an exchange that was not empty)."""
    usage = getattr(response, "usage", None)
    reported_in = getattr(usage, "input_tokens", None) or 0
    reported_out = getattr(usage, "output_tokens", None) or 0
    produced = progress.output_tokens_estimate()
    input_tokens = reported_in if reported_in > 0 else progress.input_tokens_estimate
    output_tokens = reported_out if reported_out > 0 or produced == 0 else produced
    estimated = input_tokens != reported_in or output_tokens != reported_out
    return ResponseUsage(progress.response_id or response.id, input_tokens, output_tokens, estimated=estimated)


def report_usage(sink: UsageSink, usage: ResponseUsage | None) -> None:
    if usage is not None:
        sink(usage)


def incomplete_message(reason: str | None) -> str:
    if reason == "max_output_tokens":
        return "The reply was cut off because it reached its length limit."
    if reason == "content_filter":
        return "The reply was stopped by the content filter."
    return "The reply ended before it was complete."


def _response_id(event: Any) -> str | None:
    return getattr(getattr(event, "response", None), "id", None) or None


def _response_model(event: Any) -> str | None:
    model = getattr(getattr(event, "response", None), "model", None)
    return model if isinstance(model, str) and model else None


def _index_key(output_index: int | None) -> str | None:
    return f"at:{output_index}" if isinstance(output_index, int) else None


def _local_id(prefix: str) -> str:
    """An id for what a server left unnamed (a response, a call): unique, and visibly not the server's."""
    return f"{prefix}_local_{uuid.uuid4().hex}"
