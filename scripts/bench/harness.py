"""The local stack under test, its users, and a WebSocket client that timestamps every frame it receives.

The stack runs in this process on its own event loop in a thread (as the end-to-end tests run it); the benchmark's
clients run on the caller's loop, talk to it over real sockets on 127.0.0.1, and record ``time.perf_counter()`` on
arrival of each frame, which is what a user would see.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from websockets.asyncio.client import ClientConnection, connect

from assistant.wiring import AUTH_QUERY_PARAMETER, Env
from scripts.chat.signin import srp_sign_in
from scripts.local_stack.offline_model import OfflineModelState, Pace, Profile
from scripts.local_stack.settings import LocalStackSettings, StackInfo, limits_from_environment
from scripts.local_stack.stack import LocalStack

#: Frames that end a reply; a reply is finished when one of them carries its ``messageId``.
FINAL_TYPES = frozenset({"done", "error", "cancelled"})
_PASSWORD = "Bench-Passw0rd!"  # noqa: S105 - a throwaway user of the local moto pool
_SOCKET_TIMEOUT_S = 15.0


@dataclass
class RunningStack:
    """The started stack and the handles a benchmark needs."""

    stack: LocalStack
    info: StackInfo
    settings: LocalStackSettings

    @property
    def model_state(self) -> OfflineModelState:
        if self.stack.offline_model is None:
            raise RuntimeError("the benchmark needs the built-in offline model")
        return self.stack.offline_model.state

    @property
    def model_base_url(self) -> str:
        if self.stack.offline_model is None:
            raise RuntimeError("the benchmark needs the built-in offline model")
        return self.stack.offline_model.base_url

    def set_pace(self, pace: Pace) -> None:
        # A frozen dataclass replaced as a whole; the model reads it at the start of each generation step.
        self.model_state.pace = pace


def unthrottled_limits() -> dict[Env, str]:
    """The dev limits with per-user rate limits and quotas out of the way: a benchmark client sends like a script,
    which is exactly what the limits refuse, and it measures the pipeline, not the limits."""
    generous = {
        Env.RATE_LIMIT_SEND_MESSAGE: "100000/100000",
        Env.RATE_LIMIT_NEW_CONVERSATION: "100000/100000",
        Env.RATE_LIMIT_GET_HISTORY: "100000/100000",
        Env.RATE_LIMIT_LIST_CONVERSATIONS: "100000/100000",
        Env.RATE_LIMIT_CANCEL: "100000/100000",
        Env.RATE_LIMIT_PING: "100000/100000",
        Env.RATE_LIMIT_GET_USAGE: "100000/100000",
        Env.RATE_LIMIT_CONNECT: "100000/100000",
        Env.MAX_CONNECTIONS_PER_USER: "1000",
        Env.MAX_WAITING_MESSAGES: "1000",
        Env.DAILY_MESSAGE_QUOTA: "1000000",
    }
    return limits_from_environment() | generous


@contextmanager
def running_stack(
    *, pace: Pace, poller_concurrency: int, visibility_timeout_s: int = 30, profile: Profile = "openai"
) -> Iterator[RunningStack]:
    """The whole local stack on free ports with the offline model at ``pace`` speaking ``profile`` (the functions
    get the provider profile that matches it), whatever the environment says."""
    settings = LocalStackSettings(
        port=0,
        model_pace=pace,
        offline_model_profile=profile,
        model_provider=None,
        poller_concurrency=poller_concurrency,
        visibility_timeout_s=visibility_timeout_s,
        stack_json=None,
        web_dir=None,
        openai_api_key=None,
        openai_base_url=None,
        handler_log_level="ERROR",
        limits=unthrottled_limits(),
        # Nor API Gateway's stage throttles: the benchmark measures the pipeline, and sends like a script.
        throttles=None,
        # The handlers in this process: the benchmark measures the pipeline, not how long this machine takes to
        # start a Python process per local "container" (process isolation is for catching environment bugs).
        isolation="thread",
    )
    stack = LocalStack(settings)
    with stack as info:
        # The handlers' per-container caches (settings, clients, token verifier) belong to the previous stack of
        # this process, if any: LocalStack does not reset them (see the report's findings).
        from assistant.wiring import FUNCTIONS
        from scripts.local_stack.lambda_runtime.invocation import reset_handler_modules

        reset_handler_modules(FUNCTIONS)
        yield RunningStack(stack=stack, info=info, settings=settings)


def _cognito(info: StackInfo) -> Any:
    return boto3.client(
        "cognito-idp",
        endpoint_url=info.cognito_endpoint,
        region_name=info.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto accepts any credentials
    )


def create_user(info: StackInfo, username: str) -> str:
    """A confirmed user of the stack's pool; returns an access token for it."""
    cognito = _cognito(info)
    cognito.admin_create_user(UserPoolId=info.user_pool_id, Username=username, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=info.user_pool_id, Username=username, Password=_PASSWORD, Permanent=True)
    return sign_in(info, username, _PASSWORD)


def sign_in(info: StackInfo, username: str, password: str) -> str:
    result = srp_sign_in(
        _cognito(info),
        user_pool_id=info.user_pool_id,
        client_id=info.user_pool_client_id,
        username=username,
        password=password,
    )
    return str(result["AuthenticationResult"]["AccessToken"])


_user_numbers = itertools.count(1)


async def new_users(info: StackInfo, count: int, prefix: str) -> list[str]:
    """``count`` fresh users (so no state carries over between benchmarks); returns their access tokens."""
    names = [f"{prefix}-{next(_user_numbers)}@example.com" for _ in range(count)]
    return [await asyncio.to_thread(create_user, info, name) for name in names]


@dataclass(frozen=True)
class Received:
    """One frame as the client got it: arrival time, its payload size in bytes, and its JSON body."""

    at: float
    payload_bytes: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Sent:
    message_id: str
    text: str
    at: float


@dataclass
class ChatClient:
    """One user's WebSocket: sends ``sendMessage`` frames and records every frame that arrives, in order."""

    ws: ClientConnection
    received: list[Received] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    _finished: defaultdict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))
    _accepted: defaultdict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="bench-client-reader")

    async def _read(self) -> None:
        async for raw in self.ws:
            at = time.perf_counter()
            payload = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
            body = json.loads(payload)
            self.received.append(Received(at=at, payload_bytes=len(payload), body=body))
            message_id = body.get("messageId")
            if body.get("type") in FINAL_TYPES and isinstance(message_id, str):
                self._finished[message_id].set()
            elif body.get("type") == "accepted" and isinstance(message_id, str):
                self._accepted[message_id].set()

    async def send_message(self, text: str, message_id: str) -> Sent:
        frame = json.dumps({"action": "sendMessage", "message": text, "messageId": message_id})
        sent = Sent(message_id=message_id, text=text, at=time.perf_counter())
        self.sent.append(sent)
        await self.ws.send(frame)
        return sent

    async def wait_accepted(self, message_id: str, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._accepted[message_id].wait(), timeout=timeout)
        except TimeoutError:
            return False
        return True

    async def wait_finished(self, message_id: str, timeout: float) -> bool:
        """Whether the reply to ``message_id`` ended (done, error or cancelled) within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._finished[message_id].wait(), timeout=timeout)
        except TimeoutError:
            return False
        return True

    def frames_for(self, message_id: str) -> list[Received]:
        return [frame for frame in self.received if frame.body.get("messageId") == message_id]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, timeout=_SOCKET_TIMEOUT_S)
            except (TimeoutError, Exception):  # a reader that died with the socket has nothing more to give
                self._reader.cancel()


@asynccontextmanager
async def chat_client(info: StackInfo, token: str) -> AsyncIterator[ChatClient]:
    """An authenticated socket as every client opens it (``?Auth=<access token>``), without compression, as API
    Gateway has none: what the client receives is what went over the wire."""
    url = f"{info.websocket_url}?{AUTH_QUERY_PARAMETER}={token}"
    async with connect(
        url, proxy=None, compression=None, open_timeout=_SOCKET_TIMEOUT_S, close_timeout=5, max_size=2**20
    ) as ws:
        client = ChatClient(ws)
        client.start()
        try:
            yield client
        finally:
            await client.close()


def first_delta_at(frames: list[Received]) -> float | None:
    return next((frame.at for frame in frames if frame.body.get("type") == "delta"), None)
