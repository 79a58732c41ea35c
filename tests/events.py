"""Events shaped as API Gateway sends them to the WebSocket route functions, for every test layer."""

from __future__ import annotations

import json
import uuid
from typing import Any


def websocket_event(
    route_key: str,
    body: Any = None,
    *,
    user: str = "alice",
    connection: str = "conn-a1",
    api_id: str = "abc123defg",
    stage: str = "test",
    region: str = "us-east-1",
) -> dict[str, Any]:
    """A WebSocket event after `$connect` was authorized (the authorizer's context is in every later event)."""
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE")
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": "ext-" + uuid.uuid4().hex[:8],
        "requestTime": "24/Nov/2026:21:04:05 +0000",
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": 1_764_000_000_000,
        "requestTimeEpoch": 1_764_000_000_500,
        "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
        "requestId": "req-" + uuid.uuid4().hex[:8],
        "domainName": f"{api_id}.execute-api.{region}.amazonaws.com",
        "connectionId": connection,
        "apiId": api_id,
        "authorizer": {"principalId": user, "userId": user, "username": user, "integrationLatency": 12},
    }
    event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
    if event_type == "MESSAGE":
        context["messageId"] = "msg-" + uuid.uuid4().hex[:8]
        event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
    else:
        event["headers"] = {"Host": context["domainName"]}
        event["multiValueHeaders"] = {"Host": [context["domainName"]]}
    if event_type == "DISCONNECT":
        context["disconnectStatusCode"] = 1001
        context["disconnectReason"] = "Going away"
    return event


def authorizer_event(token: str, *, api_id: str = "abc123defg", stage: str = "test", region: str = "us-east-1") -> dict:
    """The REQUEST authorizer's event for `$connect` with ``?Auth=<token>``."""
    return {
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:{region}:123456789012:{api_id}/{stage}/$connect",
        "headers": {"Host": f"{api_id}.execute-api.{region}.amazonaws.com"},
        "multiValueHeaders": {"Host": [f"{api_id}.execute-api.{region}.amazonaws.com"]},
        "queryStringParameters": {"Auth": token},
        "multiValueQueryStringParameters": {"Auth": [token]},
        "stageVariables": {},
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "extendedRequestId": "ext-" + uuid.uuid4().hex[:8],
            "requestTime": "24/Nov/2026:21:04:05 +0000",
            "messageDirection": "IN",
            "stage": stage,
            "connectedAt": 1_764_000_000_000,
            "requestTimeEpoch": 1_764_000_000_000,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
            "requestId": "req-" + uuid.uuid4().hex[:8],
            "domainName": f"{api_id}.execute-api.{region}.amazonaws.com",
            "connectionId": "conn-" + uuid.uuid4().hex[:8],
            "apiId": api_id,
        },
    }
