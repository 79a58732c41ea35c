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
within about a second. The frames' arithmetic (offsets, checkpoints, what a resumed round posts again) is
:mod:`assistant.reply_progress`; how a delivery ends (final status, turn, last frame), :mod:`assistant.reply_finish`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger

from assistant.attachments import AttachmentFiles
from assistant.errors import AssistantError, ErrorCode, ModelError, QuotaExceeded
from assistant.model import (
    ModelClient,
    ModelEvent,
    ReplyCompleted,
    ResponseStarted,
    ResponseUsage,
    RoundRestarted,
    TextDelta,
    ToolEvent,
    ToolExchange,
)
from assistant.model_wire import FilePart, HistoryItem, UserMessageWithFiles
from assistant.push import Broadcaster, DeltaCoalescer
from assistant.queue import QueuedMessage
from assistant.reply_finish import DeliveryReport, DeliveryResult, ReplyFinisher, TurnDraft
from assistant.reply_frames import ToolActivity, ToolStatus
from assistant.reply_progress import CancelRequested, ReplyProgress
from assistant.server_frames import ServerFrameModel
from assistant.stores.conversations import ConversationStore
from assistant.stores.messages import ClaimOutcome, MessageRecord, MessageStatus, MessageStore
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import ToolUse, Turn, TurnStore
from assistant.stores.usage import Quotas, UsageStore
from assistant.token_estimates import CHARS_PER_TOKEN, attachment_tokens
from assistant.tools.registry import ToolContext

__all__ = [
    "DeliveryReport",
    "DeliveryResult",
    "ReplyHandedBack",
    "ReplyLimits",
    "ReplyService",
]

logger = Logger(child=True)


@dataclass(frozen=True)
class ReplyLimits:
    quotas: Quotas
    flush_interval_s: float
    flush_max_interval_s: float
    flush_chars: int
    max_receive_count: int


class _DeadlineReached(Exception):
    """The worker is close to its timeout. Not a :class:`StopReply`: closing the stream must leave a background
    response running, for the next delivery to resume."""

    def __init__(self, *, resumable: bool) -> None:
        super().__init__("deadline reached")
        self.resumable = resumable


class ReplyHandedBack(Exception):
    """Raised to SQS on purpose: the reply continues in the next delivery (see :meth:`ReplyService.handle`)."""


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
        self._finish = ReplyFinisher(messages=messages, conversations=conversations, send=self._send, clock=clock)

    def handle(self, queued: QueuedMessage, *, attempt: int, deadline: float | None = None) -> DeliveryReport:
        """Answer one delivery. Raises (so SQS redelivers) only for failures worth another attempt.

        ``deadline`` (on this service's clock): when to stop streaming, well before Lambda's hard timeout would
        end the worker mid-frame. A resumable reply is handed back (:class:`ReplyHandedBack`) to be resumed by the
        next delivery; on the last attempt, or when the response cannot outlive its stream, it fails cleanly.
        """
        claimed = self._claim(queued)
        if isinstance(claimed, DeliveryReport):
            return claimed
        record = claimed
        if record.status.is_final:
            logger.info("Duplicate delivery ignored", extra={"status": record.status.value})
            return DeliveryReport(DeliveryResult.DUPLICATE)
        draft = TurnDraft(self._progress(record))
        if record.cancel_requested:
            # The user pressed Stop while an earlier delivery streamed, and that delivery died: no new model turn.
            return self._finish.cancel(queued, record, draft)
        try:
            try:
                return self._stream(queued, record, draft, deadline=deadline)
            except CancelRequested:
                return self._finish.cancel(queued, record, draft)
            except _DeadlineReached as reached:
                if reached.resumable and attempt < self._limits.max_receive_count:
                    # The response runs on server-side; the redelivery (soon: the worker shortens the visibility)
                    # resumes it from the checkpoint. Better than Lambda ending the worker mid-frame.
                    logger.warning("Reply handed back before the worker's timeout", extra={"attempt": attempt})
                    raise ReplyHandedBack("handed back before the worker's timeout") from None
                self._finish.fail(queued, record, draft, ModelError("The reply took too long and was stopped."))
                return DeliveryReport(DeliveryResult.FAILED, error_code=ErrorCode.MODEL_UNAVAILABLE)
            except (ReplyHandedBack, QuotaExceeded):
                raise
            except Exception:
                if self._cancel_was_requested(record):
                    # The cancel route stopped the model response, which ended its stream: that is the cancel.
                    return self._finish.cancel(queued, record, draft)
                raise
        except AssistantError as error:
            if error.retryable and attempt < self._limits.max_receive_count:
                logger.warning("Reply failed, SQS will retry", extra={"attempt": attempt, "code": error.code.value})
                raise
            self._finish.fail(queued, record, draft, error)
            if error.retryable:
                raise  # out of attempts: the user has their error frame, the message goes to the dead-letter queue
            return DeliveryReport(DeliveryResult.FAILED, error_code=error.code)
        except Exception:
            if attempt >= self._limits.max_receive_count:
                logger.exception("Reply failed on the last attempt; the message goes to the dead-letter queue")
                self._finish.fail(
                    queued, record, draft, AssistantError("Something went wrong while answering. Please try again.")
                )
            raise

    def _progress(self, record: MessageRecord) -> ReplyProgress:
        coalescer = DeltaCoalescer(
            interval_seconds=self._limits.flush_interval_s,
            max_interval_seconds=max(self._limits.flush_interval_s, self._limits.flush_max_interval_s),
            max_chars=self._limits.flush_chars,
        )
        return ReplyProgress(
            record,
            checkpoints=self._messages,
            send=lambda frame: self._send(record, frame),
            coalescer=coalescer,
            resend_chars=self._limits.flush_chars,
            clock=self._clock,
        )

    def _claim(self, queued: QueuedMessage) -> MessageRecord | DeliveryReport:
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
                return self._finish.reject_over_quota(queued, record)
            if claim.outcome is ClaimOutcome.CONVERSATION_GONE:
                # Deleted while the message waited: its tabs were told; the record goes with the conversation.
                self._messages.discard(queued.user_id, queued.message_id)
                logger.info("Message of a deleted conversation dropped")
                return DeliveryReport(DeliveryResult.CANCELLED)
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

    def _stream(
        self, queued: QueuedMessage, record: MessageRecord, draft: TurnDraft, *, deadline: float | None
    ) -> DeliveryReport:
        # The conversation is not read: the claim held the record to the conversation sendMessage found (see
        # MessageStore.claim), and the model is sent its turns, which is all a reply needs of it.
        model = self._model()
        draft.model = model.model
        progress = draft.progress
        assert progress is not None
        # The connection list is cached between frames of a reply, not across replies: a tab opened (or reloaded)
        # since the last reply must get this one from its first frame.
        self._broadcaster.invalidate(queued.user_id)
        context = ToolContext(
            user_id=queued.user_id, conversation_id=record.conversation_id, message_id=record.message_id
        )
        checkpoint = record.checkpoint
        #: A response's tokens were just counted: check the quota before the model is asked for another round.
        check_quota = False

        def count(usage: ResponseUsage) -> None:
            nonlocal check_quota
            draft.input_tokens += usage.input_tokens
            draft.output_tokens += usage.output_tokens
            self._messages.count_usage(
                record,
                response_id=usage.response_id,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                now=self._clock(),
            )
            if usage.estimated:
                logger.info("Counted an estimate: the provider reported no usage for this response")
            check_quota = True

        events: Iterator[ModelEvent]
        if checkpoint.response_id:
            logger.info("Resuming an interrupted reply", extra={"seq": checkpoint.seq})
            progress.resume()
            events = model.resume_reply(response_id=checkpoint.response_id, context=context, usage_sink=count)
        else:
            events = model.stream_reply(
                text=queued.text,
                history=self._history(queued, record, model),
                files=self._attach(queued, record),
                context=context,
                usage_sink=count,
            )

        try:
            for event in events:
                if deadline is not None and self._clock() > deadline:
                    # Handing back is planned: record the last frame, so the next delivery re-sends nothing.
                    progress.checkpoint_last_frame()
                    raise _DeadlineReached(resumable=model.resumable)
                if isinstance(event, TextDelta):
                    progress.add_text(event.text)
                    continue
                if isinstance(event, RoundRestarted):
                    progress.restart_round()
                    continue
                if isinstance(event, ToolExchange):
                    draft.exchanges.append(event)
                    continue
                # Any other event ends a run of text: what is buffered goes out first, in order.
                progress.flush()
                if isinstance(event, ResponseStarted):
                    if event.model:
                        draft.model = event.model  # a reply stopped before `done` names who wrote it
                    # While the model works towards its first token: the first frame then finds the tabs listed.
                    self._broadcaster.refresh(record.user_id)
                    progress.start_round(event.response_id)
                elif isinstance(event, ToolEvent):
                    if event.status == "started" and check_quota:
                        check_quota = False
                        self._stop_if_quota_spent(queued.user_id)
                    if event.status != "started":
                        draft.tools.append(ToolUse(event.name, "failed" if event.status == "failed" else "done"))
                    self._send(
                        record,
                        ToolActivity(message_id=record.message_id, name=event.name, status=ToolStatus(event.status)),
                    )
                elif isinstance(event, ReplyCompleted):
                    draft.completed.append(event)
            progress.flush()
        finally:
            # Closing the generator closes the HTTP stream; while a cancel (a StopReply) propagates it also cancels
            # the model response, while a failure leaves the response running for the retry to resume.
            close = getattr(events, "close", None)
            if close is not None:
                close()
        if not draft.completed:
            raise ModelError("The model stopped without finishing the reply.")
        # No checkpoint of the last frames before `done`: the finish below records the reply as a whole. One would
        # only narrow what a delivery dying in the moment between the last frame and the finish re-sends (the text
        # since the last checkpoint, at most about a second, which clients drop by `seq`), at the price of a write
        # for every reply and a DynamoDB round trip in front of `done`. A Stop that reaches a reply whose text has
        # all been sent finds it `done`: the user has the whole answer.
        return self._finish.complete(queued, record, draft)

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

    def _stop_if_quota_spent(self, user_id: str) -> None:
        """Between rounds of a reply (tools are about to run, another response will follow): the claim checked the
        quota before the first round, this checks it before each later one. A reply can therefore overshoot the
        daily quota by at most one model response, whose size ``max_output_tokens`` bounds."""
        spent = self._limits.quotas.exhausted_by(self._usage.today(user_id, now=self._clock()))
        if spent is not None:
            raise QuotaExceeded(spent)

    def _send(self, record: MessageRecord, frame: ServerFrameModel) -> None:
        self._broadcaster.send(record.user_id, frame)
