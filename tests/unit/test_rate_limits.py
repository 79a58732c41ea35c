"""The per-user token buckets: arithmetic on a fake clock, and the optimistic concurrency that makes them hold
across concurrent Lambdas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from assistant.errors import RateLimited
from assistant.stores.messages import AlsoRefused, MessageStore
from assistant.stores.rate_limits import BucketMoved, RateLimit, RateLimiter
from tests.conftest import FakeClock

CHAT = RateLimit(burst=3, per_minute=6)  # one token every 10 s


def _refused(limiter: RateLimiter, user: str = "alice") -> RateLimited:
    with pytest.raises(RateLimited) as refused:
        limiter.take(user, "sendMessage", CHAT)
    return refused.value


def test_a_burst_is_allowed_then_refused_with_the_wait_until_the_next_token(
    ddb_table: Any, fake_clock: FakeClock
) -> None:
    limiter = RateLimiter(ddb_table, clock=fake_clock)
    for _ in range(CHAT.burst):
        limiter.take("alice", "sendMessage", CHAT)

    refused = _refused(limiter)

    assert refused.code.value == "rate_limited"
    assert refused.retry_after_ms == 10_000
    fake_clock.advance(4)
    assert _refused(limiter).retry_after_ms == 6_000


def test_tokens_refill_at_the_rate_and_never_beyond_the_burst(ddb_table: Any, fake_clock: FakeClock) -> None:
    limiter = RateLimiter(ddb_table, clock=fake_clock)
    for _ in range(CHAT.burst):
        limiter.take("alice", "sendMessage", CHAT)
    fake_clock.advance(10)
    limiter.take("alice", "sendMessage", CHAT)  # one token came back
    _refused(limiter)

    fake_clock.advance(3600)  # an hour idle refills to the burst, not to 360
    for _ in range(CHAT.burst):
        limiter.take("alice", "sendMessage", CHAT)
    _refused(limiter)


def test_a_refused_request_costs_nothing_and_buckets_are_per_user_and_kind(
    ddb_table: Any, fake_clock: FakeClock
) -> None:
    limiter = RateLimiter(ddb_table, clock=fake_clock)
    for _ in range(CHAT.burst):
        limiter.take("alice", "sendMessage", CHAT)
    for _ in range(5):
        _refused(limiter)  # hammering a full bucket does not push the next token further away
    fake_clock.advance(10)
    limiter.take("alice", "sendMessage", CHAT)

    limiter.take("bob", "sendMessage", CHAT)
    limiter.take("alice", "getHistory", CHAT)


class _Interleaved:
    """Lets another limiter take a token between this one's read and its conditional write, as a concurrent
    Lambda would."""

    def __init__(self, table: Any, other: RateLimiter, times: int) -> None:
        self._table = table
        self._other = other
        self._remaining = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def update_item(self, **kwargs: Any) -> Any:
        if self._remaining > 0:
            self._remaining -= 1
            self._other.take("alice", "sendMessage", CHAT)
        return self._table.update_item(**kwargs)


def test_concurrent_takes_never_spend_the_same_token_twice(ddb_table: Any, fake_clock: FakeClock) -> None:
    """Two Lambdas read the same bucket; the second write must fail its version check and re-read.

    moto evaluates each conditional write atomically, which is all this relies on: unlike a transaction across
    items (which moto does not isolate), a single conditional UpdateItem is checked and applied in one step.
    """
    other = RateLimiter(ddb_table, clock=fake_clock)
    limiter = RateLimiter(_Interleaved(ddb_table, other, times=2), clock=fake_clock)

    limiter.take("alice", "sendMessage", CHAT)  # lost the race twice, re-read, then took the last token

    _refused(RateLimiter(ddb_table, clock=fake_clock))


def test_losing_every_race_refuses_instead_of_overspending(ddb_table: Any, fake_clock: FakeClock) -> None:
    other = RateLimiter(ddb_table, clock=fake_clock)
    many = RateLimit(burst=100, per_minute=6)

    class AlwaysBeaten(_Interleaved):
        def update_item(self, **kwargs: Any) -> Any:
            other.take("alice", "sendMessage", many)
            return self._table.update_item(**kwargs)

    limiter = RateLimiter(AlwaysBeaten(ddb_table, other, times=0), clock=fake_clock)
    with pytest.raises(RateLimited) as refused:
        limiter.take("alice", "sendMessage", many)
    assert refused.value.retry_after_ms == 1000


@pytest.mark.parametrize(("text", "limit"), [("10/30", RateLimit(10, 30)), (" 5 / 0.5 ", RateLimit(5, 0.5))])
def test_limits_parse_from_settings(text: str, limit: RateLimit) -> None:
    assert RateLimit.parse(text) == limit


@pytest.mark.parametrize("text", ["", "10", "10/", "/30", "0/30", "10/0", "ten/30", "-1/5"])
def test_bad_limits_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimit.parse(text)


def test_a_bucket_read_with_other_items_spares_the_read_and_a_stale_one_is_read_again(
    ddb_table: Any, fake_clock: FakeClock
) -> None:
    limiter = RateLimiter(ddb_table, clock=fake_clock)
    bucket_key = RateLimiter.bucket_key("alice", "sendMessage")
    reads: list[str] = []

    class CountingTable:
        def __getattr__(self, name: str) -> Any:
            return getattr(ddb_table, name)

        def get_item(self, **kwargs: Any) -> Any:
            reads.append(kwargs["Key"]["sk"])
            return ddb_table.get_item(**kwargs)

    counted = RateLimiter(CountingTable(), clock=fake_clock)
    counted.take("alice", "sendMessage", CHAT, read=None)  # read as absent by the caller: no read here
    assert reads == []
    fresh = ddb_table.get_item(Key=bucket_key, ConsistentRead=True)["Item"]
    counted.take("alice", "sendMessage", CHAT, read=fresh)
    assert reads == []

    # A caller's read that another Lambda has since overtaken: the versioned write fails, the bucket is read again,
    # and the last token is not spent twice.
    counted.take("alice", "sendMessage", CHAT, read=fresh)
    assert reads == [bucket_key["sk"]]
    _refused(limiter)


def test_a_token_taken_in_the_callers_transaction_survives_a_lost_race_and_a_repeat_takes_none(
    ddb_table: Any, fake_clock: FakeClock
) -> None:
    """sendMessage writes the bucket's token in the message record's transaction (``write``). A bucket read before
    another Lambda took a token fails that transaction on the bucket's condition: nothing is recorded, the bucket is
    read again, and the message is recorded once with its token. A client's retry of the same message id writes
    nothing, so it takes no token. (moto checks each item's condition in a transaction; that is all this needs.)"""
    limiter = RateLimiter(ddb_table, clock=fake_clock)
    store = MessageStore(ddb_table)
    stale = None  # our read: no bucket yet
    RateLimiter(ddb_table, clock=fake_clock).take("alice", "sendMessage", CHAT)  # another request, after our read
    attempts: list[str] = []

    def record(message_id: str) -> Callable[[dict[str, Any]], None]:
        def write(update: dict[str, Any]) -> None:
            attempts.append(message_id)
            try:
                store.create("alice", message_id, "c_1", now=fake_clock(), also=update)
            except AlsoRefused:
                raise BucketMoved from None

        return write

    limiter.take("alice", "sendMessage", CHAT, read=stale, write=record("m_1"))
    assert attempts == ["m_1", "m_1"]
    assert store.get("alice", "m_1") is not None
    limiter.take("alice", "sendMessage", CHAT, write=record("m_1"))  # the same id again: no token
    limiter.take("alice", "sendMessage", CHAT, write=record("m_2"))  # the third token
    _refused(limiter)
