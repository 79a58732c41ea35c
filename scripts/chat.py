"""Chat with the deployed (or local) assistant from a terminal.

    python -m scripts.chat                                   # the local stack (.local/stack.json), demo user
    python -m scripts.chat --outputs-file cdk-outputs.json --stage dev --username alice

Three layers, so the part that can be wrong is testable without a terminal or a network:

- :class:`ChatSession` is the protocol: it builds client frames and turns server frames into :data:`ChatEvent` s,
  assembling each reply from its ``delta`` frames (by ``seq``, ignoring a frame it already has, holding back one
  that arrives early). No I/O.
- :class:`ChatClient` is the connection: it signs in through a :class:`TokenSource`, keeps one WebSocket open,
  reconnects with exponential backoff when it drops (signing in again when the server refuses the token) and feeds
  every frame to the session.
- :class:`TerminalChat` is the terminal: prompt, slash commands, streamed output, Ctrl-C.

The client needs no AWS credentials: Cognito's ``InitiateAuth`` is a public API, so it is called unsigned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

DEFAULT_STACK_FILE = Path(".local/stack.json")
AUTH_QUERY_PARAMETER = "Auth"

# --- Events the session reports ---------------------------------------------------------------------------------

ReplyOutcome = Literal["done", "cancelled", "failed"]


@dataclass(frozen=True)
class ReplyAccepted:
    message_id: str
    conversation_id: str
    own: bool


@dataclass(frozen=True)
class TextReceived:
    """Reply text that is now in order: everything up to the highest ``seq`` without a gap before it."""

    message_id: str
    text: str
    own: bool


@dataclass(frozen=True)
class ToolUpdate:
    message_id: str
    name: str
    status: str
    own: bool


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ReplyFinished:
    message_id: str
    outcome: ReplyOutcome
    text: str
    own: bool
    conversation_id: str | None = None
    usage: Usage | None = None
    model: str | None = None
    #: Some ``delta`` frames never arrived (e.g. sent while this client was reconnecting); ``text`` has a hole.
    incomplete: bool = False
    #: Text that arrived after a missing frame and is released only now, when the reply is over.
    late_text: str = ""


@dataclass(frozen=True)
class ServerError:
    message_id: str | None
    code: str
    message: str


@dataclass(frozen=True)
class ConversationStarted:
    conversation_id: str


@dataclass(frozen=True)
class ConversationItem:
    conversation_id: str
    title: str
    updated_at: str


@dataclass(frozen=True)
class ConversationList:
    items: tuple[ConversationItem, ...]


@dataclass(frozen=True)
class HistoryMessage:
    role: str
    text: str
    message_id: str | None = None


@dataclass(frozen=True)
class HistoryReceived:
    conversation_id: str
    messages: tuple[HistoryMessage, ...]


@dataclass(frozen=True)
class PongReceived:
    pass


@dataclass(frozen=True)
class ProtocolProblem:
    """A frame this client cannot read. Reported, never silently dropped."""

    detail: str


@dataclass(frozen=True)
class Connected:
    attempt: int


@dataclass(frozen=True)
class Disconnected:
    reason: str
    retry_in: float


@dataclass(frozen=True)
class Fatal:
    """The client gave up (e.g. the password is wrong); nothing more will arrive."""

    reason: str


ChatEvent = (
    ReplyAccepted
    | TextReceived
    | ToolUpdate
    | ReplyFinished
    | ServerError
    | ConversationStarted
    | ConversationList
    | HistoryReceived
    | PongReceived
    | ProtocolProblem
    | Connected
    | Disconnected
    | Fatal
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
        self._unaccepted[message_id] = frame
        return message_id, frame

    def cancel_frame(self, message_id: str | None = None) -> dict[str, Any] | None:
        target = message_id or self.in_flight
        return None if target is None else {"action": "cancel", "messageId": target}

    @staticmethod
    def new_conversation_frame() -> dict[str, Any]:
        return {"action": "newConversation"}

    @staticmethod
    def list_conversations_frame() -> dict[str, Any]:
        return {"action": "listConversations"}

    def history_frame(self, conversation_id: str | None = None) -> dict[str, Any] | None:
        target = conversation_id or self.conversation_id
        return None if target is None else {"action": "getHistory", "conversationId": target}

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
            return self._on_delta(str(frame["messageId"]), _as_int(frame["seq"]), str(frame["text"]))
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
                HistoryMessage(str(m["role"]), str(m["text"]), m.get("messageId")) for m in frame["messages"]
            )
            return [HistoryReceived(str(frame["conversationId"]), messages)]
        if kind == "pong":
            return [PongReceived()]
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

    def _on_delta(self, message_id: str, seq: int, text: str) -> list[ChatEvent]:
        reply = self._reply(message_id)
        # seq below next_seq: already shown (a worker that crashed re-sends its last frame); a late frame after the
        # reply ended changes nothing either.
        if reply.finished or seq < reply.next_seq or seq in reply.early:
            return []
        reply.early[seq] = text
        ready: list[str] = []
        while reply.next_seq in reply.early:
            ready.append(reply.early.pop(reply.next_seq))
            reply.next_seq += 1
        if not ready:
            return []
        chunk = "".join(ready)
        reply.parts.append(chunk)
        return [TextReceived(message_id, chunk, reply.own)]

    def _on_error(self, message_id: Any, code: str, message: str) -> list[ChatEvent]:
        error = ServerError(None if message_id is None else str(message_id), code, message)
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
        incomplete = bool(reply.early)
        late = "".join(reply.early[seq] for seq in sorted(reply.early))
        reply.early.clear()
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


# --- Signing in -------------------------------------------------------------------------------------------------


class AuthenticationFailed(Exception):
    """The credentials are wrong or Cognito wants something this client cannot do; retrying will not help."""


class TokenSource(Protocol):
    """Where the client gets a Cognito access token. Blocking; the client calls it in a thread."""

    def access_token(self) -> str: ...

    def invalidate(self) -> None:
        """The server refused the last token: the next :meth:`access_token` must not return it."""


class CognitoSignIn:
    """USER_PASSWORD_AUTH against a Cognito user pool (moto's in the local stack), refreshed before it expires."""

    #: Sign in again this long before the token expires, so a reconnect never presents an expired token.
    EXPIRY_MARGIN_S = 60.0

    def __init__(
        self,
        *,
        client_id: str,
        username: str,
        password: str,
        region: str,
        endpoint_url: str | None = None,
        cognito: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cognito is None:
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config

            # InitiateAuth is public: no AWS credentials needed (nor wanted) on a user's machine.
            cognito = boto3.client(
                "cognito-idp",
                region_name=region,
                endpoint_url=endpoint_url or None,
                config=Config(signature_version=UNSIGNED, retries={"max_attempts": 3, "mode": "standard"}),
            )
        self._cognito = cognito
        self._client_id = client_id
        self._username = username
        self._password = password
        self._clock = clock
        self._token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0

    def access_token(self) -> str:
        if self._token is not None and self._clock() < self._expires_at - self.EXPIRY_MARGIN_S:
            return self._token
        if self._refresh_token is not None:
            with contextlib.suppress(AuthenticationFailed):
                return self._authenticate("REFRESH_TOKEN_AUTH", {"REFRESH_TOKEN": self._refresh_token})
            self._refresh_token = None
        return self._authenticate("USER_PASSWORD_AUTH", {"USERNAME": self._username, "PASSWORD": self._password})

    def invalidate(self) -> None:
        self._token = None

    def _authenticate(self, flow: str, parameters: dict[str, str]) -> str:
        from botocore.exceptions import ClientError

        try:
            response = self._cognito.initiate_auth(AuthFlow=flow, ClientId=self._client_id, AuthParameters=parameters)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"NotAuthorizedException", "UserNotFoundException", "UserNotConfirmedException"}:
                raise AuthenticationFailed(f"Sign-in refused: {exc.response['Error'].get('Message', code)}") from None
            if code in {"InvalidParameterException", "ResourceNotFoundException", "PasswordResetRequiredException"}:
                raise AuthenticationFailed(f"Sign-in impossible ({code}): {exc}") from None
            raise  # throttling, 5xx: the connection loop backs off and tries again
        if "AuthenticationResult" not in response:
            challenge = response.get("ChallengeName", "an unknown challenge")
            raise AuthenticationFailed(
                f"Cognito asks for {challenge}; finish it in the web page or with the user admin script first."
            )
        result = response["AuthenticationResult"]
        self._token = str(result["AccessToken"])
        self._refresh_token = str(result.get("RefreshToken") or self._refresh_token or "") or None
        self._expires_at = self._clock() + float(result.get("ExpiresIn", 3600))
        return self._token


# --- The connection ---------------------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``initial`` growing ``factor`` times per failure up to ``maximum``."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.25
    failures: int = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        return base * (1.0 - self.jitter * random.random())

    def reset(self) -> None:
        self.failures = 0


def with_auth(url: str, token: str) -> str:
    """``url`` with ``?Auth=<token>`` (replacing any Auth already there, keeping other parameters)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != AUTH_QUERY_PARAMETER]
    query.append((AUTH_QUERY_PARAMETER, token))
    return urlunsplit(parts._replace(query=urlencode(query)))


class ChatClient:
    """Keeps a WebSocket to the assistant open and turns what arrives into events on :attr:`events`."""

    #: API Gateway closes a connection idle for 10 minutes; a ping well before that keeps it open.
    KEEPALIVE_S = 300.0

    def __init__(
        self,
        url: str,
        tokens: TokenSource,
        *,
        session: ChatSession | None = None,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.session = session or ChatSession()
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.events: asyncio.Queue[ChatEvent] = asyncio.Queue()
        self.connections = 0
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fatal: str | None = None

    async def __aenter__(self) -> ChatClient:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chat-connection")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._wait_connected(), timeout)

    async def send(self, frame: Mapping[str, Any]) -> None:
        """Send a frame, waiting for a connection if there is none (frames carry ids, so a resend is safe)."""
        payload = json.dumps(frame)
        while True:
            ws = await self._wait_connected()
            try:
                await ws.send(payload)
                return
            except ConnectionClosed:
                self._connected.clear()
                await asyncio.sleep(0)

    async def send_message(self, text: str) -> str:
        message_id, frame = self.session.send_message(text)
        await self.send(frame)
        return message_id

    async def cancel(self, message_id: str | None = None) -> bool:
        frame = self.session.cancel_frame(message_id)
        if frame is None:
            return False
        await self.send(frame)
        return True

    async def next_event(self, timeout: float | None = None) -> ChatEvent:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def _wait_connected(self) -> ClientConnection:
        while True:
            if self._fatal is not None:
                raise AuthenticationFailed(self._fatal)
            if self._connected.is_set() and self._ws is not None:
                return self._ws
            await self._connected.wait()

    async def _run(self) -> None:
        while True:
            reason = await self._connect_once()
            if self._fatal is not None:
                self._connected.set()  # wake senders so they see the failure
                await self.events.put(Fatal(self._fatal))
                return
            delay = self.backoff.next_delay()
            await self.events.put(Disconnected(reason, delay))
            await asyncio.sleep(delay)

    async def _connect_once(self) -> str:
        """One connection's life; returns why it ended."""
        try:
            token = await asyncio.to_thread(self.tokens.access_token)
        except AuthenticationFailed as exc:
            self._fatal = str(exc)
            return self._fatal
        except Exception as exc:  # Cognito unreachable or throttling: worth another try later
            return f"sign-in failed: {exc}"
        try:
            ws = await connect(with_auth(self.url, token), open_timeout=self.open_timeout, max_size=2**20)
        except InvalidStatus as exc:
            if exc.response.status_code in {401, 403}:
                # The token expired or was revoked between sign-in and connect: sign in afresh next time.
                self.tokens.invalidate()
            return f"connection refused: HTTP {exc.response.status_code}"
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            return f"cannot connect: {exc}"
        self._ws = ws
        self.connections += 1
        self.backoff.reset()
        self._connected.set()
        await self.events.put(Connected(self.connections))
        if self.connections > 1:
            # A message sent just before the drop may never have reached the server.
            for frame in self.session.unaccepted_frames():
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps(frame))
        keepalive = asyncio.create_task(self._keepalive(ws))
        try:
            async for raw in ws:
                for event in self.session.handle_text(raw):
                    await self.events.put(event)
        except ConnectionClosed:
            pass
        finally:
            keepalive.cancel()
            self._connected.clear()
            self._ws = None
        if ws.close_code is None:
            return "connection lost"
        return f"connection closed ({ws.close_code} {ws.close_reason})".replace(" )", ")")

    async def _keepalive(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.KEEPALIVE_S)
                await ws.send(json.dumps(ChatSession.ping_frame()))


# --- Connection info --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionInfo:
    websocket_url: str
    region: str
    user_pool_client_id: str
    cognito_endpoint: str | None = None
    user_pool_id: str | None = None
    demo_username: str | None = None
    demo_password: str | None = None


def load_stack_file(path: Path) -> ConnectionInfo:
    """The local stack's ``.local/stack.json``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return ConnectionInfo(
        websocket_url=data["websocketUrl"],
        region=data.get("region") or _region_of(data.get("userPoolId")),
        user_pool_client_id=data["userPoolClientId"],
        cognito_endpoint=data.get("cognitoEndpoint"),
        user_pool_id=data.get("userPoolId"),
        demo_username=data.get("demoUsername"),
        demo_password=data.get("demoPassword"),
    )


def _normalise(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def load_outputs_file(path: Path, stage: str | None) -> ConnectionInfo:
    """The outputs of ``cdk deploy --outputs-file``: ``{stack name: {output key: value}}``.

    The stacks of ``stage`` are those whose name contains it (all of them when the file holds one stack or no stage
    is given). Output keys are matched loosely (``WebSocketUrl``, ``websocketUrl``, ``WebsocketURL``...).
    """
    data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    stacks = [name for name in data if stage is None or _normalise(stage) in _normalise(name)]
    if not stacks and len(data) == 1:
        stacks = list(data)
    outputs: dict[str, str] = {}
    for name in stacks:
        outputs.update({_normalise(k): str(v) for k, v in data[name].items()})
    return outputs_to_info(outputs, source=f"{path} (stage {stage or 'any'})")


def outputs_to_info(outputs: Mapping[str, str], *, source: str) -> ConnectionInfo:
    """A stage's CloudFormation outputs (any key spelling) as connection info."""
    normalised = {_normalise(k): v for k, v in outputs.items()}

    def find(*names: str) -> str | None:
        for name in names:
            for key, value in normalised.items():
                if key == name or key.endswith(name):
                    return value
        return None

    url = find("websocketurl", "websocketapiurl", "wsurl")
    client_id = find("userpoolclientid", "clientid")
    pool_id = find("userpoolid")
    if url is None or client_id is None:
        raise ValueError(f"{source}: no WebSocket URL or user pool client id among outputs {sorted(normalised)}")
    return ConnectionInfo(
        websocket_url=url,
        region=find("region") or _region_of(pool_id),
        user_pool_client_id=client_id,
        cognito_endpoint=find("cognitoendpoint"),
        user_pool_id=pool_id,
    )


def _region_of(user_pool_id: str | None) -> str:
    # A user pool id is "<region>_<suffix>".
    if user_pool_id and "_" in user_pool_id:
        return user_pool_id.split("_", 1)[0]
    raise ValueError("the region is unknown: give --region")


# --- The terminal -----------------------------------------------------------------------------------------------


class LineReader:
    """Reads stdin lines in a daemon thread, one per request, so a prompt can be abandoned at exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: TextIO = sys.stdin) -> None:
        self._loop = loop
        self._stream = stream
        self._requests: list[tuple[str, asyncio.Future[str | None]]] = []
        self._wake = threading.Condition()
        threading.Thread(target=self._serve, name="stdin", daemon=True).start()

    async def read(self, prompt: str) -> str | None:
        future: asyncio.Future[str | None] = self._loop.create_future()
        with self._wake:
            self._requests.append((prompt, future))
            self._wake.notify()
        return await future

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._requests:
                    self._wake.wait()
                prompt, future = self._requests.pop(0)
            try:
                line: str | None = input(prompt) if self._stream is sys.stdin else self._stream.readline() or None
            except EOFError:
                line = None
            self._loop.call_soon_threadsafe(_resolve, future, line)


def _resolve(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)


HELP = """Commands:
  /new              start a new conversation
  /list             list your conversations
  /history [id]     show a conversation (default: the current one)
  /quit             leave (also Ctrl-D, or Ctrl-C at the prompt)
Ctrl-C while a reply streams stops it."""


class TerminalChat:
    """The prompt loop: reads lines, sends them, prints replies and everything else the server says."""

    def __init__(self, client: ChatClient, *, out: TextIO = sys.stdout) -> None:
        self.client = client
        self.out = out
        #: The reply whose text the cursor is in the middle of, and the reply whose header was printed last.
        self._streaming: str | None = None
        self._headed: str | None = None
        self._reply_done: asyncio.Future[None] | None = None
        self._cancel_sent = False
        self._quit = asyncio.Event()
        self._waiting_for: type | None = None
        self._answer: asyncio.Future[None] | None = None

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _line(self, text: str) -> None:
        if self._streaming is not None:
            self.write("\n")
            self._streaming = None
        self.write(text + "\n")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, self._on_interrupt)
        printer = asyncio.create_task(self._print_events())
        reader = LineReader(loop)
        try:
            self.client.start()
            self.write("Connecting…\n")
            self.write(HELP + "\n")
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
            else:
                self.write(f"Unknown command {command}.\n{HELP}\n")
            return True
        self._reply_done = asyncio.get_running_loop().create_future()
        self._cancel_sent = False
        await self._until_quit(self.client.send_message(line))
        await self._until_quit(self._reply_done)
        self._reply_done = None
        return not self._quit.is_set()

    async def _request(self, frame: Mapping[str, Any], answer: type) -> None:
        """Send a command and wait (a little) for its answer, so the prompt comes back after it."""
        self._waiting_for = answer
        self._answer = asyncio.get_running_loop().create_future()
        await self._until_quit(self.client.send(frame))
        with contextlib.suppress(TimeoutError):
            await self._until_quit(asyncio.wait_for(asyncio.shield(self._answer), 15))
        self._waiting_for = None

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
                self._answer.set_result(None)
            if isinstance(event, ReplyFinished) and event.own and self._reply_done and not self._reply_done.done():
                self._reply_done.set_result(None)
            if isinstance(event, Fatal):
                self._quit.set()
                return True

    def _show(self, event: ChatEvent) -> None:
        if isinstance(event, TextReceived):
            if self._streaming != event.message_id:
                if self._streaming is not None:
                    self.write("\n")
                if self._headed != event.message_id:
                    self.write("assistant> " if event.own else "assistant (another tab)> ")
                    self._headed = event.message_id
                self._streaming = event.message_id
            self.write(event.text)
        elif isinstance(event, ToolUpdate):
            self._line(f"  [tool {event.name}: {event.status}]")
            self._headed = event.message_id
        elif isinstance(event, ReplyFinished):
            if event.late_text:
                self.write(event.late_text)
            if self._streaming is not None or event.late_text:
                self.write("\n")
            self._streaming = None
            if event.incomplete:
                self.write("  (part of this reply was missed while reconnecting; /history shows it in full)\n")
            if event.outcome == "cancelled":
                self.write("  [stopped]\n")
            elif event.outcome == "done" and event.usage is not None:
                model = f", {event.model}" if event.model else ""
                self.write(f"  [{event.usage.input_tokens} in / {event.usage.output_tokens} out tokens{model}]\n")
        elif isinstance(event, ServerError):
            self._line(f"error ({event.code}): {event.message}")
        elif isinstance(event, ConversationStarted):
            self._line(f"New conversation {event.conversation_id}.")
        elif isinstance(event, ConversationList):
            if not event.items:
                self._line("No conversations yet.")
            for item in event.items:
                marker = "*" if item.conversation_id == self.client.session.conversation_id else " "
                self._line(f"{marker} {item.conversation_id}  {item.updated_at}  {item.title}")
        elif isinstance(event, HistoryReceived):
            self._line(f"--- conversation {event.conversation_id} ---")
            for message in event.messages:
                self._line(f"{'you' if message.role == 'user' else 'assistant'}> {message.text}")
            self._line("---")
        elif isinstance(event, Connected):
            if event.attempt > 1:
                self._line("(reconnected)")
        elif isinstance(event, Disconnected):
            self._line(f"({event.reason}; reconnecting in {event.retry_in:.1f}s)")
        elif isinstance(event, Fatal):
            self._line(f"Giving up: {event.reason}")
        elif isinstance(event, ProtocolProblem):
            self._line(f"(ignored a frame: {event.detail})")


# --- Entry point ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.chat", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stack-file", type=Path, help=f"the local stack's connection file ({DEFAULT_STACK_FILE})")
    source.add_argument("--outputs-file", type=Path, help="a deployed stage's `cdk deploy --outputs-file` JSON")
    parser.add_argument(
        "--stage",
        help="a deployed stage: read its stack outputs from CloudFormation (or pick its stacks in --outputs-file)",
    )
    parser.add_argument("--username", help="default: the local stack's demo user, else asked")
    parser.add_argument("--password", help="default: the demo user's, else asked (without echo)")
    parser.add_argument("--conversation", help="continue this conversation id")
    return parser.parse_args(argv)


def load_deployed_stage(stage: str) -> ConnectionInfo:
    """A deployed stage's connection info, read from its CloudFormation stack's outputs (AWS credentials needed)."""
    import boto3

    from infra.names import OutputKey
    from scripts.stack_outputs import load_outputs

    required = (OutputKey.WEBSOCKET_URL, OutputKey.USER_POOL_CLIENT_ID, OutputKey.REGION)
    outputs = load_outputs(stage, boto3.client("cloudformation"), required=required)
    return outputs_to_info(outputs, source=f"stack outputs of stage {stage}")


def resolve_connection(args: argparse.Namespace) -> ConnectionInfo:
    if args.outputs_file is not None:
        return load_outputs_file(args.outputs_file, args.stage)
    if args.stage is not None and args.stack_file is None:
        return load_deployed_stage(args.stage)
    stack_file = args.stack_file or DEFAULT_STACK_FILE
    if not stack_file.exists():
        raise SystemExit(
            f"{stack_file} not found: start the local stack (make dev), or name a deployed stage with --stage."
        )
    return load_stack_file(stack_file)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = resolve_connection(args)
    username = args.username or info.demo_username or input("username: ")
    password = args.password or (info.demo_password if username == info.demo_username else None)
    if not password:
        password = getpass.getpass(f"password for {username}: ")
    tokens = CognitoSignIn(
        client_id=info.user_pool_client_id,
        username=username,
        password=password,
        region=info.region,
        endpoint_url=info.cognito_endpoint,
    )

    async def chat() -> int:
        client = ChatClient(info.websocket_url, tokens, session=ChatSession(conversation_id=args.conversation))
        return await TerminalChat(client).run()

    try:
        return asyncio.run(chat())
    except KeyboardInterrupt:  # platforms without loop signal handlers
        return 130


if __name__ == "__main__":
    sys.exit(main())
