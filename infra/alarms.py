"""Alarms on the worker beyond the dead-letter queue's: replies that fail for good, and a worker that keeps erroring.

A single failed reply is the user's bad luck (they got an `error` frame); several in a few minutes is an outage
(the model is down, the key was revoked, quota ran out upstream) that an operator must hear about before users
complain. Thresholds are deliberately above the noise a retry produces.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from assistant.wiring import WORKER, Metric
from infra.functions import metrics_namespace
from infra.stage import StageConfig

#: Replies that ended in an `error` frame (model failed, output limit, ...), per five minutes.
FAILED_REPLIES_THRESHOLD = 5
#: Worker invocations that raised (each is retried by SQS), per five minutes.
WORKER_ERRORS_THRESHOLD = 10
PERIOD = cdk.Duration.minutes(5)


class WorkerAlarms(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig, worker: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        failed_replies = cloudwatch.Metric(
            namespace=metrics_namespace(stage),
            metric_name=Metric.REPLIES_FAILED.value,
            # Powertools adds the service as a dimension; the stack names each function's service after it.
            dimensions_map={"service": WORKER.name},
            statistic=cloudwatch.Stats.SUM,
            period=PERIOD,
        )
        self.failed_replies = cloudwatch.Alarm(
            self,
            "FailedReplies",
            alarm_description=f"{stage.name}: replies are failing (users get error frames); check the worker's logs",
            metric=failed_replies,
            threshold=FAILED_REPLIES_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.worker_errors = cloudwatch.Alarm(
            self,
            "WorkerErrors",
            alarm_description=f"{stage.name}: the worker keeps failing invocations (SQS is retrying them)",
            metric=worker.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            threshold=WORKER_ERRORS_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
