"""The events API Gateway's WebSocket API sends its integrations, in its shapes and formats.

Ids and timestamps look like API Gateway's, the request context carries what it carries, the handshake's headers
get the ones API Gateway adds, and a message is routed on ``$request.body.action``. Powertools' parser models for
API Gateway WebSocket events accept every event built here (tests/unit/test_gateway.py parses them).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import string
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from assistant.route_table import ROUTES, RouteSpec

# --- Identifiers and timestamps in API Gateway's formats ------------------------------------------------------


def base64_id(nbytes: int = 11) -> str:
    """An id like API Gateway's ("L0SM9cOFvHcCIhw="), without "+" or "/" so it is safe in a URL path."""
    while True:
        candidate = base64.b64encode(secrets.token_bytes(nbytes)).decode()
        if "+" not in candidate and "/" not in candidate:
            return candidate


def new_api_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _request_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def iso_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- Events ---------------------------------------------------------------------------------------------------


def request_context(
    *,
    connection_id: str,
    connected_at_ms: int,
    source_ip: str,
    user_agent: str,
    host: str,
    stage: str,
    api_id: str,
) -> dict[str, Any]:
    """The ``requestContext`` every event starts from; each kind of event adds its route key and event type."""
    now = now_ms()
    return {
        "connectionId": connection_id,
        "extendedRequestId": base64_id(),
        "requestId": base64_id(),
        "requestTime": _request_time(now),
        "requestTimeEpoch": now,
        "connectedAt": connected_at_ms,
        "stage": stage,
        "domainName": host,
        "apiId": api_id,
        "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        "messageDirection": "IN",
    }


@dataclass(frozen=True)
class Handshake:
    """What the ``$connect`` events carry of the upgrade request: its headers plus the ones API Gateway adds, and its
    query string, single- and multi-valued like API Gateway's events."""

    headers: dict[str, str]
    multi_headers: dict[str, list[str]]
    query: dict[str, str]
    multi_query: dict[str, list[str]]

    @classmethod
    def of(cls, request: web.Request) -> Handshake:
        multi: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            multi.setdefault(key, []).append(value)
        multi.setdefault("X-Forwarded-For", [request.remote or "127.0.0.1"])
        multi.setdefault("X-Forwarded-Port", [str(request.url.port or "")])
        multi.setdefault("X-Forwarded-Proto", [request.scheme])
        multi.setdefault("X-Amzn-Trace-Id", [f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"])
        return cls(
            headers={key: values[-1] for key, values in multi.items()},
            multi_headers=multi,
            query={key: request.query.getone(key) for key in request.query},
            multi_query={key: request.query.getall(key) for key in request.query},
        )


def authorizer_event(handshake: Handshake, method_arn: str, context: dict[str, Any]) -> dict[str, Any]:
    """The REQUEST authorizer's event for ``$connect``."""
    return {
        "type": "REQUEST",
        "methodArn": method_arn,
        "headers": handshake.headers,
        "multiValueHeaders": handshake.multi_headers,
        "queryStringParameters": handshake.query,
        "multiValueQueryStringParameters": handshake.multi_query,
        "stageVariables": {},
        "requestContext": context,
    }


def connect_event(handshake: Handshake, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "headers": handshake.headers,
        "multiValueHeaders": handshake.multi_headers,
        "queryStringParameters": handshake.query,
        "multiValueQueryStringParameters": handshake.multi_query,
        "requestContext": context,
        "isBase64Encoded": False,
    }


def disconnect_event(context: dict[str, Any], *, host: str, source_ip: str) -> dict[str, Any]:
    """``$disconnect`` carries only these two headers, as in API Gateway."""
    headers = {"Host": host, "X-Forwarded-For": source_ip}
    return {
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def message_event(context: dict[str, Any], data: str | bytes) -> dict[str, Any]:
    """A message's event: a binary frame's body arrives base64-encoded, as API Gateway sends it."""
    if isinstance(data, bytes):
        return {"requestContext": context, "body": base64.b64encode(data).decode(), "isBase64Encoded": True}
    return {"requestContext": context, "body": data, "isBase64Encoded": False}


# --- Routes and API Gateway's own answers ---------------------------------------------------------------------


def route_for(body: str | bytes) -> RouteSpec:
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


def route_by_key(route_key: str) -> RouteSpec:
    return next(route for route in ROUTES if route.route_key == route_key)


def error_frame(message: str, context: Mapping[str, Any]) -> str:
    """What API Gateway sends the client when an integration fails or times out."""
    return json.dumps({"message": message, "connectionId": context["connectionId"], "requestId": context["requestId"]})
