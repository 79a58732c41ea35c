"""Where one delivery of a reply stands in its frames: their numbers and character offsets, the checkpoints that
record them, and what a resumed round posts again.

Character offsets count from the start of the whole reply; ``seq`` numbers the frames of a round's attempt from 0
(a ``reset`` starts them again, docs/protocol.md). A checkpoint (:meth:`MessageStore.checkpoint_frame`) records the
last frame posted, written right after that frame is posted and at most once every :data:`CHECKPOINT_INTERVAL_S`
(and at each round's start); the write fails when the user has asked to cancel, which is how a Stop reaches a
running reply (:class:`CancelRequested`). A delivery that resumes a dead one's round re-streams that round from its
start: nothing is posted until the text covers the last checkpointed frame, then that frame is posted again (it may
never have arrived; clients drop a ``seq`` they have) and what follows it.

No AWS here: the checkpoint writes and the posts are the caller's (:class:`Checkpoints`, ``send``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from assistant.model_response import StopReply
from assistant.push import DeltaCoalescer
from assistant.reply_frames import Delta, Reset
from assistant.server_frames import ServerFrameModel
from assistant.stores.messages import Checkpoint, MessageRecord

__all__ = ["CHECKPOINT_INTERVAL_S", "CancelRequested", "Checkpoints", "FrameSpan", "ReplyProgress"]

#: At most one checkpoint write per streaming reply in this many seconds (each frame used to write one).
CHECKPOINT_INTERVAL_S = 1.0


class CancelRequested(StopReply):
    """The checkpoint write found the user's cancel request: stop generating.

    A :class:`StopReply` so that closing the model's event stream while it propagates cancels the model response
    too (any other exception leaves the response running, for the retry to resume).
    """


class Checkpoints(Protocol):
    """The checkpoint writes of a streaming message (:class:`~assistant.stores.messages.MessageStore`'s); each
    returns ``False`` when the user has asked to cancel."""

    def start_round(self, record: MessageRecord, *, response_id: str, round_start: int, last_seq: int) -> bool: ...

    def checkpoint_frame(self, record: MessageRecord, *, seq: int, frame_start: int, frame_end: int) -> bool: ...


@dataclass(frozen=True)
class FrameSpan:
    """A ``delta`` frame posted: its ``seq`` and the characters ``[start, end)`` of the reply it carried."""

    seq: int
    start: int
    end: int


class ReplyProgress:
    """The frames of one delivery of a reply (continuing a dead delivery's checkpoint after :meth:`resume`).

    ``send`` posts a frame to the user's tabs; ``coalescer`` batches streamed text into frames; ``resend_chars`` is
    the largest frame of the text a resumed round posts at once.
    """

    def __init__(
        self,
        record: MessageRecord,
        *,
        checkpoints: Checkpoints,
        send: Callable[[ServerFrameModel], object],
        coalescer: DeltaCoalescer,
        resend_chars: int,
        clock: Callable[[], float],
    ) -> None:
        self._record = record
        self._checkpoints = checkpoints
        self._send = send
        self._coalescer = coalescer
        self._resend_chars = resend_chars
        self._clock = clock
        self._next_seq = 0
        self._sent_chars = 0
        self._round_start = 0
        #: Frames posted by this delivery (``delta`` and ``reset``), and checkpoints it wrote.
        self.frames = 0
        self.checkpoints = 0
        #: When this delivery posted its first text (clock reading), if it did.
        self.first_text_at: float | None = None
        #: The checkpoint of the round being resumed, until the re-streamed text has caught up with it.
        self._resuming: Checkpoint | None = None
        #: The resumed round's text as it streams again, held until it covers what the checkpoint says was posted.
        self._replayed: list[str] = []
        #: When this delivery last wrote a checkpoint (``None``: the next frame writes one).
        self._checkpointed_at: float | None = None
        #: The last frame posted, if no checkpoint covers it yet.
        self._unchecked: FrameSpan | None = None
        #: What the user was shown of the reply (this delivery's frames; on a resume, from the resumed round on).
        self._shown: list[str] = []

    @property
    def shown_text(self) -> str:
        """The reply's text as the user has it (for the turn); on a resume, from the resumed round on."""
        return "".join(self._shown)

    @property
    def sent_chars(self) -> int:
        """The reply's offset after the last frame posted."""
        return self._sent_chars

    def resume(self) -> None:
        """Continue from the record's checkpoint: the round it names streams again from its start."""
        checkpoint = self._record.checkpoint
        self._next_seq = checkpoint.seq + 1
        self._sent_chars = checkpoint.frame_end if checkpoint.seq >= 0 else checkpoint.round_start
        self._round_start = checkpoint.round_start
        self._resuming = checkpoint

    def start_round(self, response_id: str) -> None:
        """A model response starts a round. Unless it is the round being resumed (already on record), checkpoint
        its start: every frame of the earlier rounds was posted, so a resume replays only this round."""
        if self._resuming is not None and response_id == self._resuming.response_id:
            return
        self._resuming = None
        self._round_start = self._sent_chars
        if not self._checkpoints.start_round(
            self._record, response_id=response_id, round_start=self._round_start, last_seq=self._next_seq - 1
        ):
            raise CancelRequested
        self.checkpoints += 1
        self._checkpointed_at, self._unchecked = self._clock(), None

    def add_text(self, text: str) -> None:
        """Streamed text: posted as the coalescer releases it, or held while a resumed round catches up."""
        if self._resuming is None:
            self._post(self._coalescer.add(text))
            return
        self._replayed.append(text)
        checkpoint = self._resuming
        seen = checkpoint.frame_end - checkpoint.round_start if checkpoint.seq >= 0 else 0
        if sum(len(part) for part in self._replayed) >= seen:
            self._catch_up()

    def flush(self) -> None:
        """A run of text ended (a round, a tool call, the reply): post what is held, in order."""
        self._catch_up()
        self._post(self._coalescer.drain())

    def restart_round(self) -> None:
        """The model is asked for this round again (its stream dropped and could not be followed): tell every tab
        to discard the round's text, then number frames from 0 again (docs/protocol.md, ``reset``). Text of the
        dropped attempt not posted yet is void as well."""
        self._coalescer.drain()
        void = self._sent_chars - self._round_start
        shown = self.shown_text
        self._shown = [shown[: max(0, len(shown) - void)]]
        self._sent_chars = self._round_start
        self._next_seq = 0
        self._unchecked = None
        self._resuming, self._replayed = None, []
        self._send(Reset(message_id=self._record.message_id, offset=self._round_start))
        self.frames += 1

    def checkpoint_last_frame(self) -> None:
        """Record the last frame posted if no checkpoint covers it (handing the reply back is planned: the next
        delivery then re-sends nothing)."""
        if self._unchecked is not None:
            self._checkpoint(self._unchecked, self._clock())

    def _catch_up(self) -> None:
        """Post the replayed text of a resumed round (also when the round ended shorter than the checkpoint)."""
        if self._resuming is None or not self._replayed:
            return
        round_text = "".join(self._replayed)
        checkpoint = self._resuming
        self._resuming, self._replayed = None, []
        offset = checkpoint.round_start
        if checkpoint.seq >= 0 and checkpoint.frame_end > checkpoint.frame_start >= offset:
            # The last checkpointed frame may not have been posted before the crash; clients drop a seq they have.
            again = round_text[checkpoint.frame_start - offset : checkpoint.frame_end - offset]
            self._send(
                Delta(message_id=self._record.message_id, seq=checkpoint.seq, text=again, offset=checkpoint.frame_start)
            )
            self.frames += 1
        rest = round_text[max(checkpoint.frame_end - offset, 0) :] if checkpoint.seq >= 0 else round_text
        # The turn keeps this round's text; earlier rounds' text went with the dead delivery.
        self._shown = [round_text[: len(round_text) - len(rest)]]
        coalescer = DeltaCoalescer(interval_seconds=0, max_chars=self._resend_chars)
        self._post([*coalescer.add(rest), *coalescer.drain()])

    def _post(self, chunks: list[str]) -> None:
        """Post frames, checkpointing at most every :data:`CHECKPOINT_INTERVAL_S` (and on a round's first frame).

        Frames between checkpoints are posted without a write: a delivery that dies between two checkpoints leaves
        the next one to resume from the last, re-sending at most :data:`CHECKPOINT_INTERVAL_S` of text, which
        clients that assemble by ``offset`` place exactly (docs/protocol.md).
        """
        for chunk in chunks:
            if not chunk:
                continue
            frame = FrameSpan(self._next_seq, self._sent_chars, self._sent_chars + len(chunk))
            # Posted before its checkpoint is written, so the write's round trip never delays text on the screen
            # (nor stretches the gap before this frame). A delivery that dies between the two re-sends this frame
            # from the previous checkpoint, as it would any frame between checkpoints.
            self._send(Delta(message_id=self._record.message_id, seq=frame.seq, text=chunk, offset=frame.start))
            self._shown.append(chunk)
            if self.first_text_at is None:
                self.first_text_at = self._clock()
            self._next_seq += 1
            self._sent_chars = frame.end
            self.frames += 1
            now = self._clock()
            if self._checkpointed_at is None or now - self._checkpointed_at >= CHECKPOINT_INTERVAL_S:
                self._checkpoint(frame, now)
            else:
                self._unchecked = frame

    def _checkpoint(self, frame: FrameSpan, now: float) -> None:
        if not self._checkpoints.checkpoint_frame(
            self._record, seq=frame.seq, frame_start=frame.start, frame_end=frame.end
        ):
            raise CancelRequested
        self.checkpoints += 1
        self._checkpointed_at, self._unchecked = now, None
