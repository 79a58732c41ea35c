"""The protocol: builds client frames and turns server frames into :data:`~scripts.chat.events.ChatEvent` s. No I/O."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scripts.chat.events import (
    AllDataDeleted,
    ChatEvent,
    ConversationItem,
    ConversationList,
    ConversationRemoved,
    ConversationRenamed,
    ConversationStarted,
    HistoryMessage,
    HistoryReceived,
    PongReceived,
    ProtocolProblem,
    ReplyAccepted,
    ReplyFinished,
    ReplyOutcome,
    ServerError,
    TextReceived,
    TextReset,
    ToolUpdate,
    UploadGranted,
    Usage,
)

# --- The protocol -----------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One assistant reply, assembled from its ``delta`` frames."""

    message_id: str
    own: bool
    conversation_id: str | None = None
    next_seq: int = 0
    early: dict[int, str] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    outcome: ReplyOutcome | None = None

    #: Frames that start beyond the text so far (an earlier one is still on its way), by offset.
    ahead: dict[int, str] = field(default_factory=dict)
    length: int = 0

    def place(self, offset: int, text: str) -> str:
        """Add a frame by where its text starts; return the text that is new. A frame the reply already covers
        (a resumed worker re-sends up to a second of text) adds only what goes beyond; one that starts past the
        end waits for the gap to fill."""
        if offset + len(text) <= self.length:
            return ""
        self.ahead[offset] = max(text, self.ahead.get(offset, ""), key=len)
        added: list[str] = []
        while (start := min((s for s in self.ahead if s <= self.length), default=None)) is not None:
            new = self.ahead.pop(start)[self.length - start :]
            added.append(new)
            self.length += len(new)
        return "".join(added)

    def reset(self, offset: int) -> None:
        """Forget the text from ``offset`` on, and every frame waiting beyond it: the server is generating that
        part again, with ``seq`` counting from 0."""
        kept = self.text[:offset]
        self.parts = [kept] if kept else []
        self.length = len(kept)
        self.ahead.clear()
        self.early.clear()
        self.next_seq = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def finished(self) -> bool:
        return self.outcome is not None


def new_message_id() -> str:
    """A client-chosen message id (the server dedupes a re-sent ``sendMessage`` by it)."""
    return f"m_{secrets.token_hex(12)}"


class ChatSession:
    """The client side of the protocol, without any I/O.

    Every frame of a reply goes to every open connection of the user, so replies this client did not ask for
    (another tab) are assembled and reported too, with ``own=False``.
    """

    def __init__(self, *, conversation_id: str | None = None) -> None:
        self.conversation_id = conversation_id
        self.replies: dict[str, Reply] = {}
        #: The message this client sent and whose reply has not finished.
        self.in_flight: str | None = None
        self._accepted: set[str] = set()
        #: sendMessage frames not yet accepted; re-sent after a reconnect (the server dedupes by messageId).
        self._unaccepted: dict[str, dict[str, Any]] = {}
        #: Uploads (``/attach``) that go with the next message.
        self.pending_attachments: list[str] = []

    def unaccepted_frames(self) -> list[dict[str, Any]]:
        return list(self._unaccepted.values())

    # Client -> server

    def send_message(self, text: str, *, message_id: str | None = None) -> tuple[str, dict[str, Any]]:
        message_id = message_id or new_message_id()
        self.replies[message_id] = Reply(message_id=message_id, own=True, conversation_id=self.conversation_id)
        self.in_flight = message_id
        frame: dict[str, Any] = {"action": "sendMessage", "message": text, "messageId": message_id}
        if self.conversation_id:
            frame["conversationId"] = self.conversation_id
        if self.pending_attachments:
            frame["attachments"] = list(self.pending_attachments)
            self.pending_attachments.clear()
        self._unaccepted[message_id] = frame
        return message_id, frame

    @staticmethod
    def request_upload_frame(file_name: str, content_type: str, size: int) -> dict[str, Any]:
        return {"action": "requestUpload", "fileName": file_name, "contentType": content_type, "size": size}

    def cancel_frame(self, message_id: str | None = None) -> dict[str, Any] | None:
        target = message_id or self.in_flight
        return None if target is None else {"action": "cancel", "messageId": target}

    @staticmethod
    def new_conversation_frame() -> dict[str, Any]:
        return {"action": "newConversation"}

    @staticmethod
    def list_conversations_frame() -> dict[str, Any]:
        return {"action": "listConversations"}

    def history_frame(self, conversation_id: str | None = None, *, before: str | None = None) -> dict[str, Any] | None:
        target = conversation_id or self.conversation_id
        if target is None:
            return None
        frame = {"action": "getHistory", "conversationId": target}
        if before is not None:
            frame["before"] = before
        return frame

    def rename_frame(self, title: str) -> dict[str, Any] | None:
        """Rename the current conversation; ``None`` when there is none yet."""
        if self.conversation_id is None:
            return None
        return {"action": "renameConversation", "conversationId": self.conversation_id, "title": title}

    def delete_frame(self) -> dict[str, Any] | None:
        """Delete the current conversation; ``None`` when there is none yet."""
        if self.conversation_id is None:
            return None
        return {"action": "deleteConversation", "conversationId": self.conversation_id}

    @staticmethod
    def ping_frame() -> dict[str, Any]:
        return {"action": "ping"}

    # Server -> client

    def handle_text(self, raw: str | bytes) -> list[ChatEvent]:
        try:
            frame = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return [ProtocolProblem(f"not JSON: {str(raw)[:80]!r}")]
        if not isinstance(frame, dict):
            return [ProtocolProblem(f"not a JSON object: {str(raw)[:80]!r}")]
        try:
            return self.handle(frame)
        except (KeyError, TypeError, ValueError) as exc:
            return [ProtocolProblem(f"malformed {frame.get('type')!r} frame: {exc!r}")]

    def handle(self, frame: Mapping[str, Any]) -> list[ChatEvent]:
        kind = frame.get("type")
        if kind == "accepted":
            return self._on_accepted(str(frame["messageId"]), str(frame["conversationId"]))
        if kind == "delta":
            offset = frame.get("offset")
            return self._on_delta(
                str(frame["messageId"]),
                _as_int(frame["seq"]),
                str(frame["text"]),
                None if offset is None else _as_int(offset),
            )
        if kind == "reset":
            reply = self._reply(str(frame["messageId"]))
            if reply.finished:
                return []
            offset = _as_int(frame.get("offset", 0))
            reply.reset(offset)
            return [TextReset(reply.message_id, offset, reply.own)]
        if kind == "tool":
            reply = self._reply(str(frame["messageId"]))
            return [ToolUpdate(reply.message_id, str(frame["name"]), str(frame["status"]), reply.own)]
        if kind == "done":
            usage = frame.get("usage") or {}
            return self._finish(
                str(frame["messageId"]),
                "done",
                conversation_id=frame.get("conversationId"),
                usage=Usage(_as_int(usage.get("inputTokens", 0)), _as_int(usage.get("outputTokens", 0))),
                model=frame.get("model"),
            )
        if kind == "cancelled":
            return self._finish(str(frame["messageId"]), "cancelled")
        if kind == "error":
            return self._on_error(frame.get("messageId"), str(frame["code"]), str(frame["message"]))
        if kind == "conversation":
            self.conversation_id = str(frame["conversationId"])
            return [ConversationStarted(self.conversation_id)]
        if kind == "conversations":
            items = tuple(
                ConversationItem(str(i["conversationId"]), str(i.get("title") or ""), str(i.get("updatedAt") or ""))
                for i in frame["items"]
            )
            return [ConversationList(items)]
        if kind == "history":
            messages = tuple(
                HistoryMessage(
                    str(m["role"]),
                    str(m["text"]),
                    m.get("messageId"),
                    m.get("status"),
                    tuple(str(a.get("fileName", "")) for a in m.get("attachments") or ()),
                )
                for m in frame["messages"]
            )
            cursor = frame.get("cursor")
            return [HistoryReceived(str(frame["conversationId"]), messages, str(cursor) if cursor else None)]
        if kind == "conversationUpdated":
            return [ConversationRenamed(str(frame["conversationId"]), str(frame["title"]))]
        if kind == "conversationDeleted":
            conversation_id = str(frame["conversationId"])
            if self.conversation_id == conversation_id:
                self.conversation_id = None  # the next message starts a new conversation
            return [ConversationRemoved(conversation_id)]
        if kind == "dataDeleted":
            self.conversation_id = None
            return [AllDataDeleted()]
        if kind == "pong":
            return [PongReceived()]
        if kind == "upload":
            fields = {str(k): str(v) for k, v in dict(frame["fields"]).items()}
            return [UploadGranted(str(frame["uploadId"]), str(frame["url"]), fields)]
        # A newer server may add frame types; an older client must keep working, and say what it skipped.
        return [ProtocolProblem(f"unknown frame type {kind!r}")]

    def _reply(self, message_id: str) -> Reply:
        reply = self.replies.get(message_id)
        if reply is None:
            reply = self.replies[message_id] = Reply(message_id=message_id, own=False)
        return reply

    def _on_accepted(self, message_id: str, conversation_id: str) -> list[ChatEvent]:
        reply = self._reply(message_id)
        reply.conversation_id = conversation_id
        self._unaccepted.pop(message_id, None)
        if reply.own:
            # The server may have started a conversation for us; the next message continues it.
            self.conversation_id = conversation_id
        if message_id in self._accepted:
            return []
        self._accepted.add(message_id)
        return [ReplyAccepted(message_id, conversation_id, reply.own)]

    def _on_delta(self, message_id: str, seq: int, text: str, offset: int | None = None) -> list[ChatEvent]:
        reply = self._reply(message_id)
        if reply.finished:
            return []  # a late frame after the reply ended changes nothing
        chunk = self._by_seq(reply, seq, text) if offset is None else reply.place(offset, text)
        if not chunk:
            return []
        reply.parts.append(chunk)
        return [TextReceived(message_id, chunk, reply.own)]

    @staticmethod
    def _by_seq(reply: Reply, seq: int, text: str) -> str:
        """For a server that sends no ``offset``: in ``seq`` order, a seq already had is ignored."""
        if seq < reply.next_seq or seq in reply.early:
            return ""
        reply.early[seq] = text
        ready: list[str] = []
        while reply.next_seq in reply.early:
            ready.append(reply.early.pop(reply.next_seq))
            reply.next_seq += 1
        return "".join(ready)

    def _on_error(self, message_id: Any, code: str, message: str) -> list[ChatEvent]:
        error = ServerError(None if message_id is None else str(message_id), code, message)
        if code == "token_expired":
            # The server closes the connection next; the client renews the token and reconnects, and a message it
            # refused is still unaccepted, so it is sent again on the new connection: nothing has failed.
            return [error]
        target = error.message_id
        if target is None and self.in_flight is not None and self.in_flight not in self._accepted:
            # A sendMessage refused before the server could read its id: the only request still waiting is ours.
            target = self.in_flight
        if target is None or (target not in self.replies and target != self.in_flight):
            return [error]
        return [error, *self._finish(target, "failed")]

    def _finish(
        self,
        message_id: str,
        outcome: ReplyOutcome,
        *,
        conversation_id: Any = None,
        usage: Usage | None = None,
        model: Any = None,
    ) -> list[ChatEvent]:
        reply = self._reply(message_id)
        if reply.finished:
            return []  # a re-sent `done`/`cancelled`
        reply.outcome = outcome
        self._unaccepted.pop(message_id, None)
        if conversation_id:
            reply.conversation_id = str(conversation_id)
            if reply.own:
                self.conversation_id = reply.conversation_id
        # Frames held back behind a gap that will never be filled: show them now, marked as incomplete.
        incomplete = bool(reply.early or reply.ahead)
        late = "".join(reply.early[seq] for seq in sorted(reply.early))
        late += "".join(reply.ahead[start] for start in sorted(reply.ahead))
        reply.early.clear()
        reply.ahead.clear()
        if late:
            reply.parts.append(late)
        if self.in_flight == message_id:
            self.in_flight = None
        return [
            ReplyFinished(
                message_id=message_id,
                outcome=outcome,
                text=reply.text,
                own=reply.own,
                conversation_id=reply.conversation_id,
                usage=usage,
                model=None if model is None else str(model),
                incomplete=incomplete,
                late_text=late,
            )
        ]


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)
