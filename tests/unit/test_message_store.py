"""The message record's transitions against moto: claim with quota, cancel, checkpoint, finish."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.stores.keys import conversation_sk, key, message_sk
from assistant.stores.messages import ClaimOutcome, MessageRecord, MessageStatus, MessageStore
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import Turn, TurnStatus, TurnStore
from assistant.stores.usage import Quotas, UsageStore
from assistant.stores.waiting import TooManyWaiting

NOW = 1_764_000_000.0  # 2025-11-24 (UTC)


@pytest.fixture
def store(ddb_table: Any) -> MessageStore:
    # The conversation the messages belong to: a claim and a finished turn check that it still exists.
    ddb_table.put_item(Item={**key("alice", conversation_sk("c_1")), "conversationId": "c_1"})
    return MessageStore(ddb_table)


QUOTAS = Quotas(messages=10, input_tokens=1_000_000, output_tokens=1_000)


def _turn(record: MessageRecord, status: MessageStatus) -> Turn:
    """The turn a worker writes with the message's final status."""
    return Turn(record.conversation_id, record.message_id, record.created_at, "hi", "hello", TurnStatus(status.value))


def _claim(store: MessageStore, message_id: str, *, messages: int = 10, tokens: int = 1_000) -> ClaimOutcome:
    record, _ = store.create("alice", message_id, "c_1", now=NOW)
    quotas = Quotas(messages=messages, input_tokens=1_000_000, output_tokens=tokens)
    return store.claim(record, now=NOW, quotas=quotas).outcome


def test_a_message_is_claimed_once(store: MessageStore) -> None:
    assert _claim(store, "m1") is ClaimOutcome.CLAIMED
    record = store.get("alice", "m1")
    assert record is not None
    assert record.status is MessageStatus.STREAMING
    again = store.claim(record, now=NOW, quotas=QUOTAS)
    assert again.outcome is ClaimOutcome.CONFLICT
    assert UsageStore(store._table).today("alice", now=NOW).messages == 1


def test_a_claim_needs_no_read_and_a_failed_one_returns_the_record_it_found(store: MessageStore) -> None:
    """The worker claims the record the queue message describes, unread; when that is not what is stored, the
    claim changes nothing and says what is there (ReturnValuesOnConditionCheckFailure), so no read follows."""
    created, _ = store.create("alice", "m1", "c_1", now=NOW)
    expected = MessageRecord.queued("alice", "m1", "c_1", created_at=iso_utc(NOW))
    assert expected == created

    claim = store.claim(expected, now=NOW, quotas=QUOTAS)
    assert claim.outcome is ClaimOutcome.CLAIMED
    assert claim.found is None

    duplicate = store.claim(expected, now=NOW, quotas=QUOTAS)
    assert duplicate.outcome is ClaimOutcome.CONFLICT
    assert duplicate.found == store.get("alice", "m1")
    assert duplicate.found is not None
    assert duplicate.found.status is MessageStatus.STREAMING
    assert UsageStore(store._table).today("alice", now=NOW).messages == 1

    missing = store.claim(MessageRecord.queued("alice", "nope", "c_1", created_at=iso_utc(NOW)), now=NOW, quotas=QUOTAS)
    assert (missing.outcome, missing.found) == (ClaimOutcome.CONFLICT, None)


def test_a_claim_that_expects_another_record_claims_nothing(store: MessageStore) -> None:
    """A record created earlier than the queue message says (a client's retry re-enqueued it), or in another
    conversation, is not claimed as if it were the expected one; the caller gets the real one to claim."""
    store.create("alice", "m1", "c_1", now=NOW)
    later = MessageRecord.queued("alice", "m1", "c_1", created_at=iso_utc(NOW + 60))
    elsewhere = MessageRecord.queued("alice", "m1", "c_2", created_at=iso_utc(NOW))
    found = []
    for wrong in (later, elsewhere):
        claim = store.claim(wrong, now=NOW, quotas=QUOTAS)
        assert claim.outcome is ClaimOutcome.CONFLICT
        assert claim.found is not None
        found.append(claim.found)
    assert found == [store.get("alice", "m1")] * 2
    assert found[0].status is MessageStatus.QUEUED
    assert UsageStore(store._table).today("alice", now=NOW).messages == 0
    assert store.claim(found[0], now=NOW, quotas=QUOTAS).outcome is ClaimOutcome.CLAIMED


def test_the_message_quota_stops_the_claim_and_counts_nothing(store: MessageStore) -> None:
    assert _claim(store, "m1", messages=1) is ClaimOutcome.CLAIMED
    assert _claim(store, "m2", messages=1) is ClaimOutcome.QUOTA_EXCEEDED
    assert store.get("alice", "m2").status is MessageStatus.QUEUED  # type: ignore[union-attr]
    assert UsageStore(store._table).today("alice", now=NOW).messages == 1


def test_output_tokens_used_up_stop_the_next_claim(store: MessageStore) -> None:
    assert _claim(store, "m1", tokens=100) is ClaimOutcome.CLAIMED
    record = store.get("alice", "m1")
    assert record is not None
    assert store.count_usage(record, response_id="resp_1", input_tokens=5, output_tokens=100, now=NOW)
    assert store.finish(record, status=MessageStatus.DONE, now=NOW, turn=_turn(record, MessageStatus.DONE))
    assert UsageStore(store._table).today("alice", now=NOW).output_tokens == 100
    assert _claim(store, "m2", tokens=100) is ClaimOutcome.QUOTA_EXCEEDED


def test_quotas_are_per_utc_day(store: MessageStore) -> None:
    assert _claim(store, "m1", messages=1) is ClaimOutcome.CLAIMED
    record, _ = store.create("alice", "m2", "c_1", now=NOW)
    tomorrow = NOW + 24 * 3600
    claim = store.claim(record, now=tomorrow, quotas=Quotas(messages=1, input_tokens=1_000_000, output_tokens=1_000))
    assert claim.outcome is ClaimOutcome.CLAIMED


def test_cancel_of_a_queued_message_is_final_at_once(store: MessageStore) -> None:
    store.create("alice", "m1", "c_1", now=NOW)
    cancelled = store.request_cancel("alice", "m1")
    assert cancelled is not None
    assert (cancelled.record.status, cancelled.first) == (MessageStatus.CANCELLED, True)
    again = store.request_cancel("alice", "m1")
    assert again is not None
    assert (again.record.status, again.first) == (MessageStatus.CANCELLED, False)
    assert store.request_cancel("alice", "unknown") is None
    assert store.request_cancel("bob", "m1") is None  # someone else's message is nobody's


def test_cancel_of_a_streaming_message_makes_its_next_checkpoint_fail(store: MessageStore) -> None:
    assert _claim(store, "m1") is ClaimOutcome.CLAIMED
    record = store.get("alice", "m1")
    assert record is not None
    assert store.start_round(record, response_id="resp_1", round_start=0, last_seq=-1)
    assert store.checkpoint_frame(record, seq=0, frame_start=0, frame_end=5)
    flagged = store.request_cancel("alice", "m1")
    assert flagged is not None
    assert (flagged.record.status, flagged.record.cancel_requested, flagged.first) == (
        MessageStatus.STREAMING,
        True,
        True,
    )
    repeated = store.request_cancel("alice", "m1")  # already on record: not the first request to stop it
    assert repeated is not None
    assert (repeated.record.cancel_requested, repeated.first) == (True, False)
    assert not store.checkpoint_frame(record, seq=1, frame_start=5, frame_end=9)
    checkpoint = store.get("alice", "m1").checkpoint  # type: ignore[union-attr]
    assert (checkpoint.response_id, checkpoint.seq, checkpoint.frame_start, checkpoint.frame_end) == ("resp_1", 0, 0, 5)


def test_a_finished_message_cannot_be_finished_or_cancelled_again(store: MessageStore) -> None:
    assert _claim(store, "m1") is ClaimOutcome.CLAIMED
    record = store.get("alice", "m1")
    assert record is not None
    assert store.count_usage(record, response_id="resp_1", input_tokens=1, output_tokens=7, now=NOW)
    assert store.finish(record, status=MessageStatus.DONE, now=NOW, turn=_turn(record, MessageStatus.DONE))
    assert not store.finish(
        record, status=MessageStatus.FAILED, now=NOW, error_code="internal", turn=_turn(record, MessageStatus.FAILED)
    )
    again = store.request_cancel("alice", "m1")
    assert again is not None
    assert (again.record.status, again.first) == (MessageStatus.DONE, False)
    assert UsageStore(store._table).today("alice", now=NOW).output_tokens == 7


def test_a_repeated_message_id_returns_the_original_record(store: MessageStore) -> None:
    first, created = store.create("alice", "m1", "c_1", now=NOW)
    assert created
    second, created_again = store.create("alice", "m1", "c_2", now=NOW + 5)
    assert not created_again
    assert second.conversation_id == "c_1"
    assert second.created_at == first.created_at


def test_each_response_is_counted_once_whatever_the_deliveries(store: MessageStore) -> None:
    """A redelivery that resumes a response reports its usage again; the message remembers what it counted."""
    assert _claim(store, "m1") is ClaimOutcome.CLAIMED
    record = store.get("alice", "m1")
    assert record is not None
    assert store.count_usage(record, response_id="resp_a", input_tokens=10, output_tokens=4, now=NOW)
    assert not store.count_usage(record, response_id="resp_a", input_tokens=10, output_tokens=4, now=NOW)
    assert store.count_usage(record, response_id="resp_b", input_tokens=20, output_tokens=6, now=NOW)
    usage = UsageStore(store._table).today("alice", now=NOW)
    assert (usage.input_tokens, usage.output_tokens) == (30, 10)


def test_a_stopped_or_failed_reply_keeps_what_it_counted(store: MessageStore) -> None:
    assert _claim(store, "m1") is ClaimOutcome.CLAIMED
    record = store.get("alice", "m1")
    assert record is not None
    assert store.count_usage(record, response_id="resp_a", input_tokens=0, output_tokens=9, now=NOW)
    assert store.finish(record, status=MessageStatus.CANCELLED, now=NOW, turn=_turn(record, MessageStatus.CANCELLED))
    assert UsageStore(store._table).today("alice", now=NOW).output_tokens == 9


def test_a_finish_writes_the_turn_once(store: MessageStore, ddb_table: Any) -> None:
    assert _claim(store, "m1") is ClaimOutcome.CLAIMED
    record = store.get("alice", "m1")
    assert record is not None
    assert store.finish(record, status=MessageStatus.DONE, now=NOW, turn=_turn(record, MessageStatus.DONE))
    assert not store.finish(record, status=MessageStatus.FAILED, now=NOW, turn=_turn(record, MessageStatus.FAILED))
    [turn] = TurnStore(ddb_table).page("alice", "c_1", limit=10)[0]
    assert (turn.message_id, turn.status, turn.assistant_text) == ("m1", TurnStatus.DONE, "hello")


def test_waiting_messages_are_capped_until_one_is_claimed_or_cancelled(store: MessageStore) -> None:
    for message_id in ("w1", "w2"):
        store.create("alice", message_id, "c_1", now=NOW, max_waiting=2)
    with pytest.raises(TooManyWaiting):
        store.create("alice", "w3", "c_1", now=NOW, max_waiting=2)
    assert store.get("alice", "w3") is None  # refused: nothing recorded

    w1 = store.get("alice", "w1")
    assert w1 is not None
    assert store.claim(w1, now=NOW, quotas=QUOTAS).outcome is ClaimOutcome.CLAIMED  # leaves the set
    store.create("alice", "w3", "c_1", now=NOW, max_waiting=2)
    store.request_cancel("alice", "w2")  # leaves the set as well
    store.create("alice", "w4", "c_1", now=NOW, max_waiting=2)
    with pytest.raises(TooManyWaiting):
        store.create("alice", "w5", "c_1", now=NOW, max_waiting=2)


def test_a_waiting_entry_whose_record_expired_is_pruned_when_the_set_is_full(
    store: MessageStore, ddb_table: Any
) -> None:
    store.create("alice", "w1", "c_1", now=NOW, max_waiting=1)
    ddb_table.delete_item(Key=key("alice", message_sk("w1")))  # TTL swept the record; its entry stayed behind
    record, created = store.create("alice", "w2", "c_1", now=NOW, max_waiting=1)
    assert created
    assert record.status is MessageStatus.QUEUED
