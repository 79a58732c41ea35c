"""A WebSocket gateway on 127.0.0.1 that behaves like an API Gateway WebSocket API, for the local stack.

What it copies from API Gateway, because the handlers and clients depend on it: the ``$connect`` identity-source
check before the authorizer, the REQUEST authorizer and its policy, the authorizer context in every later event,
route selection on ``$request.body.action`` with ``$default`` as the fallback, route responses, ``$disconnect`` on
every kind of close, the 32 KB frame and 128 KB message limits (close 1009), the idle timeout and maximum
connection age, the 29 s integration timeout with API Gateway's error frames, and the ``@connections`` management
API (POST/GET/DELETE, ``GoneException`` for a closed connection) that boto3's ``apigatewaymanagementapi`` client
talks to unchanged. Event shapes match what API Gateway sends, so Powertools' parser models accept them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import json
import logging
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError, WebSocketReader, WebSocketWriter
from aiohttp.web_request import BaseRequest

from assistant.wiring import (
    AUTH_QUERY_PARAMETER,
    AUTHORIZER,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    ROUTES,
    RouteSpec,
)
from scripts.local_stack.lambda_runtime import ACCOUNT_ID, Invoker

log = logging.getLogger("local_stack.gateway")

DEFAULT_STAGE = "local"
IDLE_TIMEOUT_S = 10 * 60
MAX_CONNECTION_AGE_S = 2 * 60 * 60
INTEGRATION_TIMEOUT_S = 29.0
#: Where the page's one-click demo sign-in posts (relative to the page; named in ``config.json`` as ``demoSignIn``).
DEMO_SIGN_IN_PATH = "demo-sign-in"
#: API Gateway closes expired connections with "going away".
GOING_AWAY = (1001, "Going away")
#: What the client sees when a backend deletes its connection through ``@connections``.
DELETED = (1000, "")
ABNORMAL = (1006, "")


# --- Identifiers and timestamps in API Gateway's formats ------------------------------------------------------


def _base64_id(nbytes: int = 11) -> str:
    """An id like API Gateway's ("L0SM9cOFvHcCIhw="), without "+" or "/" so it is safe in a URL path."""
    while True:
        candidate = base64.b64encode(secrets.token_bytes(nbytes)).decode()
        if "+" not in candidate and "/" not in candidate:
            return candidate


def new_api_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _request_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- The 32 KB frame limit ------------------------------------------------------------------------------------


class _FrameSizeGuard:
    """Reads WebSocket frame headers ahead of aiohttp's parser and fails the connection on an oversized frame.

    aiohttp only limits whole messages; API Gateway also limits each frame (a browser sends a message as one
    frame, so a 40 KB message works against a plain server and fails against API Gateway). The guard tracks frame
    boundaries in the raw byte stream and lets aiohttp's parser do everything else.
    """

    def __init__(self, inner: Any, queue: Any, max_frame_bytes: int) -> None:
        self._inner = inner
        self._queue = queue
        self._max = max_frame_bytes
        self._header = bytearray()
        self._payload_left = 0
        self._failed = False

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._failed:
            return True, b""
        if self._oversized_frame_in(bytes(data)):
            self._failed = True
            self._queue.set_exception(WebSocketError(WSCloseCode.MESSAGE_TOO_BIG, "Message too big"))
            return True, b""
        return self._inner.feed_data(data)

    def _oversized_frame_in(self, data: bytes) -> bool:
        pos = 0
        while pos < len(data):
            if self._payload_left:
                step = min(self._payload_left, len(data) - pos)
                self._payload_left -= step
                pos += step
                continue
            self._header.append(data[pos])
            pos += 1
            size = self._header_size()
            if size is None or len(self._header) < size:
                continue
            length = self._payload_length()
            self._header.clear()
            if length > self._max:
                return True
            self._payload_left = length
        return False

    def _header_size(self) -> int | None:
        if len(self._header) < 2:
            return None
        masked = self._header[1] & 0x80
        short = self._header[1] & 0x7F
        extra = 2 if short == 126 else 8 if short == 127 else 0
        return 2 + extra + (4 if masked else 0)

    def _payload_length(self) -> int:
        short = self._header[1] & 0x7F
        if short == 126:
            return int.from_bytes(self._header[2:4], "big")
        if short == 127:
            return int.from_bytes(self._header[2:10], "big")
        return short


class _ApiGatewayWebSocketResponse(web.WebSocketResponse):
    def _post_start(self, request: BaseRequest, protocol: str | None, writer: WebSocketWriter) -> None:
        super()._post_start(request, protocol, writer)
        # aiohttp has no hook for its parser; swap in the guard right after it is installed (pinned aiohttp;
        # tests/unit/test_gateway.py fails if this stops working).
        parser: WebSocketReader = request.protocol._payload_parser
        request.protocol._payload_parser = _FrameSizeGuard(parser, self._reader, MAX_FRAME_BYTES)


# --- Authorizer policy ----------------------------------------------------------------------------------------


class AuthorizerConfigurationError(Exception):
    """The authorizer answered something API Gateway would reject (it returns 500 to the client)."""


def authorizer_decision(result: Any, method_arn: str) -> tuple[bool, dict[str, Any]]:
    """Whether the policy allows ``method_arn``, and the ``requestContext.authorizer`` later events carry.

    An explicit Deny wins over any Allow and no matching statement means Deny, as in IAM. Context values must be
    primitives; API Gateway hands them to the integration as strings.
    """
    if (
        not isinstance(result, dict)
        or "principalId" not in result
        or not isinstance(result.get("policyDocument"), dict)
    ):
        raise AuthorizerConfigurationError(f"authorizer answer lacks principalId or policyDocument: {result!r}")
    statements = result["policyDocument"].get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        if not (
            _matches(statement.get("Action"), "execute-api:Invoke") and _matches(statement.get("Resource"), method_arn)
        ):
            continue
        if statement.get("Effect") == "Deny":
            return False, {}
        allowed = allowed or statement.get("Effect") == "Allow"
    context: dict[str, Any] = {"principalId": str(result["principalId"])}
    for key, value in (result.get("context") or {}).items():
        if isinstance(value, bool):
            context[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            context[key] = str(value)
        elif value is not None:
            raise AuthorizerConfigurationError(f"authorizer context value {key!r} is not a string, number or boolean")
    return allowed, context


def _matches(patterns: Any, value: str) -> bool:
    candidates = [patterns] if isinstance(patterns, str) else list(patterns or [])
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in candidates)


# --- Connections ----------------------------------------------------------------------------------------------


@dataclass
class Connection:
    connection_id: str
    ws: web.WebSocketResponse
    connected_at_ms: int
    source_ip: str
    user_agent: str
    authorizer: dict[str, Any]
    host: str
    last_active_ms: int = 0
    last_active_mono: float = field(default_factory=time.monotonic)
    connected_mono: float = field(default_factory=time.monotonic)
    #: Set when this side ends the connection (DELETE, timeouts, shutdown), so ``$disconnect`` reports it.
    server_close: tuple[int, str] | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        self.last_active_ms = _now_ms()
        self.last_active_mono = time.monotonic()

    async def close(self, code: int, reason: str) -> None:
        if self.server_close is None:
            self.server_close = (code, reason)
        await self.ws.close(code=code, message=reason.encode())


def _route_for(body: str | bytes) -> RouteSpec:
    """``$request.body.action``: the route whose key equals the body's ``action``, else ``$default``."""
    routes = {route.route_key: route for route in ROUTES}
    action: Any = None
    if isinstance(body, str):
        # Whatever does not parse (bad JSON, nesting deeper than the parser goes, a number too long to convert) has
        # no action to route by: API Gateway sends it to $default, which answers it.
        with contextlib.suppress(json.JSONDecodeError, RecursionError, ValueError):
            parsed = json.loads(body)
            action = parsed.get("action") if isinstance(parsed, dict) else None
    if isinstance(action, str) and not action.startswith("$") and action in routes:
        return routes[action]
    return routes["$default"]


def _error_frame(message: str, connection_id: str, request_id: str) -> str:
    return json.dumps({"message": message, "connectionId": connection_id, "requestId": request_id})


def _gone(connection_id: str) -> web.Response:
    return web.json_response(
        {"message": f"Connection {connection_id} is gone"}, status=410, headers={"x-amzn-ErrorType": "GoneException"}
    )


# --- The gateway ----------------------------------------------------------------------------------------------


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
    ) -> None:
        self._invoker = invoker
        self.stage = stage
        self._region = region
        self._idle_timeout_s = idle_timeout_s
        self._max_age_s = max_connection_age_s
        self._integration_timeout_s = integration_timeout_s
        self._web_dir = web_dir if web_dir is not None and web_dir.is_dir() else None
        self._public_config = public_config
        self._demo_sign_in = demo_sign_in
        self.api_id = new_api_id()
        self._connections: dict[str, Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # -- lifecycle --

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/{self.stage}", self._websocket)
        management = f"/{self.stage}/@connections/{{connection_id}}"
        app.router.add_post(management, self._post_to_connection)
        app.router.add_get(management, self._get_connection)
        app.router.add_delete(management, self._delete_connection)
        app.router.add_get("/config.json", self._config)
        if self._demo_sign_in is not None:
            app.router.add_post(f"/{DEMO_SIGN_IN_PATH}", self._demo_sign_in_handler)
        if self._web_dir is not None:
            app.router.add_get("/", self._index)
            app.router.add_static("/", self._web_dir, show_index=False, follow_symlinks=False)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host, self.port = self._runner.addresses[0][:2]

    async def stop(self) -> None:
        """Close every connection like a redeploy would (1001), run their ``$disconnect``, then stop serving."""
        for connection in list(self._connections.values()):
            await connection.close(*GOING_AWAY)
        for connection in list(self._connections.values()):
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
        return list(self._connections)

    # -- events --

    def _context(
        self, *, connection_id: str, connected_at_ms: int, source_ip: str, user_agent: str, host: str
    ) -> dict[str, Any]:
        now = _now_ms()
        return {
            "connectionId": connection_id,
            "extendedRequestId": _base64_id(),
            "requestId": _base64_id(),
            "requestTime": _request_time(now),
            "requestTimeEpoch": now,
            "connectedAt": connected_at_ms,
            "stage": self.stage,
            "domainName": host,
            "apiId": self.api_id,
            "identity": {"sourceIp": source_ip, "userAgent": user_agent},
            "messageDirection": "IN",
        }

    def _connection_context(self, connection: Connection) -> dict[str, Any]:
        return self._context(
            connection_id=connection.connection_id,
            connected_at_ms=connection.connected_at_ms,
            source_ip=connection.source_ip,
            user_agent=connection.user_agent,
            host=connection.host,
        )

    def _method_arn(self, route_key: str) -> str:
        return f"arn:aws:execute-api:{self._region}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/{route_key}"

    # -- $connect --

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        # aiohttp refuses a message of exactly max_msg_size; API Gateway accepts exactly 128 KB.
        ws = _ApiGatewayWebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES + 1, compress=False, autoping=True)
        if not ws.can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426)
        # API Gateway refuses a missing identity source itself; the authorizer never runs.
        if not request.query.get(AUTH_QUERY_PARAMETER):
            return web.json_response({"message": "Unauthorized"}, status=401)

        source_ip = request.remote or "127.0.0.1"
        user_agent = request.headers.get("User-Agent", "")
        host = request.host
        headers, multi_headers = _headers(request)
        query = {key: request.query.getone(key) for key in request.query}
        multi_query = {key: request.query.getall(key) for key in request.query}
        connection_id = _base64_id()
        context = self._context(
            connection_id=connection_id,
            connected_at_ms=_now_ms(),
            source_ip=source_ip,
            user_agent=user_agent,
            host=host,
        )
        context |= {"routeKey": "$connect", "eventType": "CONNECT"}

        authorizer = await self._authorize(context, headers, multi_headers, query, multi_query)
        if isinstance(authorizer, web.Response):
            return authorizer

        connect_event = {
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "requestContext": context | {"authorizer": authorizer},
            "isBase64Encoded": False,
        }
        connect_route = _route_by_key("$connect")
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
            host=host,
        )
        connection.touch()
        self._connections[connection_id] = connection
        try:
            await self._serve(connection, headers, multi_headers)
        finally:
            connection.finished.set()
        return ws

    async def _authorize(
        self,
        context: dict[str, Any],
        headers: dict[str, str],
        multi_headers: dict[str, list[str]],
        query: dict[str, str],
        multi_query: dict[str, list[str]],
    ) -> dict[str, Any] | web.Response:
        method_arn = self._method_arn("$connect")
        event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "stageVariables": {},
            "requestContext": context,
        }
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

    async def _serve(self, connection: Connection, headers: dict[str, str], multi: dict[str, list[str]]) -> None:
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
                code, reason = message.data.code, "Message too big" if message.data.code == 1009 else ""
            elif ws.close_code is not None:
                code = ws.close_code
            break
        if not ws.closed:
            await ws.close()
        self._connections.pop(connection.connection_id, None)
        code, reason = connection.server_close or (code, reason)
        await self._disconnect(connection, code, reason, headers, multi)

    async def _disconnect(
        self, connection: Connection, code: int, reason: str, headers: dict[str, str], multi: dict[str, list[str]]
    ) -> None:
        context = self._connection_context(connection) | {
            "routeKey": "$disconnect",
            "eventType": "DISCONNECT",
            "disconnectStatusCode": code,
            "disconnectReason": reason,
            "authorizer": connection.authorizer,
        }
        disconnect_headers = {"Host": headers.get("Host", connection.host), "X-Forwarded-For": connection.source_ip}
        event = {
            "headers": disconnect_headers,
            "multiValueHeaders": {key: [value] for key, value in disconnect_headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }
        try:
            await self._invoker.invoke(_route_by_key("$disconnect").function, event)
        except Exception:  # the runtime logged it; API Gateway ignores $disconnect's outcome too
            log.warning("$disconnect for %s failed (see the traceback above)", connection.connection_id)

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, connection: Connection, data: str | bytes) -> None:
        """One message, one integration call; API Gateway runs them concurrently, so this does too."""
        route = _route_for(data)
        context = self._connection_context(connection) | {
            "routeKey": route.route_key,
            "eventType": "MESSAGE",
            "messageId": _base64_id(),
            "authorizer": connection.authorizer,
        }
        is_binary = isinstance(data, bytes)
        body = base64.b64encode(data).decode() if isinstance(data, bytes) else data
        event = {"requestContext": context, "body": body, "isBase64Encoded": is_binary}
        try:
            result = await asyncio.wait_for(
                self._invoker.invoke(route.function, event), timeout=self._integration_timeout_s
            )
        except TimeoutError:
            await self._send(connection, _error_frame("Endpoint request timed out", **_ids(context)))
            return
        except Exception:  # the runtime logged the traceback; the client gets API Gateway's generic frame
            await self._send(connection, _error_frame("Internal server error", **_ids(context)))
            return
        if not route.returns_response or result is None:
            return
        if not isinstance(result, dict):
            log.error("%s returned %r, not a proxy response", route.function.name, type(result).__name__)
            await self._send(connection, _error_frame("Internal server error", **_ids(context)))
            return
        response_body = result.get("body")
        if response_body is None:
            return
        if result.get("isBase64Encoded"):
            await self._send(connection, base64.b64decode(response_body))
        else:
            await self._send(connection, str(response_body))

    async def _send(self, connection: Connection, payload: str | bytes) -> bool:
        if connection.ws.closed or connection.connection_id not in self._connections:
            return False
        try:
            if isinstance(payload, bytes):
                await connection.ws.send_bytes(payload)
            else:
                await connection.ws.send_str(payload)
        except ConnectionError:
            return False
        return True

    # -- @connections --

    async def _post_to_connection(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        data = await request.read()
        if len(data) > MAX_MESSAGE_BYTES:
            return web.json_response(
                {"message": "Message too long"}, status=413, headers={"x-amzn-ErrorType": "PayloadTooLargeException"}
            )
        connection = self._connections.get(connection_id)
        if connection is None:
            return _gone(connection_id)
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        if not await self._send(connection, payload):
            return _gone(connection_id)
        return web.Response(status=200)

    async def _get_connection(self, request: web.Request) -> web.Response:
        connection = self._connections.get(request.match_info["connection_id"])
        if connection is None:
            return _gone(request.match_info["connection_id"])
        return web.json_response(
            {
                "connectedAt": _iso(connection.connected_at_ms),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                "lastActiveAt": _iso(connection.last_active_ms),
            }
        )

    async def _delete_connection(self, request: web.Request) -> web.Response:
        connection = self._connections.get(request.match_info["connection_id"])
        if connection is None:
            return _gone(request.match_info["connection_id"])
        await connection.close(*DELETED)
        return web.Response(status=204)

    # -- the web page --

    async def _config(self, request: web.Request) -> web.Response:
        if self._public_config is None:
            raise web.HTTPNotFound()
        return web.json_response(dict(self._public_config()), headers={"Cache-Control": "no-store"})

    async def _demo_sign_in_handler(self, request: web.Request) -> web.Response:
        """The page's one-click demo sign-in: Cognito's InitiateAuth answer for the demo user, so the page gets the
        demo user's tokens without the password ever being served (it stays in ``.local/stack.json``). Only on this
        loopback-only gateway, and only for a request from the page's own origin (another site open in the same
        browser cannot read the answer anyway, having no CORS grant, but it need not even cause a sign-in)."""
        assert self._demo_sign_in is not None
        origin = request.headers.get("Origin")
        if origin is not None and origin != self.base_url:
            raise web.HTTPForbidden(text="demo sign-in is for the page served here only")
        result = await self._demo_sign_in()
        return web.json_response(dict(result), headers={"Cache-Control": "no-store"})

    async def _index(self, request: web.Request) -> web.StreamResponse:
        assert self._web_dir is not None
        index = self._web_dir / "index.html"
        if not index.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(index, headers={"Cache-Control": "no-store"})


def _route_by_key(route_key: str) -> RouteSpec:
    return next(route for route in ROUTES if route.route_key == route_key)


def _ids(context: Mapping[str, Any]) -> dict[str, str]:
    return {"connection_id": context["connectionId"], "request_id": context["requestId"]}


def _headers(request: web.Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The handshake's headers plus the ones API Gateway adds, single- and multi-valued like its events."""
    multi: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        multi.setdefault(key, []).append(value)
    multi.setdefault("X-Forwarded-For", [request.remote or "127.0.0.1"])
    multi.setdefault("X-Forwarded-Port", [str(request.url.port or "")])
    multi.setdefault("X-Forwarded-Proto", [request.scheme])
    multi.setdefault("X-Amzn-Trace-Id", [f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"])
    return {key: values[-1] for key, values in multi.items()}, multi
