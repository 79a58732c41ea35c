"""The local gateway behaves like API Gateway's WebSocket API, seen from a real client and a real boto3 client.

The handlers here are small fakes injected through the runtime's resolver; every event they receive is parsed
with Powertools' API Gateway WebSocket models, so a shape the real handlers could not parse fails these tests.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistant.wiring import AUTH_QUERY_PARAMETER, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, FunctionSpec
from scripts.local_stack.gateway.server import Gateway
from scripts.local_stack.lambda_runtime.invocation import Handler
from scripts.local_stack.lambda_runtime.threads import LambdaRuntime

#: The fake authorizer allows this token, denies "deny" and raises for "invalid".
ALLOW = "allow"
ALLOW_CONTEXT = {"userId": "user-1", "isAdmin": True, "quota": 5}


class FakeHandlers:
    """One fake per function in wiring; records every event (after checking its shape) for the test to inspect."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.disconnected = threading.Event()

    def resolve(self, function: FunctionSpec) -> Handler:
        handler: Callable[[dict[str, Any], Any], Any] = getattr(self, function.name)

        def recording(event: dict[str, Any], context: Any) -> Any:
            assert context.function_name == f"local-{function.name}"
            assert 0 < context.get_remaining_time_in_millis() <= function.timeout_seconds * 1000
            with self._lock:
                self.events.append((function.name, event))
            return handler(event, context)

        return recording

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [event for function, event in self.events if function == name]

    def authorizer(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert event["type"] == "REQUEST"
        token = event["queryStringParameters"][AUTH_QUERY_PARAMETER]
        if token == "invalid":
            raise Exception("Unauthorized")  # how a Lambda authorizer asks API Gateway for a 401
        effect = "Deny" if token == "deny" else "Allow"
        return {
            "principalId": "user-1",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}],
            },
            "context": ALLOW_CONTEXT,
        }

    def connect(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        parse(event=event, model=APIGatewayWebSocketConnectEventModel)
        if event["queryStringParameters"].get("refuse"):
            return {"statusCode": 403}
        return {"statusCode": 200}

    def disconnect(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        parse(event=event, model=APIGatewayWebSocketDisconnectEventModel)
        self.disconnected.set()
        return {"statusCode": 200}

    def _echo(self, event: dict[str, Any]) -> dict[str, Any]:
        parse(event=event, model=APIGatewayWebSocketMessageEventModel)
        context = event["requestContext"]
        body = {"route": context["routeKey"], "bytes": len(event["body"] or ""), "authorizer": context["authorizer"]}
        return {"statusCode": 200, "body": json.dumps(body)}

    def default(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return self._echo(event)

    def send_message(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return self._echo(event)

    def commands(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if json.loads(event["body"])["action"] == "cancel":
            raise RuntimeError("a bug in the handler")
        return self._echo(event)

    def worker(self, event: dict[str, Any], context: Any) -> None:
        raise AssertionError("the gateway never invokes the worker")


@pytest.fixture
def handlers() -> FakeHandlers:
    return FakeHandlers()


@pytest.fixture
def idle_timeout_s() -> float:
    return 600.0


@pytest.fixture
async def gateway(handlers: FakeHandlers, idle_timeout_s: float) -> AsyncIterator[Gateway]:
    runtime = LambdaRuntime(handlers.resolve)
    gateway = Gateway(runtime, idle_timeout_s=idle_timeout_s)
    await gateway.start("127.0.0.1", 0)
    try:
        yield gateway
    finally:
        await gateway.stop()
        await asyncio.to_thread(runtime.close)


def _open(gateway: Gateway, token: str | None = ALLOW, extra: str = "") -> Any:
    query = "" if token is None else f"?{AUTH_QUERY_PARAMETER}={token}{extra}"
    return connect(gateway.websocket_url + query, proxy=None, open_timeout=5, close_timeout=2)


def _management(gateway: Gateway) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gateway.callback_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


async def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def _reply(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=5))


async def _connection_id(handlers: FakeHandlers) -> str:
    await _wait_for(lambda: bool(handlers.of("connect")))
    return handlers.of("connect")[-1]["requestContext"]["connectionId"]


# --- $connect -------------------------------------------------------------------------------------------------


async def test_missing_auth_is_refused_with_401_before_the_authorizer_runs(
    gateway: Gateway, handlers: FakeHandlers
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with _open(gateway, token=None):
            pass
    assert refused.value.response.status_code == 401
    assert handlers.events == []


async def test_explicit_deny_is_refused_with_403_and_connect_never_runs(
    gateway: Gateway, handlers: FakeHandlers
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with _open(gateway, token="deny"):
            pass
    assert refused.value.response.status_code == 403
    assert [name for name, _ in handlers.events] == ["authorizer"]


async def test_authorizer_raising_unauthorized_is_a_401(gateway: Gateway, handlers: FakeHandlers) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with _open(gateway, token="invalid"):
            pass
    assert refused.value.response.status_code == 401
    assert handlers.of("connect") == []


async def test_connect_handler_refusal_closes_the_handshake(gateway: Gateway, handlers: FakeHandlers) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with _open(gateway, extra="&refuse=1"):
            pass
    assert refused.value.response.status_code == 403
    assert gateway.connection_ids == []


async def test_authorizer_gets_an_api_gateway_request_event(gateway: Gateway, handlers: FakeHandlers) -> None:
    async with _open(gateway, token="allow"):
        pass
    event = handlers.of("authorizer")[0]
    assert event["methodArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{gateway.api_id}/local/$connect"
    assert event["queryStringParameters"] == {AUTH_QUERY_PARAMETER: "allow"}
    assert event["requestContext"]["routeKey"] == "$connect"
    assert "Sec-WebSocket-Key" in event["headers"]


# --- routes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "route"),
    [
        ('{"action": "sendMessage", "message": "hi"}', "sendMessage"),
        ('{"action": "ping"}', "ping"),
        ('{"action": "noSuchAction"}', "$default"),
        ('{"action": "$connect"}', "$default"),
        ('{"message": "no action"}', "$default"),
        ("not json at all", "$default"),
        ('["action", "ping"]', "$default"),
    ],
)
async def test_route_selection_on_the_body_action(gateway: Gateway, frame: str, route: str) -> None:
    async with _open(gateway) as ws:
        await ws.send(frame)
        assert (await _reply(ws))["route"] == route


async def test_every_event_carries_the_authorizer_context_as_strings(gateway: Gateway, handlers: FakeHandlers) -> None:
    expected = {"principalId": "user-1", "userId": "user-1", "isAdmin": "true", "quota": "5"}
    async with _open(gateway) as ws:
        await ws.send('{"action": "ping"}')
        assert (await _reply(ws))["authorizer"] == expected
    await _wait_for(handlers.disconnected.is_set)
    assert handlers.of("connect")[0]["requestContext"]["authorizer"] == expected
    assert handlers.of("disconnect")[0]["requestContext"]["authorizer"] == expected


async def test_a_failing_integration_sends_api_gateways_error_frame(gateway: Gateway) -> None:
    async with _open(gateway) as ws:
        await ws.send('{"action": "cancel", "messageId": "m1"}')
        reply = await _reply(ws)
        assert reply["message"] == "Internal server error"
        assert set(reply) == {"message", "connectionId", "requestId"}
        # The connection survives a failed integration.
        await ws.send('{"action": "ping"}')
        assert (await _reply(ws))["route"] == "ping"


# --- limits ---------------------------------------------------------------------------------------------------


async def test_a_frame_over_32_kb_closes_the_connection_with_1009(gateway: Gateway, handlers: FakeHandlers) -> None:
    async with _open(gateway) as ws:
        await ws.send("x" * (MAX_FRAME_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await _reply(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    await _wait_for(handlers.disconnected.is_set)
    assert handlers.of("disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1009
    assert handlers.of("default") == []


async def test_32_kb_is_counted_in_bytes_not_characters(gateway: Gateway, handlers: FakeHandlers) -> None:
    """API Gateway's frame limit is 32 KB of the frame's bytes: a message of multi-byte characters, well under
    32 K characters but over 32 KB in UTF-8, never reaches a handler in AWS, so it must not here either."""
    body = json.dumps({"action": "sendMessage", "message": "é" * (MAX_FRAME_BYTES // 2)}, ensure_ascii=False)
    assert len(body) < MAX_FRAME_BYTES < len(body.encode())
    async with _open(gateway) as ws:
        await ws.send(body)
        with pytest.raises(ConnectionClosed) as closed:
            await _reply(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    await _wait_for(handlers.disconnected.is_set)
    assert handlers.of("send_message") == []
    assert handlers.of("default") == []


async def test_a_frame_of_exactly_32_kb_is_accepted(gateway: Gateway) -> None:
    async with _open(gateway) as ws:
        await ws.send("y" * MAX_FRAME_BYTES)
        reply = await _reply(ws)
    assert reply["bytes"] == MAX_FRAME_BYTES


async def test_a_message_of_32_kb_in_smaller_frames_is_accepted(gateway: Gateway) -> None:
    fragments = ["y" * (MAX_FRAME_BYTES // 4)] * 4
    async with _open(gateway) as ws:
        await ws.send(fragments)
        reply = await _reply(ws)
    assert reply == {"route": "$default", "bytes": MAX_FRAME_BYTES, "authorizer": reply["authorizer"]}


async def test_a_message_over_32_kb_closes_the_connection_with_1009_even_in_smaller_frames(
    gateway: Gateway, handlers: FakeHandlers
) -> None:
    """Stricter than API Gateway, which takes up to 128 KB in frames of 32 KB: the local gateway caps a message at
    one frame (``gateway.server.MAX_CLIENT_MESSAGE_BYTES`` says why)."""
    fragments = ["z" * (MAX_FRAME_BYTES // 4)] * 4 + ["z"]
    async with _open(gateway) as ws:
        await ws.send(fragments)
        with pytest.raises(ConnectionClosed) as closed:
            await _reply(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    await _wait_for(handlers.disconnected.is_set)
    assert handlers.of("disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1009
    assert handlers.of("default") == []


# --- @connections ---------------------------------------------------------------------------------------------


async def test_post_to_connection_delivers_a_frame_and_get_describes_it(
    gateway: Gateway, handlers: FakeHandlers
) -> None:
    management = _management(gateway)
    async with _open(gateway) as ws:
        connection_id = await _connection_id(handlers)
        await asyncio.to_thread(management.post_to_connection, ConnectionId=connection_id, Data=b'{"type": "delta"}')
        assert await _reply(ws) == {"type": "delta"}
        info = await asyncio.to_thread(management.get_connection, ConnectionId=connection_id)
    assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert info["ConnectedAt"] <= info["LastActiveAt"]


async def test_post_to_a_closed_or_unknown_connection_raises_gone(gateway: Gateway, handlers: FakeHandlers) -> None:
    management = _management(gateway)
    async with _open(gateway):
        connection_id = await _connection_id(handlers)
    await _wait_for(handlers.disconnected.is_set)
    for unknown in (connection_id, "AAAAAAAAAAAAAAA="):
        with pytest.raises(management.exceptions.GoneException):
            await asyncio.to_thread(management.post_to_connection, ConnectionId=unknown, Data=b"{}")


async def test_post_to_connection_takes_up_to_128_kb_and_refuses_more_with_payload_too_large(
    gateway: Gateway, handlers: FakeHandlers
) -> None:
    management = _management(gateway)
    async with _open(gateway) as ws:
        connection_id = await _connection_id(handlers)
        largest = json.dumps({"text": "x" * (MAX_MESSAGE_BYTES - len('{"text": ""}'))}).encode()
        assert len(largest) == MAX_MESSAGE_BYTES
        await asyncio.to_thread(management.post_to_connection, ConnectionId=connection_id, Data=largest)
        assert len(json.dumps(await _reply(ws))) == MAX_MESSAGE_BYTES
        with pytest.raises(management.exceptions.PayloadTooLargeException):
            await asyncio.to_thread(management.post_to_connection, ConnectionId=connection_id, Data=largest + b" ")


async def test_delete_connection_closes_it_and_runs_disconnect(gateway: Gateway, handlers: FakeHandlers) -> None:
    management = _management(gateway)
    async with _open(gateway) as ws:
        connection_id = await _connection_id(handlers)
        await asyncio.to_thread(management.delete_connection, ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed):
            await _reply(ws)
    await _wait_for(handlers.disconnected.is_set)
    disconnect = handlers.of("disconnect")[0]["requestContext"]
    assert disconnect["connectionId"] == connection_id
    assert disconnect["disconnectStatusCode"] == 1000
    with pytest.raises(management.exceptions.GoneException):
        await asyncio.to_thread(management.post_to_connection, ConnectionId=connection_id, Data=b"{}")


async def test_client_close_runs_disconnect_with_its_code_and_reason(gateway: Gateway, handlers: FakeHandlers) -> None:
    async with _open(gateway) as ws:
        connection_id = await _connection_id(handlers)
        await ws.close(code=4000, reason="tab closed")
    await _wait_for(handlers.disconnected.is_set)
    context = handlers.of("disconnect")[0]["requestContext"]
    assert (context["connectionId"], context["disconnectStatusCode"], context["disconnectReason"]) == (
        connection_id,
        4000,
        "tab closed",
    )
    assert gateway.connection_ids == []


@pytest.mark.parametrize("idle_timeout_s", [0.5])
async def test_an_idle_connection_is_closed_with_going_away(gateway: Gateway, handlers: FakeHandlers) -> None:
    async with _open(gateway) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    await _wait_for(handlers.disconnected.is_set)
    assert handlers.of("disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1001


@pytest.mark.parametrize("idle_timeout_s", [0.6])
async def test_client_messages_keep_a_connection_alive(gateway: Gateway, handlers: FakeHandlers) -> None:
    async with _open(gateway) as ws:
        for _ in range(4):
            await asyncio.sleep(0.3)
            await ws.send('{"action": "ping"}')
            assert (await _reply(ws))["route"] == "ping"
    await _wait_for(handlers.disconnected.is_set)
    assert handlers.of("disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1000


async def test_stop_closes_open_connections_and_runs_their_disconnect(
    handlers: FakeHandlers,
) -> None:
    runtime = LambdaRuntime(handlers.resolve)
    gateway = Gateway(runtime)
    await gateway.start("127.0.0.1", 0)
    try:
        async with _open(gateway) as ws:
            await _connection_id(handlers)
            await gateway.stop()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    finally:
        await gateway.stop()
        await asyncio.to_thread(runtime.close)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    assert handlers.of("disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1001


async def test_demo_sign_in_answers_the_page_and_refuses_other_origins(handlers: FakeHandlers) -> None:
    """The page's one-click sign-in: Cognito's answer for the demo user, only for the page's own origin."""
    import aiohttp

    async def demo_sign_in() -> dict[str, Any]:
        return {"AuthenticationResult": {"AccessToken": "demo-token", "ExpiresIn": 3600}}

    runtime = LambdaRuntime(handlers.resolve)
    gateway = Gateway(runtime, demo_sign_in=demo_sign_in)
    await gateway.start("127.0.0.1", 0)
    try:
        url = f"{gateway.base_url}/demo-sign-in"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, headers={"Origin": gateway.base_url}) as response:
                assert response.status == 200
                assert response.headers["Cache-Control"] == "no-store"
                assert (await response.json())["AuthenticationResult"]["AccessToken"] == "demo-token"
            async with http.post(url, headers={"Origin": "http://evil.example"}) as response:
                assert response.status == 403
            async with http.get(url) as response:
                assert response.status == 405
    finally:
        await gateway.stop()
        await asyncio.to_thread(runtime.close)
    # Without the callable (a deployed-like gateway) there is no such route.
    plain_runtime = LambdaRuntime(handlers.resolve)
    plain = Gateway(plain_runtime)
    assert not any(r.resource and r.resource.canonical == "/demo-sign-in" for r in plain.app().router.routes())
    await asyncio.to_thread(plain_runtime.close)
