"""Stop reaches the model and never leaves a message stuck: the cancel route through moto and the offline model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import commands
import pytest
import send_message

from assistant.stores.messages import MessageStatus
from assistant.wiring import ModelProvider
from scripts.local_stack.aws.moto_patches import serialise_moto_dynamodb
from tests.handlers import reset_handlers, use_dependencies
from tests.integration.conftest import Deployment


def _streaming(deployment: Deployment, message_id: str, *, response_id: str | None) -> Any:
    deployment.route(send_message.handler, {"action": "sendMessage", "message": "Think hard", "messageId": message_id})
    record = commands.dependencies().messages.get("alice", message_id)
    assert record is not None
    commands.dependencies().messages._table.update_item(  # a worker claimed it and (maybe) started a model response
        Key={"pk": "USER#alice", "sk": f"MSG#{message_id}"},
        UpdateExpression="SET #s = :streaming, claimedAt = :at" + (", responseId = :rid" if response_id else ""),
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":streaming": "streaming",
            ":at": "2026-11-29T10:00:00.000Z",
            **({":rid": response_id} if response_id else {}),
        },
    )
    return record


def _owned_by_a_live_worker(message_id: str) -> None:
    """Fresh progress on the message: the cancel route must not take it for one a dead worker left streaming."""
    commands.dependencies().messages._table.update_item(
        Key={"pk": "USER#alice", "sk": f"MSG#{message_id}"},
        UpdateExpression="SET progressAt = :now",
        ExpressionAttributeValues={":now": "2999-01-01T00:00:00.000Z"},
    )


class _RecordingModel:
    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def cancel_response(self, response_id: str) -> bool:
        self.cancelled.append(response_id)
        return True


def test_stop_while_the_model_is_silent_cancels_its_response(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reasoning models can be silent for many seconds: no frame, so no checkpoint would notice the cancel."""
    model = _RecordingModel()
    use_dependencies(monkeypatch, commands, model=lambda: model)
    _streaming(deployment, "m-think", response_id="resp_thinking")
    _owned_by_a_live_worker("m-think")

    answer = deployment.route(commands.handler, {"action": "cancel", "messageId": "m-think"})

    assert answer is None  # the worker announces `cancelled` to every tab when its stream ends
    assert model.cancelled == ["resp_thinking"]
    record = commands.dependencies().messages.get("alice", "m-think")
    assert record is not None
    assert record.cancel_requested


def test_stop_of_a_message_its_worker_left_streaming_finishes_it(deployment: Deployment) -> None:
    """The worker died past its timeout (no progress for longer than a worker may run): cancel finishes it."""
    _streaming(deployment, "m-stuck", response_id=None)

    answer = deployment.route(commands.handler, {"action": "cancel", "messageId": "m-stuck"})

    assert answer == {"type": "cancelled", "messageId": "m-stuck"}
    record = commands.dependencies().messages.get("alice", "m-stuck")
    assert record is not None
    assert record.status is MessageStatus.CANCELLED


def test_stop_on_a_stage_without_background_responses_builds_no_model_client(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stateless server's (or Bedrock's) response lives only as long as its stream, which the worker closes when
    its next checkpoint finds the cancel: the route has nothing to call, so it neither reads the key nor imports
    the SDK to build a client."""

    def no_model() -> Any:
        raise AssertionError("the cancel route built a model client on a stage without background responses")

    settings = commands.dependencies().settings.model_copy(update={"model_provider": ModelProvider.OPENAI_COMPATIBLE})
    use_dependencies(monkeypatch, commands, model=no_model, settings=settings)
    _streaming(deployment, "m-stateless", response_id="resp_streamed")
    _owned_by_a_live_worker("m-stateless")

    answer = deployment.route(commands.handler, {"action": "cancel", "messageId": "m-stateless"})

    assert answer is None  # the worker's next checkpoint finds the flag and announces `cancelled`
    record = commands.dependencies().messages.get("alice", "m-stateless")
    assert record is not None
    assert record.cancel_requested


def test_two_hundred_cancel_frames_reach_the_provider_once(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user (or a script) pressing Stop 200 times, in parallel as API Gateway runs frames: the provider's cancel
    is called with the operator's key once, by the one request whose conditional write recorded the stop.

    In-process moto checks a condition and writes in two steps without a lock, unlike DynamoDB; the local stack's
    patch that runs its item operations one at a time (``serialise_moto_dynamodb``) makes each conditional write
    atomic here too, as it is in DynamoDB."""
    serialise_moto_dynamodb()
    monkeypatch.setenv("RATE_LIMIT_CANCEL", "1000/1000")  # the provider is under test here, not the bucket
    reset_handlers()
    model = _RecordingModel()
    use_dependencies(monkeypatch, commands, model=lambda: model)
    _streaming(deployment, "m-spam", response_id="resp_spammed")
    _owned_by_a_live_worker("m-spam")

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda _: deployment.route(commands.handler, {"action": "cancel", "messageId": "m-spam"}), range(200)
            )
        )

    # Each frame is answered as the first was (the worker announces `cancelled`), or refused by the user's cancel
    # bucket when too many take a token at the very same moment.
    assert None in answers
    assert all(answer is None or answer["code"] == "rate_limited" for answer in answers)
    assert model.cancelled == ["resp_spammed"]
    record = commands.dependencies().messages.get("alice", "m-spam")
    assert record is not None
    assert (record.status, record.cancel_requested) == (MessageStatus.STREAMING, True)
