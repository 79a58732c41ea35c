"""Which model-call failures are worth retrying, how long to wait, and what each becomes for the caller.

The SDK's own retries are turned off (``max_retries=0``): they cannot tell a request that never started from a
streamed response that already joined the conversation, and they wait far longer than a Lambda can. ``openai`` is
imported inside functions only; by the time an exception needs classifying, the SDK is loaded anyway.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from assistant.errors import AssistantError, ModelFailed, ModelUnavailable

#: Stream ``error`` codes that describe a passing condition rather than a bad request.
TRANSIENT_ERROR_CODES: Final = frozenset(
    {"server_error", "internal_error", "rate_limit_exceeded", "server_is_overloaded", "slow_down", "timeout"}
)

UNAVAILABLE_MESSAGE: Final = "The assistant is not reachable right now. Please try again in a moment."
FAILED_MESSAGE: Final = "The assistant could not produce a reply."


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``n`` waits a uniform time in ``[0, min(max, base * 2**n)]``.

    ``max_attempts`` counts the first try. A server's ``Retry-After`` replaces the jittered delay, capped at
    ``max_delay_s`` so one header cannot eat a Lambda's whole budget.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("delays must not be negative")

    def delay(self, retry: int, *, retry_after: float | None = None, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        return rng() * min(self.max_delay_s, self.base_delay_s * 2**retry)


@dataclass(frozen=True)
class Failure:
    """A classified failure. ``kind`` and ``status`` are for logs and metrics; they never carry message text."""

    kind: str
    retryable: bool
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None

    def to_error(self) -> AssistantError:
        if self.retryable or self.kind == "quota":
            return ModelUnavailable(UNAVAILABLE_MESSAGE)
        return ModelFailed(FAILED_MESSAGE)


class StreamBroken(Exception):
    """The stream ended without a terminal event (no ``response.completed``/``failed``/``incomplete``)."""


class StreamErrorEvent(Exception):
    """The stream carried an ``error`` event."""

    def __init__(self, code: str | None) -> None:
        super().__init__(f"error event (code={code})")
        self.code = code


def classify(exc: BaseException) -> Failure | None:
    """Classify an SDK or stream failure; ``None`` for anything else (a bug, which must propagate as it is)."""
    import openai

    if isinstance(exc, StreamBroken):
        return Failure(kind="stream_broken", retryable=True)
    if isinstance(exc, StreamErrorEvent):
        return Failure(
            kind="error_event", retryable=exc.code is None or exc.code in TRANSIENT_ERROR_CODES, code=exc.code
        )
    if isinstance(exc, openai.APITimeoutError):
        return Failure(kind="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return Failure(kind="connection", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429 and exc.code == "insufficient_quota":
            # Billing, not load: waiting a few seconds will not help.
            return Failure(kind="quota", retryable=False, status=status, code=exc.code)
        retryable = status in (408, 409, 429) or status >= 500
        return Failure(
            kind="server" if status >= 500 else ("rate_limited" if status == 429 else "client"),
            retryable=retryable,
            status=status,
            code=exc.code,
            retry_after=retry_after_seconds(exc.response.headers) if retryable else None,
        )
    if isinstance(exc, openai.APIError):
        # The SDK raises a bare APIError for a stream chunk that carries an `error` object.
        return Failure(
            kind="error_event", retryable=exc.code is None or exc.code in TRANSIENT_ERROR_CODES, code=exc.code
        )
    return None


def retry_after_seconds(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """The server's requested wait: ``retry-after-ms`` (OpenAI's), else ``Retry-After`` in seconds or as a date."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now(), 0.0)
