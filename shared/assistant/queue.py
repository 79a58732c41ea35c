"""The message that travels from ``sendMessage`` to the worker through the SQS FIFO queue."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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

    def to_body(self) -> str:
        return self.model_dump_json(by_alias=True)


def enqueue(sqs_client: Any, queue_url: str, message: QueuedMessage) -> None:
    """Send to the FIFO queue: one message group per user, deduplicated by message id (per group, high-throughput)."""
    sqs_client.send_message(
        QueueUrl=queue_url,
        MessageBody=message.to_body(),
        MessageGroupId=message.user_id,
        MessageDeduplicationId=message.message_id,
    )
