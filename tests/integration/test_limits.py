"""Cost safety through the handlers: usage, per-user rate limits, the connection cap, connections that end with
their token. boto3 against moto, the real ``openai`` SDK against the offline model."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import commands
import connect
import default
import disconnect
import pytest
import send_message
import worker

from assistant.queue import QueuedMessage
from assistant.stores.usage import UsageStore
from assistant.wiring import STAGE_DEFAULTS
from scripts.local_stack.aws.moto_patches import serialise_moto_dynamodb
from scripts.local_stack.offline_model import Fault
from tests.connections_api import RecordingApi
from tests.handlers import reset_handlers
from tests.integration.conftest import Deployment


def _limit(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    reset_handlers()


def _queued(deployment: Deployment) -> int:
    attributes = deployment.sqs.get_queue_attributes(
        QueueUrl=deployment.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _second_is_refused(deployment: Deployment, handler: Any, frame: dict[str, Any]) -> None:
    """With a bucket of one: the first ``frame`` is answered (not refused), the second refused with ``rate_limited``."""
    first = deployment.route(handler, frame)
    second = deployment.route(handler, frame)
    assert first is not None
    assert first.get("code") != "rate_limited"
    assert second is not None
    assert second["code"] == "rate_limited"


def _ask_for_a_tool_round_and_see_the_quota_stop_it(deployment: Deployment) -> None:
    """A message whose reply calls a tool: the first round is asked, the quota refuses the second (one model call)."""
    assert deployment.call(connect.handler, deployment.ws_event("$connect"))["statusCode"] == 200
    deployment.route(send_message.handler, {"action": "sendMessage", "message": "What time is it in Tokyo?"})
    assert deployment.deliver(deployment.receive()) == []

    frames = deployment.frames("conn-a1")
    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "quota_exceeded"
    posted = [r for r in deployment.model.requests if r.method == "POST" and r.path.endswith("/responses")]
    assert len(posted) == 1


def test_get_usage_reports_today_with_the_quotas(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    _limit(monkeypatch, DAILY_MESSAGE_QUOTA="7", DAILY_OUTPUT_TOKEN_QUOTA="9000", DAILY_INPUT_TOKEN_QUOTA="90000")
    assert deployment.call(connect.handler, deployment.ws_event("$connect"))["statusCode"] == 200
    before = deployment.route(commands.handler, {"action": "getUsage"})
    assert before is not None
    assert (before["type"], before["messages"], before["inputTokens"], before["outputTokens"]) == ("usage", 0, 0, 0)
    assert (before["messageQuota"], before["outputTokenQuota"], before["inputTokenQuota"]) == (7, 9000, 90000)
    assert before["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert before["resetsAt"].endswith("T00:00:00.000Z")

    deployment.route(send_message.handler, {"action": "sendMessage", "message": "Hello"})
    assert deployment.deliver(deployment.receive()) == []
    done = next(f for f in deployment.frames("conn-a1") if f["type"] == "done")

    after = deployment.route(commands.handler, {"action": "getUsage"})
    assert after is not None
    assert after["messages"] == 1
    # Input tokens are counted too, not only output.
    assert (after["inputTokens"], after["outputTokens"]) == (
        done["usage"]["inputTokens"],
        done["usage"]["outputTokens"],
    )
    assert after["inputTokens"] > 0


def test_send_message_beyond_the_rate_is_refused_and_leaves_no_trace(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limit(monkeypatch, RATE_LIMIT_SEND_MESSAGE="2/1")
    answers = [
        deployment.route(send_message.handler, {"action": "sendMessage", "message": "hi", "messageId": f"m{i}"})
        for i in range(3)
    ]

    assert [a["type"] for a in answers if a] == ["accepted", "accepted", "error"]
    refused = answers[2]
    assert refused is not None
    assert refused["code"] == "rate_limited"
    assert isinstance(refused["retryAfterMs"], int)
    assert 0 < refused["retryAfterMs"] <= 60_000
    assert _queued(deployment) == 2
    assert worker.dependencies().messages.get("alice", "m2") is None
    # The connection keeps working for what is not limited, and other users have buckets of their own.
    assert deployment.route(commands.handler, {"action": "ping"}) == {"type": "pong"}
    other = deployment.route(send_message.handler, {"action": "sendMessage", "message": "hi"}, user="bob")
    assert other is not None
    assert other["type"] == "accepted"


@pytest.mark.parametrize(
    ("variable", "frame"),
    [
        ("RATE_LIMIT_CANCEL", {"action": "cancel", "messageId": "m-none"}),
        ("RATE_LIMIT_PING", {"action": "ping"}),
        ("RATE_LIMIT_GET_USAGE", {"action": "getUsage"}),
        ("RATE_LIMIT_NEW_CONVERSATION", {"action": "newConversation"}),
        ("RATE_LIMIT_LIST_CONVERSATIONS", {"action": "listConversations"}),
        ("RATE_LIMIT_GET_HISTORY", {"action": "getHistory", "conversationId": "c_nope"}),
        (
            "RATE_LIMIT_RENAME_CONVERSATION",
            {"action": "renameConversation", "conversationId": "c_nope", "title": "t"},
        ),
        ("RATE_LIMIT_DELETE_CONVERSATION", {"action": "deleteConversation", "conversationId": "c_nope"}),
        ("RATE_LIMIT_DELETE_ALL_DATA", {"action": "deleteAllData"}),
    ],
)
def test_each_command_has_its_own_limit(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, variable: str, frame: dict[str, Any]
) -> None:
    _limit(monkeypatch, **{variable: "1/1"})
    _second_is_refused(deployment, commands.handler, frame)


@pytest.mark.parametrize(
    ("variable", "frame"),
    [
        (
            "RATE_LIMIT_REQUEST_UPLOAD",
            {"action": "requestUpload", "fileName": "a.png", "contentType": "image/png", "size": 10},
        ),
        ("RATE_LIMIT_GET_ATTACHMENT", {"action": "getAttachment", "uploadId": "u_" + "0" * 24}),
    ],
)
def test_each_attachment_action_has_its_own_limit(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, variable: str, frame: dict[str, Any]
) -> None:
    _limit(monkeypatch, **{variable: "1/1"})
    _second_is_refused(deployment, send_message.handler, frame)
    # sendMessage's own bucket is untouched.
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "hi"})
    assert accepted is not None
    assert accepted["type"] == "accepted"


def test_a_repeated_message_id_is_charged_against_send_message(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeats of an already-recorded id are answered with the original `accepted` while the bucket has tokens,
    and refused like new messages once it is empty: a repeat is not a free request."""
    _limit(monkeypatch, RATE_LIMIT_SEND_MESSAGE="3/1")
    frame = {"action": "sendMessage", "message": "hi", "messageId": "m-same"}
    answers = [deployment.route(send_message.handler, frame) for _ in range(5)]
    assert [a["type"] for a in answers if a] == ["accepted"] * 3 + ["error"] * 2
    assert {a["messageId"] for a in answers[:3] if a} == {"m-same"}
    assert {a["code"] for a in answers[3:] if a} == {"rate_limited"}
    assert _queued(deployment) == 1


def test_connecting_too_often_is_refused_with_429(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    _limit(monkeypatch, RATE_LIMIT_CONNECT="2/1")
    statuses = []
    for i in range(3):
        event = deployment.ws_event("$connect", connection=f"conn-{i}")
        statuses.append(deployment.call(connect.handler, event)["statusCode"])
        deployment.call(disconnect.handler, deployment.ws_event("$disconnect", connection=f"conn-{i}"))
    assert statuses == [200, 200, 429]
    other = deployment.ws_event("$connect", connection="conn-b", user="bob")
    assert deployment.call(connect.handler, other)["statusCode"] == 200


def test_the_newest_connection_beyond_the_cap_is_refused(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limit(monkeypatch, MAX_CONNECTIONS_PER_USER="2")
    statuses = [
        deployment.call(connect.handler, deployment.ws_event("$connect", connection=f"conn-{i}"))["statusCode"]
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert sorted(worker.dependencies().connections.list_ids("alice")) == ["conn-0", "conn-1"]


def test_forty_parallel_connects_leave_at_most_ten_open(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda runs many `$connect`s of one user at once; counting first and inserting after let 12-13 of 40 in.

    In-process moto checks a transaction's conditions and writes in separate steps without a lock, which DynamoDB
    never does; the local stack's patch (``serialise_moto_dynamodb``) runs its item operations one at a time, as
    atomic as DynamoDB's conditional writes, so this measures our code and not moto's races."""
    serialise_moto_dynamodb()
    _limit(monkeypatch, RATE_LIMIT_CONNECT="1000/1000")  # the cap, not the user's connect bucket, is under test
    cap = STAGE_DEFAULTS.max_connections_per_user

    def open_one(i: int) -> int:
        event = deployment.ws_event("$connect", connection=f"conn-{i}")
        return int(deployment.call(connect.handler, event)["statusCode"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(open_one, range(40)))

    assert statuses.count(200) == cap
    assert set(statuses) == {200, 429}
    opened = worker.dependencies().connections.list_ids("alice")
    assert len(opened) == cap
    # A closed tab frees its place, once, however many times it is reported closed.
    for _ in range(2):
        deployment.call(disconnect.handler, deployment.ws_event("$disconnect", connection=opened[0]))
    assert open_one(40) == 200
    assert open_one(41) == 429


@pytest.mark.parametrize(
    ("handler", "frame"),
    [
        (send_message.handler, {"action": "sendMessage", "message": "still there?", "messageId": "m-late"}),
        (commands.handler, {"action": "listConversations"}),
        (default.handler, {"action": "nope"}),
    ],
)
def test_a_connection_whose_token_expired_is_told_and_closed(
    deployment: Deployment, recording_api: RecordingApi, handler: Any, frame: dict[str, Any]
) -> None:
    event = deployment.ws_event("sendMessage", frame)
    # Expired 31 s ago: past the 30 s leeway the authorizer also allows.
    event["requestContext"]["authorizer"]["exp"] = str(int(time.time()) - 31)

    response = deployment.call(handler, event)

    assert "body" not in response  # said by a post, because a route response would arrive after the close
    assert recording_api.order() == [("post", "conn-a1"), ("delete", "conn-a1")]
    assert recording_api.calls[0][2]["code"] == "token_expired"
    assert _queued(deployment) == 0
    assert worker.dependencies().messages.get("alice", "m-late") is None


def test_a_token_within_its_leeway_still_works(deployment: Deployment) -> None:
    event = deployment.ws_event("ping", {"action": "ping"})
    event["requestContext"]["authorizer"]["exp"] = str(int(time.time()) - 5)
    response = deployment.call(commands.handler, event)
    assert json.loads(response["body"]) == {"type": "pong"}


def test_replies_stop_going_to_a_connection_once_its_token_expired(deployment: Deployment) -> None:
    now = time.time()
    fresh = deployment.ws_event("$connect", connection="conn-fresh")
    fresh["requestContext"]["authorizer"]["exp"] = str(int(now) + 3600)
    stale = deployment.ws_event("$connect", connection="conn-stale")
    stale["requestContext"]["authorizer"]["exp"] = str(int(now) - 60)
    for event in (fresh, stale):
        assert deployment.call(connect.handler, event)["statusCode"] == 200

    assert worker.dependencies().connections.list_ids("alice") == ["conn-fresh"]


def _usage(deployment: Deployment) -> tuple[int, int]:
    usage = UsageStore(deployment.table).today("alice")
    return usage.input_tokens, usage.output_tokens


@pytest.mark.parametrize(
    ("fault", "provider_reports_usage"),
    [
        pytest.param(Fault.incomplete("max_output_tokens", after_deltas=3), True, id="cut-off-at-max-output-tokens"),
        pytest.param(Fault.incomplete("content_filter", after_deltas=3), True, id="content-filter"),
        pytest.param(Fault.failed(after_deltas=3), False, id="failed"),
    ],
)
def test_replies_that_do_not_finish_still_count_their_tokens(
    deployment: Deployment, fault: Any, provider_reports_usage: bool
) -> None:
    assert deployment.call(connect.handler, deployment.ws_event("$connect"))["statusCode"] == 200
    deployment.model.faults.push(fault)
    deployment.route(send_message.handler, {"action": "sendMessage", "message": "Tell me about tides"})
    assert deployment.deliver(deployment.receive()) == []
    frames = deployment.frames("conn-a1")
    assert frames[-1]["type"] == "error"

    input_tokens, output_tokens = _usage(deployment)
    assert output_tokens >= 1
    # Where the provider reported the response's usage it is counted as reported; where it did not (a failed
    # response), input is estimated from the request that was sent and output from what streamed: never 0.
    assert input_tokens > 0
    if not provider_reports_usage:
        assert input_tokens >= len(deployment.model.requests[-1].body["instructions"]) // 5


def test_a_redelivered_reply_is_not_counted_twice(deployment: Deployment) -> None:
    assert deployment.call(connect.handler, deployment.ws_event("$connect"))["statusCode"] == 200
    deployment.route(send_message.handler, {"action": "sendMessage", "message": "Hello", "messageId": "m-once"})
    records = deployment.receive()
    assert deployment.deliver(records) == []
    once = _usage(deployment)
    record = worker.dependencies().messages.get("alice", "m-once")
    assert record is not None
    # SQS delivers the same record again (the first delete was lost): nothing is asked, nothing counted.
    worker.dependencies().reply_service.handle(QueuedMessage.model_validate_json(records[0]["body"]), attempt=2)
    assert _usage(deployment) == once


def test_the_quota_is_checked_before_every_round_of_a_reply(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool-calling reply whose first round used up the day's output tokens never asks the model again."""
    _limit(monkeypatch, DAILY_OUTPUT_TOKEN_QUOTA="1")
    _ask_for_a_tool_round_and_see_the_quota_stop_it(deployment)
    assert _usage(deployment)[1] >= 1


def test_the_input_token_quota_alone_refuses_a_message_at_intake(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only input tokens are spent (a long conversation resends its history): messages and output tokens are far
    from their quotas, and the message is still refused before anything is recorded or enqueued."""
    _limit(monkeypatch, DAILY_INPUT_TOKEN_QUOTA="5000")
    day = UsageStore.day_key("alice", now=time.time())
    deployment.table.put_item(Item={**day, "messages": 1, "inputTokens": 5000, "outputTokens": 10})

    refused = deployment.route(send_message.handler, {"action": "sendMessage", "message": "hi", "messageId": "m-in"})

    assert refused is not None
    assert refused["code"] == "quota_exceeded"
    assert worker.dependencies().messages.get("alice", "m-in") is None
    assert _queued(deployment) == 0
    deployment.table.put_item(Item={**day, "messages": 1, "inputTokens": 4999, "outputTokens": 10})
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "hi"})
    assert accepted is not None
    assert accepted["type"] == "accepted"


def test_the_input_token_quota_is_checked_before_every_round_of_a_reply(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool-calling reply whose first round used up the day's input tokens (output far from its quota) never
    asks the model again."""
    _limit(monkeypatch, DAILY_INPUT_TOKEN_QUOTA="1", DAILY_OUTPUT_TOKEN_QUOTA="1000000")
    _ask_for_a_tool_round_and_see_the_quota_stop_it(deployment)
    input_tokens, output_tokens = _usage(deployment)
    assert input_tokens >= 1
    assert output_tokens < 1000000


def test_too_many_waiting_messages_are_refused_at_intake_until_one_is_answered(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limit(monkeypatch, MAX_WAITING_MESSAGES="2")

    def send(message_id: str) -> dict[str, Any]:
        answer = deployment.route(
            send_message.handler, {"action": "sendMessage", "message": "hi", "messageId": message_id}
        )
        assert answer is not None
        return answer

    assert [send("w1")["type"], send("w2")["type"]] == ["accepted", "accepted"]
    refused = send("w3")
    assert (refused["code"], refused["retryAfterMs"]) == ("rate_limited", 5000)
    assert worker.dependencies().messages.get("alice", "w3") is None
    assert _queued(deployment) == 2
    # A retry of a waiting message is still the same message, not a new one to refuse.
    assert send("w1")["type"] == "accepted"

    # Cancelling one that waits frees its place at once; answering one frees it when it is claimed.
    assert deployment.route(commands.handler, {"action": "cancel", "messageId": "w2"})["type"] == "cancelled"
    assert send("w3")["type"] == "accepted"
    assert deployment.deliver(deployment.receive()) == []
    assert send("w4")["type"] == "accepted"


def test_a_waiting_entry_whose_message_vanished_does_not_block_the_user(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limit(monkeypatch, MAX_WAITING_MESSAGES="1")
    deployment.route(send_message.handler, {"action": "sendMessage", "message": "hi", "messageId": "gone"})
    # The record expired (TTL) while still listed as waiting: the next message prunes it instead of being refused.
    deployment.table.delete_item(Key={"pk": "USER#alice", "sk": "MSG#gone"})
    answer = deployment.route(send_message.handler, {"action": "sendMessage", "message": "hi", "messageId": "next"})
    assert answer is not None
    assert answer["type"] == "accepted"


def test_a_user_keeps_a_bounded_number_of_conversations(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limit(monkeypatch, MAX_CONVERSATIONS_PER_USER="2")
    answers = [deployment.route(commands.handler, {"action": "newConversation"}) for _ in range(3)]
    assert [a["type"] for a in answers if a] == ["conversation", "conversation", "error"]
    refused = answers[2]
    assert refused is not None
    assert refused["code"] == "quota_exceeded"
    assert "2 conversations" in refused["message"]
    # Nothing else is refused: the user continues one they have (listed once it has a message).
    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "still here"})
    assert accepted is not None
    assert accepted["type"] == "accepted"
    listed = deployment.route(commands.handler, {"action": "listConversations"})
    assert listed is not None
    assert [item["conversationId"] for item in listed["items"]] == [accepted["conversationId"]]
