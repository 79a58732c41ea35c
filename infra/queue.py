"""The FIFO queue between ``sendMessage`` and the worker, its dead-letter queue and the alarm on it."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from assistant.wiring import QUEUE, WORKER
from infra.stage import StageConfig


class FifoQueueConstruct(Construct):
    """The stage's queue resources (``assistant.queue.MessageQueue`` is the client that sends to it)."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            fifo=True,
            retention_period=cdk.Duration.days(QUEUE.dlq_retention_days),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            fifo=True,
            # High-throughput FIFO: ordering and deduplication per user (the message group), not per queue.
            deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
            fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            # A message must stay invisible while a worker may still be streaming it, retries included.
            visibility_timeout=cdk.Duration.seconds(WORKER.timeout_seconds * QUEUE.visibility_timeout_factor),
            retention_period=cdk.Duration.days(QUEUE.retention_days),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=QUEUE.max_receive_count
            ),
        )
        # A message lands here only after the worker failed it max_receive_count times: someone must look.
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description=f"{stage.name}: messages the worker could not process are in the dead-letter queue",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def grant_send(self, grantee: iam.IGrantable) -> None:
        # Only SendMessage: the sender knows the URL from its environment and needs no queue attributes.
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])
        )
