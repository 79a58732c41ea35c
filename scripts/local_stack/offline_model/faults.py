"""Pace and scripted faults of the offline model.

Tests steer the server with these: how fast it "types" and what goes wrong on the next calls. The fault plan is
shared between the test's thread and the server's event loop, so it is guarded by a lock rather than relying on the
loop. Every fault has a JSON form (``kind`` plus its fields) so a test can steer a server in another process.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


@dataclass(frozen=True)
class Pace:
    """How fast replies stream: a pause before the first token, then a steady rate; for a reasoning request
    (see :func:`.rules.is_reasoning_request`) first a silent pause while the model "thinks".

    ``0`` is the one way to say "no pause", for every field: ``tokens_per_s=0`` streams tokens back to back (an
    infinite rate, which JSON and a command line cannot spell). ``reasoning_s`` defaults to 0 so that a pace built
    for its first-token and rate pauses (tests, benchmarks) gets no others; :meth:`demo` adds the silence.
    """

    first_token_s: float = 0.3
    tokens_per_s: float = 40.0
    #: The silence between a reasoning item and the first text, as a gpt-5 model keeps before it answers.
    reasoning_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("first_token_s", "tokens_per_s", "reasoning_s"):
            value = getattr(self, name)
            if not (0 <= value < math.inf):
                raise ValueError(f"{name} must be a finite number >= 0 (0 for no pause), got {value}")

    @classmethod
    def demo(cls) -> Pace:
        """What ``make dev`` shows a person: a reasoning model's silence before its first word (a "thinking"
        state the page must survive), then text at a readable speed."""
        return cls(first_token_s=0.3, tokens_per_s=40.0, reasoning_s=1.5)

    @classmethod
    def instant(cls) -> Pace:
        """No pauses at all: what unit tests want."""
        return cls(first_token_s=0.0, tokens_per_s=0.0, reasoning_s=0.0)

    @property
    def token_interval_s(self) -> float:
        return 0.0 if self.tokens_per_s == 0 else 1.0 / self.tokens_per_s


class _Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatusFault(_Fault):
    """Answer with an HTTP error before anything streams (what the SDK retries: 408/409/429/5xx)."""

    kind: Literal["status"] = "status"
    code: int = Field(ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    message: str | None = None


class StallFault(_Fault):
    """Hold the response headers back; if the client gave up meanwhile, the request is dropped unprocessed."""

    kind: Literal["stall"] = "stall"
    seconds: float = Field(ge=0)


class CutFault(_Fault):
    """Close the connection after ``after_deltas`` deltas, as a network failure would. A background response
    still completes server-side; any other response is cancelled, since its client is gone."""

    kind: Literal["cut"] = "cut"
    after_deltas: int = Field(ge=0)


class ErrorEventFault(_Fault):
    """Stream an ``error`` event (after ``after_deltas`` deltas) and end the stream; the response is failed."""

    kind: Literal["error_event"] = "error_event"
    code: str = "server_error"
    message: str = "The offline model hit a scripted error."
    after_deltas: int = Field(default=0, ge=0)


#: ``ResponseError.code`` values the SDK's types allow for ``response.failed``.
FailedCode = Literal["server_error", "rate_limit_exceeded", "invalid_prompt", "vector_store_timeout"]


class FailedFault(_Fault):
    """End with ``response.failed`` (after ``after_deltas`` deltas)."""

    kind: Literal["failed"] = "failed"
    code: FailedCode = "server_error"
    message: str = "The offline model failed as scripted."
    after_deltas: int = Field(default=0, ge=0)


IncompleteReason = Literal["max_output_tokens", "content_filter"]


class IncompleteFault(_Fault):
    """End with ``response.incomplete`` (after ``after_deltas`` deltas), as a content filter would."""

    kind: Literal["incomplete"] = "incomplete"
    reason: IncompleteReason = "content_filter"
    after_deltas: int = Field(default=0, ge=0)


AnyFault = Annotated[
    StatusFault | StallFault | CutFault | ErrorEventFault | FailedFault | IncompleteFault,
    Field(discriminator="kind"),
]
#: Faults that change how a response ends (as opposed to how its HTTP exchange goes).
EndingFault = ErrorEventFault | FailedFault | IncompleteFault

_FAULT_LIST: TypeAdapter[list[AnyFault]] = TypeAdapter(list[AnyFault])


class Fault:
    """Constructors for the faults, so Python callers need not know the classes."""

    @staticmethod
    def status(code: int, retry_after: float | None = None, message: str | None = None) -> StatusFault:
        return StatusFault(code=code, retry_after=retry_after, message=message)

    @staticmethod
    def stall(seconds: float) -> StallFault:
        return StallFault(seconds=seconds)

    @staticmethod
    def cut_after_deltas(n: int) -> CutFault:
        return CutFault(after_deltas=n)

    @staticmethod
    def error_event(
        code: str = "server_error",
        message: str = "The offline model hit a scripted error.",
        after_deltas: int = 0,
    ) -> ErrorEventFault:
        return ErrorEventFault(code=code, message=message, after_deltas=after_deltas)

    @staticmethod
    def failed(
        code: FailedCode = "server_error",
        message: str = "The offline model failed as scripted.",
        after_deltas: int = 0,
    ) -> FailedFault:
        return FailedFault(code=code, message=message, after_deltas=after_deltas)

    @staticmethod
    def incomplete(reason: IncompleteReason = "content_filter", after_deltas: int = 0) -> IncompleteFault:
        return IncompleteFault(reason=reason, after_deltas=after_deltas)

    @staticmethod
    def parse_list(raw: Any) -> list[AnyFault]:
        """Faults from their JSON form, e.g. ``[{"kind": "status", "code": 429}]``."""
        return _FAULT_LIST.validate_python(raw)


class FaultPlan:
    """A FIFO of faults; each ``POST /v1/responses`` takes the next one (or none)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[AnyFault] = deque()

    def push(self, *faults: AnyFault) -> None:
        with self._lock:
            self._pending.extend(faults)

    def extend(self, faults: Iterable[AnyFault]) -> None:
        self.push(*faults)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pop(self) -> AnyFault | None:
        with self._lock:
            return self._pending.popleft() if self._pending else None

    def pending(self) -> list[AnyFault]:
        with self._lock:
            return list(self._pending)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


class PaceUpdate(BaseModel):
    """JSON body of ``POST /_control/pace``: the fields of :class:`Pace`, each ``0`` for no pause; a field left
    out keeps its current value."""

    model_config = ConfigDict(extra="forbid")

    # Not Optional: ``null`` once meant "no pause" here, and a silent "keep" would hide a stale client.
    first_token_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    tokens_per_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    reasoning_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    def apply_to(self, pace: Pace) -> Pace:
        return replace(pace, **{name: getattr(self, name) for name in self.model_fields_set})
