"""The gateway's server: the WebSocket API's ``$connect``, messages and ``$disconnect``, its limits and timeouts, on
one aiohttp server with the ``@connections`` API (:mod:`.connections`) and the web page (:mod:`.static`)."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import WebSocketError, WSMsgType, web

from assistant.stage_throttles import StageThrottles
from assistant.wiring import AUTH_QUERY_PARAMETER, AUTHORIZER, MAX_FRAME_BYTES
from scripts.local_stack.gateway import events
from scripts.local_stack.gateway.connections import Connection, Connections
from scripts.local_stack.gateway.events import Handshake
from scripts.local_stack.gateway.policy import authorizer_decision
from scripts.local_stack.gateway.static import WebPage
from scripts.local_stack.gateway.throttle import TOO_MANY_REQUESTS, StageThrottle
from scripts.local_stack.lambda_runtime.invocation import ACCOUNT_ID, Invoker

log = logging.getLogger("local_stack.gateway")

DEFAULT_STAGE = "local"
IDLE_TIMEOUT_S = 10 * 60
MAX_CONNECTION_AGE_S = 2 * 60 * 60
INTEGRATION_TIMEOUT_S = 29.0
#: The largest message a client may send: one API Gateway frame, 32 KB. API Gateway refuses a frame over 32 KB
#: (close 1009) and accepts a message of up to 128 KB (``MAX_MESSAGE_BYTES``) sent in several frames. aiohttp's
#: public API limits whole messages only (``max_msg_size``, checked from each frame's header before its payload is
#: read), so the local gateway caps a message at one frame: every frame over 32 KB closes the connection with 1009,
#: as in AWS, and so does a message over 32 KB split into smaller frames, which AWS would accept. Browsers and the
#: terminal client send each message as one frame, so what they meet here is what they meet in AWS.
MAX_CLIENT_MESSAGE_BYTES = MAX_FRAME_BYTES
#: API Gateway closes expired connections with "going away".
GOING_AWAY = (1001, "Going away")
ABNORMAL = (1006, "")
MESSAGE_TOO_BIG = 1009


class Gateway:
    """The WebSocket API, its ``@connections`` endpoint, and the web page, on one aiohttp server."""

    def __init__(
        self,
        invoker: Invoker,
        *,
        stage: str = DEFAULT_STAGE,
        region: str = "us-east-1",
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connection_age_s: float = MAX_CONNECTION_AGE_S,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        web_dir: Path | None = None,
        public_config: Callable[[], Mapping[str, Any]] | None = None,
        demo_sign_in: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
        throttles: StageThrottles | None = None,
    ) -> None:
        self._invoker = invoker
        #: The stage's API Gateway throttles (``None``: none, for unit tests and benchmarks of the pipeline).
        self._throttle = None if throttles is None else StageThrottle(throttles)
        self.stage = stage
        self._region = region
        self._idle_timeout_s = idle_timeout_s
        self._max_age_s = max_connection_age_s
        self._integration_timeout_s = integration_timeout_s
        self._web_page = WebPage(
            origin=lambda: self.base_url, web_dir=web_dir, public_config=public_config, demo_sign_in=demo_sign_in
        )
        self.api_id = events.new_api_id()
        self._connections = Connections()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # -- lifecycle --

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/{self.stage}", self._websocket)
        self._connections.add_routes(app, self.stage)
        self._web_page.add_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host, self.port = self._runner.addresses[0][:2]

    async def stop(self) -> None:
        """Close every connection like a redeploy would (1001), run their ``$disconnect``, then stop serving."""
        for connection in self._connections:
            await connection.close(*GOING_AWAY)
        for connection in self._connections:
            await connection.finished.wait()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self._integration_timeout_s)
            for task in pending:
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.host}:{self.port}/{self.stage}"

    @property
    def callback_url(self) -> str:
        """What the worker's ``apigatewaymanagementapi`` client gets as ``endpoint_url``."""
        return f"{self.base_url}/{self.stage}"

    @property
    def connection_ids(self) -> list[str]:
        return self._connections.ids

    # -- events --

    def _context(self, connection: Connection) -> dict[str, Any]:
        return events.request_context(
            connection_id=connection.connection_id,
            connected_at_ms=connection.connected_at_ms,
            source_ip=connection.source_ip,
            user_agent=connection.user_agent,
            host=connection.host,
            stage=self.stage,
            api_id=self.api_id,
        )

    def _method_arn(self, route_key: str) -> str:
        return f"arn:aws:execute-api:{self._region}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/{route_key}"

    # -- $connect --

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        # aiohttp refuses a message of exactly max_msg_size; API Gateway accepts a frame of exactly 32 KB.
        ws = web.WebSocketResponse(max_msg_size=MAX_CLIENT_MESSAGE_BYTES + 1, compress=False, autoping=True)
        if not ws.can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426)
        # API Gateway refuses a missing identity source itself; the authorizer never runs.
        if not request.query.get(AUTH_QUERY_PARAMETER):
            return web.json_response({"message": "Unauthorized"}, status=401)
        # Throttled before the authorizer runs: a throttled request reaches no integration.
        if self._throttle is not None and not self._throttle.allow("$connect"):
            return web.json_response({"message": TOO_MANY_REQUESTS}, status=429)

        handshake = Handshake.of(request)
        connection_id = events.base64_id()
        source_ip = request.remote or "127.0.0.1"
        user_agent = request.headers.get("User-Agent", "")
        context = events.request_context(
            connection_id=connection_id,
            connected_at_ms=events.now_ms(),
            source_ip=source_ip,
            user_agent=user_agent,
            host=request.host,
            stage=self.stage,
            api_id=self.api_id,
        )
        context |= {"routeKey": "$connect", "eventType": "CONNECT"}

        authorizer = await self._authorize(handshake, context)
        if isinstance(authorizer, web.Response):
            return authorizer

        connect_event = events.connect_event(handshake, context | {"authorizer": authorizer})
        connect_route = events.route_by_key("$connect")
        try:
            result = await asyncio.wait_for(
                self._invoker.invoke(connect_route.function, connect_event), timeout=self._integration_timeout_s
            )
        except Exception:  # the runtime logged the traceback; the client gets what API Gateway would send
            return web.json_response({"message": "Internal server error"}, status=500)
        status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
        if not 200 <= status < 300:
            return web.Response(status=status, text=(result or {}).get("body") or "")

        await ws.prepare(request)
        connection = Connection(
            connection_id=connection_id,
            ws=ws,
            connected_at_ms=context["connectedAt"],
            source_ip=source_ip,
            user_agent=user_agent,
            authorizer=authorizer,
            host=request.host,
        )
        connection.touch()
        self._connections.add(connection)
        try:
            await self._serve(connection, handshake)
        finally:
            connection.finished.set()
        return ws

    async def _authorize(self, handshake: Handshake, context: dict[str, Any]) -> dict[str, Any] | web.Response:
        method_arn = self._method_arn("$connect")
        event = events.authorizer_event(handshake, method_arn, context)
        try:
            result = await asyncio.wait_for(
                self._invoker.invoke(AUTHORIZER, event), timeout=self._integration_timeout_s
            )
            allowed, authorizer = authorizer_decision(result, method_arn)
        except Exception as exc:
            # A Lambda authorizer signals "401" by failing with exactly "Unauthorized"; any other failure is
            # API Gateway's AuthorizerConfigurationException (500).
            if str(exc) == "Unauthorized":
                return web.json_response({"message": "Unauthorized"}, status=401)
            log.error("authorizer failed, refusing with 500: %s", exc)
            return web.json_response({"message": None}, status=500)
        if not allowed:
            return web.json_response({"message": "Forbidden"}, status=403)
        return authorizer

    # -- an open connection --

    async def _serve(self, connection: Connection, handshake: Handshake) -> None:
        ws = connection.ws
        code, reason = ABNORMAL
        while True:
            now = time.monotonic()
            idle_deadline = connection.last_active_mono + self._idle_timeout_s
            age_deadline = connection.connected_mono + self._max_age_s
            remaining = min(idle_deadline, age_deadline) - now
            if remaining <= 0:
                await connection.close(*GOING_AWAY)
                break
            try:
                message = await ws.receive(timeout=remaining)
            except TimeoutError:
                continue
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                connection.touch()
                self._spawn(self._dispatch(connection, message.data))
                continue
            if message.type == WSMsgType.CLOSE:
                code, reason = int(message.data or 1005), str(message.extra or "")
            elif message.type == WSMsgType.ERROR and isinstance(message.data, WebSocketError):
                # aiohttp has already closed the connection with the error's code (1009 for a message too big).
                code = message.data.code
                reason = "Message too big" if code == MESSAGE_TOO_BIG else ""
            elif ws.close_code is not None:
                code = ws.close_code
            break
        if not ws.closed:
            await ws.close()
        self._connections.remove(connection)
        code, reason = connection.server_close or (code, reason)
        await self._disconnect(connection, code, reason, handshake)

    async def _disconnect(self, connection: Connection, code: int, reason: str, handshake: Handshake) -> None:
        context = self._context(connection) | {
            "routeKey": "$disconnect",
            "eventType": "DISCONNECT",
            "disconnectStatusCode": code,
            "disconnectReason": reason,
            "authorizer": connection.authorizer,
        }
        host = handshake.headers.get("Host", connection.host)
        event = events.disconnect_event(context, host=host, source_ip=connection.source_ip)
        try:
            await self._invoker.invoke(events.route_by_key("$disconnect").function, event)
        except Exception:  # the runtime logged it; API Gateway ignores $disconnect's outcome too
            log.warning("$disconnect for %s failed (see the traceback above)", connection.connection_id)

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, connection: Connection, data: str | bytes) -> None:
        """One message, one integration call; API Gateway runs them concurrently, so this does too."""
        route = events.route_for(data)
        context = self._context(connection) | {
            "routeKey": route.route_key,
            "eventType": "MESSAGE",
            "messageId": events.base64_id(),
            "authorizer": connection.authorizer,
        }
        if self._throttle is not None and not self._throttle.allow(route.route_key):
            await self._connections.send(connection, events.error_frame(TOO_MANY_REQUESTS, context))
            return
        try:
            result = await asyncio.wait_for(
                self._invoker.invoke(route.function, events.message_event(context, data)),
                timeout=self._integration_timeout_s,
            )
        except TimeoutError:
            await self._connections.send(connection, events.error_frame("Endpoint request timed out", context))
            return
        except Exception:  # the runtime logged the traceback; the client gets API Gateway's generic frame
            await self._connections.send(connection, events.error_frame("Internal server error", context))
            return
        if not route.returns_response or result is None:
            return
        if not isinstance(result, dict):
            log.error("%s returned %r, not a proxy response", route.function.name, type(result).__name__)
            await self._connections.send(connection, events.error_frame("Internal server error", context))
            return
        response_body = result.get("body")
        if response_body is None:
            return
        if result.get("isBase64Encoded"):
            await self._connections.send(connection, base64.b64decode(response_body))
        else:
            await self._connections.send(connection, str(response_body))
