"""A user message's record as the message store (:mod:`assistant.stores.messages`) reads it and what its writes
return: the status, the checkpoint of a streaming reply, the outcome of a claim or a cancel."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["CancelRequest", "Checkpoint", "Claim", "ClaimOutcome", "MessageRecord", "MessageStatus"]


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
