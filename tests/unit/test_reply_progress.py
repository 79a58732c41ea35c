"""The frames of a reply without AWS: sequence numbers and offsets, checkpoint cadence, the replay of a resumed round
after a retry, a ``reset``, and a cancel noticed by a refused checkpoint write."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from assistant.protocol import Delta, Reset, ServerFrame
from assistant.push import DeltaCoalescer
from assistant.reply_progress import CHECKPOINT_INTERVAL_S, CancelRequested, ReplyProgress
from assistant.stores.messages import Checkpoint, MessageRecord, MessageStatus

MESSAGE = "m1"
RECORD = replace(
    MessageRecord.queued("alice", MESSAGE, "c1", created_at="2025-01-01T00:00:00Z"), status=MessageStatus.STREAMING
)


@dataclass
class Checkpoints:
    """Records each checkpoint write; refuses them (a cancel request) once ``cancelled`` is set."""

    writes: list[tuple[object, ...]] = field(default_factory=list)
    cancelled: bool = False

    def start_round(self, record: MessageRecord, *, response_id: str, round_start: int, last_seq: int) -> bool:
        self.writes.append(("round", response_id, round_start, last_seq))
        return not self.cancelled

    def checkpoint_frame(self, record: MessageRecord, *, seq: int, frame_start: int, frame_end: int) -> bool:
        self.writes.append(("frame", seq, frame_start, frame_end))
        return not self.cancelled


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Reply:
    progress: ReplyProgress
    checkpoints: Checkpoints
    clock: Clock
    sent: list[ServerFrame]

    def deltas(self) -> list[tuple[int, int | None, str]]:
        """``(seq, offset, text)`` of each ``delta`` posted, in order."""
        return [(f.seq, f.offset, f.text) for f in self.sent if isinstance(f, Delta)]


def reply(record: MessageRecord = RECORD) -> Reply:
    checkpoints, clock, sent = Checkpoints(), Clock(), []
    progress = ReplyProgress(
        record,
        checkpoints=checkpoints,
        send=sent.append,
        # No waiting: each piece of text is a frame of its own, so the tests see the arithmetic alone.
        coalescer=DeltaCoalescer(interval_seconds=0, max_chars=2_000, clock=clock),
        resend_chars=2_000,
        clock=clock,
    )
    return Reply(progress, checkpoints, clock, sent)


def resumed(*, response_id: str, round_start: int, seq: int, frame_start: int, frame_end: int) -> Reply:
    checkpoint = Checkpoint(response_id, round_start, seq, frame_start, frame_end)
    r = reply(replace(RECORD, checkpoint=checkpoint))
    r.progress.resume()
    return r


def test_frames_are_numbered_from_zero_with_the_offsets_of_their_text() -> None:
    r = reply()
    r.progress.start_round("resp_1")
    for piece in ["Hello", ", ", "world"]:
        r.progress.add_text(piece)

    assert r.deltas() == [(0, 0, "Hello"), (1, 5, ", "), (2, 7, "world")]
    assert r.progress.shown_text == "Hello, world"
    assert r.progress.sent_chars == 12
    assert r.progress.frames == 3


def test_a_round_start_is_a_checkpoint_of_every_earlier_frame() -> None:
    r = reply()
    r.progress.start_round("resp_1")
    r.progress.add_text("Let me check. ")
    r.progress.flush()
    r.clock.now += 0.1
    r.progress.start_round("resp_2")

    assert r.checkpoints.writes[0] == ("round", "resp_1", 0, -1)
    # The second round starts where the first one's text ended, after its frame 0.
    assert r.checkpoints.writes[-1] == ("round", "resp_2", 14, 0)


def test_checkpoints_are_written_at_most_once_an_interval_not_once_a_frame() -> None:
    r = reply()
    r.progress.start_round("resp_1")
    for _ in range(8):
        r.clock.now += CHECKPOINT_INTERVAL_S / 4
        r.progress.add_text("ab")

    frames = [w for w in r.checkpoints.writes if w[0] == "frame"]
    # Eight frames over two intervals since the round's start: the 4th and the 8th are each an interval later.
    assert frames == [("frame", 3, 6, 8), ("frame", 7, 14, 16)]
    assert r.progress.checkpoints == 3  # with the round's start
    assert r.progress.frames == 8


def test_the_first_frame_without_a_round_start_is_checkpointed_at_once() -> None:
    r = reply()
    r.progress.add_text("Hi")
    assert r.checkpoints.writes == [("frame", 0, 0, 2)]


def test_handing_back_checkpoints_the_last_frame_only_when_no_checkpoint_covers_it() -> None:
    r = reply()
    r.progress.start_round("resp_1")
    r.progress.add_text("one ")
    r.progress.add_text("two")
    writes = len(r.checkpoints.writes)

    r.progress.checkpoint_last_frame()
    assert r.checkpoints.writes[writes:] == [("frame", 1, 4, 7)]
    r.progress.checkpoint_last_frame()
    assert len(r.checkpoints.writes) == writes + 1


def test_a_refused_checkpoint_is_a_cancel_after_its_frame_was_posted() -> None:
    r = reply()
    r.progress.start_round("resp_1")
    r.checkpoints.cancelled = True
    r.clock.now += CHECKPOINT_INTERVAL_S
    with pytest.raises(CancelRequested):
        r.progress.add_text("Hello")
    assert r.deltas() == [(0, 0, "Hello")]
    with pytest.raises(CancelRequested):
        r.progress.start_round("resp_2")


def test_a_resumed_round_posts_nothing_until_it_covers_the_checkpoint_then_the_last_frame_again() -> None:
    # The dead delivery's round started at 5 ("Intro" came before) and its frame 2 carried [8, 14).
    r = resumed(response_id="resp_1", round_start=5, seq=2, frame_start=8, frame_end=14)
    r.progress.start_round("resp_1")  # the same response again: already on record
    assert r.checkpoints.writes == []

    r.progress.add_text("Hello, ")
    assert r.sent == []  # 7 characters of the round's 9 seen ones
    r.progress.add_text("world! And more")

    round_text = "Hello, world! And more"
    assert r.deltas() == [(2, 8, round_text[3:9]), (3, 14, round_text[9:])]
    # The turn keeps the resumed round's text, from its start; the earlier rounds' went with the dead delivery.
    assert r.progress.shown_text == round_text
    assert r.progress.sent_chars == 5 + len(round_text)


def test_a_resumed_round_with_no_frame_checkpointed_posts_all_of_it_from_the_round_start() -> None:
    r = resumed(response_id="resp_1", round_start=10, seq=-1, frame_start=10, frame_end=10)
    r.progress.add_text("Fresh text")
    assert r.deltas() == [(0, 10, "Fresh text")]


def test_a_resumed_round_that_ends_shorter_than_its_checkpoint_posts_what_it_has_when_flushed() -> None:
    r = resumed(response_id="resp_1", round_start=0, seq=1, frame_start=4, frame_end=9)
    r.progress.add_text("Hello")
    assert r.sent == []
    r.progress.flush()
    assert r.deltas() == [(1, 4, "o")]
    assert r.progress.shown_text == "Hello"


def test_a_new_response_after_a_resumed_one_is_a_new_round() -> None:
    r = resumed(response_id="resp_1", round_start=0, seq=0, frame_start=0, frame_end=3)
    r.progress.add_text("One")
    r.progress.flush()
    r.progress.start_round("resp_2")
    r.progress.add_text("Two")

    assert r.checkpoints.writes[0] == ("round", "resp_2", 3, 0)
    assert r.deltas() == [(0, 0, "One"), (1, 3, "Two")]


def test_a_restarted_round_is_reset_and_numbered_from_zero_again() -> None:
    r = reply()
    r.progress.start_round("resp_1")
    r.progress.add_text("Kept. ")
    r.progress.flush()
    r.progress.start_round("resp_2")
    r.progress.add_text("Dropped")

    r.progress.restart_round()
    r.progress.add_text("Again")

    resets = [f for f in r.sent if isinstance(f, Reset)]
    assert [reset.offset for reset in resets] == [6]
    assert r.deltas()[-1] == (0, 6, "Again")
    assert r.progress.shown_text == "Kept. Again"
    assert r.progress.frames == 4  # three deltas and the reset
