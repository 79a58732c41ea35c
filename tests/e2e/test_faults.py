"""What a user sees when things break: the offline model's scripted faults, a dying worker, gone connections.

The stack's queue has a 3 s visibility timeout, so SQS redeliveries happen within seconds. Faults are a FIFO shared by
every model request, so each test starts with an empty plan and clears what it left.

These tests reach into the handlers' process (they reset the handlers' dependencies, patch the worker's reply
service and write connection records through it), so this module's stack runs in thread isolation; the chat-flow
modules cover process isolation, where each function has only its own environment.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import worker

from assistant.push import Broadcaster
from scripts.local_stack.aws.moto_server import client
from scripts.local_stack.offline_model import Fault, Pace
from scripts.local_stack.stack import LocalStack
from tests.e2e.conftest import (
    E2EUser,
    e2e_settings,
    history,
    model_pace,
    new_user,
    of_message,
    open_socket,
    receive_until,
    receive_until_final,
    reply_text,
    responses_posted,
    running_stack,
    send_message,
    sign_in,
    stack_info,
    wait_for_history,
    wait_for_status,
)
from tests.handlers import reset_handlers, use_dependencies
from tests.replies import replaced

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The e2e stack in thread isolation: the handlers run in this process, where these tests inject faults."""
    with running_stack(e2e_settings(log_dir=tmp_path_factory.mktemp("lambda-logs"), isolation="thread")) as stack:
        yield stack


@pytest.fixture(autouse=True)
def clean_fault_plan(local_stack: LocalStack) -> Iterator[None]:
    assert local_stack.offline_model is not None
    faults = local_stack.offline_model.state.faults
    assert len(faults) == 0, "a previous test left faults behind"
    yield
    faults.clear()


def _model_state(stack: LocalStack) -> Any:
    assert stack.offline_model is not None
    return stack.offline_model.state


def _errors(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == "error"]


async def test_a_rate_limited_model_is_retried_and_the_user_never_notices(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "ratelimited")
    text = "Please answer despite the rate limit"
    _model_state(local_stack).faults.push(Fault.status(429))
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, text)
        frames = await receive_until(ws, "done", message_id=accepted["messageId"])

    assert _errors(frames) == []
    assert reply_text(frames, accepted["messageId"]).startswith(f'You said: "{text}"')
    assert len(_model_state(local_stack).faults) == 0, "the 429 was served"
    assert len(responses_posted(local_stack, text)) == 2, "one 429, one retry that streamed"


async def test_a_model_failing_until_retries_run_out_ends_in_an_error_and_the_dead_letter_queue(
    local_stack: LocalStack,
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "unavailable")
    text = "Is the model down?"
    faults = _model_state(local_stack).faults
    # More than 3 deliveries x 4 attempts could consume, so no attempt can succeed by running out of faults.
    scripted = 20
    faults.push(*[Fault.status(500)] * scripted)
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, text)
        message_id = accepted["messageId"]
        # Three deliveries, 3 s of visibility timeout apart, each retrying the model with backoff.
        frames = await receive_until_final(ws, message_id, timeout=40)

    assert frames[-1] == {
        "type": "error",
        "messageId": message_id,
        "code": "model_unavailable",
        "message": frames[-1]["message"],
    }
    assert "try again" in frames[-1]["message"].lower()
    assert [frame["type"] for frame in frames] == ["error"], "retries are silent; no partial reply was shown"
    assert await wait_for_status(local_stack, user.user_id, message_id) == "failed"

    dead = await _wait_for_dead_letter(local_stack, message_id, timeout=20)
    assert dead["userId"] == user.user_id
    assert dead["conversationId"] == accepted["conversationId"]
    posted = len(responses_posted(local_stack, text))
    assert posted >= 3, "every delivery asked the model (and retried)"
    assert posted == scripted - len(faults), "every request for it failed with a scripted 500"


async def _wait_for_dead_letter(stack: LocalStack, message_id: str, *, timeout: float) -> dict[str, Any]:
    """The queued body of ``message_id`` once moto has moved it to the dead-letter queue (on the next receive)."""
    assert stack.resources is not None
    sqs = client("sqs", stack.resources.endpoint)
    dlq_url = stack.resources.dlq_url
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        answer = await asyncio.to_thread(
            sqs.receive_message, QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
        )
        for message in answer.get("Messages", []):
            body = json.loads(message["Body"])
            if body["messageId"] == message_id:
                return dict(body)
        await asyncio.sleep(0.25)
    raise AssertionError(f"message {message_id} never reached the dead-letter queue")


async def test_a_stream_that_drops_mid_reply_is_recovered_and_shown_exactly_once(local_stack: LocalStack) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "dropped")
    text = "Keep talking even if the line drops"
    _model_state(local_stack).faults.push(Fault.cut_after_deltas(6))
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, text)
        message_id = accepted["messageId"]
        frames = await receive_until(ws, "done", message_id=message_id)
        turns = await history(ws, accepted["conversationId"])

    deltas = [frame for frame in frames if frame["type"] == "delta"]
    assert [frame["seq"] for frame in deltas] == list(range(len(deltas))), "each seq once, in order"
    assert [frame["type"] for frame in frames].count("done") == 1
    assert _errors(frames) == []
    shown = reply_text(frames, message_id)
    assert turns == [("user", text), ("assistant", shown)]
    assert shown.startswith(f'You said: "{text}"')
    # Recovered by fetching the response, not by asking again (which would put a second turn in the conversation).
    assert len(responses_posted(local_stack, text)) == 1
    assert any(r.method == "GET" and r.path.startswith("/v1/responses/") for r in _model_state(local_stack).requests)


# The stack builds the model client with ModelTimeouts() (read_s=30) and offers no setting to shorten it. The name
# below is the setting this test proposes; with it wired, a stall longer than the read timeout must end in an error.
PROPOSED_READ_TIMEOUT_ENV = "MODEL_READ_TIMEOUT_MS"


async def test_a_model_that_never_sends_a_byte_ends_in_an_error_frame(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "stalled")
    monkeypatch.setenv(PROPOSED_READ_TIMEOUT_ENV, "500")
    reset_handlers()
    # Every attempt of every delivery stalls 1.5 s, three times the proposed read timeout.
    _model_state(local_stack).faults.push(*[Fault.stall(1.5)] * 20)
    message_id = None
    try:
        async with open_socket(info, user.token) as ws:
            accepted = await send_message(ws, "Hello? Anyone?")
            message_id = accepted["messageId"]
            frames = await receive_until_final(ws, message_id, timeout=40)
    finally:
        _model_state(local_stack).faults.clear()
        if message_id is not None:
            await wait_for_status(local_stack, user.user_id, message_id)
        monkeypatch.delenv(PROPOSED_READ_TIMEOUT_ENV)
        reset_handlers()
    assert frames[-1]["type"] == "error", "a stalled model must not end in a reply"
    assert frames[-1]["code"] == "model_unavailable"


class _DiesOnce:
    """A management API client whose worker dies (once) after posting ``posts_before_death`` frames.

    It dies the way a Lambda that is killed or frozen does: it stops, acknowledges nothing and cleans nothing up
    (no exception unwinds through the reply service, so no stream is closed and nothing is cancelled), and SQS
    redelivers the message when its visibility timeout ends. The stuck thread is let go when the test is over.
    """

    def __init__(self, client: Any, posts_before_death: int) -> None:
        self._client = client
        self._left = posts_before_death
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.died = threading.Event()
        self.exceptions = client.exceptions

    def post_to_connection(self, **kwargs: Any) -> Any:
        with self._lock:
            dies = not self.died.is_set() and self._left == 0
            if dies:
                self.died.set()
            self._left -= 1
        if dies:
            self._release.wait(timeout=120)
            raise RuntimeError("the killed worker's thread is let go")
        return self._client.post_to_connection(**kwargs)

    def release(self) -> None:
        self._release.set()


@pytest.fixture
def dying_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[_DiesOnce]:
    """The worker's reply service with a broadcaster whose process dies after 4 frames of the next reply."""
    dependencies = worker.dependencies()
    healthy = dependencies.reply_service
    dies = _DiesOnce(dependencies.broadcaster._client, posts_before_death=4)
    service = replaced(healthy, broadcaster=Broadcaster(dies, dependencies.connections), model=dependencies.model)
    use_dependencies(monkeypatch, worker, reply_service=service)
    try:
        yield dies
    finally:
        dies.release()


async def test_a_worker_dying_mid_reply_is_redelivered_without_a_second_answer(
    local_stack: LocalStack, dying_worker: _DiesOnce
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "phoenix")
    text = "Tell me a long story about a phoenix"
    async with open_socket(info, user.token) as ws:
        accepted = await send_message(ws, text)
        message_id = accepted["messageId"]
        # The first delivery dies; SQS redelivers after the 3 s visibility timeout and the reply resumes.
        frames = await receive_until(ws, "done", message_id=message_id, timeout=30)
        turns = await history(ws, accepted["conversationId"])
    assert dying_worker.died.is_set()

    deltas = [frame for frame in of_message(frames, message_id) if frame["type"] == "delta"]
    assert [frame["type"] for frame in frames].count("done") == 1
    assert _errors(frames) == []
    # Placed by offset, the re-sent stretch (what followed the last checkpoint, at most about a second) adds
    # nothing twice: the reply reads exactly as the conversation holds it.
    shown = reply_text(frames, message_id)
    resent = sum(len(frame["text"]) for frame in deltas) - len(shown)
    assert 0 <= resent < len(shown)
    assert shown.startswith("Once upon a time")
    assert shown.rstrip().endswith("the stories get much better.")
    assert turns == [("user", text), ("assistant", shown)]

    # No second turn: one request to the model (the redelivery resumed its response), and one turn in the table.
    bodies = responses_posted(local_stack, text)
    assert len(bodies) == 1
    assert "conversation" not in bodies[0]
    assert await wait_for_status(local_stack, user.user_id, message_id) == "done"


async def test_a_client_dropping_its_connection_mid_reply_still_gets_the_reply_in_history(
    local_stack: LocalStack,
) -> None:
    info = stack_info(local_stack)
    user = new_user(local_stack, "dropper")
    text = "Will you finish without me?"
    with model_pace(local_stack, Pace(first_token_s=0.05, tokens_per_s=60)):
        async with open_socket(info, user.token) as ws:
            accepted = await send_message(ws, text)
            message_id = accepted["messageId"]
            seen = await receive_until(ws, "delta", message_id=message_id)
            # The network goes away: no close frame, the gateway finds out from the dead TCP connection.
            ws.transport.abort()
        assert await wait_for_status(local_stack, user.user_id, message_id) == "done"

    async with open_socket(info, sign_in(info, user.username, user.password)) as ws:
        turns = await wait_for_history(ws, accepted["conversationId"], turns=2)
    assert turns[0] == ("user", text)
    assert turns[1][0] == "assistant"
    assert turns[1][1].startswith(reply_text(seen, message_id))
    assert len(turns[1][1]) > len(reply_text(seen, message_id))
    assert len(responses_posted(local_stack, text)) == 1


@pytest.fixture
async def stale_connection(local_stack: LocalStack) -> tuple[E2EUser, str]:
    """A user with a connection record for a connection the gateway no longer knows (its $disconnect was lost)."""
    user = new_user(local_stack, "stale")
    stale_id = "StaleConnId0000="
    await asyncio.to_thread(worker.dependencies().connections.add, user.user_id, stale_id, now=time.time())
    return user, stale_id


async def test_a_gone_connection_is_dropped_while_the_live_tab_gets_the_whole_reply(
    local_stack: LocalStack, stale_connection: tuple[E2EUser, str]
) -> None:
    info = stack_info(local_stack)
    user, stale_id = stale_connection
    async with open_socket(info, user.token) as ws:
        records = await asyncio.to_thread(worker.dependencies().connections.list_ids, user.user_id)
        assert stale_id in records
        assert len(records) == 2
        live_id = next(connection_id for connection_id in records if connection_id != stale_id)
        assert local_stack.gateway is not None
        assert live_id in local_stack.gateway.connection_ids
        assert stale_id not in local_stack.gateway.connection_ids

        accepted = await send_message(ws, "Who is still here?")
        frames = await receive_until(ws, "done", message_id=accepted["messageId"])
        turns = await history(ws, accepted["conversationId"])
        # The 410 from @connections removed the stale record; the live one stays.
        assert await asyncio.to_thread(worker.dependencies().connections.list_ids, user.user_id) == [live_id]

    assert _errors(frames) == []
    assert turns[1] == ("assistant", reply_text(frames, accepted["messageId"]))
    assert await wait_for_status(local_stack, user.user_id, accepted["messageId"]) == "done"
