"""How many AWS calls stand between a `sendMessage` arriving and the model request going out.

Every call is counted where boto3 makes it (a ``before-call`` hook on the clients the stores and the queue use), and
the worker's calls are split at the model's first ``POST /responses``, so the path to the model is pinned: a change
that adds a call on it fails here and has to say why (docs/architecture.md, "The path to the model").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import send_message
import worker

from tests.integration.conftest import Deployment


class CallLog:
    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self.calls: list[tuple[str, bool]] = []

    def hook(self, model: Any, **_: Any) -> None:
        # ``model`` is botocore's OperationModel of the call about to be made.
        self.calls.append((f"{model.service_model.service_name}:{model.name}", self._model_called()))

    def _model_called(self) -> bool:
        return any(r.method == "POST" and r.path.endswith("/responses") for r in self._deployment.model.requests)

    def before_model(self) -> Counter[str]:
        return Counter(name for name, after in self.calls if not after)


@pytest.fixture
def calls(deployment: Deployment) -> CallLog:
    log = CallLog(deployment)
    for handler in (send_message, worker):
        dependencies = handler.dependencies()
        for client in (dependencies.messages._table.meta.client, dependencies.sqs):
            client.meta.events.register("before-call", log.hook)
    return log


def test_aws_calls_from_send_message_to_the_model_request(deployment: Deployment, calls: CallLog) -> None:
    # A returning user: the current conversation exists, so intake only looks it up.
    first = deployment.route(send_message.handler, {"action": "sendMessage", "message": "Hello"})
    assert first is not None
    assert first["type"] == "accepted"
    assert deployment.deliver(deployment.receive()) == []
    # The model key is cached for SECRET_MAX_AGE_SECONDS, so a warm worker does not read Secrets Manager.
    calls.calls.clear()
    deployment.model.requests.clear()

    accepted = deployment.route(send_message.handler, {"action": "sendMessage", "message": "And again"})
    assert accepted is not None
    assert accepted["type"] == "accepted"
    intake = Counter(name for name, _ in calls.calls)
    # Was 7: four GetItems (bucket, usage, pointer, and the conversation the pointer names) are one BatchGetItem,
    # the conversation is no longer read (a pointer is written with its conversation and cannot dangle), and the
    # bucket's UpdateItem is part of the message record's transaction.
    assert sum(intake.values()) == 3, intake
    assert intake == Counter(
        {
            "dynamodb:BatchGetItem": 1,  # rate-limit bucket, today's usage, current-conversation pointer
            # message record + the user's set of waiting messages + the rate-limit bucket's token
            "dynamodb:TransactWriteItems": 1,
            "sqs:SendMessage": 1,
        }
    )
    calls.calls.clear()

    assert deployment.deliver(deployment.receive()) == []
    worker = calls.before_model()
    # Was 4: a message GetItem before the claim (the claim now returns the record it found when it fails) and a
    # conversation GetItem (the claim holds the record to the conversation intake checked) are gone.
    assert sum(worker.values()) == 2, worker
    assert worker == Counter(
        {
            "dynamodb:TransactWriteItems": 1,  # claim (status + today's usage), conditional on the queued record
            "dynamodb:Query": 1,  # the conversation's earlier turns: what the model is sent (one page)
        }
    )
