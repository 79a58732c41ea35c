"""One record per user message: the state machine that makes replies exactly-once and cancellable.

SQS delivers at least once, and a worker can die mid-reply. The record tells every delivery what already happened:

``queued`` --claim (+1 message on today's usage, in one transaction)--> ``streaming`` --> ``done``
                                                                                   \\-> ``cancelled`` / ``failed``

The worker does not read the record before claiming it: the claim is conditional on the record being exactly what
the queued message says it is (``queued``, its conversation, its creation time), and a claim that fails returns the
record it found (``ReturnValuesOnConditionCheckFailure``), which tells a duplicate or a resumed delivery what to do.

While streaming, the worker checkpoints the last frame it posted, right *after* posting it and at most once every
``CHECKPOINT_INTERVAL_S`` (:mod:`assistant.reply_progress`), and each round's start (sequence number, the frame's
character span and the model response it came from). The checkpoint write is conditional on nobody having asked
to cancel, so the same write doubles as the cancel check. A redelivered message that finds ``streaming`` resumes
from the checkpoint instead of asking the model again, so the conversation never gets a second turn.

The record's types are :mod:`assistant.stores.message_records`; the claim and the counting of tokens, which write
today's usage with the record, :mod:`assistant.stores.message_usage`; the user's set of messages waiting in the
queue, :mod:`assistant.stores.waiting`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from assistant.stores.conditions import cancellation_reasons, condition_failed, item_condition_failed
from assistant.stores.keys import MESSAGE_PREFIX, PK, SK, TTL, conversation_sk, key, message_sk, user_pk
from assistant.stores.message_records import (
    CancelRequest,
    Checkpoint,
    Claim,
    ClaimOutcome,
    MessageRecord,
    MessageStatus,
)
from assistant.stores.message_usage import MessageUsage
from assistant.stores.retention import NO_RETENTION, Retention
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import Turn
from assistant.stores.usage import Quotas
from assistant.stores.waiting import TooManyWaiting, WaitingMessages
from assistant.wiring import MESSAGE_TTL_SECONDS

__all__ = [
    "AlsoRefused",
    "CancelRequest",
    "Checkpoint",
    "Claim",
    "ClaimOutcome",
    "ConversationDeleted",
    "MessageRecord",
    "MessageStatus",
    "MessageStore",
    "TooManyWaiting",
]


class AlsoRefused(Exception):
    """The extra write of :meth:`MessageStore.create` (``also``) was refused by its condition; nothing was written."""


#: Where the conversation's check sits in the transaction that finishes a message with its turn.
_FINISH_CONVERSATION = 2


class ConversationDeleted(Exception):
    """The conversation of the message being recorded was deleted (or expired) after the route read it."""


class MessageStore:
    def __init__(self, table: Any, *, retention: Retention = NO_RETENTION) -> None:
        self._table = table
        # The resource's client takes plain Python values (boto3 serializes them), in transactions too.
        self._client = table.meta.client
        self._retention = retention
        #: The user's messages waiting in the queue (joined and left in this store's transactions).
        self.waiting = WaitingMessages(table)
        self._usage = MessageUsage(table, waiting=self.waiting, conversation_check=self._conversation_check)
        #: A message record is kept for deduplication and cancel, and never longer than the stage keeps data.
        self._ttl_seconds = min(MESSAGE_TTL_SECONDS, retention.seconds or MESSAGE_TTL_SECONDS)

    # --- the API side -------------------------------------------------------------------------------------------

    def create(
        self,
        user_id: str,
        message_id: str,
        conversation_id: str,
        *,
        now: float,
        max_waiting: int | None = None,
        also: Mapping[str, Any] | None = None,
        conversation_update: Mapping[str, Any] | None = None,
    ) -> tuple[MessageRecord, bool]:
        """Record a new message; returns ``(record, created)``. A client re-sending the same id gets the original.

        With ``max_waiting``, the message is also added to the user's set of waiting (queued) messages, in the same
        transaction, and refused with :class:`TooManyWaiting` when that many are already waiting: one user cannot
        fill the queue faster than their replies are answered.

        ``also``: one more ``UpdateItem`` request (without ``TableName``) written in the same transaction, or not at
        all (``sendMessage`` takes its rate-limit token so); :class:`AlsoRefused` when its condition failed. A
        repeated id writes nothing, so it takes no token either.

        ``conversation_update``: the conversation's ``UpdateItem`` (``ConversationStore.first_message_update``),
        written in the same transaction; :class:`ConversationDeleted` when its condition (the conversation still
        exists) failed, and nothing was written.
        """
        item = {
            **key(user_id, message_sk(message_id)),
            "userId": user_id,
            "messageId": message_id,
            "conversationId": conversation_id,
            "status": MessageStatus.QUEUED.value,
            "createdAt": iso_utc(now),
            TTL: int(now) + self._ttl_seconds,
        }
        put = {"TableName": self._table.name, "Item": item, "ConditionExpression": "attribute_not_exists(#pk)"}
        put["ExpressionAttributeNames"] = {"#pk": PK}
        for attempt in range(2):
            items: list[dict[str, Any]] = [{"Put": put}]
            if conversation_update is not None:
                items.append({"Update": {"TableName": self._table.name, **conversation_update}})
            waiting_index = len(items)
            if max_waiting is not None:
                items.append({"Update": self.waiting.join_update(user_id, message_id, max_waiting=max_waiting)})
            if also is not None:
                items.append({"Update": {"TableName": self._table.name, **also}})
            try:
                self._client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                reasons = cancellation_reasons(exc)
                if item_condition_failed(reasons, 0):
                    existing = self.get(user_id, message_id)
                    if existing is None:  # expired between the two calls: practically impossible, but never guess
                        raise
                    return existing, False
                if conversation_update is not None and item_condition_failed(reasons, 1):
                    raise ConversationDeleted from None
                if also is not None and item_condition_failed(reasons, len(items) - 1):
                    raise AlsoRefused from None
                if max_waiting is not None and item_condition_failed(reasons, waiting_index):
                    # Full; entries whose message left `queued` without saying so (expired) are pruned once.
                    if attempt == 0 and self.waiting.prune(
                        user_id, still_waiting=lambda waiting_id: self._is_queued(user_id, waiting_id)
                    ):
                        continue
                    raise TooManyWaiting(max_waiting or 0) from None
                raise
            return MessageRecord.from_item(item), True
        raise TooManyWaiting(max_waiting or 0)

    def _is_queued(self, user_id: str, message_id: str) -> bool:
        record = self.get(user_id, message_id)
        return record is not None and record.status is MessageStatus.QUEUED

    def get(self, user_id: str, message_id: str) -> MessageRecord | None:
        item = self._table.get_item(Key=key(user_id, message_sk(message_id)), ConsistentRead=True).get("Item")
        return MessageRecord.from_item(item) if item else None

    def unfinished(self, user_id: str, conversation_id: str | None = None) -> list[MessageRecord]:
        """The user's messages still ``queued`` or ``streaming`` (in ``conversation_id`` only, if given): what a
        deletion stops. Message records live for days at most (their TTL), so this reads a bounded set."""
        live = Attr("status").is_in([MessageStatus.QUEUED.value, MessageStatus.STREAMING.value])
        if conversation_id is not None:
            live &= Attr("conversationId").eq(conversation_id)
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(PK).eq(user_pk(user_id)) & Key(SK).begins_with(MESSAGE_PREFIX),
            "FilterExpression": live,
            "ConsistentRead": True,
        }
        found: list[MessageRecord] = []
        while True:
            page = self._table.query(**query)
            found.extend(MessageRecord.from_item(item) for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def discard(self, user_id: str, message_id: str) -> None:
        """Remove the record of a message whose conversation was deleted (its worker is the last to touch it)."""
        self._table.delete_item(Key=key(user_id, message_sk(message_id)))
        self.waiting.forget(user_id, message_id)

    def request_cancel(self, user_id: str, message_id: str) -> CancelRequest | None:
        """Cancel a queued message at once, or flag a streaming one for its worker. ``None``: no such message.

        Each write is conditional on the stop not being on record yet, so exactly one request per message
        :attr:`~CancelRequest.first` records it however many ``cancel`` frames race: what calls the provider's own
        cancel (with the operator's key and rate limit) runs once per message, not once per frame.
        """
        cancelled = self._set_if_status(
            user_id, message_id, "SET #status = :value", expected=MessageStatus.QUEUED, value=MessageStatus.CANCELLED
        )
        if cancelled:
            self.waiting.forget(user_id, message_id)
        flagged = cancelled or self._set_if_status(
            user_id,
            message_id,
            "SET cancelRequested = :value",
            expected=MessageStatus.STREAMING,
            value=True,
            unless_flagged=True,
        )
        if flagged is not None:
            return CancelRequest(record=flagged, first=True)
        # Neither: unknown, already finished, or already asked to stop; the caller tells them apart by the record.
        found = self.get(user_id, message_id)
        return None if found is None else CancelRequest(record=found, first=False)

    def _set_if_status(
        self,
        user_id: str,
        message_id: str,
        expression: str,
        *,
        expected: MessageStatus,
        value: Any,
        unless_flagged: bool = False,
    ) -> MessageRecord | None:
        """Apply ``expression`` (with ``:value``) if the message is ``expected`` (and, with ``unless_flagged``, not
        yet asked to stop); the new record, or ``None``."""
        condition = "#status = :expected"
        values: dict[str, Any] = {":value": value, ":expected": expected.value}
        if unless_flagged:
            condition += " AND (attribute_not_exists(cancelRequested) OR cancelRequested = :false)"
            values[":false"] = False
        try:
            attributes = self._table.update_item(
                Key=key(user_id, message_sk(message_id)),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise
        return MessageRecord.from_item(attributes)

    # --- the worker side ----------------------------------------------------------------------------------------

    def claim(self, record: MessageRecord, *, now: float, quotas: Quotas) -> Claim:
        """See :meth:`MessageUsage.claim <assistant.stores.message_usage.MessageUsage.claim>`."""
        return self._usage.claim(record, now=now, quotas=quotas)

    def start_round(self, record: MessageRecord, *, response_id: str, round_start: int, last_seq: int) -> bool:
        """Remember the model response now streaming, and that frames up to ``last_seq`` (all text before
        ``round_start``) were posted. ``False``: the user asked to cancel."""
        return self._update_streaming(
            record,
            "SET responseId = :response_id, roundStart = :round_start, seq = :seq, "
            "frameStart = :round_start, frameEnd = :round_start",
            {":response_id": response_id, ":round_start": round_start, ":seq": last_seq},
        )

    def checkpoint_frame(self, record: MessageRecord, *, seq: int, frame_start: int, frame_end: int) -> bool:
        """Record the place of the frame just posted (at most once every ``CHECKPOINT_INTERVAL_S``: see
        :mod:`assistant.reply_progress`). ``False``: the user asked to cancel, so stop the reply."""
        return self._update_streaming(
            record,
            "SET seq = :seq, frameStart = :frame_start, frameEnd = :frame_end",
            {":seq": seq, ":frame_start": frame_start, ":frame_end": frame_end},
        )

    def count_usage(
        self, record: MessageRecord, *, response_id: str, input_tokens: int, output_tokens: int, now: float
    ) -> bool:
        """See :meth:`MessageUsage.count_tokens <assistant.stores.message_usage.MessageUsage.count_tokens>`."""
        return self._usage.count_tokens(
            record, response_id=response_id, input_tokens=input_tokens, output_tokens=output_tokens, now=now
        )

    def finish(
        self,
        record: MessageRecord,
        *,
        status: MessageStatus,
        now: float,
        error_code: str | None = None,
        turn: Turn,
        expected: MessageStatus = MessageStatus.STREAMING,
    ) -> bool:
        """Move a message to a final status (its tokens were counted as each response ended: :meth:`count_usage`).

        The conversation ``turn`` is written in the same transaction: it exists exactly when the message
        reached its final status through this call, so a redelivery never writes a second one. The transaction also
        checks that the conversation still exists: in one deleted meanwhile, no turn is written and the message's
        record is removed instead (its tokens were counted already), so nothing of it outlives the deletion.

        ``False`` when the message was no longer ``expected`` (another delivery or a cancel got there first).
        """
        updates = ["#status = :final", "finishedAt = :now"]
        values: dict[str, Any] = {":final": status.value, ":now": iso_utc(now), ":expected": expected.value}
        if error_code:
            updates.append("errorCode = :error_code")
            values[":error_code"] = error_code
        update: dict[str, Any] = {
            "Key": key(record.user_id, message_sk(record.message_id)),
            "UpdateExpression": "SET " + ", ".join(updates),
            "ConditionExpression": "#status = :expected",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }
        turn_item = turn.to_item(record.user_id)
        expires_at = self._retention.expires_at(now)
        if expires_at is not None:
            turn_item[TTL] = expires_at
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {"Update": {"TableName": self._table.name, **update}},
                    {"Put": {"TableName": self._table.name, "Item": turn_item}},
                    self._conversation_check(record),
                ]
            )
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if item_condition_failed(reasons, 0):
                return False
            if item_condition_failed(reasons, _FINISH_CONVERSATION):
                self.discard(record.user_id, record.message_id)
                return True
            raise
        return True

    def _conversation_check(self, record: MessageRecord) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self._table.name,
                "Key": key(record.user_id, conversation_sk(record.conversation_id)),
                "ConditionExpression": "attribute_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": PK},
            }
        }

    def finish_if_stuck(self, record: MessageRecord, *, now: float, stale_after_s: float) -> bool:
        """Cancel a message left ``streaming`` by a worker that died (no progress for ``stale_after_s``, longer
        than a worker may run). ``False`` if it is still making progress or already finished."""
        cutoff = iso_utc(now - stale_after_s)
        try:
            self._table.update_item(
                Key=key(record.user_id, message_sk(record.message_id)),
                UpdateExpression="SET #status = :cancelled, finishedAt = :now",
                # ISO-8601 UTC strings sort as the times they name.
                ConditionExpression="#status = :streaming AND (progressAt < :cutoff "
                "OR (attribute_not_exists(progressAt) AND claimedAt < :cutoff))",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":cancelled": MessageStatus.CANCELLED.value,
                    ":streaming": MessageStatus.STREAMING.value,
                    ":cutoff": cutoff,
                    ":now": iso_utc(now),
                },
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def _update_streaming(self, record: MessageRecord, expression: str, values: dict[str, Any]) -> bool:
        # Every write of a streaming reply also says it is alive: a cancel can tell a dead worker's message apart.
        expression += ", progressAt = :progress_at"
        values = {**values, ":progress_at": iso_utc(time.time())}
        try:
            self._table.update_item(
                Key=key(record.user_id, message_sk(record.message_id)),
                UpdateExpression=expression,
                ConditionExpression="#status = :streaming AND (attribute_not_exists(cancelRequested) "
                "OR cancelRequested = :false)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={**values, ":streaming": "streaming", ":false": False},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True
