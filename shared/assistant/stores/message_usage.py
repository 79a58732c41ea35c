"""What a message's life adds to the user's usage of today, each in one transaction with the message's record: the
claim (``queued`` -> ``streaming`` and one message more, refused over quota) and each model response's tokens
(counted once per response, however the reply ends). The store of the records is
:class:`~assistant.stores.messages.MessageStore`, whose ``claim`` and ``count_usage`` these are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from assistant.stores.conditions import cancellation_reasons, item_condition_failed
from assistant.stores.keys import PK, TTL, key, message_sk
from assistant.stores.message_records import Claim, ClaimOutcome, MessageRecord
from assistant.stores.timestamps import iso_utc
from assistant.stores.usage import Quotas, UsageStore
from assistant.stores.waiting import WaitingMessages
from assistant.wiring import USAGE_TTL_SECONDS

__all__ = ["MessageUsage"]

_deserializer = TypeDeserializer()

#: Where each item sits in the claim's transaction (cancellation reasons come back in this order).
_CLAIM_MESSAGE, _CLAIM_USAGE, _CLAIM_CONVERSATION = 0, 1, 3


class MessageUsage:
    """``table`` is a boto3 DynamoDB ``Table`` resource; ``conversation_check`` the ``ConditionCheck`` that the
    record's conversation still exists (the message store's)."""

    def __init__(
        self,
        table: Any,
        *,
        waiting: WaitingMessages,
        conversation_check: Callable[[MessageRecord], dict[str, Any]],
    ) -> None:
        self._table = table
        self._client = table.meta.client
        self._waiting = waiting
        self._conversation_check = conversation_check

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
        stop_waiting = {"Update": self._waiting.leave_update(record.user_id, record.message_id)}
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

    def count_tokens(
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
