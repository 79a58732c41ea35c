"""One model response's life: streamed, retried while nothing of it was shown, recovered or resumed after its
stream dropped, stopped (and counted) when the caller closes it.

What it guarantees :class:`assistant.model.ModelClient`, which runs the tool loop over it:

- No ``openai`` type escapes. Failures are :mod:`assistant.errors` types: ``ModelUnavailable`` (transient, after
  retries), ``ModelFailed``, ``ModelIncomplete`` and ``ReplyInterrupted``.
- A request is retried silently only while nothing of its response was yielded.
- A stream that drops after that is recovered as the provider allows: a background response is followed again by
  re-streaming its events after the last one seen (``starting_after``), or by polling where the provider cannot
  re-stream; any other response died with its stream, so the round is asked again from its start and the caller
  told with :class:`RoundRestarted` to discard what it showed of the dropped attempt (nothing of it is in any
  conversation: the conversation is ours).
- Closing the generator is how the caller stops a reply: it closes the HTTP stream and, for a background response,
  also cancels it (see :class:`StopReply` for when a close does not cancel), then counts what the response cost.

``openai`` is imported inside functions only: importing it costs most of a second, and the handlers that merely
import this module (for types) must not pay for it at cold start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, TypeVar, cast

from aws_lambda_powertools import Logger

from assistant.errors import ModelFailed, ReplyInterrupted
from assistant.model_calls import CANCEL_TIMEOUT_S, INTERRUPTED_MESSAGE, ResponseCalls
from assistant.model_events import ModelEvent, ResponseUsage, RoundRestarted, TextDelta, UsageSink
from assistant.model_retry import FAILED_MESSAGE, RetryPolicy, StreamBroken, StreamErrorEvent, classify
from assistant.response_stream import (
    Round,
    StreamProgress,
    consume_stream,
    final_text,
    report_usage,
    round_of,
    usage_of,
)
from assistant.token_estimates import request_tokens
from assistant.wiring import ProviderCapabilities

if TYPE_CHECKING:
    import openai
    from openai.types.responses.response_create_params import ResponseCreateParamsStreaming

__all__ = ["CANCEL_TIMEOUT_S", "INTERRUPTED_MESSAGE", "MAX_SILENCE_S", "ModelResponses", "StopReply"]

#: A child of the functions' Powertools logger: its lines carry the invocation's correlation id and user.
logger = Logger(child=True)

_T = TypeVar("_T")

#: How long a background response may stream nothing at all (a reasoning model thinking) before the reply is given
#: up as interrupted; well inside the worker's timeout, so a silence is never what ends a worker.
MAX_SILENCE_S = 120.0


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


class ModelResponses:
    """The responses of one provider, each followed through its life (see the module docstring). Holds no
    per-response state: each response lives in its own generator."""

    def __init__(
        self,
        client: openai.OpenAI,
        capabilities: ProviderCapabilities,
        *,
        resumable: bool,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        recover_poll_interval_s: float,
        recover_max_wait_s: float,
        max_silence_s: float,
    ) -> None:
        self._client = client
        self._capabilities = capabilities
        #: Responses run in background mode: they outlive their stream, and only a cancel stops them.
        self._resumable = resumable
        self._retry = retry
        self._sleep = sleep
        # Only for a provider with background responses but no stream resume: how to poll a dropped response.
        self._recover_poll_interval_s = recover_poll_interval_s
        self._recover_max_wait_s = recover_max_wait_s
        self._max_silence_s = max_silence_s
        #: The calls by response id that are not a stream (retrieve, cancel, wait for the final response).
        self.calls = ResponseCalls(client, retry=retry, sleep=sleep)

    def stream_round(
        self, body: ResponseCreateParamsStreaming, sink: UsageSink, *, carried_tokens: int = 0
    ) -> Generator[ModelEvent, None, Round]:
        """One model response, streamed. Retries while nothing of it was yielded; recovers by id afterwards."""
        import openai

        retry = restarts = 0
        while True:
            progress = StreamProgress()
            try:
                events = self._stream_events(body, carried_tokens, progress, sink)
                return (yield from self.stopping_on_close(events, progress, sink))
            except (openai.APIError, StreamBroken, StreamErrorEvent) as exc:
                failure = classify(exc)
                if failure is None:  # pragma: no cover - classify knows every type caught above
                    raise
                if not progress.visible:
                    if failure.retryable and retry + 1 < self._retry.max_attempts:
                        self.calls.wait_before_retry(
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
                        "resumable": self._resumable,
                    },
                )
                if not self._resumable:
                    # The response died with its stream (a stateless server, or no background mode), and nothing
                    # of it is in a conversation: the conversation is ours. So the round is asked again from its
                    # start, and the caller told to discard what it showed of the dropped attempt.
                    report_usage(sink, progress.estimated_usage())  # what streamed was generated, and is billed
                    if restarts + 1 >= self._retry.max_attempts:
                        logger.error("Model stream kept dropping", extra={"attempts": restarts + 1})
                        raise ReplyInterrupted(INTERRUPTED_MESSAGE) from exc
                    restarts += 1
                    yield RoundRestarted()
                    self.calls.wait_before_retry("responses.create", restarts - 1, failure.kind, failure.status, None)
                    continue
                try:
                    return (yield from self._recover(progress, sink, exc))
                except ReplyInterrupted:
                    # The response is gone or cannot be followed; what the user saw of it was still generated.
                    report_usage(sink, progress.estimated_usage())
                    raise

    def stopping_on_close(
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
            if not self._resumable:
                # Closing the stream stopped the response; the provider reports nothing for it.
                _report_quietly(sink, progress.estimated_usage())
            elif _caller_stops(closing):
                cancelled = self.calls.cancel_quietly(progress.response_id)
                if cancelled is not None and cancelled.usage is None:
                    # The cancel's answer may predate the count: read it back once the cancel has settled.
                    cancelled = self.calls.retrieve_quietly(progress.response_id) or cancelled
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
        body: ResponseCreateParamsStreaming,
        carried_tokens: int,
        progress: StreamProgress,
        sink: UsageSink,
    ) -> Generator[ModelEvent, None, Round]:
        from openai import Stream
        from openai.types.responses import Response, ResponseStreamEvent

        # What this request sends, estimated, in case the server reports no usage (assistant.token_estimates).
        progress.input_tokens_estimate = carried_tokens + request_tokens(
            body["instructions"], cast("list[dict[str, object]]", body["input"]), body.get("tools", ())
        )
        # Markers rather than a subsegment around the stream: the caller's own calls (checkpoints, posts) run
        # between the yields and would otherwise nest under the model request in X-Ray.
        requested_at = time.time()
        # `responses.create` would first walk the whole body with the SDK's `maybe_transform` (every input item
        # against the param TypedDicts), a cost on the way to the first token that grows with the history.
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

    def _recover(
        self, progress: StreamProgress, sink: UsageSink, cause: Exception
    ) -> Generator[ModelEvent, None, Round]:
        """Finish a background response whose stream dropped after it became visible."""
        if progress.response_id is None:  # pragma: no cover - the caller recovers only visible rounds
            raise ReplyInterrupted(INTERRUPTED_MESSAGE) from cause
        if self._capabilities.stream_resume and (progress.sequence_number is not None or not progress.text):
            # Re-streamed after the last event seen; a server that numbers no events can only be re-streamed from
            # its start, which is safe only while nothing of it was shown.
            return (yield from self.stopping_on_close(self.resume_stream(progress, sink), progress, sink))
        # A provider that keeps background responses but cannot re-stream them: wait for the stored response.
        response = self.calls.await_final(
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

    def resume_stream(self, progress: StreamProgress, sink: UsageSink) -> Generator[ModelEvent, None, Round]:
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
                    self.calls.wait_before_retry(
                        "responses.retrieve", fruitless - 1, failure.kind, failure.status, None
                    )


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
