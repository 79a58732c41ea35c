"""Accepting a user's message: validate, record, enqueue. The route answers at once; the worker streams later."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from assistant.attachments import UploadService
from assistant.client_frames import new_id
from assistant.errors import NotFound, QuotaExceeded
from assistant.message_frames import Accepted, SendMessage
from assistant.queue import MessageQueue, QueuedMessage
from assistant.stores.batch import ItemReader
from assistant.stores.conversations import ConversationStore
from assistant.stores.messages import AlsoRefused, ConversationDeleted, MessageRecord, MessageStatus, MessageStore
from assistant.stores.rate_limits import BucketMoved, RateLimit, RateLimiter
from assistant.stores.timestamps import utc_day
from assistant.stores.usage import DailyUsage, Quotas, UsageStore

logger = Logger(child=True)

#: The user's token bucket for this route (``RateLimiter``).
_RATE_LIMIT_BUCKET = "sendMessage"


@dataclass(frozen=True)
class IntakeLimits:
    quotas: Quotas
    rate_limit: RateLimit
    #: Messages of one user that may wait to be answered at once.
    max_waiting: int


class MessageIntake:
    def __init__(
        self,
        *,
        conversations: ConversationStore,
        messages: MessageStore,
        usage: UsageStore,
        rate_limiter: RateLimiter,
        reader: ItemReader,
        limits: IntakeLimits,
        queue: MessageQueue,
        uploads: UploadService | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._uploads = uploads
        self._reader = reader
        self._conversations = conversations
        self._messages = messages
        self._usage = usage
        self._rate_limiter = rate_limiter
        self._limits = limits
        self._queue = queue
        self._clock = clock

    def accept(self, *, user_id: str, connection_id: str, frame: SendMessage) -> Accepted:
        now = self._clock()
        # Everything the decisions below need, in one round trip: the rate-limit bucket, today's usage, and the
        # conversation the message continues (or the pointer to the current one).
        conversation_key = (
            self._conversations.pointer_key(user_id)
            if frame.conversation_id is None
            else self._conversations.record_key(user_id, frame.conversation_id)
        )
        upload_keys = self._uploads.record_keys(user_id, frame.attachments) if self._uploads else []
        if frame.attachments and self._uploads is None:
            raise NotFound("This stage takes no attachments.")
        bucket, usage, conversation, *upload_records = self._reader.get(
            [
                self._rate_limiter.bucket_key(user_id, _RATE_LIMIT_BUCKET),
                self._usage.day_key(user_id, now=now),
                conversation_key,
                *upload_keys,
            ]
        )
        # Refusals first, before anything is recorded or enqueued: a refused frame leaves no trace.
        self._rate_limiter.check(_RATE_LIMIT_BUCKET, self._limits.rate_limit, read=bucket)
        # The worker's claim is the exact check (atomic with counting the message); this one spares a message that
        # cannot be answered today its record, its queue message and its worker run.
        spent = self._limits.quotas.exhausted_by(DailyUsage.from_item(utc_day(now), usage))
        if spent is not None:
            raise QuotaExceeded(spent)
        if frame.conversation_id is None:
            conversation_id = self._conversations.current_id(user_id, pointer=conversation, now=now)
        elif conversation is None:
            # Someone else's conversation gets the same answer as one that never existed.
            raise NotFound("No such conversation.")
        else:
            conversation_id = frame.conversation_id
        # Each upload the user's, uploaded, its declared size and, by its first bytes, its declared type.
        attachments = (
            self._uploads.check(user_id, list(frame.attachments), upload_records)
            if self._uploads and frame.attachments
            else []
        )

        message_id = frame.message_id or new_id("m")
        recorded: list[tuple[MessageRecord, bool]] = []
        # In the same transaction: the conversation's title (from its first message), recency and expiry, on the
        # condition that it still exists (a deletion since the read above refuses the message).
        title_text = frame.message if frame.message.strip() else ", ".join(a.file_name for a in attachments)
        used = self._conversations.first_message_update(user_id, conversation_id, text=title_text, now=now)

        def record_taking_a_token(update: dict[str, Any]) -> None:
            # The bucket's write is part of the message record's transaction: one call instead of two.
            try:
                recorded.append(
                    self._messages.create(
                        user_id,
                        message_id,
                        conversation_id,
                        now=now,
                        max_waiting=self._limits.max_waiting,
                        also=update,
                        conversation_update=used,
                    )
                )
            except AlsoRefused:
                raise BucketMoved from None
            except ConversationDeleted:
                raise NotFound("No such conversation.") from None

        self._rate_limiter.take(
            user_id, _RATE_LIMIT_BUCKET, self._limits.rate_limit, read=bucket, write=record_taking_a_token
        )
        [(record, created)] = recorded
        if not created:
            # A repeated id wrote nothing, so the transaction took no token: take it now. A client repeating one
            # id is charged like one sending new ones (answered with the original `accepted` while within it).
            self._rate_limiter.take(user_id, _RATE_LIMIT_BUCKET, self._limits.rate_limit, read=bucket)
        if not created and record.status is not MessageStatus.QUEUED:
            # A client retry of a message already being answered (or answered): the reply is not repeated.
            logger.info("Repeated messageId; not enqueued again", extra={"status": record.status.value})
            return Accepted(message_id=message_id, conversation_id=record.conversation_id)
        # Enqueue even when the record existed but is still queued: the first enqueue may have failed after the
        # record was written. SQS drops a duplicate within 5 minutes and the worker's record check after that.
        self._queue.enqueue(
            QueuedMessage(
                user_id=user_id,
                message_id=message_id,
                conversation_id=record.conversation_id,
                text=frame.message,
                connection_id=connection_id,
                received_at=now,
                attachments=tuple(attachments),
            ),
        )
        return Accepted(message_id=message_id, conversation_id=record.conversation_id)
