"""The model client: the conversation so far and one user message in, a stream of :data:`ModelEvent` out, tool
rounds and failures handled.

The conversation is ours (:mod:`assistant.stores.turns`): every request carries the earlier turns as input items and
never a provider-side ``conversation``, so any server of the Responses API works. The provider's capabilities
(:class:`assistant.wiring.ProviderCapabilities`, one declaration per profile) say what else the server can do:
``openai`` (and ``bedrock-mantle``) store responses, run them in background mode for a resumable definition and
continue tool rounds with ``previous_response_id``; ``openai-compatible`` (vLLM, Ollama, LM Studio, llama.cpp) and
``bedrock`` (bedrock-runtime) are stateless: no ``store``, no ``background``, each tool round re-sends the input.

What it guarantees the worker:

- No ``openai`` type escapes. Failures are :mod:`assistant.errors` types: ``ModelUnavailable`` (transient, after
  retries), ``ModelFailed``, ``ModelIncomplete`` and ``ReplyInterrupted``.
- A request is retried silently only while nothing of its response was yielded.
- A stream that drops after that is recovered as the provider allows, and the caller ends with one whole answer:
  a background response is followed again by re-streaming its events after the last one seen
  (``starting_after``), or by polling where the provider cannot re-stream; any other response died with its stream,
  so the round is asked again from its start and the caller told with :class:`RoundRestarted` to discard what it
  showed of the dropped attempt (nothing of it is in any conversation: the conversation is ours).
- Closing the generator is how the caller stops a reply: it closes the HTTP stream and, for a background response,
  also cancels it (see :class:`StopReply` for when a close does not cancel).

Resumable definitions (``AssistantDefinition.resumable``, the default) create every response with
``background=True`` where the provider has it: the model then keeps generating when the stream drops or the worker
dies, which is what lets a redelivered message resume the very same response; a normal streamed response is
terminated by the server as soon as its connection closes. The flip side is that closing the stream no longer stops
a background response, so an early close calls ``responses.cancel``. Without background mode ``resume_reply`` only
picks up a response that had already completed.

``openai`` is imported inside functions only: importing it costs most of a second, and the handlers that merely
import this module (for types) must not pay for it at cold start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict, TypeVar, Unpack, cast

from aws_lambda_powertools import Logger

from assistant.definition import AssistantDefinition, check_for_provider
from assistant.errors import AssistantError, ModelFailed, ReplyInterrupted
from assistant.model_events import (
    ModelEvent,
    ReplyCompleted,
    ResponseStarted,
    ResponseUsage,
    RoundRestarted,
    TextDelta,
    ToolEvent,
    ToolExchange,
    UsageSink,
)
from assistant.model_retry import FAILED_MESSAGE, RetryPolicy, StreamBroken, StreamErrorEvent, classify
from assistant.response_stream import (
    ModelCall,
    Round,
    StreamProgress,
    consume_stream,
    final_text,
    report_usage,
    round_of,
    usage_of,
)
from assistant.token_estimates import CHARS_PER_TOKEN, request_tokens
from assistant.tools.registry import ToolContext, ToolRegistry
from assistant.tools.toolbox import OfferedTools, Toolbox
from assistant.wiring import ModelProvider

if TYPE_CHECKING:
    import openai
    from openai.types.responses import Response, ResponseInputItemParam, ToolParam
    from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
    from openai.types.shared.reasoning_effort import ReasoningEffort

    from assistant.tools.mcp_tools import McpTools

__all__ = [
    "ModelClient",
    "ModelClientOptions",
    "ModelEvent",
    "ModelTimeouts",
    "ReplyCompleted",
    "ResponseStarted",
    "ResponseUsage",
    "RetryPolicy",
    "RoundRestarted",
    "StopReply",
    "TextDelta",
    "ToolEvent",
    "ToolExchange",
    "UsageSink",
]

#: A child of the functions' Powertools logger: its lines carry the invocation's correlation id and user.
logger = Logger(child=True)

_T = TypeVar("_T")

INTERRUPTED_MESSAGE = "The reply was interrupted and could not be completed."

#: How long a background response may stream nothing at all (a reasoning model thinking) before the reply is given
#: up as interrupted; well inside the worker's timeout, so a silence is never what ends a worker.
MAX_SILENCE_S = 120.0
#: Seconds a best-effort ``responses.cancel`` may take; it runs while the caller unwinds a cancel, so it is short.
CANCEL_TIMEOUT_S = 3.0


class StopReply(Exception):
    """Raise (a subclass of) this to stop consuming a reply on purpose, then close the generator.

    What a close means depends on what the caller is unwinding, because a background response outlives its stream
    and only an explicit cancel stops it:

    - nothing, a :class:`StopReply`, or an interrupt (``KeyboardInterrupt``, ``SystemExit``, task cancellation):
      the caller is done with the reply, so a running response is cancelled;
    - any other exception: the caller failed and its retry will want ``resume_reply`` on the very same response
      (SQS redelivers the message), so the response is left running. A generator that is dropped instead of
      closed is closed by the garbage collector under the same rule.
    """


@dataclass(frozen=True)
class ModelTimeouts:
    """HTTP timeouts in seconds. ``read_s`` bounds the wait for the first byte and the gap between stream chunks,
    so a stalled model fails fast enough to be retried inside the Lambda's budget (the SDK's default is 600 s)."""

    connect_s: float = 5
    read_s: float = 30
    write_s: float = 10
    pool_s: float = 5


class ModelClientOptions(TypedDict, total=False):
    retry: RetryPolicy
    sleep: Callable[[float], None]
    max_tool_rounds: int
    model_override: str | None
    recover_poll_interval_s: float
    recover_max_wait_s: float
    max_silence_s: float
    mcp_tools: McpTools | None
    provider: ModelProvider


#: An earlier message of the conversation, as the model is sent it.
HistoryMessage = tuple[Literal["user", "assistant"], str]
#: What ``stream_reply`` is sent of the conversation so far, oldest first: messages, and tool exchanges (each call
#: with its output) where they happened.
HistoryItem = HistoryMessage | ToolExchange


@dataclass(frozen=True)
class _Request:
    """What one round sends: its input items, and (``openai`` profile, tool rounds) the response it continues."""

    input: list[ResponseInputItemParam]
    previous_response_id: str | None = None
    #: Estimated tokens of the context the server already holds for ``previous_response_id`` (it counts them as
    #: input again): only used where the server reports no usage.
    carried_tokens: int = 0


class ModelClient:
    """Streams replies from the Responses API, given the conversation so far.

    Holds no per-reply state (each reply lives in its own generator), so one instance per process serves every
    reply; create it once per Lambda container, outside the handler.
    """

    def __init__(
        self,
        openai_client: openai.OpenAI,
        definition: AssistantDefinition,
        tools: ToolRegistry,
        *,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
        sleep: Callable[[float], None] = time.sleep,
        max_tool_rounds: int = 5,
        model_override: str | None = None,
        # Only for a provider with background responses but no stream resume: how to poll a dropped response.
        recover_poll_interval_s: float = 0.5,
        recover_max_wait_s: float = 20,
        max_silence_s: float = MAX_SILENCE_S,
        mcp_tools: McpTools | None = None,
        provider: ModelProvider = ModelProvider.OPENAI,
    ) -> None:
        if max_tool_rounds < 0:
            raise ValueError("max_tool_rounds must not be negative")
        check_for_provider(definition, provider)
        # Whoever built the client, this class owns the retry policy (see assistant.model_retry).
        self._client = openai_client.with_options(max_retries=0)
        self._definition = definition
        # MCP tools (if the definition declares servers) are listed per reply; see assistant.tools.toolbox.
        self._toolbox = Toolbox(tools, definition.tools, mcp_tools)
        self._retry = retry
        self._sleep = sleep
        self._max_tool_rounds = max_tool_rounds
        self._model = model_override or definition.model
        self._recover_poll_interval_s = recover_poll_interval_s
        self._recover_max_wait_s = recover_max_wait_s
        self._max_silence_s = max_silence_s
        self._provider = provider
        self._capabilities = provider.capabilities

    @classmethod
    def create(
        cls,
        *,
        api_key: str | Callable[[], str] | None,
        base_url: str | None,
        definition: AssistantDefinition,
        tools: ToolRegistry,
        timeouts: ModelTimeouts = ModelTimeouts(),
        sdk_provider: Callable[[str | None], object] | None = None,
        **options: Unpack[ModelClientOptions],
    ) -> ModelClient:
        """Build the SDK client with the SDK's retries off and Lambda-sized timeouts.

        ``sdk_provider`` builds one of the SDK's providers for ``base_url`` (Bedrock's:
        ``assistant.bedrock.BedrockSigning.sdk_provider``), called after the SDK is imported; the provider then
        authenticates every request itself (SigV4 from the function's role) and ``api_key`` must be ``None``.
        Without it, ``api_key`` may be a callable, which the SDK asks before every request."""
        from assistant.coldstart import collection_paused

        with collection_paused():  # the SDK's import, at a container's first message: as a handler imports
            import httpx2
            import openai

        timeout = httpx2.Timeout(
            connect=timeouts.connect_s, read=timeouts.read_s, write=timeouts.write_s, pool=timeouts.pool_s
        )
        if sdk_provider is not None:
            if api_key is not None:
                raise ValueError("a provider authenticates its own requests: pass no api_key with it")
            provider = cast("openai._provider._Provider", sdk_provider(base_url))
            client = openai.OpenAI(provider=provider, max_retries=0, timeout=timeout)
        else:
            client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)
        return cls(client, definition, tools, **options)

    @property
    def model(self) -> str:
        return self._model

    def history_budget_chars(self, text: str) -> int:
        """How many characters of earlier turns may go with ``text``: the definition's input budget, less the
        instructions and the message itself (tokens estimated at :data:`CHARS_PER_TOKEN`). Tool specs are not
        counted; where the provider supports it, ``truncation="auto"`` covers what the estimate misses."""
        budget = self._definition.input_budget_tokens * CHARS_PER_TOKEN
        return max(0, budget - len(self._definition.instructions) - len(text))

    @property
    def provider(self) -> ModelProvider:
        return self._provider

    @property
    def resumable(self) -> bool:
        """Whether a response outlives its stream (background mode): only then can a reply be handed back.
        Needs a provider with background mode, so never on a stateless server."""
        return self._definition.resumable and self._capabilities.background

    def cancel_response(self, response_id: str) -> bool:
        """Stop a running background response from outside the worker (a user's Stop while the model is silent:
        reasoning, or between tool rounds). Best effort, like the worker's own cancel; ``False`` if not possible."""
        if not self.resumable:
            return False  # a streamed response stops when its worker closes the stream, nothing to call
        return self._cancel_quietly(response_id) is not None

    # --- Replies ------------------------------------------------------------------------------------------------

    def stream_reply(
        self,
        *,
        text: str,
        context: ToolContext,
        history: Sequence[HistoryItem] = (),
        usage_sink: UsageSink | None = None,
    ) -> Generator[ModelEvent, None, None]:
        """Send the conversation so far (``history``, oldest first) and one user message, and stream the reply,
        running tool rounds until the model answers.

        A generator rather than a plain iterator so the caller can ``close()`` it: that closes the HTTP stream.
        ``usage_sink`` hears what every response of the reply cost as soon as it ends, however it ends.
        """
        sink = usage_sink or _ignore_usage
        first: list[ResponseInputItemParam] = []
        for past in history:
            if isinstance(past, ToolExchange):
                first.extend(_exchange_items(past))
            elif past[1]:
                first.append(_history_message(past[0], past[1]))
        first.append({"type": "message", "role": "user", "content": text})
        offered = self._toolbox.offer()
        request = _Request(first)
        result = yield from self._stream_round(request, offered, sink, allow_tools=True)
        yield from self._finish(request, context, result, offered, sink)

    def resume_reply(
        self,
        *,
        response_id: str,
        context: ToolContext,
        usage_sink: UsageSink | None = None,
    ) -> Generator[ModelEvent, None, None]:
        """Pick up a reply whose stream was lost (e.g. a redelivered message) without sending the user text again.

        Yields the response's text from its start (as it streams again, or in one :class:`TextDelta`); the caller
        knows from its checkpoint how much of it the user already has. If the response ended in tool calls, the tool
        loop continues from there.
        """
        if not self._capabilities.stored_responses:
            # Nothing is stored server-side: the dead worker's response is gone with its stream.
            logger.error("Cannot resume a reply on a stateless server", extra={"response_id": response_id})
            raise ReplyInterrupted(INTERRUPTED_MESSAGE)
        sink = usage_sink or _ignore_usage
        if self.resumable and self._capabilities.stream_resume:
            # A background response: re-stream it from its first event, live if it is still generating, so a
            # reasoning model's long silence is waited out instead of polled for a fixed time.
            progress = StreamProgress(response_id=response_id)
            try:
                result = yield from self._stopping_on_close(self._resume_stream(progress, sink), progress, sink)
            except ReplyInterrupted:
                report_usage(sink, progress.estimated_usage())
                raise
            yield from self._finish(_Request([]), context, result, self._toolbox.offer(), sink)
            return
        # Not a background response: the server stopped it when the dead worker's stream closed. Only one that had
        # already completed can be picked up, so look once instead of polling.
        max_wait_s = self._recover_max_wait_s if self.resumable else 0
        response = self._await_final(response_id, poll_interval_s=self._recover_poll_interval_s, max_wait_s=max_wait_s)
        yield ResponseStarted(response.id)
        text = final_text(response)
        if text:
            yield TextDelta(text)
        # Stored responses (the only kind that resumes): the next round continues it by id.
        yield from self._finish(
            _Request([]),
            context,
            round_of(response, StreamProgress(response_id=response.id)),
            self._toolbox.offer(),
            sink,
        )

    def _finish(
        self, request: _Request, context: ToolContext, result: Round, offered: OfferedTools, sink: UsageSink
    ) -> Generator[ModelEvent, None, None]:
        """Run tool rounds until a response without tool calls, then report the summed usage."""
        sink(result.usage())
        input_tokens, output_tokens = result.input_tokens, result.output_tokens
        rounds = 0
        while result.calls:
            if rounds >= self._max_tool_rounds:
                logger.error(
                    "Model kept calling tools", extra={"tool_rounds": rounds, "response_id": result.response_id}
                )
                raise ModelFailed("The assistant kept calling tools without answering.")
            rounds += 1
            outputs = yield from self._run_tools(result.calls, context, offered)
            request = self._next_request(request, result, outputs)
            # The last permitted round forbids tools, so a model that would loop has to answer in text instead.
            result = yield from self._stream_round(request, offered, sink, allow_tools=rounds < self._max_tool_rounds)
            sink(result.usage())
            input_tokens += result.input_tokens
            output_tokens += result.output_tokens
        yield ReplyCompleted(
            response_id=result.response_id, input_tokens=input_tokens, output_tokens=output_tokens, model=result.model
        )

    def _next_request(self, sent: _Request, result: Round, outputs: list[ResponseInputItemParam]) -> _Request:
        """The input of the round after a tool round: the tool results, and what they answer.

        A server with stored responses continues the response by id (which keeps its reasoning items too); a
        stateless one is sent everything again: the earlier input, the calls and their outputs, each call with its
        output (a server refuses a call without one).
        """
        if self._capabilities.stored_responses:
            return _Request(outputs, previous_response_id=result.response_id, carried_tokens=result.context_tokens)
        calls = [_call_item(call.call_id, call.name, call.arguments) for call in result.calls]
        return _Request([*sent.input, *calls, *outputs])

    def _run_tools(
        self, calls: tuple[ModelCall, ...], context: ToolContext, offered: OfferedTools
    ) -> Generator[ModelEvent, None, list[ResponseInputItemParam]]:
        outputs: list[ResponseInputItemParam] = []
        for call in calls:
            yield ToolEvent(call.name, "started")
            # Only what this reply offered runs; a failing MCP server is an error result here, never an exception.
            result = offered.invoke(call.name, call.arguments, context)
            yield ToolEvent(call.name, "done" if result.ok else "failed")
            yield ToolExchange(call.call_id, call.name, call.arguments, result.output)
            outputs.append(_output_item(call.call_id, result.output))
        return outputs

    def _stream_round(
        self,
        request: _Request,
        offered: OfferedTools,
        sink: UsageSink,
        *,
        allow_tools: bool,
    ) -> Generator[ModelEvent, None, Round]:
        """One model response, streamed. Retries while nothing of it was yielded; recovers by id afterwards."""
        import openai

        retry = restarts = 0
        while True:
            progress = StreamProgress()
            try:
                events = self._stream_events(request, offered, allow_tools, progress, sink)
                return (yield from self._stopping_on_close(events, progress, sink))
            except (openai.APIError, StreamBroken, StreamErrorEvent) as exc:
                failure = classify(exc)
                if failure is None:  # pragma: no cover - classify knows every type caught above
                    raise
                if not progress.visible:
                    if failure.retryable and retry + 1 < self._retry.max_attempts:
                        self._wait_before_retry(
                            "responses.create", retry, failure.kind, failure.status, failure.retry_after
                        )
                        retry += 1
                        continue
                    logger.error(
                        "Model request failed",
                        extra={
                            "kind": failure.kind,
                            "status": failure.status,
                            "code": failure.code,
                            "attempts": retry + 1,
                        },
                    )
                    raise failure.to_error() from exc
                if failure.kind == "error_event":
                    logger.error(
                        "Model stream reported an error",
                        extra={"code": failure.code, "response_id": progress.response_id},
                    )
                    report_usage(sink, progress.estimated_usage())
                    raise ModelFailed(FAILED_MESSAGE) from exc
                logger.warning(
                    "Model stream dropped after the response started",
                    extra={
                        "kind": failure.kind,
                        "response_id": progress.response_id,
                        "resumable": self.resumable,
                    },
                )
                if not self.resumable:
                    # The response died with its stream (a stateless server, or no background mode), and nothing
                    # of it is in a conversation: the conversation is ours. So the round is asked again from its
                    # start, and the caller told to discard what it showed of the dropped attempt.
                    report_usage(sink, progress.estimated_usage())  # what streamed was generated, and is billed
                    if restarts + 1 >= self._retry.max_attempts:
                        logger.error("Model stream kept dropping", extra={"attempts": restarts + 1})
                        raise ReplyInterrupted(INTERRUPTED_MESSAGE) from exc
                    restarts += 1
                    yield RoundRestarted()
                    self._wait_before_retry("responses.create", restarts - 1, failure.kind, failure.status, None)
                    continue
                try:
                    return (yield from self._recover(progress, sink, exc))
                except ReplyInterrupted:
                    # The response is gone or cannot be followed; what the user saw of it was still generated.
                    report_usage(sink, progress.estimated_usage())
                    raise

    def _stopping_on_close(
        self, events: Generator[ModelEvent, None, Round], progress: StreamProgress, sink: UsageSink
    ) -> Generator[ModelEvent, None, Round]:
        """Follow one response's events (a new stream or a resumed one); if the caller closes the reply meanwhile,
        stop the response as the close means (see :class:`StopReply`) and account for what it produced."""
        try:
            return (yield from events)
        except GeneratorExit as closing:
            # The caller stopped early. Every yield of a round comes before its terminal event, so a response that
            # has started is still running server-side; in background mode nothing but a cancel call stops it.
            if progress.response_id is None:
                raise
            if not self.resumable:
                # Closing the stream stopped the response; the provider reports nothing for it.
                _report_quietly(sink, progress.estimated_usage())
            elif _caller_stops(closing):
                cancelled = self._cancel_quietly(progress.response_id)
                if cancelled is not None and cancelled.usage is None:
                    # The cancel's answer may predate the count: read it back once the cancel has settled.
                    cancelled = self._retrieve_quietly(progress.response_id) or cancelled
                # What the provider counted for the cancelled response where it says, else the estimate.
                counted = usage_of(cancelled, progress) if cancelled is not None else progress.estimated_usage()
                _report_quietly(sink, counted)
            else:
                logger.info(
                    "Reply abandoned by a failing caller; its response runs on for a resume",
                    extra={"response_id": progress.response_id},
                )
            raise

    def _stream_events(
        self,
        request: _Request,
        offered: OfferedTools,
        allow_tools: bool,
        progress: StreamProgress,
        sink: UsageSink,
    ) -> Generator[ModelEvent, None, Round]:
        from openai import Stream
        from openai.types.responses import Response, ResponseStreamEvent

        body = self._request_body(request, offered, allow_tools)
        # What this request sends, estimated, in case the server reports no usage (assistant.token_estimates).
        progress.input_tokens_estimate = request.carried_tokens + request_tokens(
            body["instructions"], cast("list[dict[str, object]]", body["input"]), body.get("tools", ())
        )
        # Markers rather than a subsegment around the stream: the caller's own calls (checkpoints, posts) run
        # between the yields and would otherwise nest under the model request in X-Ray.
        requested_at = time.time()
        # `responses.create` would first walk the whole body with the SDK's `maybe_transform` (every input item
        # against the param TypedDicts: ~0.5 ms per history item on the way to the first token, 6 ms for ten).
        # For the body built here that walk changes nothing, as test_model_client checks against the installed SDK,
        # so the request goes out through the client's own `post`, as `create` sends it: same path, headers, auth,
        # timeout and typed stream of events.
        # `with` closes the HTTP response when the caller stops iterating (GeneratorExit). That stops a normal
        # response; a background one (resumable) keeps running until it is cancelled.
        with self._client.post(
            "/responses",
            body=body,
            cast_to=Response,
            stream=True,
            stream_cls=Stream[ResponseStreamEvent],
        ) as stream:
            return (yield from consume_stream(stream, progress, sink, requested_at))

    def _request_body(
        self, request: _Request, offered: OfferedTools, allow_tools: bool
    ) -> ResponseCreateParamsStreaming:
        """The ``POST /responses`` body of one round, as the wire takes it (only what is set is sent)."""
        definition = self._definition
        capabilities = self._capabilities
        body: ResponseCreateParamsStreaming = {
            "stream": True,
            "model": self._model,
            "instructions": definition.instructions,
            "input": request.input,
            "max_output_tokens": definition.max_output_tokens,
        }
        if self.resumable:
            body["background"] = True
        if request.previous_response_id:
            body["previous_response_id"] = request.previous_response_id
        # The specs have exactly the FunctionToolParam shape; the tools modules just don't import openai.
        tools: list[ToolParam] = offered.specs  # type: ignore[assignment]
        # The last permitted tool round forbids tools: with `tool_choice="none"` where the server honours it, else
        # by offering none (the earlier calls and their outputs stay in the input either way).
        if tools and (allow_tools or capabilities.tool_choice):
            body["tools"] = tools
            if not allow_tools:
                body["tool_choice"] = "none"
        if definition.temperature is not None:
            body["temperature"] = definition.temperature
        if definition.reasoning_effort and capabilities.reasoning:
            # The definition accepts only the SDK's own ReasoningEffort values (assistant.definition), hence the cast.
            body["reasoning"] = {"effort": cast("ReasoningEffort", definition.reasoning_effort)}
        if capabilities.truncation_auto:
            # Where the server can, it drops the oldest input itself should our own budget (assistant.context)
            # still overshoot the model's window, e.g. after a long tool exchange.
            body["truncation"] = "auto"
        if capabilities.stored_responses:
            # Background mode requires stored responses; recovery by id and previous_response_id need them in any
            # case. A stateless server is sent no `store` at all (some refuse `store=true`).
            body["store"] = True
        return body

    def _recover(
        self, progress: StreamProgress, sink: UsageSink, cause: Exception
    ) -> Generator[ModelEvent, None, Round]:
        """Finish a background response whose stream dropped after it became visible."""
        if progress.response_id is None:  # pragma: no cover - the caller recovers only visible rounds
            raise ReplyInterrupted(INTERRUPTED_MESSAGE) from cause
        if self._capabilities.stream_resume and (progress.sequence_number is not None or not progress.text):
            # Re-streamed after the last event seen; a server that numbers no events can only be re-streamed from
            # its start, which is safe only while nothing of it was shown.
            return (yield from self._stopping_on_close(self._resume_stream(progress, sink), progress, sink))
        # A provider that keeps background responses but cannot re-stream them: wait for the stored response.
        response = self._await_final(
            progress.response_id, poll_interval_s=self._recover_poll_interval_s, max_wait_s=self._recover_max_wait_s
        )
        seen = progress.shown_text
        full = final_text(response)
        if not full.startswith(seen):
            # The stored text should extend what streamed; if not, the caller's copy cannot be patched reliably.
            logger.error("Recovered response does not match the streamed text", extra={"response_id": response.id})
            raise ReplyInterrupted(INTERRUPTED_MESSAGE) from cause
        if len(full) > len(seen):
            progress.text.append(full[len(seen) :])
            yield TextDelta(full[len(seen) :])
        return round_of(response, progress)

    def _resume_stream(self, progress: StreamProgress, sink: UsageSink) -> Generator[ModelEvent, None, Round]:
        """Follow a background response by re-streaming its events after the last one seen
        (``responses.retrieve(id, stream=True, starting_after=N)``), again after every drop.

        A reasoning model may be silent for longer than the read timeout: a timeout resumes from the same place at
        once, for up to ``max_silence_s`` without any event. Other drops without progress are bounded by the retry
        policy's attempts, with its backoff between them.
        """
        import openai
        from openai import omit

        assert progress.response_id is not None
        response_id = progress.response_id
        fruitless = 0
        last_event_at = time.monotonic()
        while True:
            seen = progress.sequence_number
            try:
                with self._client.responses.retrieve(
                    response_id, stream=True, starting_after=seen if seen is not None else omit
                ) as stream:
                    return (yield from consume_stream(stream, progress, sink, time.time()))
            except StreamErrorEvent as exc:
                logger.error("Model stream reported an error", extra={"code": exc.code, "response_id": response_id})
                report_usage(sink, progress.estimated_usage())
                raise ModelFailed(FAILED_MESSAGE) from exc
            except (openai.APIError, StreamBroken) as exc:
                failure = classify(exc)
                if failure is None:  # pragma: no cover - classify knows every type caught above
                    raise
                advanced = _advanced(progress.sequence_number, seen)
                if advanced:
                    fruitless, last_event_at = 0, time.monotonic()
                if progress.sequence_number is None and progress.text:
                    # Unnumbered events cannot be resumed after the last one seen; from the start they would repeat.
                    logger.error(
                        "Cannot resume a stream whose events are not numbered", extra={"response_id": response_id}
                    )
                    raise ReplyInterrupted(INTERRUPTED_MESSAGE) from exc
                silent_for = time.monotonic() - last_event_at
                if failure.kind == "timeout" and silent_for < self._max_silence_s:
                    logger.info(
                        "Model silent past the read timeout; resuming its stream",
                        extra={"response_id": response_id, "silent_s": round(silent_for, 1)},
                    )
                    continue
                fruitless = 0 if advanced else fruitless + 1
                if not failure.retryable or failure.kind == "timeout" or fruitless >= self._retry.max_attempts:
                    logger.error(
                        "Could not resume the model stream",
                        extra={"response_id": response_id, "kind": failure.kind, "status": failure.status},
                    )
                    raise ReplyInterrupted(INTERRUPTED_MESSAGE) from exc
                logger.warning(
                    "Model stream dropped again; resuming",
                    extra={"response_id": response_id, "kind": failure.kind, "after": progress.sequence_number},
                )
                if fruitless:
                    self._wait_before_retry("responses.retrieve", fruitless - 1, failure.kind, failure.status, None)

    def _cancel_quietly(self, response_id: str) -> Response | None:
        """Best-effort ``responses.cancel`` of a background response whose reader has gone.

        One of the two places a model-call failure is logged rather than raised (with :meth:`_retrieve_quietly`): it
        runs while the caller unwinds its cancel (``close()``), where raising would replace whatever ended the reply
        with a less relevant error, and a response that stays uncancelled only runs to its end server-side. That
        costs tokens (and the conversation keeps the whole answer), not the correctness of anything the caller does
        next. No retries and a short timeout for the same reason: the caller is waiting.
        """
        return self._quietly(
            lambda: self._client.responses.cancel(response_id, timeout=CANCEL_TIMEOUT_S),
            response_id,
            "Could not cancel a background response; it will run to its end",
        )

    def _retrieve_quietly(self, response_id: str) -> Response | None:
        """Best-effort ``responses.retrieve`` while the caller unwinds a cancel (why quietly: :meth:`_cancel_quietly`):
        ``None`` if it failed, and the estimate counts instead."""
        return self._quietly(
            lambda: self._client.responses.retrieve(response_id, timeout=CANCEL_TIMEOUT_S),
            response_id,
            "Could not read back a cancelled response's usage; counting the estimate",
        )

    def _quietly(self, call: Callable[[], Response], response_id: str, failed: str) -> Response | None:
        import openai

        try:
            return call()
        except openai.APIError as exc:
            failure = classify(exc)
            logger.warning(
                failed,
                extra={
                    "response_id": response_id,
                    "kind": failure.kind if failure else type(exc).__name__,
                    "status": failure.status if failure else None,
                },
            )
            return None

    def _await_final(self, response_id: str, *, poll_interval_s: float, max_wait_s: float) -> Response:
        """Retrieve a response, polling while it is still generating. Anything but ``completed`` is an interruption.

        The wait is counted in poll intervals rather than wall time so an injected ``sleep`` keeps it deterministic.
        """
        waited = 0.0
        while True:
            try:
                response = self._call("responses.retrieve", lambda: self._client.responses.retrieve(response_id))
            except AssistantError as exc:
                raise ReplyInterrupted(INTERRUPTED_MESSAGE) from exc
            if response.status in ("queued", "in_progress"):
                if waited >= max_wait_s:
                    logger.error(
                        "Gave up waiting for a response", extra={"response_id": response_id, "waited_s": waited}
                    )
                    raise ReplyInterrupted(INTERRUPTED_MESSAGE)
                self._sleep(poll_interval_s)
                waited += poll_interval_s
                continue
            if response.status == "completed":
                return response
            logger.error("Response did not complete", extra={"response_id": response_id, "status": response.status})
            raise ReplyInterrupted(INTERRUPTED_MESSAGE)

    # --- Plumbing -----------------------------------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], _T], *, not_found: AssistantError | None = None) -> _T:
        """A non-streaming API call under the retry policy, with failures mapped to assistant errors."""
        import openai

        retry = 0
        while True:
            try:
                return call()
            except openai.APIError as exc:
                failure = classify(exc)
                if failure is None:  # pragma: no cover - every APIError classifies
                    raise
                if failure.retryable and retry + 1 < self._retry.max_attempts:
                    self._wait_before_retry(what, retry, failure.kind, failure.status, failure.retry_after)
                    retry += 1
                    continue
                logger.error(
                    "Model API call failed",
                    extra={"call": what, "kind": failure.kind, "status": failure.status, "attempts": retry + 1},
                )
                if failure.status == 404 and not_found is not None:
                    raise not_found from exc
                raise failure.to_error() from exc

    def _wait_before_retry(
        self, what: str, retry: int, kind: str, status: int | None, retry_after: float | None
    ) -> None:
        delay = self._retry.delay(retry, retry_after=retry_after)
        logger.warning(
            "Model call failed; retrying",
            extra={"call": what, "kind": kind, "status": status, "retry": retry + 1, "delay_s": round(delay, 3)},
        )
        self._sleep(delay)


def _history_message(role: Literal["user", "assistant"], text: str) -> ResponseInputItemParam:
    """An earlier message as input. The model's own earlier reply goes as ``output_text`` parts, the form the API
    gives it in a response's ``output`` (OpenAI refuses ``input_text`` in an assistant message): some servers
    keep an assistant message only in that form (open-responses-server 0.4.1 drops one whose content is a string,
    tests/thirdparty), and every server this project runs against takes it."""
    if role == "assistant":
        return cast("ResponseInputItemParam", {"type": "message", "role": "assistant", "content": [_output_text(text)]})
    return {"type": "message", "role": "user", "content": text}


def _output_text(text: str) -> dict[str, object]:
    return {"type": "output_text", "text": text, "annotations": []}


def _call_item(call_id: str, name: str, arguments: str) -> ResponseInputItemParam:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def _output_item(call_id: str, output: str) -> ResponseInputItemParam:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _exchange_items(exchange: ToolExchange) -> list[ResponseInputItemParam]:
    return [
        _call_item(exchange.call_id, exchange.name, exchange.arguments),
        _output_item(exchange.call_id, exchange.output),
    ]


def _ignore_usage(usage: ResponseUsage) -> None:
    """For callers that keep no account (scripts, tests of the model client alone)."""


def _report_quietly(sink: UsageSink, usage: ResponseUsage | None) -> None:
    """Report while the caller unwinds a close: a failing sink is logged, not raised over what ended the reply."""
    try:
        report_usage(sink, usage)
    except Exception:
        logger.exception("Could not record the usage of a stopped response", extra={"usage": usage})


def _advanced(now: int | None, before: int | None) -> bool:
    """Whether a stream got past the event it was resumed after (``None``: none seen, or none numbered)."""
    return now is not None and (before is None or now > before)


def _caller_stops(closing: GeneratorExit) -> bool:
    """Whether a close means "stop the reply" rather than "I failed" (see :class:`StopReply`)."""
    # Python chains the exception the caller was handling when it called close() (a `finally` during unwinding
    # counts) onto the GeneratorExit, which is how the generator can tell a stop from a failure.
    unwinding = closing.__context__
    return unwinding is None or isinstance(unwinding, StopReply) or not isinstance(unwinding, Exception)
