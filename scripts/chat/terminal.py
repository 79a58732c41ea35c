"""The terminal: prompt, slash commands, streamed output, Ctrl-C.

Its parts: :mod:`~scripts.chat.console` (reading lines, wrapping words), :mod:`~scripts.chat.limits` (what a
message may be) and :mod:`~scripts.chat.upload` (/attach's POST to S3); their names are importable from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from assistant.attachments import SNIFF_BYTES, sniff
from scripts.chat.client import ChatClient
from scripts.chat.console import LineReader, WordWrapper
from scripts.chat.events import (
    AllDataDeleted,
    ChatEvent,
    Connected,
    ConversationList,
    ConversationRemoved,
    ConversationRenamed,
    ConversationStarted,
    Disconnected,
    Fatal,
    HistoryMessage,
    HistoryReceived,
    ProtocolProblem,
    ReplyFinished,
    ServerError,
    TextReceived,
    TextReset,
    ToolUpdate,
    UploadGranted,
)
from scripts.chat.export import conversation_markdown
from scripts.chat.limits import message_refusal
from scripts.chat.signin import AuthenticationFailed
from scripts.chat.upload import post_upload

#: How long the first prompt waits for the connection to settle (then it comes anyway: /quit must always work).
FIRST_PROMPT_WAIT_S = 10.0

#: How ``/history`` marks a reply that did not finish (its ``status``), as the live reply was marked.
HISTORY_MARKS = {"cancelled": "stopped", "failed": "failed"}

HELP = """Commands:
  /new              start a new conversation
  /list             list your conversations
  /history [id]     show a conversation (default: the current one)
  /rename TITLE     rename the current conversation
  /delete           delete the current conversation (asks first)
  /export FILE      save the current conversation as Markdown
  /attach PATH      attach an image (PNG, JPEG, WebP, GIF) or a PDF to your next message
  /quit             leave (also Ctrl-D, or Ctrl-C at the prompt)
Ctrl-C while a reply streams stops it."""


class TerminalChat:
    """The prompt loop: reads lines, sends them, prints replies and everything else the server says."""

    def __init__(
        self, client: ChatClient, *, out: TextIO = sys.stdout, username: str | None = None, width: int | None = None
    ) -> None:
        self.client = client
        self.out = out
        self.username = username
        self.wrapper = WordWrapper(width or shutil.get_terminal_size((100, 24)).columns)
        #: Say which conversation this session continues once the list arrives (after the first connect).
        self._announce_conversation = False
        #: The reply whose text the cursor is in the middle of, and the reply whose header was printed last.
        self._streaming: str | None = None
        self._headed: str | None = None
        self._reply_done: asyncio.Future[None] | None = None
        self._cancel_sent = False
        self._quit = asyncio.Event()
        self._waiting_for: type | None = None
        self._answer: asyncio.Future[Any] | None = None
        #: While exporting: history pages are collected, not printed.
        self._exporting = False
        self._reader: LineReader | None = None
        #: Titles as the server last listed or renamed them (for /export).
        self._titles: dict[str, str] = {}
        #: The first prompt waits for this: connected and told where messages go (or a failure to connect).
        self._settled = asyncio.Event()

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _line(self, text: str) -> None:
        if self._streaming is not None:
            self.write(self.wrapper.finish() + "\n")
            self._streaming = None
        self.write(text + "\n")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, self._on_interrupt)
        printer = asyncio.create_task(self._print_events())
        reader = self._reader = LineReader(loop)
        try:
            self.client.start()
            self.write("Connecting…\n")
            self.write(HELP + "\n")
            # The prompt comes after "Connected as …" and where the messages go, not in the middle of them.
            with contextlib.suppress(TimeoutError):
                await self._until_quit(asyncio.wait_for(self._settled.wait(), FIRST_PROMPT_WAIT_S))
            while not self._quit.is_set():
                line = await self._until_quit(reader.read("you> "))
                if line is None or self._quit.is_set():
                    break
                if not await self._handle_line(line.strip()):
                    break
            return 1 if printer.done() and printer.result() else 0
        except AuthenticationFailed as exc:
            self._line(f"Giving up: {exc}")
            return 1
        finally:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)
            if not printer.done():
                printer.cancel()
            await self.client.close()
            self.write("\n")

    async def _until_quit(self, awaitable: Any) -> Any:
        task = asyncio.ensure_future(awaitable)
        quit_wait = asyncio.create_task(self._quit.wait())
        done, _ = await asyncio.wait({task, quit_wait}, return_when=asyncio.FIRST_COMPLETED)
        quit_wait.cancel()
        if task in done:
            return task.result()
        task.cancel()
        return None

    async def _handle_line(self, line: str) -> bool:
        if not line:
            return True
        session = self.client.session
        if line.startswith("/"):
            command, _, argument = line.partition(" ")
            if command in {"/quit", "/exit"}:
                return False
            if command == "/help":
                self.write(HELP + "\n")
            elif command == "/new":
                await self._request(session.new_conversation_frame(), ConversationStarted)
            elif command == "/list":
                await self._request(session.list_conversations_frame(), ConversationList)
            elif command == "/history":
                frame = session.history_frame(argument.strip() or None)
                if frame is None:
                    self.write("No conversation yet: send a message or give an id (/list shows them).\n")
                else:
                    await self._request(frame, HistoryReceived)
            elif command == "/rename":
                frame = session.rename_frame(argument.strip())
                if frame is None or not argument.strip():
                    self.write("Usage: /rename TITLE, in a conversation (send a message first).\n")
                else:
                    await self._request(frame, ConversationRenamed)
            elif command == "/delete":
                await self._delete()
            elif command == "/export":
                await self._export(argument.strip())
            elif command == "/attach":
                await self._attach(argument.strip())
            else:
                self.write(f"Unknown command {command}.\n{HELP}\n")
            return True
        refusal = message_refusal(line)
        if refusal:
            self.write(refusal + "\n")  # never sent, never cut: the server would refuse it, or the gateway close on it
            return True
        self._reply_done = asyncio.get_running_loop().create_future()
        self._cancel_sent = False
        await self._until_quit(self.client.send_message(line))
        await self._until_quit(self._reply_done)
        self._reply_done = None
        return not self._quit.is_set()

    async def _request(self, frame: Mapping[str, Any], answer: type) -> Any:
        """Send a command and wait (a little) for its answer, so the prompt comes back after it; returns the answer
        (or the ``ServerError`` that came instead), ``None`` if none came in time."""
        self._waiting_for = answer
        self._answer = asyncio.get_running_loop().create_future()
        await self._until_quit(self.client.send(frame))
        result = None
        with contextlib.suppress(TimeoutError):
            result = await self._until_quit(asyncio.wait_for(asyncio.shield(self._answer), 15))
        self._waiting_for = None
        return result

    async def _attach(self, path: str) -> None:
        """Upload the file straight to S3 (``requestUpload``'s presigned POST); it goes with the next message."""
        if not path:
            self.write("Usage: /attach PATH (an image or a PDF; it goes with your next message).\n")
            return
        file = Path(path).expanduser()
        try:
            data = file.read_bytes()
        except OSError as error:
            self.write(f"Cannot read {path}: {error.strerror or error}.\n")
            return
        # The type the file is by its first bytes (the server checks the same and refuses a mismatch).
        content_type = sniff(data[:SNIFF_BYTES])
        if content_type is None:
            self.write(f"{file.name} is not a PNG, JPEG, WebP or GIF image or a PDF; it was not attached.\n")
            return
        frame = self.client.session.request_upload_frame(file.name, content_type, len(data))
        answer = await self._request(frame, UploadGranted)
        if not isinstance(answer, UploadGranted):
            if answer is None:
                self.write("No answer to the upload request; the file was not attached.\n")
            return  # a refusal (too large, unsupported, quota) was printed as it came
        status, body = await asyncio.to_thread(post_upload, answer.url, answer.fields, file.name, content_type, data)
        if status >= 300:
            self.write(f"The upload of {file.name} was refused ({status}): {body[:200]}\n")
            return
        self.client.session.pending_attachments.append(answer.upload_id)
        self.write(f"Attached {file.name} ({len(data):,} bytes); it goes with your next message.\n")

    async def _delete(self) -> None:
        frame = self.client.session.delete_frame()
        if frame is None:
            self.write("No conversation to delete yet.\n")
            return
        confirm = "Delete this conversation for good? [y/N] "
        answer = await self._until_quit(self._reader.read(confirm)) if self._reader else "y"
        if (answer or "").strip().lower() not in {"y", "yes"}:
            self.write("Kept.\n")
            return
        await self._request(frame, ConversationRemoved)

    async def _export(self, path: str) -> None:
        session = self.client.session
        conversation_id = session.conversation_id
        if not path or conversation_id is None:
            self.write("Usage: /export FILE, in a conversation (send a message first).\n")
            return
        pages: list[tuple[HistoryMessage, ...]] = []
        cursor: str | None = None
        self._exporting = True
        try:
            while True:
                page = await self._request(session.history_frame(conversation_id, before=cursor) or {}, HistoryReceived)
                if not isinstance(page, HistoryReceived):
                    self.write("Export failed: no history came back.\n")
                    return
                pages.append(page.messages)
                if page.cursor is None:
                    break
                cursor = page.cursor
        finally:
            self._exporting = False
        messages = [message for page_messages in reversed(pages) for message in page_messages]
        title = self._titles.get(conversation_id, conversation_id)
        Path(path).expanduser().write_text(conversation_markdown(title, conversation_id, messages), encoding="utf-8")
        self.write(f"Exported {len(messages)} messages to {path}.\n")

    def _continuing(self, event: ConversationList) -> str:
        """The line saying where this session's messages go; pins the session to that conversation."""
        session = self.client.session
        titles = {item.conversation_id: item.title for item in event.items}
        self._titles.update(titles)
        if session.conversation_id is None and event.items:
            session.conversation_id = event.items[0].conversation_id
        if session.conversation_id is None:
            return "No conversations yet: your first message starts one."
        title = titles.get(session.conversation_id)
        named = f'"{title}" ({session.conversation_id})' if title else session.conversation_id
        return f"Continuing conversation {named}. /new starts a new one, /list shows them all."

    def _on_interrupt(self) -> None:
        in_flight = self.client.session.in_flight
        if in_flight is None or self._cancel_sent:
            self._quit.set()
            return
        self._cancel_sent = True
        self._line("^C stopping the reply… (Ctrl-C again to quit)")
        asyncio.get_running_loop().create_task(self.client.cancel(in_flight))

    async def _print_events(self) -> bool:
        """Prints events until the client gives up; returns True on a fatal error."""
        while True:
            event = await self.client.events.get()
            self._show(event)
            answers = self._waiting_for is not None and isinstance(event, (self._waiting_for, ServerError))
            if answers and self._answer is not None and not self._answer.done():
                self._answer.set_result(event)
            if isinstance(event, ReplyFinished) and event.own and self._reply_done and not self._reply_done.done():
                self._reply_done.set_result(None)
            if isinstance(event, Fatal):
                self._quit.set()
                return True

    def _show(self, event: ChatEvent) -> None:
        if isinstance(event, TextReceived):
            if self._streaming != event.message_id:
                if self._streaming is not None:
                    self.write(self.wrapper.finish() + "\n")
                # Every stretch of a reply's text starts with its prefix, also after a tool line.
                prefix = "assistant> " if event.own else "assistant (another tab)> "
                self.write(prefix)
                self.wrapper.start(len(prefix))
                self._headed = event.message_id
                self._streaming = event.message_id
            self.write(self.wrapper.feed(event.text))
        elif isinstance(event, TextReset):
            # Printed text cannot be taken back: say so, and the reply starts again on a fresh line.
            self._line("  [the model's connection dropped; the answer starts again]")
            self._headed = None
        elif isinstance(event, ToolUpdate):
            self._line(f"  [tool {event.name}: {event.status}]")
            self._headed = None
        elif isinstance(event, ReplyFinished):
            if event.late_text:
                self.write(self.wrapper.feed(event.late_text))
            if self._streaming is not None or event.late_text:
                self.write(self.wrapper.finish() + "\n")
            self._streaming = None
            if event.incomplete:
                self.write("  (part of this reply was missed while reconnecting; /history shows it in full)\n")
            if event.outcome == "cancelled":
                self.write("  [stopped]\n")
            elif event.outcome == "done" and event.usage is not None:
                model = f", {event.model}" if event.model else ""
                self.write(f"  [{event.usage.input_tokens} in / {event.usage.output_tokens} out tokens{model}]\n")
        elif isinstance(event, ServerError):
            if event.code == "token_expired":
                self._line("(session expired; renewing the token and reconnecting)")
            else:
                self._line(f"error ({event.code}): {event.message}")
        elif isinstance(event, ConversationStarted):
            self._line(f"New conversation {event.conversation_id}.")
        elif isinstance(event, ConversationList) and self._announce_conversation:
            self._announce_conversation = False
            self._line(self._continuing(event))
            self._settled.set()
        elif isinstance(event, ConversationList):
            if not event.items:
                self._line("No conversations yet.")
            self._titles.update({item.conversation_id: item.title for item in event.items})
            for item in event.items:
                marker = "*" if item.conversation_id == self.client.session.conversation_id else " "
                self._line(f"{marker} {item.conversation_id}  {item.updated_at}  {item.title}")
        elif isinstance(event, HistoryReceived) and self._exporting:
            pass  # collected by /export
        elif isinstance(event, ConversationRenamed):
            self._titles[event.conversation_id] = event.title
            self._line(f'Conversation {event.conversation_id} is now "{event.title}".')
        elif isinstance(event, ConversationRemoved):
            self._line(f"Conversation {event.conversation_id} deleted. Your next message starts a new one.")
        elif isinstance(event, AllDataDeleted):
            self._line("All your conversations were deleted. Your next message starts a new one.")
        elif isinstance(event, HistoryReceived):
            self._line(f"--- conversation {event.conversation_id} ---")
            for message in event.messages:
                self._line(f"{'you' if message.role == 'user' else 'assistant'}> {message.text}")
                for name in message.attachments:
                    self._line(f"  [attached: {name}]")
                # Marked as the live reply was: what a stopped or failed reply shows is not the whole answer.
                if message.role != "user" and message.status in HISTORY_MARKS:
                    self._line(f"  [{HISTORY_MARKS[message.status]}]")
            self._line("---")
        elif isinstance(event, Connected):
            if event.attempt > 1:
                self._line("(reconnected)")
            else:
                self._line(f"Connected as {self.username}." if self.username else "Connected.")
                # Which conversation the messages go to: asked once, answered when the list arrives.
                self._announce_conversation = True
                asyncio.get_running_loop().create_task(self.client.send(self.client.session.list_conversations_frame()))
        elif isinstance(event, Disconnected):
            if event.retry_in <= 0:
                self._line(f"({event.reason}; reconnecting)")
            else:
                self._line(f"({event.reason}; reconnecting in {event.retry_in:.1f}s)")
            self._settled.set()  # not connected yet: the prompt anyway, so /quit works
        elif isinstance(event, Fatal):
            self._line(f"Giving up: {event.reason}")
        elif isinstance(event, ProtocolProblem):
            self._line(f"(ignored a frame: {event.detail})")
