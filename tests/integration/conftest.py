"""The deployed shape in one process: handlers invoked with API Gateway/SQS-shaped events, boto3 against moto,
the real ``openai`` SDK against the offline Responses server on 127.0.0.1."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

from assistant import queue
from assistant.wiring import QUEUE, Env
from scripts.local_stack.offline_model import OfflineModelServer, Pace
from tests.conftest import REGION
from tests.connections_api import RecordingApi
from tests.events import websocket_event
from tests.handlers import reset_handlers

ACCOUNT = "123456789012"
API_ID = "abc123defg"
STAGE = "test"
CALLBACK_URL = f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/{STAGE}"
SECRET_NAME = "assistant-test/openai-api-key"


@pytest.fixture(scope="session")
def offline_model() -> Iterator[OfflineModelServer]:
    with OfflineModelServer(pace=Pace.instant()) as server:
        yield server


@pytest.fixture
def model(offline_model: OfflineModelServer) -> Iterator[OfflineModelServer]:
    offline_model.faults.clear()
    offline_model.requests.clear()
    yield offline_model
    offline_model.faults.clear()


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class Deployment:
    """Handles on the moto resources and helpers that play API Gateway and the SQS event source."""

    table: Any
    sqs: Any
    queue_url: str
    dlq_url: str
    model: OfflineModelServer

    def ws_event(self, route_key: str, body: Any = None, *, user: str = "alice", connection: str = "conn-a1") -> dict:
        """A WebSocket event as API Gateway sends it after `$connect` was authorized."""
        return websocket_event(route_key, body, user=user, connection=connection, api_id=API_ID, stage=STAGE)

    def call(self, handler: Callable[[dict, Any], dict], event: dict) -> dict:
        return handler(event, LambdaContext())

    def route(self, handler: Callable[[dict, Any], dict], body: Any, **who: str) -> dict | None:
        """Invoke a message route; return the frame it answers the sender with (its route response body)."""
        from assistant.wiring import ROUTES

        # Route selection as API Gateway does it on `$request.body.action`.
        action = body.get("action") if isinstance(body, dict) else None
        route_key = action if any(r.route_key == action for r in ROUTES) else "$default"
        response = self.call(handler, self.ws_event(route_key, body, **who))
        return json.loads(response["body"]) if "body" in response else None

    def receive(self, max_messages: int = 10) -> list[dict]:
        """Receive like Lambda's event source mapping and shape the records as Lambda does."""
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.queue_url.rsplit('/', 1)[-1]}"
        return [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in got
        ]

    def deliver(self, records: list[dict]) -> list[str]:
        """Run the worker on a batch; delete what succeeded (as the event source does) and return the failed ids."""
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
        from worker import handler

        try:
            response = handler({"Records": records}, LambdaContext())
            failed = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
        except BatchProcessingError:
            # Every record failed: Powertools raises, and Lambda returns the whole batch to the queue.
            failed = [r["messageId"] for r in records]
        for record in records:
            if record["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
        return failed

    def frames(self, connection_id: str) -> list[dict]:
        """Every frame posted to a connection through the management API (moto concatenates the payloads)."""
        data = apigatewaymanagementapi_backends[ACCOUNT][REGION].connections[connection_id].data.decode()
        decoder, frames, index = json.JSONDecoder(), [], 0
        while index < len(data):
            frame, index = decoder.raw_decode(data, index)
            frames.append(frame)
        return frames


#: The attachments bucket (assistant.attachments).
UPLOAD_BUCKET = "assistant-test-attachments"


@pytest.fixture
def deployment(ddb_table: Any, model: OfflineModelServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    sqs = boto3.client("sqs", region_name=REGION)
    dlq_url = sqs.create_queue(QueueName="assistant-test-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName="assistant-test.fifo",
        Attributes={
            "FifoQueue": "true",
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": QUEUE.max_receive_count}),
        },
    )["QueueUrl"]
    boto3.client("secretsmanager", region_name=REGION).create_secret(Name=SECRET_NAME, SecretString="sk-test-offline")
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=UPLOAD_BUCKET)
    for name, value in {
        Env.UPLOAD_BUCKET_NAME: UPLOAD_BUCKET,
        Env.TABLE_NAME: ddb_table.name,
        Env.QUEUE_URL: queue_url,
        Env.CALLBACK_URL: CALLBACK_URL,
        Env.OPENAI_SECRET_NAME: SECRET_NAME,
        Env.OPENAI_BASE_URL: model.base_url,
        Env.FLUSH_INTERVAL_MS: "0",
        Env.SERVICE_NAME: "assistant-test",
        Env.METRICS_NAMESPACE: "AssistantTest",
    }.items():
        monkeypatch.setenv(name.value, value)
    # A failed record comes back at once here (the worker asks SQS for 2 s, 4 s, ... in production).
    monkeypatch.setattr(queue, "retry_delay_seconds", lambda attempt: 0)
    reset_handlers()
    yield Deployment(table=ddb_table, sqs=sqs, queue_url=queue_url, dlq_url=dlq_url, model=model)
    monkeypatch.undo()  # tests replace handlers' dependencies; put the originals back before resetting them
    reset_handlers()
    apigatewaymanagementapi_backends[ACCOUNT][REGION].connections.clear()


@pytest.fixture
def recording_api(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> RecordingApi:
    """The handlers' @connections client, recording the order of its calls (see :class:`RecordingApi`)."""
    from assistant import clients

    recording = RecordingApi(clients.connections_api(CALLBACK_URL))
    monkeypatch.setattr(clients, "connections_api", lambda callback_url: recording)
    return recording
