"""The whole local stack, in-process on free ports, for end-to-end tests through a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import boto3
import pytest
from websockets.asyncio.client import ClientConnection, connect

from assistant.wiring import AUTH_QUERY_PARAMETER
from scripts.local_stack.offline_model import Pace
from scripts.local_stack.stack import LocalStack, LocalStackSettings, StackInfo

#: Fast enough for tests, slow enough that a reply streams as several frames and can be cancelled mid-way.
E2E_PACE = Pace(first_token_s=0.05, tokens_per_s=400)
#: Short, so tests of redelivery and the dead-letter queue take seconds.
E2E_VISIBILITY_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """moto, the resources, the offline model, the gateway and the poller; no OpenAI key, no stack.json.

    The stack runs its own event loop in a thread, so sync and async tests both use it. ``local_stack.info``
    has the connect values; ``local_stack.offline_model.state`` the model's fault plan and recorded requests.
    """
    settings = LocalStackSettings(
        port=0,
        model_pace=E2E_PACE,
        visibility_timeout_s=E2E_VISIBILITY_TIMEOUT_S,
        stack_json=None,
        web_dir=None,
        openai_api_key=None,
        openai_base_url=None,
    )
    stack = LocalStack(settings)
    with stack:
        yield stack


def stack_info(stack: LocalStack) -> StackInfo:
    assert stack.info is not None, "the stack is not running"
    return stack.info


def sign_in(info: StackInfo, username: str | None = None, password: str | None = None) -> str:
    """A Cognito access token from moto, through the public USER_PASSWORD_AUTH flow the web page uses."""
    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=info.cognito_endpoint,
        region_name=info.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    result = cognito.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId=info.user_pool_client_id,
        AuthParameters={"USERNAME": username or info.demo_username, "PASSWORD": password or info.demo_password},
    )
    return result["AuthenticationResult"]["AccessToken"]


def create_user(stack: LocalStack, username: str, password: str) -> None:
    """A second user, for tests of isolation between users."""
    info = stack_info(stack)
    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=info.cognito_endpoint,
        region_name=info.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
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
