"""A measurement hook: what the worker itself counted for each reply, and how long it took, recorded in-process.

The benchmark's stack runs the handlers in this process (thread isolation), so while :func:`recording_worker_replies`
is active, every delivery the worker answers goes through a wrapper around ``ReplyService.handle`` that keeps the
:class:`~assistant.reply.DeliveryReport` it returned (delta frames posted and checkpoint writes, the numbers the worker
also emits as metrics) and the wall time of the call, keyed by message id. Nothing in the stack knows about it; the
original method is put back when the block ends.

The wall time of ``handle`` is the worker's invocation less Powertools' batch wrapper around it (a few
milliseconds): from the claim to the finishing write, most of it waiting for the model's tokens.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant.queue import QueuedMessage
from assistant.reply import DeliveryReport, ReplyService
from scripts.bench import prices
from scripts.bench.markdown import percent, table_with_arithmetic, times, usd
from scripts.bench.stats import ratio

if TYPE_CHECKING:
    from scripts.bench.report import Results
    from scripts.bench.streaming_cost import StreamingTally
    from scripts.local_stack.offline_model import Pace


@dataclass(frozen=True)
class WorkerReply:
    """One message as the worker answered it, summed over its deliveries (one, unless SQS redelivered it)."""

    message_id: str
    deliveries: int
    #: ``delta`` (and ``reset``) frames the worker posted, per tab: ``DeliveryReport.frames``.
    frames: int
    checkpoint_writes: int
    output_tokens: int
    #: Wall time of ``ReplyService.handle``, summed over the deliveries.
    duration_s: float
    #: ``DeliveryResult`` of the last delivery (``raised`` if it raised, as a handed-back reply does).
    result: str


@dataclass(frozen=True)
class _Delivery:
    message_id: str
    outcome: DeliveryReport | None
    duration_s: float


class WorkerReplyLog:
    """The deliveries recorded so far; written from the worker's threads, read from the benchmark's."""

    def __init__(self) -> None:
        self._deliveries: list[_Delivery] = []
        self._changed = threading.Condition()

    def add(self, delivery: _Delivery) -> None:
        with self._changed:
            self._deliveries.append(delivery)
            self._changed.notify_all()

    def wait_for(self, message_ids: Iterable[str], timeout_s: float) -> bool:
        """Whether every one of ``message_ids`` has a delivery that returned, within ``timeout_s``.

        The worker posts ``done`` before its finishing write, so a client can see the end of a reply slightly
        before ``handle`` returns: wait for that before reading the log.
        """
        wanted = set(message_ids)
        with self._changed:
            return self._changed.wait_for(lambda: wanted <= self._answered(), timeout=timeout_s)

    def _answered(self) -> set[str]:
        return {d.message_id for d in self._deliveries if d.outcome is not None}

    def replies(self, message_ids: Iterable[str]) -> list[WorkerReply]:
        """``message_ids``' replies, in that order; a message the worker never answered is an error."""
        with self._changed:
            deliveries = list(self._deliveries)
        replies = []
        for message_id in message_ids:
            mine = [d for d in deliveries if d.message_id == message_id]
            if not mine:
                raise LookupError(f"the worker never answered {message_id}")
            outcomes = [d.outcome for d in mine if d.outcome is not None]
            last = mine[-1].outcome
            replies.append(
                WorkerReply(
                    message_id=message_id,
                    deliveries=len(mine),
                    frames=sum(o.frames for o in outcomes),
                    checkpoint_writes=sum(o.checkpoint_writes for o in outcomes),
                    output_tokens=sum(o.output_tokens for o in outcomes),
                    duration_s=sum(d.duration_s for d in mine),
                    result="raised" if last is None else last.result.value,
                )
            )
        return replies


@contextmanager
def recording_worker_replies() -> Iterator[WorkerReplyLog]:
    """Record every ``ReplyService.handle`` call in this process until the block ends (measurement only)."""
    log = WorkerReplyLog()
    original = ReplyService.handle

    @functools.wraps(original)
    def timed_handle(self: ReplyService, queued: QueuedMessage, *args: Any, **kwargs: Any) -> DeliveryReport:
        started = time.perf_counter()
        outcome: DeliveryReport | None = None
        try:
            outcome = original(self, queued, *args, **kwargs)
            return outcome
        finally:
            log.add(_Delivery(queued.message_id, outcome, time.perf_counter() - started))

    ReplyService.handle = timed_handle  # type: ignore[method-assign]
    try:
        yield log
    finally:
        ReplyService.handle = original  # type: ignore[method-assign]


def worker_duration_rows(results: Results, tallies: list[tuple[str, StreamingTally]]) -> list[str]:
    gb = results.worker_memory_mb / 1024
    rows = []
    arithmetic = []
    width = max(len(label) for label, _ in tallies) + 1
    for label, tally in tallies:
        duration = tally.worker_duration(results.worker_memory_mb)
        rows.append(
            [
                label,
                f"{tally.worker_s:,.1f} s",
                times(ratio(tally.worker_s, tally.reply_s)),
                f"{duration.gb_s_per_1000:,.2f}",
                usd(duration.usd),
                percent(duration.percent_of_model),
            ]
        )
        arithmetic.append(
            f"{label + ':':<{width}} {tally.worker_s:,.1f} s * {gb:g} GB / {tally.output_tokens:,} tokens * 1000 = "
            f"{duration.gb_s_per_1000:,.2f} GB-s * ${prices.LAMBDA_ARM64_GB_SECOND_USD:.10f} = {usd(duration.usd)} "
            f"/ {usd(prices.model_output_usd())} = {percent(duration.percent_of_model)}"
        )
    headers = [
        "worker",
        "invocation time",
        "÷ sendMessage → done",
        "GB-s / 1000 tokens",
        "$ / 1000 tokens",
        f"÷ {prices.MODEL_NAME} output",
    ]
    pace = results.pace
    return [
        f"**The worker's duration beside it.** Lambda bills the worker's whole invocation at its configured memory "
        f"(`WORKER.memory_mb` = {results.worker_memory_mb} MB), at "
        f"${prices.LAMBDA_ARM64_GB_SECOND_USD:.10f} per GB-second (arm64). Invocation time is the wall time of "
        "`ReplyService.handle` for each reply, measured in this process. The worker mostly waits on the model: its "
        "time is about the reply's streaming time (the `÷ sendMessage → done` column), so this row follows the "
        f"model's speed, not our code{_model_typing_time(pace)}.",
        *table_with_arithmetic(headers, rows, arithmetic),
    ]


def _model_typing_time(pace: Pace) -> str:
    if pace.tokens_per_s <= 0:
        return ""
    return (
        f": at this run's pace (first token after {pace.first_token_s:g} s, then {pace.tokens_per_s:g} tokens/s) "
        f"{prices.TOKENS_PER_QUOTE:,} tokens alone take {prices.TOKENS_PER_QUOTE / pace.tokens_per_s:g} s"
    )
