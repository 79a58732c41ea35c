"""Answering one queued message: claim it, stream the model's reply to every tab of the user, finish it.

Exactly-once is the point of this module. SQS may deliver a message twice and a worker may die half-way through a
reply; the message record (:mod:`assistant.stores.messages`) tells each delivery what already happened:

* final (done, cancelled, failed) -> nothing to do: no second answer;
* queued -> claim it (and count it against the quota) and ask the model. The worker claims without reading the
  record first: the claim is conditional on the record being the queued one the queue message describes, and a
  failed claim returns the record it found, which says which of these cases applies;
* streaming -> a previous delivery died. If a model response had started, resume from the checkpoint: fetch that
  response instead of asking again (no second turn in the conversation), re-post the one frame that may not have
  arrived (clients ignore a ``seq`` they already have) and continue. Only a provider that stores responses can be
  resumed; on a stateless one the reply fails (see docs/providers.md).

The conversation is ours: the model is sent the conversation's stored turns (:mod:`assistant.stores.turns`) plus
the new message, and the finished turn (done, stopped with the text the user saw, or failed) is written in the same
transaction that finishes the message, so it is committed exactly once.

A checkpoint records the last frame posted, at most once a second (and at each round's start), right after that
frame is posted; the write fails when the user has asked to cancel, which is how a cancel reaches a running reply
within about a second (see ``_post_chunks``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum

from aws_lambda_powertools import Logger

from assistant.attachments import AttachmentFiles
from assistant.errors import AssistantError, ErrorCode, ModelError, NotFound, QuotaExceeded
from assistant.model import (
    HistoryItem,
    ModelClient,
    ModelEvent,
    ReplyCompleted,
    ResponseStarted,
    ResponseUsage,
    RoundRestarted,
    StopReply,
    TextDelta,
    ToolEvent,
    ToolExchange,
)
from assistant.model_wire import FilePart, UserMessageWithFiles
from assistant.protocol import (
    Cancelled,
    Delta,
    Done,
    ErrorFrame,
    Reset,
    ServerFrame,
    ToolActivity,
    ToolStatus,
    Usage,
)
from assistant.push import Broadcaster, DeltaCoalescer
from assistant.queue import QueuedMessage
from assistant.stores.conversations import ConversationStore
from assistant.stores.messages import ClaimOutcome, MessageRecord, MessageStatus, MessageStore
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import ToolUse, Turn, TurnStatus, TurnStore
from assistant.stores.usage import Quotas, UsageStore
from assistant.titles import conversation_title
from assistant.token_estimates import CHARS_PER_TOKEN, attachment_tokens
from assistant.tools.registry import ToolContext

logger = Logger(child=True)

#: At most one checkpoint write per streaming reply in this many seconds (each frame used to write one).
CHECKPOINT_INTERVAL_S = 1.0


class ReplyResult(StrEnum):
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"
    #: A redelivery of a message that had already been answered, cancelled or failed.
    DUPLICATE = "duplicate"


@dataclass
class ReplyOutcome:
    result: ReplyResult
    #: Seconds from the message's arrival at the API to its first frame of text being posted.
    first_text_after_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    frames: int = 0
    checkpoint_writes: int = 0
    error_code: ErrorCode | None = None


@dataclass(frozen=True)
class ReplyLimits:
    quotas: Quotas
    flush_interval_s: float
    flush_max_interval_s: float
    flush_chars: int
    max_receive_count: int


class _CancelRequested(StopReply):
    """The checkpoint write found the user's cancel request: stop generating.

    A :class:`StopReply` so that closing the model's event stream while it propagates cancels the model response
    too (any other exception leaves the response running, for the retry to resume).
    """


class _DeadlineReached(Exception):
    """The worker is close to its timeout. Not a :class:`StopReply`: closing the stream must leave a background
    response running, for the next delivery to resume."""

    def __init__(self, *, resumable: bool) -> None:
        super().__init__("deadline reached")
        self.resumable = resumable


class ReplyHandedBack(Exception):
    """Raised to SQS on purpose: the reply continues in the next delivery (see :meth:`ReplyService.handle`)."""


@dataclass
class _Progress:
    """Where this delivery stands in the reply (continuing a dead delivery's checkpoint, if any)."""

    next_seq: int = 0
    sent_chars: int = 0
    round_start: int = 0
    frames: int = 0
    first_text_at: float | None = None
    #: On resume, the round text fetched from the model must be trimmed to what the user has not seen.
    resume: MessageRecord | None = None
    #: The resumed round's text as it streams again, held until it covers what the checkpoint says was posted.
    replayed: list[str] = field(default_factory=list)
    completed: list[ReplyCompleted] = field(default_factory=list)
    #: A response's tokens were just counted: check the quota before the model is asked for another round.
    check_quota: bool = False
    #: When this delivery last wrote a checkpoint (``None``: the next frame writes one).
    checkpointed_at: float | None = None
    #: The last frame posted, if it is not covered by a checkpoint yet: ``(seq, start, end)``.
    unchecked: tuple[int, int, int] | None = None
    checkpoints: int = 0
    #: What the user was shown of the reply (this delivery's frames; on a resume, from the resumed round on).
    text: list[str] = field(default_factory=list)
    tools: list[ToolUse] = field(default_factory=list)
    #: Each tool call of this delivery with its output, for the turn (the model is sent them with later messages).
    exchanges: list[ToolExchange] = field(default_factory=list)
    #: Tokens of every response counted by this delivery, however it ended.
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None


class ReplyService:
    def __init__(
        self,
        *,
        messages: MessageStore,
        conversations: ConversationStore,
        turns: TurnStore,
        usage: UsageStore,
        broadcaster: Broadcaster,
        model: Callable[[], ModelClient],
        limits: ReplyLimits,
        files: AttachmentFiles | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._files = files
        self._messages = messages
        self._conversations = conversations
        self._turns = turns
        self._usage = usage
        self._broadcaster = broadcaster
        # A factory, so a duplicate delivery never pays for reading the API key or importing the SDK.
        self._model = model
        self._limits = limits
        self._clock = clock

    def handle(self, queued: QueuedMessage, *, attempt: int, deadline: float | None = None) -> ReplyOutcome:
        """Answer one delivery. Raises (so SQS redelivers) only for failures worth another attempt.

        ``deadline`` (on this service's clock): when to stop streaming, well before Lambda's hard timeout would
        end the worker mid-frame. A resumable reply is handed back (:class:`ReplyHandedBack`) to be resumed by the
        next delivery; on the last attempt, or when the response cannot outlive its stream, it fails cleanly.
        """
        claimed = self._claim(queued)
        if isinstance(claimed, ReplyOutcome):
            return claimed
        record = claimed
        if record.status.is_final:
            logger.info("Duplicate delivery ignored", extra={"status": record.status.value})
            return ReplyOutcome(ReplyResult.DUPLICATE)
        progress = _Progress()
        if record.cancel_requested:
            # The user pressed Stop while an earlier delivery streamed, and that delivery died: no new model turn.
            return self._cancel(queued, record, progress)
        try:
            try:
                return self._stream(queued, record, progress, deadline=deadline)
            except _CancelRequested:
                return self._cancel(queued, record, progress)
            except _DeadlineReached as reached:
                if reached.resumable and attempt < self._limits.max_receive_count:
                    # The response runs on server-side; the redelivery (soon: the worker shortens the visibility)
                    # resumes it from the checkpoint. Better than Lambda ending the worker mid-frame.
                    logger.warning("Reply handed back before the worker's timeout", extra={"attempt": attempt})
                    raise ReplyHandedBack("handed back before the worker's timeout") from None
                self._fail(queued, record, progress, ModelError("The reply took too long and was stopped."))
                return ReplyOutcome(ReplyResult.FAILED, error_code=ErrorCode.MODEL_UNAVAILABLE)
            except (ReplyHandedBack, QuotaExceeded):
                raise
            except Exception:
                if self._cancel_was_requested(record):
                    # The cancel route stopped the model response, which ended its stream: that is the cancel.
                    return self._cancel(queued, record, progress)
                raise
        except AssistantError as error:
            if error.retryable and attempt < self._limits.max_receive_count:
                logger.warning("Reply failed, SQS will retry", extra={"attempt": attempt, "code": error.code.value})
                raise
            self._fail(queued, record, progress, error)
            if error.retryable:
                raise  # out of attempts: the user has their error frame, the message goes to the dead-letter queue
            return ReplyOutcome(ReplyResult.FAILED, error_code=error.code)
        except Exception:
            if attempt >= self._limits.max_receive_count:
                logger.exception("Reply failed on the last attempt; the message goes to the dead-letter queue")
                self._fail(
                    queued, record, progress, AssistantError("Something went wrong while answering. Please try again.")
                )
            raise

    def _claim(self, queued: QueuedMessage) -> MessageRecord | ReplyOutcome:
        """Claim the message without reading it first (the claim's condition checks it is the queued record the
        queue message describes, and a failed claim returns the record it found), or learn what an earlier
        delivery made of it: the record to go on with (``streaming`` if claimed or to be resumed, or final), or the
        outcome of a message refused over quota.

        The record is expected as ``sendMessage`` wrote it: created when it was received (intake stamps both with
        one clock reading). A record that differs (a client's retry re-enqueued an older record) is claimed as
        found, with one more call.
        """
        record = MessageRecord.queued(
            queued.user_id, queued.message_id, queued.conversation_id, created_at=iso_utc(queued.received_at)
        )
        for _ in range(2):
            claim = self._messages.claim(record, now=self._clock(), quotas=self._limits.quotas)
            if claim.outcome is ClaimOutcome.CLAIMED:
                return replace(record, status=MessageStatus.STREAMING)
            if claim.outcome is ClaimOutcome.QUOTA_EXCEEDED:
                return self._reject_over_quota(queued, record)
            if claim.outcome is ClaimOutcome.CONVERSATION_GONE:
                # Deleted while the message waited: its tabs were told; the record goes with the conversation.
                self._messages.discard(queued.user_id, queued.message_id)
                logger.info("Message of a deleted conversation dropped")
                return ReplyOutcome(ReplyResult.CANCELLED)
            if claim.found is None:
                # sendMessage writes the record before it enqueues, so this is a bug or an expired (7-day-old)
                # record.
                raise LookupError(f"No record for message {queued.message_id}; refusing to answer it twice or blind.")
            record = claim.found
            if record.status is not MessageStatus.QUEUED:
                # Claimed by an earlier delivery (streaming: resume it; final: a duplicate), or cancelled while queued.
                return record
        raise RuntimeError(f"Claiming message {record.message_id} failed without a reason.")

    def _cancel_was_requested(self, record: MessageRecord) -> bool:
        fresh = self._messages.get(record.user_id, record.message_id)
        return fresh is not None and fresh.status is MessageStatus.STREAMING and fresh.cancel_requested

    # --- states -------------------------------------------------------------------------------------------------

    def _reject_over_quota(self, queued: QueuedMessage, record: MessageRecord) -> ReplyOutcome:
        # Checked (atomically with the claim) before the model is called: an over-quota message costs nothing.
        self._messages.finish(
            record,
            status=MessageStatus.FAILED,
            now=self._clock(),
            error_code=ErrorCode.QUOTA_EXCEEDED.value,
            expected=MessageStatus.QUEUED,
            turn=self._turn(queued, record, _Progress(), TurnStatus.FAILED, error_code=ErrorCode.QUOTA_EXCEEDED.value),
        )
        self._messages.forget_waiting(record.user_id, record.message_id)
        error = QuotaExceeded("You have reached today's message limit. It resets at midnight UTC.")
        self._send(record, ErrorFrame.from_error(error, message_id=record.message_id))
        return ReplyOutcome(ReplyResult.FAILED, error_code=error.code)

    def _stream(
        self, queued: QueuedMessage, record: MessageRecord, progress: _Progress, *, deadline: float | None
    ) -> ReplyOutcome:
        # The conversation is not read: the claim held the record to the conversation sendMessage found (see
        # MessageStore.claim), and the model is sent its turns, which is all a reply needs of it.
        model = self._model()
        progress.model = model.model
        # The connection list is cached between frames of a reply, not across replies: a tab opened (or reloaded)
        # since the last reply must get this one from its first frame.
        self._broadcaster.invalidate(queued.user_id)
        context = ToolContext(
            user_id=queued.user_id, conversation_id=record.conversation_id, message_id=record.message_id
        )
        checkpoint = record.checkpoint

        def count(usage: ResponseUsage) -> None:
            progress.input_tokens += usage.input_tokens
            progress.output_tokens += usage.output_tokens
            self._messages.count_usage(
                record,
                response_id=usage.response_id,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                now=self._clock(),
            )
            if usage.estimated:
                logger.info("Counted an estimate: the provider reported no usage for this response")
            progress.check_quota = True

        events: Iterator[ModelEvent]
        if checkpoint.response_id:
            logger.info("Resuming an interrupted reply", extra={"seq": checkpoint.seq})
            progress.next_seq = checkpoint.seq + 1
            progress.sent_chars = checkpoint.frame_end if checkpoint.seq >= 0 else checkpoint.round_start
            progress.round_start = checkpoint.round_start
            progress.resume = record
            events = model.resume_reply(response_id=checkpoint.response_id, context=context, usage_sink=count)
        else:
            events = model.stream_reply(
                text=queued.text,
                history=self._history(queued, record, model),
                files=self._attach(queued, record),
                context=context,
                usage_sink=count,
            )

        coalescer = DeltaCoalescer(
            interval_seconds=self._limits.flush_interval_s,
            max_interval_seconds=max(self._limits.flush_interval_s, self._limits.flush_max_interval_s),
            max_chars=self._limits.flush_chars,
        )
        try:
            for event in events:
                if deadline is not None and self._clock() > deadline:
                    if progress.unchecked is not None:
                        # Handing back is planned: record the last frame, so the next delivery re-sends nothing.
                        self._checkpoint(record, progress, progress.unchecked, self._clock())
                    raise _DeadlineReached(resumable=model.resumable)
                if isinstance(event, TextDelta):
                    if progress.resume is not None:
                        self._replay(record, progress, event.text)
                    else:
                        self._post_chunks(record, progress, coalescer.add(event.text))
                    continue
                if isinstance(event, RoundRestarted):
                    coalescer.drain()  # unsent text of the dropped attempt is void as well
                    self._restart_round(record, progress)
                    continue
                if isinstance(event, ToolExchange):
                    progress.exchanges.append(event)
                    continue
                # Any other event ends a run of text: what is buffered goes out first, in order.
                self._catch_up(record, progress)
                self._post_chunks(record, progress, coalescer.drain())
                if isinstance(event, ResponseStarted):
                    if event.model:
                        progress.model = event.model  # a reply stopped before `done` names who wrote it
                    self._start_round(record, progress, event.response_id)
                elif isinstance(event, ToolEvent):
                    if event.status == "started" and progress.check_quota:
                        self._stop_if_quota_spent(queued.user_id, progress)
                    if event.status != "started":
                        progress.tools.append(ToolUse(event.name, "failed" if event.status == "failed" else "done"))
                    self._send(
                        record,
                        ToolActivity(message_id=record.message_id, name=event.name, status=ToolStatus(event.status)),
                    )
                elif isinstance(event, ReplyCompleted):
                    progress.completed.append(event)
            self._catch_up(record, progress)
            self._post_chunks(record, progress, coalescer.drain())
        finally:
            # Closing the generator closes the HTTP stream; while a cancel (a StopReply) propagates it also cancels
            # the model response, while a failure leaves the response running for the retry to resume.
            close = getattr(events, "close", None)
            if close is not None:
                close()
        if not progress.completed:
            raise ModelError("The model stopped without finishing the reply.")
        # No checkpoint of the last frames before `done`: the finish below records the reply as a whole. One would
        # only narrow what a delivery dying in the moment between the last frame and the finish re-sends (the text
        # since the last checkpoint, at most about a second, which clients drop by `seq`), at the price of a write
        # for every reply and a DynamoDB round trip in front of `done`. A Stop that reaches a reply whose text has
        # all been sent finds it `done`: the user has the whole answer.
        return self._complete(queued, record, progress)

    def _attach(self, queued: QueuedMessage, record: MessageRecord) -> list[FilePart]:
        """Move the message's uploads under ``files/`` (marked attached to the conversation), as model parts."""
        if not queued.attachments or self._files is None:
            return []
        files = self._files
        return [
            files.model_part(record.user_id, a, files.attach(record.user_id, record.conversation_id, a))
            for a in queued.attachments
        ]

    def _earlier_files(self, user_id: str, turn: Turn) -> tuple[FilePart, ...]:
        if not turn.attachments or self._files is None:
            return ()
        parts = []
        for attachment in turn.attachments:
            part = self._files.earlier_part(user_id, attachment)
            if part is not None:
                parts.append(part)
        return tuple(parts)

    def _history(self, queued: QueuedMessage, record: MessageRecord, model: ModelClient) -> list[HistoryItem]:
        """The conversation's earlier turns as the model is sent them, oldest first, within the definition's input
        budget (the oldest whole turns are left out): the user's message, the reply's tool calls each with its
        output, then the reply's text."""
        budget = model.history_budget_chars(queued.text) - sum(
            attachment_tokens(a.content_type) * CHARS_PER_TOKEN for a in queued.attachments
        )
        history: list[HistoryItem] = []
        for turn in self._turns.context(record.user_id, record.conversation_id, budget_chars=max(0, budget)):
            files = self._earlier_files(record.user_id, turn)
            history.append(UserMessageWithFiles(turn.user_text, files) if files else ("user", turn.user_text))
            history.extend(turn.exchanges)
            if turn.assistant_text:
                history.append(("assistant", turn.assistant_text))
        return history

    def _stop_if_quota_spent(self, user_id: str, progress: _Progress) -> None:
        """Between rounds of a reply (tools are about to run, another response will follow): the claim checked the
        quota before the first round, this checks it before each later one. A reply can therefore overshoot the
        daily quota by at most one model response, whose size ``max_output_tokens`` bounds."""
        progress.check_quota = False
        spent = self._limits.quotas.exhausted_by(self._usage.today(user_id, now=self._clock()))
        if spent is not None:
            raise QuotaExceeded(spent)

    def _start_round(self, record: MessageRecord, progress: _Progress, response_id: str) -> None:
        # While the model works towards its first token: the first frame then finds the tabs already listed.
        self._broadcaster.refresh(record.user_id)
        if progress.resume is not None and response_id == progress.resume.checkpoint.response_id:
            return  # the round being resumed is already on record
        progress.resume = None
        progress.round_start = progress.sent_chars
        # Also a checkpoint: every frame of the earlier rounds was posted, so a resume replays only this round.
        if not self._messages.start_round(
            record, response_id=response_id, round_start=progress.round_start, last_seq=progress.next_seq - 1
        ):
            raise _CancelRequested
        progress.checkpoints += 1
        progress.checkpointed_at, progress.unchecked = self._clock(), None

    def _replay(self, record: MessageRecord, progress: _Progress, text: str) -> None:
        """Text of a resumed round, which the model re-streams from its start: post nothing until it covers the
        last checkpointed frame, then re-post that frame and go on with what the user has not seen."""
        assert progress.resume is not None
        progress.replayed.append(text)
        checkpoint = progress.resume.checkpoint
        seen = checkpoint.frame_end - checkpoint.round_start if checkpoint.seq >= 0 else 0
        if sum(len(part) for part in progress.replayed) >= seen:
            self._catch_up(record, progress)

    def _catch_up(self, record: MessageRecord, progress: _Progress) -> None:
        """Post the replayed text of a resumed round (also when the round ended shorter than the checkpoint)."""
        if progress.resume is not None and progress.replayed:
            round_text = "".join(progress.replayed)
            progress.replayed = []
            self._resend_after_checkpoint(record, progress, round_text)

    def _restart_round(self, record: MessageRecord, progress: _Progress) -> None:
        """The model is asked for this round again (its stream dropped and could not be followed): tell every tab
        to discard the round's text, then number frames from 0 again (docs/protocol.md, ``reset``)."""
        void = progress.sent_chars - progress.round_start
        shown = "".join(progress.text)
        progress.text = [shown[: max(0, len(shown) - void)]]
        progress.sent_chars = progress.round_start
        progress.next_seq = 0
        progress.unchecked = None
        progress.resume, progress.replayed = None, []
        self._send(record, Reset(message_id=record.message_id, offset=progress.round_start))
        progress.frames += 1

    def _resend_after_checkpoint(self, record: MessageRecord, progress: _Progress, round_text: str) -> None:
        """Post what the user may not have of a resumed round, given its full text."""
        assert progress.resume is not None
        checkpoint = progress.resume.checkpoint
        progress.resume = None
        offset = checkpoint.round_start
        if checkpoint.seq >= 0 and checkpoint.frame_end > checkpoint.frame_start >= offset:
            # The last checkpointed frame may not have been posted before the crash; clients drop a seq they have.
            again = round_text[checkpoint.frame_start - offset : checkpoint.frame_end - offset]
            self._send(
                record,
                Delta(message_id=record.message_id, seq=checkpoint.seq, text=again, offset=checkpoint.frame_start),
            )
            progress.frames += 1
        rest = round_text[max(checkpoint.frame_end - offset, 0) :] if checkpoint.seq >= 0 else round_text
        # The turn keeps this round's text; earlier rounds' text went with the dead delivery.
        progress.text = [round_text[: len(round_text) - len(rest)]]
        coalescer = DeltaCoalescer(interval_seconds=0, max_chars=self._limits.flush_chars)
        self._post_chunks(record, progress, [*coalescer.add(rest), *coalescer.drain()])

    def _post_chunks(self, record: MessageRecord, progress: _Progress, chunks: list[str]) -> None:
        """Post frames, checkpointing at most every :data:`CHECKPOINT_INTERVAL_S` (and on a round's first frame).

        The checkpoint write is also where a cancel is noticed (it is conditional on no cancel request), so a
        Stop takes effect within about a second even while the model streams steadily; the cancel route also
        stops the model response itself where the provider can. Frames between checkpoints are posted without a
        write: a delivery that dies between two checkpoints leaves the next one to resume from the last, re-sending
        at most a second of text, which clients that assemble by ``offset`` place exactly (docs/protocol.md).
        """
        for chunk in chunks:
            if not chunk:
                continue
            start, end = progress.sent_chars, progress.sent_chars + len(chunk)
            frame = (progress.next_seq, start, end)
            # Posted before its checkpoint is written, so the write's round trip never delays text on the screen
            # (nor stretches the gap before this frame). A delivery that dies between the two re-sends this frame
            # from the previous checkpoint, as it would any frame between checkpoints.
            self._send(record, Delta(message_id=record.message_id, seq=progress.next_seq, text=chunk, offset=start))
            progress.text.append(chunk)
            if progress.first_text_at is None:
                progress.first_text_at = self._clock()
            progress.next_seq += 1
            progress.sent_chars = end
            progress.frames += 1
            now = self._clock()
            if progress.checkpointed_at is None or now - progress.checkpointed_at >= CHECKPOINT_INTERVAL_S:
                self._checkpoint(record, progress, frame, now)
            else:
                progress.unchecked = frame

    def _checkpoint(self, record: MessageRecord, progress: _Progress, frame: tuple[int, int, int], now: float) -> None:
        seq, start, end = frame
        if not self._messages.checkpoint_frame(record, seq=seq, frame_start=start, frame_end=end):
            raise _CancelRequested
        progress.checkpoints += 1
        progress.checkpointed_at, progress.unchecked = now, None

    def _complete(self, queued: QueuedMessage, record: MessageRecord, progress: _Progress) -> ReplyOutcome:
        input_tokens = sum(c.input_tokens for c in progress.completed)
        output_tokens = sum(c.output_tokens for c in progress.completed)
        progress.model = progress.completed[-1].model
        # Title and recency first (idempotent, so a redelivery may repeat them): a client that lists its
        # conversations as soon as it sees `done` finds this one up to date.
        try:
            self._conversations.touch(
                queued.user_id, record.conversation_id, now=self._clock(), title=conversation_title(queued.text)
            )
        except NotFound:
            # Deleted just now: `finish` below writes no turn and removes the message's record.
            logger.info("Reply completed in a deleted conversation")
        self._send(
            record,
            Done(
                message_id=record.message_id,
                conversation_id=record.conversation_id,
                usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                model=progress.completed[-1].model,
            ),
        )
        # After the frame: if we die in between, the redelivery resumes and sends `done` again rather than never.
        # The turn is committed with the status, once.
        turn = self._turn(queued, record, progress, TurnStatus.DONE, tokens=(input_tokens, output_tokens))
        self._messages.finish(record, status=MessageStatus.DONE, now=self._clock(), turn=turn)
        return ReplyOutcome(
            ReplyResult.DONE,
            first_text_after_s=None if progress.first_text_at is None else progress.first_text_at - queued.received_at,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            frames=progress.frames,
            checkpoint_writes=progress.checkpoints,
        )

    def _cancel(self, queued: QueuedMessage, record: MessageRecord, progress: _Progress) -> ReplyOutcome:
        # The turn keeps what the user saw before the stop; the model is sent it with the next message.
        turn = self._turn(queued, record, progress, TurnStatus.CANCELLED)
        if not self._messages.finish(record, status=MessageStatus.CANCELLED, now=self._clock(), turn=turn):
            # The conditional write failed because the message is no longer streaming, not because of a cancel.
            logger.warning("Message finished by another delivery while streaming")
            return ReplyOutcome(ReplyResult.DUPLICATE)
        self._send(record, Cancelled(message_id=record.message_id))
        logger.info("Reply cancelled by the user")
        return ReplyOutcome(ReplyResult.CANCELLED)

    def _fail(self, queued: QueuedMessage, record: MessageRecord, progress: _Progress, error: AssistantError) -> None:
        logger.error("Reply failed", extra={"code": error.code.value, "error_type": type(error).__name__})
        turn = self._turn(queued, record, progress, TurnStatus.FAILED, error_code=error.code.value)
        self._messages.finish(
            record, status=MessageStatus.FAILED, now=self._clock(), error_code=error.code.value, turn=turn
        )
        self._send(record, ErrorFrame.from_error(error, message_id=record.message_id))

    # --- helpers ------------------------------------------------------------------------------------------------

    def _turn(
        self,
        queued: QueuedMessage,
        record: MessageRecord,
        progress: _Progress,
        status: TurnStatus,
        *,
        tokens: tuple[int, int] | None = None,
        error_code: str | None = None,
    ) -> Turn:
        input_tokens, output_tokens = tokens or (progress.input_tokens, progress.output_tokens)
        return Turn(
            conversation_id=record.conversation_id,
            message_id=record.message_id,
            created_at=record.created_at,
            user_text=queued.text,
            assistant_text="".join(progress.text),
            status=status,
            model=progress.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tools=tuple(progress.tools),
            finished_at=iso_utc(self._clock()),
            error_code=error_code,
            exchanges=tuple(progress.exchanges),
            attachments=queued.attachments,
        )

    def _send(self, record: MessageRecord, frame: ServerFrame) -> None:
        self._broadcaster.send(record.user_id, frame)
