"""The small routes: cancel, newConversation, listConversations, getHistory, getUsage, ping, and managing
conversations (renameConversation, deleteConversation, deleteAllData). Each answers the sender; the last three also
tell the user's other tabs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aws_lambda_powertools import Logger

from assistant.action_table import ACTION_NAMES, ACTION_TABLE, ClientFrame, frames_of
from assistant.client_frames import ClientFrameModel
from assistant.command_frames import (
    AttachmentInfo,
    Cancel,
    ConversationDeleted,
    ConversationFrame,
    Conversations,
    ConversationSummary,
    ConversationUpdated,
    DailyUsageFrame,
    DataDeleted,
    DeleteAllData,
    DeleteConversation,
    GetHistory,
    GetUsage,
    History,
    HistoryMessage,
    HistoryTool,
    ListConversations,
    NewConversation,
    Ping,
    Pong,
    RenameConversation,
)
from assistant.environment import COMMANDS_FN, Env
from assistant.errors import NotFound, QuotaExceeded
from assistant.model import ModelClient
from assistant.push import Broadcaster
from assistant.queue import MessageQueue
from assistant.reply_frames import Cancelled, Usage
from assistant.server_frames import ServerFrameModel
from assistant.stores.conversations import ConversationStore
from assistant.stores.messages import MessageStatus, MessageStore
from assistant.stores.rate_limits import RateLimit, RateLimiter
from assistant.stores.timestamps import next_utc_midnight
from assistant.stores.turns import Turn, TurnStore
from assistant.stores.usage import Quotas, UsageStore
from assistant.wiring import MAX_MESSAGE_BYTES, WORKER

#: A streaming message without progress for longer than a worker may run has lost its worker.
STUCK_AFTER_S = WORKER.timeout_seconds + 60
#: Route responses travel as one WebSocket message; leave room under API Gateway's 128 KB for the envelope.
HISTORY_BUDGET_BYTES = MAX_MESSAGE_BYTES - 8 * 1024

logger = Logger(child=True)


@dataclass(frozen=True)
class CommandLimits:
    quotas: Quotas
    #: Token buckets per action (every command has one; cancel's and ping's are generous).
    rate_limits: Mapping[str, RateLimit]
    #: Conversations one user may keep; `newConversation` beyond it is refused (`quota_exceeded`).
    max_conversations: int


def command_rate_limits(limit_of: Callable[[Env], RateLimit]) -> dict[str, RateLimit]:
    """Each command's per-user bucket, by action (the bucket's key), from the setting the table of actions names
    for it: ``limit_of`` reads a setting's value (the function's settings)."""
    return {ACTION_NAMES[frame]: limit_of(ACTION_TABLE[frame].rate_limit) for frame in frames_of(COMMANDS_FN)}


class CommandService:
    def __init__(
        self,
        *,
        conversations: ConversationStore,
        turns: TurnStore,
        messages: MessageStore,
        usage: UsageStore,
        rate_limiter: RateLimiter,
        limits: CommandLimits,
        model: Callable[[], ModelClient] | None,
        broadcaster: Callable[[], Broadcaster] | None = None,
        queue: MessageQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``model`` is ``None`` on a stage whose responses never outlive their stream (no background mode: a
        stateless server, Bedrock): there is no running response to cancel from here, and building the client
        would read the key and import the SDK for nothing.

        ``broadcaster`` tells the user's other tabs of a rename or a deletion (built when first needed);
        ``queue`` carries the erasure of deleted conversations' turns and messages to the worker."""
        self._conversations = conversations
        self._turns = turns
        self._messages = messages
        self._usage = usage
        self._rate_limiter = rate_limiter
        self._limits = limits
        self._model = model
        self._broadcaster = broadcaster
        self._queue = queue
        self._clock = clock
        #: The connection the frame being handled came from (answered by the route response, not a post).
        self._connection_id: str | None = None

    def handle(self, user_id: str, frame: ClientFrame, *, connection_id: str | None = None) -> ServerFrameModel | None:
        command = COMMAND_HANDLERS.get(type(frame))
        if command is None:
            raise TypeError(f"{type(frame).__name__} is not a command")  # sendMessage has its own function
        limit = self._limits.rate_limits.get(frame.action)
        if limit is not None:
            # Before any work: a refused frame changes nothing.
            self._rate_limiter.take(user_id, frame.action, limit)
        self._connection_id = connection_id
        return command(self, user_id, frame)

    def _rename(self, user_id: str, frame: RenameConversation) -> ServerFrameModel:
        renamed = self._conversations.rename(user_id, frame.conversation_id, frame.title, now=self._clock())
        return self._tell_every_tab(
            user_id, ConversationUpdated(conversation_id=renamed.conversation_id, title=renamed.title)
        )

    def _delete(self, user_id: str, frame: DeleteConversation) -> ServerFrameModel:
        """The conversation's record goes at once (``not_found`` from now on, for every action); a reply streaming
        in it is stopped as Stop would stop it (its tokens counted); its turns and messages are erased by the
        worker (:mod:`assistant.stores.erasure`)."""
        now = self._clock()
        self._conversations.delete(user_id, frame.conversation_id, now=now)
        self._stop_replies(user_id, frame.conversation_id)
        self._request_erasure(user_id, now)
        return self._tell_every_tab(user_id, ConversationDeleted(conversation_id=frame.conversation_id))

    def _delete_all(self, user_id: str) -> ServerFrameModel:
        """Every conversation record of the user, and the current-conversation pointer, in batches; then as
        :meth:`_delete`. Today's usage counters and rate-limit buckets are kept: deleting must not reset a quota."""
        now = self._clock()
        deleted = self._conversations.delete_all(user_id)
        self._stop_replies(user_id, None)
        self._request_erasure(user_id, now)
        logger.info("All conversations of a user deleted", extra={"conversations": deleted})
        return self._tell_every_tab(user_id, DataDeleted())

    def _stop_replies(self, user_id: str, conversation_id: str | None) -> None:
        for record in self._messages.unfinished(user_id, conversation_id):
            request = self._messages.request_cancel(user_id, record.message_id)
            if request is None or not request.first or self._model is None:
                continue
            response_id = request.record.checkpoint.response_id
            if request.record.status is MessageStatus.STREAMING and response_id:
                try:
                    self._model().cancel_response(response_id)
                except Exception:
                    # The worker still stops at its next frame or round (the flag is on record); only a silent
                    # model's response runs on until then.
                    logger.exception("Could not cancel the running response of a deleted conversation")

    def _request_erasure(self, user_id: str, now: float) -> None:
        if self._queue is None:
            return
        try:
            self._queue.request_erasure(user_id, now=now)
        except Exception:
            # The deletion stands (the conversation is unreadable); its leftovers are erased by the user's next
            # erasure or by scripts.delete_user_data, since an erasure removes every orphan of the user.
            logger.exception("Could not enqueue the erasure of deleted conversations")

    def _tell_every_tab(self, user_id: str, frame: ServerFrameModel) -> ServerFrameModel:
        """Post ``frame`` to the user's other tabs and return it as the sender's answer."""
        if self._broadcaster is not None:
            try:
                self._broadcaster().send(user_id, frame, except_connection=self._connection_id)
            except Exception:
                # The change is made and the sender is answered; other tabs see it at their next list or history.
                logger.exception("Could not tell the user's other tabs", extra={"frame": type(frame).__name__})
        return frame

    def _new_conversation(self, user_id: str) -> ServerFrameModel:
        kept = self._conversations.count(user_id)
        if kept >= self._limits.max_conversations:
            # Every conversation is listed and kept with its turns: a bound on what one user can store.
            raise QuotaExceeded(
                f"You have {kept} conversations, the most one user can keep; continue one of them instead."
            )
        created = self._conversations.create(user_id, now=self._clock())
        return ConversationFrame(conversation_id=created.conversation_id)

    def _cancel(self, user_id: str, message_id: str) -> ServerFrameModel | None:
        request = self._messages.request_cancel(user_id, message_id)
        if request is None:
            raise NotFound("No such message.")
        record = request.record
        if record.status is MessageStatus.CANCELLED:
            # Cancelled before the worker got to it: nobody else will say so.
            return Cancelled(message_id=message_id)
        if record.status is not MessageStatus.STREAMING:
            return None  # already finished: nothing to stop
        if self._messages.finish_if_stuck(record, now=self._clock(), stale_after_s=STUCK_AFTER_S):
            # Its worker died past its timeout and no delivery is coming back to it soon: nobody else will say so.
            logger.warning("Cancelled a message its worker left streaming")
            return Cancelled(message_id=message_id)
        # The worker stops at its next frame or round and tells every tab. The model may be silent for long
        # (reasoning, a tool round), so the running response is also cancelled here where the provider allows it,
        # by the one request that recorded the stop: repeated `cancel` frames never reach the provider again.
        if request.first and record.checkpoint.response_id and self._model is not None:
            self._model().cancel_response(record.checkpoint.response_id)
        return None

    def _usage_today(self, user_id: str) -> DailyUsageFrame:
        now = self._clock()
        usage = self._usage.today(user_id, now=now)
        quotas = self._limits.quotas
        return DailyUsageFrame(
            day=usage.day,
            messages=usage.messages,
            message_quota=quotas.messages,
            input_tokens=usage.input_tokens,
            input_token_quota=quotas.input_tokens,
            output_tokens=usage.output_tokens,
            output_token_quota=quotas.output_tokens,
            resets_at=next_utc_midnight(now),
        )

    def _conversation_list(self, user_id: str, frame: ListConversations) -> Conversations:
        """A page of the user's conversations, most recently active first (the table only, no model call)."""
        found = self._conversations.list_recent(user_id, limit=frame.limit + 1, before=frame.before)
        page = found[: frame.limit]
        return Conversations(
            items=[
                ConversationSummary(conversation_id=c.conversation_id, title=c.title, updated_at=c.updated_at)
                for c in page
            ],
            cursor=page[-1].cursor if len(found) > frame.limit else None,
        )

    def _history(self, user_id: str, frame: GetHistory) -> History:
        """A page of the conversation's turns from the table (no model call), stopped and failed ones marked as
        such: the newest ``limit`` (before ``before``), fewer if they would not fit one WebSocket message."""
        conversation_id = frame.conversation_id
        # The record is read every time: a deleted conversation's turns stay until the worker erases them, and
        # must never be shown again.
        if self._conversations.get(user_id, conversation_id) is None:
            raise NotFound("No such conversation.")
        turns, more = self._turns.shown_page(
            user_id, conversation_id, limit=frame.limit, before=frame.before, budget_bytes=HISTORY_BUDGET_BYTES
        )

        def page_of(shown: list[Turn], *, older: bool) -> History:
            # A turn too large for a message on its own is skipped over: the cursor moves past it.
            boundary = shown[0] if shown else turns[-1] if turns else None
            return History(
                conversation_id=conversation_id,
                messages=[message for turn in shown for message in _shown(turn)],
                cursor=boundary.cursor if older and boundary is not None else None,
            )

        shown = turns
        history = page_of(shown, older=more)
        # Keep the newest turns that fit one WebSocket message; the cursor then points at the ones left out.
        while shown and len(history.to_json().encode()) > HISTORY_BUDGET_BYTES:
            shown = shown[max(1, len(shown) // 10) :]
            history = page_of(shown, older=True)
        return history


#: What runs one command: the service, the user and the frame (already that action's model).
CommandHandler = Callable[[CommandService, str, Any], ServerFrameModel | None]

#: What answers each command, keyed by its frame's type. The actions themselves, and which function answers them,
#: are ``assistant.action_table.ACTION_TABLE``'s.
COMMAND_HANDLERS: Final[Mapping[type[ClientFrameModel], CommandHandler]] = {
    Cancel: lambda service, user_id, frame: service._cancel(user_id, frame.message_id),
    NewConversation: lambda service, user_id, frame: service._new_conversation(user_id),
    ListConversations: lambda service, user_id, frame: service._conversation_list(user_id, frame),
    GetHistory: lambda service, user_id, frame: service._history(user_id, frame),
    Ping: lambda service, user_id, frame: Pong(),
    GetUsage: lambda service, user_id, frame: service._usage_today(user_id),
    RenameConversation: lambda service, user_id, frame: service._rename(user_id, frame),
    DeleteConversation: lambda service, user_id, frame: service._delete(user_id, frame),
    DeleteAllData: lambda service, user_id, frame: service._delete_all(user_id),
}


def _shown(turn: Turn) -> list[HistoryMessage]:
    """A turn as ``history`` shows it: the user's message, then the reply (a stopped reply's partial text, a failed
    reply's text if any) with its status, model, usage and tools."""
    attachments = [
        AttachmentInfo(upload_id=a.upload_id, file_name=a.file_name, content_type=a.content_type, size=a.size)
        for a in turn.attachments
    ]
    user = HistoryMessage(role="user", text=turn.user_text, message_id=turn.message_id, attachments=attachments or None)
    reply = HistoryMessage(
        role="assistant",
        text=turn.assistant_text,
        message_id=turn.message_id,
        status=turn.status.value,
        model=turn.model,
        usage=Usage(input_tokens=turn.input_tokens, output_tokens=turn.output_tokens),
        tools=[HistoryTool(name=tool.name, status=tool.status) for tool in turn.tools] or None,
    )
    return [user, reply]
