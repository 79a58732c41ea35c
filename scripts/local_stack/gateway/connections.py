"""The open WebSocket connections, and the ``@connections`` management API on them.

The API answers as API Gateway's does, so the worker's boto3 ``apigatewaymanagementapi`` client talks to it
unchanged: POST sends a frame, GET describes the connection, DELETE closes it, and all three answer 410
``GoneException`` for a connection that is not open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from assistant.wiring import MAX_MESSAGE_BYTES
from scripts.local_stack.gateway.events import iso_time, now_ms

#: What the client sees when a backend deletes its connection through ``@connections``.
DELETED = (1000, "")


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
        self.last_active_ms = now_ms()
        self.last_active_mono = time.monotonic()

    async def close(self, code: int, reason: str) -> None:
        if self.server_close is None:
            self.server_close = (code, reason)
        await self.ws.close(code=code, message=reason.encode())


class Connections:
    """The open connections by id, and the ``@connections`` routes that reach them."""

    def __init__(self) -> None:
        self._open: dict[str, Connection] = {}

    def add(self, connection: Connection) -> None:
        self._open[connection.connection_id] = connection

    def remove(self, connection: Connection) -> None:
        self._open.pop(connection.connection_id, None)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._open.values()))

    @property
    def ids(self) -> list[str]:
        return list(self._open)

    async def send(self, connection: Connection, payload: str | bytes) -> bool:
        """Send a frame if the connection is still open; whether it was sent."""
        if connection.ws.closed or connection.connection_id not in self._open:
            return False
        try:
            if isinstance(payload, bytes):
                await connection.ws.send_bytes(payload)
            else:
                await connection.ws.send_str(payload)
        except ConnectionError:
            return False
        return True

    def add_routes(self, app: web.Application, stage: str) -> None:
        management = f"/{stage}/@connections/{{connection_id}}"
        app.router.add_post(management, self._post_to_connection)
        app.router.add_get(management, self._get_connection)
        app.router.add_delete(management, self._delete_connection)

    async def _post_to_connection(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        data = await request.read()
        if len(data) > MAX_MESSAGE_BYTES:
            return web.json_response(
                {"message": "Message too long"}, status=413, headers={"x-amzn-ErrorType": "PayloadTooLargeException"}
            )
        connection = self._open.get(connection_id)
        if connection is None:
            return _gone(connection_id)
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        if not await self.send(connection, payload):
            return _gone(connection_id)
        return web.Response(status=200)

    async def _get_connection(self, request: web.Request) -> web.Response:
        connection = self._open.get(request.match_info["connection_id"])
        if connection is None:
            return _gone(request.match_info["connection_id"])
        return web.json_response(
            {
                "connectedAt": iso_time(connection.connected_at_ms),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                "lastActiveAt": iso_time(connection.last_active_ms),
            }
        )

    async def _delete_connection(self, request: web.Request) -> web.Response:
        connection = self._open.get(request.match_info["connection_id"])
        if connection is None:
            return _gone(request.match_info["connection_id"])
        await connection.close(*DELETED)
        return web.Response(status=204)


def _gone(connection_id: str) -> web.Response:
    return web.json_response(
        {"message": f"Connection {connection_id} is gone"}, status=410, headers={"x-amzn-ErrorType": "GoneException"}
    )
