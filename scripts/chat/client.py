"""The connection: one WebSocket kept open, reconnecting with backoff, every frame fed to the session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from scripts.chat.events import ChatEvent, Connected, Disconnected, Fatal, ServerError
from scripts.chat.session import ChatSession
from scripts.chat.signin import AuthenticationFailed, TokenSource

AUTH_QUERY_PARAMETER = "Auth"

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
    #: Reconnect with a renewed token this long before the current one expires.
    RENEW_MARGIN_S = 90.0

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
        #: The server ended the last connection for its expired token: renew it and reconnect at once.
        self._token_expired = False

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
            if self._token_expired:
                self._token_expired = False
                self.tokens.invalidate()  # the next connect signs in again with the refresh token
                self.backoff.reset()
                await self.events.put(Disconnected("session expired; renewed the token", 0.0))
                continue
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
                    if isinstance(event, ServerError) and event.code == "token_expired":
                        self._token_expired = True
                    elif isinstance(event, ServerError) and event.code == "token_revoked":
                        # Signed out everywhere, disabled or deleted: no refresh helps, and reconnecting with the
                        # same sign-in would only be refused. The server closes the connection next.
                        self._fatal = f"signed out by the server: {event.message}"
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
        """Pings an idle connection, and moves to a connection with a fresh token before this one's expires (the
        server answers ``token_expired`` after it and stops sending replies), between replies so none is cut."""
        seconds_left = getattr(self.tokens, "seconds_left", None)
        with contextlib.suppress(ConnectionClosed):
            while True:
                renew_in = seconds_left() - self.RENEW_MARGIN_S if seconds_left is not None else math.inf
                if renew_in <= 0 and self.session.in_flight is None:
                    self._token_expired = True
                    await ws.close(1000, "renewing the access token")
                    return
                await asyncio.sleep(min(self.KEEPALIVE_S, max(renew_in, 1.0)))
                if seconds_left is None or seconds_left() - self.RENEW_MARGIN_S > 0:
                    await ws.send(json.dumps(ChatSession.ping_frame()))
