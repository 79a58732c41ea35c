"""Posting frames to WebSocket connections, and coalescing model text into frames that fit."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID

from assistant.protocol import Delta
from assistant.push import (
    DELTA_TEXT_BUDGET,
    Broadcaster,
    DeltaCoalescer,
    PushFailed,
    management_client,
    split_for_frame,
)
from assistant.stores.connections import ConnectionStore
from assistant.stores.keys import key
from assistant.wiring import MAX_FRAME_BYTES, STAGE_DEFAULTS
from tests.conftest import REGION, FakeClock

CALLBACK_URL = "https://abc123defg.execute-api.us-east-1.amazonaws.com/dev"
FRAME = Delta(message_id="m_1", seq=3, text='He said "hi" 👋')


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PostToConnection",
    )


class FakeManagementClient:
    """Records posts; raises the configured error for a connection id (moto never raises GoneException)."""

    def __init__(self, failures: dict[str, Exception] | None = None) -> None:
        self.failures = failures or {}
        self.posts: list[tuple[str, bytes]] = []

    def post_to_connection(self, *, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        if ConnectionId in self.failures:
            raise self.failures[ConnectionId]
        self.posts.append((ConnectionId, Data))
        return {}

    def receivers(self) -> list[str]:
        return sorted(connection_id for connection_id, _ in self.posts)


class CountingStore(ConnectionStore):
    def __init__(self, table: Any, clock: FakeClock) -> None:
        super().__init__(table, clock=clock)
        self.lists = 0

    def list_ids(self, user_id: str) -> list[str]:
        self.lists += 1
        return super().list_ids(user_id)


@pytest.fixture
def store(ddb_table: Any, fake_clock: FakeClock) -> CountingStore:
    return CountingStore(ddb_table, fake_clock)


def connect(store: ConnectionStore, user_id: str, *connection_ids: str) -> None:
    for connection_id in connection_ids:
        store.add(user_id, connection_id, now=1_700_000_000.0)


def live(table: Any, user_id: str) -> list[str]:
    return sorted(ConnectionStore(table, clock=FakeClock()).list_ids(user_id))


# --- Broadcaster ------------------------------------------------------------------------------------------------


def test_send_reaches_every_tab_of_the_user_only(store: CountingStore, fake_clock: FakeClock) -> None:
    connect(store, "alice", "a1", "a2", "a3")
    connect(store, "bob", "b1")
    client = FakeManagementClient()

    delivered = Broadcaster(client, store, clock=fake_clock).send("alice", FRAME)

    assert delivered == 3
    assert client.receivers() == ["a1", "a2", "a3"]
    assert {data for _, data in client.posts} == {FRAME.to_json().encode()}


def test_user_without_connections_gets_nothing_and_no_error(store: CountingStore, fake_clock: FakeClock) -> None:
    client = FakeManagementClient()

    assert Broadcaster(client, store, clock=fake_clock).send("nobody", FRAME) == 0
    assert client.posts == []


def test_gone_connection_is_removed_and_the_others_still_receive(
    store: CountingStore, ddb_table: Any, fake_clock: FakeClock
) -> None:
    connect(store, "alice", "a1", "closed", "a3")
    client = FakeManagementClient({"closed": client_error("GoneException", 410)})
    broadcaster = Broadcaster(client, store, clock=fake_clock)

    assert broadcaster.send("alice", FRAME) == 2
    assert client.receivers() == ["a1", "a3"]
    assert live(ddb_table, "alice") == ["a1", "a3"]

    # The cached list no longer has it either: no second post to a dead connection.
    client.failures.clear()
    client.posts.clear()
    assert broadcaster.send("alice", FRAME) == 2
    assert client.receivers() == ["a1", "a3"]
    assert store.lists == 1


def test_all_gone_is_not_a_failure(store: CountingStore, ddb_table: Any, fake_clock: FakeClock) -> None:
    connect(store, "alice", "a1", "a2")
    gone = client_error("GoneException", 410)
    client = FakeManagementClient({"a1": gone, "a2": gone})

    assert Broadcaster(client, store, clock=fake_clock).send("alice", FRAME) == 0
    assert live(ddb_table, "alice") == []


def test_one_failing_connection_does_not_fail_the_send(
    store: CountingStore, ddb_table: Any, fake_clock: FakeClock
) -> None:
    connect(store, "alice", "a1", "a2")
    client = FakeManagementClient({"a1": client_error("LimitExceededException", 429)})

    assert Broadcaster(client, store, clock=fake_clock).send("alice", FRAME) == 1
    assert client.receivers() == ["a2"]
    # A throttled connection is still open; its record stays.
    assert live(ddb_table, "alice") == ["a1", "a2"]


@pytest.mark.parametrize(
    "failures",
    [
        {"a1": client_error("LimitExceededException", 429), "a2": client_error("InternalServerError", 500)},
        {"a1": client_error("ForbiddenException", 403), "a2": client_error("GoneException", 410)},
        {"a1": EndpointConnectionError(endpoint_url=CALLBACK_URL), "a2": client_error("GoneException", 410)},
    ],
)
def test_no_connection_reachable_raises_push_failed(
    store: CountingStore, fake_clock: FakeClock, failures: dict[str, Exception]
) -> None:
    connect(store, "alice", "a1", "a2")

    with pytest.raises(PushFailed):
        Broadcaster(FakeManagementClient(failures), store, clock=fake_clock).send("alice", FRAME)


def test_push_failure_logs_no_frame_text(
    store: CountingStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    connect(store, "alice", "a1")
    secret_text = "my bank password is hunter2"
    client = FakeManagementClient({"a1": client_error("InternalServerError", 500)})

    with pytest.raises(PushFailed) as caught:
        Broadcaster(client, store, clock=fake_clock).send("alice", Delta(message_id="m", seq=1, text=secret_text))

    logged = [str(record.__dict__) for record in caplog.records]
    assert any("InternalServerError" in entry and "a1" in entry for entry in logged)
    assert not any(secret_text in entry for entry in logged)
    assert secret_text not in str(caught.value)


def test_connection_list_is_cached_briefly(store: CountingStore, fake_clock: FakeClock) -> None:
    connect(store, "alice", "a1")
    client = FakeManagementClient()
    broadcaster = Broadcaster(client, store, cache_seconds=2.0, clock=fake_clock)

    for _ in range(10):
        broadcaster.send("alice", FRAME)
        fake_clock.advance(0.125)
    assert store.lists == 1

    connect(store, "alice", "new-tab")
    broadcaster.send("alice", FRAME)
    assert ("new-tab", FRAME.to_json().encode()) not in client.posts

    fake_clock.advance(0.75)  # 2.0 s since the list was read
    broadcaster.send("alice", FRAME)
    assert store.lists == 2
    assert client.posts[-2:] == [(c, FRAME.to_json().encode()) for c in ("a1", "new-tab")]


def test_refresh_reads_the_list_now_so_the_next_send_reads_nothing(store: CountingStore, fake_clock: FakeClock) -> None:
    connect(store, "alice", "a1")
    client = FakeManagementClient()
    broadcaster = Broadcaster(client, store, cache_seconds=2.0, clock=fake_clock)
    broadcaster.send("alice", FRAME)
    connect(store, "alice", "new-tab")

    broadcaster.refresh("alice")  # a fresh read even though the cached list has not expired
    assert store.lists == 2
    fake_clock.advance(0.3)
    broadcaster.send("alice", FRAME)

    assert store.lists == 2
    assert client.posts[-2:] == [(c, FRAME.to_json().encode()) for c in ("a1", "new-tab")]


def test_invalidate_drops_the_cache(store: CountingStore, fake_clock: FakeClock) -> None:
    connect(store, "alice", "a1")
    client = FakeManagementClient()
    broadcaster = Broadcaster(client, store, clock=fake_clock)
    broadcaster.send("alice", FRAME)
    connect(store, "alice", "a2")

    broadcaster.invalidate("alice")
    broadcaster.send("alice", FRAME)

    assert store.lists == 2
    assert client.receivers() == ["a1", "a1", "a2"]


def test_oversized_frame_is_refused_before_any_post(store: CountingStore, fake_clock: FakeClock) -> None:
    connect(store, "alice", "a1")
    client = FakeManagementClient()
    broadcaster = Broadcaster(client, store, clock=fake_clock)
    too_big = Delta(message_id="m", seq=1, text="x" * MAX_FRAME_BYTES)

    with pytest.raises(ValueError, match="frame limit"):
        broadcaster.send("alice", too_big)
    assert client.posts == []


def _frame_of_bytes(size: int, last: str = "x") -> Delta:
    """A delta frame whose JSON is exactly ``size`` UTF-8 bytes, its text ending in ``last``."""
    envelope = len(Delta(message_id="m_1", seq=0, text="").to_json().encode())
    filler = size - envelope - len(json.dumps(last, ensure_ascii=False).encode()) + 2
    frame = Delta(message_id="m_1", seq=0, text="x" * filler + last)
    assert len(frame.to_json().encode()) == size
    return frame


@pytest.mark.parametrize("last", ["x", "€", "😀", '"'], ids=["ascii", "3-byte", "4-byte", "escaped"])
def test_a_frame_of_exactly_max_frame_bytes_is_posted(store: CountingStore, fake_clock: FakeClock, last: str) -> None:
    connect(store, "alice", "a1")
    client = FakeManagementClient()
    broadcaster = Broadcaster(client, store, clock=fake_clock)
    at_limit = _frame_of_bytes(MAX_FRAME_BYTES, last)

    assert broadcaster.send("alice", at_limit) == 1
    assert [len(data) for _, data in client.posts] == [MAX_FRAME_BYTES]
    assert json.loads(client.posts[0][1])["text"] == at_limit.text


@pytest.mark.parametrize("last", ["x", "€", "😀", '"'], ids=["ascii", "3-byte", "4-byte", "escaped"])
def test_a_frame_one_byte_over_max_frame_bytes_is_refused_before_any_post(
    store: CountingStore, fake_clock: FakeClock, last: str
) -> None:
    connect(store, "alice", "a1")
    client = FakeManagementClient()
    broadcaster = Broadcaster(client, store, clock=fake_clock)
    over = _frame_of_bytes(MAX_FRAME_BYTES + 1, last)

    with pytest.raises(ValueError, match="frame limit"):
        broadcaster.send("alice", over)
    assert client.posts == []


def test_a_coalesced_chunk_of_exactly_the_budget_goes_out_as_one_full_frame(
    store: CountingStore, fake_clock: FakeClock
) -> None:
    # From the model's text to the wire at the boundary: the largest delta (longest id, largest seq) is one frame
    # of exactly MAX_FRAME_BYTES, and one more character makes a second frame, never an oversized one.
    connect(store, "alice", "a1")
    client = FakeManagementClient()
    broadcaster = Broadcaster(client, store, clock=fake_clock)
    for extra, expected_frames in ((0, 1), (1, 2)):
        client.posts.clear()
        coalescer = DeltaCoalescer(interval_seconds=0.0, max_chars=10**6, clock=fake_clock)
        text = "a" * (DELTA_TEXT_BUDGET - 4) + "😀" + "b" * extra

        chunks = coalescer.add(text) + coalescer.drain()
        for chunk in chunks:
            broadcaster.send("alice", Delta(message_id="m" * 64, seq=2**63 - 1, text=chunk))

        assert len(chunks) == expected_frames
        assert len(client.posts[0][1]) == MAX_FRAME_BYTES
        assert "".join(json.loads(data)["text"] for _, data in client.posts) == text


def test_real_client_errors_are_classified(
    store: CountingStore, ddb_table: Any, fake_clock: FakeClock, aws: None
) -> None:
    # botocore's own error parsing, through a Stubber: Gone removes, throttling counts as a failure.
    client = boto3.client("apigatewaymanagementapi", endpoint_url=CALLBACK_URL, region_name=REGION)
    connect(store, "alice", "a1", "a2")
    broadcaster = Broadcaster(client, store, clock=fake_clock)
    with Stubber(client) as stubber:
        for connection_id in ("a1", "a2"):
            stubber.add_client_error(
                "post_to_connection",
                service_error_code="GoneException" if connection_id == "a1" else "LimitExceededException",
                http_status_code=410 if connection_id == "a1" else 429,
                expected_params={"ConnectionId": connection_id, "Data": FRAME.to_json().encode()},
            )
        # Connections are listed in key order, so a1 is posted first.
        with pytest.raises(PushFailed):
            broadcaster.send("alice", FRAME)
        stubber.assert_no_pending_responses()
    assert live(ddb_table, "alice") == ["a2"]


def test_the_management_client_posts_through_the_management_api(store: CountingStore) -> None:
    connect(store, "alice", "a1", "a2")
    broadcaster = Broadcaster(management_client(CALLBACK_URL), store)

    assert broadcaster.send("alice", FRAME) == 2

    backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID][REGION]
    assert backend.connections["a1"].data == FRAME.to_json().encode()
    assert backend.connections["a2"].data == FRAME.to_json().encode()
    config = broadcaster._client.meta.config
    assert config.connect_timeout <= 5
    assert config.read_timeout <= 10
    assert config.retries["mode"] == "standard"
    assert broadcaster._client.meta.endpoint_url == CALLBACK_URL


# --- DeltaCoalescer ---------------------------------------------------------------------------------------------


def test_first_text_flushes_at_once_then_once_the_oldest_text_has_waited_the_interval(fake_clock: FakeClock) -> None:
    # Binary-exact steps, so the clock lands exactly on the interval.
    coalescer = DeltaCoalescer(interval_seconds=0.125, max_chars=2000, clock=fake_clock)

    assert coalescer.add("Hel") == ["Hel"]
    fake_clock.advance(0.0625)
    assert coalescer.add("lo") == []  # "lo" starts waiting
    fake_clock.advance(0.03125)
    assert coalescer.add(", ") == []
    fake_clock.advance(0.09375)  # "lo" has waited 0.125 s
    assert coalescer.add("world") == ["lo, world"]
    fake_clock.advance(0.0625)
    assert coalescer.add("!") == []
    assert coalescer.drain() == ["!"]
    assert coalescer.drain() == []


def test_tokens_that_queued_behind_a_slow_post_go_out_together(fake_clock: FakeClock) -> None:
    """Posting took longer than the interval; the tokens that arrived meanwhile are read in a burst."""
    coalescer = DeltaCoalescer(interval_seconds=0.125, max_chars=2000, clock=fake_clock)
    assert coalescer.add("first") == ["first"]
    fake_clock.advance(0.5)  # the post of "first" was slow
    burst = [coalescer.add(token) for token in (" a", " b", " c", " d")]
    assert burst == [[], [], [], []]  # one frame per token would be the failure
    fake_clock.advance(0.125)
    assert coalescer.add(" e") == [" a b c d e"]


def test_buffer_reaching_max_chars_flushes_early(fake_clock: FakeClock) -> None:
    coalescer = DeltaCoalescer(interval_seconds=10.0, max_chars=10, clock=fake_clock)
    coalescer.add("a")

    assert coalescer.add("12345") == []
    assert coalescer.add("6789") == []
    assert coalescer.add("0") == ["1234567890"]


def test_empty_deltas_are_ignored(fake_clock: FakeClock) -> None:
    coalescer = DeltaCoalescer(interval_seconds=1.0, max_chars=100, clock=fake_clock)

    assert coalescer.add("") == []
    assert coalescer.add("first") == ["first"]
    assert coalescer.drain() == []


def test_text_after_drain_shows_at_once(fake_clock: FakeClock) -> None:
    coalescer = DeltaCoalescer(interval_seconds=1.0, max_chars=100, clock=fake_clock)
    coalescer.add("before the tool call")
    coalescer.add(" ...")
    assert coalescer.drain() == [" ..."]

    assert coalescer.add("after") == ["after"]


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        DeltaCoalescer(interval_seconds=-1, max_chars=10)
    with pytest.raises(ValueError, match="max_chars"):
        DeltaCoalescer(interval_seconds=0.1, max_chars=0)


def test_surrogate_pair_split_across_deltas_is_rejoined(fake_clock: FakeClock) -> None:
    coalescer = DeltaCoalescer(interval_seconds=0.0, max_chars=100, clock=fake_clock)

    first = coalescer.add("smile \ud83d")
    second = coalescer.add("\ude00 done")

    assert first == ["smile "]
    assert second == ["😀 done"]
    for chunk in first + second:
        Delta(message_id="m", seq=1, text=chunk).to_json()  # serializable: no surrogate left


def test_lone_surrogate_becomes_a_replacement_character(fake_clock: FakeClock) -> None:
    coalescer = DeltaCoalescer(interval_seconds=10.0, max_chars=100, clock=fake_clock)
    coalescer.add("x")

    coalescer.add("broken \ud83d")

    assert coalescer.drain() == ["broken \ufffd"]


def test_largest_delta_frame_fits_exactly(fake_clock: FakeClock) -> None:
    text = "a" * DELTA_TEXT_BUDGET

    frame = Delta(message_id="m" * 64, seq=2**63 - 1, text=text).to_json().encode()

    assert len(frame) == MAX_FRAME_BYTES
    assert split_for_frame(text, DELTA_TEXT_BUDGET) == [text]
    assert split_for_frame(text + "a", DELTA_TEXT_BUDGET) == [text, "a"]


# Characters whose JSON encoding costs 1..6 bytes: ASCII, escapes, control chars, 2/3/4-byte UTF-8, DEL, U+2028.
_ALPHABET = 'ab "\\\n\t\x00\x1f\x7fé€\u2028😀🧑‍💻日本'


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def test_split_for_frame_is_exact_and_lossless() -> None:
    rng = random.Random(20260826)
    for _ in range(400):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 300)))
        budget = rng.randint(12, 200)

        chunks = split_for_frame(text, budget)

        assert "".join(chunks) == text
        assert all(chunk for chunk in chunks)
        for index, chunk in enumerate(chunks):
            assert _json_bytes(chunk) <= budget
            if index + 1 < len(chunks):
                # Greedy: the next character would not have fitted, so frames are as few as possible.
                assert _json_bytes(chunk + chunks[index + 1][0]) > budget


def test_json_byte_count_matches_the_frame_serializer() -> None:
    rng = random.Random(7)
    for _ in range(200):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 50)))
        frame = Delta(message_id="m", seq=1, text=text).to_json().encode()
        empty = Delta(message_id="m", seq=1, text="").to_json().encode()

        assert len(frame) - len(empty) == _json_bytes(text)


def test_split_never_separates_a_surrogate_pair() -> None:
    text = "a" + "\ud83d\ude00" * 50

    for budget in range(12, 40):
        chunks = split_for_frame(text, budget)
        assert "".join(chunks) == text
        for chunk in chunks:
            assert not ("\ud800" <= chunk[-1] <= "\udbff")
            assert not ("\udc00" <= chunk[0] <= "\udfff")


def test_split_refuses_a_budget_too_small_for_any_character() -> None:
    with pytest.raises(ValueError, match="budget"):
        split_for_frame("abc", 11)


def test_every_coalesced_chunk_fits_a_delta_frame(fake_clock: FakeClock) -> None:
    rng = random.Random(42)
    heavy = ['"', "\\", "\x01", "😀", "語", "a", "\n"]
    for max_chars in (50, 2_000, 40_000):
        coalescer = DeltaCoalescer(interval_seconds=0.08, max_chars=max_chars, clock=fake_clock)
        sent: list[str] = []
        pieces: list[str] = []
        for _ in range(300):
            piece = "".join(rng.choice(heavy) for _ in range(rng.randint(1, 400)))
            pieces.append(piece)
            sent += coalescer.add(piece)
            fake_clock.advance(rng.choice([0.0, 0.01, 0.05, 0.1]))
        sent += coalescer.drain()

        assert "".join(sent) == "".join(pieces)
        for seq, chunk in enumerate(sent):
            frame = Delta(message_id="m" * 64, seq=2**62 + seq, text=chunk).to_json().encode()
            assert len(frame) <= MAX_FRAME_BYTES


def test_broadcaster_accepts_every_coalesced_chunk(store: CountingStore, fake_clock: FakeClock) -> None:
    connect(store, "alice", "a1")
    client = FakeManagementClient()
    broadcaster = Broadcaster(client, store, clock=fake_clock)
    coalescer = DeltaCoalescer(interval_seconds=0.0, max_chars=1_000_000, clock=fake_clock)
    coalescer.add("x")

    chunks = coalescer.add('"\\😀' * 20_000)

    assert len(chunks) > 1
    for seq, chunk in enumerate(chunks):
        broadcaster.send("alice", Delta(message_id="m" * 64, seq=seq, text=chunk))
    assert len(client.posts) == len(chunks)
    assert all(len(data) <= MAX_FRAME_BYTES for _, data in client.posts)
    assert "".join(json.loads(data)["text"] for _, data in client.posts) == '"\\😀' * 20_000


def test_connection_record_key_shape_is_what_push_removes(
    store: CountingStore, ddb_table: Any, fake_clock: FakeClock
) -> None:
    connect(store, "alice", "gone-1")
    client = FakeManagementClient({"gone-1": client_error("GoneException", 410)})

    Broadcaster(client, store, clock=fake_clock).send("alice", FRAME)

    assert "Item" not in ddb_table.get_item(Key=key("alice", "CONN#gone-1"))


def _stream_steadily(coalescer: DeltaCoalescer, clock: FakeClock, tokens: int, per_second: float) -> list[float]:
    """Feed ``tokens`` four-character tokens at a steady rate; the times at which frames went out."""
    released: list[float] = []
    for _ in range(tokens):
        if coalescer.add("abcd"):
            released.append(clock.now)
        clock.advance(1 / per_second)
    if coalescer.drain():
        released.append(clock.now)
    return released


@pytest.mark.parametrize(
    ("per_second", "tokens", "most_frames_per_1000"),
    [
        # A long reply at the slow end of 40-50 tokens/s: 14 tokens fit in 350 ms, and the first frame (one token)
        # and the quick one ~100 ms after it weigh on a reply this short (77 per 1000).
        (40, 375, 80),
        (45, 375, 80),
        (50, 375, 80),
        (40, 1000, 80),
        (45, 1000, 80),
        (50, 1000, 80),
    ],
)
def test_a_steady_reply_uses_at_most_80_frames_per_1000_tokens_without_long_gaps(
    fake_clock: FakeClock, per_second: int, tokens: int, most_frames_per_1000: int
) -> None:
    """The stage defaults, on a long reply (the benchmark's are 350-400 tokens) and a very long one."""
    coalescer = DeltaCoalescer(
        interval_seconds=STAGE_DEFAULTS.flush_interval_ms / 1000,
        max_interval_seconds=STAGE_DEFAULTS.flush_max_interval_ms / 1000,
        max_chars=STAGE_DEFAULTS.flush_chars,
        clock=fake_clock,
    )
    released = _stream_steadily(coalescer, fake_clock, tokens=tokens, per_second=per_second)

    assert len(released) * 1000 / tokens <= most_frames_per_1000
    gaps = [later - earlier for earlier, later in itertools.pairwise(released)]
    # Text goes out on the last token before the interval since the previous frame runs out, so no gap is longer
    # than the interval (350 ms), a gap a reader does not notice as a stall. (The fake clock counts seconds since
    # 1970 in a float: a few microseconds of rounding.)
    assert max(gaps) <= STAGE_DEFAULTS.flush_max_interval_ms / 1000 + 1e-5
    # The first text went out at once, and the first frames came quickly before the interval grew.
    assert released[0] == 1_700_000_000.0
    # (Text waits at least the first interval, from the first token after the first text.)
    assert gaps[0] <= STAGE_DEFAULTS.flush_interval_ms / 1000 + 2 / per_second + 1e-9


def test_tokens_due_right_on_the_deadline_are_not_cut_early_by_timing_noise(fake_clock: FakeClock) -> None:
    """40 tokens/s against 350 ms: the 14th token after a frame is due exactly at the deadline. Real arrivals are
    each a little late by a varying amount, so judged on the average gap alone the 13th token would look like the
    last before the deadline about half the time: a frame in 14 more, for nothing. The slack of a quarter of a token
    keeps the frames at 14 tokens, and the gaps at the interval plus that noise."""
    coalescer = DeltaCoalescer(interval_seconds=0.1, max_interval_seconds=0.35, max_chars=2000, clock=fake_clock)
    noise = random.Random(7)
    start = fake_clock.now
    released: list[float] = []
    for index in range(1000):
        # Due every 25 ms from the start (a fixed pace), each arriving 0-4 ms late.
        fake_clock.now = max(fake_clock.now, start + index / 40 + noise.uniform(0, 0.004))
        if coalescer.add("abcd"):
            released.append(fake_clock.now)
    if coalescer.drain():
        released.append(fake_clock.now)

    # One token, then 4, 8, and then 14 a frame: 74 frames for 1000 tokens (judged on the average gap alone: 76).
    assert len(released) <= 74
    gaps = [later - earlier for earlier, later in itertools.pairwise(released)]
    assert max(gaps) <= 0.35 + 0.004 + 1e-6


def test_text_goes_out_on_the_last_token_before_the_interval_runs_out(fake_clock: FakeClock) -> None:
    """Not on the first token after it: the gap between frames stays within the interval."""
    coalescer = DeltaCoalescer(
        interval_seconds=0.125, max_interval_seconds=0.5, growth=4, max_chars=2000, clock=fake_clock
    )
    assert coalescer.add("first") == ["first"]
    for _ in range(4):
        fake_clock.advance(0.03125)
        assert coalescer.add(" x") == []
    fake_clock.advance(0.03125)  # the text has waited the first interval (0.125 s) since " x" arrived
    assert coalescer.add(" y") == [" x x x x y"]
    assert coalescer.interval_seconds == 0.5
    # Tokens every 3/64 s now: the tenth since the last frame comes at 0.46875 s and the next is due at 0.515625 s,
    # past the 0.5 s interval, so the tenth goes at once (the old rule sent it with the eleventh: a 0.52 s gap).
    for _ in range(9):
        fake_clock.advance(0.046875)
        assert coalescer.add(" z") == []
    fake_clock.advance(0.046875)
    assert coalescer.add(" z") == [" z" * 10]


def test_the_interval_grows_while_text_streams_and_starts_quick_again_after_a_pause(fake_clock: FakeClock) -> None:
    coalescer = DeltaCoalescer(interval_seconds=0.1, max_interval_seconds=0.3, max_chars=2000, clock=fake_clock)
    for _ in range(200):
        coalescer.add("abcd")
        fake_clock.advance(1 / 45)
    assert coalescer.interval_seconds == pytest.approx(0.3)
    coalescer.drain()  # a tool call: the next text is a new run
    assert coalescer.interval_seconds == pytest.approx(0.1)
    assert coalescer.add("after the tool") == ["after the tool"]


def test_a_fixed_interval_stays_fixed(fake_clock: FakeClock) -> None:
    coalescer = DeltaCoalescer(interval_seconds=0.125, max_chars=2000, clock=fake_clock)
    _stream_steadily(coalescer, fake_clock, tokens=100, per_second=40)
    assert coalescer.interval_seconds == 0.125


def test_a_ceiling_below_the_first_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="max_interval_seconds"):
        DeltaCoalescer(interval_seconds=0.3, max_interval_seconds=0.1, max_chars=10)
