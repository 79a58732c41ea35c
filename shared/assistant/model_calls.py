"""The Responses API calls of :mod:`assistant.model_response` that are not a stream: one call under the retry policy
(failures mapped to :mod:`assistant.errors` types), a best-effort cancel or read-back while the caller unwinds, and
waiting for a background response's final state.

``openai`` is imported inside functions only (see :mod:`assistant.model_response`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from aws_lambda_powertools import Logger

from assistant.errors import AssistantError, ReplyInterrupted
from assistant.model_retry import RetryPolicy, classify

if TYPE_CHECKING:
    import openai
    from openai.types.responses import Response

__all__ = ["CANCEL_TIMEOUT_S", "INTERRUPTED_MESSAGE", "ResponseCalls"]

#: A child of the functions' Powertools logger: its lines carry the invocation's correlation id and user.
logger = Logger(child=True)

_T = TypeVar("_T")

INTERRUPTED_MESSAGE = "The reply was interrupted and could not be completed."
#: Seconds a best-effort ``responses.cancel`` may take; it runs while the caller unwinds a cancel, so it is short.
CANCEL_TIMEOUT_S = 3.0


class ResponseCalls:
    """Calls of one provider's client by response id. Holds no per-response state."""

    def __init__(self, client: openai.OpenAI, *, retry: RetryPolicy, sleep: Callable[[float], None]) -> None:
        self._client = client
        self._retry = retry
        self._sleep = sleep

    def cancel_quietly(self, response_id: str) -> Response | None:
        """Best-effort ``responses.cancel`` of a background response whose reader has gone.

        One of the two places a model-call failure is logged rather than raised (with :meth:`retrieve_quietly`): it
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

    def retrieve_quietly(self, response_id: str) -> Response | None:
        """Best-effort ``responses.retrieve`` while the caller unwinds a cancel (why quietly: :meth:`cancel_quietly`):
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

    def await_final(self, response_id: str, *, poll_interval_s: float, max_wait_s: float) -> Response:
        """Retrieve a response, polling while it is still generating. Anything but ``completed`` is an interruption.

        The wait is counted in poll intervals rather than wall time so an injected ``sleep`` keeps it deterministic.
        """
        waited = 0.0
        while True:
            try:
                response = self.call("responses.retrieve", lambda: self._client.responses.retrieve(response_id))
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

    def call(self, what: str, call: Callable[[], _T], *, not_found: AssistantError | None = None) -> _T:
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
                    self.wait_before_retry(what, retry, failure.kind, failure.status, failure.retry_after)
                    retry += 1
                    continue
                logger.error(
                    "Model API call failed",
                    extra={"call": what, "kind": failure.kind, "status": failure.status, "attempts": retry + 1},
                )
                if failure.status == 404 and not_found is not None:
                    raise not_found from exc
                raise failure.to_error() from exc

    def wait_before_retry(
        self, what: str, retry: int, kind: str, status: int | None, retry_after: float | None
    ) -> None:
        delay = self._retry.delay(retry, retry_after=retry_after)
        logger.warning(
            "Model call failed; retrying",
            extra={"call": what, "kind": kind, "status": status, "retry": retry + 1, "delay_s": round(delay, 3)},
        )
        self._sleep(delay)
