"""One record per user message: the state machine that makes replies exactly-once and cancellable.

SQS delivers at least once, and a worker can die mid-reply. The record tells every delivery what already happened:

``queued`` --claim (+1 message on today's usage, in one transaction)--> ``streaming`` --> ``done``
                                                                                   \\-> ``cancelled`` / ``failed``

The worker does not read the record before claiming it: the claim is conditional on the record being exactly what
the queued message says it is (``queued``, its conversation, its creation time), and a claim that fails returns the
record it found (``ReturnValuesOnConditionCheckFailure``), which tells a duplicate or a resumed delivery what to do.

While streaming, the worker checkpoints each frame *before* posting it (sequence number, the frame's character
span and the model response it came from). The checkpoint write is conditional on nobody having asked to cancel,
so the same write doubles as the cancel check. A redelivered message that finds ``streaming`` resumes from the
checkpoint instead of asking the model again, so the conversation never gets a second turn.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from assistant.errors import RateLimited
from assistant.stores.conditions import cancellation_reasons, condition_failed, item_condition_failed
from assistant.stores.keys import MESSAGE_PREFIX, PK, SK, TTL, WAITING_SK, conversation_sk, key, message_sk, user_pk
from assistant.stores.retention import NO_RETENTION, Retention
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import Turn
from assistant.stores.usage import Quotas, UsageStore
from assistant.wiring import MESSAGE_TTL_SECONDS, USAGE_TTL_SECONDS


class MessageStatus(StrEnum):
    QUEUED = "queued"
    STREAMING = "streaming"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (MessageStatus.DONE, MessageStatus.CANCELLED, MessageStatus.FAILED)


@dataclass(frozen=True)
class Checkpoint:
    """Where a streaming reply stands. Character offsets count from the start of the whole reply."""

    #: The model response of the current round (a tool call starts a new round and a new response).
    response_id: str | None
    #: Offset at which the current round's text starts.
    round_start: int
    #: Sequence number of the last frame written (it may or may not have reached the client), -1 for none.
    seq: int
    frame_start: int
    frame_end: int


@dataclass(frozen=True)
class MessageRecord:
    user_id: str
    message_id: str
    conversation_id: str
    status: MessageStatus
    cancel_requested: bool
    checkpoint: Checkpoint
    created_at: str

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> MessageRecord:
        return cls(
            user_id=str(item["userId"]),
            message_id=str(item["messageId"]),
            conversation_id=str(item["conversationId"]),
            status=MessageStatus(item["status"]),
            cancel_requested=bool(item.get("cancelRequested", False)),
            checkpoint=Checkpoint(
                response_id=item.get("responseId"),
                round_start=int(item.get("roundStart", 0)),
                seq=int(item.get("seq", -1)),
                frame_start=int(item.get("frameStart", 0)),
                frame_end=int(item.get("frameEnd", 0)),
            ),
            created_at=str(item["createdAt"]),
        )

    @classmethod
    def queued(cls, user_id: str, message_id: str, conversation_id: str, *, created_at: str) -> MessageRecord:
        """The record as a queued message says it was written, before anyone claimed it: what the worker claims
        without reading it first. The claim's condition checks every field that matters (:meth:`MessageStore.claim`),
        so a record that is not exactly this is never claimed by mistake."""
        return cls(
            user_id=user_id,
            message_id=message_id,
            conversation_id=conversation_id,
            status=MessageStatus.QUEUED,
            cancel_requested=False,
            checkpoint=Checkpoint(response_id=None, round_start=0, seq=-1, frame_start=0, frame_end=0),
            created_at=created_at,
        )


@dataclass(frozen=True)
class CancelRequest:
    """What a ``cancel`` found: the record after it, and whether this request is the one that recorded the stop."""

    record: MessageRecord
    #: This request cancelled the queued message or flagged the streaming one; ``False``: a repeat, or too late.
    first: bool


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    QUOTA_EXCEEDED = "quota_exceeded"
    #: The record is not the queued one the claim expected (another delivery got there first, it was cancelled
    #: while queued, or it differs from what the queued message said): :attr:`Claim.found` is what is there.
    CONFLICT = "conflict"
    #: The conversation was deleted while the message waited: nothing is answered (its tabs were told).
    CONVERSATION_GONE = "conversation_gone"


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    #: On :attr:`ClaimOutcome.CONFLICT`: the record as the claim found it; ``None`` when there is no such message.
    found: MessageRecord | None = None


class AlsoRefused(Exception):
    """The extra write of :meth:`MessageStore.create` (``also``) was refused by its condition; nothing was written."""


class TooManyWaiting(RateLimited):
    """Too many of the user's messages are waiting for an answer: refused at intake, nothing recorded."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} of your messages are still waiting for an answer; send the next one when a reply has started.",
            retry_after_ms=WAITING_RETRY_AFTER_MS,
        )


#: A waiting message is usually claimed within seconds (one reply of the user at a time).
WAITING_RETRY_AFTER_MS = 5_000


_deserializer = TypeDeserializer()

#: Where each item sits in the claim's transaction (cancellation reasons come back in this order).
_CLAIM_MESSAGE, _CLAIM_USAGE, _CLAIM_CONVERSATION = 0, 1, 3
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
                items.append({"Update": self._waiting_update(user_id, {message_id}, "ADD", max_waiting=max_waiting)})
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
                    if attempt == 0 and self._prune_waiting(user_id):
                        continue
                    raise TooManyWaiting(max_waiting or 0) from None
                raise
            return MessageRecord.from_item(item), True
        raise TooManyWaiting(max_waiting or 0)

    def forget_waiting(self, user_id: str, message_id: str) -> None:
        """The message left ``queued`` outside a claim (cancelled, refused over quota)."""
        self._client.update_item(**self._waiting_update(user_id, {message_id}, "DELETE"))

    def _waiting_update(
        self, user_id: str, message_ids: set[str], action: str, *, max_waiting: int | None = None
    ) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self._table.name,
            "Key": key(user_id, WAITING_SK),
            "UpdateExpression": f"{action} waiting :ids",
            "ExpressionAttributeValues": {":ids": message_ids},
        }
        if max_waiting is not None:
            update["ConditionExpression"] = "attribute_not_exists(waiting) OR size(waiting) < :max"
            update["ExpressionAttributeValues"][":max"] = max_waiting
        return update

    def _prune_waiting(self, user_id: str) -> bool:
        item = self._table.get_item(Key=key(user_id, WAITING_SK), ConsistentRead=True).get("Item") or {}
        stale = set()
        for message_id in item.get("waiting", set()):
            record = self.get(user_id, str(message_id))
            if record is None or record.status is not MessageStatus.QUEUED:
                stale.add(str(message_id))
        if stale:
            self._client.update_item(**self._waiting_update(user_id, stale, "DELETE"))
        return bool(stale)

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
        self.forget_waiting(user_id, message_id)

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
            self.forget_waiting(user_id, message_id)
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
        """``queued`` -> ``streaming`` and count the message on today's usage, atomically.

        Doing both in one transaction means a redelivery can never count a message twice, and a message over quota
        is never claimed. ``record`` is the queued record as the caller expects it (usually
        :meth:`MessageRecord.queued`, built from the queue message, not read): the claim succeeds only if the stored
        record is queued with that conversation and creation time, so the caller's copy is then exact. Otherwise
        the claim fails with the stored record in :attr:`Claim.found` (``ReturnValuesOnConditionCheckFailure``), so
        no read is needed before the claim, nor after a failed one.

        The conversation is not read, only checked (a ``ConditionCheck`` in the same transaction): a message whose
        conversation was deleted while it waited is never answered (:attr:`ClaimOutcome.CONVERSATION_GONE`).
        """
        usage_key = UsageStore.day_key(record.user_id, now=now)
        claim_message = {
            "Update": {
                "TableName": self._table.name,
                "Key": key(record.user_id, message_sk(record.message_id)),
                "UpdateExpression": "SET #status = :streaming, claimedAt = :now",
                "ConditionExpression": "#status = :queued AND conversationId = :conversation AND createdAt = :created",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":streaming": "streaming",
                    ":queued": "queued",
                    ":conversation": record.conversation_id,
                    ":created": record.created_at,
                    ":now": iso_utc(now),
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        count_message = {
            "Update": {
                "TableName": self._table.name,
                "Key": usage_key,
                "UpdateExpression": "ADD messages :one SET #ttl = if_not_exists(#ttl, :ttl)",
                "ConditionExpression": "(attribute_not_exists(messages) OR messages < :max_messages) "
                "AND (attribute_not_exists(outputTokens) OR outputTokens < :max_tokens) "
                "AND (attribute_not_exists(inputTokens) OR inputTokens < :max_input)",
                "ExpressionAttributeNames": {"#ttl": TTL},
                "ExpressionAttributeValues": {
                    ":one": 1,
                    ":max_messages": quotas.messages,
                    ":max_tokens": quotas.output_tokens,
                    ":max_input": quotas.input_tokens,
                    ":ttl": int(now) + USAGE_TTL_SECONDS,
                },
            }
        }
        # No longer waiting (no condition: a message recorded without the set is fine too).
        stop_waiting = {"Update": self._waiting_update(record.user_id, {record.message_id}, "DELETE")}
        # In the order of the _CLAIM_* indexes, which is the order of the cancellation reasons.
        items = [claim_message, count_message, stop_waiting, self._conversation_check(record)]
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if reasons is None:
                raise
            gone = item_condition_failed(reasons, _CLAIM_CONVERSATION)
            if item_condition_failed(reasons, _CLAIM_MESSAGE):
                item = exc.response["CancellationReasons"][_CLAIM_MESSAGE].get("Item")
                found = {name: _deserializer.deserialize(value) for name, value in item.items()} if item else None
                if found is None and gone:
                    return Claim(ClaimOutcome.CONVERSATION_GONE)
                # The record the caller expected is not there: what is there (in its own conversation) decides.
                return Claim(ClaimOutcome.CONFLICT, MessageRecord.from_item(found) if found else None)
            if gone:
                return Claim(ClaimOutcome.CONVERSATION_GONE)
            if item_condition_failed(reasons, _CLAIM_USAGE):
                return Claim(ClaimOutcome.QUOTA_EXCEEDED)
            raise  # e.g. a transaction conflict with a concurrent write: SQS delivers the message again
        return Claim(ClaimOutcome.CLAIMED)

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
        """Record the place of the frame just posted (at most about once a second: see ``assistant.reply``).
        ``False``: the user asked to cancel, so stop the reply."""
        return self._update_streaming(
            record,
            "SET seq = :seq, frameStart = :frame_start, frameEnd = :frame_end",
            {":seq": seq, ":frame_start": frame_start, ":frame_end": frame_end},
        )

    def count_usage(
        self, record: MessageRecord, *, response_id: str, input_tokens: int, output_tokens: int, now: float
    ) -> bool:
        """Add one model response's tokens to today's usage, once: ``False`` if this response was counted already.

        Every response of a reply is counted when it ends, however it ends (done, stopped, failed, cut off), so a
        quota cannot be walked past by replies that never finish. The message remembers which responses it counted,
        in the same transaction, so a redelivery that resumes a response never counts it twice.
        """
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": key(record.user_id, message_sk(record.message_id)),
                            "UpdateExpression": "ADD countedResponses :ids, inputTokens :input, outputTokens :output",
                            "ConditionExpression": "attribute_exists(#pk) AND NOT contains(countedResponses, :id)",
                            "ExpressionAttributeNames": {"#pk": PK},
                            "ExpressionAttributeValues": {
                                ":ids": {response_id},
                                ":id": response_id,
                                ":input": input_tokens,
                                ":output": output_tokens,
                            },
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": UsageStore.day_key(record.user_id, now=now),
                            "UpdateExpression": "ADD inputTokens :input, outputTokens :output "
                            "SET #ttl = if_not_exists(#ttl, :ttl)",
                            "ExpressionAttributeNames": {"#ttl": TTL},
                            "ExpressionAttributeValues": {
                                ":input": input_tokens,
                                ":output": output_tokens,
                                ":ttl": int(now) + USAGE_TTL_SECONDS,
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if cancellation_reasons(exc) is not None:
                return False
            raise
        return True

    def finish(
        self,
        record: MessageRecord,
        *,
        status: MessageStatus,
        now: float,
        error_code: str | None = None,
        expected: MessageStatus = MessageStatus.STREAMING,
        turn: Turn | None = None,
    ) -> bool:
        """Move a message to a final status (its tokens were counted as each response ended: :meth:`count_usage`).

        With ``turn``, the conversation turn is written in the same transaction: it exists exactly when the message
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
        if turn is None:
            try:
                self._table.update_item(**update)
            except ClientError as exc:
                if condition_failed(exc):
                    return False
                raise
            return True
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
