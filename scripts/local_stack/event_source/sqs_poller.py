"""The SQS FIFO to Lambda event source mapping, for the local stack.

It receives batches of up to ``wiring.QUEUE.batch_size`` records, hands them to the worker as Lambda's SQS event,
and honours the partial batch response (``ReportBatchItemFailures``): only the records the worker did not report
are deleted; the reported ones, or the whole batch when the worker raises, become visible again after the
visibility timeout. moto itself keeps a group's later messages back while one of its messages is in flight, and
moves a message to the dead-letter queue once it has been received ``maxReceiveCount`` times (both checked by
tests/unit/test_poller.py), so order and redrive come from the queue, as in AWS.

Receiving is serialised (one ReceiveMessage at a time) while up to ``concurrency`` batches are processed at once,
like Lambda scaling FIFO consumers per active message group: moto's receive is not safe to run concurrently for
the same queue, and its long poll spins while another group is in flight, so this short-polls with a small pause
instead of long-polling.

Delivery is prompt, as in AWS: Lambda's event source mapping keeps long polls (``WaitTimeSeconds=20``) open on the
queue at all times, and SQS answers a waiting long poll as soon as a message arrives, so a message sent to an idle
queue is received at once, not at the next tick of a polling interval. The pause here is therefore cut short when
moto (in this process) takes a message for this queue (:func:`~scripts.local_stack.aws.moto_patches.on_sqs_message`),
and after this poller deletes a batch (the next record of that FIFO group is receivable from then on, and a long
poll would return it). The pause (:data:`IDLE_PAUSE_S`) remains for what AWS also delivers only when it becomes due:
a record whose visibility timeout ran out. Measured before the wake-up: a message waited 25 ms on average (up to the
then 50 ms pause) for the next receive, time that AWS does not add; this mirrors the long poll rather than
flattering it, since the receive itself (an HTTP round trip to moto) is still paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from assistant.wiring import QUEUE, WORKER, FunctionSpec
from scripts.local_stack.aws.moto_patches import on_sqs_message
from scripts.local_stack.event_source.sqs_event import failed_ids, sqs_record
from scripts.local_stack.lambda_runtime.invocation import Invoker

log = logging.getLogger("local_stack.poller")

#: The longest a receive waits after an empty one; a message arriving meanwhile, or a deleted batch, ends the wait at
#: once, so only a record whose visibility timeout ran out (whole seconds in SQS) waits for it. Each empty receive
#: costs moto ~5 ms of CPU in this process, which every handler and the model share: at 50 ms an idle queue took
#: ~10 % of a core, and the jitter showed on the way to the first text.
IDLE_PAUSE_S = 0.5


class QueuePoller:
    """Feeds a FIFO queue to a function, ``concurrency`` batches at a time."""

    def __init__(
        self,
        sqs: Any,
        *,
        queue_url: str,
        queue_arn: str,
        invoker: Invoker,
        function: FunctionSpec = WORKER,
        region: str = "us-east-1",
        batch_size: int = QUEUE.batch_size,
        concurrency: int = 10,
        idle_pause_s: float = IDLE_PAUSE_S,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._invoker = invoker
        self._function = function
        self._region = region
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._idle_pause_s = idle_pause_s
        self._receiver: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        #: Set when there may be something new to receive: the idle pause ends early.
        self._wake = asyncio.Event()
        self._stop_listening: Callable[[], None] | None = None
        #: Set by stop(): the receive loop ends at its next turn.
        self._stopping = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        queue_name = self._queue_url.rstrip("/").rsplit("/", 1)[-1]

        def arrived(name: str) -> None:  # on moto's request thread
            if name == queue_name and not loop.is_closed():
                loop.call_soon_threadsafe(self._wake.set)

        self._stop_listening = on_sqs_message(arrived)
        self._stopping = False
        self._receiver = asyncio.create_task(self._receive_loop(), name="sqs-poller")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop receiving, give running batches ``grace_s`` to finish, then cancel them (they stay on the queue)."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self._receiver is not None:
            # The flag, not the cancel alone, ends the loop: a cancel can be lost (see _pause) and the loop run on.
            self._stopping = True
            self._wake.set()
            self._receiver.cancel()
            await asyncio.wait({self._receiver})  # unlike awaiting it in suppress(CancelledError), keeps our own cancel
            self._receiver = None
        if self._batches:
            _, pending = await asyncio.wait(self._batches, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _receive_loop(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            # Cleared before the receive: a message that arrives during it wakes the pause after it.
            self._wake.clear()
            try:
                messages = await asyncio.to_thread(self._receive)
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except Exception:
                self._slots.release()
                log.exception("ReceiveMessage failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            if not messages:
                self._slots.release()
                await self._pause()
                continue
            if self._stopping:  # received as the poller stopped: left to reappear after the visibility timeout
                self._slots.release()
                return
            task = asyncio.create_task(self._process(messages))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _pause(self) -> None:
        """Wait until woken, or for the idle pause.

        ``asyncio.timeout``, not ``asyncio.wait_for``: Python 3.11's ``wait_for`` returns normally, swallowing the
        cancel, when the awaited event is set in the same loop turn as the task is cancelled, which is what stop()
        meets when the last batch's delete has just woken the pause (the loop ran on and the stop never returned).
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._idle_pause_s):
                await self._wake.wait()

    def _receive(self) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        return list(response.get("Messages", []))

    async def _process(self, messages: list[dict[str, Any]]) -> None:
        try:
            records = [sqs_record(message, queue_arn=self._queue_arn, region=self._region) for message in messages]
            event = {"Records": records}
            try:
                result = await self._invoker.invoke(self._function, event)
            except Exception:  # the runtime logged it; Lambda retries the whole batch after the visibility timeout
                log.warning("%s failed; %d record(s) return to the queue", self._function.name, len(messages))
                return
            failed = failed_ids(result, messages)
            done = [message for message in messages if message["MessageId"] not in failed]
            if done:
                await asyncio.to_thread(self._delete, done)
                self._wake.set()  # the group's next record, if any, can be received now
        finally:
            self._slots.release()

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        response = self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            log.error("DeleteMessageBatch failed for a record: %s", failure)
