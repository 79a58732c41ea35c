"""The message that travels from ``sendMessage`` to the worker through the SQS FIFO queue."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assistant.attachments import Attachment


class QueuedMessage(BaseModel):
    """Body of one SQS message. Its group is the user (replies in order per user); its dedup id the message id."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    user_id: str = Field(alias="userId")
    message_id: str = Field(alias="messageId")
    conversation_id: str = Field(alias="conversationId")
    text: str
    #: The connection that sent it, for logs only: the reply goes to every connection of the user.
    connection_id: str = Field(alias="connectionId")
    received_at: float = Field(alias="receivedAt")
    #: Checked at intake (``assistant.attachments.UploadService.check``); the worker moves and reads them.
    attachments: tuple[Attachment, ...] = ()

    def to_body(self) -> str:
        return self.model_dump_json(by_alias=True)


class EraseRequest(BaseModel):
    """Body of an SQS message asking the worker to erase the turns and message records of the user's deleted
    conversations (``assistant.stores.erasure``). Its own message group per user, so it never waits behind the
    user's replies; a fresh dedup id each time, so a deletion right after an erasure started is never dropped."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    kind: Literal["erase"] = "erase"
    user_id: str = Field(alias="userId")
    requested_at: float = Field(alias="requestedAt")

    def to_body(self) -> str:
        return self.model_dump_json(by_alias=True)


#: Seconds before a failed record is tried again, by attempt: quick at first (the model client has already retried
#: within the attempt), never longer than a minute. Without this a failed record would wait out the whole visibility
#: timeout, which is 6x the worker's timeout (30 minutes), before the user's reply is tried again.
def retry_delay_seconds(attempt: int) -> int:
    return int(min(2**attempt, 60))


class MessageQueue:
    """The one door to the SQS FIFO queue: ``sendMessage`` enqueues, the worker brings a failed record back soon.

    ``sqs_client`` is a boto3 SQS client (boto3 ships no types, hence ``Any``)."""

    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self._queue_url = queue_url

    def enqueue(self, message: QueuedMessage) -> None:
        """One message group per user (replies in order per user), deduplicated by message id (per group)."""
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=message.to_body(),
            MessageGroupId=message.user_id,
            MessageDeduplicationId=message.message_id,
        )

    def request_erasure(self, user_id: str, *, now: float) -> None:
        """Ask the worker to erase what the user's deleted conversations left (see :class:`EraseRequest`)."""
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=EraseRequest(user_id=user_id, requested_at=now).to_body(),
            MessageGroupId=f"erase-{user_id}",
            MessageDeduplicationId=uuid.uuid4().hex,
        )

    def retry_soon(self, receipt_handle: str, *, attempt: int) -> None:
        """Make a failed record visible again after :func:`retry_delay_seconds` instead of the visibility timeout."""
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=retry_delay_seconds(attempt)
        )
