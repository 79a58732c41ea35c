"""Each function's declared table actions (``FunctionSpec.table_actions``) are exactly what its code calls.

moto enforces no IAM, so a missing grant would pass every other test and fail only in AWS. Here every handler runs
its code paths in-process against moto while the SDK reports each DynamoDB call it makes; each call is translated
to the IAM action AWS would check (a transaction's items to PutItem/UpdateItem/DeleteItem/ConditionCheckItem,
since transactions have no action of their own), and the union per function must equal the spec: nothing missing
(the function would fail in AWS), nothing extra (least privilege).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import authorizer
import boto3
import commands
import connect
import default
import disconnect
import pytest
import send_message
import worker

from assistant import clients
from assistant.token_verifier import TokenVerifier
from assistant.wiring import (
    AUTHORIZER,
    COMMANDS,
    CONNECT,
    DEFAULT,
    DISCONNECT,
    FUNCTIONS,
    SEND_MESSAGE,
    WORKER,
    FunctionSpec,
)
from tests.conftest import REGION, CognitoPool
from tests.connections_api import GoneFor
from tests.events import authorizer_event
from tests.integration.conftest import API_ID, CALLBACK_URL, STAGE, Deployment, LambdaContext

_TRANSACTION_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def iam_actions(operation: str, params: dict[str, Any]) -> set[str]:
    """The IAM actions AWS checks for one DynamoDB API call."""
    if operation == "TransactWriteItems":
        return {_TRANSACTION_ITEM_ACTIONS[kind] for item in params["TransactItems"] for kind in item}
    if operation == "TransactGetItems":
        return {"dynamodb:GetItem"}
    return {f"dynamodb:{operation}"}


class TableCallRecorder:
    """Attributes every DynamoDB call the handlers' table makes to the function being run."""

    def __init__(self) -> None:
        self.actions: dict[str, set[str]] = defaultdict(set)
        self.ran: set[str] = set()
        self._running: str | None = None

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        assert self._running is not None, f"a table call ({model.name}) outside any function"
        self.actions[self._running] |= iam_actions(model.name, params)

    @contextmanager
    def running(self, spec: FunctionSpec) -> Iterator[None]:
        self._running = spec.name
        self.ran.add(spec.name)
        try:
            yield
        finally:
            self._running = None


@pytest.fixture
def recorder(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> TableCallRecorder:
    recorder = TableCallRecorder()
    resource = boto3.resource("dynamodb", region_name=REGION)
    # Before the parameters are serialized: the operation's name and its plain parameters (transaction items too).
    resource.meta.client.meta.events.register("before-parameter-build.dynamodb", recorder)
    table = resource.Table(deployment.table.name)
    # Every store the handlers build reads clients.table(); the fixture puts the original back afterwards.
    monkeypatch.setattr(clients, "table", lambda table_name, region: table)
    return recorder


def _answer(deployment: Deployment, handler: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The frame a route answers with; every route exercised here answers."""
    frame = deployment.route(handler, body)
    assert frame is not None, body
    return frame


def test_each_function_calls_exactly_the_table_actions_its_spec_declares(
    deployment: Deployment,
    recorder: TableCallRecorder,
    cognito_pool: CognitoPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(
        issuer=cognito_pool.issuer, client_id=cognito_pool.client_id, jwks_source=cognito_pool.jwks
    )
    monkeypatch.setattr(authorizer, "dependencies", lambda: verifier)
    with recorder.running(AUTHORIZER):
        for token in (cognito_pool.access_token(), "not-a-jwt"):
            authorizer.handler(authorizer_event(token, api_id=API_ID, stage=STAGE), LambdaContext())

    # Bob is at the cap by the count, but one of his records expired without a $disconnect and DynamoDB's TTL
    # deleted the others: his next connect reclaims them.
    deployment.table.put_item(Item={"pk": "USER#bob", "sk": "OPEN_CONNECTIONS", "open": 10})
    deployment.table.put_item(Item={"pk": "USER#bob", "sk": "CONN#bob-lost", "expiresAt": 1})
    with recorder.running(CONNECT):
        for connection in ("conn-a1", "conn-a2", "conn-stale"):
            assert deployment.call(connect.handler, deployment.ws_event("$connect", connection=connection)) == {
                "statusCode": 200
            }
        bob = deployment.ws_event("$connect", connection="conn-b1", user="bob")
        assert deployment.call(connect.handler, bob) == {"statusCode": 200}
    with recorder.running(DISCONNECT):
        deployment.call(disconnect.handler, deployment.ws_event("$disconnect", connection="conn-a2"))

    with recorder.running(SEND_MESSAGE):
        # The first message creates the current conversation; the second names it and repeats its own id. The
        # first asks for a tool, so the worker reads today's usage before the round after the tool call (its only
        # GetItem on a reply's way: it claims without reading the message first).
        ask_tool = {"action": "sendMessage", "message": "What time is it in Tokyo?"}
        first = _answer(deployment, send_message.handler, ask_tool)
        assert first["type"] == "accepted"
        conversation_id = first["conversationId"]
        again = {"action": "sendMessage", "message": "Hi", "conversationId": conversation_id, "messageId": "m-1"}
        for _ in range(2):
            assert _answer(deployment, send_message.handler, again)["type"] == "accepted"

    with recorder.running(COMMANDS):
        assert _answer(deployment, commands.handler, {"action": "ping"})["type"] == "pong"
        created = _answer(deployment, commands.handler, {"action": "newConversation"})
        listed = _answer(deployment, commands.handler, {"action": "listConversations"})
        # Listed once it has a message: the first, not the one just created.
        assert {c["conversationId"] for c in listed["items"]} == {conversation_id}
        history = {"action": "getHistory", "conversationId": created["conversationId"]}
        assert _answer(deployment, commands.handler, history)["type"] == "history"
        rename = {"action": "renameConversation", "conversationId": conversation_id, "title": "Tokyo"}
        assert _answer(deployment, commands.handler, rename)["type"] == "conversationUpdated"
        delete = {"action": "deleteConversation", "conversationId": created["conversationId"]}
        assert _answer(deployment, commands.handler, delete)["type"] == "conversationDeleted"
        assert _answer(deployment, commands.handler, {"action": "getUsage"})["type"] == "usage"
        unknown = _answer(deployment, commands.handler, {"action": "cancel", "messageId": "m-none"})
        assert unknown["code"] == "not_found"
        # The queued m-1 is cancelled on the spot (the worker then skips it).
        assert _answer(deployment, commands.handler, {"action": "cancel", "messageId": "m-1"})["type"] == "cancelled"

    # The worker answers the first message; API Gateway says conn-stale is gone, so its record is deleted.
    healthy = clients.connections_api(CALLBACK_URL)
    monkeypatch.setattr(clients, "connections_api", lambda callback_url: GoneFor(healthy, {"conn-stale"}))
    worker.dependencies.reset()  # built again with the client above
    with recorder.running(WORKER):
        assert deployment.deliver(deployment.receive()) == []
    assert deployment.frames("conn-a1")[-1]["type"] == "done"

    # Deleting everything (the conversations in batches), then the worker erases the turns and messages left.
    with recorder.running(COMMANDS):
        assert _answer(deployment, commands.handler, {"action": "deleteAllData"})["type"] == "dataDeleted"
    with recorder.running(WORKER):
        assert deployment.deliver(deployment.receive()) == []
    assert (
        deployment.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :turns)",
            ExpressionAttributeValues={":pk": "USER#alice", ":turns": "TURN#"},
        )["Items"]
        == []
    )

    with recorder.running(DEFAULT):
        assert _answer(deployment, default.handler, {"action": "fly"})["code"] == "unknown_action"

    assert recorder.ran == {spec.name for spec in FUNCTIONS}, "every function must be exercised here"
    for spec in FUNCTIONS:
        assert recorder.actions.get(spec.name, set()) == set(spec.table_actions), spec.name
