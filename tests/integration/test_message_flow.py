"""A message from `sendMessage` through the FIFO queue and the worker to every tab of its user."""

from __future__ import annotations

import json
import time
from typing import Any

import commands
import connect
import default
import disconnect
import pytest
import send_message
import worker
from botocore.exceptions import ClientError

from assistant.push import Broadcaster
from assistant.stores.messages import MessageRecord, MessageStatus, MessageStore
from assistant.stores.usage import UsageStore
from scripts.local_stack.offline_model import Fault, Pace
from tests.connections_api import GoneFor
from tests.frames import assemble
from tests.handlers import reset_handlers, use_dependencies
from tests.integration.conftest import Deployment
from tests.replies import replaced


def _connect(deployment: Deployment, user: str, *connections: str) -> None:
    for connection in connections:
        response = deployment.call(connect.handler, deployment.ws_event("$connect", user=user, connection=connection))
        assert response["statusCode"] == 200


def _reply_text(frames: list[dict], message_id: str) -> str:
    return assemble(frames, message_id)


def _responses_posted(deployment: Deployment) -> int:
    return sum(1 for r in deployment.model.requests if r.method == "POST" and r.path.endswith("/responses"))


def test_reply_streams_to_every_tab_of_the_user_and_to_nobody_else(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1", "conn-a2")
    _connect(deployment, "bob", "conn-b1")

    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "Hello there"})
    assert accepted is not None
    assert accepted["type"] == "accepted"
    message_id = accepted["messageId"]

    records = deployment.receive()
    assert [r["attributes"]["MessageGroupId"] for r in records] == ["alice"]
    assert records[0]["attributes"]["MessageDeduplicationId"] == message_id
    assert deployment.deliver(records) == []

    first, second = deployment.frames("conn-a1"), deployment.frames("conn-a2")
    assert first == second
    assert first[-1]["type"] == "done"
    assert first[-1]["conversationId"] == accepted["conversationId"]
    assert first[-1]["usage"]["outputTokens"] > 0
    assert first[-1]["model"] == "offline-demo"
    text = _reply_text(first, message_id)
    assert text.strip()
    assert deployment.frames("conn-b1") == []

    history = deployment.route(commands.handler, {"action": "getHistory", "conversationId": accepted["conversationId"]})
    assert history is not None
    assert [(m["role"], m["text"]) for m in history["messages"]] == [("user", "Hello there"), ("assistant", text)]
    usage = UsageStore(deployment.table).today("alice")
    assert usage.messages == 1
    assert usage.output_tokens == first[-1]["usage"]["outputTokens"]


def test_a_redelivered_message_is_not_answered_twice(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1")
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "Only once, please"})
    assert accepted is not None
    records = deployment.receive()
    assert deployment.deliver(records) == []
    frames_after_first = deployment.frames("conn-a1")

    # SQS may deliver the same message again (at-least-once), e.g. after a lost delete.
    assert deployment.deliver(records) == []
    assert deployment.frames("conn-a1") == frames_after_first
    assert _responses_posted(deployment) == 1
    assert UsageStore(deployment.table).today("alice").messages == 1


def test_a_client_retrying_the_same_message_id_gets_one_answer(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1")
    frame = {"action": "sendMessage", "message": "Are you there?", "messageId": "client-id-1"}
    first = deployment.route(send_message.handler, frame)
    second = deployment.route(send_message.handler, frame)
    assert first == second
    records = deployment.receive()
    assert len(records) == 1  # the FIFO queue dropped the duplicate (dedup id = message id)
    deployment.deliver(records)
    assert sum(1 for f in deployment.frames("conn-a1") if f["type"] == "done") == 1


class _SendFailsOnce:
    """An SQS client whose first ``SendMessage`` fails, after intake has written the message record."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sends = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send_message(self, **kwargs: Any) -> Any:
        self.sends += 1
        if self.sends == 1:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "SendMessage")
        return self._client.send_message(**kwargs)


def test_a_retry_after_a_failed_enqueue_is_queued_once_and_answered_once(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(deployment, "alice", "conn-a1")
    flaky = _SendFailsOnce(send_message.dependencies().sqs)
    use_dependencies(monkeypatch, send_message, sqs=flaky)
    frame = {"action": "sendMessage", "message": "Did this arrive?", "messageId": "client-retry-1"}

    failed = deployment.route(send_message.handler, frame)
    assert failed is not None
    assert (failed["type"], failed["code"]) == ("error", "internal")
    record = worker.dependencies().messages.get("alice", "client-retry-1")
    assert record is not None
    assert record.status is MessageStatus.QUEUED  # written before the enqueue failed: the id is taken
    assert deployment.receive() == []  # but nothing is on its way to the worker

    # The client retries with the same messageId; it must now really be queued (not just "accepted").
    retried = deployment.route(send_message.handler, frame)
    assert retried == {"type": "accepted", "messageId": "client-retry-1", "conversationId": record.conversation_id}
    # A second retry while it is still queued: enqueued again, dropped by the FIFO queue's deduplication.
    assert deployment.route(send_message.handler, frame) == retried
    assert flaky.sends == 3

    records = deployment.receive()
    assert [json.loads(r["body"])["messageId"] for r in records] == ["client-retry-1"]
    assert deployment.deliver(records) == []
    assert deployment.receive() == []
    frames = deployment.frames("conn-a1")
    assert [f["type"] for f in frames].count("done") == 1
    assert _reply_text(frames, "client-retry-1").strip()
    assert _responses_posted(deployment) == 1
    assert UsageStore(deployment.table).today("alice").messages == 1

    # A retry after the answer is accepted (same ids) but neither enqueued nor answered again.
    assert deployment.route(send_message.handler, frame) == retried
    assert flaky.sends == 3
    assert deployment.receive() == []


class _CrashAfter:
    """A management API client that dies (like a killed worker) after posting some frames."""

    def __init__(self, client: Any, frames_before_crash: int) -> None:
        self._client = client
        self._left = frames_before_crash
        self.exceptions = client.exceptions

    def post_to_connection(self, **kwargs: Any) -> Any:
        if self._left == 0:
            raise RuntimeError("worker killed")
        self._left -= 1
        return self._client.post_to_connection(**kwargs)


def test_a_worker_dying_mid_reply_is_resumed_without_a_second_turn(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(deployment, "alice", "conn-a1")
    accepted = deployment.route(
        send_message.handler, {"action": "sendMessage", "message": "Tell me a long story about a lighthouse"}
    )
    assert accepted is not None
    message_id = accepted["messageId"]
    healthy = worker.dependencies().broadcaster
    crashing = Broadcaster(_CrashAfter(healthy._client, frames_before_crash=3), worker.dependencies().connections)
    use_dependencies(monkeypatch, worker, reply_service=_service_with(crashing))

    records = deployment.receive()
    assert deployment.deliver(records) == [records[0]["messageId"]]  # failed: SQS will redeliver
    assert worker.dependencies().messages.get("alice", message_id).status is MessageStatus.STREAMING  # type: ignore[union-attr]

    use_dependencies(monkeypatch, worker, reply_service=_service_with(healthy))
    redelivered = deployment.receive()
    assert redelivered[0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert deployment.deliver(redelivered) == []

    frames = deployment.frames("conn-a1")
    # The client places each frame by offset: the reply must be whole, in order, with nothing doubled.
    text = assemble(frames, message_id)
    deltas = [f for f in frames if f["type"] == "delta"]
    resent = sum(len(f["text"]) for f in deltas) - len(text)
    assert len(text) > 0
    # Checkpoints are at most a second apart: the resumed worker re-sends at most what followed the last one.
    assert resent <= len(text)
    assert [f["type"] for f in frames].count("done") == 1
    assert _responses_posted(deployment) == 1  # the model was not asked again: no second turn
    history = deployment.route(commands.handler, {"action": "getHistory", "conversationId": accepted["conversationId"]})
    assert history is not None
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["text"] == text


def _service_with(broadcaster: Broadcaster, messages: MessageStore | None = None) -> Any:
    # The model factory as the test has it now (a test may have replaced it after the service was built).
    dependencies = worker.dependencies()
    return replaced(
        dependencies.reply_service,
        broadcaster=broadcaster,
        messages=messages or dependencies.messages,
        model=dependencies.model,
    )


class _StaleFirstRead(MessageStore):
    """A store whose first read returns an earlier snapshot of the record (what a delivery read before another
    delivery claimed the message)."""

    def __init__(self, table: Any, stale: MessageRecord) -> None:
        super().__init__(table)
        self._stale: MessageRecord | None = stale

    def get(self, user_id: str, message_id: str) -> MessageRecord | None:
        if self._stale is not None:
            stale, self._stale = self._stale, None
            return stale
        return super().get(user_id, message_id)


def test_two_deliveries_that_both_read_queued_answer_once(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of one message both read ``queued``; only the one whose claim lands first answers.

    Interleaved through a store wrapper rather than with threads: moto does not lock a transaction's condition
    checks against its writes (DynamoDB serializes conditional writes on an item), so real concurrency in moto
    would test moto. What this pins down is the claim's ``#status = :queued`` condition: without it the second
    delivery would re-claim a ``done`` message, count it again and ask the model for a second turn.
    """
    _connect(deployment, "alice", "conn-a1")
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "Just one answer"})
    assert accepted is not None
    message_id = accepted["messageId"]
    records = deployment.receive()
    seen_by_second = worker.dependencies().messages.get("alice", message_id)
    assert seen_by_second is not None
    assert seen_by_second.status is MessageStatus.QUEUED

    assert deployment.deliver(records) == []
    frames_after_first = deployment.frames("conn-a1")
    assert [f["type"] for f in frames_after_first].count("done") == 1

    stale = _StaleFirstRead(deployment.table, seen_by_second)
    use_dependencies(monkeypatch, worker, reply_service=_service_with(worker.dependencies().broadcaster, stale))
    assert deployment.deliver(records) == []  # a duplicate is a success for SQS: deleted, not retried

    assert deployment.frames("conn-a1") == frames_after_first
    assert _responses_posted(deployment) == 1
    usage = UsageStore(deployment.table).today("alice")
    assert usage.messages == 1
    assert usage.output_tokens == frames_after_first[-1]["usage"]["outputTokens"]
    assert worker.dependencies().messages.get("alice", message_id).status is MessageStatus.DONE  # type: ignore[union-attr]


def test_a_gone_connection_is_dropped_and_the_other_tab_gets_the_whole_reply(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connect(deployment, "alice", "conn-stale", "conn-live")
    healthy = worker.dependencies().broadcaster
    use_dependencies(
        monkeypatch,
        worker,
        reply_service=_service_with(
            Broadcaster(GoneFor(healthy._client, {"conn-stale"}), worker.dependencies().connections)
        ),
    )
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "Hi"})
    assert accepted is not None
    assert deployment.deliver(deployment.receive()) == []
    frames = deployment.frames("conn-live")
    assert frames[-1]["type"] == "done"
    assert _reply_text(frames, accepted["messageId"])
    assert worker.dependencies().connections.list_ids("alice") == ["conn-live"]


def test_cancel_stops_a_streaming_reply(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    _connect(deployment, "alice", "conn-a1")
    # A model that streams (~4 s for this reply) rather than answering at once: the worker notices a Stop at its
    # next checkpoint, about a second in, which an instant model would have finished before.
    monkeypatch.setattr(deployment.model, "pace", Pace(first_token_s=0.0, tokens_per_s=100.0, reasoning_s=0.0))
    accepted = deployment.route(
        send_message.handler, {"action": "sendMessage", "message": "Write a long essay on tides"}
    )
    assert accepted is not None
    message_id = accepted["messageId"]
    healthy = worker.dependencies().broadcaster

    class _CancelOnFirstDelta:
        exceptions = healthy._client.exceptions
        pressed = False

        def post_to_connection(self, **kwargs: Any) -> Any:
            if json.loads(kwargs["Data"])["type"] == "delta" and not self.pressed:
                # The user presses Stop, once, in another tab while the reply streams. (Pressing it at every delta
                # until the worker notices would, on a loaded machine, run into the cancel bucket's limit.)
                self.pressed = True
                answer = deployment.route(commands.handler, {"action": "cancel", "messageId": message_id})
                assert answer is None  # the worker announces it
            return healthy._client.post_to_connection(**kwargs)

    use_dependencies(
        monkeypatch,
        worker,
        reply_service=_service_with(Broadcaster(_CancelOnFirstDelta(), worker.dependencies().connections)),
    )
    assert deployment.deliver(deployment.receive()) == []
    types = [f["type"] for f in deployment.frames("conn-a1")]
    # Noticed at the next checkpoint (at most about a second later) or sooner, when the cancel route's
    # cancellation of the model response ends its stream.
    assert types[-1] == "cancelled"
    assert "done" not in types
    assert worker.dependencies().messages.get("alice", message_id).status is MessageStatus.CANCELLED  # type: ignore[union-attr]
    # What was generated before Stop counts against the quota too (the offline model, like OpenAI for a cancelled
    # background response, reports no usage: the streamed text is estimated).
    assert UsageStore(deployment.table).today("alice").output_tokens > 0


def test_cancel_before_the_worker_starts_answers_at_once_and_the_model_is_never_called(
    deployment: Deployment,
) -> None:
    _connect(deployment, "alice", "conn-a1")
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "Never mind"})
    assert accepted is not None
    answer = deployment.route(commands.handler, {"action": "cancel", "messageId": accepted["messageId"]})
    assert answer == {"type": "cancelled", "messageId": accepted["messageId"]}
    assert deployment.deliver(deployment.receive()) == []
    assert deployment.frames("conn-a1") == []
    assert _responses_posted(deployment) == 0


def test_the_daily_quota_is_checked_before_the_model_is_called(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAILY_MESSAGE_QUOTA", "1")
    reset_handlers()
    _connect(deployment, "alice", "conn-a1")
    # Both are accepted: nothing is used yet when they arrive. The worker's claim is the exact check.
    for text in ("first", "second"):
        assert deployment.route(send_message.handler, {"action": "sendMessage", "message": text})["type"] == "accepted"
    assert deployment.deliver(deployment.receive()) == []
    frames = deployment.frames("conn-a1")
    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "quota_exceeded"
    assert _responses_posted(deployment) == 1
    assert UsageStore(deployment.table).today("alice").messages == 1

    # Once the quota is spent, intake refuses at once: nothing recorded, nothing enqueued.
    refused = deployment.route(send_message.handler, {"action": "sendMessage", "message": "third", "messageId": "m3"})
    assert refused["code"] == "quota_exceeded"
    assert deployment.receive() == []
    assert worker.dependencies().messages.get("alice", "m3") is None


def test_a_model_that_keeps_failing_ends_in_an_error_frame_and_the_dead_letter_queue(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.definition import load_definition
    from assistant.model import ModelClient, RetryPolicy
    from assistant.tools.builtin import default_registry

    fast = ModelClient.create(
        api_key="sk-test-offline",
        base_url=deployment.model.base_url,
        definition=load_definition(),
        tools=default_registry(),
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02),
    )
    use_dependencies(
        monkeypatch, worker, reply_service=replaced(worker.dependencies().reply_service, model=lambda: fast)
    )
    _connect(deployment, "alice", "conn-a1")
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "Hello?"})
    assert accepted is not None
    for _ in range(10):
        deployment.model.faults.push(Fault.status(500))

    attempts = 0
    while records := deployment.receive():
        attempts += 1
        assert deployment.deliver(records) == [records[0]["messageId"]]
        if attempts < 3:
            assert deployment.frames("conn-a1") == []  # retries are silent
    assert attempts == 3
    frames = deployment.frames("conn-a1")
    assert [f["type"] for f in frames] == ["error"]
    assert frames[0]["code"] == "model_unavailable"
    assert frames[0]["messageId"] == accepted["messageId"]
    dead = deployment.sqs.receive_message(QueueUrl=deployment.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["messageId"] for m in dead] == [accepted["messageId"]]


def test_a_failed_record_fails_the_rest_of_its_group_only(deployment: Deployment) -> None:
    from assistant.queue import MessageQueue, QueuedMessage

    _connect(deployment, "alice", "conn-a1")
    _connect(deployment, "bob", "conn-b1")
    # A message without its record can't be answered (the worker refuses to answer blind): it fails. (Its
    # conversation exists: a message whose conversation was deleted is dropped instead.)
    deployment.table.put_item(Item={"pk": "USER#alice", "sk": "CONV#c_x", "conversationId": "c_x"})
    MessageQueue(deployment.sqs, deployment.queue_url).enqueue(
        QueuedMessage(
            user_id="alice", message_id="orphan", conversation_id="c_x", text="?", connection_id="c", received_at=0
        ),
    )
    alice_next = deployment.route(send_message.handler, {"action": "sendMessage", "message": "after the orphan"})
    bob = deployment.route(
        send_message.handler, {"action": "sendMessage", "message": "hi"}, user="bob", connection="conn-b1"
    )
    assert alice_next is not None
    assert bob is not None
    records = deployment.receive()
    assert [json.loads(r["body"])["userId"] for r in records][:2] == ["alice", "alice"]
    failed = deployment.deliver(records)
    failed_bodies = [json.loads(r["body"]) for r in records if r["messageId"] in failed]
    assert [b["messageId"] for b in failed_bodies] == ["orphan", alice_next["messageId"]]
    assert deployment.frames("conn-a1") == []  # alice's second message waits behind the failed one
    assert deployment.frames("conn-b1")[-1]["type"] == "done"  # bob is not held up


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "bad_request"),
        ("[1, 2]", "bad_request"),
        ({"message": "no action"}, "unknown_action"),
        ({"action": "fly"}, "unknown_action"),
    ],
)
def test_unroutable_frames_get_a_precise_error(deployment: Deployment, body: Any, code: str) -> None:
    answer = deployment.route(default.handler, body)
    assert answer is not None
    assert answer["type"] == "error"
    assert answer["code"] == code


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"action": "sendMessage"}, "bad_request"),
        ({"action": "sendMessage", "message": 42}, "bad_request"),
        ({"action": "sendMessage", "message": "   \n"}, "bad_request"),
        ({"action": "sendMessage", "message": "x" * 16_001}, "too_large"),
        ({"action": "sendMessage", "message": "hi", "messageId": "has spaces"}, "bad_request"),
        ({"action": "sendMessage", "message": "hi", "conversationId": "c_doesnotexist"}, "not_found"),
    ],
)
def test_bad_messages_are_refused_and_nothing_is_enqueued(deployment: Deployment, frame: Any, code: str) -> None:
    answer = deployment.route(send_message.handler, frame)
    assert answer is not None
    assert (answer["type"], answer["code"]) == ("error", code)
    assert deployment.receive() == []


def test_someone_elses_conversation_and_message_are_not_found(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1")
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "mine"})
    assert accepted is not None
    as_bob = {"user": "bob", "connection": "conn-b1"}
    for frame in (
        {"action": "sendMessage", "message": "hijack", "conversationId": accepted["conversationId"]},
        {"action": "getHistory", "conversationId": accepted["conversationId"]},
        {"action": "cancel", "messageId": accepted["messageId"]},
        {"action": "cancel", "messageId": "never-sent"},
    ):
        handler = send_message.handler if frame["action"] == "sendMessage" else commands.handler
        answer = deployment.route(handler, frame, **as_bob)
        assert answer is not None
        assert (answer["type"], answer["code"]) == ("error", "not_found"), frame
    # and alice's message is untouched
    assert worker.dependencies().messages.get("alice", accepted["messageId"]).status is MessageStatus.QUEUED  # type: ignore[union-attr]


def test_conversations_are_created_listed_and_kept_apart(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1")
    first = deployment.route(send_message.handler, {"action": "sendMessage", "message": "First topic"})
    assert first is not None
    deployment.deliver(deployment.receive())
    created = deployment.route(commands.handler, {"action": "newConversation"})
    assert created is not None
    assert created["type"] == "conversation"
    second = deployment.route(send_message.handler, {"action": "sendMessage", "message": "Second topic"})
    assert second is not None
    assert second["conversationId"] == created["conversationId"] != first["conversationId"]
    deployment.deliver(deployment.receive())

    listed = deployment.route(commands.handler, {"action": "listConversations"})
    assert listed is not None
    assert [(c["conversationId"], c["title"]) for c in listed["items"]] == [
        (second["conversationId"], "Second topic"),
        (first["conversationId"], "First topic"),
    ]
    for conversation, text in ((first, "First topic"), (second, "Second topic")):
        history = deployment.route(
            commands.handler, {"action": "getHistory", "conversationId": conversation["conversationId"]}
        )
        assert history is not None
        assert {k: history["messages"][0][k] for k in ("role", "text")} == {"role": "user", "text": text}
        assert history["messages"][1]["status"] == "done"
    assert deployment.route(commands.handler, {"action": "ping"}) == {"type": "pong"}


def test_history_and_the_conversation_list_come_in_pages_with_a_cursor(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1")
    sent: list[str] = []
    for i in range(5):
        text = f"Question {i}"
        accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": text})
        assert accepted is not None
        conversation_id = accepted["conversationId"]
        sent.append(text)
        deployment.deliver(deployment.receive())

    def history(**page: Any) -> dict[str, Any]:
        answer = deployment.route(commands.handler, {"action": "getHistory", "conversationId": conversation_id, **page})
        assert answer is not None
        assert answer["type"] == "history", answer
        return answer

    newest = history(limit=2)
    assert [m["text"] for m in newest["messages"] if m["role"] == "user"] == sent[3:]
    older = history(limit=2, before=newest["cursor"])
    assert [m["text"] for m in older["messages"] if m["role"] == "user"] == sent[1:3]
    oldest = history(limit=2, before=older["cursor"])
    assert [m["text"] for m in oldest["messages"] if m["role"] == "user"] == sent[:1]
    assert "cursor" not in oldest  # nothing older
    assert "cursor" not in history()  # all five fit the default page

    bad = deployment.route(
        commands.handler, {"action": "getHistory", "conversationId": conversation_id, "before": "TURN#x"}
    )
    assert bad is not None
    assert (bad["type"], bad["code"]) == ("error", "bad_request")

    for _ in range(2):
        created = deployment.route(commands.handler, {"action": "newConversation"})
        assert created is not None
        # Listed once it has a message.
        message = {"action": "sendMessage", "message": "hi", "conversationId": created["conversationId"]}
        assert deployment.route(send_message.handler, message) is not None
    first_page = deployment.route(commands.handler, {"action": "listConversations", "limit": 2})
    assert first_page is not None
    second_page = deployment.route(
        commands.handler, {"action": "listConversations", "limit": 2, "before": first_page["cursor"]}
    )
    assert second_page is not None
    assert "cursor" not in second_page
    listed = [c["conversationId"] for c in first_page["items"] + second_page["items"]]
    assert len(listed) == len(set(listed)) == 3
    assert listed[-1] == conversation_id  # the least recently active comes last


def test_disconnect_forgets_only_that_connection(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1", "conn-a2")
    deployment.call(disconnect.handler, deployment.ws_event("$disconnect", connection="conn-a1"))
    assert worker.dependencies().connections.list_ids("alice") == ["conn-a2"]


def test_an_unexpected_failure_answers_internal_without_details(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "secret detail"}}, "Query")

    monkeypatch.setattr(commands, "dependencies", broken)
    answer = deployment.route(commands.handler, {"action": "listConversations"})
    assert answer is not None
    assert answer["code"] == "internal"
    assert "secret detail" not in answer["message"]


def test_a_failed_record_comes_back_after_a_short_delay_not_the_visibility_timeout(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant import queue

    monkeypatch.setattr(queue, "retry_delay_seconds", lambda attempt: 1)
    deployment.sqs.set_queue_attributes(QueueUrl=deployment.queue_url, Attributes={"VisibilityTimeout": "1800"})
    _connect(deployment, "alice", "conn-a1")
    assert deployment.route(send_message.handler, {"action": "sendMessage", "message": "hi"}) is not None
    use_dependencies(monkeypatch, worker, reply_service=_Down())
    records = deployment.receive()
    assert deployment.deliver(records) == [records[0]["messageId"]]
    assert deployment.receive() == []  # not visible yet ...
    deadline = time.monotonic() + 5
    while not (again := deployment.receive()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [r["attributes"]["ApproximateReceiveCount"] for r in again] == ["2"]  # ... but long before 30 minutes


class _Down:
    """A reply service whose table is unreachable."""

    def handle(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("DynamoDB is down")


def test_retry_delays_grow_and_stay_short() -> None:
    from assistant.queue import retry_delay_seconds

    delays = [retry_delay_seconds(attempt) for attempt in range(1, 10)]
    assert delays == sorted(delays)
    assert delays[0] <= 2
    assert max(delays) <= 60


def test_a_frame_of_another_route_is_a_bad_request_not_an_internal_error(deployment: Deployment) -> None:
    # API Gateway routes on the action; a direct invocation with another route's frame is the caller's mistake.
    for handler, frame in (
        (send_message.handler, {"action": "ping"}),
        (commands.handler, {"action": "sendMessage", "message": "hi"}),
    ):
        response = deployment.call(handler, deployment.ws_event("sendMessage", frame))
        answer = json.loads(response["body"])
        assert (answer["type"], answer["code"]) == ("error", "bad_request")
