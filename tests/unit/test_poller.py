"""The poller feeds a FIFO queue on moto's server to a worker the way Lambda's event source mapping does."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsModel

from assistant.wiring import QUEUE, FunctionSpec
from scripts.local_stack.aws.moto_server import MotoServer, client
from scripts.local_stack.aws.resources import create_queues
from scripts.local_stack.event_source.sqs_poller import QueuePoller
from scripts.local_stack.lambda_runtime.invocation import Handler
from scripts.local_stack.lambda_runtime.threads import LambdaRuntime

#: Seconds before a failed record is received again; short so redelivery tests stay quick.
VISIBILITY_S = 1
#: Larger than the deployed batch size on purpose: partial batch responses only matter with several records.
BATCH_SIZE = 5


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = MotoServer()
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()


@dataclass
class Queues:
    sqs: Any
    url: str
    arn: str
    dlq_url: str

    def send(self, body: str, group: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=uuid.uuid4().hex
        )


@pytest.fixture
def queues(moto_endpoint: str) -> Queues:
    url, arn, dlq_url, _ = create_queues(moto_endpoint, f"t{uuid.uuid4().hex[:8]}", VISIBILITY_S)
    return Queues(client("sqs", moto_endpoint), url, arn, dlq_url)


@dataclass
class Delivery:
    body: str
    group: str
    receive_count: int
    batch: int


@dataclass
class FakeWorker:
    """Records what it receives; ``behaviour`` decides each batch's answer (the real worker's role)."""

    behaviour: Callable[[list[dict[str, Any]]], Any] = lambda records: {"batchItemFailures": []}
    deliveries: list[Delivery] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight_per_group: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    batches: int = 0

    def handler(self, event: dict[str, Any], context: Any) -> Any:
        parse(event=event, model=SqsModel)  # Lambda's SQS event shape, as the real worker parses it
        records = event["Records"]
        groups = {record["attributes"]["MessageGroupId"] for record in records}
        with self.lock:
            self.batches += 1
            batch = self.batches
            for record in records:
                self.deliveries.append(
                    Delivery(
                        record["body"],
                        record["attributes"]["MessageGroupId"],
                        int(record["attributes"]["ApproximateReceiveCount"]),
                        batch,
                    )
                )
            for group in groups:
                self.in_flight[group] = self.in_flight.get(group, 0) + 1
                self.max_in_flight_per_group = max(self.max_in_flight_per_group, self.in_flight[group])
        try:
            return self.behaviour(records)
        finally:
            with self.lock:
                for group in groups:
                    self.in_flight[group] -= 1

    def bodies(self) -> list[str]:
        with self.lock:
            return [delivery.body for delivery in self.deliveries]


@pytest.fixture
def worker() -> FakeWorker:
    return FakeWorker()


@pytest.fixture
async def poller(queues: Queues, worker: FakeWorker) -> AsyncIterator[QueuePoller]:
    """Not started: a test sends first when it needs records to arrive in one batch."""

    def resolve(function: FunctionSpec) -> Handler:
        assert function.name == "worker"
        return worker.handler

    runtime = LambdaRuntime(resolve)
    poller = QueuePoller(
        queues.sqs, queue_url=queues.url, queue_arn=queues.arn, invoker=runtime, concurrency=4, batch_size=BATCH_SIZE
    )
    try:
        yield poller
    finally:
        await poller.stop()
        await asyncio.to_thread(runtime.close)


async def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def _count(queues: Queues, url: str) -> int:
    attributes = queues.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


async def test_a_group_is_delivered_in_order_one_batch_at_a_time(
    queues: Queues, worker: FakeWorker, poller: QueuePoller
) -> None:
    def slow(records: list[dict[str, Any]]) -> dict[str, Any]:
        time.sleep(0.1)  # long enough that a second batch of the group would overlap if the queue allowed it
        return {"batchItemFailures": []}

    worker.behaviour = slow
    poller.start()
    sent = [f"a{i}" for i in range(12)]
    for body in sent:
        queues.send(body, "user-a")
    await _wait_for(lambda: len(worker.bodies()) == len(sent))
    assert worker.bodies() == sent
    assert worker.max_in_flight_per_group == 1
    assert max(sum(1 for d in worker.deliveries if d.batch == b) for b in range(1, worker.batches + 1)) <= BATCH_SIZE
    await _wait_for(lambda: _count(queues, queues.url) == 0)


async def test_reported_failures_return_to_the_queue_and_the_rest_is_deleted(
    queues: Queues, worker: FakeWorker, poller: QueuePoller
) -> None:
    def fail_b_once(records: list[dict[str, Any]]) -> dict[str, Any]:
        # What SqsFifoPartialProcessor answers when "b" fails: "b" and every later record of its group.
        bodies = [record["body"] for record in records]
        if "b" in bodies and records[bodies.index("b")]["attributes"]["ApproximateReceiveCount"] == "1":
            later = records[bodies.index("b") :]
            return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in later]}
        return {"batchItemFailures": []}

    worker.behaviour = fail_b_once
    for body in ("a", "b", "c"):
        queues.send(body, "user-a")
    poller.start()
    await _wait_for(lambda: len(worker.bodies()) == 5)
    deliveries = [(d.body, d.receive_count) for d in worker.deliveries]
    assert deliveries == [("a", 1), ("b", 1), ("c", 1), ("b", 2), ("c", 2)]
    await _wait_for(lambda: _count(queues, queues.url) == 0)
    await asyncio.sleep(VISIBILITY_S + 0.5)
    assert len(worker.bodies()) == 5, "a deleted record came back"


async def test_an_invalid_item_identifier_fails_the_whole_batch(
    queues: Queues, worker: FakeWorker, poller: QueuePoller
) -> None:
    answers = iter([{"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}])
    worker.behaviour = lambda records: next(answers, {"batchItemFailures": []})
    poller.start()
    queues.send("a", "user-a")
    await _wait_for(lambda: len(worker.bodies()) == 2)
    assert [(d.body, d.receive_count) for d in worker.deliveries] == [("a", 1), ("a", 2)]


async def test_a_record_that_keeps_failing_moves_to_the_dead_letter_queue(
    queues: Queues, worker: FakeWorker, poller: QueuePoller
) -> None:
    def always_raise(records: list[dict[str, Any]]) -> None:
        raise RuntimeError("the worker cannot process this")

    worker.behaviour = always_raise
    poller.start()
    queues.send("poison", "user-a")
    await _wait_for(lambda: _count(queues, queues.dlq_url) == 1, timeout=(QUEUE.max_receive_count + 2) * 2.0)
    assert [d.receive_count for d in worker.deliveries] == list(range(1, QUEUE.max_receive_count + 1))
    moved = queues.sqs.receive_message(QueueUrl=queues.dlq_url)["Messages"]
    assert [message["Body"] for message in moved] == ["poison"]
    assert _count(queues, queues.url) == 0


async def test_different_groups_are_processed_in_parallel(
    queues: Queues, worker: FakeWorker, poller: QueuePoller
) -> None:
    b_done = threading.Event()
    a_saw_b_finish: list[bool] = []

    def block_a_until_b(records: list[dict[str, Any]]) -> dict[str, Any]:
        group = records[0]["attributes"]["MessageGroupId"]
        if group == "user-a":
            # Serial processing would never get to "b" while this waits, so the wait would time out.
            a_saw_b_finish.append(b_done.wait(timeout=5))
        else:
            b_done.set()
        return {"batchItemFailures": []}

    worker.behaviour = block_a_until_b
    poller.start()
    queues.send("a", "user-a")
    await _wait_for(lambda: worker.bodies() == ["a"])
    queues.send("b", "user-b")
    await _wait_for(lambda: len(a_saw_b_finish) == 1)
    assert a_saw_b_finish == [True]


@pytest.fixture
async def lazy_poller(queues: Queues, worker: FakeWorker) -> AsyncIterator[QueuePoller]:
    """A poller whose idle pause is far longer than any wait below: what it delivers in time, it delivered because
    it was woken, as a long poll returns when a message arrives."""

    runtime = LambdaRuntime(lambda function: worker.handler)
    poller = QueuePoller(
        queues.sqs, queue_url=queues.url, queue_arn=queues.arn, invoker=runtime, concurrency=4, idle_pause_s=3600
    )
    try:
        yield poller
    finally:
        await poller.stop()
        await asyncio.to_thread(runtime.close)


async def test_a_message_sent_to_an_idle_queue_is_received_without_waiting_out_the_pause(
    queues: Queues, worker: FakeWorker, lazy_poller: QueuePoller
) -> None:
    lazy_poller.start()
    await asyncio.sleep(0.2)  # the first receive found nothing: the poller now sits in its (hour-long) pause
    queues.send("a", "user-a")
    await _wait_for(lambda: worker.bodies() == ["a"])
    await asyncio.sleep(0.2)
    queues.send("b", "user-b")  # and again, once idle again
    await _wait_for(lambda: worker.bodies() == ["a", "b"])


async def test_a_groups_next_message_is_received_when_the_one_before_it_is_deleted(
    queues: Queues, worker: FakeWorker, lazy_poller: QueuePoller
) -> None:
    """FIFO holds "a2" back while "a1" is in flight, so the receive that ran meanwhile came back empty; deleting
    "a1" must wake the poller, as a long poll would return "a2" then."""
    released = threading.Event()

    def hold_first(records: list[dict[str, Any]]) -> dict[str, Any]:
        if records[0]["body"] == "a1":
            released.wait(timeout=5)
        return {"batchItemFailures": []}

    worker.behaviour = hold_first
    lazy_poller.start()
    await asyncio.sleep(0.2)
    queues.send("a1", "user-a")
    await _wait_for(lambda: worker.bodies() == ["a1"])
    queues.send("a2", "user-a")  # wakes a receive that finds nothing: the group is in flight
    await asyncio.sleep(0.2)
    released.set()
    await _wait_for(lambda: worker.bodies() == ["a1", "a2"])


class _EmptyQueue:
    """An SQS client whose queue is always empty: the poller spends its time in the idle pause."""

    def __init__(self) -> None:
        self.receives = 0

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives += 1
        return {}


async def test_stop_returns_when_a_wake_up_and_the_stop_meet() -> None:
    """The last batch's delete wakes the idle pause; a stop in the same loop turn once lost its cancel there (3.11's
    ``wait_for`` returned instead of raising) and the receive loop, and so stop(), ran on until the test timed out."""
    sqs = _EmptyQueue()
    runtime = LambdaRuntime(lambda function: FakeWorker().handler)
    poller = QueuePoller(sqs, queue_url="q", queue_arn="arn", invoker=runtime, idle_pause_s=3600)
    try:
        for _ in range(20):
            poller.start()
            await _wait_for(lambda: sqs.receives > 0)
            await asyncio.sleep(0)  # into the pause
            poller._wake.set()  # what a delete does, in the same turn as the stop below
            stopping = asyncio.create_task(poller.stop())
            done, _ = await asyncio.wait({stopping}, timeout=5)
            assert done, "stop() did not return: the receive loop ran on"
            sqs.receives = 0
    finally:
        await asyncio.to_thread(runtime.close)
