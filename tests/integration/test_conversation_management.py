"""Rename, delete, delete everything, titles, listing and retention: the routes and the worker through moto."""

from __future__ import annotations

import time
from typing import Any

import commands
import connect
import pytest
import send_message
from boto3.dynamodb.conditions import Key

from assistant.stores.messages import MessageStatus
from assistant.wiring import MESSAGE_TTL_SECONDS
from tests.handlers import reset_handlers
from tests.integration.conftest import Deployment

DAY_S = 24 * 60 * 60


def _connect(deployment: Deployment, user: str, *connections: str) -> None:
    for connection in connections:
        response = deployment.call(connect.handler, deployment.ws_event("$connect", user=user, connection=connection))
        assert response["statusCode"] == 200


def _send(deployment: Deployment, text: str, conversation_id: str | None = None, **who: str) -> dict:
    frame = {
        "action": "sendMessage",
        "message": text,
        **({"conversationId": conversation_id} if conversation_id else {}),
    }
    accepted = deployment.route(send_message.handler, frame, **who)
    assert accepted is not None
    assert accepted["type"] == "accepted", accepted
    return accepted


def _answer_everything(deployment: Deployment) -> None:
    """Play the event source until the queue is empty (replies and erasures alike)."""
    for _ in range(20):
        records = deployment.receive()
        if not records:
            return
        assert deployment.deliver(records) == []
    raise AssertionError("the queue never emptied")


def _items(deployment: Deployment, user: str, prefix: str) -> list[dict[str, Any]]:
    return deployment.table.query(
        KeyConditionExpression=Key("pk").eq(f"USER#{user}") & Key("sk").begins_with(prefix), ConsistentRead=True
    )["Items"]


def _frames(deployment: Deployment, connection_id: str) -> list[dict]:
    try:
        return deployment.frames(connection_id)
    except KeyError:  # nothing was ever posted to it
        return []


def _listed(deployment: Deployment, **who: str) -> list[dict]:
    answer = deployment.route(commands.handler, {"action": "listConversations"}, **who)
    assert answer is not None
    assert answer["type"] == "conversations"
    return list(answer["items"])


def test_rename_answers_the_sender_and_reaches_every_other_tab(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1", "conn-a2")
    _connect(deployment, "bob", "conn-b1")
    conversation_id = _send(deployment, "Plan a trip")["conversationId"]

    answer = deployment.route(
        commands.handler,
        {"action": "renameConversation", "conversationId": conversation_id, "title": "  Lisbon in May  "},
    )

    expected = {"type": "conversationUpdated", "conversationId": conversation_id, "title": "Lisbon in May"}
    assert answer == expected
    assert expected in deployment.frames("conn-a2")
    assert expected not in deployment.frames("conn-a1")  # the sender has it as the route's answer, once
    assert [item["title"] for item in _listed(deployment)] == ["Lisbon in May"]
    # A reply finishing afterwards does not bring the first message's title back.
    _answer_everything(deployment)
    assert [item["title"] for item in _listed(deployment)] == ["Lisbon in May"]
    assert not any(frame["type"] == "conversationUpdated" for frame in _frames(deployment, "conn-b1"))


@pytest.mark.parametrize(
    ("title", "why"),
    [
        ("a\x07b", "U+0007"),
        ("line\nbreak", "U+000A"),
        ("   ", "blank"),
        ("x" * 121, "121"),
        ("evil\u202etxt", "U+202E"),
    ],
)
def test_a_title_with_control_characters_or_out_of_bounds_is_a_bad_request(
    deployment: Deployment, title: str, why: str
) -> None:
    conversation_id = _send(deployment, "Keep me")["conversationId"]
    answer = deployment.route(
        commands.handler, {"action": "renameConversation", "conversationId": conversation_id, "title": title}
    )
    assert answer is not None
    assert answer["code"] == "bad_request"
    assert why in answer["message"]
    assert [item["title"] for item in _listed(deployment)] == ["Keep me"]


def test_another_users_conversation_is_not_found_for_rename_delete_history_and_send(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1")
    conversation_id = _send(deployment, "Alice's secret")["conversationId"]
    _answer_everything(deployment)
    bob = {"user": "bob", "connection": "conn-b1"}

    for frame in (
        {"action": "renameConversation", "conversationId": conversation_id, "title": "pwned"},
        {"action": "deleteConversation", "conversationId": conversation_id},
        {"action": "getHistory", "conversationId": conversation_id},
        {"action": "sendMessage", "conversationId": conversation_id, "message": "hi"},
    ):
        handler = send_message.handler if frame["action"] == "sendMessage" else commands.handler
        answer = deployment.route(handler, frame, **bob)
        assert answer is not None
        assert answer["code"] == "not_found", frame

    # Alice's conversation is untouched, and Bob's deleteAllData does not reach it either.
    assert deployment.route(commands.handler, {"action": "deleteAllData"}, **bob) == {"type": "dataDeleted"}
    _answer_everything(deployment)
    assert [item["title"] for item in _listed(deployment)] == ["Alice's secret"]
    assert len(_items(deployment, "alice", "TURN#")) == 1


def test_a_deleted_conversation_is_unreadable_at_once_and_its_items_are_erased(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1", "conn-a2")
    kept = _send(deployment, "Keep this one")["conversationId"]
    doomed = deployment.route(commands.handler, {"action": "newConversation"})["conversationId"]  # type: ignore[index]
    for text in ("first", "second", "third"):
        _send(deployment, text, doomed)
        _answer_everything(deployment)
    assert len(_items(deployment, "alice", "TURN#")) == 4

    answer = deployment.route(commands.handler, {"action": "deleteConversation", "conversationId": doomed})

    assert answer == {"type": "conversationDeleted", "conversationId": doomed}
    assert answer in deployment.frames("conn-a2")
    assert [item["conversationId"] for item in _listed(deployment)] == [kept]
    for frame in (
        {"action": "getHistory", "conversationId": doomed},
        {"action": "renameConversation", "conversationId": doomed, "title": "back?"},
        {"action": "deleteConversation", "conversationId": doomed},
    ):
        refused = deployment.route(commands.handler, frame)
        assert refused is not None
        assert refused["code"] == "not_found", frame
    refused = deployment.route(
        send_message.handler, {"action": "sendMessage", "conversationId": doomed, "message": "x"}
    )
    assert refused is not None
    assert refused["code"] == "not_found"
    # None of the refused writes brought the record back (an update of a missing item would create it).
    assert [c["conversationId"] for c in _items(deployment, "alice", "CONV#")] == [kept]

    # The erasure waits on the queue in a group of its own; the worker removes every turn and message of it.
    records = deployment.receive()
    assert [r["attributes"]["MessageGroupId"] for r in records] == ["erase-alice"]
    assert deployment.deliver(records) == []
    turns = _items(deployment, "alice", "TURN#")
    assert [t["conversationId"] for t in turns] == [kept]
    assert {m["conversationId"] for m in _items(deployment, "alice", "MSG#")} == {kept}
    # A message without an id goes to a new conversation, not to the deleted one the pointer named.
    assert _send(deployment, "after")["conversationId"] not in (doomed, kept)


def test_a_reply_streaming_in_a_deleted_conversation_is_stopped_counted_and_leaves_nothing(
    deployment: Deployment,
) -> None:
    _connect(deployment, "alice", "conn-a1")
    accepted = _send(deployment, "Write a long story")
    message_id, conversation_id = accepted["messageId"], accepted["conversationId"]
    records = deployment.receive()
    # A worker has claimed it (counted on today's usage) and streams: the deletion flags it for the worker.
    messages = commands.dependencies().messages
    record = messages.get("alice", message_id)
    assert record is not None
    from assistant.stores.usage import Quotas

    assert messages.claim(record, now=time.time(), quotas=Quotas(10, 10**9, 10**9)).outcome.value == "claimed"

    deployment.route(commands.handler, {"action": "deleteConversation", "conversationId": conversation_id})
    flagged = messages.get("alice", message_id)
    assert flagged is not None
    assert flagged.status is MessageStatus.STREAMING
    assert flagged.cancel_requested

    # The delivery resumes it, finds the stop, says `cancelled`, writes no turn and removes the record.
    assert deployment.deliver(records) == []
    assert {"type": "cancelled", "messageId": message_id} in deployment.frames("conn-a1")
    _answer_everything(deployment)
    assert _items(deployment, "alice", "TURN#") == []
    assert _items(deployment, "alice", "MSG#") == []
    usage = deployment.route(commands.handler, {"action": "getUsage"})
    assert usage is not None
    assert usage["messages"] == 1


def test_a_message_waiting_in_a_deleted_conversation_is_never_answered(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1")
    accepted = _send(deployment, "Queued")
    deployment.route(commands.handler, {"action": "deleteConversation", "conversationId": accepted["conversationId"]})

    _answer_everything(deployment)

    assert not any(f["type"] in ("delta", "done") for f in deployment.frames("conn-a1"))
    assert _items(deployment, "alice", "MSG#") == []
    assert _items(deployment, "alice", "TURN#") == []


def test_delete_all_data_keeps_todays_usage_and_other_users(deployment: Deployment) -> None:
    _connect(deployment, "alice", "conn-a1", "conn-a2")
    for text in ("one", "two"):
        conversation_id = deployment.route(commands.handler, {"action": "newConversation"})["conversationId"]  # type: ignore[index]
        _send(deployment, text, conversation_id)
        _answer_everything(deployment)
    _send(deployment, "bob's", user="bob", connection="conn-b1")
    _answer_everything(deployment)

    answer = deployment.route(commands.handler, {"action": "deleteAllData"})

    assert answer == {"type": "dataDeleted"}
    assert answer in deployment.frames("conn-a2")
    assert _listed(deployment) == []
    _answer_everything(deployment)
    for prefix in ("CONV#", "TURN#", "MSG#", "CURRENT"):
        assert _items(deployment, "alice", prefix) == [], prefix
    usage = deployment.route(commands.handler, {"action": "getUsage"})
    assert usage is not None
    assert usage["messages"] == 2  # quotas do not reset by deleting
    assert len(_items(deployment, "bob", "TURN#")) == 1
    # The user starts afresh.
    assert _send(deployment, "fresh start")["type"] == "accepted"


def test_titles_come_from_the_first_message_without_markdown_whether_or_not_the_reply_finished(
    deployment: Deployment,
) -> None:
    empty = deployment.route(commands.handler, {"action": "newConversation"})["conversationId"]  # type: ignore[index]
    assert _listed(deployment) == []  # an empty conversation is not listed

    accepted = _send(deployment, "## Compare **Rust** and [Go](https://go.dev) for `CLI` tools " + "x" * 100, empty)
    # Stopped before any reply: listed, titled from the message.
    deployment.route(commands.handler, {"action": "cancel", "messageId": accepted["messageId"]})
    [listed] = _listed(deployment)
    assert listed["conversationId"] == empty
    assert listed["title"].startswith("Compare Rust and Go for CLI tools x")
    assert len(listed["title"]) == 80
    assert listed["title"].endswith("…")
    # A second message never changes it.
    _send(deployment, "Another question", empty)
    _answer_everything(deployment)
    assert [item["title"] for item in _listed(deployment)] == [listed["title"]]


def test_retention_puts_a_ttl_on_conversations_turns_and_messages_and_use_pushes_it_back(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_DAYS", "30")
    reset_handlers()
    before = int(time.time())
    conversation_id = _send(deployment, "remember me")["conversationId"]
    _answer_everything(deployment)

    [conversation] = _items(deployment, "alice", "CONV#")
    [turn] = _items(deployment, "alice", "TURN#")
    [message] = _items(deployment, "alice", "MSG#")
    after = int(time.time())
    assert before + 30 * DAY_S <= int(conversation["expiresAt"]) <= after + 30 * DAY_S
    assert before + 30 * DAY_S <= int(turn["expiresAt"]) <= after + 30 * DAY_S
    # A message record is kept for deduplication no longer than it always was, and never beyond the retention.
    assert before + MESSAGE_TTL_SECONDS <= int(message["expiresAt"]) <= after + MESSAGE_TTL_SECONDS

    # Using the conversation pushes its expiry back (as if it had been written a week ago).
    deployment.table.update_item(
        Key={"pk": "USER#alice", "sk": f"CONV#{conversation_id}"},
        UpdateExpression="SET expiresAt = :earlier",
        ExpressionAttributeValues={":earlier": int(conversation["expiresAt"]) - 7 * DAY_S},
    )
    _send(deployment, "still here", conversation_id)
    [conversation] = _items(deployment, "alice", "CONV#")
    assert int(conversation["expiresAt"]) >= before + 30 * DAY_S


def test_retention_shorter_than_a_week_bounds_message_records_and_off_writes_no_ttl(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _send(deployment, "no retention")
    _answer_everything(deployment)
    assert "expiresAt" not in _items(deployment, "alice", "CONV#")[0]
    assert "expiresAt" not in _items(deployment, "alice", "TURN#")[0]

    monkeypatch.setenv("RETENTION_DAYS", "1")
    reset_handlers()
    now = int(time.time())
    _send(deployment, "short", user="carol", connection="conn-c1")
    [message] = _items(deployment, "carol", "MSG#")
    assert now + DAY_S <= int(message["expiresAt"]) <= now + DAY_S + 5


def test_an_expired_conversation_not_yet_swept_is_gone_for_every_reader(deployment: Deployment) -> None:
    conversation_id = _send(deployment, "old news")["conversationId"]
    _answer_everything(deployment)
    deployment.table.update_item(
        Key={"pk": "USER#alice", "sk": f"CONV#{conversation_id}"},
        UpdateExpression="SET expiresAt = :past",
        ExpressionAttributeValues={":past": int(time.time()) - 60},
    )
    assert _listed(deployment) == []
    for frame in (
        {"action": "getHistory", "conversationId": conversation_id},
        {"action": "renameConversation", "conversationId": conversation_id, "title": "t"},
    ):
        answer = deployment.route(commands.handler, frame)
        assert answer is not None
        assert answer["code"] == "not_found"


def test_a_turn_past_its_retention_is_neither_shown_nor_sent_to_the_model(deployment: Deployment) -> None:
    conversation_id = _send(deployment, "an old question")["conversationId"]
    _answer_everything(deployment)
    [old] = _items(deployment, "alice", "TURN#")
    deployment.table.update_item(
        Key={"pk": old["pk"], "sk": old["sk"]},
        UpdateExpression="SET expiresAt = :past",
        ExpressionAttributeValues={":past": int(time.time()) - 1},
    )
    _send(deployment, "a new question", conversation_id)
    _answer_everything(deployment)

    history = deployment.route(commands.handler, {"action": "getHistory", "conversationId": conversation_id})
    assert history is not None
    assert [m["text"] for m in history["messages"] if m["role"] == "user"] == ["a new question"]
    sent = [r.body for r in deployment.model.requests if r.method == "POST" and r.body]
    assert "an old question" not in str(sent[-1]["input"])


def test_parallel_deletes_of_one_conversation_delete_it_once(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from scripts.local_stack.aws.moto_patches import serialise_moto_dynamodb

    serialise_moto_dynamodb()
    monkeypatch.setenv("RATE_LIMIT_DELETE_CONVERSATION", "100/100")
    reset_handlers()
    conversation_id = _send(deployment, "delete me, many times")["conversationId"]
    frame = {"action": "deleteConversation", "conversationId": conversation_id}
    commands.dependencies()  # built once, before the threads share it
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: deployment.route(commands.handler, frame), range(8)))

    kinds = [a["type"] if a["type"] != "error" else a["code"] for a in answers if a]
    assert len(kinds) == 8
    assert kinds.count("conversationDeleted") == 1
    # The rest found it gone, or lost the race for the rate-limit bucket (refused before acting, never overspent).
    assert set(kinds) - {"conversationDeleted"} <= {"not_found", "rate_limited"}
    again = deployment.route(commands.handler, frame)
    assert again is not None
    assert again["code"] == "not_found"
