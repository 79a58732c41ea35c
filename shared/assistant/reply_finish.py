"""How a delivery of a queued message ends: the message's final status and its conversation turn written once, in one
transaction (:meth:`MessageStore.finish`), the last frame (``done``, ``cancelled`` or ``error``) sent to the user's
tabs, and what the delivery reports for the worker's metrics (:class:`DeliveryReport`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from aws_lambda_powertools import Logger

from assistant.errors import AssistantError, ErrorCode, NotFound, QuotaExceeded
from assistant.model_events import ReplyCompleted, ToolExchange
from assistant.queue import QueuedMessage
from assistant.reply_frames import Cancelled, Done, Usage
from assistant.reply_progress import ReplyProgress
from assistant.server_frames import ErrorFrame, ServerFrameModel
from assistant.stores.conversations import ConversationStore
from assistant.stores.messages import MessageRecord, MessageStatus, MessageStore
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import ToolUse, Turn, TurnStatus
from assistant.titles import conversation_title

__all__ = ["DeliveryReport", "DeliveryResult", "ReplyFinisher", "TurnDraft"]

logger = Logger(child=True)


class DeliveryResult(StrEnum):
    """How one delivery of a queued message ended."""

    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"
    #: A redelivery of a message that had already been answered, cancelled or failed.
    DUPLICATE = "duplicate"


@dataclass
class DeliveryReport:
    """What one delivery did, for the worker's metrics: how it ended and what it cost."""

    result: DeliveryResult
    #: Seconds from the message's arrival at the API to its first frame of text being posted.
    first_text_after_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    frames: int = 0
    checkpoint_writes: int = 0
    error_code: ErrorCode | None = None


@dataclass
class TurnDraft:
    """The conversation turn this delivery is building, however it ends: the text shown (its frames), the model's
    completed responses, the tools run and what every response cost."""

    #: The delivery's frames and the text they showed; ``None`` before any (a message refused over quota).
    progress: ReplyProgress | None = None
    completed: list[ReplyCompleted] = field(default_factory=list)
    tools: list[ToolUse] = field(default_factory=list)
    #: Each tool call of this delivery with its output, for the turn (the model is sent them with later messages).
    exchanges: list[ToolExchange] = field(default_factory=list)
    #: Tokens of every response counted by this delivery, however it ended.
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None


class ReplyFinisher:
    def __init__(
        self,
        *,
        messages: MessageStore,
        conversations: ConversationStore,
        send: Callable[[MessageRecord, ServerFrameModel], object],
        clock: Callable[[], float],
    ) -> None:
        self._messages = messages
        self._conversations = conversations
        self._send = send
        self._clock = clock

    def complete(self, queued: QueuedMessage, record: MessageRecord, draft: TurnDraft) -> DeliveryReport:
        input_tokens = sum(c.input_tokens for c in draft.completed)
        output_tokens = sum(c.output_tokens for c in draft.completed)
        draft.model = draft.completed[-1].model
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
                model=draft.completed[-1].model,
            ),
        )
        # After the frame: if we die in between, the redelivery resumes and sends `done` again rather than never.
        # The turn is committed with the status, once.
        turn = self._turn(queued, record, draft, TurnStatus.DONE, tokens=(input_tokens, output_tokens))
        self._messages.finish(record, status=MessageStatus.DONE, now=self._clock(), turn=turn)
        progress = draft.progress
        first_text_at = None if progress is None else progress.first_text_at
        return DeliveryReport(
            DeliveryResult.DONE,
            first_text_after_s=None if first_text_at is None else first_text_at - queued.received_at,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            frames=0 if progress is None else progress.frames,
            checkpoint_writes=0 if progress is None else progress.checkpoints,
        )

    def cancel(self, queued: QueuedMessage, record: MessageRecord, draft: TurnDraft) -> DeliveryReport:
        # The turn keeps what the user saw before the stop; the model is sent it with the next message.
        turn = self._turn(queued, record, draft, TurnStatus.CANCELLED)
        if not self._messages.finish(record, status=MessageStatus.CANCELLED, now=self._clock(), turn=turn):
            # The conditional write failed because the message is no longer streaming, not because of a cancel.
            logger.warning("Message finished by another delivery while streaming")
            return DeliveryReport(DeliveryResult.DUPLICATE)
        self._send(record, Cancelled(message_id=record.message_id))
        logger.info("Reply cancelled by the user")
        return DeliveryReport(DeliveryResult.CANCELLED)

    def fail(self, queued: QueuedMessage, record: MessageRecord, draft: TurnDraft, error: AssistantError) -> None:
        logger.error("Reply failed", extra={"code": error.code.value, "error_type": type(error).__name__})
        turn = self._turn(queued, record, draft, TurnStatus.FAILED, error_code=error.code.value)
        self._messages.finish(
            record, status=MessageStatus.FAILED, now=self._clock(), error_code=error.code.value, turn=turn
        )
        self._send(record, ErrorFrame.from_error(error, message_id=record.message_id))

    def reject_over_quota(self, queued: QueuedMessage, record: MessageRecord) -> DeliveryReport:
        # Checked (atomically with the claim) before the model is called: an over-quota message costs nothing.
        code = ErrorCode.QUOTA_EXCEEDED.value
        self._messages.finish(
            record,
            status=MessageStatus.FAILED,
            now=self._clock(),
            error_code=code,
            expected=MessageStatus.QUEUED,
            turn=self._turn(queued, record, TurnDraft(), TurnStatus.FAILED, error_code=code),
        )
        self._messages.waiting.forget(record.user_id, record.message_id)
        error = QuotaExceeded("You have reached today's message limit. It resets at midnight UTC.")
        self._send(record, ErrorFrame.from_error(error, message_id=record.message_id))
        return DeliveryReport(DeliveryResult.FAILED, error_code=error.code)

    def _turn(
        self,
        queued: QueuedMessage,
        record: MessageRecord,
        draft: TurnDraft,
        status: TurnStatus,
        *,
        tokens: tuple[int, int] | None = None,
        error_code: str | None = None,
    ) -> Turn:
        input_tokens, output_tokens = tokens or (draft.input_tokens, draft.output_tokens)
        return Turn(
            conversation_id=record.conversation_id,
            message_id=record.message_id,
            created_at=record.created_at,
            user_text=queued.text,
            assistant_text="" if draft.progress is None else draft.progress.shown_text,
            status=status,
            model=draft.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tools=tuple(draft.tools),
            finished_at=iso_utc(self._clock()),
            error_code=error_code,
            exchanges=tuple(draft.exchanges),
            attachments=queued.attachments,
        )
