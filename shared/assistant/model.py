"""The model client: the conversation so far and one user message in, a stream of :data:`ModelEvent` out, tool
rounds and failures handled.

The conversation is ours (:mod:`assistant.stores.turns`): every request carries the earlier turns as input items and
never a provider-side ``conversation``, so any server of the Responses API works. The provider's capabilities
(:class:`assistant.wiring.ProviderCapabilities`, one declaration per profile) say what else the server can do:
``openai`` (and ``bedrock-mantle``) store responses, run them in background mode for a resumable definition and
continue tool rounds with ``previous_response_id``; ``openai-compatible`` (vLLM, Ollama, LM Studio, llama.cpp) and
``bedrock`` (bedrock-runtime) are stateless: no ``store``, no ``background``, each tool round re-sends the input.

The module holds the reply: the first round, the tool loop and what the caller is told. One response's life
(streamed, retried, recovered or resumed, stopped and counted) is :mod:`assistant.model_response`; what a round
sends, :mod:`assistant.model_wire`; how a server's events become text, calls and usage,
:mod:`assistant.response_stream`.

Resumable definitions (``AssistantDefinition.resumable``, the default) create every response with
``background=True`` where the provider has it: the model then keeps generating when the stream drops or the worker
dies, which is what lets a redelivered message resume the very same response; a normal streamed response is
terminated by the server as soon as its connection closes. The flip side is that closing the stream no longer stops
a background response, so an early close calls ``responses.cancel``. Without background mode ``resume_reply`` only
picks up a response that had already completed.

``openai`` is imported inside :meth:`ModelClient.create` only: importing it costs most of a second, and the
handlers that merely import this module (for types) must not pay for it at cold start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, Unpack, cast

from aws_lambda_powertools import Logger

from assistant.definition import AssistantDefinition, check_for_provider
from assistant.errors import ModelFailed, ReplyInterrupted
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
from assistant.model_response import INTERRUPTED_MESSAGE, MAX_SILENCE_S, ModelResponses, StopReply
from assistant.model_retry import RetryPolicy
from assistant.model_wire import (
    FilePart,
    HistoryItem,
    Request,
    first_request,
    next_request,
    output_item,
    request_body,
)
from assistant.response_stream import ModelCall, Round, StreamProgress, final_text, report_usage, round_of
from assistant.token_estimates import CHARS_PER_TOKEN
from assistant.tools.registry import ToolContext, ToolRegistry
from assistant.tools.toolbox import OfferedTools, Toolbox
from assistant.wiring import ModelProvider

if TYPE_CHECKING:
    import openai
    from openai.types.responses import ResponseInputItemParam

    from assistant.tools.mcp_tools import McpTools

__all__ = [
    "HistoryItem",
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
        self._max_tool_rounds = max_tool_rounds
        self._model = model_override or definition.model
        self._recover_poll_interval_s = recover_poll_interval_s
        self._recover_max_wait_s = recover_max_wait_s
        self._capabilities = provider.capabilities
        self._responses = ModelResponses(
            self._client,
            self._capabilities,
            resumable=self.resumable,
            retry=retry,
            sleep=sleep,
            recover_poll_interval_s=recover_poll_interval_s,
            recover_max_wait_s=recover_max_wait_s,
            max_silence_s=max_silence_s,
        )

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
    def resumable(self) -> bool:
        """Whether a response outlives its stream (background mode): only then can a reply be handed back.
        Needs a provider with background mode, so never on a stateless server."""
        return self._definition.resumable and self._capabilities.background

    def cancel_response(self, response_id: str) -> bool:
        """Stop a running background response from outside the worker (a user's Stop while the model is silent:
        reasoning, or between tool rounds). Best effort, like the worker's own cancel; ``False`` if not possible."""
        if not self.resumable:
            return False  # a streamed response stops when its worker closes the stream, nothing to call
        return self._responses.calls.cancel_quietly(response_id) is not None

    # --- Replies ------------------------------------------------------------------------------------------------

    def stream_reply(
        self,
        *,
        text: str,
        context: ToolContext,
        history: Sequence[HistoryItem] = (),
        files: Sequence[FilePart] = (),
        usage_sink: UsageSink | None = None,
    ) -> Generator[ModelEvent, None, None]:
        """Send the conversation so far (``history``, oldest first) and one user message (with ``files``: its
        attachments' ``input_image`` / ``input_file`` parts), and stream the reply, running tool rounds until the
        model answers.

        A generator rather than a plain iterator so the caller can ``close()`` it: that closes the HTTP stream.
        ``usage_sink`` hears what every response of the reply cost as soon as it ends, however it ends.
        """
        sink = usage_sink or _ignore_usage
        offered = self._toolbox.offer()
        request = first_request(history, text, files)
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
                responses = self._responses
                result = yield from responses.stopping_on_close(responses.resume_stream(progress, sink), progress, sink)
            except ReplyInterrupted:
                report_usage(sink, progress.estimated_usage())
                raise
            yield from self._finish(Request([]), context, result, self._toolbox.offer(), sink)
            return
        # Not a background response: the server stopped it when the dead worker's stream closed. Only one that had
        # already completed can be picked up, so look once instead of polling.
        max_wait_s = self._recover_max_wait_s if self.resumable else 0
        response = self._responses.calls.await_final(
            response_id, poll_interval_s=self._recover_poll_interval_s, max_wait_s=max_wait_s
        )
        yield ResponseStarted(response.id, response.model or None)
        text = final_text(response)
        if text:
            yield TextDelta(text)
        # Stored responses (the only kind that resumes): the next round continues it by id.
        yield from self._finish(
            Request([]),
            context,
            round_of(response, StreamProgress(response_id=response.id)),
            self._toolbox.offer(),
            sink,
        )

    def _finish(
        self, request: Request, context: ToolContext, result: Round, offered: OfferedTools, sink: UsageSink
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
            request = next_request(request, result, outputs, stored_responses=self._capabilities.stored_responses)
            # The last permitted round forbids tools, so a model that would loop has to answer in text instead.
            result = yield from self._stream_round(request, offered, sink, allow_tools=rounds < self._max_tool_rounds)
            sink(result.usage())
            input_tokens += result.input_tokens
            output_tokens += result.output_tokens
        yield ReplyCompleted(
            response_id=result.response_id, input_tokens=input_tokens, output_tokens=output_tokens, model=result.model
        )

    def _stream_round(
        self, request: Request, offered: OfferedTools, sink: UsageSink, *, allow_tools: bool
    ) -> Generator[ModelEvent, None, Round]:
        """One model response for ``request``, streamed (:meth:`ModelResponses.stream_round`)."""
        body = request_body(
            request,
            offered,
            allow_tools=allow_tools,
            definition=self._definition,
            model=self._model,
            capabilities=self._capabilities,
            background=self.resumable,
        )
        return (yield from self._responses.stream_round(body, sink, carried_tokens=request.carried_tokens))

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
            outputs.append(output_item(call.call_id, result.output))
        return outputs


def _ignore_usage(usage: ResponseUsage) -> None:
    """For callers that keep no account (scripts, tests of the model client alone)."""
