"""Conversation turns: the conversation state is ours, not the model provider's.

One item per finished reply (done, stopped or failed), under the user's partition with the sort key
``TURN#<conversationId>#<createdAt>#<messageId>`` (see :func:`assistant.stores.keys.turn_sk`): the user's message,
the text the assistant showed, the tools it ran, what it cost, the model and how it ended. The worker writes it in
the same transaction that moves the message record to its final status (:meth:`MessageStore.finish`), so a turn
is committed exactly once: a redelivery finds the message final and writes nothing.

What the model is sent for a new message is built from these items (:meth:`TurnStore.context`), and ``getHistory``
reads them (:meth:`TurnStore.page`), so any Responses server works, stateless ones included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal

from boto3.dynamodb.conditions import Key

from assistant.attachments import Attachment
from assistant.model_events import ToolExchange
from assistant.stores.keys import PK, SK, TTL, key, turn_prefix, turn_sk, user_pk
from assistant.stores.retention import expired
from assistant.token_estimates import CHARS_PER_TOKEN, attachment_tokens

#: Each text of a turn is cut to this many UTF-8 bytes, so an item (two texts plus small attributes) stays well
#: under DynamoDB's 400 KB. A user message is far smaller (``MAX_MESSAGE_CHARS``) and a reply is bounded by
#: ``max_output_tokens``; this only guards against the unexpected.
MAX_TEXT_BYTES: Final = 150_000
TRUNCATED_MARKER: Final = "\n\n[… truncated]"
#: Tool activity kept per turn for the user (names and outcomes).
MAX_TOOLS: Final = 50
#: The tool exchanges (calls with their outputs) kept per turn for the model, in UTF-8 bytes all told: with the two
#: texts that keeps an item under 400 KB. Outputs are cut to MAX_TOOL_OUTPUT_BYTES each; an exchange whose arguments
#: alone would not fit is left out whole (cut JSON arguments would be a different call), as are those after it.
MAX_EXCHANGE_BYTES: Final = 60_000
MAX_TOOL_OUTPUT_BYTES: Final = 8_000
#: Turns read per query page when building a context or a history.
_PAGE: Final = 25
#: The first query of a history page reads this many turns, before their sizes say how many more fit the budget.
_FIRST_SHOWN_PAGE: Final = 4
#: What ``getHistory`` shows of a turn: every attribute but ``toolCalls`` (up to 60 KB a turn, for the model only).
_SHOWN_ATTRIBUTES: Final = (
    "conversationId",
    "messageId",
    "createdAt",
    "userText",
    "assistantText",
    "status",
    "model",
    "inputTokens",
    "outputTokens",
    "tools",
    "attachments",
    "finishedAt",
    "errorCode",
    TTL,
)
#: A history message's JSON around its text (role, ids, status, model, usage): what a turn adds beyond its texts.
_SHOWN_OVERHEAD_BYTES: Final = 400


class TurnStatus(StrEnum):
    DONE = "done"
    #: Stopped by the user: the text is what they saw before the stop.
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class ToolUse:
    name: str
    status: Literal["done", "failed"]


@dataclass(frozen=True)
class Turn:
    conversation_id: str
    message_id: str
    #: The user message's arrival (ISO-8601 UTC); orders the turns.
    created_at: str
    user_text: str
    assistant_text: str
    status: TurnStatus
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    tools: tuple[ToolUse, ...] = field(default_factory=tuple)
    finished_at: str | None = None
    error_code: str | None = None
    #: The tool calls of the reply with their outputs, in order: sent to the model again with later messages.
    exchanges: tuple[ToolExchange, ...] = field(default_factory=tuple)
    #: The files sent with the user's message (their content is in the attachments bucket).
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)

    def to_item(self, user_id: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            **key(user_id, turn_sk(self.conversation_id, self.created_at, self.message_id)),
            "conversationId": self.conversation_id,
            "messageId": self.message_id,
            "createdAt": self.created_at,
            "userText": clip_text(self.user_text),
            "assistantText": clip_text(self.assistant_text),
            "status": self.status.value,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
        }
        if self.model:
            item["model"] = self.model
        if self.tools:
            item["tools"] = [{"name": t.name, "status": t.status} for t in self.tools[:MAX_TOOLS]]
        kept = _exchanges_that_fit(self.exchanges)
        if kept:
            item["toolCalls"] = [
                {"callId": e.call_id, "name": e.name, "arguments": e.arguments, "output": e.output} for e in kept
            ]
        if self.attachments:
            item["attachments"] = [a.to_item() for a in self.attachments]
        if self.finished_at:
            item["finishedAt"] = self.finished_at
        if self.error_code:
            item["errorCode"] = self.error_code
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Turn:
        tools = tuple(
            ToolUse(name=str(t.get("name", "")), status="failed" if t.get("status") == "failed" else "done")
            for t in item.get("tools", [])
        )
        return cls(
            conversation_id=str(item["conversationId"]),
            message_id=str(item["messageId"]),
            created_at=str(item["createdAt"]),
            user_text=str(item.get("userText", "")),
            assistant_text=str(item.get("assistantText", "")),
            status=TurnStatus(item.get("status", TurnStatus.DONE.value)),
            model=str(item["model"]) if item.get("model") else None,
            input_tokens=int(item.get("inputTokens", 0)),
            output_tokens=int(item.get("outputTokens", 0)),
            tools=tools,
            finished_at=str(item["finishedAt"]) if item.get("finishedAt") else None,
            error_code=str(item["errorCode"]) if item.get("errorCode") else None,
            exchanges=tuple(
                ToolExchange(
                    call_id=str(e["callId"]),
                    name=str(e["name"]),
                    arguments=str(e["arguments"]),
                    output=str(e["output"]),
                )
                for e in item.get("toolCalls", [])
            ),
            attachments=tuple(Attachment.model_validate(a) for a in item.get("attachments", [])),
        )

    @property
    def sent_to_model(self) -> bool:
        """A failed turn is history for the user, not context for the model (it would re-ask a broken turn)."""
        return self.status is not TurnStatus.FAILED

    @property
    def cursor(self) -> str:
        """Where this turn is in its conversation (``<createdAt>#<messageId>``): a history page's ``cursor``."""
        return f"{self.created_at}#{self.message_id}"

    def shown_bytes(self) -> int:
        """About the bytes this turn adds to a ``history`` frame (its two texts in UTF-8, and their envelopes)."""
        return len(self.user_text.encode()) + len(self.assistant_text.encode()) + _SHOWN_OVERHEAD_BYTES

    def context_chars(self) -> int:
        exchanged = sum(len(e.arguments) + len(e.output) for e in self.exchanges)
        # A file counts as its estimated tokens (assistant.token_estimates), in the budget's characters.
        files = sum(attachment_tokens(a.content_type) * CHARS_PER_TOKEN for a in self.attachments)
        return len(self.user_text) + len(self.assistant_text) + exchanged + files


def _exchanges_that_fit(exchanges: tuple[ToolExchange, ...]) -> list[ToolExchange]:
    """The first exchanges that fit :data:`MAX_EXCHANGE_BYTES`, outputs cut to :data:`MAX_TOOL_OUTPUT_BYTES`."""
    kept: list[ToolExchange] = []
    used = 0
    for exchange in exchanges:
        output = clip_text(exchange.output, MAX_TOOL_OUTPUT_BYTES)
        size = len(exchange.call_id) + len(exchange.name) + len(exchange.arguments.encode()) + len(output.encode())
        if used + size > MAX_EXCHANGE_BYTES:
            break
        used += size
        kept.append(ToolExchange(exchange.call_id, exchange.name, exchange.arguments, output))
    return kept


def _just_below(sort_key: str) -> str:
    """The greatest key that sorts before ``sort_key`` among turn keys (ASCII, ids and cursors under 100
    characters): ``between`` includes its bounds, and reading the cursor's own turn only to drop it would cost a
    whole turn's read units on every older page."""
    return sort_key[:-1] + chr(ord(sort_key[-1]) - 1) + "\x7f" * 100


def clip_text(text: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes (marker included), on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(TRUNCATED_MARKER.encode())
    return encoded[:room].decode(errors="ignore") + TRUNCATED_MARKER


class TurnStore:
    """``table`` is a boto3 DynamoDB ``Table`` resource. Writes happen in :meth:`MessageStore.finish`."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def newest_first(
        self,
        user_id: str,
        conversation_id: str,
        *,
        before: str | None = None,
        shown_only: bool = False,
        consistent: bool = True,
        page_size: Callable[[], int] = lambda: _PAGE,
    ) -> Iterator[Turn]:
        """The conversation's turns, newest first, read a page at a time as the caller iterates; with ``before``
        (a :meth:`Turn.cursor`), only the turns older than that one.

        ``shown_only`` leaves out what only the model is sent (``toolCalls``: the turns then have no
        ``exchanges``); ``page_size`` is asked before each query how many turns it should read, so a caller that
        stops early (a byte budget) does not read a page of turns it then drops."""
        prefix = turn_prefix(conversation_id)
        in_range = (
            Key(SK).begins_with(prefix) if before is None else Key(SK).between(prefix, _just_below(prefix + before))
        )
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(PK).eq(user_pk(user_id)) & in_range,
            "ScanIndexForward": False,
            "ConsistentRead": consistent,
        }
        if shown_only:
            names = {f"#a{i}": name for i, name in enumerate(_SHOWN_ATTRIBUTES)}
            query["ProjectionExpression"] = ", ".join(names)
            query["ExpressionAttributeNames"] = names
        while True:
            query["Limit"] = max(1, page_size())
            page = self._table.query(**query)
            now = time.time()
            for item in page.get("Items", []):
                if expired(item, now):
                    continue  # past the stage's retention, not yet swept by DynamoDB's TTL: never shown or sent
                turn = Turn.from_item(item)
                if turn.cursor != before:  # `between` includes its bound
                    yield turn
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return
            query["ExclusiveStartKey"] = last_key

    def shown_page(
        self, user_id: str, conversation_id: str, *, limit: int, budget_bytes: int, before: str | None = None
    ) -> tuple[list[Turn], bool]:
        """What ``getHistory`` shows, read for what it returns: the newest turns before ``before`` (or the newest)
        whose texts fit ``budget_bytes``, at most ``limit``, oldest first, and whether older turns exist.

        Three things keep the read near the answer (docs/scaling.md, "getHistory"): ``toolCalls`` is not read
        (a projection); the first query reads a few turns and each later one only as many as the sizes seen so
        far say still fit, so the read stops about one turn past the budget instead of at ``limit`` turns; and a
        page of older turns (``before``: finished turns the client has already been shown newer ones of, which
        never change) is read eventually consistent, at half the read units. The newest page is read strongly
        consistent, so a turn that has just finished is in it.

        A projection trims the bytes DynamoDB returns, not the read units it charges (those count whole items):
        a turn whose tool calls were large still costs its full size. The newest turn is returned even when it
        alone is over the budget (the caller skips past it with the cursor).
        """
        turns: list[Turn] = []
        used = 0

        def page_size() -> int:
            wanted = limit + 1 - len(turns)  # one more than the page: whether older turns exist
            if not turns:
                return min(wanted, _FIRST_SHOWN_PAGE)
            # As many as the sizes so far say still fit, and one more: the turn that shows where the page ends.
            fits = math.floor(max(budget_bytes - used, 0) / (used / len(turns)))
            return min(wanted, fits + 1)

        newest = self.newest_first(
            user_id, conversation_id, before=before, shown_only=True, consistent=before is None, page_size=page_size
        )
        for turn in newest:
            size = turn.shown_bytes()
            if len(turns) >= limit or (turns and used + size > budget_bytes):
                return list(reversed(turns)), True
            turns.append(turn)
            used += size
        return list(reversed(turns)), False

    def context(self, user_id: str, conversation_id: str, *, budget_chars: int) -> list[Turn]:
        """The newest turns worth sending to the model whose texts fit ``budget_chars`` together, oldest first.

        The oldest turns beyond the budget are dropped (the caller keeps its new message outside the budget).
        """
        kept: list[Turn] = []
        used = 0
        for turn in self.newest_first(user_id, conversation_id):
            if not turn.sent_to_model:
                continue
            used += turn.context_chars()
            if used > budget_chars:
                break
            kept.append(turn)
        kept.reverse()
        return kept

    def page(
        self, user_id: str, conversation_id: str, *, limit: int, before: str | None = None
    ) -> tuple[list[Turn], bool]:
        """What ``getHistory`` shows: the newest ``limit`` turns (every status) before ``before`` (or the newest),
        oldest first, and whether older turns exist."""
        turns: list[Turn] = []
        more = False
        for turn in self.newest_first(user_id, conversation_id, before=before):
            if len(turns) >= limit:
                more = True
                break
            turns.append(turn)
        turns.reverse()
        return turns, more
