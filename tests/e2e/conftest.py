"""The whole local stack on free ports, for end-to-end tests through a real WebSocket client.

The stack runs its handlers as it does under ``make dev``: each function in processes of its own with exactly its
deployed environment and metrics on (``isolation="process"``), so these tests fail where AWS would. Assertions
read the stack's state through boto3 against moto, never through the handlers' process. Only tests that must
reach into that process (tests/e2e/test_faults.py replaces the worker's dependencies) run a stack in thread
isolation.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect

from assistant.stores.messages import MessageStore
from assistant.wiring import AUTH_QUERY_PARAMETER
from scripts.chat.signin import srp_sign_in
from scripts.local_stack.aws.moto_server import FAKE_CREDENTIALS
from scripts.local_stack.aws.resources import generate_password
from scripts.local_stack.offline_model import Pace
from scripts.local_stack.settings import WEB_DIR
from scripts.local_stack.stack import LocalStack, LocalStackSettings, StackInfo
from tests.frames import assemble

#: Fast enough for tests, slow enough that a reply streams as several frames and can be cancelled mid-way.
E2E_PACE = Pace(first_token_s=0.05, tokens_per_s=400)
#: Short, so tests of redelivery and the dead-letter queue take seconds.
E2E_VISIBILITY_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """moto, the resources, the offline model, the gateway and the poller; no OpenAI key, no stack.json.

    The stack runs its own event loop in a thread, so sync and async tests both use it. ``local_stack.info``
    has the connect values; ``local_stack.offline_model.state`` the model's fault plan and recorded requests;
    ``local_stack.settings.log_dir`` each function's log (its logs and EMF metrics).
    """
    with running_stack(e2e_settings(log_dir=tmp_path_factory.mktemp("lambda-logs"))) as stack:
        yield stack


@pytest.fixture(scope="module")
def stateless_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack against a stateless Responses server: the offline model's ``stateless`` profile, with the provider
    profile the stack picks for it (``openai-compatible``), as ``OPENAI_BASE_URL=<vLLM...> make dev`` runs it."""
    settings = e2e_settings(
        log_dir=tmp_path_factory.mktemp("lambda-logs"), offline_model_profile="stateless", model_provider=None
    )
    with running_stack(settings) as stack:
        yield stack


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack serving the repository's web/ (the e2e stack of the other modules serves no page)."""
    # As deployed, the visibility timeout is far above a reply's length: the other modules shorten it to test
    # redelivery, which would hand a reply that streams for a few seconds to a second worker here.
    settings = e2e_settings(web_dir=WEB_DIR, log_dir=tmp_path_factory.mktemp("lambda-logs"), visibility_timeout_s=300)
    with running_stack(settings) as stack:
        yield stack


def e2e_settings(*, log_dir: Path, **changes: Any) -> LocalStackSettings:
    """The e2e stack's settings, on a stage of its own, its functions' logs in ``log_dir``.

    A stage per stack because a LocalStack does not clear moto's process-wide state when it stops, so a second
    stack in the same process (the next test module) would find the previous one's table and fail to provision.
    """
    settings: dict[str, Any] = {
        "port": 0,
        "stage": f"e2e{uuid.uuid4().hex[:8]}",
        "model_pace": E2E_PACE,
        "visibility_timeout_s": E2E_VISIBILITY_TIMEOUT_S,
        "stack_json": None,
        "web_dir": None,
        "openai_api_key": None,
        "openai_base_url": None,
        "isolation": "process",
        "log_dir": log_dir,
    }
    return LocalStackSettings(**(settings | changes))


@contextmanager
def running_stack(settings: LocalStackSettings) -> Iterator[LocalStack]:
    """A started stack whose handlers use its resources, not those of a stack that ran before in this process.

    Only thread isolation needs this (process isolation starts fresh containers for every stack): without the
    resets here the handlers would keep the dependencies they built (table, queue, JWKS, callback URL) for an
    earlier stack, and Powertools' parameters utility its Secrets Manager client bound to the earlier stack's moto
    endpoint.
    """
    from tests.handlers import reset_handlers

    def forget_earlier_stacks() -> None:
        reset_handlers()

    # In thread isolation the worker imports the SDK on its first message (most of a second on this machine). Paid
    # here instead, so the first reply of a module cannot outlast the 3 s visibility timeout and be redelivered
    # while it still streams. (A worker container pays it on its first message, as a cold Lambda does.)
    if settings.isolation == "thread":
        import openai  # noqa: F401

    stack = LocalStack(settings)
    with stack:
        forget_earlier_stacks()
        try:
            yield stack
        finally:
            forget_earlier_stacks()


def stack_info(stack: LocalStack) -> StackInfo:
    assert stack.info is not None, "the stack is not running"
    return stack.info


def cognito_client(info: StackInfo) -> Any:
    """A Cognito client of the stack's moto."""
    return boto3.client(
        "cognito-idp",
        endpoint_url=info.cognito_endpoint,
        region_name=info.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def sign_in(info: StackInfo, username: str | None = None, password: str | None = None) -> str:
    """A Cognito access token from moto, through the SRP sign-in the web page and the terminal client use."""
    return str(sign_in_tokens(info, username, password)["AccessToken"])


def sign_in_tokens(info: StackInfo, username: str | None = None, password: str | None = None) -> dict[str, Any]:
    """Every token of an SRP sign-in (``AccessToken``, ``IdToken``, ``RefreshToken``)."""
    cognito = cognito_client(info)
    result = srp_sign_in(
        cognito,
        user_pool_id=info.user_pool_id,
        client_id=info.user_pool_client_id,
        username=username or info.demo_username,
        password=password or info.demo_password,
    )
    tokens: dict[str, Any] = result["AuthenticationResult"]
    return tokens


def create_user(stack: LocalStack, username: str, password: str) -> None:
    """A second user, for tests of isolation between users."""
    info = stack_info(stack)
    cognito = cognito_client(info)
    cognito.admin_create_user(UserPoolId=info.user_pool_id, Username=username, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=info.user_pool_id, Username=username, Password=password, Permanent=True)


@asynccontextmanager
async def open_socket(info: StackInfo, token: str) -> AsyncIterator[ClientConnection]:
    """A WebSocket to the gateway, authenticated the way every client is: ``?Auth=<access token>``."""
    url = f"{info.websocket_url}?{AUTH_QUERY_PARAMETER}={token}"
    async with connect(url, proxy=None, open_timeout=10, close_timeout=5) as ws:
        yield ws


async def receive_frame(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=timeout))


async def receive_until(
    ws: ClientConnection, frame_type: str, *, message_id: str | None = None, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Every frame up to and including the first of ``frame_type`` (for ``message_id`` if given)."""
    frames: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        frame = await receive_frame(ws, timeout=max(remaining, math.ulp(1.0)))
        frames.append(frame)
        if frame.get("type") == frame_type and (message_id is None or frame.get("messageId") == message_id):
            return frames


# --- Helpers shared by the e2e modules --------------------------------------------------------------------------


@dataclass(frozen=True)
class E2EUser:
    username: str
    password: str
    #: A Cognito access token, what ``?Auth=`` takes.
    token: str
    #: The token's ``sub``: the user id the handlers key everything by.
    user_id: str


def user_id_of(token: str) -> str:
    """The ``sub`` of a token (read, not verified: the gateway's authorizer does that)."""
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def new_user(stack: LocalStack, label: str = "user") -> E2EUser:
    """A fresh, signed-in user, so tests sharing a stack never see each other's conversations or frames."""
    username = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
    password = generate_password()
    create_user(stack, username, password)
    token = sign_in(stack_info(stack), username, password)
    return E2EUser(username=username, password=password, token=token, user_id=user_id_of(token))


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def send_message(ws: ClientConnection, text: str, **fields: Any) -> dict[str, Any]:
    """Send ``sendMessage`` and return its ``accepted`` frame (asserting nothing else arrived before it)."""
    await send(ws, {"action": "sendMessage", "message": text, **fields})
    frame = await receive_frame(ws)
    assert frame["type"] == "accepted", frame
    return frame


async def request(
    ws: ClientConnection, frame: dict[str, Any], answer_type: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Send a command and return its answer, skipping frames of replies still streaming to this socket."""
    await send(ws, frame)
    frames = await receive_until(ws, answer_type, timeout=timeout)
    return frames[-1]


def reply_text(frames: list[dict[str, Any]], message_id: str) -> str:
    """The reply as a client assembles it (by offset; see tests.frames)."""
    return assemble(frames, message_id)


def of_message(frames: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame.get("messageId") == message_id]


def responses_posted(stack: LocalStack, text: str) -> list[dict[str, Any]]:
    """Bodies of ``POST /v1/responses`` the model server received that asked for a reply to ``text``: the last
    user message of their input (later messages carry it as an earlier turn, which does not count)."""
    assert stack.offline_model is not None
    bodies = []
    for recorded in list(stack.offline_model.state.requests):
        if recorded.method != "POST" or not recorded.path.startswith("/v1/responses") or not recorded.body:
            continue
        items = recorded.body.get("input")
        users = [item for item in items if isinstance(item, dict) and item.get("role") == "user"] if items else []
        if isinstance(items, list) and users and users[-1].get("content") == text:
            bodies.append(recorded.body)
    return bodies


async def history(ws: ClientConnection, conversation_id: str) -> list[tuple[str, str]]:
    answer = await request(ws, {"action": "getHistory", "conversationId": conversation_id}, "history")
    assert answer["conversationId"] == conversation_id
    return [(message["role"], message["text"]) for message in answer["messages"]]


async def wait_for_history(
    ws: ClientConnection, conversation_id: str, turns: int, timeout: float = 15.0
) -> list[tuple[str, str]]:
    """Ask for the history until it holds ``turns`` messages (a reply finishing with no tab open sends nothing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        messages = await history(ws, conversation_id)
        if len(messages) >= turns or loop.time() > deadline:
            return messages
        await asyncio.sleep(0.2)


@contextmanager
def model_pace(stack: LocalStack, pace: Pace) -> Iterator[None]:
    """Make the offline model type at ``pace`` (read per token, so it applies to replies already streaming)."""
    assert stack.offline_model is not None
    state = stack.offline_model.state
    before = state.pace
    state.pace = pace
    try:
        yield
    finally:
        state.pace = before


def message_store(stack: LocalStack) -> MessageStore:
    """The stack's message records, read with boto3 from moto (not through the handlers' process)."""
    assert stack.resources is not None, "the stack is not running"
    dynamodb = boto3.resource(
        "dynamodb", endpoint_url=stack.resources.endpoint, region_name=stack_info(stack).region, **FAKE_CREDENTIALS
    )
    return MessageStore(dynamodb.Table(stack.resources.table_name))


def function_log(stack: LocalStack, function: str) -> str:
    """What a function wrote to its log so far (process isolation): its logs, EMF metrics, START/END/REPORT."""
    path = stack.settings.log_dir / f"{function}.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


async def wait_for_status(stack: LocalStack, user_id: str, message_id: str, *, timeout: float = 15.0) -> str:
    """The message record's status once it is final (done, cancelled, failed), or the last one seen."""
    messages = message_store(stack)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        record = await asyncio.to_thread(messages.get, user_id, message_id)
        status = record.status if record is not None else None
        if (status is not None and status.is_final) or loop.time() > deadline:
            return str(status.value) if status is not None else "missing"
        await asyncio.sleep(0.1)


#: Frames that end a reply: exactly one of them arrives per answered message.
FINAL_TYPES = frozenset({"done", "error", "cancelled"})


async def receive_until_final(ws: ClientConnection, message_id: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every frame up to the one that ends the reply to ``message_id``, whichever it is."""
    frames: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await receive_frame(ws, timeout=max(deadline - loop.time(), math.ulp(1.0)))
        frames.append(frame)
        if frame.get("type") in FINAL_TYPES and frame.get("messageId") == message_id:
            return frames
