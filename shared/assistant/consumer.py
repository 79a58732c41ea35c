"""The worker's handler shape: a batch from the SQS FIFO queue in, each record answered by the reply service.

Powertools' ``SqsFifoPartialProcessor`` reports failed records back to SQS; with ``skip_group_on_error`` a failed
record fails the records after it in its own message group (that user's later messages wait, keeping their order)
while other users' records in the batch go on. A failed record is brought back within seconds
(:meth:`MessageQueue.retry_soon`) rather than after the queue's long visibility timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from assistant import tracing
from assistant.function_dependencies.worker import WorkerDependencies
from assistant.observability import Metric, logger, metrics
from assistant.queue import EraseRequest, MessageQueue, QueuedMessage
from assistant.reply import DeliveryReport, DeliveryResult

_RESULT_METRICS = {
    DeliveryResult.DONE: Metric.REPLIES_COMPLETED,
    DeliveryResult.CANCELLED: Metric.REPLIES_CANCELLED,
    DeliveryResult.FAILED: Metric.REPLIES_FAILED,
    DeliveryResult.DUPLICATE: Metric.DUPLICATE_DELIVERIES,
}

#: Time kept in hand before Lambda's hard timeout: to hand a long reply back (checkpointed, resumed by the next
#: delivery) or fail it cleanly with an `error` frame, instead of being ended mid-frame with nobody told.
DEADLINE_MARGIN_S = 20

SqsHandler = Callable[[dict[str, Any], LambdaContext], PartialItemFailureResponse]


def fifo_consumer(dependencies: Callable[[], WorkerDependencies]) -> SqsHandler:
    """The worker's Lambda handler, answering each record with ``dependencies().reply_service``."""
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)

    def answer(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
        # Powertools passes the Lambda context to a record handler that has a parameter of this name.
        body = json.loads(record.body)
        if body.get("kind") == "erase":
            _erase(dependencies, EraseRequest.model_validate(body), lambda_context)
            return
        queued = QueuedMessage.model_validate(body)
        logger.set_correlation_id(queued.message_id)
        logger.append_keys(userId=queued.user_id, conversationId=queued.conversation_id)
        attempt = int(record.attributes.approximate_receive_count)
        deadline = None
        if lambda_context is not None:
            deadline = time.time() + lambda_context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_S
        try:
            outcome = dependencies().reply_service.handle(queued, attempt=attempt, deadline=deadline)
        except Exception:
            _retry_soon(dependencies, record, attempt)
            raise
        _record_metrics(outcome)
        logger.info(
            "Message handled",
            extra={"result": outcome.result.value, "frames": outcome.frames, "outputTokens": outcome.output_tokens},
        )

    @tracing.capture_handler
    @logger.inject_lambda_context
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        records = len(event.get("Records", []))
        metrics.add_metric(name=Metric.RECORDS_RECEIVED.value, unit=MetricUnit.Count, value=records)
        return process_partial_response(event=event, record_handler=answer, processor=processor, context=context)

    return handler


def _erase(
    dependencies: Callable[[], WorkerDependencies], request: EraseRequest, lambda_context: LambdaContext | None
) -> None:
    """Erase what the user's deleted conversations left; past the deadline, hand the rest to a new message (each run
    makes progress, so however long a conversation was, it is gone after enough runs)."""
    logger.set_correlation_id(None)
    logger.append_keys(userId=request.user_id)
    deadline = None
    if lambda_context is not None:
        deadline = time.time() + lambda_context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_S
    deps = dependencies()
    result = deps.eraser.erase_orphans(request.user_id, deadline=deadline)
    metrics.add_metric(name=Metric.ITEMS_ERASED.value, unit=MetricUnit.Count, value=result.turns + result.messages)
    logger.info(
        "Deleted conversations erased",
        extra={"turns": result.turns, "messages": result.messages, "finished": result.finished},
    )
    if not result.finished:
        MessageQueue(deps.sqs, deps.settings.queue_url).request_erasure(request.user_id, now=time.time())


def _retry_soon(dependencies: Callable[[], WorkerDependencies], record: SQSRecord, attempt: int) -> None:
    try:
        deps = dependencies()
        MessageQueue(deps.sqs, deps.settings.queue_url).retry_soon(record.receipt_handle, attempt=attempt)
    except Exception:
        # The record still comes back, only after the full visibility timeout; the reply's own failure is what
        # propagates, so this one is logged rather than raised over it.
        logger.exception("Could not shorten the failed record's visibility timeout")


def _record_metrics(outcome: DeliveryReport) -> None:
    metrics.add_metric(name=_RESULT_METRICS[outcome.result].value, unit=MetricUnit.Count, value=1)
    if outcome.result is not DeliveryResult.DONE:
        return
    metrics.add_metric(name=Metric.OUTPUT_TOKENS.value, unit=MetricUnit.Count, value=outcome.output_tokens)
    metrics.add_metric(name=Metric.INPUT_TOKENS.value, unit=MetricUnit.Count, value=outcome.input_tokens)
    # Per reply, so a dashboard shows the distribution (frames and DynamoDB writes are what streaming costs).
    metrics.add_metric(name=Metric.FRAMES_PER_REPLY.value, unit=MetricUnit.Count, value=outcome.frames)
    metrics.add_metric(
        name=Metric.CHECKPOINT_WRITES_PER_REPLY.value, unit=MetricUnit.Count, value=outcome.checkpoint_writes
    )
    if outcome.first_text_after_s is not None:
        metrics.add_metric(
            name=Metric.TIME_TO_FIRST_TEXT.value,
            unit=MetricUnit.Milliseconds,
            value=round(outcome.first_text_after_s * 1000, 1),
        )
